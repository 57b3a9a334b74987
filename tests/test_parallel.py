"""Tests for spikessm.kernels.parallel: the associative-scan filter/smoother must reproduce
the sequential information-form filter/smoother of spikessm.kernels.kalman.

XLA compile time of ``associative_scan`` grows with the number of levels (~2 log2 T) and
dominates the run time of these tests, so each distinct (T, d, layout) is compiled once
through module-level jitted functions, with backend optimisation off (it changes compile
time only, not the floating-point semantics).
"""

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
_FAST_COMPILE = {"xla_backend_optimization_level": 0}
_par = jax.jit(parallel_filter_smooth, compiler_options=_FAST_COMPILE)
_seq = jax.jit(filter_smooth, compiler_options=_FAST_COMPILE)


# ---------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------
def _spd(rng, d, lo=0.2, hi=1.5, n=None):
    """Random SPD matrix (d, d), or a stack (n, d, d), with eigenvalues in [lo, hi]."""
    shape = () if n is None else (n,)
    U, _ = np.linalg.qr(rng.standard_normal(shape + (d, d)))
    return (U * rng.uniform(lo, hi, size=shape + (1, d))) @ np.swapaxes(U, -1, -2)


def _stable(rng, d, rho, n=None):
    """Random matrix (d, d), or a stack (n, d, d), with spectral radius ``rho``."""
    shape = () if n is None else (n,)
    A = rng.standard_normal(shape + (d, d))
    rad = np.max(np.abs(np.linalg.eigvals(A)), axis=-1)
    return A * (np.asarray(rho) / rad)[..., None, None]


