"""E-step and exact M-step of the LG-SSM (pure JAX, jit-compiled once per shape).

Two E-step paths share the kernel in :mod:`spikessm.kernels.kalman`:

* ``steady``: time-invariant parameters, nothing missing, equal-length trials. The
  covariance recursions are data-independent: computed once over a short buffer, shared
  by every trial, and the data enter only through matrix-vector scans. No (T, d, d)
  array is built. The log-likelihood's data term uses precomputed sums (no per-step
  N x N work).
* ``general``: missing entries (NaN), ragged trials (padded; padding carries no
  information), or forced by the user. One sequential Cholesky pass per step, O(d^3).

Sufficient statistics are sums over trials and time; the M-step is a (conditional,
when some parameters are frozen) least-squares regression for [A b B] and [C d D]
followed by the covariance update, all in closed form. With diagonal/isotropic R and
missing entries the emission regression is done channel by channel on the observed
steps (exact); with a full R and missing entries the missing values are treated as
latent and imputed with their conditional moments (Shumway & Stoffer 1982), which is
also exact EM.
"""

from __future__ import annotations

from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax.scipy.linalg import cho_solve

from ...kernels import kalman as K

LOG_2PI = K.LOG_2PI


class Data(NamedTuple):
    """Device-side trial data. y (K, T, N) zero where missing; mask (K, T, N);
    valid (K, T); u (K, T, q)."""

    y: jax.Array
    mask: jax.Array
    valid: jax.Array
    u: jax.Array


class DataSums(NamedTuple):
    """Data-only sums, computed once per fit: Syy (N, N) = sum y y' over observed
    entries (zeros where missing), Syo (N, 1+q) = sum y [1, u]', Soo (1+q, 1+q),
    n_obs (N,) observed count per channel."""

    Syy: jax.Array
    Syo: jax.Array
    Soo: jax.Array
    n_obs: jax.Array


class Stats(NamedTuple):
    """Expected sufficient statistics (sums over trials and valid steps).

    Dynamics regression x_t on z = [x_{t-1}, 1, u_t] (t >= 1): Szz_dyn (p, p),
    Sxz_dyn (d, p), Sxx_dyn (d, d), n_dyn. Emission regression y_t on z = [x_t, 1, u_t]:
    Szz_em (N, p, p) per channel (identical rows when nothing is missing), Syz (N, p),
    Syy (N, N), n_em (N,). Initial state: mu0 (K, d) smoothed means, S0 (d, d) summed
    covariances. ll: marginal log-likelihood (sum over trials).
    """

    Szz_dyn: jax.Array
    Sxz_dyn: jax.Array
    Sxx_dyn: jax.Array
    n_dyn: jax.Array
    Szz_em: jax.Array
    Syz: jax.Array
    Syy: jax.Array
    n_em: jax.Array
    mu0: jax.Array
    S0: jax.Array
    ll: jax.Array


@jax.jit
def data_sums(data: Data) -> DataSums:
    m = (data.mask & data.valid[..., None]).astype(data.y.dtype)
    y = data.y * m
    ones = data.valid[..., None].astype(y.dtype)
    o = jnp.concatenate([ones, data.u], axis=-1)  # (K, T, 1+q)
    Syy = jnp.einsum("ktn,ktm->nm", y, y)
    Syo = jnp.einsum("ktn,kto->no", y, o)
    Soo = jnp.einsum("kto,ktp->op", o, o)
    return DataSums(Syy, Syo, Soo, jnp.sum(m, axis=(0, 1)))


def pad_cov(S, p):
    d = S.shape[-1]
    return jnp.zeros(S.shape[:-2] + (p, p), S.dtype).at[..., :d, :d].set(S)


def zvec(mu, u, valid):
    """z_t = [mu_t, 1, u_t] masked by valid: (K, T, p)."""
    one = valid[..., None].astype(mu.dtype)
    return jnp.concatenate([mu * one, one, u * one], axis=-1)


def dynamics_stats(mu, u, valid, cov_prev, cov_next, cross_sum):
    """Regression sums for t >= 1 from smoothed means (K, T, d) and covariance sums."""
    p = mu.shape[-1] + 1 + u.shape[-1]
    v = valid[:, 1:]
    zp = zvec(mu[:, :-1], u[:, 1:], v)
    xn = mu[:, 1:] * v[..., None]
    Szz = jnp.einsum("kti,ktj->ij", zp, zp) + pad_cov(cov_prev, p)
    Sxz = jnp.einsum("kti,ktj->ij", xn, zp)
    Sxz = Sxz.at[:, : mu.shape[-1]].add(cross_sum)
    Sxx = jnp.einsum("kti,ktj->ij", xn, xn) + cov_next
    return Szz, Sxz, Sxx, jnp.sum(v).astype(mu.dtype)


