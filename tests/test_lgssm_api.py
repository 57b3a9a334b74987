"""SGD, forecasts, posterior predictive, sampling, the nSTAT-compatible function, the CLI."""

import numpy as np
import pytest

from spikessm import LinearGaussianSSM, fit_linear_gaussian_em, make_params


def notebook_problem(seed=0, T=100):
    """The Dynamax notebook's example: d=2, N=10, A = 0.99 rotation(pi/10), Q = 0.01 I."""
    th = np.pi / 10
    A = 0.99 * np.array([[np.cos(th), -np.sin(th)], [np.sin(th), np.cos(th)]])
    rng = np.random.default_rng(seed)
    truth = make_params(A=A, C=rng.standard_normal((10, 2)), Q=0.01 * np.eye(2),
                        R=0.1 * np.eye(10), d=np.zeros(10))
    model = LinearGaussianSSM(2, 10)
    _, y = model.sample(truth, T, seed=seed + 1)
    return model, truth, y


def test_sgd_reaches_em_optimum():
    model, _, y = notebook_problem()
    init = model.initialize(y, method="random", seed=3)
    em = model.fit_em(y, params=init, max_iter=400, tol=1e-10, progress=False)
    sgd = model.fit_sgd(y, params=init, n_steps=2500, learning_rate=1e-2, progress=False)
    rel = (em.log_likelihood - sgd.log_likelihood) / abs(em.log_likelihood)
    assert rel < 1e-3, (em.log_likelihood, sgd.log_likelihood)
    # the loss trace is the exact negative log-likelihood per observed entry
    first = -model.log_prob(init, y) / y.size
    assert np.isclose(sgd.losses[0], first, rtol=1e-10)


@pytest.mark.parametrize("frozen", [("A",), ("C", "R"), ("Q", "m0", "P0"), ("b", "d")])
def test_sgd_frozen_bitwise(frozen):
    model, _, y = notebook_problem()
    init = model.initialize(y, seed=0)
    fit = model.fit_sgd(y, params=init, frozen=frozen, n_steps=30, progress=False)
    for name in frozen:
        assert np.array_equal(getattr(fit.params, name), getattr(init, name))
    moved = [n for n in ("A", "C", "Q", "R") if n not in frozen]
    assert any(not np.array_equal(getattr(fit.params, n), getattr(init, n)) for n in moved)


def test_sgd_respects_covariance_structure():
    model = LinearGaussianSSM(2, 6, dynamics_covariance="isotropic",
                              emission_covariance="diagonal")
    truth = model.random_params(seed=1)
    truth = truth.replace(Q=0.1 * np.eye(2), R=np.diag(np.linspace(0.2, 1.0, 6)))
    _, y = model.sample(truth, 150, seed=2)
    fit = model.fit_sgd(y, n_steps=50, progress=False)
    Q, R = fit.params.Q, fit.params.R
    assert np.allclose(Q, Q[0, 0] * np.eye(2)) and np.array_equal(R, np.diag(np.diag(R)))
    with pytest.raises(ValueError, match="params.R"):
        model.fit_sgd(y, params=truth.replace(R=np.full((6, 6), 0.1) + np.eye(6)),
                      n_steps=2, progress=False)


def test_posterior_predictive_calibrated():
    model, truth, y = notebook_problem(T=3000)
    y_missing = y.copy()
    rng = np.random.default_rng(5)
    hide = rng.random(y.shape) < 0.2
    y_missing[hide] = np.nan
    pred = model.posterior_predictive(truth, y_missing)
    z = np.abs(y[hide] - pred.mean[hide]) / pred.std[hide]
    coverage = np.mean(z < 1.959964)
    # 95% intervals for held-back entries: binomial sd ~ 0.004 with ~6000 entries
    assert abs(coverage - 0.95) < 0.015, coverage