def _model(rng, d, N, T, *, time_varying, p_miss=0.3, diagonal=True, full=False):
    """Random stable LDS with Gaussian emissions, projected to information form.

    Returns (m0, P0, F, a, Q, J, h, r) as float64 jax arrays. With ``full`` the data are
    fully observed and J is one shared (d, d) matrix; otherwise entries are missing at
    random, with some fully missing steps (the first and last ones included when T > 3).
    """
    if time_varying:
        F = _stable(rng, d, rng.uniform(0.5, 0.99, T), n=T)
        Q = _spd(rng, d, n=T)
    else:
        F, Q = _stable(rng, d, 0.95), _spd(rng, d)
    a = rng.standard_normal((T, d)) * 0.3
    m0, P0 = rng.standard_normal(d), _spd(rng, d, 0.5, 3.0)
    Fs, Qs = np.broadcast_to(F, (T, d, d)), np.broadcast_to(Q, (T, d, d))
    w = (np.linalg.cholesky(Qs) @ rng.standard_normal((T, d, 1)))[..., 0]
    x = np.empty((T, d))
    x[0] = m0 + np.linalg.cholesky(P0) @ rng.standard_normal(d)
    for t in range(1, T):
        x[t] = Fs[t] @ x[t - 1] + a[t] + w[t]
    C = rng.standard_normal((N, d))
    R = rng.uniform(0.3, 2.0, N) if diagonal else _spd(rng, N, 0.3, 2.0)
    Rm = np.diag(R) if diagonal else R
    y = x @ C.T + rng.standard_normal((T, N)) @ np.linalg.cholesky(Rm).T
    C_, R_ = jnp.asarray(C), jnp.asarray(R)
    if full:
        J, h, r = gaussian_information_full(jnp.asarray(y), C_, R_, diagonal=diagonal)
    else:
        mask = rng.random((T, N)) > p_miss
        mask[rng.choice(T, size=max(1, T // 10), replace=False)] = False
        if T > 3:
            mask[0] = mask[-1] = False
        y = np.where(mask, y, 1e6)  # garbage where unobserved: must be ignored
        J, h, r = gaussian_information(jnp.asarray(y), jnp.asarray(mask), C_, R_, diagonal=diagonal)
    return tuple(jnp.asarray(v) for v in (m0, P0, F, a, Q)) + (J, h, r)


def _assert_same(p: Posterior, q: Posterior, rtol=RTOL):
    """Every field equal to ``rtol`` relative to the reference field's magnitude; LL sums
    equal. Returns the per-field relative errors."""
    errs = {}
    for name in Posterior._fields:
        x, y = np.asarray(getattr(p, name)), np.asarray(getattr(q, name))
        assert x.shape == y.shape, name
        assert np.all(np.isfinite(x)), name
        errs[name] = float(np.max(np.abs(x - y)) / max(np.max(np.abs(y)), 1e-300))
    bad = {k: v for k, v in errs.items() if not v <= rtol}
    assert not bad, bad
    ll_p = np.sum(np.asarray(p.log_likelihoods), axis=-1)
    ll_q = np.sum(np.asarray(q.log_likelihoods), axis=-1)
    np.testing.assert_allclose(ll_p, ll_q, rtol=rtol, atol=rtol)
    return errs


# ---------------------------------------------------------------------------
# agreement with the sequential kernel
# ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    "T, d, N, time_varying, kind",
    [
        (1, 1, 3, False, "diag_R"),  # T = 1: no dynamics step, no smoothing step
        (2, 2, 4, True, "full_R"),  # T = 2: one level in each scan
        (7, 4, 3, False, "shared_J"),  # one J (d, d) for all steps, rank 3 < d
    ],
)
def test_matches_sequential(T, d, N, time_varying, kind):
    with jax.enable_x64(True):
        rng = np.random.default_rng(10 * T + d)
        args = _model(
            rng, d, N, T, time_varying=time_varying, p_miss=0.2,
            diagonal=kind != "full_R", full=kind == "shared_J",
        )  # fmt: skip
        assert args[2].ndim == (3 if time_varying else 2)
        assert args[5].ndim == (2 if kind == "shared_J" else 3)
        out = _par(*args)
        _assert_same(out, _seq(*args))
        assert out.smoothed_means.shape == (T, d)
        assert out.cross_covs.shape == (T, d, d)
        assert np.all(np.asarray(out.cross_covs[0]) == 0.0)
        # the last smoothed moments are the filtered ones
        np.testing.assert_allclose(out.smoothed_covs[-1], out.filtered_covs[-1], rtol=1e-12)


def test_long_trials_jit_vmap():
    """T = 2000, d = 3, jit(vmap) over three trials with their own (T, d, d) F and Q
    (time-invariant values; time-varying; time-varying with no observation at all, where
    the posterior is the prior propagated and the LL terms are 0)."""
    with jax.enable_x64(True):
        rng = np.random.default_rng(2000)
        d, T = 3, 2000
        ti = _model(rng, d, 4, T, time_varying=False)
        tile = lambda M: jnp.broadcast_to(M, (T, d, d))
        trials = [
            ti[:2] + (tile(ti[2]), ti[3], tile(ti[4])) + ti[5:],
            _model(rng, d, 4, T, time_varying=True),
            _model(rng, d, 4, T, time_varying=True),
        ]
        m0, P0, F, a, Q, J, h, r = (jnp.stack([tr[i] for tr in trials]) for i in range(8))
        J, h, r = J.at[2].set(0.0), h.at[2].set(0.0), r.at[2].set(0.0)
        args = (m0, P0, F, a, Q, J, h, r)
        par = jax.jit(jax.vmap(parallel_filter_smooth), compiler_options=_FAST_COMPILE)(*args)
        seq = jax.jit(jax.vmap(filter_smooth), compiler_options=_FAST_COMPILE)(*args)
        assert par.smoothed_covs.shape == (3, T, d, d)
        errs = _assert_same(par, seq)
        print("max relative errors:", errs)
        np.testing.assert_allclose(np.asarray(par.log_likelihoods[2]), 0.0, atol=1e-12)
        np.testing.assert_allclose(
            np.asarray(par.smoothed_means[2]), np.asarray(par.filtered_means[2]), atol=1e-10
        )
