"""LinearGaussianSSM.fit_restarts: restarts batched in one compiled EM loop are the
sequential fit_em fits with the same seeds (issue 8)."""

from __future__ import annotations

import numpy as np
import pytest

from spikessm import LinearGaussianSSM
from spikessm.models.lgssm import make_params
from spikessm.models.lgssm.params import PARAM_NAMES

RTOL = 1e-10


def _rot(th):
    return np.array([[np.cos(th), -np.sin(th)], [np.sin(th), np.cos(th)]])


def _sequential(model, y, seeds, **kw):
    return [model.fit_em(y, seed=s, **kw) for s in seeds]


def _assert_same_fits(seq, bat):
    assert len(seq) == len(bat)
    for a, b in zip(seq, bat):
        assert b.n_iter == a.n_iter and b.converged == a.converged and b.path == a.path
        np.testing.assert_allclose(b.log_likelihoods, a.log_likelihoods, rtol=RTOL, atol=0)
        np.testing.assert_allclose(b.log_likelihood, a.log_likelihood, rtol=RTOL, atol=0)
        for k in PARAM_NAMES:
            pa, pb = getattr(a.params, k), getattr(b.params, k)
            scale = max(np.max(np.abs(pa), initial=0.0), 1e-300)
            assert np.max(np.abs(pb - pa), initial=0.0) <= RTOL * scale, k


def _assert_monotone(fits):
    for f in fits:
        ll = f.log_likelihoods
        assert np.all(np.diff(ll) >= -1e-8 * np.abs(ll[:-1]))


@pytest.fixture(scope="module")
def data():
    """Slow dynamics, and a steady buffer (10) short enough that some restarts' steady
    covariances do not settle: those restarts run on the general path, as their own
    fit_em does, while the others stay on the steady path."""
    model = LinearGaussianSSM(2, 4)
    truth = make_params(A=0.999 * _rot(0.05),
                        C=0.3 * np.random.default_rng(0).standard_normal((4, 2)),
                        Q=0.01 * np.eye(2), R=np.eye(4))
    _, y = model.sample(truth, 60, n_trials=2, seed=1)
    return model, y


COMPLETE = dict(init="random", steady_buffer=10, progress=False)


def test_batched_equals_sequential_fixed_iterations(data):
    model, y = data
    kw = dict(COMPLETE, max_iter=12, tol=0.0)
    seeds = [1, 2, 6]
    bat = model.fit_restarts(y, seeds=seeds, **kw)
    seq = _sequential(model, y, seeds, **kw)
    assert {f.path for f in seq} == {"steady", "general"}
    _assert_same_fits(seq, bat)
    assert all(f.n_iter == 12 for f in bat)
    _assert_monotone(bat)


def test_restarts_converging_at_different_iterations(data):
    """A restart that has converged stops changing while the others go on."""
    model, y = data
    kw = dict(COMPLETE, max_iter=40, tol=1e-4)
    seeds = [0, 1, 3]
    bat = model.fit_restarts(y, seeds=seeds, **kw)
    seq = _sequential(model, y, seeds, **kw)
    assert len({f.n_iter for f in seq}) == len(seeds), [f.n_iter for f in seq]
    assert {f.converged for f in seq} == {True, False}
    _assert_same_fits(seq, bat)
    _assert_monotone(bat)


def test_missing_data_and_frozen_parameter(data):
    """NaN entries (general path; with a full R the missing values are imputed) and a
    frozen parameter, kept bitwise at each restart's own initial value."""
    model, y = data
    y = y.copy()
    y[0, 10:25, 1] = np.nan
    y[1, 40:44, :3] = np.nan
    kw = dict(init="random", max_iter=40, tol=1e-4, frozen=("Q",), progress=False)
    seeds = [1, 2, 5]
    bat = model.fit_restarts(y, seeds=seeds, **kw)
    seq = _sequential(model, y, seeds, **kw)
    assert len({f.n_iter for f in seq}) > 1, [f.n_iter for f in seq]
    _assert_same_fits(seq, bat)
    assert all(f.path == "general" for f in bat)
    batch = model._batch(y, None)
    for s, f in zip(seeds, bat):
        np.testing.assert_array_equal(f.params.Q, model._initialize(batch, "random", s).Q)
    _assert_monotone(bat)


def test_ragged_trials_with_inputs():
    model = LinearGaussianSSM(2, 3, input_dim=1)
    truth = model.random_params(seed=0)
    rng = np.random.default_rng(0)
    us = [rng.standard_normal((T, 1)) for T in (30, 45)]
    ys = [model.sample(truth, len(u), inputs=u, seed=len(u))[1] for u in us]
    kw = dict(init="random", max_iter=20, tol=1e-6, progress=False)
    bat = model.fit_restarts(ys, us, seeds=[0, 1], **kw)
    _assert_same_fits([model.fit_em(ys, us, seed=s, **kw) for s in (0, 1)], bat)


def test_degenerate_restart_raises_naming_its_seed(data):
    model, y = data
    y = y.copy()
    y[:, :, 2] = 1.0  # a constant channel: R -> 0
    with pytest.raises(FloatingPointError, match=r"EM \(seed 1\) produced a non-finite"):
        model.fit_restarts(y, seeds=[1, 2, 6], max_iter=12, tol=0.0, **COMPLETE)


def test_one_seed_is_fit_em(data):
    model, y = data
    kw = dict(COMPLETE, max_iter=5, tol=0.0)
    (one,) = model.fit_restarts(y, seeds=[4], **kw)
    ref = model.fit_em(y, seed=4, **kw)
    np.testing.assert_array_equal(one.log_likelihoods, ref.log_likelihoods)
    for k in PARAM_NAMES:
        np.testing.assert_array_equal(getattr(one.params, k), getattr(ref.params, k))


@pytest.mark.parametrize("seeds, exc, match", [
    ([], ValueError, "at least one"),
    ([0, 1, 0], ValueError, r"repeated seed\(s\) \[0\]"),
    ([0, 1.5], TypeError, r"seeds\[1\] must be an integer"),
    ([True, 2], TypeError, r"seeds\[0\] must be an integer"),
    ([0, -1], ValueError, r"seeds\[1\] must be >= 0"),
    (3, TypeError, "seeds must be a sequence"),
    ("01", TypeError, "seeds must be a sequence"),
    (None, TypeError, "seeds must be a sequence"),
])
def test_bad_seeds(data, seeds, exc, match):
    model, y = data
    with pytest.raises(exc, match=match):
        model.fit_restarts(y, seeds=seeds, progress=False)


@pytest.mark.parametrize("kw, exc, match", [
    (dict(init="pcaa"), ValueError, "init must be"),
    (dict(max_iter=0), ValueError, "max_iter"),
    (dict(max_iter=2.0), TypeError, "max_iter"),
    (dict(tol=-1.0), ValueError, "tol"),
    (dict(path="fast"), ValueError, "path"),
    (dict(frozen=("Z",)), ValueError, "frozen"),
    (dict(steady_buffer=2), ValueError, "steady_buffer"),
])
def test_bad_arguments(data, kw, exc, match):
    model, y = data
    with pytest.raises(exc, match=match):
        model.fit_restarts(y, seeds=[0, 1], progress=False, **kw)


def test_bad_observations_name_the_argument():
    model = LinearGaussianSSM(2, 3)
    with pytest.raises(ValueError, match="observations"):
        model.fit_restarts(np.full((20, 4), 1.0), seeds=[0, 1], progress=False)
