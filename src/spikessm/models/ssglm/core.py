"""State-space GLM across trials: the JAX core (Laplace E-step, exact random-walk M-step,
Newton GLM fits). Pure functions; the user API is in :mod:`.model` and :mod:`.learning`.

Latent trajectory across trials ``k = 0 .. K-1`` (a random walk)::

    theta_0 ~ N(m0, P0),   theta_k = theta_{k-1} + eps_k,   eps_k ~ N(0, Q)

Observations of trial k: ``U`` GLM units with natural parameter ``eta_ku = C_u' theta_k +
off_ku`` (:class:`GLMObs`):

* ``link="poisson"``:   y_ku ~ Poisson(scale_ku exp(eta_ku))
* ``link="bernoulli"``: y_ku ~ Binomial(scale_ku, logistic(eta_ku))

A unit is one time bin (``C`` = the within-trial basis, ``scale`` = bin width or 1) or,
for unit-pulse bases, one pulse with its count and exposure summed over the pulse's bins
(``C = I``): the likelihood of theta is the same, the work per trial is O(R) instead of
O(T R^2). Units with ``scale = 0`` carry nothing (missing bins and trials). Gaussian
channels of the same state (a reaction time, :mod:`.learning`) enter as information
``(Jg, hg, rg)`` as in :mod:`spikessm.kernels.kalman`.

E-step: Newton's method on the whole trajectory; each Newton step is one pass of the
information-form Kalman smoother :func:`spikessm.kernels.kalman.filter_smooth` with the
pseudo-observations of the second-order expansion at the current trajectory (the same
construction as :func:`spikessm.kernels.laplace.laplace_smoother`, which is Poisson-only
and per-bin), with a backtracking line search on the exact log joint. At the mode the pass
gives the Laplace posterior (covariances, lag-one cross-covariances) and the Laplace
approximation of log p(y).
"""

from __future__ import annotations

import warnings
from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.linalg import cho_solve, solve_triangular

from ...kernels import kalman as K
from ..lgssm import em as LG

LINKS = ("poisson", "bernoulli")


class GLMObs(NamedTuple):
    """C (U, R) design of the units; y (K, U) counts; scale (K, U) exposure (Poisson) or
    number of Bernoulli bins (Bernoulli), 0 where nothing is observed; off (K, U)."""

    C: jax.Array
    y: jax.Array
    scale: jax.Array
    off: jax.Array


def glm_terms(eta, y, scale, link: str):
    """Mean, variance and summed log-likelihood (last axis; up to the data constant)."""
    if link == "poisson":
        mean = scale * jnp.exp(eta)
        return mean, mean, jnp.sum(y * eta - mean, axis=-1)
    p = jax.nn.sigmoid(eta)
    mean = scale * p
    return mean, mean * (1.0 - p), jnp.sum(y * eta - scale * jax.nn.softplus(eta), axis=-1)


class TrajectoryLaplace(NamedTuple):
    """mode (K, R); posterior: :class:`~spikessm.kernels.kalman.Posterior` linearised at
    the mode; log_likelihood (): Laplace approximation of log p(y) without the data
    constant; n_iter (); converged ()."""

    mode: jax.Array
    posterior: K.Posterior
    log_likelihood: jax.Array
    n_iter: jax.Array
    converged: jax.Array


