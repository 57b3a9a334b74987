"""Shared dynamics across "recordings" of the premotor data of Yu et al. (2009).

The 112 trials (two reach conditions) are split, within each condition, into two random
halves, and the 61 units into two disjoint random halves: recording 1 is the first half of
the trials seen through the first half of the units, recording 2 the other trials through
the other units (as two sessions with different neurons would be). Each recording's trials
are split again into training (3/4) and held-out (1/4) trials.

We fit the shared Poisson LDS (common A, b, Q, m0, P0; per-recording C_r, d_r) and, as the
baseline, separate Poisson LDS fits per recording, and report

* held-out one-step-ahead predictive log-likelihood (each recording's held-out trials,
  :func:`spikessm.evaluation.predictive.point_process_predictive_ll`), shared vs separate;
* latent alignment: condition-averaged latent trajectories (first ``T_AVG`` bins of every
  trial, both conditions concatenated) of recording 1 vs recording 2: leading canonical
  correlation, and the per-dimension correlation in the common (shared canonical) frame
  without any further alignment;
* a figure of both recordings' trajectories in the common frame.

Usage: python examples/shared_premotor.py [OUT_DIR] [--seed S]   (needs ../shared/data)
"""

from __future__ import annotations

import argparse
import tempfile
import warnings
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
from scipy.io import loadmat  # noqa: E402

from spikessm.data.binning import rebin_counts  # noqa: E402
from spikessm.evaluation.predictive import point_process_predictive_ll  # noqa: E402
from spikessm.models.plds import PoissonLDS  # noqa: E402
from spikessm.models.shared import SharedPoissonLDS  # noqa: E402
from spikessm.plotting.shared import plot_shared_trajectories  # noqa: E402

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "yu2009_pmd" / \
    "ex2_rawspiketrains.mat"
DT = 0.02
T_AVG = 50          # bins (1 s) averaged per condition for the alignment


def load():
    D = loadmat(DATA, squeeze_me=True, struct_as_record=False)["D"]
    trials = [rebin_counts(d.data.T, 20) for d in D]
    cond = np.array([str(d.condition) for d in D])
    return trials, cond


def make_recordings(trials, cond, seed):
    rng = np.random.default_rng(seed)
    N = trials[0].shape[1]
    units = rng.permutation(N)
    halves_u = [np.sort(units[: N // 2]), np.sort(units[N // 2:])]
    idx = [[], []]
    for c in np.unique(cond):
        k = rng.permutation(np.flatnonzero(cond == c))
        idx[0] += k[: k.size // 2].tolist()
        idx[1] += k[k.size // 2:].tolist()
    recs = []
    for r in range(2):
        ks = np.array(idx[r])
        ys = [trials[k][:, halves_u[r]] for k in ks]
        perm = rng.permutation(len(ks))
        n_te = len(ks) // 4
        te, tr = np.sort(perm[:n_te]), np.sort(perm[n_te:])
        recs.append(dict(train=[ys[i] for i in tr], test=[ys[i] for i in te],
                         cond_train=cond[ks][tr], all=ys, cond=cond[ks], units=halves_u[r]))
    return recs


def leading_cca(X, Y):
    """Largest canonical correlation between the columns of X (n, p) and Y (n, q)."""
    X = X - X.mean(0)
    Y = Y - Y.mean(0)
    qx, _ = np.linalg.qr(X)
    qy, _ = np.linalg.qr(Y)
    return float(np.linalg.svd(qx.T @ qy, compute_uv=False)[0])


def cond_average(means, cond):
    return np.concatenate([np.mean([m[:T_AVG] for m, c in zip(means, cond) if c == u], 0)
                           for u in np.unique(cond)], 0)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("out", nargs="?", default=None)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--state-dim", type=int, default=3)
    args = ap.parse_args()
    if not DATA.exists():
        raise SystemExit(f"data not found: {DATA}")
    out = Path(args.out) if args.out else Path(tempfile.mkdtemp())
    out.mkdir(parents=True, exist_ok=True)
    trials, cond = load()
    recs = make_recordings(trials, cond, args.seed)
    d = args.state_dim
    model = SharedPoissonLDS(d, DT)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        shared = model.fit([r["train"] for r in recs], max_iter=100, progress=False)
        sep = [PoissonLDS(d, DT).fit(r["train"], max_iter=100, progress=False) for r in recs]
    print(f"shared fit: {shared.n_iter} iterations, converged={shared.converged}, "
          f"{shared.seconds:.1f} s; separate: {[f.n_iter for f in sep]} iterations, "
          f"{sum(f.seconds for f in sep):.1f} s")
    ll_sh = [point_process_predictive_ll(p, r["test"], n_samples=500, seed=1)
             for p, r in zip(shared.params.recordings, recs)]
    ll_sep = [point_process_predictive_ll(f.params, r["test"], n_samples=500, seed=1)
              for f, r in zip(sep, recs)]
    for k in range(2):
        print(f"recording {k + 1} ({recs[k]['units'].size} units, {len(recs[k]['train'])} "
              f"train / {len(recs[k]['test'])} held-out trials): held-out LL shared "
              f"{ll_sh[k].total:.1f} +- {ll_sh[k].std_error:.1f}, separate "
              f"{ll_sep[k].total:.1f} +- {ll_sep[k].std_error:.1f}")
    tot_sh = sum(x.total for x in ll_sh)
    tot_sep = sum(x.total for x in ll_sep)
    se = np.sqrt(sum(x.std_error ** 2 for x in ll_sh + ll_sep))
    n_spk = sum(x.n_spikes for x in ll_sh)
    print(f"total held-out LL: shared {tot_sh:.1f}, separate {tot_sep:.1f}, difference "
          f"{tot_sh - tot_sep:.1f} +- {se:.1f} ({(tot_sh - tot_sep) / (n_spk * np.log(2)):.4f}"
          " bits/spike)")
    # latents of every trial of each recording, in the common frame
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        posts = model.smooth(shared.params, [r["all"] for r in recs])
        posts_sep = [PoissonLDS(d, DT).smooth(f.params, r["all"]) for f, r in zip(sep, recs)]
    avg = [cond_average(p.means, r["cond"]) for p, r in zip(posts, recs)]
    avg_sep = [cond_average(p.means, r["cond"]) for p, r in zip(posts_sep, recs)]
    cca_sh = leading_cca(avg[0], avg[1])
    cca_sep = leading_cca(avg_sep[0], avg_sep[1])
    direct_sh = [np.corrcoef(avg[0][:, i], avg[1][:, i])[0, 1] for i in range(d)]
    direct_sep = [np.corrcoef(avg_sep[0][:, i], avg_sep[1][:, i])[0, 1] for i in range(d)]
    print(f"condition-averaged latents, recording 1 vs 2: leading canonical correlation "
          f"shared {cca_sh:.3f} (separate fits {cca_sep:.3f})")
    print("per-dimension correlation without alignment: shared frame "
          f"{np.round(direct_sh, 3).tolist()}, separate fits' own frames "
          f"{np.round(direct_sep, 3).tolist()}")
    fig = plot_shared_trajectories([p.means for p in posts], ["recording 1", "recording 2"],
                                   [r["cond"] for r in recs], average=True,
                                   title="Premotor latents, two recordings, one frame")
    fig.savefig(out / "shared_premotor_trajectories.png", dpi=120)
    print(f"figure: {out / 'shared_premotor_trajectories.png'}")


if __name__ == "__main__":
    main()
