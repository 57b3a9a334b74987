"""Gradient-based fitting of the LG-SSM on the exact marginal log-likelihood (Adam, optax).

Covariances are optimised through unconstrained coordinates: a lower-triangular Cholesky
factor with log-diagonal ('full'), log-variances ('diagonal') or one log-variance
('isotropic'). Frozen parameters are not optimised at all and come back bitwise unchanged.
"""

from __future__ import annotations

from functools import lru_cache, partial

import jax
import jax.numpy as jnp
import numpy as np
import optax

from ...kernels import kalman as K
from .em import Data, emission_information

COV_NAMES = {"Q": "dynamics", "R": "emission", "P0": "initial"}


def cov_to_raw(M, kind: str):
    """Covariance (n, n) -> unconstrained vector/matrix for structure ``kind``."""
    if kind == "isotropic":
        return jnp.log(jnp.trace(M) / M.shape[0])
    if kind == "diagonal":
        return jnp.log(jnp.diag(M))
    Lc = jnp.linalg.cholesky(M)
    return jnp.tril(Lc, -1) + jnp.diag(jnp.log(jnp.diag(Lc)))


def raw_to_cov(raw, kind: str, n: int):
    """Inverse of :func:`cov_to_raw`."""
    if kind == "isotropic":
        return jnp.exp(raw) * jnp.eye(n, dtype=raw.dtype)
    if kind == "diagonal":
        return jnp.diag(jnp.exp(raw))
    Lc = jnp.tril(raw, -1) + jnp.diag(jnp.exp(jnp.diag(raw)))
    return Lc @ Lc.T


def log_likelihood(P, data: Data, diag: bool, missing: bool):
    """Exact marginal log-likelihood (filter only), differentiable. P: dict of arrays."""
    J, h, r = emission_information(P, data, diag, missing)
    a = P["b"] + data.u @ P["B"].T
    out = jax.vmap(K.filter_only, in_axes=(None, None, None, 0, None, 0, 0, 0))(
        P["m0"], P["P0"], P["A"], a, P["Q"], J, h, r)
    return jnp.sum(out[-1] * data.valid)


def to_raw(P: dict, kinds: dict, free: tuple) -> dict:
    return {k: cov_to_raw(P[k], kinds[k]) if k in kinds else P[k] for k in free}


def from_raw(raw: dict, fixed: dict, kinds: dict, dims: dict) -> dict:
    P = dict(fixed)
    for k, v in raw.items():
        P[k] = raw_to_cov(v, kinds[k], dims[k]) if k in kinds else v
    return P


@partial(jax.jit, static_argnames=("kinds_t", "dims_t", "diag", "missing", "opt"))
def _step(raw, opt_state, fixed, data, n_obs, kinds_t, dims_t, diag, missing, opt):
    kinds, dims = dict(kinds_t), dict(dims_t)

    def loss(rw):
        return -log_likelihood(from_raw(rw, fixed, kinds, dims), data, diag, missing) / n_obs

    val, grads = jax.value_and_grad(loss)(raw)
    updates, opt_state = opt.update(grads, opt_state, raw)
    return optax.apply_updates(raw, updates), opt_state, val


@lru_cache(maxsize=32)
def _adam(learning_rate: float):
    """One optimiser object per learning rate, so repeated fits reuse compiled steps."""
    return optax.adam(learning_rate)


def run_adam(P: dict, data: Data, n_obs: float, kinds: dict, free: tuple, diag: bool,
             missing: bool, n_steps: int, learning_rate: float, bar=None):
    """Adam on -log p(y) / n_obs. Returns (parameter dict, losses (n_steps,))."""
    dims = {k: P[k].shape[0] for k in kinds}
    fixed = {k: v for k, v in P.items() if k not in free}
    raw = to_raw(P, {k: v for k, v in kinds.items() if k in free}, free)
    kinds_f = tuple(sorted((k, v) for k, v in kinds.items() if k in free))
    dims_t = tuple(sorted(dims.items()))
    opt = _adam(float(learning_rate))
    opt_state = opt.init(raw)
    losses = np.empty(n_steps)
    for i in range(n_steps):
        raw, opt_state, val = _step(raw, opt_state, fixed, data, n_obs, kinds_f, dims_t,
                                    diag, missing, opt)
        losses[i] = float(val)
        if not np.isfinite(losses[i]):
            raise FloatingPointError(f"SGD loss became non-finite at step {i}; lower "
                                     "learning_rate")
        if bar is not None:
            bar.update(1)
            bar.set_postfix(loss=f"{losses[i]:.5f}")
    return from_raw(raw, fixed, dict(kinds_f), dims), losses