@partial(jax.jit, static_argnames=("link", "max_iter"))
def trajectory_laplace(m0, P0, Q, obs: GLMObs, Jg, hg, rg, x_init, *, link: str,
                       max_iter: int = 50, tol=1e-8, F=None) -> TrajectoryLaplace:
    """Laplace posterior of the random-walk trajectory (module docstring).

    Args: m0 (R,), P0 (R, R), Q (R, R); obs: :class:`GLMObs`; Jg (K, R, R), hg (K, R),
    rg (K,): Gaussian information (zeros if none); x_init (K, R) starting trajectory.
    F (R, R): the transition ``theta_k = F theta_{k-1} + eps_k``; None: the random walk
    (F = I; the per-trial gain of :func:`~.model.ssglm` uses blockdiag(I, 0)).
    """
    Kn, R = x_init.shape
    dtype = x_init.dtype
    eye = jnp.eye(R, dtype=dtype)
    zeros_a = jnp.zeros((Kn, R), dtype)
    C = obs.C
    L0 = jnp.linalg.cholesky(P0)
    Lq = jnp.linalg.cholesky(Q)

    def log_joint(x, eta):
        z0 = solve_triangular(L0, x[0] - m0, lower=True)
        prev = x[:-1] if F is None else x[:-1] @ F.T
        z = solve_triangular(Lq, (x[1:] - prev).T, lower=True)
        _, _, f = glm_terms(eta, obs.y, obs.scale, link)
        gauss = -0.5 * jnp.einsum("ki,kij,kj->", x, Jg, x) + jnp.sum(hg * x)
        val = -0.5 * (z0 @ z0 + jnp.sum(z * z)) + jnp.sum(f) + gauss
        return jnp.where(jnp.isnan(val), -jnp.inf, val)

    def newton_pass(x):
        eta = x @ C.T + obs.off
        mean, var, f = glm_terms(eta, obs.y, obs.scale, link)
        g = (obs.y - mean) @ C
        W = (C.T[None] * var[:, None, :]) @ C  # (K, R, R)
        rp = -2.0 * (f - jnp.sum(g * x, axis=1) - 0.5 * jnp.einsum("ki,kij,kj->k", x, W, x))
        h = jnp.einsum("kij,kj->ki", W, x) + g
        post = K.filter_smooth(m0, P0, eye if F is None else F, zeros_a, Q, W + Jg, h + hg,
                               rp + rg)
        return post, eta

    def body(c):
        # one Kalman pass per iteration: the pass linearised at x gives the Newton target;
        # when the step is below tol, x is the mode and that pass is its Laplace posterior
        i, x, _, _, _ = c
        post, eta = newton_pass(x)
        dx = post.smoothed_means - x
        step = jnp.max(jnp.abs(dx))
        done = step <= tol
        deta = dx @ C.T
        phi0 = log_joint(x, eta)

        def ls_body(s):
            alpha = 0.5 * s[0]
            return alpha, log_joint(x + alpha * dx, eta + alpha * deta)

        alpha, val = jax.lax.while_loop(
            lambda s: (s[1] < phi0) & (s[0] > 1e-6), ls_body,
            (jnp.asarray(1.0, dtype), log_joint(x + dx, eta + deta)))
        alpha = jnp.where((val >= phi0) & ~done, alpha, 0.0)
        stuck = (alpha == 0.0) & ~done
        return i + 1, x + alpha * dx, (x, post), step, done | stuck

    post0 = jax.tree_util.tree_map(lambda a: jnp.zeros(a.shape, a.dtype),
                                   jax.eval_shape(newton_pass, x_init)[0])
    init = (jnp.zeros((), jnp.int32), x_init, (x_init, post0), jnp.asarray(jnp.inf, dtype),
            jnp.asarray(False))
    n, _, (x, post), step, _ = jax.lax.while_loop(
        lambda c: (c[0] < max_iter) & ~c[-1], body, init)
    return TrajectoryLaplace(x, post, jnp.sum(post.log_likelihoods), n, step <= tol)