def _params_j(P, diag):
    """Parameters dict with R as variances (N,) when ``diag``."""
    return {**P, "R": jnp.diag(P["R"]) if diag else P["R"]}


def _project_complete(P, data: Data, sums: DataSums, diag: bool):
    """Emission information when every channel is observed inside each trial.

    Returns J (d, d), h (K, T, d) (zero on padded steps) and the data term of the
    log-likelihood, -1/2 [tr(R^-1 sum_t e_t e_t') + n_steps (N log 2 pi + log det R)]
    with e_t = y_t - d - D u_t, from the precomputed sums: no per-step N x N work.
    """
    Pj = _params_j(P, diag)
    C, R = Pj["C"], Pj["R"]
    N = C.shape[0]
    if diag:
        RinvC = C / R[:, None]
        logdetR = jnp.sum(jnp.log(R))
    else:
        Lr = jnp.linalg.cholesky(R)
        RinvC = cho_solve((Lr, True), C)
        logdetR = 2.0 * jnp.sum(jnp.log(jnp.diag(Lr)))
    J = K._sym(C.T @ RinvC)
    # h_t = C'R^-1 (y_t - d - D u_t): one batched product, no (K, T, N) temporary
    h = data.y @ RinvC - P["d"] @ RinvC - data.u @ (P["D"].T @ RinvC)
    h = h * data.valid[..., None]
    W_o = jnp.concatenate([P["d"][:, None], P["D"]], axis=1)  # (N, 1+q)
    See = (sums.Syy - sums.Syo @ W_o.T - W_o @ sums.Syo.T + W_o @ sums.Soo @ W_o.T)
    quad = jnp.sum(jnp.diag(See) / R) if diag else jnp.trace(cho_solve((Lr, True), See))
    n_steps = jnp.sum(data.valid)
    return J, h, -0.5 * (quad + n_steps * (N * LOG_2PI + logdetR))


# ------------------------------------------------------------------------------------
# steady path
# ------------------------------------------------------------------------------------
@partial(jax.jit, static_argnames=("diag", "L"))
def estep_steady(P, data: Data, sums: DataSums, diag: bool, L: int):
    """E-step on the steady-state path. Returns (Stats, converged flag)."""
    Kn, T, N = data.y.shape
    d = P["C"].shape[1]
    J, h, ll_data = _project_complete(P, data, sums, diag)
    cov = K.steady_covariances(P["P0"], P["A"], P["Q"], J, L)
    a = P["b"] + data.u @ P["B"].T
    zeros = jnp.zeros((T,), h.dtype)
    post = jax.vmap(K.steady_filter_smooth, in_axes=(None, None, 0, None, 0, None, None))(
        P["m0"], P["A"], a, J, h, zeros, cov)
    ll = jnp.sum(post.log_likelihoods) + ll_data

    mu = post.smoothed_means
    s_all, s_first, s_last, s_cross = K.steady_cov_sums(cov, T)
    valid = data.valid
    Szz_d, Sxz_d, Sxx_d, n_d = dynamics_stats(
        mu, data.u, valid, Kn * (s_all - s_last), Kn * (s_all - s_first), Kn * s_cross)
    p = d + 1 + data.u.shape[-1]
    z = zvec(mu, data.u, valid)
    Szz = jnp.einsum("kti,ktj->ij", z, z) + pad_cov(Kn * s_all, p)
    Syz = data.y.reshape(-1, N).T @ z.reshape(-1, z.shape[-1])
    st = Stats(Szz_d, Sxz_d, Sxx_d, n_d, jnp.broadcast_to(Szz, (N, p, p)), Syz, sums.Syy,
               sums.n_obs, mu[:, 0], Kn * s_first, ll)
    return st, cov.converged


