"""Point-process adaptive filter (PPAF, Eden et al. 2004) and its hybrid (IMM) variant:
pure JAX, one trial.

Model, ``t = 0 .. T-1``::

    x_0 ~ N(m0, P0),   x_t = F_t x_{t-1} + a_t + w_t,   w_t ~ N(0, Q_t)
    Poisson:   y_{t,i} ~ Poisson(dt * exp(f_i(x_t) + o_{t,i}))
    Bernoulli: y_{t,i} ~ Bernoulli(sigmoid(f_i(x_t) + o_{t,i}))          (observed entries)

with ``f`` any differentiable map ``(d,) -> (N,)`` (the log-intensity, or the log-odds for
Bernoulli), or the log-linear case ``f(x) = C x``.

One filter step linearises the log-likelihood ``l(x) = log p(y_t | x)`` at a point
``xh`` (the predicted mean for the classic filter, the posterior mode for the iterated
one) and conditions the predicted Gaussian on the *pseudo-observation*

    J_t = -Hess l(xh)   (Eden's  sum_i grad f_i grad f_i' lam_i dt - (y_i - lam_i dt) Hess f_i)
    h_t = J_t xh + grad l(xh)
    r_t = -2 [l(xh) - grad l(xh)'xh - xh'J_t xh / 2]

exactly as the information-form Kalman kernel (:mod:`spikessm.kernels.kalman`) conditions
on Gaussian emissions. So ``P+^-1 = P-^-1 + J_t`` and, for ``xh = m-``,
``m+ = m- + P+ grad l(m-)``: the Eden 2004 update. Running
:func:`spikessm.kernels.kalman.filter_smooth` on the stored ``(J, h, r)`` reproduces the
filter and adds the RTS smoother. The per-step term of that kernel,
``log int N(x; m-, P-) exp(quadratic expansion of l at xh) dx`` plus the count constants,
is the Gaussian (classic) or Laplace (iterated) approximation of ``log p(y_t | y_<t)``.

When the observed information ``J_t`` makes ``P-^-1 + J_t`` indefinite (a nonlinear
log-intensity with curvature and a silent bin can do this), the step uses the expected
(Fisher) information ``sum_i w_i grad f_i grad f_i'`` instead and the step is counted
(``fallback``). Log-linear models never need it (their observed and expected
information are equal).

Written here because no maintained JAX library has this filter with autodiff
intensities, Bernoulli observations and missing entries; the update, likelihood and
smoother are those of our Kalman kernel.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax.scipy.linalg import cho_solve

from . import kalman as K
from .pointprocess import N_LINE_SEARCH

POISSON, BERNOULLI = "poisson", "bernoulli"


class FilterSteps(NamedTuple):
    """Per-step filter output (one trial).

    predicted_means (T, d), predicted_covs (T, d, d), filtered_means (T, d),
    filtered_covs (T, d, d); J (T, d, d), h (T, d), r (T,): the pseudo-observations;
    log_likelihoods (T,): approximate log p(y_t | y_<t) without the count constants
    (``sum_i y log dt - log y!`` for Poisson, added by the caller);
    fallback (T,) bool: the step used the Fisher information; newton_iters (T,) int.
    """

    predicted_means: jax.Array
    predicted_covs: jax.Array
    filtered_means: jax.Array
    filtered_covs: jax.Array
    J: jax.Array
    h: jax.Array
    r: jax.Array
    log_likelihoods: jax.Array
    fallback: jax.Array
    newton_iters: jax.Array


# --------------------------------------------------------------------------------------
# Emission terms
# --------------------------------------------------------------------------------------
def family_terms(eta, y, mask, dt, family: str):
    """Log-likelihood pieces of one bin given the linear predictor ``eta`` (N,).

    Returns (ell, e, w): ell = sum of observed log-pmf terms without the count constants
    (``y eta - dt e^eta`` Poisson, ``y eta - log(1 + e^eta)`` Bernoulli), e = d ell/d eta
    (N,), w = -d2 ell/d eta2 (N,), all zero where ``mask`` is False (``mask`` None: all
    entries observed). Batched over leading axes (ell sums the last axis only).
    """
    keep = (lambda v: v) if mask is None else (lambda v: jnp.where(mask, v, 0.0))
    if family == POISSON:
        mu = keep(dt * jnp.exp(eta))
        return jnp.sum(keep(y * eta) - mu, axis=-1), keep(y - mu), mu
    p = jax.nn.sigmoid(eta)
    return (jnp.sum(keep(y * eta - jax.nn.softplus(eta)), axis=-1), keep(y - p),
            keep(p * (1.0 - p)))


def make_terms(family: str, C=None, f=None):
    """Per-bin emission functions ``(loglik, terms)`` for a log-linear (``C`` (N, d)) or a
    general (``f``: (d,) -> (N,)) linear predictor.

    loglik(x, y, mask, off, dt) -> ell; terms(x, y, mask, off, dt) -> (ell, grad (d,),
    observed information (d, d), expected information (d, d)).
    """
    if f is None:
        def eta_fn(x, off):
            return C @ x + off
    else:
        def eta_fn(x, off):
            return f(x) + off

    def loglik(x, y, mask, off, dt):
        return family_terms(eta_fn(x, off), y, mask, dt, family)[0]

    def terms(x, y, mask, off, dt):
        eta = eta_fn(x, off)
        ell, e, w = family_terms(eta, y, mask, dt, family)
        Jf = C if f is None else jax.jacfwd(f)(x)  # (N, d)
        fisher = (Jf * w[:, None]).T @ Jf
        if f is None:
            return ell, Jf.T @ e, fisher, fisher
        e_c = jax.lax.stop_gradient(e)
        curv = jax.hessian(lambda z: e_c @ f(z))(x)
        return ell, Jf.T @ e, K._sym(fisher - curv), fisher

    return loglik, terms


# --------------------------------------------------------------------------------------
# One update step (general path)
# --------------------------------------------------------------------------------------
def _posdef(S):
    return jnp.all(jnp.isfinite(jnp.linalg.cholesky(S)))


def _mode(m, L, y, mask, off, dt, loglik, terms, max_iter, tol):
    """Posterior mode of l(m + L z) - |z|^2/2 by Newton with a vectorised backtracking
    line search (whitened coordinates, start z = 0). Returns (x*, iterations)."""
    d = m.shape[0]
    eye = jnp.eye(d, dtype=m.dtype)
    alphas = 0.5 ** jnp.arange(N_LINE_SEARCH, dtype=m.dtype)

    def phi(z):
        v = loglik(m + L @ z, y, mask, off, dt) - 0.5 * z @ z
        return jnp.where(jnp.isnan(v), -jnp.inf, v)

    def body(c):
        i, z, fz, _ = c
        _, g, Jo, Jf = terms(m + L @ z, y, mask, off, dt)
        Ho = eye + L.T @ Jo @ L
        H = jnp.where(_posdef(Ho), Ho, eye + L.T @ Jf @ L)
        dz = cho_solve((jnp.linalg.cholesky(K._sym(H)), True), L.T @ g - z)
        dz = jnp.where(jnp.all(jnp.isfinite(dz)), dz, 0.0)
        fc = jax.vmap(phi)(z[None, :] + alphas[:, None] * dz[None, :])
        ok = fc >= fz
        j = jnp.argmax(ok)
        alpha = jnp.where(jnp.any(ok), alphas[j], 0.0)
        f_new = jnp.where(jnp.any(ok), fc[j], fz)
        return i + 1, z + alpha * dz, f_new, jnp.max(jnp.abs(alpha * dz))

    def cond(c):
        return (c[0] < max_iter) & (c[3] > tol)

    z0 = jnp.zeros((d,), m.dtype)
    n, z, _, _ = jax.lax.while_loop(
        cond, body, (jnp.zeros((), jnp.int32), z0, phi(z0), jnp.asarray(jnp.inf, m.dtype)))
    return m + L @ z, n


def update(m, P, y, mask, off, dt, loglik, terms, *, iterated: bool, max_iter: int, tol):
    """Condition the predicted N(m, P) on one bin. Returns (mu, Sig, ll, J, h, r,
    fallback, newton_iters); ``ll`` without the count constant."""
    d = m.shape[0]
    eye = jnp.eye(d, dtype=m.dtype)
    if not iterated and d <= SMALL_D:
        return _update_small(m, P, *terms(m, y, mask, off, dt))
    L = jnp.linalg.cholesky(P)
    if iterated:
        xh, it = _mode(m, L, y, mask, off, dt, loglik, terms, max_iter, tol)
    else:
        xh, it = m, jnp.zeros((), jnp.int32)
    ell, g, Jo, Jf = terms(xh, y, mask, off, dt)
    ok = _posdef(eye + L.T @ Jo @ L)
    J = jnp.where(ok, Jo, Jf)
    h = J @ xh + g
    r = -2.0 * (ell - g @ xh - 0.5 * xh @ (J @ xh))
    mu, Sig, ll = K._info_update_chol(m, L, J, h, r, eye)
    return mu, Sig, ll, J, h, r, ~ok, it


def _update_small(m, P, ell, g, Jo, Jf):
    """:func:`update` at the predicted mean for d <= SMALL_D, with the unrolled SPD
    inverses of :func:`inv_spd_small` (a non-positive pivot of P^-1 + J_obs, i.e. a
    log-determinant that is not finite, selects the Fisher information). With h = J m + g
    the kernel's likelihood term is ``ell - log det(I + P J) / 2 + g'Sig g / 2``."""
    Pinv, ld_p = inv_spd_small(P)
    Sig_o, ld_o = inv_spd_small(Pinv + Jo)
    Sig_f, ld_f = inv_spd_small(Pinv + Jf)
    ok = jnp.isfinite(ld_o)
    Sig = K._sym(jnp.where(ok, Sig_o, Sig_f))
    J = jnp.where(ok, Jo, Jf)
    dm = Sig @ g
    ll = ell - 0.5 * (ld_p + jnp.where(ok, ld_o, ld_f)) + 0.5 * g @ dm
    h = J @ m + g
    r = -2.0 * (ell - g @ m - 0.5 * m @ (J @ m))
    return m + dm, Sig, ll, J, h, r, ~ok, jnp.zeros((), jnp.int32)


def _next(X):
    """X[t+1] at step t (the last step's prediction is unused)."""
    return jnp.concatenate([X[1:], X[-1:]], axis=0)


def ppaf_forward(m0, P0, F, a, Q, y, mask, off, dt, *, family: str, C=None, f=None,
                 iterated: bool = False, max_iter: int = 30, tol=1e-10) -> FilterSteps:
    """Point-process adaptive filter, general path (any ``f`` or ``C``, iterated or not).

    Args:
      m0 (d,), P0 (d, d): prior of x_0; F (d, d) or (T, d, d), a (T, d), Q (d, d) or
        (T, d, d): dynamics as in :func:`spikessm.kernels.kalman.filter_smooth`.
      y (T, N) counts (0 where missing), mask (T, N) bool, off (T, N) offsets, dt.
      family: "poisson" | "bernoulli" (static); C (N, d) or f (static callable).
      iterated: re-linearise at the posterior mode (Newton, ``max_iter``, ``tol``).
    """
    loglik, terms = make_terms(family, C=C, f=f)
    xs = {"y": y, "mask": mask, "off": off, "a": _next(a)}
    if F.ndim == 3:
        xs["F"] = _next(F)
    if Q.ndim == 3:
        xs["Q"] = _next(Q)

    def step(carry, x):
        m, P = carry
        mu, Sig, ll, J, h, r, fb, it = update(m, P, x["y"], x["mask"], x["off"], dt, loglik,
                                              terms, iterated=iterated, max_iter=max_iter,
                                              tol=tol)
        F_n, Q_n = x.get("F", F), x.get("Q", Q)
        m_n = F_n @ mu + x["a"]
        P_n = K._sym(F_n @ Sig @ F_n.T + Q_n)
        return (m_n, P_n), (m, P, mu, Sig, J, h, r, ll, fb, it)

    _, out = jax.lax.scan(step, (m0, K._sym(P0)), xs)
    ms, Ps, mus, Sigs, J, h, r, ll, fb, it = out
    return FilterSteps(ms, Ps, mus, Sigs, J, h, r, ll, fb, it)


# --------------------------------------------------------------------------------------
# Log-linear fast path (classic update, time-invariant dynamics)
# --------------------------------------------------------------------------------------
SMALL_D = 4


def inv_spd_small(S):
    """Inverse and log-determinant of a small symmetric positive definite matrix by
    Gauss-Jordan elimination unrolled over its (static) size: no pivoting is needed for
    SPD matrices (every pivot is a positive Schur complement), and the unrolled scalar
    arithmetic fuses into a few kernels, where a LAPACK call per step would cost more
    than the arithmetic for d <= 4. Returns (inverse (d, d), log det S)."""
    d = S.shape[0]
    M = [[S[i, j] for j in range(d)] for i in range(d)]
    inv = [[jnp.ones((), S.dtype) if i == j else jnp.zeros((), S.dtype) for j in range(d)]
           for i in range(d)]
    logdet = jnp.zeros((), S.dtype)
    for k in range(d):
        logdet = logdet + jnp.log(M[k][k])
        piv = 1.0 / M[k][k]
        M[k] = [v * piv for v in M[k]]
        inv[k] = [v * piv for v in inv[k]]
        for i in range(d):
            if i != k:
                c = M[i][k]
                M[i] = [u - c * v for u, v in zip(M[i], M[k])]
                inv[i] = [u - c * v for u, v in zip(inv[i], inv[k])]
    return jnp.stack([jnp.stack(row) for row in inv]), logdet


def _cov_update(P, J, eye):
    """Sig = (P^-1 + J)^-1 and log det(I + P J) for the fast path."""
    if P.shape[0] <= SMALL_D:
        Pinv, ld_p = inv_spd_small(P)
        Sig, ld_b = inv_spd_small(Pinv + J)
        return K._sym(Sig), ld_p + ld_b  # log det(P) + log det(P^-1 + J)
    Lp = K._chol(P)
    Ls = K._chol(K._sym(eye + Lp.T @ J @ Lp))
    W = jax.scipy.linalg.solve_triangular(Ls, Lp.T, lower=True)
    return W.T @ W, 2.0 * jnp.sum(jnp.log(jnp.diag(Ls)))


def loglinear_forward(m0, P0, F, Q, y, mask, off, C, dt, *, family: str,
                      pseudo: bool = True) -> FilterSteps:
    """The classic (non-iterated) filter for ``f(x) = C x`` with time-invariant F, Q and
    no additive dynamics term: the same filter as :func:`ppaf_forward`, leaner.

    ``mask`` may be None (nothing missing) and ``off`` (N,) (shared by all bins). Each step
    is: ``eta = C m + o``; weights and residuals of the family; ``J`` as one
    (N,) x (N, d*d) product with the precomputed outer products of the rows of C;
    ``Sig = (P^-1 + J)^-1`` (:func:`inv_spd_small` for d <= 4, Cholesky factors
    otherwise), ``mu = m + Sig g`` with ``g = C'e``; predict. The step's likelihood term
    is the kernel's with ``h = J m + g`` (so ``h - J m = g``), which simplifies to
    ``ell - log det(I + P J) / 2 + g'Sig g / 2``. The pseudo-observations (J, h, r) for
    the smoothers are computed afterwards, batched over time (None when ``pseudo`` is
    False, static).
    """
    T, N = y.shape
    d = m0.shape[0]
    eye = jnp.eye(d, dtype=y.dtype)
    CC = (C[:, :, None] * C[:, None, :]).reshape(N, d * d)
    xs = {"y": y}
    if mask is not None:
        xs["mask"] = mask
    if off.ndim == 2:
        xs["off"] = off

    def step(carry, x):
        m, P = carry
        ell, e, w = family_terms(C @ m + x.get("off", off), x["y"], x.get("mask"), dt, family)
        Sig, logdet = _cov_update(P, (w @ CC).reshape(d, d), eye)
        g = e @ C
        dm = Sig @ g
        mu = m + dm
        ll = ell - 0.5 * logdet + 0.5 * g @ dm
        P_n = F @ Sig @ F.T + Q
        return (F @ mu, K._sym(P_n)), jnp.concatenate(
            [m, mu, ll[None], P.ravel(), Sig.ravel()])

    _, out = jax.lax.scan(step, (m0, K._sym(P0)), xs, unroll=4)
    ms, mus, ll = out[:, :d], out[:, d:2 * d], out[:, 2 * d]
    k0 = 2 * d + 1
    Ps = out[:, k0:k0 + d * d].reshape(T, d, d)
    Sigs = out[:, k0 + d * d:].reshape(T, d, d)
    J = h = r = None
    if pseudo:  # pseudo-observations at the predicted means, batched over time
        ell, e, w = family_terms(ms @ C.T + off, y, mask, dt, family)  # (T,), (T, N), (T, N)
        J = (w @ CC).reshape(T, d, d)
        g = e @ C
        Jm = jnp.einsum("tij,tj->ti", J, ms)
        h = Jm + g
        r = -2.0 * (ell - jnp.sum(g * ms, axis=1) - 0.5 * jnp.sum(ms * Jm, axis=1))
    zeros = jnp.zeros((T,), jnp.int32)
    return FilterSteps(ms, Ps, mus, Sigs, J, h, r, ll, zeros.astype(bool), zeros)


# --------------------------------------------------------------------------------------
# Smoothers on the filter's pseudo-observations
# --------------------------------------------------------------------------------------
def smooth(F, Q, steps: FilterSteps):
    """RTS fixed-interval smoother on the filter's Gaussian posteriors: the Kalman kernel's
    backward pass (:func:`spikessm.kernels.kalman.rts_smooth`). The same as running
    :func:`spikessm.kernels.kalman.filter_smooth` on the filter's pseudo-observations
    (tested), without repeating the forward pass. Returns (means, covs, cross_covs)."""
    Lps = jnp.linalg.cholesky(steps.predicted_covs)
    return K.rts_smooth(F, Q, steps.predicted_means, steps.filtered_means, steps.filtered_covs,
                        Lps)


def fixed_lag(F, Q, steps: FilterSteps, lag: int):
    """Fixed-lag smoother: for each t, the mean and covariance of x_t given y_0..y_{t+lag}
    (given all data for t > T-1-lag). ``lag`` static, >= 1.

    Each estimate is an RTS backward pass of ``lag`` steps started from the filtered
    moments at t+lag (gains and Joseph terms of
    :func:`spikessm.kernels.kalman.smoother_gains`); the passes for all t run at once
    (vectorised over t), so the cost is O(T lag d^3) and the memory O(T d^2).
    """
    mus, Sigs, ms = steps.filtered_means, steps.filtered_covs, steps.predicted_means
    T = mus.shape[0]
    G, A = K.smoother_gains(F, Q, Sigs, jnp.linalg.cholesky(steps.predicted_covs))
    # pad so that index s in [-lag, T-1) is valid for every endpoint
    pad = lambda X: jnp.concatenate([jnp.zeros((lag,) + X.shape[1:], X.dtype), X], axis=0)
    Gp, Ap, mup, mnp = pad(G), pad(A), pad(mus[:-1]), pad(ms[1:])
    end = jnp.minimum(jnp.arange(T) + lag, T - 1)  # endpoint for each target t

    def one(t, e):
        def body(k, c):
            xs, Ss = c
            s = e - 1 - k  # step s -> uses data of s+1
            i = s + lag
            active = s >= t
            xs_n = mup[i] + Gp[i] @ (xs - mnp[i])
            Ss_n = K._sym(Ap[i] + Gp[i] @ Ss @ Gp[i].T)
            return jnp.where(active, xs_n, xs), jnp.where(active, Ss_n, Ss)

        return jax.lax.fori_loop(0, lag, body, (mus[e], Sigs[e]))

    return jax.vmap(one)(jnp.arange(T), end)


# --------------------------------------------------------------------------------------
# Goal-directed prior (known target)
# --------------------------------------------------------------------------------------
def goal_prior(m0, P0, A, Q, target, target_cov, T: int, target_time: int):
    """Time-varying prior of x_0..x_{T-1} conditioned on ``x_{target_time} ~ N(target,
    target_cov)`` (``target_time >= T-1``, static), for ``x_t = A x_{t-1} + w_t``.

    With ``Phi_t = A^(target_time - t)`` and ``Pi_t = Cov(x_target | x_t)``
    (``Pi_target_time = target_cov``, ``Pi_{t-1} = Pi_t + Phi_t Q Phi_t'``), the backward
    information from the target gives

        x_t | x_{t-1}, target ~ N(F_t x_{t-1} + a_t, Q_t),
        K_t = Q Phi_t' Pi_{t-1}^-1,  F_t = (I - K_t Phi_t) A,  a_t = K_t target,
        Q_t = Q - K_t Phi_t Q,

    and x_0 | target from conditioning N(m0, P0) on target = Phi_0 x_0 + N(0, Pi_0).
    Returns (m0', P0', F (T, d, d), a (T, d), Q (T, d, d)).
    """
    d = m0.shape[0]
    eye = jnp.eye(d, dtype=m0.dtype)
    n = target_time + 1

    def back(c, _):
        Phi, Pi = c  # Phi_t, Pi_t
        Pi_prev = K._sym(Pi + Phi @ Q @ Phi.T)
        Kt = jnp.linalg.solve(Pi_prev, Phi @ Q).T
        Ft = (eye - Kt @ Phi) @ A
        Qt = K._sym(Q - Kt @ Phi @ Q)
        return (Phi @ A, Pi_prev), (Ft, Kt @ target, Qt, Phi, Pi)

    _, (Fs, As, Qs, Phis, Pis) = jax.lax.scan(back, (eye, K._sym(target_cov)), None,
                                              length=n)
    # reverse: entry k of the scan is t = target_time - k
    Fs, As, Qs, Phis, Pis = (X[::-1][:T] for X in (Fs, As, Qs, Phis, Pis))
    Phi0, Pi0 = Phis[0], Pis[0]
    S = K._sym(Phi0 @ P0 @ Phi0.T + Pi0)
    Kg = jnp.linalg.solve(S, Phi0 @ P0).T
    m0g = m0 + Kg @ (target - Phi0 @ m0)
    P0g = K._sym(P0 - Kg @ Phi0 @ P0)
    return m0g, P0g, Fs, As, Qs


# --------------------------------------------------------------------------------------
# Hybrid filter (IMM over discrete modes)
# --------------------------------------------------------------------------------------
class HybridSteps(NamedTuple):
    """mode_probs (T, M); means (T, d), covs (T, d, d) (mixture moments); mode_means
    (T, M, d), mode_covs (T, M, d, d); log_likelihoods (T,) approximate log p(y_t | y_<t);
    fallback (T, M) bool."""

    mode_probs: jax.Array
    means: jax.Array
    covs: jax.Array
    mode_means: jax.Array
    mode_covs: jax.Array
    log_likelihoods: jax.Array
    fallback: jax.Array


def hybrid_forward(p0, Pt, m0, P0, A, Q, y, mask, off, dt, *, family: str, Cs=None,
                   fs=None, iterated: bool = False, max_iter: int = 30,
                   tol=1e-10) -> HybridSteps:
    """Point-process hybrid filter (Srinivasan et al. 2007), IMM mixing.

    Args:
      p0 (M,): initial mode probabilities; Pt (M, M): Pt[i, j] = P(s_t = j | s_{t-1} = i).
      m0 (M, d), P0 (M, d, d): per-mode prior of x_0; A (M, d, d), Q (M, d, d).
      y, mask (T, N); off (M, T, N): per-mode offsets; dt.
      Cs (M, N, d) log-linear loadings, or fs: tuple of M static callables.

    Step t: mixing (t >= 1) ``c_j = sum_i Pt[i, j] pi_i``, ``w_{i|j} = Pt[i, j] pi_i / c_j``,
    mixed moments per mode; per-mode prediction with (A_j, Q_j) and PPAF update giving
    ``log p(y_t | s_t = j, y_<t)`` (Gaussian / Laplace approximation); posterior mode
    probabilities ``pi_j ∝ c_j p(y_t | s_t = j, ...)``; mixture moments.
    """
    M = p0.shape[0]
    emis = [make_terms(family, C=None if Cs is None else Cs[j], f=None if fs is None else fs[j])
            for j in range(M)]
    T = y.shape[0]

    def step(carry, x):
        pi, mu_prev, Sig_prev = carry
        t, y_t, mk = x
        first = t == 0
        c = jnp.where(first, p0, pi @ Pt)
        W = Pt * pi[:, None] / jnp.maximum(c[None, :], 1e-300)  # W[i, j] = w_{i|j}
        mix_m = W.T @ mu_prev  # (M, d)
        dev = mu_prev[None, :, :] - mix_m[:, None, :]  # (j, i, d)
        mix_P = jnp.einsum("ij,iab->jab", W, Sig_prev) + jnp.einsum(
            "ij,jia,jib->jab", W, dev, dev)
        outs = []
        for j in range(M):
            m_j = jnp.where(first, m0[j], A[j] @ mix_m[j])
            P_j = jnp.where(first, P0[j], K._sym(A[j] @ mix_P[j] @ A[j].T + Q[j]))
            loglik, terms = emis[j]
            mu, Sig, ll, *_, fb, _ = update(m_j, P_j, y_t, mk, off[j, t], dt, loglik, terms,
                                            iterated=iterated, max_iter=max_iter, tol=tol)
            outs.append((mu, Sig, ll, fb))
        mus = jnp.stack([o[0] for o in outs])
        Sigs = jnp.stack([o[1] for o in outs])
        lls = jnp.stack([o[2] for o in outs])
        fb = jnp.stack([o[3] for o in outs])
        logc = jnp.log(jnp.maximum(c, 1e-300)) + lls
        tot = jax.scipy.special.logsumexp(logc)
        pi_n = jnp.exp(logc - tot)
        mean = pi_n @ mus
        dv = mus - mean
        cov = jnp.einsum("j,jab->ab", pi_n, Sigs) + jnp.einsum("j,ja,jb->ab", pi_n, dv, dv)
        return (pi_n, mus, Sigs), HybridSteps(pi_n, mean, K._sym(cov), mus, Sigs, tot, fb)

    d = m0.shape[1]
    init = (p0, jnp.zeros((M, d), y.dtype), jnp.tile(jnp.eye(d, dtype=y.dtype), (M, 1, 1)))
    _, out = jax.lax.scan(step, init, (jnp.arange(T), y, mask))
    return out


__all__ = ["FilterSteps", "HybridSteps", "family_terms", "fixed_lag", "goal_prior",
           "hybrid_forward", "loglinear_forward", "make_terms", "ppaf_forward", "smooth",
           "update"]
