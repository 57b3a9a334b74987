"""Tests for spikessm.kernels.parallel: the associative-scan filter/smoother must reproduce
the sequential information-form filter/smoother of spikessm.kernels.kalman exactly."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from spikessm.kernels.kalman import (
    Posterior,
    filter_smooth,
    gaussian_information,
    gaussian_information_full,
)
from spikessm.kernels.parallel import parallel_filter_smooth

RTOL = 1e-8


# ---------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------
def _spd(rng, d, lo=0.2, hi=1.5):
    U, _ = np.linalg.qr(rng.standard_normal((d, d)))
    return (U * rng.uniform(lo, hi, size=d)) @ U.T


def _stable(rng, d, rho=0.95):
    A = rng.standard_normal((d, d))
    return A * (rho / np.max(np.abs(np.linalg.eigvals(A))))


def _model(rng, d, N, T, *, time_varying, p_miss=0.3, diagonal=True, full=False):
    """Random stable LDS with Gaussian emissions projected to information form."""
    if time_varying:
        F = np.stack([_stable(rng, d, rng.uniform(0.5, 0.99)) for _ in range(T)])
        Q = np.stack([_spd(rng, d) for _ in range(T)])
    else:
        F, Q = _stable(rng, d), _spd(rng, d)
    C = rng.standard_normal((N, d))
    R = rng.uniform(0.3, 2.0, N) if diagonal else _spd(rng, N, 0.3, 2.0)
    a = rng.standard_normal((T, d)) * 0.3
    m0, P0 = rng.standard_normal(d), _spd(rng, d, 0.5, 3.0)
    # simulate so the data are plausible under the model
    x = np.empty((T, d))
    x[0] = m0 + np.linalg.cholesky(P0) @ rng.standard_normal(d)
    for t in range(1, T):
        Ft = F[t] if time_varying else F
        Qt = Q[t] if time_varying else Q
        x[t] = Ft @ x[t - 1] + a[t] + np.linalg.cholesky(Qt) @ rng.standard_normal(d)
    Rm = np.diag(R) if diagonal else R
    y = x @ C.T + rng.standard_normal((T, N)) @ np.linalg.cholesky(Rm).T
    if full:
        J, h, r = gaussian_information_full(jnp.asarray(y), jnp.asarray(C), jnp.asarray(R),
                                            diagonal=diagonal)
    else:
        mask = rng.random((T, N)) > p_miss
        # fully missing steps, including (when long enough) the first and last ones
        n_gap = max(1, T // 10)
        mask[rng.choice(T, size=min(n_gap, T), replace=False)] = False
        if T > 3:
            mask[0] = False
            mask[-1] = False
        y = np.where(mask, y, 1e6)  # garbage where unobserved: must be ignored
        J, h, r = gaussian_information(jnp.asarray(y), jnp.asarray(mask), jnp.asarray(C),
                                       jnp.asarray(R), diagonal=diagonal)
    return tuple(jnp.asarray(v) for v in (m0, P0, F, a, Q)) + (J, h, r)


def _rel_errs(p: Posterior, q: Posterior):
    """Max abs error of each field relative to the reference field's max magnitude."""
    out = {}
    for name in Posterior._fields:
        x, y = np.asarray(getattr(p, name)), np.asarray(getattr(q, name))
        assert x.shape == y.shape, name
        assert np.all(np.isfinite(x)), name
        out[name] = float(np.max(np.abs(x - y)) / max(np.max(np.abs(y)), 1e-300))
    return out


def _assert_same(p, q, rtol=RTOL):
    errs = _rel_errs(p, q)
    bad = {k: v for k, v in errs.items() if not v <= rtol}
    assert not bad, bad
    ll_p = float(np.sum(np.asarray(p.log_likelihoods)))
    ll_q = float(np.sum(np.asarray(q.log_likelihoods)))
    assert abs(ll_p - ll_q) <= rtol * max(1.0, abs(ll_q))
    return errs


