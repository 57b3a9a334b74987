"""Laplace smoother for a linear-Gaussian latent trajectory with Poisson observations.

One trial, ``t = 0 .. T-1``::

    x_0 ~ N(m0, P0),   x_t = A x_{t-1} + a_t + w_t,   w_t ~ N(0, Q)
    y_{t,i} ~ Poisson(dt * exp(c_i' x_t + o_{t,i}))        (observed entries only)

plus, optionally, Gaussian channels entering as exact information ``(Jg, hg, rg)``
(:func:`spikessm.kernels.kalman.gaussian_information`).

The posterior mode of the whole trajectory is found by Newton's method. The log joint is
the Gaussian prior plus a concave Poisson term; its Hessian H is block-tridiagonal
(diagonal blocks ``C' diag(lam_t) C + Jg_t`` plus the prior's ``P0^-1``, ``Q^-1``,
``A'Q^-1 A``; off-diagonal blocks ``-Q^-1 A``), so a Newton step is one block LDL'
factorisation of H (a sequential pass over t with the Schur complements
``S_t = D_t - M S_{t-1}^-1 M'``, ``M = Q^-1 A``) and a back substitution
(:func:`precision_solve`). Only the mean is solved during the iterations; the covariances
are formed once, at the returned trajectory (:func:`inverse_blocks`). A backtracking line
search on the exact log joint keeps every step an ascent step (up to its rounding error).
Iterations stop when the Newton step *proposed* at the current trajectory is below ``tol``
in every coordinate, so the factorisation already computed there serves the posterior.

At that trajectory x the covariances and lag-one cross-covariances are blocks of H^-1
and the log-likelihood is the Gaussian integral of prior x second-order expansion of the
log joint at x, ``phi(x) + g'H^-1 g / 2 - log det H / 2`` plus the prior's normalising
constants: exactly the Laplace approximation of log p(y) at the mode (this is the value
the information-form Kalman smoother with pseudo-observations gave; the precision form
was measured 4-10x faster per pass on CPU for d <= 8, see :func:`spd_inverse`, :func:`mm`).

Written here (not taken from a library) because no maintained JAX library has a
full-trajectory Laplace smoother with missing entries and ragged trials.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from .pointprocess import poisson_step_constants


class LaplacePosterior(NamedTuple):
    """Laplace posterior moments of one trial: smoothed_means (T, d) (the mode),
    smoothed_covs (T, d, d) and cross_covs (T, d, d) with ``cross_covs[t] =
    Cov(x_t, x_{t-1} | y)`` (zero at t = 0): blocks of the inverse Hessian at the mode."""

    smoothed_means: jax.Array
    smoothed_covs: jax.Array
    cross_covs: jax.Array


class LaplaceResult(NamedTuple):
    """Per-trial Laplace posterior (leading trial axis added by vmap).

    mode (T, d): posterior mode (last Newton iterate);
    posterior: :class:`LaplacePosterior` at ``mode``;
    log_likelihood (): Laplace approximation of log p(y) for the trial;
    n_iter (): Newton steps taken; converged (): the Newton step proposed at ``mode`` is
    below ``tol`` (within ``max_iter`` steps).
    """

    mode: jax.Array
    posterior: LaplacePosterior
    log_likelihood: jax.Array
    n_iter: jax.Array
    converged: jax.Array


def poisson_constant(y, mask, dt):
    """sum over observed entries of ``y log dt - log y!`` (the parameter-free part)."""
    return jnp.sum(poisson_step_constants(y, mask, dt))


UNROLL_MAX = 8


def spd_inverse(S):
    """Inverse and log-determinant of a small symmetric positive definite matrix (d, d)
    (only the lower triangle is read).

    For d <= ``UNROLL_MAX`` (static) the Cholesky factorisation and the inverse are written
    out entry by entry: inside a ``lax.scan`` on CPU, XLA fuses these scalar operations
    into a few kernels, where LAPACK calls cost a fixed launch each (measured 4x faster
    per step at d = 3). A matrix that is not positive definite gives NaN, as LAPACK would.
    """
    d = S.shape[-1]
    if d > UNROLL_MAX:
        L = jnp.linalg.cholesky(S)
        Li = jax.scipy.linalg.solve_triangular(L, jnp.eye(d, dtype=S.dtype), lower=True)
        return Li.T @ Li, 2.0 * jnp.sum(jnp.log(jnp.diag(L)))
    L = [[None] * d for _ in range(d)]
    rdiag = [None] * d
    logdet = 0.0
    for j in range(d):
        s = S[j, j] - sum(L[j][k] * L[j][k] for k in range(j))
        L[j][j] = jnp.sqrt(s)
        rdiag[j] = 1.0 / L[j][j]
        logdet = logdet + jnp.log(s)
        for i in range(j + 1, d):
            L[i][j] = (S[i, j] - sum(L[i][k] * L[j][k] for k in range(j))) * rdiag[j]
    Li = [[None] * d for _ in range(d)]           # inverse of L (lower triangular)
    for i in range(d):
        Li[i][i] = rdiag[i]
        for j in range(i):
            Li[i][j] = -rdiag[i] * sum(L[i][k] * Li[k][j] for k in range(j, i))
    inv = [[None] * d for _ in range(d)]
    for i in range(d):
        for j in range(i + 1):
            inv[i][j] = inv[j][i] = sum(Li[k][i] * Li[k][j] for k in range(i, d))
    return jnp.stack([jnp.stack(row) for row in inv]), logdet


def mm(A, B):
    """Matrix product of small matrices (..., d, k) @ (..., k, e) as a broadcast multiply
    and sum: inside ``lax.scan`` on CPU, XLA fuses it, whereas a ``dot`` of 5 x 5 matrices
    costs a few microseconds per call (measured 10x slower per step at d = 5)."""
    return jnp.sum(A[..., :, :, None] * B[..., None, :, :], axis=-2)


def mv(A, v):
    """Small matrix-vector product (..., d, k) @ (..., k) (see :func:`mm`)."""
    return jnp.sum(A * v[..., None, :], axis=-1)


def _chol_inverse(P):
    """Inverse and log-determinant of an SPD matrix via LAPACK (once per call)."""
    L = jnp.linalg.cholesky(P)
    Li = jax.scipy.linalg.solve_triangular(L, jnp.eye(P.shape[0], dtype=P.dtype), lower=True)
    return Li.T @ Li, 2.0 * jnp.sum(jnp.log(jnp.diag(L)))


def precision_solve(D, M, g):
    """Solve H v = g for the block-tridiagonal SPD matrix H with diagonal blocks ``D``
    (T, d, d) and off-diagonal blocks ``H[t, t-1] = -M`` (d, d).

    Block LDL' factorisation (one sequential pass, the Schur complements
    ``S_t = D_t - M S_{t-1}^-1 M'``) and forward substitution, then back substitution
    ``v_t = u_t + G_t v_{t+1}`` with ``G_t = S_t^-1 M'``.
    Returns (v (T, d), Sinv (T, d, d), G (T, d, d) with G[T-1] = 0, log det H).
    """
    T, d = g.shape
    MT = M.T

    def fwd(carry, inp):
        Sinv_p, u_p = carry
        D_t, g_t = inp
        Sinv, logdet = spd_inverse(D_t - mm(mm(M, Sinv_p), MT))
        u = mv(Sinv, g_t + mv(M, u_p))
        # G_t formed in the same pass (measured ~20% faster than a separate pass over T)
        return (Sinv, u), (Sinv, mm(Sinv, MT), u, logdet)

    zero = jnp.zeros((d, d), g.dtype)
    _, (Sinv, G, u, logdet) = jax.lax.scan(fwd, (zero, jnp.zeros(d, g.dtype)), (D, g))
    G = G.at[-1].set(zero)
    v = back_substitute(G, u)
    return v, Sinv, G, jnp.sum(logdet)


def back_substitute(G, u):
    """v_t = u_t + G_t v_{t+1} (v_{T-1} = u_{T-1} when G[T-1] = 0), a reverse scan."""

    def bwd(v_n, inp):
        G_t, u_t = inp
        v = u_t + mv(G_t, v_n)
        return v, v

    _, v = jax.lax.scan(bwd, jnp.zeros_like(u[0]), (G, u), reverse=True)
    return v


def inverse_blocks(Sinv, G):
    """Diagonal blocks and lag-one blocks of H^-1 from :func:`precision_solve`'s factors:
    ``Sig_t = S_t^-1 + G_t Sig_{t+1} G_t'`` (a sum of PSD terms) and
    ``Cov(x_t, x_{t-1}) = Sig_t G_{t-1}'`` (zero at t = 0)."""

    def bwd(Sig_n, inp):
        Si, G_t = inp
        Sig = Si + mm(mm(G_t, Sig_n), G_t.T)
        Sig = 0.5 * (Sig + Sig.T)
        return Sig, Sig

    _, Sig = jax.lax.scan(bwd, jnp.zeros_like(Sinv[0]), (Sinv, G), reverse=True)
    cross = mm(Sig[1:], jnp.swapaxes(G[:-1], -1, -2))
    cross = jnp.concatenate([jnp.zeros_like(Sig[:1]), cross], axis=0)
    return Sig, cross


