"""nSTAT-compatible entry points, restarts selected by held-out score, state-dim sweep."""

from __future__ import annotations

import dataclasses
import warnings

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

import spikessm  # noqa: E402
from spikessm.models.plds import PoissonLDS, make_plds_params  # noqa: E402
from spikessm.plotting.plds import plot_state_dim_sweep  # noqa: E402


def _rot(th):
    return np.array([[np.cos(th), -np.sin(th)], [np.sin(th), np.cos(th)]])


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(4)
    p = make_plds_params(A=0.97 * _rot(0.12), Q=0.02 * np.eye(2), C=rng.normal(0, 0.5, (10, 2)),
                         d=np.full(10, np.log(12.0)), bin_width=0.02)
    _, y, _ = PoissonLDS(2, 0.02).sample(p, 300, n_trials=4, seed=5)
    return p, y


def test_compat_fit_equals_model_fit(data):
    p, y = data
    r = spikessm.fit_point_process_em(y, 2, n_iter=5, seed=1, bin_width=0.02)
    f = PoissonLDS(2, 0.02).fit(y, init="random", seed=1, max_iter=5, progress=False)
    np.testing.assert_allclose(r.transition_matrix, f.params.A, atol=1e-12)
    np.testing.assert_allclose(r.observation_matrix, f.params.C, atol=1e-12)
    np.testing.assert_allclose(r.baseline, f.params.d, atol=1e-12)
    np.testing.assert_allclose(r.log_likelihoods, f.log_likelihoods)
    assert r.n_iter == f.n_iter and r.bin_width == 0.02
    with pytest.raises(dataclasses.FrozenInstanceError):
        r.n_iter = 3


@pytest.mark.parametrize("holdout", ["time", "trials", "neurons"])
def test_best_of_selects_the_best_held_out_score(data, holdout):
    p, y = data
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        r = spikessm.fit_point_process_em_best_of(y, 2, n_restarts=3, holdout=holdout,
                                                  n_iter=8, bin_width=0.02, seed=2,
                                                  n_samples=200)
    assert r.all_seeds.tolist() == [2, 3, 4]
    assert np.all(np.isfinite(r.all_predictive_lls))
    assert r.best_predictive_ll == np.max(r.all_predictive_lls)
    assert r.best_seed == r.all_seeds[np.argmax(r.all_predictive_lls)]
    best = r.all_results[int(np.argmax(r.all_predictive_lls))]
    np.testing.assert_array_equal(r.best_result.transition_matrix, best.transition_matrix)
    if holdout == "time":  # scores are one-step-ahead log-likelihoods of the held-out bins:
        base = spikessm.constant_rate_predictive_ll(    # better than a constant rate
            [t[:240] for t in y], [t[240:] for t in y], 0.02)
        assert r.best_predictive_ll > base.total


def test_weak_observability_best_of_never_collapses():
    """d=2, N=5, loadings 0.3: the selected fit keeps slow dynamics on every seed."""
    A = 0.98 * _rot(0.1)
    for s in range(3):
        rng = np.random.default_rng(100 + s)
        p = make_plds_params(A=A, Q=0.01 * np.eye(2), C=rng.normal(0, 0.3, (5, 2)),
                             d=np.full(5, np.log(10.0)), bin_width=0.02)
        _, y, _ = PoissonLDS(2, 0.02).sample(p, 1500, seed=s)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            r = spikessm.fit_point_process_em_best_of(y, 2, n_restarts=4, n_iter=20,
                                                      bin_width=0.02, seed=s, n_samples=200)
        assert np.max(np.abs(np.linalg.eigvals(r.best_result.transition_matrix))) >= 0.5


def test_hybrid_best_of_and_sweep(data):
    p, y = data
    rng = np.random.default_rng(0)
    g = rng.normal(size=y.shape[:2] + (2,))
    r = spikessm.fit_hybrid_em_best_of(y, g, 2, n_restarts=2, n_iter=4, bin_width=0.02,
                                       holdout="trials", n_samples=100)
    assert r.best_result.gaussian_observation_matrix.shape == (2, 2)
    sweep = spikessm.select_state_dim(y, [1, 2], n_restarts=2, n_iter=5, bin_width=0.02,
                                      n_samples=100)
    assert sweep.scores.shape == (2, 2)
    assert sweep.best_state_dim in (1, 2)
    rows = sweep.table()
    assert [row["state_dim"] for row in rows] == [1, 2]
    fig = plot_state_dim_sweep(sweep.state_dims, sweep.scores)
    assert fig.axes


def test_best_of_bad_arguments(data):
    p, y = data
    with pytest.raises(ValueError, match="holdout"):
        spikessm.fit_point_process_em_best_of(y, 2, holdout="random")
    with pytest.raises(ValueError, match="holdout_fraction"):
        spikessm.fit_point_process_em_best_of(y, 2, holdout_fraction=1.5)
    with pytest.raises(ValueError, match="n_restarts"):
        spikessm.fit_point_process_em_best_of(y, 2, n_restarts=0)
    with pytest.raises(ValueError, match="2 trials"):
        spikessm.fit_point_process_em_best_of(y[0], 2, holdout="trials")
    with pytest.raises(ValueError, match="gaussian"):
        spikessm.fit_hybrid_em_best_of(y, None, 2)


def test_screened_restarts_continue_only_the_best(data):
    """Short-run screening (em-EM): the restarts are the plain short fits, the best of them
    by held-out score is the one run on, and nothing else changes."""
    p, y = data
    kw = dict(n_restarts=3, bin_width=0.02, seed=2, n_samples=200)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        short = spikessm.fit_point_process_em_best_of(y, 2, n_iter=3, **kw)
        same = spikessm.fit_point_process_em_best_of(y, 2, n_iter=3, screen_iter=5, **kw)
        scr = spikessm.fit_point_process_em_best_of(y, 2, n_iter=8, screen_iter=3, **kw)
    # screen_iter >= n_iter: no screening, the same fits and scores
    np.testing.assert_array_equal(same.all_predictive_lls, short.all_predictive_lls)
    best = int(np.argmax(short.all_predictive_lls))
    assert scr.best_seed == short.all_seeds[best]
    for r in range(3):
        a, b = scr.all_results[r], short.all_results[r]
        if r != best:   # reported as screened: identical to the plain 3-iteration fits
            assert scr.all_predictive_lls[r] == short.all_predictive_lls[r]
            np.testing.assert_array_equal(a.transition_matrix, b.transition_matrix)
            assert a.n_iter == b.n_iter <= 3
    run_on = scr.all_results[best]
    assert run_on is scr.best_result
    assert 3 < run_on.n_iter <= 8
    np.testing.assert_array_equal(run_on.log_likelihoods[:3],
                                  short.all_results[best].log_likelihoods)
    assert scr.best_predictive_ll == scr.all_predictive_lls[best]
    # EM went on improving the training objective after the screening
    assert run_on.log_likelihoods[-1] > short.all_results[best].log_likelihoods[-1]


@pytest.mark.parametrize("bad", [0, -1, 2.5, "3", True])
def test_screen_iter_is_checked(data, bad):
    _, y = data
    with pytest.raises((ValueError, TypeError), match="screen_iter"):
        spikessm.fit_point_process_em_best_of(y, 2, n_iter=4, screen_iter=bad, bin_width=0.02)
