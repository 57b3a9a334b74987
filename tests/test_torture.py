"""Numerical torture tests (issue 9).

Every public fit or filter, under each degenerate condition that applies to it, either
completes with finite parameters, symmetric positive-definite covariances and a finite
log-likelihood, or stops with the explicit error / warning documented in
``docs/reliability.md``. Conditions: T = 10^6 steps, near-singular Q and R (eigenvalues
1e-12), counts of 1,000 per bin, all-zero neurons, constant channels, state_dim equal to
the number of channels, one-bin trials.

Shapes are drawn from a small fixed set so that compiled code is reused: T = 200 bins of
N = 3 channels, fitted with state_dim = N = 3 (so the "state_dim equals the number of
channels" condition is part of every such fit), filters with d = 2; EM runs 2-3
iterations.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy.signal import lfilter

from spikessm import (
    LinearGaussianSSM,
    PoissonHMM,
    PoissonLDS,
    SharedLinearGaussianSSM,
    SharedPoissonLDS,
    fit_hybrid_em,
    fit_point_process_em,
    hybrid_filter,
    learning_curve,
    make_params,
    make_plds_params,
    ppaf_filter,
    ppaf_smoother,
    ssglm,
)

pytestmark = pytest.mark.torture

T, N, D = 200, 3, 2
DF = N  # latent dimension of the fits: state_dim == number of channels
TINY = 1e-12


# ---------------------------------------------------------------------------
# assertions
# ---------------------------------------------------------------------------
def assert_finite(*arrays, name="array"):
    for a in arrays:
        a = np.asarray(a, dtype=np.float64)
        assert np.all(np.isfinite(a)), f"{name} has non-finite entries"


def assert_spd(M, name="covariance"):
    """Finite, symmetric (to rounding) and positive definite, for one matrix or a stack."""
    M = np.asarray(M, dtype=np.float64)
    assert np.all(np.isfinite(M)), f"{name} is not finite"
    scale = np.max(np.abs(M), axis=(-2, -1), keepdims=True)
    asym = np.abs(M - np.swapaxes(M, -1, -2))
    assert np.all(asym <= 1e-9 * scale), f"{name} is not symmetric"
    ev = np.linalg.eigvalsh(0.5 * (M + np.swapaxes(M, -1, -2)))
    assert np.all(ev > 0), f"{name} is not positive definite (min eigenvalue {ev.min():.3g})"


def assert_lgssm_params(p):
    assert_finite(p.A, p.b, p.C, p.d, p.m0, name="LG-SSM parameters")
    for k in ("Q", "R", "P0"):
        assert_spd(getattr(p, k), k)


def assert_plds_params(p):
    assert_finite(p.A, p.b, p.C, p.d, p.m0, name="Poisson LDS parameters")
    assert_spd(p.Q, "Q")
    assert_spd(p.P0, "P0")
    if p.n_gaussian:
        assert_finite(p.Cg, p.dg, name="Gaussian loadings")
        assert_spd(p.R, "R")


def assert_posterior(res):
    for k in ("filtered_covs", "predicted_covs", "smoothed_covs"):
        if getattr(res, k, None) is not None:
            assert_spd(getattr(res, k), k)
    for k in ("filtered_means", "predicted_means", "smoothed_means"):
        if getattr(res, k, None) is not None:
            assert_finite(getattr(res, k), name=k)


@pytest.fixture(scope="module")
def rng_data():
    rng = np.random.default_rng(20261123)
    return {
        "gauss": rng.standard_normal((T, N)) @ rng.standard_normal((N, N)),
        "counts": rng.poisson(2.0, (T, N)).astype(float),
        "counts1000": rng.poisson(1000.0, (T, N)).astype(float),
    }


def _lg_params(Q=0.1, R=0.5, d=D, n=N, seed=0):
    rng = np.random.default_rng(seed)
    return make_params(A=np.diag(np.linspace(0.95, 0.9, d)), C=rng.standard_normal((n, d)),
                       Q=Q * np.eye(d), R=R * np.eye(n), d=rng.standard_normal(n))


# ---------------------------------------------------------------------------
# linear-Gaussian SSM
# ---------------------------------------------------------------------------
def test_lgssm_million_steps_smooth_and_log_prob():
    """T = 10^6, d = 2, N = 3: smoother moments SPD/finite, log p(y) finite and equal to
    the smoother's (the same computation)."""
    n_steps = 10 ** 6
    p = _lg_params()
    rng = np.random.default_rng(1)
    # AR(1) latents by a linear filter (diagonal A): the Python sampling loop is slow at 10^6
    x = np.stack([lfilter([1.0], [1.0, -p.A[i, i]], np.sqrt(0.1) * rng.standard_normal(n_steps))
                  for i in range(D)], axis=1)
    y = x @ p.C.T + p.d + np.sqrt(0.5) * rng.standard_normal((n_steps, N))
    model = LinearGaussianSSM(D, N)
    res = model.smooth(p, y)
    assert res.smoothed_covs.shape == (n_steps, D, D)
    assert_posterior(res)
    assert np.isfinite(res.log_likelihood)
    # per step the log-likelihood is of order -N/2 log(2 pi e var): a sanity band
    assert -5 * N < res.log_likelihood / n_steps < 0
    assert model.log_prob(p, y) == res.log_likelihood