# ---------------------------------------------------------------------------
# agreement with the sequential kernel
# ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    "d, N, T, time_varying, diagonal",
    [
        (1, 3, 2000, False, True),
        (2, 5, 700, True, True),
        (3, 1, 300, False, True),  # rank-deficient J (N < d)
        (4, 6, 2000, False, False),  # full R
        (4, 3, 500, True, False),
    ],
)
def test_matches_sequential(d, N, T, time_varying, diagonal):
    with jax.enable_x64(True):
        rng = np.random.default_rng(1000 * d + T)
        args = _model(rng, d, N, T, time_varying=time_varying, diagonal=diagonal)
        ref = filter_smooth(*args)
        out = parallel_filter_smooth(*args)
        _assert_same(out, ref)
        assert np.all(np.asarray(out.cross_covs[0]) == 0.0)


def test_shared_J_fully_observed():
    """J given as one (d, d) matrix (gaussian_information_full)."""
    with jax.enable_x64(True):
        rng = np.random.default_rng(7)
        args = _model(rng, 3, 8, 400, time_varying=False, full=True)
        assert args[5].ndim == 2
        _assert_same(parallel_filter_smooth(*args), filter_smooth(*args))


def test_all_missing_is_prior_propagation():
    with jax.enable_x64(True):
        rng = np.random.default_rng(3)
        args = list(_model(rng, 2, 4, 60, time_varying=True))
        T, d = args[6].shape
        args[5] = jnp.zeros((T, d, d))
        args[6] = jnp.zeros((T, d))
        args[7] = jnp.zeros((T,))
        out = parallel_filter_smooth(*args)
        _assert_same(out, filter_smooth(*args))
        np.testing.assert_allclose(np.asarray(out.log_likelihoods), 0.0, atol=1e-12)
        np.testing.assert_allclose(np.asarray(out.smoothed_means),
                                   np.asarray(out.filtered_means), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("T", [1, 2, 3])
@pytest.mark.parametrize("time_varying", [False, True])
def test_short_sequences(T, time_varying):
    with jax.enable_x64(True):
        rng = np.random.default_rng(10 + T)
        args = _model(rng, 3, 4, T, time_varying=time_varying, p_miss=0.2)
        out = parallel_filter_smooth(*args)
        _assert_same(out, filter_smooth(*args))
        assert out.smoothed_means.shape == (T, 3)
        assert out.cross_covs.shape == (T, 3, 3)


# ---------------------------------------------------------------------------
# transformations
# ---------------------------------------------------------------------------
def test_jit_and_vmap_over_trials():
    with jax.enable_x64(True):
        rng = np.random.default_rng(42)
        d, N, T, B = 3, 5, 256, 4
        trials = [_model(rng, d, N, T, time_varying=False) for _ in range(B)]
        # share the parameters of trial 0, keep each trial's data and initial mean
        m0s = jnp.stack([tr[0] for tr in trials])
        P0, F, Q = trials[0][1], trials[0][2], trials[0][4]
        a = jnp.stack([tr[3] for tr in trials])
        J = jnp.stack([tr[5] for tr in trials])
        h = jnp.stack([tr[6] for tr in trials])
        r = jnp.stack([tr[7] for tr in trials])
        in_axes = (0, None, None, 0, None, 0, 0, 0)
        par = jax.jit(jax.vmap(parallel_filter_smooth, in_axes=in_axes))(m0s, P0, F, a, Q, J, h, r)
        seq = jax.vmap(filter_smooth, in_axes=in_axes)(m0s, P0, F, a, Q, J, h, r)
        assert par.smoothed_covs.shape == (B, T, d, d)
        _assert_same(par, seq)
        # the jitted single-trial call agrees too
        one = jax.jit(parallel_filter_smooth)(m0s[1], P0, F, a[1], Q, J[1], h[1], r[1])
        _assert_same(one, jax.tree_util.tree_map(lambda x: x[1], seq))
