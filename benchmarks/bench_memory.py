"""Peak memory of one LG-SSM EM iteration on long recordings (spikessm).

Run:  OPENBLAS_NUM_THREADS=1 .venv/bin/python benchmarks/bench_memory.py [--quick]
      [--general-1m] [--log-prob]

N=100 channels, d=8 latents, full R, one trial of T = 100k, 300k and 1M steps, one EM
iteration (``max_iter=1, tol=0``) from fixed initial parameters, on path='steady'
(target: peak RSS < 8 GB at T=1M) and path='general' (T = 100k and 300k by default;
``--general-1m`` adds T = 1M, about 9 GB and 2 more minutes, run only if the
extrapolated peak fits in 60% of the available memory). ``--log-prob`` adds
``model.log_prob`` alone (general-path filter + smoother) at each T. Default run: about
2.5 minutes on 2 cores.

Each configuration runs in its own fresh Python process, so peaks do not mix. The
observations are generated inside that process in chunks (generation peak ~ size of y);
the kernel's peak-RSS counter is then reset (``/proc/self/clear_refs``, value 5) so the
reported peak is the peak *during the call*, which still includes the user's y and
everything else resident. "base" = resident memory just before the call (Python, JAX,
the user's y).
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse  # noqa: E402
import json  # noqa: E402
import resource  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import emit, environment, run_worker, table, warm_backend  # noqa: E402

SCRIPT = os.path.abspath(__file__)
D, N = 8, 100
GB = 1024 ** 3


def rss_now() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return -1


def reset_peak() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def peak() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux: KiB


def simulate(params, T, seed, chunk=50_000):
    """(T, N) observations from the LG-SSM, generated in chunks (no (T, N) temporaries)."""
    rng = np.random.default_rng(seed)
    A, C = params.A, params.C
    Lq = np.linalg.cholesky(params.Q)
    Lr = np.linalg.cholesky(params.R)
    y = np.empty((T, N))
    x = params.m0 + np.linalg.cholesky(params.P0) @ rng.standard_normal(D)
    for s in range(0, T, chunk):
        n = min(chunk, T - s)
        w = rng.standard_normal((n, D)) @ Lq.T
        X = np.empty((n, D))
        for t in range(n):
            if s + t > 0:
                x = A @ x + params.b + w[t]
            X[t] = x
        y[s:s + n] = X @ C.T + params.d + rng.standard_normal((n, N)) @ Lr.T
    return y


def worker(job):
    import jax

    jax.config.update("jax_enable_x64", True)
    from spikessm import LinearGaussianSSM

    model = LinearGaussianSSM(D, N)
    truth = model.random_params(seed=0)
    init = model.random_params(seed=1)  # fixed, data-independent initial parameters
    y = simulate(truth, job["T"], seed=2)
    warm_backend()
    base = rss_now()
    ok = reset_peak()
    t0 = time.perf_counter()
    if job["what"] == "log_prob":
        model.log_prob(init, y)
        path, loop = "-", None
    else:
        r = model.fit_em(y, params=init, max_iter=1, tol=0, progress=False,
                         path=job["what"])
        path, loop = r.path, r.seconds
    wall = time.perf_counter() - t0
    return dict(T=job["T"], what=job["what"], base=base, peak=peak(), reset_ok=ok,
                y_bytes=y.nbytes, wall=wall, loop=loop, path=path)


def main(quick: bool, general_1m: bool, log_prob: bool):
    env = environment()
    print(f"# bench_memory {'(--quick) ' if quick else ''}| {env['cpu']}, {env['cores']} "
          f"cores | python {env['python']}, jax {env['jax']}, numpy {env['numpy']} | "
          f"OPENBLAS_NUM_THREADS={env['OPENBLAS_NUM_THREADS']} | {env['date']} | loadavg "
          f"{env['loadavg']}", flush=True)
    Ts = [10_000, 30_000, 100_000] if quick else [100_000, 300_000, 1_000_000]
    jobs = [dict(T=T, what="steady") for T in Ts]
    if log_prob:
        jobs += [dict(T=T, what="log_prob") for T in Ts]
    jobs += [dict(T=T, what="general") for T in Ts[:2]]
    t_start = time.perf_counter()
    res = []
    for job in jobs:
        t0 = time.perf_counter()
        res.append(run_worker(SCRIPT, job, timeout=1800))
        print(f"  [{job}: {time.perf_counter() - t0:.1f} s]", flush=True)
    # general path at the largest T: only if the linear extrapolation leaves headroom
    g = [r for r in res if r["what"] == "general"]
    slope = (g[1]["peak"] - g[0]["peak"]) / (g[1]["T"] - g[0]["T"])
    pred = g[1]["peak"] + slope * (Ts[2] - g[1]["T"])
    avail = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    general_note = ""
    if general_1m and pred < 0.6 * avail:
        t0 = time.perf_counter()
        res.append(run_worker(SCRIPT, dict(T=Ts[2], what="general"), timeout=1800))
        print(f"  [general T={Ts[2]}: {time.perf_counter() - t0:.1f} s]", flush=True)
    else:
        general_note = (f"general path at T={Ts[2]:,} not run ("
                        f"{'no --general-1m; ' if not general_1m else ''}linear "
                        f"extrapolation from the two smaller T: {pred / GB:.1f} GB peak; "
                        f"available now {avail / GB:.1f} GB)")

    print(f"\n## One EM iteration, N={N}, d={D}, full R (peak RSS of the whole process "
          f"during the call)\n")
    rows = []
    label = {"steady": "fit_em path='steady'", "general": "fit_em path='general'",
             "log_prob": "log_prob only"}
    for what in ("steady", "general", "log_prob"):
        for r in (r for r in res if r["what"] == what):
            rows.append([label[what], f"{r['T']:,}", f"{r['y_bytes'] / GB:.2f}",
                         f"{r['base'] / GB:.2f}", f"{r['peak'] / GB:.2f}",
                         f"{(r['peak'] - r['base']) / GB:.2f}",
                         f"{(r['peak'] - r['base']) / r['y_bytes']:.1f}x",
                         f"{r['wall']:.1f} s",
                         "-" if r["loop"] is None else f"{r['loop']:.1f} s", r["path"]])
    print(table(["call", "T", "y (GB)", "base RSS (GB)", "peak RSS (GB)",
                 "peak - base (GB)", "(peak-base)/y", "call wall", "EM loop", "path"], rows))
    if general_note:
        print("\n" + general_note)
    for what in ("steady", "general", "log_prob"):
        rs = [r for r in res if r["what"] == what]
        if len(rs) >= 2:
            sl = np.polyfit([r["T"] for r in rs], [r["peak"] for r in rs], 1)
            print(f"{label[what]}: linear fit of peak RSS: {sl[0] * 1e6 / GB:.2f} GB per "
                  f"million steps + {sl[1] / GB:.2f} GB")
    s1m = [r for r in res if r["what"] == "steady" and r["T"] == Ts[2]][0]
    if not quick:
        print(f"\nTarget: steady path, T=1M, peak < 8 GB: {s1m['peak'] / GB:.2f} GB -> "
              f"{'met' if s1m['peak'] < 8 * GB else 'MISSED'}")
    if not all(r["reset_ok"] for r in res):
        print("warning: could not reset the peak-RSS counter; peaks include data generation")
    print(f"\n[total {time.perf_counter() - t_start:.0f} s]")
    return res


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="T = 10k, 30k, 100k (smoke run)")
    ap.add_argument("--general-1m", action="store_true",
                    help="also run the general path at the largest T (~9 GB, ~2 min)")
    ap.add_argument("--log-prob", action="store_true",
                    help="also measure model.log_prob alone at each T")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--json", help="also write the raw results to this JSON file")
    a = ap.parse_args()
    if a.worker:
        emit(worker(json.loads(a.worker)))
    else:
        out = main(a.quick, a.general_1m, a.log_prob)
        if a.json:
            with open(a.json, "w") as f:
                json.dump(out, f, indent=1)