def test_lgssm_near_singular_Q_and_R(rng_data):
    p = _lg_params(Q=TINY, R=TINY, d=DF)
    model = LinearGaussianSSM(DF, N)
    _, y = model.sample(p, T, seed=3)
    res = model.smooth(p, y)
    assert_posterior(res)
    assert np.isfinite(res.log_likelihood)
    fit = model.fit_em(y, params=p, max_iter=2, progress=False)
    assert_lgssm_params(fit.params)
    assert np.isfinite(fit.log_likelihood) and np.all(np.isfinite(fit.log_likelihoods))


@pytest.mark.parametrize("which", ["constant", "all_zero"])
def test_lgssm_constant_channel_raises(rng_data, which):
    """A constant channel has a zero maximum-likelihood noise variance: EM stops with the
    documented FloatingPointError instead of returning a singular R."""
    y = rng_data["gauss"].copy()
    if which == "constant":
        y[:, 1] = 5.0
    else:
        y[:] = 0.0
    with pytest.raises(FloatingPointError, match="constant channel"):
        LinearGaussianSSM(DF, N).fit_em(y, max_iter=3, progress=False)


def test_lgssm_constant_channel_inference_ok(rng_data):
    """Filtering/smoothing data with a constant channel at given (positive R) parameters
    is well posed."""
    y = rng_data["gauss"].copy()
    y[:, 1] = 5.0
    res = LinearGaussianSSM(DF, N).smooth(_lg_params(d=DF), y)
    assert_posterior(res)
    assert np.isfinite(res.log_likelihood)


def test_lgssm_state_dim_equals_channels(rng_data):
    fit = LinearGaussianSSM(DF, N).fit_em(rng_data["gauss"], max_iter=3, progress=False)
    assert_lgssm_params(fit.params)
    assert np.isfinite(fit.log_likelihood)


def test_lgssm_one_bin_trials(rng_data):
    trials = [rng_data["gauss"][k:k + 1] for k in range(4)]
    with pytest.raises(ValueError, match="need at least 2"):
        LinearGaussianSSM(DF, N).fit_em(trials, max_iter=2, progress=False)
    res = LinearGaussianSSM(DF, N).smooth(_lg_params(d=DF), trials)
    assert res.smoothed_covs.shape == (4, 1, DF, DF)
    assert_posterior(res)
    assert np.all(np.isfinite(res.log_likelihood))


# ---------------------------------------------------------------------------
# Poisson LDS and hybrid
# ---------------------------------------------------------------------------
def test_plds_counts_of_1000(rng_data):
    y = rng_data["counts1000"]
    fit = PoissonLDS(DF, 1.0).fit(y, init="random", max_iter=3, progress=False)
    assert_plds_params(fit.params)
    assert np.isfinite(fit.log_likelihood)
    # the baseline captures the rate of ~1000 per bin
    np.testing.assert_allclose(np.exp(fit.params.d), 1000.0, rtol=0.2)
    pp = fit_point_process_em(y, DF, n_iter=3)
    assert_plds_params(pp.params)
    assert np.isfinite(pp.log_likelihood)


def test_plds_silent_neuron(rng_data):
    y = rng_data["counts"].copy()
    y[:, 1] = 0.0
    fit = PoissonLDS(DF, 1.0).fit(y, init="random", max_iter=3, progress=False)
    assert_plds_params(fit.params)
    assert np.isfinite(fit.log_likelihood)
    rates = PoissonLDS(DF, 1.0).smooth(fit.params, y).rates[0]
    assert_finite(rates, name="rates")
    assert rates[:, 1].max() < 0.1 * rates[:, [0, 2]].mean()


def test_plds_all_neurons_silent_default_init(rng_data):
    """Regression: every neuron silent made init='sqrt_lds' build an LG-SSM with no
    channel (ValueError 'emission_dim must be >= 1'); it now falls back, with a warning,
    to 'log_empirical_rate'."""
    y = np.zeros((T, N))
    with pytest.warns(RuntimeWarning, match="every neuron is constant"):
        fit = PoissonLDS(DF, 1.0).fit(y, max_iter=2, progress=False)
    assert_plds_params(fit.params)
    assert np.isfinite(fit.log_likelihood)


