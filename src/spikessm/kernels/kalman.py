"""Information-form Kalman filter and Rauch-Tung-Striebel smoother (pure JAX).

One trial, time steps ``t = 0 .. T-1``::

    x_0 ~ N(m0, P0)
    x_t = F_t x_{t-1} + a_t + w_t,   w_t ~ N(0, Q_t)            (t >= 1)

Emissions enter only through their *information*: for a Gaussian emission
``y_t = C x_t + off_t + v_t, v_t ~ N(0, R)`` restricted to the observed channels ``o``,

    J_t = C_o' R_oo^-1 C_o            (d, d)
    h_t = C_o' R_oo^-1 (y_o - off_o)  (d,)
    r_t = e_o' R_oo^-1 e_o + n_o log(2 pi) + log det R_oo,   e = y - off   (scalar)

so every filter step costs O(d^3) whatever the number of channels N, and the exact
marginal log-likelihood follows from the matrix determinant lemma with no N x N inverse.
A step with no observation has ``J = 0, h = 0, r = 0``; this is also how ragged trials are
padded to a common length (padding after the end of a trial changes nothing before it).

Any other model whose E-step reduces to Gaussian pseudo-observations (Laplace steps of a
Poisson LDS, SSGLM across trials, decoding smoothers) calls the same functions with its own
``J, h``.

Why hand-written rather than Dynamax: we measured that Dynamax's LG-SSM filter works in the
N-dimensional emission space (O(N^3) per step with full R), has no missing-data handling,
and re-traces its EM on every call. This kernel is O(d^3) per step, exact with NaN entries,
and it has a steady-state path whose covariance recursions are computed once.

Numerics: the update uses ``S = I + L' J L`` with ``P = L L'`` (always >= I, so its
Cholesky factor never fails), the filtered covariance is formed as a Gram matrix
``W'W`` and the smoothed covariance in Joseph form (a sum of PSD terms), so covariances
stay positive definite over very long runs.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax.scipy.linalg import cho_solve, solve_triangular

LOG_2PI = 1.8378770664093453


def _sym(M):
    return 0.5 * (M + jnp.swapaxes(M, -1, -2))


# --------------------------------------------------------------------------------------
# Emission projection
# --------------------------------------------------------------------------------------
def gaussian_information(y, mask, C, R, *, diagonal: bool):
    """Project Gaussian emissions onto the latent space.

    Args:
      y: (T, N) residual observations ``y_t - off_t``; entries where ``mask`` is False
         are ignored (may hold anything finite).
      mask: (T, N) bool, True where observed.
      C: (N, d) emission matrix.
      R: (N,) variances if ``diagonal`` else (N, N) covariance.
      diagonal: static flag.

    Returns:
      J: (T, d, d), h: (T, d), r: (T,) as in the module docstring.
    """
    m = mask.astype(y.dtype)
    e = jnp.where(mask, y, 0.0)
    if diagonal:
        rinv = 1.0 / R
        w = m * rinv  # (T, N)
        J = jnp.einsum("tn,ni,nj->tij", w, C, C)
        h = (e * w) @ C
        r = jnp.sum(w * e * e, axis=1) + jnp.sum(m * (LOG_2PI + jnp.log(R)), axis=1)
        return J, h, r

    def one(e_t, m_t):
        Rt = R * m_t[:, None] * m_t[None, :] + jnp.diag(1.0 - m_t)
        Lr = jnp.linalg.cholesky(Rt)
        Ct = C * m_t[:, None]
        Z = solve_triangular(Lr, jnp.concatenate([Ct, e_t[:, None]], axis=1), lower=True)
        Zc, ze = Z[:, :-1], Z[:, -1]
        J_t = Zc.T @ Zc
        h_t = Zc.T @ ze
        r_t = ze @ ze + jnp.sum(m_t) * LOG_2PI + 2.0 * jnp.sum(jnp.log(jnp.diag(Lr)))
        return J_t, h_t, r_t

    return jax.vmap(one)(e, m)


def gaussian_information_full(y, C, R, *, diagonal: bool):
    """Projection for fully observed data: ``J`` is one (d, d) matrix shared by all steps.

    Args: y (T, N) residuals; C (N, d); R (N,) or (N, N). Returns J (d, d), h (T, d), r (T,).
    One batched matrix product projects the data; nothing N x N is inverted.
    """
    N = C.shape[0]
    if diagonal:
        rinv = 1.0 / R
        J = (C * rinv[:, None]).T @ C
        h = (y * rinv) @ C
        r = (y * y) @ rinv + N * LOG_2PI + jnp.sum(jnp.log(R))
        return J, h, r
    Lr = jnp.linalg.cholesky(R)
    Zc = solve_triangular(Lr, C, lower=True)  # (N, d)
    Ze = solve_triangular(Lr, y.T, lower=True)  # (N, T)
    J = Zc.T @ Zc
    h = Ze.T @ Zc
    r = jnp.sum(Ze * Ze, axis=0) + N * LOG_2PI + 2.0 * jnp.sum(jnp.log(jnp.diag(Lr)))
    return J, h, r


# --------------------------------------------------------------------------------------
# General path: one sequential pass, time-varying everything, missing data, padding
# --------------------------------------------------------------------------------------
class Posterior(NamedTuple):
    """Filter and smoother output for one trial (leading axes added by vmap).

    filtered_means (T, d), filtered_covs (T, d, d), predicted_means (T, d),
    predicted_covs (T, d, d), smoothed_means (T, d), smoothed_covs (T, d, d),
    cross_covs (T, d, d) with ``cross_covs[t] = Cov(x_t, x_{t-1} | y)`` (zero at t=0),
    log_likelihoods (T,) per-step terms log p(y_t | y_{<t}), summing to the marginal LL.
    """

    filtered_means: jax.Array
    filtered_covs: jax.Array
    predicted_means: jax.Array
    predicted_covs: jax.Array
    smoothed_means: jax.Array
    smoothed_covs: jax.Array
    cross_covs: jax.Array
    log_likelihoods: jax.Array


def _info_update(m, P, J, h, r):
    """Condition N(m, P) on information (J, h, r). Returns mean, cov, log-lik term."""
    return _info_update_chol(m, jnp.linalg.cholesky(P), J, h, r,
                             jnp.eye(m.shape[0], dtype=P.dtype))


def _info_update_chol(m, L, J, h, r, eye):
    """:func:`_info_update` given the Cholesky factor L of the predicted covariance."""
    S = eye + L.T @ J @ L
    Ls = jnp.linalg.cholesky(_sym(S))
    W = solve_triangular(Ls, L.T, lower=True)
    Sig = W.T @ W
    resid = h - J @ m
    mu = m + Sig @ resid
    logdet_s = 2.0 * jnp.sum(jnp.log(jnp.diag(Ls)))
    ll = -0.5 * (r + logdet_s - 2.0 * m @ h + m @ (J @ m) - resid @ (Sig @ resid))
    return mu, Sig, ll


def _forward(m0, P0, F, a, Q, J, h):
    """Sequential filter pass. Returns per-step (m, mu, logdet, P, Sig, Lp), stacked over t.

    Only what must be sequential is inside the scan (the covariance recursion and the
    means). On CPU each operation in a scan body costs a fixed ~0.1 us launch whatever
    its size, so for small d the step time is set by the number of operations, not by
    the arithmetic: the log-likelihood terms and everything the smoother needs beyond
    these outputs are computed afterwards on the stacked arrays (batched over time).
    Time-varying inputs are scan operands, already shifted so that step t sees the
    dynamics of step t+1, and the per-step outputs are packed into one vector so the body
    writes one slice per step instead of six.
    """
    T, d = h.shape
    eye = jnp.eye(d, dtype=h.dtype)

    def nxt(X):  # X[t+1] at step t; the last step's prediction is unused (clamped)
        return jnp.concatenate([X[1:], X[-1:]], axis=0)

    xs = {"h": h, "a": nxt(a)}
    if J.ndim == 3:
        xs["J"] = J
    if F.ndim == 3:
        xs["F"] = nxt(F)
    if Q.ndim == 3:
        xs["Q"] = nxt(Q)

    def step(carry, x):
        m, P = carry
        J_t, F_n, Q_n = x.get("J", J), x.get("F", F), x.get("Q", Q)
        # update with S = I + Lp' J Lp (>= I): Sig = W'W with W = Ls^-1 Lp'
        Lp = _chol(P)
        Ls = _chol(_sym(eye + Lp.T @ J_t @ Lp))
        W = solve_triangular(Ls, Lp.T, lower=True)
        Sig = W.T @ W
        mu = m + Sig @ (x["h"] - J_t @ m)
        logdet = 2.0 * jnp.sum(jnp.log(jnp.diag(Ls)))
        # predict step t+1
        m_n = F_n @ mu + x["a"]
        P_n = _sym(F_n @ Sig @ F_n.T + Q_n)
        out = jnp.concatenate([m, mu, logdet[None], P.ravel(), Sig.ravel(), Lp.ravel()])
        return (m_n, P_n), out

    _, out = jax.lax.scan(step, (m0, _sym(P0)), xs)
    ms, mus, logdet = out[:, :d], out[:, d:2 * d], out[:, 2 * d]
    k0 = 2 * d + 1
    Ps, Sigs, Lps = (out[:, k0 + k * d * d:k0 + (k + 1) * d * d].reshape(T, d, d)
                     for k in range(3))
    return ms, mus, logdet, Ps, Sigs, Lps


def _chol(A):
    """Lower Cholesky factor of an already symmetric matrix (no re-symmetrisation)."""
    return jax.lax.linalg.cholesky(A, symmetrize_input=False)


def _log_likelihoods(ms, Sigs, logdet, J, h, r):
    """Per-step terms log p(y_t | y_<t) from the stacked filter output (batched over t):
    the same expression as :func:`_info_update_chol`, with resid = h - J m."""
    Jm = jnp.einsum("tij,tj->ti" if J.ndim == 3 else "ij,tj->ti", J, ms)
    resid = h - Jm
    quad = jnp.einsum("ti,ti->t", resid, jnp.einsum("tij,tj->ti", Sigs, resid))
    return -0.5 * (r + logdet - 2.0 * jnp.sum(ms * h, axis=1) + jnp.sum(ms * Jm, axis=1)
                   - quad)


def _mT(A):
    return jnp.swapaxes(A, -1, -2)


def filter_smooth(m0, P0, F, a, Q, J, h, r) -> Posterior:
    """Kalman filter + RTS smoother in information form, general (sequential) path.

    Args:
      m0 (d,), P0 (d, d): initial state distribution.
      F: (d, d) or (T, d, d) dynamics; ``F[t]`` maps x_{t-1} to x_t (``F[0]`` unused).
      a: (T, d) additive dynamics terms (``b + B u_t``; ``a[0]`` unused).
      Q: (d, d) or (T, d, d) process noise (``Q[0]`` unused).
      J: (d, d) or (T, d, d); h: (T, d); r: (T,): emission information (module docstring).

    Returns:
      :class:`Posterior`.
    """
    m0, P0, F, a, Q, J, h, r = (jnp.asarray(x) for x in (m0, P0, F, a, Q, J, h, r))
    ms, mus, logdet, Ps, Sigs, Lps = _forward(m0, P0, F, a, Q, J, h)
    lls = _log_likelihoods(ms, Sigs, logdet, J, h, r)
    sm_means, sm_covs, cross = rts_smooth(F, Q, ms, mus, Sigs, Lps)
    return Posterior(mus, Sigs, ms, Ps, sm_means, sm_covs, cross, lls)


def smoother_gains(F, Q, Sigs, Lps):
    """RTS gains and the data-free part of the Joseph-form smoothed covariance, all steps.

    Args: F, Q (d, d) or (T, d, d) as in :func:`filter_smooth`; Sigs (T, d, d) filtered
    covariances; Lps (T, d, d) Cholesky factors of the predicted covariances.
    Returns G (T-1, d, d) with ``G_t = Sig_t F_{t+1}' P_{t+1}^-1`` and A (T-1, d, d) with
    ``A_t = (I - G F) Sig (I - G F)' + G Q G'``, so ``Ss_t = A_t + G_t Ss_{t+1} G_t'``.
    """
    d = Sigs.shape[-1]
    eye = jnp.eye(d, dtype=Sigs.dtype)
    Fn = F[1:] if F.ndim == 3 else F
    Qn = Q[1:] if Q.ndim == 3 else Q
    Sig0 = Sigs[:-1]
    G = _mT(cho_solve((Lps[1:], True), Fn @ Sig0))
    IGF = eye - G @ Fn
    return G, IGF @ Sig0 @ _mT(IGF) + G @ Qn @ _mT(G)


def rts_smooth(F, Q, ms, mus, Sigs, Lps):
    """RTS backward pass from a forward pass's output (predicted means ``ms``, filtered
    ``mus``, ``Sigs``, Cholesky factors ``Lps`` of the predicted covariances; (T, ...)).

    The gains and the data-free Joseph terms come from :func:`smoother_gains` for all steps
    at once, so the backward scan is left with one congruence per step,
    ``Ss_t = A_t + G_t Ss_{t+1} G_t'`` (a sum of PSD terms).
    Returns smoothed means (T, d), covariances (T, d, d) and cross-covariances (T, d, d)
    with ``cross[t] = Cov(x_t, x_{t-1} | y)`` (zero at t=0).
    """
    T, d = mus.shape
    G, A = smoother_gains(F, Q, Sigs, Lps)

    def bwd(carry, x):
        ms_n, Ss_n = carry
        G_t, A_t, mu, m_n = x
        ms_t = mu + G_t @ (ms_n - m_n)
        Ss_t = _sym(A_t + G_t @ Ss_n @ G_t.T)
        return (ms_t, Ss_t), jnp.concatenate([ms_t, Ss_t.ravel()])

    _, out = jax.lax.scan(bwd, (mus[-1], Sigs[-1]), (G, A, mus[:-1], ms[1:]), reverse=True)
    sm_means = jnp.concatenate([out[:, :d], mus[-1:]], axis=0)
    sm_covs = jnp.concatenate([out[:, d:].reshape(T - 1, d, d), Sigs[-1:]], axis=0)
    cross = sm_covs[1:] @ _mT(G)  # Cov(x_{t+1}, x_t | y) = Ss_{t+1} G_t'
    cross = jnp.concatenate([jnp.zeros((1, d, d), mus.dtype), cross], axis=0)
    return sm_means, sm_covs, cross


def filter_only(m0, P0, F, a, Q, J, h, r):
    """Forward pass only; returns (filtered_means, filtered_covs, predicted_means,
    predicted_covs, log_likelihoods) with the shapes of :func:`filter_smooth`."""
    m0, P0, F, a, Q, J, h, r = (jnp.asarray(x) for x in (m0, P0, F, a, Q, J, h, r))
    ms, mus, logdet, Ps, Sigs, _ = _forward(m0, P0, F, a, Q, J, h)
    return mus, Sigs, ms, Ps, _log_likelihoods(ms, Sigs, logdet, J, h, r)


# --------------------------------------------------------------------------------------
# Steady-state path: time-invariant parameters, nothing missing, equal-length trials
# --------------------------------------------------------------------------------------
class SteadyCovariances(NamedTuple):
    """Data-independent covariance recursions, computed once and shared by all trials.

    With L = buffer length: ``filt[t]`` (L, d, d) filtered covariances for t < L (then
    constant ``filt[L-1]``); ``pred[t]`` (L, d, d) predicted covariances (``pred[0] = P0``);
    ``gain[t]`` (L, d, d) smoother gains G_t = filt_t F' pred_{t+1}^-1 (then constant);
    ``logdet[t]`` (L,) log det(I + L_t' J L_t); ``head[t]`` (L, d, d) smoothed covariances
    for t < L; ``tail[j]`` (L, d, d) smoothed covariances at t = T-1-j; ``converged`` bool;
    ``err`` scalar: bound on the distance of the last buffer entries from the fixed points.
    """

    filt: jax.Array
    pred: jax.Array
    gain: jax.Array
    logdet: jax.Array
    head: jax.Array
    tail: jax.Array
    converged: jax.Array
    err: jax.Array


def _geometric_bound(seq):
    """Bound on |seq[-1] - limit| from the last two increments (geometric convergence).

    Increments at rounding level (below 1e-14 of the sequence's scale) mean the recursion
    sits at its floating-point fixed point."""
    scale = jnp.maximum(1.0, jnp.max(jnp.abs(seq[-1])))
    d1 = jnp.max(jnp.abs(seq[-1] - seq[-2]))
    d2 = jnp.max(jnp.abs(seq[-2] - seq[-3]))
    rho = jnp.clip(d1 / jnp.maximum(d2, 1e-300), 0.0, 0.999999)
    return jnp.where(d1 <= 1e-14 * scale, d1, d1 * rho / (1.0 - rho) + d1)


def steady_covariances(P0, F, Q, J, L: int, tol: float = 1e-11) -> SteadyCovariances:
    """Covariance recursions for time-invariant (F, Q, J), over ``L`` steps (static).

    ``converged`` is True when the filter and the backward smoother recursions have
    reached their fixed points to within ``tol`` (relative to the covariance scale),
    so that every result built from these buffers is exact to about ``tol``.
    """
    d = F.shape[0]
    eye = jnp.eye(d, dtype=F.dtype)

    def fwd(P, _):
        Lp = jnp.linalg.cholesky(P)
        S = eye + Lp.T @ J @ Lp
        Ls = jnp.linalg.cholesky(_sym(S))
        W = solve_triangular(Ls, Lp.T, lower=True)
        Sig = W.T @ W
        P_n = _sym(F @ Sig @ F.T + Q)
        G = cho_solve((jnp.linalg.cholesky(P_n), True), F @ Sig).T
        return P_n, (Sig, P, G, 2.0 * jnp.sum(jnp.log(jnp.diag(Ls))))

    _, (filt, pred, gain, logdet) = jax.lax.scan(fwd, _sym(P0), None, length=L)
    Sig_inf, G_inf = filt[-1], gain[-1]

    def joseph(Sig, G, Ss_n):
        IGF = eye - G @ F
        return _sym(IGF @ Sig @ IGF.T + G @ (Q + Ss_n) @ G.T)

    def tail_step(Ss_n, _):
        Ss = joseph(Sig_inf, G_inf, Ss_n)
        return Ss, Ss

    _, tail_rest = jax.lax.scan(tail_step, Sig_inf, None, length=L - 1)
    tail = jnp.concatenate([Sig_inf[None], tail_rest], axis=0)
    S_inf = tail[-1]

    def head_step(Ss_n, inp):
        Sig, G = inp
        Ss = joseph(Sig, G, Ss_n)
        return Ss, Ss

    _, head = jax.lax.scan(head_step, S_inf, (filt, gain), reverse=True)
    scale = jnp.maximum(1.0, jnp.max(jnp.abs(S_inf)))
    err = jnp.maximum(
        jnp.maximum(_geometric_bound(filt), _geometric_bound(gain)), _geometric_bound(tail)
    )
    return SteadyCovariances(filt, pred, gain, logdet, head, tail, err < tol * scale, err)


class SteadyPosterior(NamedTuple):
    """Steady-path output for one trial: means only; covariances live in
    :class:`SteadyCovariances` and are shared by every trial of the batch."""

    filtered_means: jax.Array
    predicted_means: jax.Array
    smoothed_means: jax.Array
    log_likelihoods: jax.Array


def steady_filter_smooth(m0, F, a, J, h, r, cov: SteadyCovariances) -> SteadyPosterior:
    """Mean recursions of the filter and smoother on the steady-state path.

    Requires T > 2L (L = buffer length of ``cov``) and ``cov.converged``. ``a`` (T, d) as in
    :func:`filter_smooth`. Each step is a pair of matrix-vector products.
    """
    T, d = h.shape
    L = cov.filt.shape[0]
    eye = jnp.eye(d, dtype=h.dtype)
    Kb = eye[None] - cov.filt @ J  # (L, d, d): mu_t = K_t m_t + Sig_t h_t
    a_next = jnp.concatenate([a[1:], a[-1:]], axis=0)

    # forward: the first L steps gather their own gains, the rest share the fixed point
    def fwd_head(m, inp):
        K_t, S_t, a_n, h_t = inp
        mu = K_t @ m + S_t @ h_t
        return F @ mu + a_n, (mu, m)

    m_L, (mu_h, m_h) = jax.lax.scan(fwd_head, m0, (Kb, cov.filt, a_next[:L], h[:L]))
    M_inf = F @ Kb[-1]
    H_inf = F @ cov.filt[-1]
    g = h[L:] @ H_inf.T + a_next[L:]  # one batched product for the data-driven part

    def fwd_tail(m, g_t):
        return M_inf @ m + g_t, m

    _, m_t = jax.lax.scan(fwd_tail, m_L, g)
    ms = jnp.concatenate([m_h, m_t], axis=0)
    mus = jnp.concatenate([mu_h, m_t @ Kb[-1].T + h[L:] @ cov.filt[-1].T], axis=0)

    # backward: ms_t = mu_t + G_t (ms_{t+1} - m_{t+1})
    G_inf = cov.gain[-1]
    c_tail = mus[L:-1] - ms[L + 1:] @ G_inf.T

    def bwd_tail(ms_n, c_t):
        ms_t = G_inf @ ms_n + c_t
        return ms_t, ms_t

    ms_L, sm_tail = jax.lax.scan(bwd_tail, mus[-1], c_tail, reverse=True)

    def bwd_head(ms_n, inp):
        G_t, mu, m_n = inp
        ms_t = mu + G_t @ (ms_n - m_n)
        return ms_t, ms_t

    _, sm_head = jax.lax.scan(bwd_head, ms_L, (cov.gain, mus[:L], ms[1:L + 1]), reverse=True)
    sm = jnp.concatenate([sm_head, sm_tail, mus[-1:]], axis=0)

    # per-step log-likelihood, covariance buffers split statically at L
    resid = h - ms @ J.T
    base = r - 2.0 * jnp.sum(ms * h, axis=1) + jnp.sum(ms * (ms @ J.T), axis=1)
    q_head = jnp.einsum("ti,tij,tj->t", resid[:L], cov.filt, resid[:L])
    q_tail = jnp.einsum("ti,ij,tj->t", resid[L:], cov.filt[-1], resid[L:])
    ld = jnp.concatenate([cov.logdet, jnp.full((T - L,), cov.logdet[-1])])
    lls = -0.5 * (base + ld - jnp.concatenate([q_head, q_tail]))
    return SteadyPosterior(mus, ms, sm, lls)


def steady_cov_sums(cov: SteadyCovariances, T: int):
    """Sums of smoothed covariances for a trial of length T (> 2L), without (T, d, d) arrays.

    Returns (sum_all, first, last, sum_cross) where sum_all = sum_t Cov(x_t),
    first = Cov(x_0), last = Cov(x_{T-1}), sum_cross = sum_{t>=1} Cov(x_t, x_{t-1}).
    """
    L = cov.filt.shape[0]
    S_inf = cov.tail[-1]
    G_inf = cov.gain[-1]
    sum_late = (T - 2 * L) * S_inf + jnp.sum(cov.tail, axis=0)  # t = L .. T-1
    sum_all = jnp.sum(cov.head, axis=0) + sum_late
    # cross_{t+1} = Ss_{t+1} G_t' for t = 0..T-2
    cross_head = jnp.einsum("tij,tkj->ik", cov.head[1:], cov.gain[: L - 1])
    sum_cross = cross_head + sum_late @ G_inf.T
    return sum_all, cov.head[0], cov.tail[0], sum_cross


def steady_smoothed_covs(cov: SteadyCovariances, T: int):
    """Materialise (T, d, d) smoothed covariances and cross-covariances (for user output)."""
    L = cov.filt.shape[0]
    t = jnp.arange(T)
    j = jnp.clip(T - 1 - t, 0, L - 1)
    Ss = jnp.where((t < L)[:, None, None], cov.head[jnp.minimum(t, L - 1)], cov.tail[j])
    G = cov.gain[jnp.minimum(t, L - 1)]
    cross = jnp.einsum("tij,tkj->tik", Ss[1:], G[:-1])
    cross = jnp.concatenate([jnp.zeros_like(cross[:1]), cross], axis=0)
    return Ss, cross


def steady_filtered_covs(cov: SteadyCovariances, T: int):
    """Materialise (T, d, d) filtered and predicted covariances (for user output)."""
    L = cov.filt.shape[0]
    idx = jnp.minimum(jnp.arange(T), L - 1)
    return cov.filt[idx], cov.pred[idx]
