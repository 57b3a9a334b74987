"""Laplace smoother for a linear-Gaussian latent trajectory with Poisson observations.

One trial, ``t = 0 .. T-1``::

    x_0 ~ N(m0, P0),   x_t = A x_{t-1} + a_t + w_t,   w_t ~ N(0, Q)
    y_{t,i} ~ Poisson(dt * exp(c_i' x_t + o_{t,i}))        (observed entries only)

plus, optionally, Gaussian channels entering as exact information ``(Jg, hg, rg)``
(:func:`spikessm.kernels.kalman.gaussian_information`).

The posterior mode of the whole trajectory is found by Newton's method. The log joint is
the Gaussian prior plus a concave Poisson term, and its Hessian is block-tridiagonal, so a
Newton step is *one pass of the information-form Kalman smoother* with pseudo-observations
from the second-order expansion of the Poisson term at the current trajectory ``xb``::

    lam_t = dt exp(C xb_t + o_t),   g_t = C'(y_t - lam_t),   Jp_t = C' diag(lam_t) C
    J_t = Jp_t,  h_t = Jp_t xb_t + g_t,  r_t = -2 [f_t(xb_t) - g_t'xb_t - xb_t'Jp_t xb_t / 2]

(``f_t`` the Poisson log-pmf summed over observed neurons). The smoothed means are the
Newton target; a backtracking line search on the exact log joint keeps every step an
ascent step. Iterations stop when the largest coordinate change is below ``tol``.

At the mode the same smoother pass gives the Laplace posterior: covariances and lag-one
cross-covariances are blocks of the inverse Hessian, and the sum of the kernel's per-step
log-likelihood terms is exactly the Laplace approximation of log p(y) (the Gaussian
integral of prior x quadratic expansion at the mode).

Written here (not taken from a library) because no maintained JAX library has a
full-trajectory Laplace smoother with missing entries and ragged trials; it reuses our
Kalman kernel, so the numerics (Cholesky updates, Joseph smoother) are shared.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from . import kalman as K
from .pointprocess import poisson_step_constants


class LaplaceResult(NamedTuple):
    """Per-trial Laplace posterior (leading trial axis added by vmap).

    mode (T, d): posterior mode (last Newton iterate);
    posterior: :class:`~spikessm.kernels.kalman.Posterior` of the pass linearised at ``mode``;
    log_likelihood (): Laplace approximation of log p(y) for the trial;
    n_iter (): Newton passes; converged (): step below ``tol`` within ``max_iter``.
    """

    mode: jax.Array
    posterior: K.Posterior
    log_likelihood: jax.Array
    n_iter: jax.Array
    converged: jax.Array


def poisson_constant(y, mask, dt):
    """sum over observed entries of ``y log dt - log y!`` (the parameter-free part)."""
    return jnp.sum(poisson_step_constants(y, mask, dt))


def _prior_pieces(x, m0, P0, A, a, Q):
    """Residuals of the trajectory under the prior: e0 (d,), e (T-1, d)."""
    return x[0] - m0, x[1:] - x[:-1] @ A.T - a[1:]


def laplace_smoother(m0, P0, A, a, Q, y, mask, off, C, dt, Jg, hg, rg, x_init, *,
                     max_iter: int = 50, tol: float = 1e-8) -> LaplaceResult:
    """Laplace posterior of one trial by Newton's method on the whole trajectory.

    Args:
      m0 (d,), P0 (d, d), A (d, d), a (T, d) (``a[0]`` unused), Q (d, d): dynamics.
      y (T, N) counts (anything finite where ``mask`` is False), mask (T, N) bool,
      off (T, N) log-rate offsets (baseline + covariates), C (N, d), dt: bin width.
      Jg (T, d, d), hg (T, d), rg (T,): information of any Gaussian channels (zeros if none).
      x_init (T, d): starting trajectory (e.g. the previous EM iteration's mode).
      max_iter, tol: Newton iteration cap and step tolerance (static / traced).

    Returns:
      :class:`LaplaceResult`.
    """
    dtype = y.dtype
    m = mask.astype(dtype)
    ym = y * m
    const = poisson_constant(y, mask, dt)
    L0 = jnp.linalg.cholesky(P0)
    Lq = jnp.linalg.cholesky(Q)

    def pieces(x):
        eta = x @ C.T + off
        lam = dt * jnp.exp(eta) * m
        return eta, lam

    def objective_along(x, dx, eta, deta, alpha):
        """Log joint (up to a constant) at x + alpha dx."""
        xa = x + alpha * dx
        e0, e = _prior_pieces(xa, m0, P0, A, a, Q)
        z0 = jax.scipy.linalg.solve_triangular(L0, e0, lower=True)
        z = jax.scipy.linalg.solve_triangular(Lq, e.T, lower=True)
        prior = -0.5 * (z0 @ z0 + jnp.sum(z * z))
        ea = eta + alpha * deta
        pois = jnp.sum(ym * ea - dt * m * jnp.exp(ea))
        gauss = -0.5 * jnp.einsum("ti,tij,tj->", xa, Jg, xa) + jnp.sum(hg * xa)
        val = prior + pois + gauss
        return jnp.where(jnp.isnan(val), -jnp.inf, val)

    def newton_pass(x):
        eta, lam = pieces(x)
        g = (ym - lam) @ C
        Jp = jnp.einsum("tn,ni,nj->tij", lam, C, C)
        f = jnp.sum(ym * eta - lam, axis=1)
        rp = -2.0 * (f - jnp.sum(g * x, axis=1) - 0.5 * jnp.einsum("ti,tij,tj->t", x, Jp, x))
        h = jnp.einsum("tij,tj->ti", Jp, x) + g
        post = K.filter_smooth(m0, P0, A, a, Q, Jp + Jg, h + hg, rp + rg)
        return post, eta

    def cond(c):
        i = c[0]
        return (i < max_iter) & ~c[-1]

    def body(c):
        i, x, post, eta, _, _ = c
        dx = post.smoothed_means - x
        deta = dx @ C.T
        phi0 = objective_along(x, dx, eta, deta, 0.0)

        def ls_cond(s):
            alpha, val = s
            return (val < phi0) & (alpha > 1e-6)

        def ls_body(s):
            alpha = 0.5 * s[0]
            return alpha, objective_along(x, dx, eta, deta, alpha)

        alpha, val = jax.lax.while_loop(
            ls_cond, ls_body, (jnp.asarray(1.0, dtype), objective_along(x, dx, eta, deta, 1.0)))
        alpha = jnp.where(val >= phi0, alpha, 0.0)
        step = jnp.max(jnp.abs(alpha * dx))
        x_new = x + alpha * dx
        post_new, eta_new = newton_pass(x_new)
        return i + 1, x_new, post_new, eta_new, step, (step <= tol) | (alpha == 0.0)

    post0, eta0 = newton_pass(x_init)
    init = (jnp.zeros((), jnp.int32), x_init, post0, eta0, jnp.asarray(jnp.inf, dtype),
            jnp.asarray(False))
    n, x, post, _, step, _ = jax.lax.while_loop(cond, body, init)
    # `post` is linearised at the returned trajectory x, whose last step was <= tol:
    # its covariances are the inverse Hessian at x and its log-likelihood is the Laplace
    # approximation expanded at x.
    ll = jnp.sum(post.log_likelihoods) + const
    return LaplaceResult(x, post, ll, n, step <= tol)


def expected_rates(mu, S, C, off, dt):
    """E[dt exp(c_i'x_t + o_ti)] under N(mu_t, S_t): (T, N). ``S`` (T, d, d)."""
    quad = jnp.einsum("ni,tij,nj->tn", C, S, C)
    return dt * jnp.exp(mu @ C.T + off + 0.5 * quad)


__all__ = ["LaplaceResult", "laplace_smoother", "poisson_constant", "expected_rates"]