def laplace_smoother(m0, P0, A, a, Q, y, mask, off, C, dt, Jg, hg, rg, x_init, *,
                     max_iter: int = 50, tol: float = 1e-8) -> LaplaceResult:
    """Laplace posterior of one trial by Newton's method on the whole trajectory.

    Args:
      m0 (d,), P0 (d, d), A (d, d), a (T, d) (``a[0]`` unused), Q (d, d): dynamics.
      y (T, N) counts (anything finite where ``mask`` is False), mask (T, N) bool,
      off (T, N) log-rate offsets (baseline + covariates), C (N, d), dt: bin width.
      Jg (T, d, d), hg (T, d), rg (T,): information of any Gaussian channels (zeros if none).
      x_init (T, d): starting trajectory (e.g. the previous EM iteration's mode).
      max_iter, tol: cap on Newton steps (static) and step tolerance (traced): iterations
        stop when the Newton step proposed at the current trajectory is below ``tol``.

    Returns:
      :class:`LaplaceResult`.
    """
    dtype = y.dtype
    T, d = x_init.shape
    m = mask.astype(dtype)
    ym = y * m
    const = poisson_constant(y, mask, dt)
    P0i, logdet_P0 = _chol_inverse(P0)
    Qi, logdet_Q = _chol_inverse(Q)
    M = Qi @ A
    # prior blocks of the Hessian: P0^-1 at t = 0, Q^-1 at t >= 1, A'Q^-1 A at t < T-1
    Dp = jnp.zeros((T, d, d), dtype).at[0].add(P0i).at[1:].add(Qi).at[:-1].add(A.T @ M)
    Dg = Dp + Jg
    CC = (C[:, :, None] * C[:, None, :]).reshape(C.shape[0], d * d)
    rg_sum = jnp.sum(rg)

    def log_joint(x, eta):
        """Log joint up to constants (without the Gaussian channels' r terms), and what
        the Newton direction at x reuses: the prior residual weights and the rates."""
        w0 = P0i @ (x[0] - m0)
        e = x[1:] - x[:-1] @ A.T - a[1:]
        w = e @ Qi
        lam = dt * m * jnp.exp(eta)
        prior = -0.5 * ((x[0] - m0) @ w0 + jnp.sum(w * e))
        pois = jnp.sum(ym * eta - lam)
        Jx = jnp.einsum("tij,tj->ti", Jg, x)
        gauss = -0.5 * jnp.sum(x * Jx) + jnp.sum(hg * x)
        val = prior + pois + gauss
        return jnp.where(jnp.isnan(val), -jnp.inf, val), (w0, w, lam, Jx)

    def newton(aux):
        """Newton direction at the point whose :func:`log_joint` gave ``aux``:
        (dx, Sinv, G, log det H, gradient . dx)."""
        w0, w, lam, Jx = aux
        grad = (ym - lam) @ C + hg - Jx
        grad = grad.at[0].add(-w0).at[1:].add(-w).at[:-1].add(w @ A)
        D = Dg + (lam @ CC).reshape(T, d, d)
        dx, Sinv, G, logdet = precision_solve(D, M, grad)
        return dx, Sinv, G, logdet, jnp.sum(grad * dx)

    def cond(c):
        i, done = c[0], c[-1]
        return (i < max_iter) & ~done

    def body(c):
        i, x, eta, phi0, dx = c[:5]
        deta = dx @ C.T

        # an ascent step, up to the rounding error of the log joint (a sum of O(TN) terms):
        # near the mode the gain of a Newton step falls below it, and an exact comparison
        # would then halve good steps at random (linear instead of quadratic convergence)
        floor = phi0 - 1e-13 * jnp.abs(phi0)

        def ls_cond(s):
            return (s[1] < floor) & (s[0] > 1e-6)

        def ls_body(s):
            alpha = 0.5 * s[0]
            val, aux = log_joint(x + alpha * dx, eta + alpha * deta)
            return alpha, val, aux

        # the accepted point's log joint, residuals and rates are kept for the next
        # Newton direction (one exp over the (T, N) rates per accepted step)
        alpha, val, aux = jax.lax.while_loop(
            ls_cond, ls_body, (jnp.asarray(1.0, dtype), *log_joint(x + dx, eta + deta)))
        ok = val >= floor
        # no ascent step: stay at x and keep its Newton quantities (carried in c)
        keep = lambda new_, old_: jnp.where(ok, new_, old_)
        x_new = keep(x + alpha * dx, x)
        eta_new = keep(eta + alpha * deta, eta)
        dx_n, Sinv, G, logdet, gdx = jax.tree_util.tree_map(keep, newton(aux), c[4:9])
        done = (jnp.max(jnp.abs(dx_n)) <= tol) | ~ok
        return (i + jnp.where(ok, 1, 0), x_new, eta_new, keep(val, phi0), dx_n, Sinv, G,
                logdet, gdx, done)

    eta0 = x_init @ C.T + off
    phi, aux = log_joint(x_init, eta0)
    dx, Sinv, G, logdet, gdx = newton(aux)
    init = (jnp.zeros((), jnp.int32), x_init, eta0, phi, dx, Sinv, G, logdet, gdx,
            jnp.max(jnp.abs(dx)) <= tol)
    n, x, _, phi, dx, Sinv, G, logdet, gdx, _ = jax.lax.while_loop(cond, body, init)
    Sig, cross = inverse_blocks(Sinv, G)
    # Gaussian integral of prior x second-order expansion of the log joint at x (exactly
    # the Laplace approximation when x is the mode; the g'H^-1 g / 2 term is the
    # second-order correction when it is within tol of it)
    ll = (phi + 0.5 * gdx - 0.5 * logdet - 0.5 * logdet_P0 - 0.5 * (T - 1) * logdet_Q
          - 0.5 * rg_sum + const)
    return LaplaceResult(x, LaplacePosterior(x, Sig, cross), ll, n,
                         jnp.max(jnp.abs(dx)) <= tol)


def expected_rates(mu, S, C, off, dt):
    """E[dt exp(c_i'x_t + o_ti)] under N(mu_t, S_t): (T, N). ``S`` (T, d, d)."""
    quad = jnp.einsum("ni,tij,nj->tn", C, S, C)
    return dt * jnp.exp(mu @ C.T + off + 0.5 * quad)


__all__ = ["LaplacePosterior", "LaplaceResult", "laplace_smoother", "poisson_constant",
           "expected_rates", "precision_solve", "inverse_blocks", "spd_inverse"]