def mstep_random_walk(mu, S, X, P, *, q_type: str, initial: str, q_floor: float):
    """Exact M-step of the random walk (A = I fixed) from smoothed moments.

    mu (K, R) means, S (K, R, R) covariances, X (K, R, R) lag-one cross-covariances
    (``X[k] = Cov(theta_k, theta_{k-1})``); P: dict with the current "Q", "m0", "P0".
    ``initial``: "diffuse" keeps m0, P0; "em" updates both (m0 = E[theta_0],
    P0 = Cov(theta_0)); "tied" is Smith et al. (2004): P0 = Q, the first trial one
    random-walk step from the parameter m0. Diagonal Q gives a diagonal P0. The diagonal
    of Q is floored at ``q_floor``. Returns (Q, m0, P0).
    """
    Kn, R = mu.shape
    valid = jnp.ones((1, Kn), bool)
    sums = LG.smoothed_cov_sums(S[None], X[None], valid)
    Szz, Sxz, Sxx, n = LG.dynamics_stats(mu[None], jnp.zeros((1, Kn, 0), mu.dtype), valid, *sums)
    st = LG.Stats(Szz, Sxz, Sxx, n, *(None,) * 7)
    Pd = {"A": jnp.eye(R, dtype=mu.dtype), "b": jnp.zeros(R, mu.dtype),
          "B": jnp.zeros((R, 0), mu.dtype), "Q": P["Q"]}
    _, _, _, Qn = LG.mstep_dynamics(Pd, st, ("A", "b", "B"), q_type)
    if initial == "diffuse":
        m0, P0 = P["m0"], P["P0"]
    else:
        m0, P0 = LG.mstep_initial(P, mu[:1], S[0], ())
        if q_type != "full":
            P0 = jnp.diag(jnp.diag(P0))
    if initial == "tied":  # (K - 1) Q from the steps k >= 1, plus Cov(theta_0) (m0 = its mean)
        Qn = ((Kn - 1) * Qn + P0) / Kn
    Qn = Qn + jnp.diag(jnp.maximum(q_floor - jnp.diag(Qn), 0.0))
    return Qn, m0, (Qn if initial == "tied" else K._sym(P0))


N_Q_GRID = 32  # log-spaced grid of a random-walk variance, q_floor .. Q_MAX
Q_MAX = 10.0  # upper end of the search (a log-rate variance of 10 per trial)
N_GOLDEN = 24  # golden-section steps between the grid neighbours of the best point


