"""Input validation: bad inputs raise ValueError / TypeError naming the argument; inputs are
never modified; random shapes and NaN patterns give either finite, well-shaped results or a
clear ValueError (property-based, hypothesis)."""

from __future__ import annotations

import re

import hypothesis.extra.numpy as hnp
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from spikessm import LGSSMParams, LinearGaussianSSM, make_params

n, N = 2, 3
TMAX = 12


@pytest.fixture(scope="module")
def setup():
    rng = np.random.default_rng(0)
    model = LinearGaussianSSM(n, N)
    p = make_params(A=0.8 * np.eye(n), C=rng.standard_normal((N, n)), Q=0.2 * np.eye(n),
                    R=0.5 * np.eye(N), d=np.ones(N))
    y = model.sample(p, TMAX, seed=1)[1]  # same shapes as the hypothesis test: no recompiles
    return model, p, y


def raises(exc, *words):
    """pytest.raises whose message must contain every word (case-insensitive)."""
    pattern = "".join(f"(?=.*{re.escape(w)})" for w in words)
    return pytest.raises(exc, match=re.compile(pattern, re.IGNORECASE | re.DOTALL))


BASE = dict(A=0.5 * np.eye(n), C=np.ones((N, n)), Q=np.eye(n), R=np.eye(N))


# ---------------------------------------------------------------------------
# model construction
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("value, exc", [(0, ValueError), (-2, ValueError), (2.0, TypeError),
                                        (2.5, TypeError), ("3", TypeError), (True, TypeError),
                                        (None, TypeError)])
def test_state_dim_must_be_positive_int(value, exc):
    with raises(exc, "state_dim"):
        LinearGaussianSSM(value)


def test_other_dims_and_options_are_checked():
    with raises(ValueError, "emission_dim"):
        LinearGaussianSSM(2, 0)
    with raises(TypeError, "emission_dim"):
        LinearGaussianSSM(2, 3.0)
    with raises(ValueError, "input_dim"):
        LinearGaussianSSM(2, 3, input_dim=-1)
    with raises(ValueError, "emission_covariance", "foo"):
        LinearGaussianSSM(2, emission_covariance="foo")
    with raises(ValueError, "dynamics_covariance"):
        LinearGaussianSSM(2, dynamics_covariance="Full")
    assert LinearGaussianSSM(np.int64(2)).state_dim == 2


# ---------------------------------------------------------------------------
# make_params
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("name, value, words", [
    ("A", np.ones(2), ("A", "2-D")),
    ("A", np.ones((2, 3)), ("A", "square")),
    ("C", np.ones((N, n + 1)), ("C",)),
    ("C", np.ones(N), ("C", "2-D")),
    ("Q", np.eye(n + 1), ("Q",)),
    ("Q", np.ones(n + 1), ("Q", "length")),
    ("Q", np.ones((n, n, n)), ("Q",)),
    ("R", np.eye(N + 1), ("R",)),
    ("P0", np.eye(n + 1), ("P0",)),
    ("b", np.ones(n + 1), ("b",)),
    ("d", np.ones(N + 1), ("d",)),
    ("m0", np.ones((n, 1)), ("m0",)),
    ("B", np.ones(n), ("B", "2-D")),
    ("B", np.ones((n + 1, 2)), ("B",)),
    ("D", np.ones(N), ("D", "2-D")),
])
def test_make_params_shapes(name, value, words):
    with raises(ValueError, *words):
        make_params(**{**BASE, name: value})


def test_make_params_mismatched_inputs():
    with raises(ValueError, "D"):
        make_params(**BASE, B=np.ones((n, 2)), D=np.ones((N, 1)))
    with raises(ValueError, "input_dim"):
        make_params(**BASE, B=np.ones((n, 2)), input_dim=3)
    with raises(ValueError, "input_dim"):
        make_params(**BASE, input_dim=-1)
    p = make_params(**BASE, D=np.ones((N, 2)))  # B defaults to zeros of the same width
    assert p.B.shape == (n, 2) and p.input_dim == 2


@pytest.mark.parametrize("name", ["Q", "R", "P0"])
@pytest.mark.parametrize("kind", ["negative", "singular", "indefinite", "nonsymmetric",
                                  "nan", "inf"])
