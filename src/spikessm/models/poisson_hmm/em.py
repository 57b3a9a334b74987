"""E-step, exact M-step and the expected complete-data log-likelihood of the Poisson HMM
(pure JAX, compiled once per padded data shape).

Data live on the device time-major with trials minor (see :mod:`spikessm.kernels.hmm`):
``Y2 (T, 2C, n)`` holds the counts (zero where missing or padded) next to the observed
mask, so that every emission log-likelihood of a batch is one fused multiply-add pass

    log p(y_t | z_t = k) = sum_c m_tc [y_tc log(rate_kc dt) - rate_kc dt - log y_tc!],

with the data-only term ``-sum log y!`` precomputed once per trial (``const``). A missing
bin (all channels NaN) therefore contributes nothing to the likelihood; a partly missing
bin contributes its observed channels only.

Everything that is a parameter of the data or the model but not a shape (dt, masks,
priors) is a traced argument, so changing it never recompiles.
"""

from __future__ import annotations

from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax.scipy.special import xlogy

from ...kernels import hmm as H

# log(rate * dt) is evaluated as log(max(rate * dt, TINY)) so that a rate of exactly zero
# (the maximum-likelihood rate of a channel that never fires in a state) gives 0 * log 0 = 0
# for empty bins and a log-probability of about -690 per spike otherwise, never NaN.
TINY = 1e-300
CHUNK = 20  # EM iterations per compiled call (fixed, so max_iter never triggers a compile)


class Data(NamedTuple):
    """Y2 (T, 2C, n) = [counts (0 where missing/padded), observed mask]; valid (T, n);
    const (n,) = -sum over observed entries of log(y!)."""

    Y2: jax.Array
    valid: jax.Array
    const: jax.Array


class Config(NamedTuple):
    """Traced model settings: dt (), trans_mask (K, K) bool, init_mask (K,) bool,
    Dirichlet concentrations init_conc (K,), trans_conc (K, K), Gamma prior on the rates
    rate_shape (K, C), rate_rate (K, C) (in seconds). No prior = concentration/shape 1
    and rate 0."""

    dt: jax.Array
    trans_mask: jax.Array
    init_mask: jax.Array
    init_conc: jax.Array
    trans_conc: jax.Array
    rate_shape: jax.Array
    rate_rate: jax.Array


class Stats(NamedTuple):
    """Expected sufficient statistics summed over trials and time: g0 (K,) = sum of
    p(z_0 | y); xi (K, K) expected transition counts; Sy (K, C) = sum gamma y;
    Sn (K, C) = sum gamma * observed; ll () data log-likelihood; ll_trials (n,);
    n_clipped: clipped emission entries (see :mod:`spikessm.kernels.hmm`)."""

    g0: jax.Array
    xi: jax.Array
    Sy: jax.Array
    Sn: jax.Array
    ll: jax.Array
    ll_trials: jax.Array
    n_clipped: jax.Array


def log_obs(P, data: Data, dt):
    """(T, K, n) emission log-likelihoods without the -log y! term."""
    rdt = P["rates"] * dt
    W = jnp.concatenate([jnp.log(jnp.maximum(rdt, TINY)), -rdt], axis=1)  # (K, 2C)
    Y = data.Y2
    # a sum of 2C broadcast products: fused by XLA, ~5x faster on CPU than a dot here
    return sum(W[None, :, c, None] * Y[:, c, None, :] for c in range(W.shape[1]))


def _log(x):
    return jnp.log(x)  # log 0 = -inf marks a structural zero


def log_likelihoods(P, data: Data, dt):
    """Exact log p(y) per trial (n,) (forward pass only) and the number of clipped
    emission entries (see :mod:`spikessm.kernels.hmm`)."""
    _, ll, n_clip, _ = H.forward(_log(P["init"]), P["trans"], log_obs(P, data, dt),
                                 data.valid)
    return ll + data.const, n_clip


def posterior(P, data: Data, dt) -> H.Posterior:
    return H.forward_backward(_log(P["init"]), P["trans"], log_obs(P, data, dt), data.valid)


def posterior_log(P, data: Data, dt) -> H.Posterior:
    """Same as :func:`posterior` with the reference log-space kernel."""
    return H.forward_backward_log(_log(P["init"]), P["trans"], log_obs(P, data, dt),
                                  data.valid)


def estep(P, data: Data, dt) -> tuple[Stats, H.Posterior]:
    post = posterior(P, data, dt)
    g = post.gammas
    S = jnp.sum(g[:, :, None, :] * data.Y2[:, None], axis=(0, 3))  # (K, 2C), fused
    C = S.shape[1] // 2
    ll_trials = post.log_likelihoods + data.const
    st = Stats(jnp.sum(g[0], axis=1), post.expected_transitions,
               S[:, :C], S[:, C:], jnp.sum(ll_trials), ll_trials, post.n_clipped)
    return st, post