@partial(jax.jit, static_argnames=("link", "shared", "tied", "max_iter"))
def separable_q(m0, p0, obs: GLMObs, x_init, q_floor, min_gain, *, link: str, shared: bool,
                tied: bool, max_iter: int = 50, tol=1e-8):
    """Random-walk variances that maximise the Laplace approximation of log p(y) itself.

    For unit pulses (``obs.C = I``) with a diagonal Q and a diagonal P0 the trajectory
    factorises over basis functions: the Laplace log-likelihood is a sum of R scalar
    problems, each a function of its own variance q_r alone. Each is evaluated (the
    scalar :func:`trajectory_laplace`, vmapped) on a log grid from ``q_floor`` (the static
    model of that basis function) to :data:`Q_MAX`, and refined by golden section in
    log q between the grid neighbours of the best point; a refined point is kept only if
    it beats the best grid point. ``shared`` (isotropic Q): one q maximising the sum.
    ``tied``: P0 = Q (p0 ignored). m0 (R,), p0 (R,) the diagonal of P0, x_init (K, R) the
    Newton start. ``min_gain`` (2,): the thresholds (nats) of the test of drift (see the
    code; zeros: the maximiser itself). Returns (q (R,), gain (R,): the per-basis-function
    gain of the Laplace log-likelihood at the maximiser over q_floor).

    Replaces EM's Q update where it applies: EM's update of a variance whose
    maximum-likelihood value is (near) 0 shrinks it by a factor that tends to 1, so EM
    stops far above the maximum and the predictive bands are too wide.
    """
    Kn, R = x_init.shape
    dtype = x_init.dtype
    one = jnp.ones((1, 1), dtype)
    zk = jnp.zeros((Kn, 1, 1), dtype)
    zh = jnp.zeros((Kn, 1), dtype)

    def scalar(m, p, q, y, s, o, x):
        o1 = GLMObs(one, y[:, None], s[:, None], o[:, None])
        p = q if tied else p
        lap = trajectory_laplace(m[None], p[None, None], q[None, None], o1, zk, zh, zh[:, 0],
                                 x[:, None], link=link, max_iter=max_iter, tol=tol)
        return jnp.where(jnp.isfinite(lap.log_likelihood), lap.log_likelihood, -jnp.inf)

    cols = (m0, p0, obs.y.T, obs.scale.T, obs.off.T, x_init.T)
    per_pulse = jax.vmap(scalar, in_axes=(0, 0, 0, 0, 0, 0, 0))  # over pulses

    def value(logq):  # logq (R,) -> (R,) per-pulse Laplace log-likelihoods
        return per_pulse(cols[0], cols[1], jnp.exp(logq), *cols[2:])

    lo, hi = jnp.log(q_floor), jnp.log(jnp.maximum(Q_MAX, 10.0 * q_floor))
    grid = jnp.linspace(lo, hi, N_Q_GRID).astype(dtype)
    vals = jax.vmap(lambda g: value(jnp.full(R, g)))(grid)  # (G, R)
    if shared:
        vals = jnp.broadcast_to(jnp.sum(vals, axis=1, keepdims=True), vals.shape)
    ib = jnp.argmax(vals, axis=0)  # (R,)
    best, fbest = grid[ib], jnp.take_along_axis(vals, ib[None], 0)[0]
    a = grid[jnp.maximum(ib - 1, 0)]
    b = grid[jnp.minimum(ib + 1, N_Q_GRID - 1)]
    gr = 0.5 * (jnp.sqrt(5.0) - 1.0)

    def fval(lq):
        v = value(lq)
        return jnp.broadcast_to(jnp.sum(v), v.shape) if shared else v

    def golden(_, c):
        a, b, x1, x2, f1, f2 = c
        left = f1 >= f2  # the maximum is in [a, x2]
        a2, b2 = jnp.where(left, a, x1), jnp.where(left, x2, b)
        n1 = jnp.where(left, b2 - gr * (b2 - a2), x2)
        n2 = jnp.where(left, x1, a2 + gr * (b2 - a2))
        new = fval(jnp.where(left, n1, n2))
        f1n, f2n = jnp.where(left, new, f2), jnp.where(left, f1, new)
        return a2, b2, n1, n2, f1n, f2n

    x1, x2 = b - gr * (b - a), a + gr * (b - a)
    a, b, x1, x2, f1, f2 = jax.lax.fori_loop(0, N_GOLDEN, golden,
                                             (a, b, x1, x2, fval(x1), fval(x2)))
    xr, fr = jnp.where(f1 >= f2, x1, x2), jnp.maximum(f1, f2)
    logq, fq = jnp.where(fr > fbest, xr, best), jnp.maximum(fr, fbest)
    # model choice (protected tests): no drift at all unless some basis function's drift
    # raises the Laplace log-likelihood over its static fit (q_floor) by more than
    # min_gain[0] nats (the global test); then each basis function drifts (q at its
    # maximum) if its own gain exceeds min_gain[1], and stays static otherwise
    gain = fq - vals[0]
    drift = jnp.any(gain > min_gain[0]) & (gain > min_gain[1])
    logq = jnp.where(drift, logq, lo)
    return jnp.exp(logq), gain


class NewtonFit(NamedTuple):
    """beta (p,) maximiser; cov (p, p) inverse negative Hessian; value () objective at
    beta; logdet () log det of the negative Hessian; converged ()."""

    beta: jax.Array
    cov: jax.Array
    value: jax.Array
    logdet: jax.Array
    converged: jax.Array