def test_make_params_rejects_bad_covariances(name, kind):
    k = n if name != "R" else N
    M = {"negative": -np.eye(k), "singular": np.ones((k, k)),
         "indefinite": np.diag([1.0] + [-0.5] * (k - 1)),
         "nonsymmetric": np.eye(k) + np.triu(np.ones((k, k)), 1),
         "nan": np.full((k, k), np.nan), "inf": np.where(np.eye(k) > 0, np.inf, 0.0)}[kind]
    with raises(ValueError, name):
        make_params(**{**BASE, name: M})
    if kind in ("negative", "singular", "indefinite"):
        with raises(ValueError, name, "positive definite"):
            make_params(**{**BASE, name: M})
    if kind == "negative":  # also as a vector of variances and as a scalar
        with raises(ValueError, name):
            make_params(**{**BASE, name: -np.ones(k)})
        with raises(ValueError, name):
            make_params(**{**BASE, name: 0.0})


@pytest.mark.parametrize("value", ["foo", 1j * np.eye(n), [[1, "a"], [0, 1]], object()])
def test_make_params_rejects_non_real(value):
    for name in ("A", "Q"):
        with raises(TypeError, name):
            make_params(**{**BASE, name: value})


def test_make_params_copies():
    A = 0.5 * np.eye(n)
    p = make_params(**{**BASE, "A": A})
    A[0, 0] = 99.0
    assert p.A[0, 0] == 0.5 and p.A.dtype == np.float64


# ---------------------------------------------------------------------------
# observations
# ---------------------------------------------------------------------------
def test_observation_shapes(setup):
    model, p, y = setup
    with raises(ValueError, "observations", "shape"):
        model.filter(p, y[None, None])  # 4-D
    with raises(ValueError, "observations", "columns"):
        model.filter(p, y[:, :2])
    with raises(ValueError, "observations[1]", "columns"):
        LinearGaussianSSM(n).filter(p, [y, y[:, :2]])
    with raises(ValueError, "observations[1]", "2-D"):
        model.filter(p, [y, y[None]])
    with raises(ValueError, "observations", "empty"):
        model.filter(p, [])
    with raises(ValueError, "observations"):
        model.filter(p, np.zeros((0, N)))
    with raises(ValueError, "observations"):
        model.filter(p, np.zeros((0, 5, N)))
    with raises(TypeError, "observations"):
        model.filter(p, "abc")
    with raises(TypeError, "observations"):
        model.filter(p, None)
    with raises(TypeError, "observations", "complex"):
        model.filter(p, y + 1j)
    with raises(TypeError, "observations", "complex"):  # a list, not an ndarray
        model.filter(p, [(y + 1j).tolist()])
    with raises(TypeError, "observations"):
        model.filter(p, [[1.0, "a", 2.0]])


@pytest.mark.parametrize("bad", [np.inf, -np.inf])
def test_infinite_observations_rejected(setup, bad):
    model, p, y = setup
    yb = y.copy()
    yb[3, 1] = bad
    for call in (lambda: model.filter(p, yb), lambda: model.log_prob(p, [y, yb]),
                 lambda: model.fit_em(yb, progress=False, max_iter=2)):
        with raises(ValueError, "observations", "inf"):
            call()


def test_channel_missing_everywhere(setup):
    model, p, y = setup
    yb = y.copy()
    yb[:, 2] = np.nan
    with raises(ValueError, "observations", "channel", "[2]"):
        model.fit_em(yb, progress=False, max_iter=2)
    with raises(ValueError, "observations", "channel"):
        model.smooth(p, [yb, yb[:5]])
    # missing everywhere in one trial only is fine (observed in another)
    assert np.isfinite(model.log_prob(p, [yb, y]))


def test_fit_em_needs_two_steps(setup):
    model, _, y = setup
    with raises(ValueError, "observations", "time steps"):
        model.fit_em(y[:1], progress=False)
    with raises(ValueError, "observations[1]", "time steps"):
        model.fit_em([y, y[:1]], progress=False)


