"""Point-process (Poisson) filtering kernels: a forward Gaussian filter that scores the
one-step-ahead predictive log-likelihood by importance sampling, and a particle filter
(SMC) estimate of the exact marginal log-likelihood (pure JAX, one trial; vmap over trials).

Model, ``t = 0 .. T-1``::

    x_0 ~ N(m0, P0),   x_t = A x_{t-1} + b + w_t,   w_t ~ N(0, Q)
    y_{t,i} ~ Poisson(dt * exp(c_i' x_t + o_{t,i}))           (observed entries only)
    g_t = Cg x_t + dg + v_t,   v_t ~ N(0, R)                    (entering as information)

The Gaussian channels enter only through their information ``(Jg, hg, rg)``
(:func:`spikessm.kernels.kalman.gaussian_information`), so they are conditioned on exactly
with the Kalman kernel's own update :func:`spikessm.kernels.kalman._info_update_chol`; a
model without Poisson observations therefore reproduces the Kalman filter's per-step
log-likelihoods to rounding.

Predictive filter, one step: the predicted Gaussian ``N(m_t, P_t)`` is first
conditioned on the Gaussian channels of step t, giving ``N(m', P')`` and the exact term
``log p(g_t | past)``. The Poisson term ``log p(y_t | past, g_t) = log int prod_i
Poisson(y_ti | dt exp(c_i'x + o_ti)) N(x; m', P') dx`` is then estimated by importance
sampling in whitened coordinates ``x = m' + L z`` (``P' = L L'``, prior ``z ~ N(0, I)``):

* Newton iterations on the log integrand from ``z = 0`` (a backtracking line search over
  the step fractions ``1, 1/2, ..., 2^-11`` evaluated at once keeps every step an ascent
  step; the integrand is strictly log-concave, so this converges to the unique mode);
* proposal: the defensive mixture ``(1 - alpha) N(z*, s H*^-1) + alpha N(0, I)`` with
  ``H* = I + B' diag(lam*) B`` (``B = C L``) the negative Hessian at the mode, ``s`` a
  covariance inflation. The samples are allocated deterministically (``n - n_def`` from
  the Laplace component, ``n_def`` from the prior) and weighted by the mixture density
  (balance heuristic), which keeps the estimate unbiased for the integral and *bounds*
  every weight by ``max_x p(y_t | x) / alpha``: the weights have finite variance even
  where the Poisson likelihood flattens (silent neurons pushed to low rates);
* estimate ``log mean w`` (logsumexp) and its delta-method standard error
  ``sd(w) / (mean(w) sqrt(n))``.

The filtered posterior passed to the next step is Gaussian. With cubature ``nodes``
(a rule for N(0, I), e.g. Gauss-Hermite) its mean and covariance are those of the exact
one-step posterior ``p(x | past, g_t, y_t)``, computed by the rule in the Laplace
coordinates ``z = z* + Lh^-T xi`` (moment matching, an assumed-density filter; the
Laplace Gaussian is kept if the rule's covariance is not positive definite); without
nodes it is the Laplace Gaussian at the mode (mean ``m' + L z*``, covariance
``L H*^-1 L'``). Either way the filter is deterministic given the data, so the Monte
Carlo errors of different steps are independent and add in quadrature. Moment matching
is markedly more accurate for low counts: on a d = 2, N = 5, 0.75 spikes/bin problem the
Laplace filter's predictive log-likelihood was 0.2-0.3 nats per 40-step trial below the
particle filter's, the moment-matched one within 0.02.

A step with no observed Poisson entry contributes exactly 0 and leaves ``N(m', P')``
unchanged; a step with ``valid`` False (padding) contributes nothing.

Particle filter: the Gaussian channels are handled with the locally optimal proposal
(each particle is drawn from ``p(x_t | x_{t-1}, g_t)``, weighted by ``p(g_t | x_{t-1})``:
exact, shared covariance), the Poisson counts with the bootstrap weight ``p(y_t | x_t)``;
systematic resampling when the effective sample size drops below ``ess_threshold * n``.
The product of the per-step mean weights is an unbiased estimate of ``p(y, g)``.

Written here (not taken from a library): no maintained JAX library has these filters
with missing entries, ragged trials and exact Gaussian channels.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax.scipy.linalg import cho_solve, solve_triangular
from jax.scipy.special import gammaln, logsumexp

from . import kalman as K

N_LINE_SEARCH = 12


class PredictiveSteps(NamedTuple):
    """Per-step output of :func:`laplace_predictive_filter` (leading axes added by vmap).

    gaussian (T,): exact log p(g_t | past); poisson (T,): IS estimate of
    log p(y_t | past, g_t); poisson_se (T,): its delta-method standard error; ess (T,):
    importance-sampling effective sample size (n where no Poisson entry is observed);
    newton_iters (T,): Newton iterations used; filtered_means (T, d) and filtered_covs
    (T, d, d): the Gaussian filtered posterior.
    """

    gaussian: jax.Array
    poisson: jax.Array
    poisson_se: jax.Array
    ess: jax.Array
    newton_iters: jax.Array
    filtered_means: jax.Array
    filtered_covs: jax.Array


def poisson_step_constants(y, mask, dt):
    """(T,) per-step sum over observed entries of ``y log dt - log y!``."""
    m = mask.astype(y.dtype)
    return jnp.sum(m * (y * jnp.log(dt) - gammaln(y + 1.0)), axis=-1)


def _laplace_mode(eta0, B, y, m, dt, max_iter, tol):
    """Mode of  phi(z) = sum_i m_i [y_i eta_i - dt exp(eta_i)] - |z|^2 / 2,
    eta = eta0 + B z, by Newton with a vectorised backtracking line search."""
    d = B.shape[1]
    dtype = B.dtype
    eye = jnp.eye(d, dtype=dtype)
    ym = y * m
    alphas = 0.5 ** jnp.arange(N_LINE_SEARCH, dtype=dtype)

    def phi(z):
        eta = eta0 + z @ B.T
        v = jnp.sum(ym * eta - dt * m * jnp.exp(eta), axis=-1) - 0.5 * jnp.sum(z * z, -1)
        return jnp.where(jnp.isnan(v), -jnp.inf, v)

    def cond(c):
        i, _, _, step = c
        return (i < max_iter) & (step > tol)

    def body(c):
        i, z, fz, _ = c
        lam = dt * m * jnp.exp(eta0 + B @ z)
        g = B.T @ (ym - lam) - z
        H = eye + (B * lam[:, None]).T @ B
        dz = cho_solve((jnp.linalg.cholesky(K._sym(H)), True), g)
        dz = jnp.where(jnp.all(jnp.isfinite(dz)), dz, 0.0)
        fc = phi(z[None, :] + alphas[:, None] * dz[None, :])
        ok = fc >= fz
        j = jnp.argmax(ok)
        alpha = jnp.where(jnp.any(ok), alphas[j], 0.0)
        f_new = jnp.where(jnp.any(ok), fc[j], fz)
        return i + 1, z + alpha * dz, f_new, jnp.max(jnp.abs(alpha * dz))

    z0 = jnp.zeros((d,), dtype)
    init = (jnp.zeros((), jnp.int32), z0, phi(z0), jnp.asarray(jnp.inf, dtype))
    n, z, _, _ = jax.lax.while_loop(cond, body, init)
    return z, n


def _laplace_proposal(m, L, y, mask, off, C, dt, max_iter, tol):
    """The Laplace approximation of one Poisson step in the whitened coordinates z of the
    prior ``N(m, L L')``: (mask as float, B = C L, eta0 = off + C m, mode z*, Cholesky
    factor Lh of the Hessian at z*, Newton iterations)."""
    dtype = L.dtype
    d = L.shape[0]
    m_f = mask.astype(dtype)
    B = C @ L
    eta0 = off + C @ m
    z_star, iters = _laplace_mode(eta0, B, y, m_f, dt, max_iter, tol)
    lam = dt * m_f * jnp.exp(eta0 + B @ z_star)
    H = K._sym(jnp.eye(d, dtype=dtype) + (B * lam[:, None]).T @ B)
    return m_f, B, eta0, z_star, jnp.linalg.cholesky(H), iters


def _is_estimate(prop, y, dt, const, eps, n_defensive, inflation):
    """Importance-sampling estimate of log p(y_t | past) from :func:`_laplace_proposal`'s
    output: (log_p, relative standard error, effective sample size)."""
    m_f, B, eta0, z_star, Lh, _ = prop
    n, d = eps.shape
    s = jnp.sqrt(inflation)
    n_lap = n - n_defensive
    z_lap = z_star + s * solve_triangular(Lh.T, eps[:n_lap].T, lower=False).T
    z = jnp.concatenate([z_lap, eps[n_lap:]], axis=0)
    half_log_2pi = 0.5 * d * K.LOG_2PI
    u = (z - z_star) @ Lh / s
    log_q_lap = (-half_log_2pi - 0.5 * d * jnp.log(inflation) + jnp.sum(jnp.log(jnp.diag(Lh)))
                 - 0.5 * jnp.sum(u * u, axis=1))
    log_p0 = -half_log_2pi - 0.5 * jnp.sum(z * z, axis=1)
    if n_defensive:
        a = n_defensive / n
        log_q = jnp.logaddexp(jnp.log1p(-a) + log_q_lap, jnp.log(a) + log_p0)
    else:
        log_q = log_q_lap
    eta = eta0 + z @ B.T
    loglik = jnp.sum(y * m_f * eta - dt * m_f * jnp.exp(eta), axis=1) + const
    logw = loglik + log_p0 - log_q
    logw = jnp.where(jnp.isnan(logw), -jnp.inf, logw)
    top = jnp.max(logw)
    w = jnp.exp(logw - top)
    mw = jnp.mean(w)
    log_p = top + jnp.log(mw)
    se = jnp.std(w, ddof=1) / (mw * jnp.sqrt(n))
    ess = jnp.sum(w) ** 2 / jnp.sum(w * w)
    return log_p, se, ess


def _filtered(m, L, prop, y, dt, nodes):
    """The filtered Gaussian (mean, covariance) of one Poisson step: moment matched by
    cubature (``nodes``) or the Laplace Gaussian (``nodes=None``)."""
    m_f, B, eta0, z_star, Lh, _ = prop
    if nodes is not None:
        # moment matching by cubature in the Laplace coordinates (deterministic)
        xi, omega = nodes
        zq = z_star + solve_triangular(Lh.T, xi.T, lower=False).T
        eq = eta0 + zq @ B.T
        lr = (jnp.sum(y * m_f * eq - dt * m_f * jnp.exp(eq), axis=1)
              - 0.5 * jnp.sum(zq * zq, axis=1) + 0.5 * jnp.sum(xi * xi, axis=1))
        lr = jnp.where(jnp.isnan(lr), -jnp.inf, lr)
        rq = omega * jnp.exp(lr - jnp.max(lr))
        zm = rq @ zq / jnp.sum(rq)
        zc = zq - zm
        Sz = K._sym((zc * rq[:, None]).T @ zc / jnp.sum(rq))
        Ls = jnp.linalg.cholesky(Sz)
        ok = jnp.all(jnp.isfinite(Ls)) & jnp.all(jnp.isfinite(zm))
        Wm = L @ Ls
        mean = m + L @ jnp.where(ok, zm, z_star)
        W = jnp.where(ok, Wm.T, solve_triangular(Lh, L.T, lower=True))
        return mean, K._sym(W.T @ W)
    W = solve_triangular(Lh, L.T, lower=True)
    return m + L @ z_star, K._sym(W.T @ W)


def laplace_is_step(m, L, y, mask, off, C, dt, const, eps, *, n_defensive: int,
                    inflation, max_iter: int, tol, nodes=None):
    """One Poisson step: importance-sampling estimate of the predictive and the Laplace
    filtered posterior.

    Args:
      m (d,), L (d, d): mean and Cholesky factor of the Gaussian ``N(m', P')``.
      y (N,), mask (N,) bool, off (N,) log-rate offsets, C (N, d), dt, const: the step's
        ``sum m (y log dt - log y!)``.
      eps (n, d): standard-normal draws; the last ``n_defensive`` rows are the defensive
        (prior) component's draws.
      inflation: covariance multiplier of the Laplace component.
      nodes: optional cubature rule (xi (q, d), weights (q,)) for N(0, I): the filtered
        Gaussian is moment matched (module docstring); None: the Laplace Gaussian.

    Returns (log_p, se, ess, mean, cov, newton_iters).
    """
    prop = _laplace_proposal(m, L, y, mask, off, C, dt, max_iter, tol)
    log_p, se, ess = _is_estimate(prop, y, dt, const, eps, n_defensive, inflation)
    mean, cov = _filtered(m, L, prop, y, dt, nodes)
    return log_p, se, ess, mean, cov, prop[-1]


def laplace_predictive_filter(key, m0, P0, A, b, Q, y, mask, valid, off, C, dt, Jg, hg, rg,
                              scored=None, *, n_samples: int, n_defensive: int,
                              inflation=1.2, max_iter: int = 30, tol=1e-10,
                              nodes=None) -> PredictiveSteps:
    """Forward Gaussian filter with importance-sampled one-step predictives (one trial).

    Args:
      key: JAX PRNG key of the trial (step t draws from ``fold_in(key, t)``, so a trial's
        draws do not depend on the padded length).
      m0 (d,), P0 (d, d), A (d, d), b (d,), Q (d, d): latent dynamics.
      y (T, N) counts (anything finite where ``mask`` is False), mask (T, N) bool
        (observed and inside the trial), valid (T,) bool, off (T, N) log-rate offsets,
        C (N, d), dt: bin width (N may be 0).
      Jg (T, d, d), hg (T, d), rg (T,): Gaussian-channel information (zeros if none).
      n_samples, n_defensive: static sample sizes (total, of which from the prior).
      inflation: covariance multiplier of the Laplace proposal; max_iter, tol: Newton;
      nodes: cubature rule for moment matching (see :func:`laplace_is_step`).
      scored (T,) bool, optional: the steps whose predictive is wanted; the others are
        only filtered (no importance sampling: their score fields hold log_p = se = 0 and
        ess = n_samples). A warm start through training data then costs a filter pass,
        not the sampling. Pass it unbatched (the same for every trial under ``vmap``) so
        that the skip is a real branch. None: every step.

    Returns:
      :class:`PredictiveSteps`; padded steps hold zeros in the score fields.
    """
    T, d = hg.shape
    dtype = hg.dtype
    eye = jnp.eye(d, dtype=dtype)
    const = poisson_step_constants(y, mask, dt)
    scored = jnp.ones((T,), bool) if scored is None else scored

    def fwd(carry, inp):
        m, P = carry
        t, y_t, mask_t, valid_t, off_t, J_t, h_t, r_t, c_t, s_t = inp
        Lp = jnp.linalg.cholesky(P)
        mg, Pg, llg = K._info_update_chol(m, Lp, J_t, h_t, r_t, eye)
        Lg = jnp.linalg.cholesky(Pg)
        prop = _laplace_proposal(mg, Lg, y_t, mask_t, off_t, C, dt, max_iter, tol)

        def sample(_):
            eps = jax.random.normal(jax.random.fold_in(key, t), (n_samples, d), dtype)
            return _is_estimate(prop, y_t, dt, c_t, eps, n_defensive, inflation)

        def skip(_):
            zero = jnp.zeros((), dtype)
            return zero, zero, jnp.asarray(n_samples, dtype)

        lp, se, ess = jax.lax.cond(s_t, sample, skip, None)
        mu, Sig = _filtered(mg, Lg, prop, y_t, dt, nodes)
        it = prop[-1]
        has = jnp.any(mask_t) & valid_t
        mu = jnp.where(has, mu, mg)
        Sig = jnp.where(has, Sig, Pg)
        lp = jnp.where(has, lp, 0.0)
        se = jnp.where(has, se, 0.0)
        ess = jnp.where(has, ess, jnp.asarray(n_samples, dtype))
        llg = jnp.where(valid_t, llg, 0.0)
        m_n = A @ mu + b
        P_n = K._sym(A @ Sig @ A.T + Q)
        return (m_n, P_n), PredictiveSteps(llg, lp, se, ess, jnp.where(has, it, 0), mu, Sig)

    _, out = jax.lax.scan(fwd, (m0, K._sym(P0)),
                          (jnp.arange(T), y, mask, valid, off, Jg, hg, rg, const, scored))
    return out


# --------------------------------------------------------------------------------------
# Particle filter
# --------------------------------------------------------------------------------------
class ParticleSteps(NamedTuple):
    """Per-step output of :func:`particle_filter`: log_z (T,) log of the step's mean
    weight, log p^(y_t, g_t | past) (0 on padded steps); ess (T,) effective sample size
    after weighting; resampled (T,) bool."""

    log_z: jax.Array
    ess: jax.Array
    resampled: jax.Array


def _gauss_condition(mp, Lpred, J, h, r, eye):
    """Condition N(mp_j, Lpred Lpred') (shared covariance) on information (J, h, r) for a
    batch of means mp (n, d). Returns means (n, d), Cholesky factor of the shared
    covariance, log-likelihood terms (n,) as in the Kalman kernel."""
    S = eye + Lpred.T @ J @ Lpred
    Ls = jnp.linalg.cholesky(K._sym(S))
    W = solve_triangular(Ls, Lpred.T, lower=True)
    Sig = K._sym(W.T @ W)
    resid = h[None, :] - mp @ J
    mu = mp + resid @ Sig
    logdet_s = 2.0 * jnp.sum(jnp.log(jnp.diag(Ls)))
    ll = -0.5 * (r + logdet_s - 2.0 * mp @ h + jnp.sum((mp @ J) * mp, 1)
                 - jnp.sum((resid @ Sig) * resid, 1))
    return mu, jnp.linalg.cholesky(Sig), ll


def _systematic(key, logw):
    n = logw.shape[0]
    w = jnp.exp(logw - jnp.max(logw))
    cs = jnp.cumsum(w)
    cs = cs / cs[-1]
    u = (jax.random.uniform(key, (), logw.dtype) + jnp.arange(n, dtype=logw.dtype)) / n
    return jnp.clip(jnp.searchsorted(cs, u), 0, n - 1)


def particle_filter(key, m0, P0, A, b, Q, y, mask, valid, off, C, dt, Jg, hg, rg, *,
                    n_particles: int, ess_threshold=0.5) -> ParticleSteps:
    """Particle filter for one trial (arguments as :func:`laplace_predictive_filter`).

    ``sum(log_z)`` is the log of an unbiased estimate of the marginal likelihood
    ``p(y, g)`` (Poisson pmf and Gaussian density, all constants included).
    """
    T, d = hg.shape
    n = n_particles
    dtype = hg.dtype
    eye = jnp.eye(d, dtype=dtype)
    const = poisson_step_constants(y, mask, dt)
    L0 = jnp.linalg.cholesky(K._sym(P0))
    Lq = jnp.linalg.cholesky(K._sym(Q))
    log_n = jnp.log(jnp.asarray(n, dtype))

    def step(carry, inp):
        X, logw = carry
        t, y_t, mask_t, valid_t, off_t, J_t, h_t, r_t, c_t = inp
        k_t = jax.random.fold_in(key, t)
        k_draw, k_res = jax.random.split(k_t)
        first = t == 0
        mp = jnp.where(first, jnp.broadcast_to(m0, (n, d)), X @ A.T + b)
        Lpred = jnp.where(first, L0, Lq)
        mu, Ls, llg = _gauss_condition(mp, Lpred, J_t, h_t, r_t, eye)
        Xn = mu + jax.random.normal(k_draw, (n, d), dtype) @ Ls.T
        mf = mask_t.astype(dtype)
        eta = off_t + Xn @ C.T
        llp = jnp.sum(mf * (y_t * eta - dt * jnp.exp(eta)), axis=1) + c_t
        inc = llg + llp
        inc = jnp.where(jnp.isnan(inc), -jnp.inf, inc)
        lz = logsumexp(logw + inc)
        logw_n = logw + inc - lz
        ess = jnp.exp(-logsumexp(2.0 * logw_n))
        resample = valid_t & (ess < ess_threshold * n)
        idx = _systematic(k_res, logw_n)
        X_out = jnp.where(resample, Xn[idx], Xn)
        logw_out = jnp.where(resample, -log_n, logw_n)
        X_out = jnp.where(valid_t, X_out, X)
        logw_out = jnp.where(valid_t, logw_out, logw)
        return (X_out, logw_out), ParticleSteps(jnp.where(valid_t, lz, 0.0),
                                                jnp.where(valid_t, ess, n), resample)

    init = (jnp.zeros((n, d), dtype), jnp.full((n,), -log_n, dtype))
    _, out = jax.lax.scan(step, init, (jnp.arange(T), y, mask, valid, off, Jg, hg, rg, const))
    return out


__all__ = ["PredictiveSteps", "ParticleSteps", "laplace_predictive_filter", "laplace_is_step",
           "particle_filter", "poisson_step_constants"]
