"""Kernel with time-varying dynamics and emissions against a dense covariance-form filter."""

import jax
import numpy as np

from spikessm.kernels import kalman as K


def dense_filter(m0, P0, F, a, Q, C, dvec, R, y):
    mu, P = m0, P0
    means, covs, ll = [], [], 0.0
    for t in range(len(y)):
        if t > 0:
            mu = F[t] @ mu + a[t]
            P = F[t] @ P @ F[t].T + Q[t]
        o = ~np.isnan(y[t])
        if o.any():
            Ct, Rt = C[t][o], R[t][np.ix_(o, o)]
            S = Ct @ P @ Ct.T + Rt
            r = y[t][o] - Ct @ mu - dvec[t][o]
            ll += -0.5 * (o.sum() * np.log(2 * np.pi) + np.linalg.slogdet(S)[1]
                          + r @ np.linalg.solve(S, r))
            G = P @ Ct.T @ np.linalg.inv(S)
            mu, P = mu + G @ r, P - G @ Ct @ P
        means.append(mu)
        covs.append(P)
    return np.array(means), np.array(covs), ll


def test_time_varying_parameters_match_dense_reference():
    rng = np.random.default_rng(0)
    T, d, N = 60, 3, 5
    F = np.array([0.9 * np.linalg.qr(rng.standard_normal((d, d)))[0] for _ in range(T)])
    Q = np.array([(0.05 + 0.1 * rng.random()) * np.eye(d) for _ in range(T)])
    a = 0.1 * rng.standard_normal((T, d))
    C = rng.standard_normal((T, N, d))
    dvec = rng.standard_normal((T, N))
    Lr = rng.standard_normal((T, N, N)) * 0.2
    R = Lr @ np.swapaxes(Lr, 1, 2) + 0.3 * np.eye(N)
    y = rng.standard_normal((T, N))
    y[rng.random((T, N)) < 0.25] = np.nan
    y[7] = np.nan  # a fully missing step
    m0, P0 = np.zeros(d), np.eye(d)
    ref_m, ref_P, ref_ll = dense_filter(m0, P0, F, a, Q, C, dvec, R, y)
    with jax.enable_x64(True):
        mask = ~np.isnan(y)
        e = np.where(mask, y - dvec, 0.0)
        J, h, r = jax.vmap(
            lambda e_t, m_t, C_t, R_t: [
                x[0] for x in K.gaussian_information(e_t[None], m_t[None], C_t, R_t,
                                                     diagonal=False)]
        )(e, mask, C, R)
        post = K.filter_smooth(m0, P0, F, a, Q, J, h, r)
        assert np.allclose(post.filtered_means, ref_m, rtol=1e-9, atol=1e-10)
        assert np.allclose(post.filtered_covs, ref_P, rtol=1e-9, atol=1e-10)
        assert np.isclose(float(post.log_likelihoods.sum()), ref_ll, rtol=1e-10)
        # smoothed moments: the last equals the filtered; all covariances are PD
        assert np.allclose(post.smoothed_means[-1], ref_m[-1])
        assert np.all(np.linalg.eigvalsh(np.asarray(post.smoothed_covs)) > 0)