def test_params_must_match_model(setup):
    model, p, y = setup
    with raises(TypeError, "params"):
        model.filter(p.as_dict(), y)
    with raises(ValueError, "state_dim"):
        LinearGaussianSSM(n + 1, N).filter(p, y)
    with raises(ValueError, "emission_dim"):
        LinearGaussianSSM(n).filter(make_params(**{**BASE, "C": np.ones((N + 1, n)),
                                                   "R": np.eye(N + 1)}), y)
    with raises(ValueError, "input_dim"):
        LinearGaussianSSM(n, N, input_dim=2).filter(p, y, inputs=np.ones((len(y), 2)))
    with raises(ValueError, "emission_dim"):
        LinearGaussianSSM(n, N + 1).fit_em(np.ones((10, N + 1)), params=p, progress=False)


def test_fit_em_options(setup):
    model, p, y = setup
    with raises(ValueError, "path", "foo"):
        model.fit_em(y, path="foo", progress=False)
    with raises(ValueError, "frozen", "Z"):
        model.fit_em(y, frozen=["Z"], progress=False)
    with raises(ValueError, "frozen"):
        model.fit_em(y, frozen=("A", "q"), progress=False)
    with raises(TypeError, "frozen"):
        model.fit_em(y, frozen=None, progress=False)
    with raises(ValueError, "init", "foo"):
        model.fit_em(y, init="foo", progress=False)
    with raises(ValueError, "init", "foo"):
        model.initialize(y, method="foo")
    with raises(ValueError, "max_iter"):
        model.fit_em(y, max_iter=0, progress=False)
    with raises(TypeError, "max_iter"):
        model.fit_em(y, max_iter=2.0, progress=False)
    for tol in (-1.0, float("nan"), float("inf")):
        with raises(ValueError, "tol"):
            model.fit_em(y, tol=tol, progress=False)
    with raises(ValueError, "steady_buffer"):
        model.fit_em(y, steady_buffer=2, progress=False)
    ym = y.copy()
    ym[0, 0] = np.nan
    with raises(ValueError, "path", "steady"):
        model.fit_em(ym, path="steady", progress=False)


def test_inputs_mismatched(setup):
    _, _, y = setup
    T = len(y)
    q = 1
    model = LinearGaussianSSM(n, N, input_dim=q)
    p = make_params(**BASE, B=np.ones((n, q)), D=np.ones((N, q)))
    u = np.ones((T, q))
    assert np.isfinite(model.log_prob(p, y, inputs=u))
    with raises(ValueError, "inputs", "required"):
        model.filter(p, y)
    with raises(ValueError, "inputs", "columns"):
        model.filter(p, y, inputs=np.ones((T, q + 1)))
    with raises(ValueError, "inputs", "time steps"):
        model.filter(p, y, inputs=np.ones((T - 1, q)))
    with raises(ValueError, "inputs", "trials"):
        model.filter(p, [y, y], inputs=[u])
    with raises(ValueError, "inputs", "NaN"):
        model.fit_em(y, inputs=np.full((T, q), np.nan), progress=False)
    with raises(ValueError, "inputs", "inf"):
        model.filter(p, y, inputs=np.full((T, q), np.inf))
    with raises(TypeError, "inputs"):
        model.filter(p, y, inputs="u")
    with raises(ValueError, "inputs"):  # inputs for a model without inputs
        LinearGaussianSSM(n, N).filter(make_params(**BASE), y, inputs=u)


# ---------------------------------------------------------------------------
# inputs are never modified
# ---------------------------------------------------------------------------
def _frozen_copy(a):
    a = np.array(a, copy=True)
    a.setflags(write=False)  # any in-place write inside the library would raise
    return a