def test_plds_one_bin_trials(rng_data):
    """Trials of one bin carry no transition: the dynamics M-step is undefined, so EM
    stops with the documented RuntimeWarning and returns the last finite parameters."""
    trials = [rng_data["counts"][k:k + 1] for k in range(5)]
    with pytest.warns(RuntimeWarning, match="non-finite objective or parameters"):
        fit = PoissonLDS(DF, 1.0).fit(trials, init="random", max_iter=3, progress=False)
    assert not fit.converged
    assert_plds_params(fit.params)
    assert np.isfinite(fit.log_likelihood)


def test_plds_near_singular_Q(rng_data):
    rng = np.random.default_rng(5)
    p = make_plds_params(A=0.9 * np.eye(DF), Q=TINY * np.eye(DF),
                         C=0.3 * rng.standard_normal((N, DF)), d=np.log(2.0) * np.ones(N),
                         bin_width=1.0)
    post = PoissonLDS(DF, 1.0).smooth(p, rng_data["counts"])
    assert_spd(post.covs[0], "Laplace posterior covariances")
    assert_finite(post.means[0], name="posterior modes")
    assert np.isfinite(post.log_likelihood)


def test_hybrid_constant_gaussian_channel(rng_data):
    """Regression: a constant Gaussian channel drove its noise variance R to 0 (or a
    rounding below it) and the fit returned an R that was not positive definite with a
    NaN log-likelihood. EM now rejects a non-positive-definite covariance like a
    non-finite one: it stops with the documented RuntimeWarning, R stays SPD."""
    g = rng_data["gauss"][:, :2].copy()
    g[:, 1] = 3.0
    with pytest.warns(RuntimeWarning, match="non-finite objective or parameters"):
        hy = fit_hybrid_em(rng_data["counts"], g, DF, n_iter=3, init="random")
    assert_plds_params(hy.params)
    assert np.isfinite(hy.log_likelihood)
    assert not hy.converged


def test_poisson_filter_million_steps():
    n_steps = 10 ** 6
    y = np.random.default_rng(6).poisson(0.05, (n_steps, 1)).astype(float)
    res = ppaf_filter(y, 0.99 * np.eye(1), 1e-3 * np.eye(1), np.zeros(1), np.eye(1),
                      C=np.ones((1, 1)), baseline=np.log(0.05) * np.ones(1))
    assert res.filtered_covs.shape == (n_steps, 1, 1)
    assert np.all(res.filtered_covs > 0) and np.all(np.isfinite(res.filtered_means))
    assert np.isfinite(res.marginal_log_likelihood)


# ---------------------------------------------------------------------------
# Poisson HMM
# ---------------------------------------------------------------------------
def assert_hmm(fit):
    p = fit.params
    assert_finite(p.initial_probs, p.transition_matrix, p.rates, name="HMM parameters")
    assert np.all(p.rates >= 0)
    np.testing.assert_allclose(p.transition_matrix.sum(1), 1.0, atol=1e-12)
    np.testing.assert_allclose(p.initial_probs.sum(), 1.0, atol=1e-12)
    assert np.isfinite(fit.log_likelihood)
    assert np.all(np.isfinite(fit.log_likelihoods))


@pytest.mark.parametrize("case", ["counts1000", "silent_neuron", "all_zero", "one_bin"])
def test_poisson_hmm_torture(rng_data, case):
    y = rng_data["counts1000" if case == "counts1000" else "counts"].copy()
    if case == "silent_neuron":
        y[:, 1] = 0.0
    elif case == "all_zero":
        y[:] = 0.0
    data = [y[k:k + 1] for k in range(5)] if case == "one_bin" else y
    fit = PoissonHMM(2, dt=1.0).fit(data, max_iter=3, progress=False)
    assert_hmm(fit)
    if case == "silent_neuron":
        assert np.all(fit.params.rates[:, 1] == 0.0)
    if case == "counts1000":
        assert fit.params.rates.max() == pytest.approx(1000.0, rel=0.05)


def test_poisson_hmm_million_steps():
    y = np.random.default_rng(7).poisson(0.5, (10 ** 6, 1)).astype(float)
    model = PoissonHMM(2, dt=1.0)
    ll = model.log_likelihood(y, model.random_params(seed=0, n_channels=1, mean_rate=0.5))
    assert np.isfinite(ll) and ll < 0


# ---------------------------------------------------------------------------
# SSGLM and learning curves
# ---------------------------------------------------------------------------
def assert_ssglm(res):
    assert_finite(res.theta, res.rates, res.m0, name="SSGLM estimates")
    assert_spd(res.theta_cov, "theta_cov")
    assert_spd(res.filtered_covs, "filtered_covs")
    Q = np.asarray(res.Q)
    assert_spd(Q if Q.ndim == 2 else np.diag(np.atleast_1d(Q)), "Q")
    assert np.isfinite(res.log_likelihood)