# ------------------------------------------------------------------------------------
# general path
# ------------------------------------------------------------------------------------
def emission_information(P, data: Data, diag: bool, missing: bool):
    """Per-step emission information J (K, T, d, d), h (K, T, d), r (K, T) for the
    general kernel; padded steps carry none. ``missing=False`` promises every channel is
    observed inside each trial, so one projection serves all steps."""
    Pj = _params_j(P, diag)
    e = data.y - (P["d"] + data.u @ P["D"].T)
    if missing:
        m = data.mask & data.valid[..., None]
        return jax.vmap(
            lambda e_k, m_k: K.gaussian_information(e_k, m_k, Pj["C"], Pj["R"], diagonal=diag)
        )(e, m)
    J1, h, r = jax.vmap(
        lambda e_k: K.gaussian_information_full(e_k, Pj["C"], Pj["R"], diagonal=diag))(e)
    vf = data.valid.astype(h.dtype)
    return vf[..., None, None] * J1[:, None], h * vf[..., None], r * vf


def _posterior_general(P, data: Data, diag: bool, missing: bool = True):
    return _smooth_trials(P, data, *emission_information(P, data, diag, missing))


def _smooth_trials(P, data: Data, J, h, r):
    """vmap the general kernel over trials."""
    a = P["b"] + data.u @ P["B"].T
    post = jax.vmap(K.filter_smooth, in_axes=(None, None, None, 0, None, 0, 0, 0))(
        P["m0"], P["P0"], P["A"], a, P["Q"], J, h, r)
    return post


@partial(jax.jit, static_argnames=("diag", "missing"))
def posterior_general(P, data: Data, diag: bool, missing: bool = True):
    """Full filter/smoother output (K-batched :class:`~spikessm.kernels.kalman.Posterior`).

    ``missing=False`` promises every channel is observed inside each trial (padding
    allowed), so one emission projection serves all steps."""
    return _posterior_general(P, data, diag, missing)


def _impute_full_R(P, data: Data, mu, S):
    """Emission sums with a full R and missing entries: missing y's are latent.

    Returns Syz (N, p), Syy (N, N). Accumulated step by step (no (T, N, N) array)."""
    C, R = P["C"], P["R"]
    N, d = C.shape
    eye = jnp.eye(N, dtype=C.dtype)
    Kn, T, _ = data.y.shape
    p = d + 1 + data.u.shape[-1]
    m_all = (data.mask & data.valid[..., None]).astype(C.dtype)

    def one(carry, inp):
        Syz, Syy = carry
        y_t, m_t, u_t, v_t, mu_t, S_t = inp
        Rt = R * m_t[:, None] * m_t[None, :] + jnp.diag(1.0 - m_t)
        Po = cho_solve((jnp.linalg.cholesky(Rt), True), jnp.diag(m_t)) * m_t[:, None]
        Kg = R @ Po
        off = P["d"] + P["D"] @ u_t
        Fm = (eye - Kg) @ C
        g = (eye - Kg) @ off + Kg @ (y_t * m_t)
        Ey = Fm @ mu_t + g
        z = jnp.concatenate([mu_t, jnp.ones((1,), C.dtype), u_t])
        Exz = jnp.outer(mu_t, z).at[:, :d].add(S_t)  # E[x z']
        Eyz = Fm @ Exz + jnp.outer(g, z)
        Eyy = Fm @ S_t @ Fm.T + jnp.outer(Ey, Ey) + K._sym(R - R @ Po @ R)
        return (Syz + v_t * Eyz, Syy + v_t * Eyy), None

    flat = lambda x: x.reshape((Kn * T,) + x.shape[2:])
    init = (jnp.zeros((N, p), C.dtype), jnp.zeros((N, N), C.dtype))
    (Syz, Syy), _ = jax.lax.scan(
        one, init, (flat(data.y), flat(m_all), flat(data.u),
                    flat(data.valid.astype(C.dtype)), flat(mu), flat(S)))
    return Syz, Syy


def smoothed_cov_sums(S, X, valid):
    """Sums over valid steps t >= 1 of S_{t-1}, S_t and Cov(x_t, x_{t-1}): (d, d) each,
    from smoothed covariances S (K, T, d, d) and cross-covariances X (K, T, d, d)."""
    vf = valid.astype(S.dtype)[:, 1:]
    return (jnp.einsum("kt,ktij->ij", vf, S[:, :-1]), jnp.einsum("kt,ktij->ij", vf, S[:, 1:]),
            jnp.einsum("kt,ktij->ij", vf, X[:, 1:]))