@partial(jax.jit, static_argnames=("link", "max_iter"))
def glm_newton(X, y, scale, off, beta0, prior_mean, prior_prec, *, link: str,
               max_iter: int = 50, tol=1e-9) -> NewtonFit:
    """MAP of a GLM with a Gaussian prior N(prior_mean, prior_prec^-1) (prec may be ~0).

    Maximises ``sum_n [y_n eta_n - b(eta_n; scale_n)] - (beta - m)' P (beta - m) / 2``,
    ``eta = X beta + off``, by Newton with backtracking. X (n, p); y, scale, off (n,).
    """
    def value(beta):
        _, _, f = glm_terms(X @ beta + off, y, scale, link)
        e = beta - prior_mean
        v = f - 0.5 * e @ (prior_prec @ e)
        return jnp.where(jnp.isnan(v), -jnp.inf, v)

    def grad_hess(beta):
        mean, var, _ = glm_terms(X @ beta + off, y, scale, link)
        g = X.T @ (y - mean) - prior_prec @ (beta - prior_mean)
        H = (X.T * var) @ X + prior_prec
        return g, K._sym(H)

    def body(c):
        i, beta, val, _ = c
        g, H = grad_hess(beta)
        d = cho_solve((jnp.linalg.cholesky(H), True), g)

        def ls(s):
            a = 0.5 * s[0]
            return a, value(beta + a * d)

        a, v = jax.lax.while_loop(lambda s: (s[1] < val) & (s[0] > 1e-8), ls,
                                  (jnp.asarray(1.0, beta.dtype), value(beta + d)))
        ok = v >= val
        a = jnp.where(ok, a, 0.0)
        step = jnp.max(jnp.abs(a * d))
        return i + 1, beta + a * d, jnp.where(ok, v, val), (step <= tol) | ~ok

    init = (jnp.zeros((), jnp.int32), beta0, value(beta0), jnp.asarray(False))
    _, beta, val, conv = jax.lax.while_loop(lambda c: (c[0] < max_iter) & ~c[-1], body, init)
    _, H = grad_hess(beta)
    L = jnp.linalg.cholesky(H)
    cov = cho_solve((L, True), jnp.eye(H.shape[0], dtype=H.dtype))
    return NewtonFit(beta, cov, val, 2.0 * jnp.sum(jnp.log(jnp.diag(L))), conv)


def _vec(P, kinds):
    """Unconstrained vector of the parameters: log of "log" scalars, log-Cholesky of "cov"
    matrices, the rest as they are (the space SQUAREM extrapolates in)."""
    parts = []
    for k in sorted(kinds):
        a = np.asarray(P[k], dtype=float)
        if kinds[k] == "log":
            a = np.log(a)
        elif kinds[k] == "cov":
            L = np.linalg.cholesky(a)
            L[np.diag_indices_from(L)] = np.log(np.diag(L))
            a = L[np.tril_indices_from(L)]
        parts.append(np.ravel(a))
    return np.concatenate(parts)


def _unvec(v, P, kinds):
    out, i = dict(P), 0
    for k in sorted(kinds):
        ref = np.asarray(P[k], dtype=float)
        if kinds[k] == "cov":
            R = ref.shape[0]
            n = R * (R + 1) // 2
            L = np.zeros((R, R))
            L[np.tril_indices(R)] = v[i:i + n]
            L[np.diag_indices(R)] = np.exp(np.diag(L))
            a, i = L @ L.T, i + n
            if np.all(ref == np.diag(np.diag(ref))):  # keep a diagonal matrix diagonal
                a = np.diag(np.diag(a))
        else:
            a, i = v[i:i + ref.size].reshape(ref.shape), i + ref.size
            if kinds[k] == "log":
                a = np.exp(a)
        out[k] = jnp.asarray(a)
    return out


N_BACKTRACK = 4
# Laplace EM is not exact EM: near its fixed point the objective (the Laplace
# approximation of log p(y)) can fall slightly (seen: 3e-5 relative with one binary outcome
# per trial). The loop stops at the first decrease and keeps the parameters before it; a
# decrease above DECREASE_TOL (relative) is reported and the fit is marked not converged.
DECREASE_TOL = 1e-4


