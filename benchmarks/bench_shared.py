"""Shared dynamics across recordings vs separate per-recording fits (simulated).

Four recordings of 20, 35, 50 and 60 different neurons share one 3-D latent dynamics
(a damped rotation plus a slow decay). For each training length per recording (short:
400 and 1,000 bins; long: 4,000 bins) we fit

* the shared Poisson LDS (:class:`spikessm.models.shared.SharedPoissonLDS`), and
* separate fits: every recording alone (``share_dynamics=False``: per-recording A, b, Q,
  m0, P0 -- the single-recording Poisson LDS EM, which tests/test_shared.py checks equals
  :class:`spikessm.models.plds.PoissonLDS` step for step; run in the same compiled code).
  ``--single-peer`` also fits :class:`~spikessm.models.plds.PoissonLDS` on each recording
  (one compilation per neuron count) and scores it,

and score the same held-out trials (10 trials x 100 bins per recording, never used in
fitting) with the one-step-ahead predictive log-likelihood
(:func:`spikessm.evaluation.predictive.point_process_predictive_ll`, importance sampling,
Monte Carlo standard errors reported). Also: the largest eigenvalue error of A (shared fit;
and the worst over the separate fits), and fit times.

Usage: OPENBLAS_NUM_THREADS=1 python benchmarks/bench_shared.py [--quick] [--seeds 0 1 2]
"""

from __future__ import annotations

import argparse
import os
import time
import warnings

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402

from spikessm.evaluation.predictive import point_process_predictive_ll  # noqa: E402
from spikessm.models import gauge  # noqa: E402
from spikessm.models.plds import PoissonLDS  # noqa: E402
from spikessm.models.plds.params import make_plds_params  # noqa: E402
from spikessm.models.shared import SharedPoissonLDS, shared_params_from  # noqa: E402

DT = 0.02
NS = (20, 35, 50, 60)
TRIAL = 100          # bins per trial
N_TEST = 10          # held-out trials per recording


def truth(seed: int):
    rng = np.random.default_rng(seed)
    th = 0.25
    A = np.array([[0.97 * np.cos(th), -0.97 * np.sin(th), 0.0],
                  [0.97 * np.sin(th), 0.97 * np.cos(th), 0.0], [0.0, 0.0, 0.9]])
    ps = [make_plds_params(A=A, Q=np.diag([0.07, 0.025, 0.04]),
                           C=rng.standard_normal((N, 3)) * 0.35,
                           d=np.log(rng.uniform(5, 20, N)), m0=np.array([1.2, -0.6, 0.8]),
                           P0=0.1 * np.eye(3), bin_width=DT) for N in NS]
    return shared_params_from(ps)


def held_out(params, test, n_samples, seed):
    out = [point_process_predictive_ll(p, y, n_samples=n_samples, seed=seed)
           for p, y in zip(params, test)]
    return np.array([o.total for o in out]), np.array([o.std_error for o in out])


def run(n_bins: int, seed: int, max_iter: int, n_samples: int, single_peer: bool) -> dict:
    tp = truth(seed)
    model = SharedPoissonLDS(3, DT)
    K = n_bins // TRIAL
    sims = model.sample(tp, TRIAL, n_trials=K + N_TEST, seed=100 + seed)
    train = [s[1][:K] for s in sims]
    test = [s[1][K:] for s in sims]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        t0 = time.perf_counter()
        sh = model.fit(train, max_iter=max_iter, progress=False)
        t_sh = time.perf_counter() - t0
        t0 = time.perf_counter()
        sep = model.fit(train, max_iter=max_iter, progress=False, share_dynamics=False)
        t_sep = time.perf_counter() - t0
        single = None
        if single_peer:
            single = [PoissonLDS(3, DT).fit(y, max_iter=max_iter, progress=False).params
                      for y in train]
    ll_sh, se_sh = held_out(sh.params.recordings, test, n_samples, seed)
    ll_sep, se_sep = held_out(sep.params.recordings, test, n_samples, seed)
    ll_single = None if single is None else held_out(single, test, n_samples, seed)[0].sum()
    n_spk = float(sum(np.sum(y) for y in test))
    return dict(
        n_bins=n_bins, seed=seed, ll_shared=ll_sh.sum(), ll_separate=ll_sep.sum(),
        se=float(np.sqrt(np.sum(se_sh ** 2) + np.sum(se_sep ** 2))),
        gain_bits_per_spike=(ll_sh.sum() - ll_sep.sum()) / (n_spk * np.log(2)),
        per_recording_gain=ll_sh - ll_sep,
        eig_shared=gauge.eigenvalue_match(sh.params.A, tp.A),
        eig_separate=max(gauge.eigenvalue_match(p.A, tp.A) for p in sep.params.recordings),
        t_shared=t_sh, t_separate=t_sep, it_shared=sh.n_iter, ll_single=ll_single)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="one seed, fewer samples")
    ap.add_argument("--seeds", type=int, nargs="*", default=[0, 1, 2])
    ap.add_argument("--lengths", type=int, nargs="*", default=[400, 1000, 4000])
    ap.add_argument("--single-peer", action="store_true",
                    help="also score separate PoissonLDS fits")
    args = ap.parse_args()
    seeds = [0] if args.quick else args.seeds
    n_samples = 200 if args.quick else 500
    print(f"recordings: {len(NS)} with {NS} neurons, shared 3-D dynamics; held-out "
          f"{N_TEST} x {TRIAL} bins per recording; OPENBLAS_NUM_THREADS="
          f"{os.environ.get('OPENBLAS_NUM_THREADS')}")
    print(f"{'bins/rec':>8} {'seed':>4} {'LL shared':>11} {'LL separate':>12} {'diff':>8} "
          f"{'+-se':>6} {'bits/spk':>8} {'eig err sh':>10} {'eig err sep':>11} "
          f"{'t sh s':>7} {'t sep s':>7}")
    rows = []
    for n in args.lengths:
        for s in seeds:
            r = run(n, s, 100, n_samples, args.single_peer)
            rows.append(r)
            print(f"{n:>8} {s:>4} {r['ll_shared']:>11.1f} {r['ll_separate']:>12.1f} "
                  f"{r['ll_shared'] - r['ll_separate']:>8.1f} {r['se']:>6.1f} "
                  f"{r['gain_bits_per_spike']:>8.4f} {r['eig_shared']:>10.3f} "
                  f"{r['eig_separate']:>11.3f} {r['t_shared']:>7.1f} {r['t_separate']:>7.1f}"
                  + ("" if r["ll_single"] is None else
                     f"  PoissonLDS per recording: {r['ll_single']:.1f}"), flush=True)
    print("\nsummary (mean over seeds): bins/rec, LL gain shared - separate, bits/spike, "
          "eig err shared, worst eig err separate")
    for n in args.lengths:
        sel = [r for r in rows if r["n_bins"] == n]
        print(f"{n:>8} {np.mean([r['ll_shared'] - r['ll_separate'] for r in sel]):>10.1f} "
              f"{np.mean([r['gain_bits_per_spike'] for r in sel]):>9.4f} "
              f"{np.mean([r['eig_shared'] for r in sel]):>8.3f} "
              f"{np.mean([r['eig_separate'] for r in sel]):>8.3f}")


if __name__ == "__main__":
    main()