def ecll(st: Stats, P, dt, const_total):
    """Expected complete-data log-likelihood Q(P | theta) = E_{p(z | y, theta)}
    [log p(y, z | P)] from the statistics of an E-step at theta.

    Probabilities enter as log(max(p, TINY)), like the rates: an M-step can round a
    probability to exactly 0 while the expected count it multiplies is a positive number
    that underflowed (say 1e-320), which would make Q = -inf (0 * log 0 stays 0)."""
    rdt = P["rates"] * dt
    return (jnp.sum(xlogy(st.g0, jnp.maximum(P["init"], TINY)))
            + jnp.sum(xlogy(st.xi, jnp.maximum(P["trans"], TINY)))
            + jnp.sum(st.Sy * jnp.log(jnp.maximum(rdt, TINY))) - jnp.sum(st.Sn * rdt)
            + const_total)


def log_prior(P, cfg: Config):
    """Unnormalised log prior density (0 without priors)."""
    tm = cfg.trans_mask
    return (jnp.sum(xlogy(jnp.where(cfg.init_mask, cfg.init_conc - 1.0, 0.0), P["init"]))
            + jnp.sum(xlogy(jnp.where(tm, cfg.trans_conc - 1.0, 0.0), P["trans"]))
            + jnp.sum(xlogy(cfg.rate_shape - 1.0, P["rates"]) - cfg.rate_rate * P["rates"]))


def mstep(P, st: Stats, cfg: Config):
    """Exact M-step (MAP under the Dirichlet / Gamma priors; pure ML without them).
    Structural zeros stay exactly zero; a state with no expected occupancy keeps its
    transition row and rates."""
    g = jnp.where(cfg.init_mask, st.g0 + cfg.init_conc - 1.0, 0.0)
    init = g / jnp.sum(g)
    X = jnp.where(cfg.trans_mask, st.xi + cfg.trans_conc - 1.0, 0.0)
    rs = jnp.sum(X, axis=1, keepdims=True)
    trans = jnp.where(rs > 0, X / jnp.where(rs > 0, rs, 1.0), P["trans"])
    num = st.Sy + cfg.rate_shape - 1.0
    den = cfg.dt * st.Sn + cfg.rate_rate
    rates = jnp.where(den > 0, num / jnp.where(den > 0, den, 1.0), P["rates"])
    return {"init": init, "trans": trans, "rates": jnp.maximum(rates, 0.0)}


@jax.jit
def em_chunk(P, data: Data, cfg: Config, n_run, prev_obj, tol):
    """Up to ``n_run`` (<= CHUNK) EM iterations in one compiled loop.

    Records per iteration i (parameters theta_i entering it): ll = log p(y | theta_i),
    obj = ll + log prior(theta_i) (the quantity EM increases), q_new = Q(theta_{i+1} |
    theta_i), q_old = Q(theta_i | theta_i). Stops when |obj_i - obj_{i-1}| <= tol *
    |obj_{i-1}| (tol > 0) or when the log-likelihood is not finite. Returns (P, lls, objs,
    q_new, q_old, n_done, converged, n_clipped of the last E-step); the traces are
    NaN-padded to CHUNK. With n_run = 1 and tol = 0, lls[0] is the log-likelihood of P.
    """
    nan = jnp.full((CHUNK,), jnp.nan, dtype=prev_obj.dtype)
    const_total = jnp.sum(data.const)

    def cond(c):
        i, _, _, _, _, _, conv, finite, _ = c
        return (i < n_run) & ~conv & finite

    def body(c):
        i, P, lls, objs, qn, qo, _, _, _ = c
        st, _ = estep(P, data, cfg.dt)
        obj = st.ll + log_prior(P, cfg)
        P_new = mstep(P, st, cfg)
        prev = jnp.where(i == 0, prev_obj, objs[jnp.maximum(i - 1, 0)])
        conv = (tol > 0) & jnp.isfinite(prev) & (jnp.abs(obj - prev) <= tol * jnp.abs(prev))
        return (i + 1, P_new, lls.at[i].set(st.ll), objs.at[i].set(obj),
                qn.at[i].set(ecll(st, P_new, cfg.dt, const_total)),
                qo.at[i].set(ecll(st, P, cfg.dt, const_total)), conv, jnp.isfinite(st.ll),
                jnp.asarray(st.n_clipped, jnp.int64))

    init = (jnp.zeros((), jnp.int32), P, nan, nan, nan, nan, jnp.asarray(False),
            jnp.asarray(True), jnp.zeros((), jnp.int64))
    n, P, lls, objs, qn, qo, conv, _, n_clip = jax.lax.while_loop(cond, body, init)
    return P, lls, objs, qn, qo, n, conv, n_clip


log_likelihoods_jit = jax.jit(log_likelihoods)


@partial(jax.jit, static_argnames=("log_space",))
def posterior_jit(P, data: Data, dt, log_space: bool = False):
    post = (posterior_log if log_space else posterior)(P, data, dt)
    return post.gammas, post.log_likelihoods + data.const, post.expected_transitions


@jax.jit
def stats_jit(P, data: Data, dt) -> Stats:
    return estep(P, data, dt)[0]


@jax.jit
def viterbi_jit(P, data: Data, dt):
    return H.viterbi(_log(P["init"]), _log(P["trans"]), log_obs(P, data, dt), data.valid)


@jax.jit
def ecll_jit(st: Stats, P, dt, const_total):
    return ecll(st, P, dt, const_total)
