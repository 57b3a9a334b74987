"""Behavioural learning curves (Smith et al. 2004; Prerau et al. 2009 reaction times)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy.special import expit, logit
from scipy.stats import norm

from spikessm.models.ssglm import learning_curve

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "compass_learning"


def simulate(seed, K=61, learn_at=25, chance=0.25, rt=False):
    """x stays at 0 (chance) until ``learn_at``, then rises to p ~ 0.9 over ~8 trials."""
    rng = np.random.default_rng(seed)
    k = np.arange(K)
    x = np.where(k >= learn_at, 3.3 * (1 - np.exp(-(k - learn_at + 1) / 4.0)), 0.0)
    p = expit(logit(chance) + x)
    correct = (rng.random(K) < p).astype(float)
    times = np.exp(6.0 - 0.15 * x + rng.normal(0, 0.15, K)) if rt else None
    return p, correct, times


def test_simulated_learning_curve_and_ideal_observer():
    hits, covered = [], []
    for seed in range(6):
        p, correct, _ = simulate(seed)
        correct[[5, 17, 40]] = np.nan  # missed trials
        res = learning_curve(correct, chance=0.25)
        assert res.converged
        assert np.all(np.diff(res.log_likelihoods) > -1e-5 * np.abs(res.log_likelihoods[:-1]))
        hits.append(res.learning_trial)
        covered.append(np.mean((res.p_lower <= p) & (p <= res.p_upper)))
        assert np.all((0 < res.p_lower) & (res.p_lower <= res.p) & (res.p <= res.p_upper))
    # learning starts at trial 25 (p above chance from there); the smoother uses later
    # trials too, so the criterion can be met a trial or two early, never long before
    assert all(h is not None and 22 <= h <= 38 for h in hits), hits
    assert np.mean(covered) >= 0.85


def test_reaction_times_sharpen_the_state():
    p, correct, times = simulate(2, rt=True)
    times[[3, 30]] = np.nan
    r0 = learning_curve(correct, chance=0.25)
    r1 = learning_curve(correct, times, chance=0.25)
    a, b, s2 = r1.rt_params
    assert b < 0  # faster responses as the state rises
    assert abs(np.sqrt(s2) - 0.15) < 0.1
    assert np.mean(r1.x_var) < np.mean(r0.x_var)  # a second observation of the same state
    assert np.all(np.isfinite(r1.rt)) and np.all(r1.rt_lower <= r1.rt)


def test_dense_reference_mode_and_variance():
    """Posterior mode and variances against a dense Newton on the whole trajectory."""
    _, correct, _ = simulate(9)  # the same shapes as the other tests (no recompilation)
    correct[[2, 33]] = np.nan
    res = learning_curve(correct, chance=0.5, max_iter=1)
    # rebuild the log joint at the returned parameters (x0, s2), P0 = s2 (tied)
    s2, x0 = res.sigma2, res.x0
    seen = ~np.isnan(correct)
    y = np.nan_to_num(correct)
    # the returned posterior is at the parameters of the last accepted EM step: the
    # mode of that posterior must satisfy the dense first-order condition
    x = res.x_mean
    K = len(x)
    D = np.eye(K) - np.eye(K, k=-1)
    prec = D.T @ D / s2
    b = np.zeros(K)
    b[0] = x0 / s2
    pk = expit(x)
    grad = seen * (y - pk) - prec @ x + b
    H = prec + np.diag(seen * pk * (1 - pk))
    assert np.max(np.abs(grad)) < 1e-6
    np.testing.assert_allclose(res.x_var, np.diag(np.linalg.inv(H)), rtol=1e-6)
    np.testing.assert_allclose(res.prob_above_chance, norm.cdf(x / np.sqrt(res.x_var)),
                               rtol=1e-10)


def test_invalid_inputs():
    with pytest.raises(ValueError, match="0, 1 or NaN"):
        learning_curve([0, 1, 2, 1])
    with pytest.raises(ValueError, match="empty"):
        learning_curve([])
    with pytest.raises(ValueError, match="reaction_times has"):
        learning_curve([0, 1, 1], [100.0, 200.0])
    with pytest.raises(ValueError, match="positive"):
        learning_curve([0, 1, 1, 0], [100.0, -1.0, 200.0, 150.0])
    with pytest.raises(ValueError, match="chance"):
        learning_curve([0, 1, 1], chance=1.0)


def test_compass_learning_real_data():
    if not (DATA / "LEARNING_1.mat").exists():
        pytest.skip(f"real data not found at {DATA}")
    from scipy.io import loadmat

    d = loadmat(DATA / "LEARNING_1.mat")
    yb, yn = d["Yb"].ravel(), d["Yn"].ravel()
    res = learning_curve(yb, yn, chance=0.5)
    assert res.converged and res.learning_trial is not None
    assert res.p[-1] > 0.8 and res.p[5] < 0.5
    # every trial from the learning trial on is credibly above chance
    assert np.all(res.prob_above_chance[res.learning_trial:] > 0.95)
    assert res.prob_above_chance[res.learning_trial - 1] <= 0.95
