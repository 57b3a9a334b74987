"""Parallel-in-time Kalman filter and RTS smoother (associative scans, pure JAX).

Computes exactly the quantities of :func:`spikessm.kernels.kalman.filter_smooth` (same
model, same information-form emissions, same :class:`~spikessm.kernels.kalman.Posterior`)
with ``jax.lax.associative_scan`` instead of ``jax.lax.scan``, following

    S. Särkkä and Á. F. García-Fernández, "Temporal parallelization of Bayesian
    smoothers", IEEE Transactions on Automatic Control 66(1), 2021.

Method
------
*Filter.* Each step t carries an element ``(A, b, C, eta, Jx)`` that encodes

    p(x_t | x_{t-1}, y_t) = N(x_t; A x_{t-1} + b, C)
    p(y_t | x_{t-1})      ∝ exp(-1/2 x_{t-1}' Jx x_{t-1} + eta' x_{t-1}).

With our emissions given as information ``(J_t, h_t)`` and dynamics
``x_t = F_t x_{t-1} + a_t + N(0, Q_t)``, conditioning the transition on the information
gives, with ``K = (I + Q J)^-1`` (nonsingular: Q J has real eigenvalues >= 0),

    A = K F,   b = K (a + Q h),   C = K Q,
    Jx = F' (I + J Q)^-1 J F,   eta = F' (I + J Q)^-1 (h - J a),

using ``(Q + J^-1)^-1 = (I + J Q)^-1 J`` so that a zero or rank-deficient ``J`` (missing
data) is never inverted. The first element absorbs the prior: ``A = 0``, ``Jx = 0``,
``eta = 0`` and ``(b, C)`` the prior N(m0, P0) conditioned on ``(J_0, h_0)``, i.e.
``b = (I + P0 J0)^-1 (m0 + P0 h0)``, ``C = (I + P0 J0)^-1 P0``. The associative operator
(Lemma 8 of the paper, with ``M = (I + C_i J_j)^-1``) is

    A = A_j M A_i,                 b = A_j M (b_i + C_i eta_j) + b_j,
    C = A_j M C_i A_j' + C_j,      eta = (M A_i)' (eta_j - J_j b_i) + eta_i,
    Jx = (M A_i)' J_j A_i + J_i,

and the prefix ``0..t`` has ``A = 0``, ``b = mu_t``, ``C = Sigma_t`` (filtered moments).
Predicted moments then follow elementwise, and the per-step log-likelihood
``log p(y_t | y_{<t})`` is computed from them with the same formula as the sequential
filter (one vmapped, embarrassingly parallel step).

*Smoother.* Backward elements ``(E, g, L)`` encode ``p(x_t | x_{t+1}, y_{0:t}) =
N(x_t; E x_{t+1} + g, L)`` with ``E = G_t`` (the RTS gain), ``g = mu_t - G_t m_{t+1}``,
``L = (I - G_t F_{t+1}) Sigma_t (I - G_t F_{t+1})' + G_t Q_{t+1} G_t'`` (Joseph form of
``Sigma_t - G_t P_{t+1} G_t'``), and the last element ``(0, mu_{T-1}, Sigma_{T-1})``.
They compose as ``E = E_i E_j, g = E_i g_j + g_i, L = E_i L_j E_i' + L_i`` (i earlier),
a suffix scan gives the smoothed moments, and ``Cov(x_{t+1}, x_t | y) = Ss_{t+1} G_t'``.

When to use it
--------------
The work is O(T d^3) like the sequential pass (a constant factor ~2-5x more flops), but
the depth is O(log T) instead of O(T). It pays off on GPUs/TPUs and for very long
recordings (T in the 10^4 - 10^6 range), where the sequential scan is latency bound. On a
CPU with few cores the sequential :func:`~spikessm.kernels.kalman.filter_smooth` is
usually faster (on a 2-core CPU, by a factor of a few); prefer it there. Run in float64:
the associative products are slightly less well conditioned than the sequential
Joseph/Gram-form recursions, though in float64 both agree to ~1e-12 on stable models.

The function is pure, with static shapes: it can be wrapped in ``jax.jit`` and mapped
over trials with ``jax.vmap``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.scipy.linalg import cho_solve

from spikessm.kernels.kalman import Posterior, _info_update, _sym

__all__ = ["parallel_filter_smooth"]


def _mT(X):
    return jnp.swapaxes(X, -1, -2)


# Elements are packed along the last axis into one array per time step, so that the
# associative scan slices and interleaves a single array per level (this roughly halves
# the number of XLA kernels, hence compile time, against a tuple of five arrays):
#   filter   (d, 3d+2): [A | b | C | eta | Jx]
#   smoother (d, 2d+1): [E | g | L]


def _unpack_filter(x):
    d = x.shape[-2]
    return (
        x[..., :d],
        x[..., d],
        x[..., d + 1 : 2 * d + 1],
        x[..., 2 * d + 1],
        x[..., 2 * d + 2 :],
    )


def _pack(*cols):
    """Concatenate matrices (..., d, k) and vectors (..., d) as columns."""
    nd = max(c.ndim for c in cols)
    return jnp.concatenate([c if c.ndim == nd else c[..., None] for c in cols], axis=-1)


# --------------------------------------------------------------------------------------
# Filtering elements and operator
# --------------------------------------------------------------------------------------
def _filter_element(F, a, Q, J, h):
    """Packed element (A, b, C, eta, Jx) for one step t >= 1 (see module docstring)."""
    d = a.shape[0]
    eye = jnp.eye(d, dtype=a.dtype)
    # (I + Q J)^-1 [F, a + Q h, Q]
    sol = jnp.linalg.solve(eye + Q @ J, _pack(F, a + Q @ h, Q))
    A, b, C = sol[:, :d], sol[:, d], _sym(sol[:, d + 1 :])
    # (I + J Q)^-1 [J, h - J a]: information about the predicted mean F x + a
    sol2 = jnp.linalg.solve(eye + J @ Q, _pack(J, h - J @ a))
    Jm, hm = _sym(sol2[:, :d]), sol2[:, d]
    return _pack(A, b, C, F.T @ hm, _sym(F.T @ Jm @ F))


def _first_element(m0, P0, J0, h0):
    """Packed element for t = 0: prior N(m0, P0) conditioned on (J0, h0); A = Jx = 0,
    eta = 0."""
    d = m0.shape[0]
    eye = jnp.eye(d, dtype=m0.dtype)
    sol = jnp.linalg.solve(eye + P0 @ J0, _pack(m0 + P0 @ h0, P0))
    zero = jnp.zeros((d, d), m0.dtype)
    return _pack(zero, sol[:, 0], _sym(sol[:, 1:]), jnp.zeros((d,), m0.dtype), zero)


def _filter_combine(xi, xj):
    """Compose packed element i (earlier) with element j (later), batched over leading axes.

    Products sharing an operand are stacked: one batched solve and five batched products."""
    Ai, bi, Ci, etai, Ji = _unpack_filter(xi)
    Aj, bj, Cj, etaj, Jj = _unpack_filter(xj)
    d = bi.shape[-1]
    eye = jnp.eye(d, dtype=bi.dtype)
    # M [A_i, b_i + C_i eta_j, C_i] with M = (I + C_i J_j)^-1
    v = bi + (Ci @ etaj[..., None])[..., 0]
    sol = jnp.linalg.solve(eye + Ci @ Jj, _pack(Ai, v, Ci))
    X = Aj @ sol  # [A_j M A_i | A_j M v | A_j M C_i]
    C = _sym(X[..., d + 1 :] @ _mT(Aj) + Cj)
    # (M A_i)' [J_j A_i | eta_j - J_j b_i]
    Y = Jj @ _pack(Ai, bi)
    Z = _mT(sol[..., :d]) @ _pack(Y[..., :d], etaj - Y[..., d])
    return _pack(X[..., :d], X[..., d] + bj, C, Z[..., d] + etai, _sym(Z[..., :d] + Ji))


# --------------------------------------------------------------------------------------
# Smoothing elements and operator
# --------------------------------------------------------------------------------------
def _smooth_element(mu, Sig, F_n, Q_n, m_n, P_n):
    """Gain G_t and packed element (E, g, L) for t < T-1, from the filtered moments at t
    and the predicted moments at t+1."""
    d = mu.shape[0]
    G = cho_solve((jnp.linalg.cholesky(P_n), True), F_n @ Sig).T
    IGF = jnp.eye(d, dtype=Sig.dtype) - G @ F_n
    L = _sym(IGF @ Sig @ IGF.T + G @ Q_n @ G.T)
    return G, _pack(G, mu - G @ m_n, L)


def _smooth_combine(xj, xi):
    """Backward composition of packed elements; ``xj`` is the later element and ``xi`` the
    earlier one (the order in which ``associative_scan(..., reverse=True)`` passes them)."""
    d = xi.shape[-2]
    Ei, gi, Li = xi[..., :d], xi[..., d], xi[..., d + 1 :]
    X = Ei @ xj  # [E_i E_j | E_i g_j | E_i L_j]
    L = _sym(X[..., d + 1 :] @ _mT(Ei) + Li)
    return _pack(X[..., :d], X[..., d] + gi, L)


# --------------------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------------------
def parallel_filter_smooth(m0, P0, F, a, Q, J, h, r) -> Posterior:
    """Parallel-in-time Kalman filter + RTS smoother in information form.

    Same arguments and result as :func:`spikessm.kernels.kalman.filter_smooth`:

    Args:
      m0 (d,), P0 (d, d): initial state distribution.
      F: (d, d) or (T, d, d) dynamics; ``F[t]`` maps x_{t-1} to x_t (``F[0]`` unused).
      a: (T, d) additive dynamics terms (``a[0]`` unused).
      Q: (d, d) or (T, d, d) process noise (``Q[0]`` unused).
      J: (d, d) or (T, d, d); h: (T, d); r: (T,): emission information.

    Returns:
      :class:`~spikessm.kernels.kalman.Posterior` (filtered, predicted and smoothed
      moments, cross-covariances ``Cov(x_t, x_{t-1} | y)`` (zero at t=0), and per-step
      log-likelihood terms).

    Depth O(log T) via ``jax.lax.associative_scan``; jit- and vmap-able.
    """
    T, d = h.shape
    dtype = h.dtype
    P0 = _sym(P0)
    Fs = F if F.ndim == 3 else jnp.broadcast_to(F, (T, d, d))
    Qs = Q if Q.ndim == 3 else jnp.broadcast_to(Q, (T, d, d))
    Js = J if J.ndim == 3 else jnp.broadcast_to(J, (T, d, d))

    # ---- filter: elements, prefix scan; prefix 0..t = (0, mu_t, Sigma_t, 0, 0) --------
    elems = _first_element(m0, P0, Js[0], h[0])[None]
    if T > 1:
        rest = jax.vmap(_filter_element)(Fs[1:], a[1:], Qs[1:], Js[1:], h[1:])
        elems = jnp.concatenate([elems, rest], axis=0)
    _, mus, Sigs, _, _ = _unpack_filter(jax.lax.associative_scan(_filter_combine, elems))

    # ---- predicted moments and per-step log-likelihood (elementwise) -----------------
    ms, Ps = m0[None], P0[None]
    if T > 1:
        m_pred = (Fs[1:] @ mus[:-1, :, None])[..., 0] + a[1:]
        P_pred = _sym(Fs[1:] @ Sigs[:-1] @ _mT(Fs[1:]) + Qs[1:])
        ms = jnp.concatenate([ms, m_pred], axis=0)
        Ps = jnp.concatenate([Ps, P_pred], axis=0)
    _, _, lls = jax.vmap(_info_update)(ms, Ps, Js, h, r)

    # ---- smoother: elements, suffix scan; suffix t..T-1 = (0, ms_t, Ss_t) -------------
    last = _pack(jnp.zeros((d, d), dtype), mus[-1], Sigs[-1])[None]
    if T == 1:
        return Posterior(mus, Sigs, ms, Ps, mus, Sigs, jnp.zeros((1, d, d), dtype), lls)
    Gs, selems = jax.vmap(_smooth_element)(mus[:-1], Sigs[:-1], Fs[1:], Qs[1:], ms[1:], Ps[1:])
    selems = jnp.concatenate([selems, last], axis=0)
    out = jax.lax.associative_scan(_smooth_combine, selems, reverse=True)
    sm_means, sm_covs = out[..., d], out[..., d + 1 :]
    cross = jnp.concatenate([jnp.zeros((1, d, d), dtype), sm_covs[1:] @ _mT(Gs)], axis=0)
    return Posterior(mus, Sigs, ms, Ps, sm_means, sm_covs, cross, lls)