def test_inputs_never_modified(setup):
    _, _, y0 = setup
    q = 1
    model = LinearGaussianSSM(n, N, input_dim=q)
    rng = np.random.default_rng(3)
    p = make_params(**BASE, B=np.ones((n, q)), D=np.ones((N, q)))
    y = y0.copy()
    y[rng.random(y.shape) < 0.2] = np.nan
    y[4] = np.nan
    u = rng.standard_normal((len(y), q))
    trials = [y, y[:7].copy()]
    u_trials = [u, u[:7].copy()]
    ref = {"y": y.copy(), "u": u.copy(), "t0": trials[0].copy(), "t1": trials[1].copy(),
           "params": {k: v.copy() for k, v in p.as_dict().items()}}
    ro_y, ro_u = _frozen_copy(y), _frozen_copy(u)
    calls = [
        lambda: model.filter(p, ro_y, inputs=ro_u),
        lambda: model.smooth(p, y, inputs=u),
        lambda: model.log_prob(p, trials, inputs=u_trials),
        lambda: model.posterior_predictive(p, ro_y, inputs=ro_u),
        lambda: model.forecast(p, y, 3, inputs=u, future_inputs=np.ones((3, q))),
        lambda: model.initialize(ro_y, inputs=ro_u),
        lambda: model.fit_em(ro_y, inputs=ro_u, params=p, max_iter=2, progress=False),
    ]
    for call in calls:
        call()
        np.testing.assert_array_equal(y, ref["y"])  # NaN positions compared as equal
        np.testing.assert_array_equal(u, ref["u"])
        np.testing.assert_array_equal(trials[0], ref["t0"])
        np.testing.assert_array_equal(trials[1], ref["t1"])
        for k, v in ref["params"].items():
            np.testing.assert_array_equal(getattr(p, k), v)
    assert isinstance(p, LGSSMParams)


# ---------------------------------------------------------------------------
# property-based: random layouts, lengths and NaN patterns
# ---------------------------------------------------------------------------
_MODEL = LinearGaussianSSM(n, N)
_PARAMS = make_params(A=0.7 * np.eye(n) + 0.1, C=np.arange(1.0, 1.0 + N * n).reshape(N, n) / 4,
                      Q=0.3 * np.eye(n), R=np.diag([0.4, 0.6, 0.8]), d=np.ones(N))


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(layout=st.sampled_from(["single", "batch", "ragged"]),
       length=st.integers(1, TMAX),
       values=hnp.arrays(np.float64, (2, TMAX, N),
                         elements=st.floats(-50, 50, allow_nan=False, allow_infinity=False)),
       missing=hnp.arrays(np.bool_, (2, TMAX, N)))
def test_random_nan_patterns_give_finite_results_or_clear_errors(layout, length, values,
                                                                 missing):
    y = np.where(missing, np.nan, values)
    if layout == "single":
        obs, lengths = y[0], [TMAX]
    elif layout == "batch":
        obs, lengths = y, [TMAX, TMAX]
    else:
        obs, lengths = [y[0], y[1, :length]], [TMAX, length]
    seen = np.zeros(N, dtype=bool)
    for k, L in enumerate(lengths):
        seen |= ~np.isnan(y[k, :L]).all(axis=0)
    if not seen.all():
        with raises(ValueError, "observations", "channel"):
            _MODEL.smooth(_PARAMS, obs)
        return
    post = _MODEL.smooth(_PARAMS, obs)
    K = len(lengths)
    if layout == "single":
        assert np.ndim(post.log_likelihood) == 0 and np.isfinite(post.log_likelihood)
        assert post.smoothed_means.shape == (TMAX, n)
        assert post.smoothed_covs.shape == (TMAX, n, n)
        means, covs = post.smoothed_means[None], post.smoothed_covs[None]
    else:
        assert post.log_likelihood.shape == (K,) and np.all(np.isfinite(post.log_likelihood))
        assert post.smoothed_means.shape == (K, TMAX, n)
        means, covs = post.smoothed_means, post.smoothed_covs
    for k, L in enumerate(lengths):
        assert np.all(np.isfinite(means[k, :L])) and np.all(np.isfinite(covs[k, :L]))
        assert np.all(np.isnan(means[k, L:]))
        assert np.linalg.eigvalsh(covs[k, :L]).min() > 0
        # each trial's log-likelihood is <= 0 contribution bounded: no observed entry, no term
        if np.isnan(y[k, :L]).all():
            ll_k = post.log_likelihood if layout == "single" else post.log_likelihood[k]
            assert ll_k == 0.0
    total = _MODEL.log_prob(_PARAMS, obs)
    assert total == pytest.approx(np.sum(post.log_likelihood), rel=1e-12, abs=1e-12)
