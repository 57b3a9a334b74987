"""nSTAT-compatible CMGF Poisson filter / smoother: identical to Dynamax's CMGF with EKF
integrals (the same update for a log-linear Poisson model), call-compatible with nSTAT."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from spikessm.models.decoding import (
    CMGFPoissonFilterResult,
    cmgf_poisson_filter,
    cmgf_poisson_smoother,
    ppaf_filter,
)


def _data(seed=0, T=300, N=20, d=2):
    rng = np.random.default_rng(seed)
    A = 0.95 * np.eye(d)
    Q = 0.02 * np.eye(d)
    C = rng.normal(0, 0.5, (N, d))
    x = np.zeros((T, d))
    for t in range(1, T):
        x[t] = A @ x[t - 1] + rng.normal(size=d) * np.sqrt(0.02)
    y = rng.poisson(np.exp(x @ C.T)).astype(float)
    return y, A, C, Q, np.zeros(d), np.eye(d)


def dynamax_cmgf_params(A, C, Q, x0, P0):
    """Dynamax CMGF model of y ~ Poisson(exp(C x)) as nSTAT builds it (EKF integrals are
    passed separately). Also used by benchmarks/bench_decoding.py."""
    import tensorflow_probability.substrates.jax as tfp
    from dynamax.generalized_gaussian_ssm import ParamsGGSSM

    Cj, Aj = jnp.asarray(C), jnp.asarray(A)
    return ParamsGGSSM(
        initial_mean=jnp.asarray(x0), initial_covariance=jnp.asarray(P0),
        dynamics_function=lambda z: Aj @ z, dynamics_covariance=jnp.asarray(Q),
        emission_mean_function=lambda z: jnp.exp(Cj @ z),
        emission_cov_function=lambda z: jnp.diag(jnp.exp(Cj @ z)),
        emission_dist=lambda mu, _: tfp.distributions.Poisson(rate=mu))


def test_matches_dynamax_cmgf_ekf(jax_x64):
    from dynamax.generalized_gaussian_ssm.inference import (
        EKFIntegrals,
        conditional_moments_gaussian_filter,
        conditional_moments_gaussian_smoother,
    )

    y, A, C, Q, x0, P0 = _data()
    params = dynamax_cmgf_params(A, C, Q, x0, P0)
    ref_f = conditional_moments_gaussian_filter(params, EKFIntegrals(), jnp.asarray(y))
    ref_s = conditional_moments_gaussian_smoother(params, EKFIntegrals(), jnp.asarray(y))

    f = cmgf_poisson_filter(y, A, C, Q, x0, P0)  # nSTAT's positional order
    s = cmgf_poisson_smoother(y, A, C, Q, x0, P0)
    assert isinstance(f, CMGFPoissonFilterResult) and isinstance(s, CMGFPoissonFilterResult)
    np.testing.assert_allclose(f.state_means, ref_f.filtered_means, atol=1e-8)
    np.testing.assert_allclose(f.state_covariances, ref_f.filtered_covariances, atol=1e-8)
    np.testing.assert_allclose(s.state_means, ref_s.smoothed_means, atol=1e-7)
    np.testing.assert_allclose(s.state_covariances, ref_s.smoothed_covariances, atol=1e-7)
    assert f.marginal_log_likelihood == s.marginal_log_likelihood
    assert np.isfinite(f.marginal_log_likelihood)


def test_options_are_the_ppaf():
    """baseline, bin_width and the iterated update are the PPAF's; the iterated filter's
    Laplace likelihood is at least the classic one's on well-specified data (it expands at
    the mode)."""
    y, A, C, Q, x0, P0 = _data(seed=1)
    b = np.full(y.shape[1], -0.2)
    f = cmgf_poisson_filter(y, A, C, Q, x0, P0, baseline=b, bin_width=0.5, iterated=True)
    ref = ppaf_filter(y, A, Q, x0, P0, C=C, baseline=b, bin_width=0.5, iterated=True)
    np.testing.assert_array_equal(f.state_means, ref.filtered_means)
    assert f.marginal_log_likelihood == ref.marginal_log_likelihood
    one = cmgf_poisson_filter(y[:, 0], A, C[:1], Q, x0, P0)  # (T,) is one neuron
    assert one.state_means.shape == (y.shape[0], 2)