@pytest.mark.parametrize("case", ["counts1000", "all_zero", "one_bin"])
def test_ssglm_torture(case):
    rng = np.random.default_rng(8)
    if case == "counts1000":
        y = rng.poisson(1000.0, (5, 50)).astype(float)
        res = ssglm(y, 0.001, basis_width=0.01, max_iter=3)
    elif case == "all_zero":
        res = ssglm(np.zeros((5, 50)), 0.001, basis_width=0.01, max_iter=3)
    else:
        res = ssglm(rng.poisson(1.0, (5, 1)).astype(float), 0.001, basis_width=0.001,
                    max_iter=3)
    assert_ssglm(res)


@pytest.mark.parametrize("outcome", [1.0])
def test_learning_curve_all_same_outcome(outcome):
    res = learning_curve(np.full(30, outcome))
    assert_finite(res.p, res.p_lower, res.p_upper, res.x_mean, name="learning curve")
    assert np.all(res.x_var > 0)
    assert np.all((res.p > 0) & (res.p < 1))
    assert np.isfinite(res.log_likelihood)
    with pytest.raises(ValueError, match="at least 2"):
        learning_curve(np.full(1, outcome))


# ---------------------------------------------------------------------------
# point-process decoding
# ---------------------------------------------------------------------------
def _decoder_model(q=0.01):
    rng = np.random.default_rng(9)
    return (0.95 * np.eye(D), q * np.eye(D), np.zeros(D), np.eye(D),
            0.3 * rng.standard_normal((N, D)))


@pytest.mark.parametrize("case", ["near_singular_Q", "counts1000", "silent", "one_bin"])
@pytest.mark.parametrize("iterated", [False, True])
def test_ppaf_torture(rng_data, case, iterated):
    A, Q, m0, P0, C = _decoder_model(TINY if case == "near_singular_Q" else 0.01)
    y = rng_data["counts1000" if case == "counts1000" else "counts"].copy()
    base = np.log(1000.0 if case == "counts1000" else 2.0) * np.ones(N)
    if case == "silent":
        y[:, 1] = 0.0
    if case == "one_bin":
        y = y[:1]
    res = ppaf_smoother(y, A, Q, m0, P0, C=C, baseline=base, iterated=iterated)
    assert_posterior(res)
    assert np.all(np.isfinite(res.log_likelihoods))
    assert np.isfinite(res.marginal_log_likelihood)


@pytest.mark.parametrize("case", ["near_singular_Q", "counts1000"])
def test_hybrid_filter_torture(rng_data, case):
    A, Q, m0, P0, C = _decoder_model(TINY if case == "near_singular_Q" else 0.01)
    y = rng_data["counts1000" if case == "counts1000" else "counts"]
    base = np.log(1000.0 if case == "counts1000" else 2.0) * np.ones(N)
    Pt = np.array([[0.99, 0.01], [0.02, 0.98]])
    res = hybrid_filter(y, Pt, A, Q, m0, P0, C=C, baseline=base)
    assert_spd(res.covs, "covs")
    assert_spd(res.mode_covs, "mode_covs")
    assert_finite(res.means, res.mode_probabilities, name="hybrid filter output")
    np.testing.assert_allclose(res.mode_probabilities.sum(-1), 1.0, atol=1e-10)
    assert np.isfinite(res.marginal_log_likelihood)


# ---------------------------------------------------------------------------
# shared models
# ---------------------------------------------------------------------------
def test_shared_plds_counts_1000_and_silent_neuron(rng_data):
    silent = rng_data["counts"].copy()
    silent[:, 1] = 0.0
    fit = SharedPoissonLDS(DF, 1.0).fit([rng_data["counts1000"], silent], init="random",
                                       max_iter=3, progress=False)
    for p in fit.params.recordings:
        assert_plds_params(p)
    assert np.isfinite(fit.log_likelihood)
    assert np.all(np.isfinite(fit.per_recording_log_likelihood))


def test_shared_lgssm_constant_channel(rng_data):
    """Shared LG-SSM EM with a constant channel in one recording stops with the documented
    RuntimeWarning and returns the last finite parameters (R stays SPD)."""
    y = rng_data["gauss"]
    const = y.copy()
    const[:, 1] = 5.0
    with pytest.warns(RuntimeWarning, match="EM stopped on a non-finite"):
        fit = SharedLinearGaussianSSM(DF).fit([y, const], max_iter=3, progress=False)
    for p in fit.params.recordings:
        assert_lgssm_params(p)
    assert np.isfinite(fit.log_likelihood)