def test_forecast_matches_closed_form_and_calibration():
    model, truth, y = notebook_problem(T=400)
    fc = model.forecast(truth, y, horizon=5)
    f = model.filter(truth, y)
    mu, S = f.filtered_means[-1], f.filtered_covs[-1]
    for h in range(5):
        mu = truth.A @ mu + truth.b
        S = truth.A @ S @ truth.A.T + truth.Q
        assert np.allclose(fc.state_means[h], mu, rtol=1e-10, atol=1e-12)
        assert np.allclose(fc.state_covs[h], S, rtol=1e-10, atol=1e-12)
        assert np.allclose(fc.emission_covs[h], truth.C @ S @ truth.C.T + truth.R)
    # calibration over many trials: one-step-ahead emission forecasts
    _, yy = model.sample(truth, 60, n_trials=400, seed=9)
    fc = model.forecast(truth, yy[:, :-1], horizon=1)
    sd = np.sqrt(np.diagonal(fc.emission_covs[:, 0], axis1=1, axis2=2))
    z = np.abs(yy[:, -1] - fc.emission_means[:, 0]) / sd
    assert abs(np.mean(z < 1.959964) - 0.95) < 0.02


def test_sample_shapes_and_seed():
    model = LinearGaussianSSM(3, 5, input_dim=2)
    p = model.random_params(seed=0)
    u = np.random.default_rng(0).standard_normal((4, 30, 2))
    x1, y1 = model.sample(p, 30, n_trials=4, inputs=u, seed=7)
    x2, y2 = model.sample(p, 30, n_trials=4, inputs=u, seed=7)
    assert x1.shape == (4, 30, 3) and y1.shape == (4, 30, 5)
    assert np.array_equal(y1, y2)
    with pytest.raises(ValueError, match="inputs"):
        model.sample(p, 30, seed=0)


def test_fit_linear_gaussian_em_fields():
    model, truth, y = notebook_problem(T=300)
    res = fit_linear_gaussian_em(y, state_dim=2, n_iter=15)
    assert res.transition_matrix.shape == (2, 2)
    assert res.observation_matrix.shape == (10, 2)
    assert res.observation_covariance.shape == (10, 10)
    assert res.log_likelihoods.shape == (15,) and res.n_iter == 15
    assert np.all(np.diff(res.log_likelihoods) > -1e-8 * np.abs(res.log_likelihoods[:-1]))
    assert np.isclose(res.log_likelihood, model.log_prob(res.params, y), rtol=1e-10)
    with pytest.raises(ValueError, match="state_dim"):
        fit_linear_gaussian_em(y, state_dim=0)


def test_repeat_fit_is_bitwise_reproducible():
    model, _, y = notebook_problem(T=200)
    a = model.fit_em(y, max_iter=10, tol=0, init="random", seed=4, progress=False)
    b = model.fit_em(y, max_iter=10, tol=0, init="random", seed=4, progress=False)
    assert np.array_equal(a.log_likelihoods, b.log_likelihoods)
    assert np.array_equal(a.params.C, b.params.C)


def test_user_jax_setting_untouched():
    import jax
    import jax.numpy as jnp

    before = jax.config.jax_enable_x64
    model, truth, y = notebook_problem(T=50)
    model.log_prob(truth, y)
    assert jax.config.jax_enable_x64 == before
    assert jnp.ones(1).dtype == (jnp.float64 if before else jnp.float32)


def test_inference_rejects_params_that_do_not_match_structure():
    model = LinearGaussianSSM(2, 4, emission_covariance="diagonal")
    full = LinearGaussianSSM(2, 4).random_params(seed=0)
    full = full.replace(R=full.R + 0.1)  # a full R
    y = np.zeros((20, 4))
    for call in (model.log_prob, model.filter, model.smooth, model.posterior_predictive):
        with pytest.raises(ValueError, match="params.R"):
            call(full, y)


def test_bad_inputs_shapes_named():
    model = LinearGaussianSSM(2, 3, input_dim=1)
    p = model.random_params(seed=0)
    with pytest.raises(ValueError, match="inputs"):
        model.sample(p, 10, inputs=np.zeros((7, 1)), seed=0)
    u = np.random.default_rng(1).standard_normal((40, 1))
    x, y = model.sample(p, 40, inputs=u, seed=0)
    with pytest.raises(ValueError, match="future_inputs"):
        model.forecast(p, y, horizon=3, inputs=u, future_inputs=np.zeros((2, 1)))
    with pytest.raises(ValueError, match="init"):
        model.fit_em(y, u, params=p, init="foo", progress=False)
    fit = model.fit_em(y, u, max_iter=2, tol=np.float32(1e-6), progress=False)
    assert fit.n_iter == 2
