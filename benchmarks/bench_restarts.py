"""Restarts batched in one compiled computation vs the same restarts fitted one by one
(issue 8).

For each problem size, on the same simulated data: ``fit_restarts`` with 8 seeds (vmap
over restarts, one compiled EM loop) against 8 sequential fits with the same seeds, same
random initialisation, same number of EM iterations (``tol=0``: every restart runs
``max_iter`` iterations on both sides). Poisson LDS sizes compare
``PoissonLDS.fit_restarts`` with ``PoissonLDS.fit``; LG-SSM sizes (``lg-*``) compare
``LinearGaussianSSM.fit_restarts`` with ``LinearGaussianSSM.fit_em``. Both sides are
warmed up first (compile excluded), then timed ``--reps`` times, interleaved; medians are
reported with the ratio sequential / batched, and the largest relative difference between
the two sides' final log-likelihoods (the batched fits are the same fits).

Sizes (``--size``, default all):
  small      Poisson LDS, d=2, N=20, 4 trials x 100 bins, 20 ms, 20 iterations
             (overhead-dominated)
  medium     Poisson LDS, d=3, N=50, 1 trial x 2,000 bins, 20 ms, 10 iterations
             (section 4's size)
  lg-small   LG-SSM, d=2, N=10, 1 trial x 100 steps, 50 iterations (the Dynamax
             notebook's size)
  lg-neural  LG-SSM, d=4, N=30, 1 trial x 1,000 steps, 20 iterations

Run: OPENBLAS_NUM_THREADS=1 python benchmarks/bench_restarts.py [--size small] [--reps 3]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import jax  # noqa: E402
import numpy as np  # noqa: E402

from spikessm.models.lgssm import LinearGaussianSSM  # noqa: E402
from spikessm.models.plds import PoissonLDS, make_plds_params  # noqa: E402

SIZES = {
    "small": dict(d=2, N=20, K=4, T=100, max_iter=20),
    "medium": dict(d=3, N=50, K=1, T=2000, max_iter=10),
    "lg-small": dict(d=2, N=10, K=1, T=100, max_iter=50),
    "lg-neural": dict(d=4, N=30, K=1, T=1000, max_iter=20),
}
SEEDS = list(range(8))
DT = 0.02


def simulate(d, N, K, T, seed=0):
    rng = np.random.default_rng(seed)
    Qr, _ = np.linalg.qr(rng.standard_normal((d, d)))
    p = make_plds_params(A=0.97 * Qr, Q=0.02 * np.eye(d), C=rng.normal(0, 0.6, (N, d)),
                         d=np.full(N, np.log(10.0)), bin_width=DT, P0=0.1 * np.eye(d))
    _, y, _ = PoissonLDS(d, DT).sample(p, T, n_trials=K, seed=seed + 1)
    return y


def simulate_lg(d, N, K, T, seed=0):
    """LG-SSM data from the model's own random parameters (one (T, N) trial when K=1)."""
    model = LinearGaussianSSM(d, N)
    _, y = model.sample(model.random_params(seed=seed), T,
                        n_trials=None if K == 1 else K, seed=seed + 1)
    return y


def run(size, reps):
    cfg = SIZES[size]
    kw = dict(init="random", max_iter=cfg["max_iter"], tol=0.0, progress=False)
    if size.startswith("lg-"):
        y = simulate_lg(cfg["d"], cfg["N"], cfg["K"], cfg["T"])
        model = LinearGaussianSSM(cfg["d"], cfg["N"])
        fit_one = model.fit_em
    else:
        y = simulate(cfg["d"], cfg["N"], cfg["K"], cfg["T"])
        model = PoissonLDS(cfg["d"], DT)
        fit_one = model.fit

    def sequential():
        return [fit_one(y, seed=s, **kw) for s in SEEDS]

    def batched():
        return model.fit_restarts(y, seeds=SEEDS, **kw)

    load_before = os.getloadavg()[0]                       # the machine may be shared
    seq, bat = sequential(), batched()                    # warm-up: compile both
    diff = max(abs(a.log_likelihood - b.log_likelihood) / abs(a.log_likelihood)
               for a, b in zip(seq, bat))
    t_seq, t_bat = [], []
    for _ in range(reps):                                  # interleaved, so both see the
        t0 = time.perf_counter()                           # same machine load
        sequential()
        t_seq.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        batched()
        t_bat.append(time.perf_counter() - t0)
    s, b = float(np.median(t_seq)), float(np.median(t_bat))
    res = {"size": size, **cfg, "restarts": len(SEEDS), "sequential_s": s, "batched_s": b,
           "speedup": s / b, "sequential_all_s": t_seq, "batched_all_s": t_bat,
           "max_rel_ll_difference": diff,
           "load_average_1min": [load_before, os.getloadavg()[0]]}
    print(json.dumps(res), flush=True)
    return res


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", choices=sorted(SIZES), nargs="+", default=list(SIZES))
    ap.add_argument("--reps", type=int, default=3)
    args = ap.parse_args()
    print(f"# jax {jax.__version__} on {jax.default_backend()}, {platform.processor() or ''} "
          f"{os.cpu_count()} cores, OPENBLAS_NUM_THREADS="
          f"{os.environ.get('OPENBLAS_NUM_THREADS')}")
    out = [run(size, args.reps) for size in args.size]
    print("\n| size | 8 sequential fits (s) | 8 restarts batched (s) | speedup |")
    print("|---|---|---|---|")
    for r in out:
        unit = "steps" if r["size"].startswith("lg-") else "bins"
        print(f"| {r['size']}: d={r['d']}, N={r['N']}, {r['K']}x{r['T']} {unit}, "
              f"{r['max_iter']} it. | {r['sequential_s']:.2f} | {r['batched_s']:.2f} | "
              f"{r['speedup']:.2f}x |")


if __name__ == "__main__":
    main()
