"""EM for models whose recordings share latent dynamics (pure JAX).

Recordings are padded to common shapes and stacked on a leading recording axis ``R``:
(R, K_max, T_max, N_max). Padding carries no information: padded neurons / channels are
never observed (mask False), padded trials have ``valid`` False everywhere (their Laplace
or Kalman log-likelihood is exactly 0, they add nothing to the dynamics statistics and have
weight 0 in the initial-state update). Every parameter array also has the leading ``R``
axis; shared parameters are stored once per recording and kept equal.

One iteration: the single-recording E-step of each recording (``vmap`` over ``R``), the
dynamics statistics of each recording, then

* ``pool`` True: A, b, Q from the statistics SUMMED over recordings (the exact M-step of
  the shared model), the same values written to every recording;
* ``pool`` False: each recording's own A, b, Q (separate fits, for comparisons, in the
  same compiled code);

the initial state likewise (``pool_init``), and each recording's emission M-step (the
single-recording one). The objective is the sum of the recordings' objectives (Laplace
log-likelihood for the Poisson LDS / hybrid, exact marginal log-likelihood for the
LG-SSM). ``pool`` and ``pool_init`` are traced booleans: switching them never recompiles.
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp

from ..lgssm import em as LG
from ..plds import em as E

CHUNK = E.CHUNK


def _first(tree):
    return jax.tree_util.tree_map(lambda a: a[0], tree)


def update_dynamics(P, st: LG.Stats, pool, solve):
    """(A, b, ...) of every recording: ``solve(P_r, stats)`` on the pooled statistics
    (sum over recordings) when ``pool``, else per recording. Arrays (R, ...)."""
    sep = jax.vmap(solve)(P, st)
    pooled = solve(_first(P), jax.tree_util.tree_map(lambda a: jnp.sum(a, 0), st))
    return tuple(jnp.where(pool, jnp.broadcast_to(p, s.shape), s) for p, s in zip(pooled, sep))


def update_initial(P, mu0, S0, w, pool):
    """m0 (R, d), P0 (R, d, d) from first-step means mu0 (R, K, d), weighted covariance
    sums S0 (R, d, d) and trial weights w (R, K). P0 is kept where a single trial informs
    it (not identifiable from one trial)."""
    R, Kn, d = mu0.shape
    m_s, P_s = jax.vmap(lambda P_, m, S, w_: LG.mstep_initial(P_, m, S, (), w_))(P, mu0, S0, w)
    P_s = jnp.where((jnp.sum(w, 1) <= 1)[:, None, None], P["P0"], P_s)
    m_p, P_p = LG.mstep_initial(_first(P), mu0.reshape(R * Kn, d), jnp.sum(S0, 0), (),
                                w.reshape(-1))
    P_p = jnp.where(jnp.sum(w) <= 1, P["P0"][0], P_p)
    m0 = jnp.where(pool, jnp.broadcast_to(m_p, m_s.shape), m_s)
    return m0, jnp.where(pool, jnp.broadcast_to(P_p, P_s.shape), P_s)


# ------------------------------------------------------------------------------------
# Poisson LDS / hybrid
# ------------------------------------------------------------------------------------
def plds_estep(P, data: E.PData, x, dt, newton_tol, s: E.Settings):
    """Laplace E-step of every recording (LaplaceResult with leading (R, K) axes)."""
    return jax.vmap(lambda P_, d_, x_: E.estep(P_, d_, x_, dt, diag=s.diag,
                                               newton_iters=s.newton_iters,
                                               newton_tol=newton_tol))(P, data, x)


def plds_step(P, data: E.PData, x, dt, ridge, newton_tol, pool, pool_init, s: E.Settings):
    """One shared-dynamics Laplace EM iteration. Returns (new P, modes, objective of P)."""
    x0 = x if s.warm_start else jnp.zeros_like(x)
    res = plds_estep(P, data, x0, dt, newton_tol, s)
    mu, S, X = res.mode, res.posterior.smoothed_covs, res.posterior.cross_covs
    st = jax.vmap(E.dynamics_statistics)(mu, S, X, data.valid)
    new = dict(P)
    new["A"], new["b"], new["Q"] = update_dynamics(
        P, st, pool, lambda P_, st_: E.mstep_dynamics(P_, st_, ridge))
    w = data.valid[:, :, 0].astype(mu.dtype)
    S0 = jnp.einsum("rk,rkij->rij", w, S[:, :, 0])
    new["m0"], new["P0"] = update_initial(P, mu[:, :, 0], S0, w, pool_init)
    new.update(jax.vmap(lambda P_, d_, m_, S_: E.mstep_emissions(P_, d_, m_, S_, dt, s))(
        P, data, mu, S))
    return new, mu, jnp.sum(res.log_likelihood)


def _plds_chunk(P, data, x, n_run, prev_ll, tol, dt, ridge, newton_tol, pool, pool_init, s):
    step = partial(plds_step, data=data, dt=dt, ridge=ridge, newton_tol=newton_tol,
                   pool=pool, pool_init=pool_init, s=s)
    return E.em_loop(lambda P_, x_: step(P_, x=x_), P, x, n_run,
                     jnp.asarray(prev_ll, data.y.dtype), tol)


@partial(jax.jit, static_argnames=("s", "batched"))
def plds_chunk(P, data: E.PData, x, n_run, prev_ll, tol, dt, ridge, newton_tol, pool,
               pool_init, *, s: E.Settings, batched: bool):
    """Up to ``n_run`` shared EM iterations in one compiled loop (``batched``: leading
    restart axis on P, x, prev_ll). Returns as :func:`spikessm.models.plds.em.em_loop`."""
    args = (n_run, prev_ll, tol, dt, ridge, newton_tol, pool, pool_init, s)
    if batched:
        return jax.vmap(lambda P_, x_, pl: _plds_chunk(P_, data, x_, n_run, pl, *args[2:]))(
            P, x, prev_ll)
    return _plds_chunk(P, data, x, *args)


@partial(jax.jit, static_argnames=("s",))
def plds_posterior(P, data: E.PData, x, dt, newton_tol, *, s: E.Settings):
    """Laplace posterior of every recording at fixed parameters."""
    return plds_estep(P, data, x, dt, newton_tol, s)


@jax.jit
def poisson_loadings(data: E.PData, mu, S, W, dt):
    """Every recording's (C, W) by the exact Poisson M-step from C = 0, given latent
    means (R, K, T, d) and covariances (initialisation)."""
    d = mu.shape[-1]
    C, W, _ = jax.vmap(lambda d_, m_, S_, W_: E.mstep_poisson(
        jnp.zeros((W_.shape[0], d), mu.dtype), W_, d_, m_, S_, dt))(data, mu, S, W)
    return C, W


# ------------------------------------------------------------------------------------
# linear-Gaussian SSM (diagonal R; padded channels are missing entries)
# ------------------------------------------------------------------------------------
def lg_step(P, data: LG.Data, sums: LG.DataSums, pool, pool_init, ridge):
    """One exact shared-dynamics EM iteration. Returns (new P, marginal LL of P)."""
    st = jax.vmap(lambda P_, d_, s_: LG.estep_general(P_, d_, s_, diag=True, missing=True))(
        P, data, sums)
    new = dict(P)
    new["A"], new["b"], new["B"], new["Q"] = update_dynamics(
        P, st, pool, lambda P_, st_: LG.mstep_dynamics(P_, st_, (), "full", ridge))
    w = data.valid[:, :, 0].astype(st.mu0.dtype)
    new["m0"], new["P0"] = update_initial(P, st.mu0, st.S0, w, pool_init)
    new["C"], new["d"], new["D"], new["R"] = jax.vmap(
        lambda P_, st_: LG.mstep_emission(P_, st_, (), "diagonal", True))(P, st)
    return new, jnp.sum(st.ll)


def _lg_chunk(P, data, sums, n_run, prev_ll, tol, pool, pool_init, ridge):
    def step(P_, x_):
        new, ll = lg_step(P_, data, sums, pool, pool_init, ridge)
        return new, x_, ll

    return E.em_loop(step, P, jnp.zeros((), data.y.dtype), n_run,
                     jnp.asarray(prev_ll, data.y.dtype), tol)


@partial(jax.jit, static_argnames=("batched",))
def lg_chunk(P, data: LG.Data, sums: LG.DataSums, n_run, prev_ll, tol, pool, pool_init,
             ridge, *, batched: bool):
    """Up to ``n_run`` exact shared EM iterations of the LG-SSM in one compiled loop."""
    if batched:
        return jax.vmap(lambda P_, pl: _lg_chunk(P_, data, sums, n_run, pl, tol, pool,
                                                 pool_init, ridge))(P, prev_ll)
    return _lg_chunk(P, data, sums, n_run, prev_ll, tol, pool, pool_init, ridge)


@jax.jit
def lg_posterior(P, data: LG.Data):
    """Kalman smoother of every recording (Posterior with leading (R, K) axes) and the
    per-recording marginal log-likelihoods (R,)."""
    post = jax.vmap(lambda P_, d_: LG.posterior_general(P_, d_, diag=True, missing=True))(
        P, data)
    ll = jnp.sum(post.log_likelihoods * data.valid, axis=(1, 2))
    return post, ll


data_sums = jax.jit(jax.vmap(LG.data_sums))
