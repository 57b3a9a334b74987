"""The restructured sequential kernel (batched log-likelihoods, smoother gains and Joseph
terms outside the scans) against a plain per-step NumPy filter/RTS smoother, with
time-varying F, Q, J; padded steps; long-run positive definiteness."""

from __future__ import annotations

import jax
import numpy as np
import pytest

from spikessm.kernels import kalman as K


def _problem(d, T, seed, tv=True):
    rng = np.random.default_rng(seed)

    def stable():
        A = rng.standard_normal((d, d))
        return 0.9 * A / np.max(np.abs(np.linalg.eigvals(A)))

    def spd(scale):
        B = rng.standard_normal((d, d))
        return scale * (B @ B.T / d + np.eye(d))

    F = np.stack([stable() for _ in range(T)]) if tv else stable()
    Q = np.stack([spd(0.1) for _ in range(T)]) if tv else spd(0.1)
    C = rng.standard_normal((T, 2 * d, d))
    J = np.einsum("tni,tnj->tij", C, C) * rng.exponential(size=(T, 1, 1))
    h = rng.standard_normal((T, d))
    r = rng.standard_normal(T)
    a = 0.1 * rng.standard_normal((T, d))
    return rng.standard_normal(d), spd(1.0), F, a, Q, J, h, r


def _reference(m0, P0, F, a, Q, J, h, r):
    """Textbook covariance-form filter (P^-1 + J)^-1 and RTS smoother, step by step."""
    T, d = h.shape
    Ft = (lambda t: F[t]) if F.ndim == 3 else (lambda t: F)
    Qt = (lambda t: Q[t]) if Q.ndim == 3 else (lambda t: Q)
    m, P = m0, P0
    mus, Sigs, ms, Ps, lls = [], [], [], [], []
    for t in range(T):
        Sig = np.linalg.inv(np.linalg.inv(P) + J[t])
        mu = Sig @ (np.linalg.solve(P, m) + h[t])
        S = np.eye(d) + np.linalg.cholesky(P).T @ J[t] @ np.linalg.cholesky(P)
        resid = h[t] - J[t] @ m
        ll = -0.5 * (r[t] + np.linalg.slogdet(S)[1] - 2 * m @ h[t] + m @ J[t] @ m
                     - resid @ Sig @ resid)
        mus.append(mu), Sigs.append(Sig), ms.append(m), Ps.append(P), lls.append(ll)
        if t + 1 < T:
            m, P = Ft(t + 1) @ mu + a[t + 1], Ft(t + 1) @ Sig @ Ft(t + 1).T + Qt(t + 1)
    sm, Ss, cross = [None] * T, [None] * T, [np.zeros((d, d))] * T
    sm[-1], Ss[-1] = mus[-1], Sigs[-1]
    for t in range(T - 2, -1, -1):
        G = Sigs[t] @ Ft(t + 1).T @ np.linalg.inv(Ps[t + 1])
        sm[t] = mus[t] + G @ (sm[t + 1] - ms[t + 1])
        Ss[t] = Sigs[t] + G @ (Ss[t + 1] - Ps[t + 1]) @ G.T
        cross[t + 1] = Ss[t + 1] @ G.T
    return [np.array(x) for x in (mus, Sigs, ms, Ps, sm, Ss, cross, lls)]


@pytest.mark.parametrize("d,tv", [(1, True), (2, True), (3, False), (5, True)])
def test_matches_stepwise_reference(d, tv):
    args = _problem(d, 60, seed=d, tv=tv)
    args[5][20:25] = 0.0  # unobserved stretch
    args[6][20:25] = 0.0
    args[7][20:25] = 0.0
    with jax.enable_x64(True):
        post = jax.jit(K.filter_smooth)(*args)
        fo = jax.jit(K.filter_only)(*args)
    ref = _reference(*args)
    for got, want in zip(post, ref):
        np.testing.assert_allclose(np.asarray(got), want, rtol=1e-9, atol=1e-10)
    for got, want in zip(fo, (post[0], post[1], post[2], post[3], post[7])):
        np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=1e-13, atol=1e-13)


def test_padding_and_long_run_stay_finite_and_pd():
    d, T = 3, 20000
    m0, P0, F, a, Q, J, h, r = _problem(d, T, seed=7, tv=False)
    J[T - 500:], h[T - 500:], r[T - 500:] = 0.0, 0.0, 0.0  # padded tail
    with jax.enable_x64(True):
        post = jax.jit(K.filter_smooth)(m0, P0, F, a, Q, J, h, r)
    for x in post:
        assert np.all(np.isfinite(np.asarray(x)))
    assert np.all(np.asarray(post.log_likelihoods)[T - 500:] == 0.0)
    for covs in (post.filtered_covs, post.predicted_covs, post.smoothed_covs):
        c = np.asarray(covs)
        np.testing.assert_allclose(c, np.swapaxes(c, 1, 2), rtol=0, atol=1e-14)
        assert np.min(np.linalg.eigvalsh(c)) > 0.0
