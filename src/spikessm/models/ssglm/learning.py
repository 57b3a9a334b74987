"""Behavioural learning curves: a Bernoulli state-space model of correct / incorrect
trials (Smith et al. 2004), optionally with reaction time as a Gaussian observation of the
same state (Prerau et al. 2009).

Trial k = 0 .. K-1::

    x_0 ~ N(x0, s2),  x_k = x_{k-1} + eps_k,  eps_k ~ N(0, s2)     (learning state)
    correct_k ~ Bernoulli(p_k),  p_k = logistic(mu + x_k),  mu = logit(chance)
    log RT_k = a + b x_k + v_k,  v_k ~ N(0, s2_rt)                  (optional)

Missing trials (NaN) carry no observation. The parameters (s2, x0 and a, b, s2_rt) are
estimated by Laplace EM on the same engine as the SSGLM (:mod:`.core`): Newton on the
whole trajectory, one Kalman smoother pass per step, and exact M-steps. The learning
trial is the ideal-observer criterion: the first trial k with P(p_k > chance) > level
(0.95) for that trial and every later one (``sustained``).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from scipy.special import expit, logit
from scipy.stats import norm

from ..._checks import as_float_array, check_int
from ..._jax import x64
from ...kernels.kalman import LOG_2PI
from .core import GLMObs, mstep_random_walk, run_em, trajectory_laplace
from .model import Z95, check_unit_interval, first_above


@dataclass(frozen=True)
class LearningCurveResult:
    """Learning curve.

    p (K,): posterior median of the probability correct; p_lower / p_upper (K,): 95%
    credible band; x_mean (K,), x_var (K,): Laplace posterior of the learning state;
    prob_above_chance (K,): P(p_k > chance | data); learning_trial: first trial (0-based)
    of the ideal-observer criterion, or None; chance; sigma2 (random-walk variance); x0;
    rt_params: (a, b, s2_rt) on log RT, or None; rt (K,): predicted median reaction time
    exp(a + b x_k) (NaN without RT), rt_lower / rt_upper (K,) its 95% band from the state
    uncertainty; log_likelihoods (n_iter,), log_likelihood (Laplace approximation of
    log p(data)), converged, n_iter.
    """

    p: np.ndarray
    p_lower: np.ndarray
    p_upper: np.ndarray
    x_mean: np.ndarray
    x_var: np.ndarray
    prob_above_chance: np.ndarray
    learning_trial: int | None
    chance: float
    sigma2: float
    x0: float
    rt_params: tuple | None
    rt: np.ndarray
    rt_lower: np.ndarray
    rt_upper: np.ndarray
    log_likelihoods: np.ndarray
    log_likelihood: float
    converged: bool
    n_iter: int


def _rt_information(r, obs, a, b, s2):
    """Gaussian information of log RT: J (K, 1, 1), h (K, 1), r (K,); zeros if missing."""
    e = jnp.where(obs, r - a, 0.0)
    w = obs / s2
    return ((w * b * b)[:, None, None], (w * b * e)[:, None],
            w * e * e + obs * (LOG_2PI + jnp.log(s2)))


@partial(jax.jit, static_argnames=("has_rt",))
def _estep(P, y, seen, r, rt_seen, mu, x_init, *, has_rt):
    Kn = y.shape[0]
    obs = GLMObs(jnp.ones((1, 1)), y[:, None], seen[:, None], jnp.full((Kn, 1), mu))
    if has_rt:
        Jg, hg, rg = _rt_information(r, rt_seen, P["a"], P["b"], P["s2_rt"])
    else:
        Jg, hg, rg = jnp.zeros((Kn, 1, 1)), jnp.zeros((Kn, 1)), jnp.zeros(Kn)
    Q = P["s2"].reshape(1, 1)
    lap = trajectory_laplace(P["x0"].reshape(1), Q, Q, obs, Jg, hg, rg, x_init,
                             link="bernoulli", max_iter=100, tol=1e-10)
    return lap, lap.log_likelihood


@partial(jax.jit, static_argnames=("has_rt",))
def _mstep(P, r, rt_seen, mu, S, X, *, has_rt):
    Q0 = P["s2"].reshape(1, 1)
    Q, m0, _ = mstep_random_walk(mu, S, X, {"Q": Q0, "m0": P["x0"].reshape(1), "P0": Q0},
                                 q_type="full", initial="tied", q_floor=1e-8)
    new = dict(P, s2=Q[0, 0], x0=m0[0])
    if has_rt:  # regression of log RT on [1, x_k] with E[x_k], E[x_k^2]
        m, v = mu[:, 0], S[:, 0, 0]
        o = rt_seen
        Szz = jnp.array([[jnp.sum(o), jnp.sum(o * m)],
                         [jnp.sum(o * m), jnp.sum(o * (m * m + v))]])
        rr = jnp.where(o > 0, r, 0.0)
        Szy = jnp.array([jnp.sum(o * rr), jnp.sum(o * m * rr)])
        w = jnp.linalg.solve(Szz, Szy)
        s2 = (jnp.sum(o * rr * rr) - 2.0 * w @ Szy + w @ Szz @ w) / jnp.sum(o)
        new.update(a=w[0], b=w[1], s2_rt=jnp.maximum(s2, 1e-12))
    return new


def _binary(correct) -> tuple[np.ndarray, np.ndarray]:
    c = as_float_array(correct, "correct")
    if c.ndim != 1:
        raise ValueError(f"correct must be a 1-D (K,) array of trial outcomes, got shape "
                         f"{c.shape}")
    if c.size == 0:
        raise ValueError("correct is empty; expected one 0/1 (or NaN) entry per trial")
    if np.isinf(c).any():
        raise ValueError("correct contains +-inf; use NaN for a missed trial")
    seen = ~np.isnan(c)
    bad = seen & (c != 0) & (c != 1)
    if bad.any():
        k = int(np.flatnonzero(bad)[0])
        raise ValueError(f"correct must hold 0, 1 or NaN (missed trial); trial {k} has "
                         f"{c[k]:g} (the Bernoulli model takes one outcome per trial)")
    if c.size < 2:
        raise ValueError("correct has 1 trial; a learning curve needs at least 2")
    return np.where(seen, c, 0.0), seen


@x64
def learning_curve(correct, reaction_times=None, *, chance: float = 0.5,
                   level: float = 0.95, sustained: bool = True, max_iter: int = 500,
                   tol: float = 1e-8, sigma2_init: float = 0.05) -> LearningCurveResult:
    """Fit a behavioural learning curve.

    Args:
      correct: (K,) 1 = correct, 0 = incorrect, NaN = missed trial.
      reaction_times: optional (K,) positive reaction times (any unit; NaN = none), modelled
        on the log scale as a Gaussian observation of the same learning state.
      chance: probability correct by chance (sets mu = logit(chance)).
      level, sustained: the ideal-observer criterion of the learning trial.
      max_iter, tol: EM iterations cap and relative log-likelihood tolerance.
      sigma2_init: starting random-walk variance.

    Returns:
      :class:`LearningCurveResult`.
    """
    y, seen = _binary(correct)
    Kn = y.size
    check_unit_interval(chance, "chance")
    check_unit_interval(level, "level")
    max_iter = check_int(max_iter, "max_iter", 1)
    if isinstance(sigma2_init, bool) or not isinstance(sigma2_init, (int, float, np.integer,
                                                                     np.floating)):
        raise TypeError(f"sigma2_init must be a positive number, got {sigma2_init!r}")
    if not 0.0 < sigma2_init < np.inf:
        raise ValueError(f"sigma2_init must be a positive finite number, got {sigma2_init}")
    has_rt = reaction_times is not None
    r = np.zeros(Kn)
    rt_seen = np.zeros(Kn)
    if has_rt:
        rt = as_float_array(reaction_times, "reaction_times").ravel()
        if rt.shape != (Kn,):
            raise ValueError(f"reaction_times has {rt.size} entries; correct has {Kn}")
        ok = ~np.isnan(rt)
        if np.isinf(rt).any() or (rt[ok] <= 0).any():
            raise ValueError("reaction_times must be positive and finite (NaN = no response)")
        if ok.sum() < 3:
            raise ValueError("reaction_times needs at least 3 observed trials")
        r = np.where(ok, np.log(np.where(ok, rt, 1.0)), 0.0)
        rt_seen = ok.astype(float)
    mu = float(logit(chance))
    P = {"s2": jnp.asarray(float(sigma2_init)), "x0": jnp.asarray(0.0)}
    if has_rt:
        lr = r[rt_seen > 0]
        P.update(a=jnp.asarray(lr.mean()), b=jnp.asarray(0.0),
                 s2_rt=jnp.asarray(max(lr.var(), 1e-6)))
    args = tuple(jnp.asarray(a) for a in (y, seen.astype(float), r, rt_seen))
    P, lap, trace, converged = run_em(
        lambda P, x: _estep(P, *args, mu, x, has_rt=has_rt),
        lambda P, lap: _mstep(P, args[2], args[3], lap.posterior.smoothed_means,
                              lap.posterior.smoothed_covs, lap.posterior.cross_covs,
                              has_rt=has_rt),
        P, jnp.zeros((Kn, 1)), max_iter, tol, "learning_curve",
        kinds={"s2": "log", "x0": "free", "a": "free", "b": "free", "s2_rt": "log"}
        if has_rt else {"s2": "log", "x0": "free"})
    m = np.asarray(lap.posterior.smoothed_means)[:, 0]
    v = np.asarray(lap.posterior.smoothed_covs)[:, 0, 0]
    sd = np.sqrt(v)
    above = norm.cdf(m / sd)
    nan = np.full(Kn, np.nan)
    rt_pred, rt_lo, rt_hi, rt_params = nan, nan, nan, None
    if has_rt:
        a, b, s2r = (float(P[k]) for k in ("a", "b", "s2_rt"))
        rt_params = (a, b, s2r)
        rt_pred = np.exp(a + b * m)
        band = np.exp(a + b * m + np.array([[-1.0], [1.0]]) * Z95 * abs(b) * sd)
        rt_lo, rt_hi = band
    return LearningCurveResult(
        expit(mu + m), expit(mu + m - Z95 * sd), expit(mu + m + Z95 * sd), m, v, above,
        first_above(above, level, sustained), float(chance),
        float(P["s2"]), float(P["x0"]), rt_params, rt_pred, rt_lo, rt_hi, np.asarray(trace),
        trace[-1], converged, len(trace))


__all__ = ["LearningCurveResult", "learning_curve"]