def emission_stats(P, data: Data, sums: DataSums, mu, S, diag: bool, missing: bool):
    """Emission regression sums from smoothed means (K, T, d) and covariances (K, T, d, d).

    Returns Szz (N, p, p) per channel, Syz (N, p), Syy (N, N), n_em (N,), with
    z_t = [x_t, 1, u_t]. Missing entries: per channel for diagonal R, imputed from their
    conditional distribution (Shumway-Stoffer) for full R."""
    valid = data.valid
    vf = valid.astype(mu.dtype)
    Kn, T, N = data.y.shape
    d = mu.shape[-1]
    p = d + 1 + data.u.shape[-1]
    z = zvec(mu, data.u, valid)
    if missing and diag:
        m = (data.mask & valid[..., None]).astype(mu.dtype)
        Szz = jnp.einsum("ktn,kti,ktj->nij", m, z, z) + pad_cov(
            jnp.einsum("ktn,ktij->nij", m, S), p)
        Syz = jnp.einsum("ktn,ktj->nj", data.y * m, z)
        Syy, n_em = sums.Syy, sums.n_obs
    else:
        Szz1 = jnp.einsum("kti,ktj->ij", z, z) + pad_cov(jnp.einsum("kt,ktij->ij", vf, S), p)
        Szz = jnp.broadcast_to(Szz1, (N, p, p))
        n_em = jnp.full((N,), jnp.sum(vf))
        if missing:
            Syz, Syy = _impute_full_R(P, data, mu, S)
        else:
            Syz = data.y.reshape(-1, N).T @ z.reshape(-1, z.shape[-1])
            Syy = sums.Syy
    return Szz, Syz, Syy, n_em


@partial(jax.jit, static_argnames=("diag", "missing"))
def estep_general(P, data: Data, sums: DataSums, diag: bool, missing: bool):
    """E-step on the general path (missing entries, ragged trials). Returns Stats."""
    if missing:
        post = _posterior_general(P, data, diag, missing)
        ll_data = 0.0
    else:  # per-step N x N work avoided: the data term of the likelihood comes from sums
        J, h, ll_data = _project_complete(P, data, sums, diag)
        J = data.valid.astype(h.dtype)[..., None, None] * J
        post = _smooth_trials(P, data, J, h, jnp.zeros(h.shape[:2], h.dtype))
    mu, S, X = post.smoothed_means, post.smoothed_covs, post.cross_covs
    vf = data.valid.astype(mu.dtype)
    Szz_d, Sxz_d, Sxx_d, n_d = dynamics_stats(
        mu, data.u, data.valid, *smoothed_cov_sums(S, X, data.valid))
    ll = jnp.sum(post.log_likelihoods * vf) + ll_data
    Szz, Syz, Syy, n_em = emission_stats(P, data, sums, mu, S, diag, missing)
    # S0 over trials that exist (every trial of a single recording; a multi-recording
    # batch pads with empty trials)
    S0 = jnp.einsum("k,kij->ij", vf[:, 0], S[:, 0])
    return Stats(Szz_d, Sxz_d, Sxx_d, n_d, Szz, Syz, Syy, n_em, mu[:, 0], S0, ll)


# ------------------------------------------------------------------------------------
# M-step
# ------------------------------------------------------------------------------------
def regress(Syz, Szz, W_old, free):
    """Conditional least squares: columns where ``free`` is False keep W_old's values.

    Syz (n, p), Szz (p, p), W_old (n, p), free: static tuple of bools (length p).
    """
    fi = [i for i, f in enumerate(free) if f]
    xi = [i for i, f in enumerate(free) if not f]
    if not fi:
        return W_old
    fi_a = jnp.array(fi)
    rhs = Syz[:, fi_a]
    if xi:
        xi_a = jnp.array(xi)
        rhs = rhs - W_old[:, xi_a] @ Szz[jnp.ix_(xi_a, fi_a)]
    Sff = K._sym(Szz[jnp.ix_(fi_a, fi_a)])
    Wf = cho_solve((jnp.linalg.cholesky(Sff), True), rhs.T).T
    return W_old.at[:, fi_a].set(Wf)


def cov_update(Syy, Syz, Szz, W, n, kind):
    M = Syy - W @ Syz.T - Syz @ W.T + W @ Szz @ W.T
    M = K._sym(M) / n
    if kind == "diagonal":
        return jnp.diag(jnp.diag(M))
    if kind == "isotropic":
        return jnp.trace(M) / M.shape[0] * jnp.eye(M.shape[0], dtype=M.dtype)
    return M


def _free_cols(d, q, names, frozen):
    """Static free-column mask for a [M (d) | offset (1) | inputs (q)] regression."""
    a, o, i = names
    return (a not in frozen,) * d + (o not in frozen,) + (i not in frozen,) * q


