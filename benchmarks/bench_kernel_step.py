"""Per-step cost of the sequential Kalman kernel (``kernels.kalman.filter_smooth``).

Times the current kernel against a reference copy of another version of the module (by
default the committed ``HEAD`` version, extracted with ``git show``) in the same process,
interleaved, median of several runs. Setting: the Poisson LDS E-step, i.e. time-varying
``J`` (T, d, d), constant ``F, Q``, one trial (plain jit) and a vmapped batch of trials.

Usage::

    OPENBLAS_NUM_THREADS=1 python benchmarks/bench_kernel_step.py [--ref REV] [--d 2 3 5 8]
        [--T 1600 20000] [--reps 7] [--batch 1] [--filter-only]
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import statistics
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

jax.config.update("jax_enable_x64", True)

from spikessm.kernels import kalman as K_new  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def load_ref(rev: str):
    """Import ``src/spikessm/kernels/kalman.py`` as of git revision ``rev``."""
    src = subprocess.run(["git", "show", f"{rev}:src/spikessm/kernels/kalman.py"], cwd=ROOT,
                         check=True, capture_output=True, text=True).stdout
    path = os.path.join(tempfile.mkdtemp(), "kalman_ref.py")
    with open(path, "w") as f:
        f.write(src)
    spec = importlib.util.spec_from_file_location("kalman_ref", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def problem(d: int, T: int, seed: int = 0):
    """Random stable dynamics and a time-varying PSD J, as in a Laplace E-step."""
    rng = np.random.default_rng(seed)
    A = rng.standard_normal((d, d))
    F = 0.95 * A / np.max(np.abs(np.linalg.eigvals(A)))
    B = rng.standard_normal((d, d))
    Q = 0.1 * (B @ B.T / d + np.eye(d))
    N = 3 * d
    C = rng.standard_normal((N, d))
    lam = np.exp(rng.standard_normal((T, N)))
    J = np.einsum("tn,ni,nj->tij", lam, C, C)
    J[T // 3: T // 3 + 50] = 0.0  # a stretch of unobserved steps
    h = rng.standard_normal((T, d))
    r = rng.standard_normal(T)
    a = 0.01 * rng.standard_normal((T, d))
    return tuple(jnp.asarray(x) for x in (np.zeros(d), np.eye(d), F, a, Q, J, h, r))


def timed(fn, args, reps):
    jax.block_until_ready(fn(*args))  # compile + warm
    out = []
    for _ in range(reps):
        t0 = time.perf_counter()
        jax.block_until_ready(fn(*args))
        out.append(time.perf_counter() - t0)
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ref", default="HEAD")
    ap.add_argument("--d", type=int, nargs="+", default=[2, 3, 5, 8])
    ap.add_argument("--T", type=int, nargs="+", default=[1600, 20000])
    ap.add_argument("--reps", type=int, default=7)
    ap.add_argument("--rounds", type=int, default=3, help="interleaved rounds")
    ap.add_argument("--batch", type=int, default=0, help="also time vmap over this many")
    ap.add_argument("--filter-only", action="store_true")
    args = ap.parse_args()
    K_ref = load_ref(args.ref)
    name = "filter_only" if args.filter_only else "filter_smooth"
    print(f"jax {jax.__version__}, {name}, ref={args.ref}; per-step us (median)")
    print(f"{'d':>3} {'T':>6} {'mode':>7} {'ref us':>8} {'new us':>8} {'speedup':>8} "
          f"{'max rel diff':>12}")
    for d in args.d:
        for T in args.T:
            prob = problem(d, T)
            modes = [("single", prob)]
            if args.batch:
                batched = tuple(jnp.broadcast_to(x, (args.batch,) + x.shape) for x in prob)
                modes.append((f"vmap{args.batch}", batched))
            for mode, p in modes:
                fns = []
                for K in (K_ref, K_new):
                    f = getattr(K, name)
                    if mode != "single":
                        f = jax.vmap(f)
                    fns.append(jax.jit(f))
                o_ref, o_new = (fn(*p) for fn in fns)
                diff = max(float(jnp.max(jnp.abs(x - y)) / (jnp.max(jnp.abs(x)) + 1e-300))
                           for x, y in zip(jax.tree.leaves(o_ref), jax.tree.leaves(o_new)))
                t_ref, t_new = [], []
                for _ in range(args.rounds):  # interleave against load drift
                    t_ref += timed(fns[0], p, args.reps)
                    t_new += timed(fns[1], p, args.reps)
                nb = args.batch if mode != "single" else 1
                us_ref = statistics.median(t_ref) / (T * nb) * 1e6
                us_new = statistics.median(t_new) / (T * nb) * 1e6
                print(f"{d:>3} {T:>6} {mode:>7} {us_ref:8.3f} {us_new:8.3f} "
                      f"{us_ref / us_new:7.2f}x {diff:12.2e}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
