"""Poisson LDS on the premotor recording (Yu et al. 2009): co-smoothing against the
constant-rate and square-root Gaussian-LDS baselines, and latent trajectories that
separate the two reach conditions. Skips when ../shared/data is absent."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest

from spikessm.data.binning import rebin_counts
from spikessm.evaluation.cosmoothing import co_smoothing, split_neurons, sqrt_gaussian_co_smoothing
from spikessm.models.plds import PoissonLDS

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "yu2009_pmd" / \
    "ex2_rawspiketrains.mat"


@pytest.fixture(scope="module")
def premotor():
    if not DATA.exists():
        pytest.skip(f"real data not available at {DATA} (a user's clone has no ../shared)")
    from scipy.io import loadmat

    D = loadmat(DATA, squeeze_me=True, struct_as_record=False)["D"]
    trials = [rebin_counts(d.data.T, 20) for d in D]          # 20 ms bins, ragged trials
    cond = np.array([str(d.condition) == "reach1" for d in D])
    return trials, cond


def test_premotor_co_smoothing_beats_baselines_and_latents_separate_conditions(premotor):
    trials, cond = premotor
    rng = np.random.default_rng(0)
    perm = rng.permutation(len(trials))
    test_idx, train_idx = np.sort(perm[:34]), np.sort(perm[34:])
    train = [trials[i] for i in train_idx]
    test = [trials[i] for i in test_idx]
    held = split_neurons(trials[0].shape[1], 0.25, seed=0)
    model = PoissonLDS(3, 0.02)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        fit = model.fit(train, max_iter=40, progress=False)
    cs = co_smoothing(fit.params, train, test, held)
    lg = sqrt_gaussian_co_smoothing(train, test, held, 3)
    assert cs.bits_per_spike > 0.1                      # beats the constant-rate model
    assert cs.log_likelihood > lg.log_likelihood        # beats the Gaussian LDS on sqrt counts
    # time-averaged latents of held-out trials separate the two reach conditions: a
    # linear discriminant fitted on training trials classifies test trials
    post_tr = model.smooth(fit.params, train)
    post_te = model.smooth(fit.params, test)
    Xtr = np.array([m.mean(0) for m in post_tr.means])
    Xte = np.array([m.mean(0) for m in post_te.means])
    ytr, yte = cond[train_idx], cond[test_idx]
    mu1, mu0 = Xtr[ytr].mean(0), Xtr[~ytr].mean(0)
    Sw = np.cov(np.r_[Xtr[ytr] - mu1, Xtr[~ytr] - mu0].T)
    w = np.linalg.solve(Sw, mu1 - mu0)
    pred = (Xte - 0.5 * (mu1 + mu0)) @ w > 0
    assert np.mean(pred == yte) >= 0.95