def mstep_dynamics(P, st: Stats, frozen: tuple, q_type: str, ridge=0.0):
    """A, b, B, Q by (conditional) least squares on the dynamics sums.

    ``ridge`` > 0 adds the matrix-normal prior A ~ MN(I, Q, I / ridge) (centred at the
    identity, conjugate), whose exact MAP update adds ``ridge`` to the A block of Szz and
    ``ridge * I`` to Sxz, and ``ridge (A - I)(A - I)'`` and ``d`` pseudo-steps to Q's sums.
    Returns (A, b, B, Q)."""
    d = P["A"].shape[0]
    q = P["B"].shape[1]
    Szz, Sxz, Sxx, n = st.Szz_dyn, st.Sxz_dyn, st.Sxx_dyn, st.n_dyn
    eye = jnp.eye(d, dtype=Szz.dtype)
    if not (isinstance(ridge, float) and ridge == 0.0):
        Szz = Szz.at[:d, :d].add(ridge * eye)
        Sxz = Sxz.at[:, :d].add(ridge * eye)
        Sxx = Sxx + ridge * eye
        # the d pseudo-steps belong to the prior: none when a traced ridge is 0
        n = n + d * (jnp.asarray(ridge) > 0).astype(Szz.dtype)
    W_old = jnp.concatenate([P["A"], P["b"][:, None], P["B"]], axis=1)
    W = regress(Sxz, Szz, W_old, _free_cols(d, q, ("A", "b", "B"), frozen))
    # with q == 0 the input block is empty: keep the (empty) old array rather than slice a
    # zero-width block out of W (XLA on CPU aborts compiling such a slice of a concatenate)
    A, b = W[:, :d], W[:, d]
    B = W[:, d + 1:] if q else P["B"]
    Q = P["Q"] if "Q" in frozen else cov_update(Sxx, Sxz, Szz, W, n, q_type)
    return A, b, B, Q


def mstep_emission(P, st: Stats, frozen: tuple, r_type: str, per_channel: bool):
    """C, d, D, R by (conditional) least squares on the emission sums. Returns (C, d, D, R)."""
    d = P["C"].shape[1]
    q = P["D"].shape[1]
    W_old = jnp.concatenate([P["C"], P["d"][:, None], P["D"]], axis=1)
    free = _free_cols(d, q, ("C", "d", "D"), frozen)
    if per_channel:
        # a channel with no observation at all (only possible for the padding channels of
        # a multi-recording batch: the single-recording models reject such channels) keeps
        # its old values instead of solving a singular regression
        empty = st.n_em == 0
        eye = jnp.eye(W_old.shape[1], dtype=W_old.dtype)
        Szz_em = jnp.where(empty[:, None, None], eye, st.Szz_em)
        W = jax.vmap(lambda s, S, w: regress(s[None], S, w[None], free)[0])(
            st.Syz, Szz_em, W_old)
        W = jnp.where(empty[:, None], W_old, W)
    else:
        W = regress(st.Syz, st.Szz_em[0], W_old, free)
    C, dd = W[:, :d], W[:, d]
    D = W[:, d + 1:] if q else P["D"]
    R = P["R"]
    if "R" not in frozen:
        if per_channel:
            syy = jnp.diag(st.Syy)
            num = (syy - 2.0 * jnp.sum(W * st.Syz, axis=1)
                   + jnp.einsum("ni,nij,nj->n", W, st.Szz_em, W))
            if r_type == "isotropic":
                R = jnp.sum(num) / jnp.sum(st.n_em) * jnp.eye(W.shape[0], dtype=W.dtype)
            else:
                R = jnp.diag(jnp.where(empty, jnp.diag(P["R"]),
                                       num / jnp.maximum(st.n_em, 1)))
        else:
            R = cov_update(st.Syy, st.Syz, st.Szz_em[0], W, st.n_em[0], r_type)
    return C, dd, D, R


def mstep_initial(P, mu0, S0, frozen: tuple, weights=None):
    """m0, P0 from the smoothed first states mu0 (K, d) and their summed covariance S0.

    ``weights`` (K,) (optional, 0/1): trials that count (padding trials of a
    multi-recording batch have weight 0; S0 must then be summed with the same weights)."""
    if weights is None:
        weights = jnp.ones(mu0.shape[:1], mu0.dtype)
    Kn = jnp.sum(weights)
    m0 = P["m0"] if "m0" in frozen else weights @ mu0 / Kn
    if "P0" in frozen:
        return m0, P["P0"]
    dev = (mu0 - m0) * weights[:, None]
    return m0, K._sym((S0 + dev.T @ dev) / Kn)


