"""Shared helpers for the benchmark scripts (not a benchmark itself).

Each measurement runs in a fresh Python subprocess (``run_worker``) so that
first-call (compile-included) timings and peak-memory figures are not contaminated by
earlier work in the same process.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import re
import statistics
import subprocess
import sys
import time

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")


def median(xs):
    return float(statistics.median(xs))


def run_worker(script: str, job: dict, timeout: float = 900.0) -> dict:
    """Run ``script --worker '<json job>'`` in a fresh interpreter; return its JSON result
    (the last stdout line that starts with 'RESULT ')."""
    env = dict(os.environ)
    env.setdefault("OPENBLAS_NUM_THREADS", "1")
    proc = subprocess.run([sys.executable, script, "--worker", json.dumps(job)],
                          capture_output=True, text=True, timeout=timeout, env=env)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"worker {job} failed (rc={proc.returncode}):\n"
                           f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return json.loads(lines[-1][len("RESULT "):])


def emit(result: dict) -> None:
    print("RESULT " + json.dumps(result), flush=True)


class CompileCounter:
    """Counts XLA backend compilations via ``jax.monitoring`` (process-wide listener) and
    records their names and durations from JAX's compile log (``jax_log_compiles``)."""

    _PAT = re.compile(r"Finished XLA compilation of (.+) in ([0-9.]+) sec")

    def __init__(self):
        import jax

        self.n = 0
        self.secs = 0.0
        self.named = []  # (name, seconds), in order

        def listener(name, dur, **kw):
            if name == "/jax/core/compile/backend_compile_duration":
                self.n += 1
                self.secs += dur

        jax.monitoring.register_event_duration_secs_listener(listener)
        jax.config.update("jax_log_compiles", True)
        counter = self

        class _Handler(logging.Handler):
            def emit(self, record):
                m = CompileCounter._PAT.search(record.getMessage())
                if m:
                    counter.named.append((m.group(1), float(m.group(2))))

        log = logging.getLogger("jax")
        log.addHandler(_Handler())
        log.propagate = False  # keep the compile log off stderr

    def snapshot(self):
        return self.n, self.secs, len(self.named)

    def since(self, snap):
        return self.n - snap[0], self.secs - snap[1]

    def top(self, snap, k=4):
        """The k slowest compilations since ``snap``: [(name, seconds)]."""
        return sorted(self.named[snap[2]:], key=lambda x: -x[1])[:k]


def warm_backend():
    """Initialise the JAX CPU backend so that its one-off start-up cost is not charged to
    whichever library happens to be timed first."""
    import jax.numpy as jnp

    (jnp.zeros(3) + 1.0).block_until_ready()


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def environment() -> dict:
    import importlib.metadata as md

    def ver(name):
        try:
            return md.version(name)
        except md.PackageNotFoundError:
            return "not installed"

    return {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "jax": ver("jax"), "jaxlib": ver("jaxlib"), "dynamax": ver("dynamax"),
        "numpy": ver("numpy"), "spikessm": ver("spikessm"),
        "OPENBLAS_NUM_THREADS": os.environ.get("OPENBLAS_NUM_THREADS"),
        "date": time.strftime("%Y-%m-%d %H:%M %Z"),
        "loadavg": os.getloadavg(),
    }


def table(headers, rows) -> str:
    """Markdown table."""
    cells = [[str(h) for h in headers]] + [[str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    fmt = lambda r: "| " + " | ".join(c.ljust(w) for c, w in zip(r, widths)) + " |"
    out = [fmt(cells[0]), "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    out += [fmt(r) for r in cells[1:]]
    return "\n".join(out)


def fmt_s(x) -> str:
    if x is None:
        return "-"
    if x >= 100:
        return f"{x:.0f} s"
    if x >= 1:
        return f"{x:.2f} s"
    if x >= 1e-3:
        return f"{x * 1e3:.1f} ms"
    return f"{x * 1e6:.0f} us"
