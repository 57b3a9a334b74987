"""Poisson LDS on the premotor recording of Yu et al. (2009): fit, co-smoothing against
baselines, latent trajectories by reach condition, fitted vs observed rates, objective.

Usage: python examples/plds_premotor.py [OUT_DIR]   (needs ../shared/data/yu2009_pmd)
"""

from __future__ import annotations

import sys
import tempfile
import warnings
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
from scipy.io import loadmat  # noqa: E402

from spikessm.data.binning import rebin_counts  # noqa: E402
from spikessm.evaluation.cosmoothing import (  # noqa: E402
    co_smoothing,
    split_neurons,
    sqrt_gaussian_co_smoothing,
)
from spikessm.models.plds import PoissonLDS  # noqa: E402
from spikessm.plotting.plds import (  # noqa: E402
    plot_latent_trajectories,
    plot_objective,
    plot_rates,
)

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "yu2009_pmd" / \
    "ex2_rawspiketrains.mat"


def main(out: Path) -> None:
    if not DATA.exists():
        sys.exit(f"data not found: {DATA}")
    out.mkdir(parents=True, exist_ok=True)
    D = loadmat(DATA, squeeze_me=True, struct_as_record=False)["D"]
    trials = [rebin_counts(d.data.T, 20) for d in D]        # 20 ms bins
    cond = np.array([str(d.condition) for d in D])
    rng = np.random.default_rng(0)
    perm = rng.permutation(len(trials))
    test_idx, train_idx = np.sort(perm[:34]), np.sort(perm[34:])
    train = [trials[i] for i in train_idx]
    test = [trials[i] for i in test_idx]
    held = split_neurons(trials[0].shape[1], 0.25, seed=0)

    model = PoissonLDS(3, 0.02)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        fit = model.fit(train, max_iter=100)
    print(f"EM: {fit.n_iter} iterations, converged={fit.converged}, {fit.seconds:.1f} s, "
          f"Laplace log p(y) = {fit.log_likelihood:.1f}")
    cs = co_smoothing(fit.params, train, test, held)
    lg = sqrt_gaussian_co_smoothing(train, test, held, 3)
    print(f"co-smoothing ({held.size} held-out neurons, {len(test)} test trials):")
    print(f"  Poisson LDS          {cs.log_likelihood:10.1f}  ({cs.bits_per_spike:.3f} bits/spike)")
    print(f"  Gaussian LDS (sqrt)  {lg.log_likelihood:10.1f}  ({lg.bits_per_spike:.3f} bits/spike)")
    print(f"  constant rate        {cs.baseline_log_likelihood:10.1f}  (0 bits/spike)")

    post = model.smooth(fit.params, trials)
    plot_latent_trajectories(post.means, cond, title="Premotor latents (Poisson LDS, d=3)"
                             ).savefig(out / "plds_premotor_latents.png", dpi=90)
    k = int(test_idx[0])
    busiest = np.argsort(trials[k].sum(0))[::-1][:3]
    plot_rates(trials[k], post.rates[k], 0.02, neurons=tuple(busiest), smooth=3,
               title=f"Trial {k}").savefig(out / "plds_premotor_rates.png", dpi=90)
    plot_objective(fit.log_likelihoods).savefig(out / "plds_premotor_objective.png", dpi=90)
    print(f"figures in {out}")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tempfile.mkdtemp()))