@partial(jax.jit, static_argnames=("frozen", "q_type", "r_type", "per_channel"))
def mstep(P, st: Stats, frozen: tuple, q_type: str, r_type: str, per_channel: bool):
    """Exact (conditional) M-step. ``frozen`` names parameters kept at their values."""
    new = dict(P)
    new["A"], new["b"], new["B"], new["Q"] = mstep_dynamics(P, st, frozen, q_type)
    new["C"], new["d"], new["D"], new["R"] = mstep_emission(P, st, frozen, r_type, per_channel)
    new["m0"], new["P0"] = mstep_initial(P, st.mu0, st.S0, frozen)
    return new


# ------------------------------------------------------------------------------------
# EM iterations compiled together
# ------------------------------------------------------------------------------------
CHUNK = 10  # EM iterations per compiled call (fixed, so max_iter never triggers a compile)


@partial(jax.jit, static_argnames=("steady", "diag", "L", "missing", "frozen", "q_type",
                                   "r_type", "per_channel", "batched"))
def em_chunk(P, data: Data, sums: DataSums, n_run, prev_ll, tol, *, steady: bool,
             diag: bool, L: int, missing: bool, frozen: tuple, q_type: str, r_type: str,
             per_channel: bool, batched: bool = False):
    """Run up to ``n_run`` (<= CHUNK) EM iterations in one compiled loop.

    Stops early when the relative log-likelihood gain falls to ``tol`` (if ``tol > 0``),
    when the log-likelihood is not finite, or (steady path) when the covariance
    recursions did not reach their fixed point; in that last case the parameters of the
    failing iteration are not updated and ``ok`` is False so the caller can continue on
    the general path. ``prev_ll`` is the log-likelihood of the previous iteration (NaN at
    the start). Returns (P, lls (CHUNK,) NaN-padded, n_done, converged, ok).

    ``batched``: the leading axis of P, n_run and prev_ll indexes independent restarts
    run together in this one call (vmap over restarts; the data are shared). The batched
    loop's condition is per restart, so a restart whose own loop has stopped (converged,
    failed, or given ``n_run = 0`` because it is finished) keeps its parameters exactly
    while the others iterate; every output gains the leading restart axis.
    """
    static = dict(steady=steady, diag=diag, L=L, missing=missing, frozen=frozen,
                  q_type=q_type, r_type=r_type, per_channel=per_channel)
    if batched:
        return jax.vmap(lambda P_, n_, prev_: _em_chunk(P_, data, sums, n_, prev_, tol,
                                                        **static))(P, n_run, prev_ll)
    return _em_chunk(P, data, sums, n_run, prev_ll, tol, **static)


def _em_chunk(P, data: Data, sums: DataSums, n_run, prev_ll, tol, *, steady: bool,
              diag: bool, L: int, missing: bool, frozen: tuple, q_type: str, r_type: str,
              per_channel: bool):
    lls0 = jnp.full((CHUNK,), jnp.nan, dtype=prev_ll.dtype)

    def cond(c):
        i, _, _, conv, ok, finite = c
        return (i < n_run) & ~conv & ok & finite

    def body(c):
        i, P, lls, _, _, _ = c
        if steady:
            st, ok = estep_steady(P, data, sums, diag=diag, L=L)
        else:
            st, ok = estep_general(P, data, sums, diag=diag, missing=missing), jnp.asarray(True)
        ll = st.ll
        P_new = mstep(P, st, frozen=frozen, q_type=q_type, r_type=r_type,
                      per_channel=per_channel)
        P_out = jax.tree_util.tree_map(lambda a, b: jnp.where(ok, a, b), P_new, P)
        prev = jnp.where(i == 0, prev_ll, lls[jnp.maximum(i - 1, 0)])
        conv = ok & (tol > 0) & jnp.isfinite(prev) & (jnp.abs(ll - prev) <= tol * jnp.abs(prev))
        lls = lls.at[i].set(jnp.where(ok, ll, jnp.nan))
        return (i + ok.astype(i.dtype), P_out, lls, conv, jnp.asarray(ok),
                jnp.isfinite(ll) | ~ok)

    init = (jnp.zeros((), jnp.int32), P, lls0, jnp.asarray(False), jnp.asarray(True),
            jnp.asarray(True))
    n, P, lls, conv, ok, _ = jax.lax.while_loop(cond, body, init)
    return P, lls, n, conv, ok