def run_em(estep, mstep, P, x, max_iter: int, tol: float, label: str, kinds=None):
    """Laplace EM loop shared by the SSGLM and the learning curve.

    ``estep(P, x) -> (TrajectoryLaplace, log-likelihood)`` (x: the Newton start, the
    previous mode), ``mstep(P, lap) -> P``. With ``kinds`` (parameter name -> "free",
    "log" or "cov") each cycle is one SQUAREM step (Varadhan & Roland 2008: two EM steps,
    a squared extrapolation in the unconstrained space, one stabilising EM step; the
    extrapolation is kept only if the objective does not decrease), which turns EM's slow
    crawl of a random-walk variance towards 0 into a few cycles; otherwise plain EM.
    Stops when the relative change of the log-likelihood between accepted parameters is
    at most ``tol`` (converged), at the first cycle that would lower it (the
    parameters before it are kept; converged unless the fall exceeds ``DECREASE_TOL``
    relative, which warns), or after ``max_iter`` cycles; on
    a non-finite value returns the last finite parameters. Returns (P, lap at P, trace
    (log-likelihoods at the accepted parameters), converged).
    """
    lap, ll = estep(P, x)
    ll = float(ll)
    if not np.isfinite(ll):
        raise FloatingPointError(f"{label}: the log-likelihood is not finite at the initial "
                                 "parameters")
    trace, converged = [ll], False

    def em_step(P, lap):
        P1 = mstep(P, lap)
        lap1, ll1 = estep(P1, lap.mode)
        return P1, lap1, float(ll1)

    for i in range(max_iter):
        P1, lap1, ll1 = em_step(P, lap)
        cand = (P1, lap1, ll1)
        if kinds is not None and np.isfinite(ll1):
            P2, lap2, ll2 = em_step(P1, lap1)
            cand = (P2, lap2, ll2) if np.isfinite(ll2) and ll2 >= ll1 else cand
            v0, v1, v2 = (_vec(Q, kinds) for Q in (P, P1, P2))
            r, w = v1 - v0, v2 - 2 * v1 + v0
            if cand[0] is P2 and np.all(np.isfinite(w)) and w @ w > 0:
                alpha = min(-np.sqrt((r @ r) / (w @ w)), -1.0)
                for _ in range(N_BACKTRACK):  # step-length backtracking towards -1 (= P2)
                    if alpha > -1.5:
                        break
                    try:
                        Pe = _unvec(v0 - 2 * alpha * r + alpha ** 2 * w, P, kinds)
                        lape, lle = estep(Pe, lap2.mode)
                        lle = float(lle)
                    except (np.linalg.LinAlgError, FloatingPointError, OverflowError):
                        lle = -np.inf
                    if np.isfinite(lle) and lle >= ll2:
                        ext = em_step(Pe, lape)
                        if np.isfinite(ext[2]) and ext[2] >= lle:
                            cand = ext
                        break
                    alpha = 0.5 * (alpha - 1.0)
        if not np.isfinite(cand[2]):
            warnings.warn(f"{label}: non-finite log-likelihood at EM iteration {i + 1}; "
                          "returning the last finite parameters", RuntimeWarning, stacklevel=3)
            break
        if cand[2] < trace[-1]:  # the objective stopped improving: keep the last parameters
            if cand[2] < trace[-1] - DECREASE_TOL * abs(trace[-1]):
                warnings.warn(f"{label}: the Laplace log-likelihood decreased at EM "
                              f"iteration {i + 1} ({trace[-1]:.6f} -> {cand[2]:.6f}); "
                              "returning the parameters before it", RuntimeWarning,
                              stacklevel=3)
            else:
                converged = True
            break
        P, lap, ll = cand
        trace.append(ll)
        if abs(trace[-1] - trace[-2]) <= tol * abs(trace[-2]):
            converged = True
            break
    return P, lap, trace, converged


__all__ = ["GLMObs", "LINKS", "NewtonFit", "TrajectoryLaplace", "glm_newton", "glm_terms",
           "mstep_random_walk", "run_em", "separable_q", "trajectory_laplace"]
