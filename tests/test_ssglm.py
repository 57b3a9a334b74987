"""State-space GLM across trials: kernels against dense references, the simulated
acceptance scenario, calibration, held-out scores and input validation."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.special import expit, gammaln
from scipy.stats import norm

from spikessm.kernels import kalman as K
from spikessm.kernels.sampling import backward_sample
from spikessm.models.ssglm import (
    core,
    glm_psth,
    history_design,
    history_lags,
    learning_trial,
    spline_basis,
    ssglm,
    ssglmFB,
    unit_pulse_basis,
)
from spikessm.models.ssglm import model as M

DT = 1e-3


# ------------------------------------------------------------------------------------
# dense references (written here, independent of the kernels)
# ------------------------------------------------------------------------------------
def dense_prior_precision(P0, Q, Kn):
    """Precision of theta_0 ~ N(m0, P0), theta_k = theta_{k-1} + eps: (K R, K R)."""
    R = Q.shape[0]
    Qi, P0i = np.linalg.inv(Q), np.linalg.inv(P0)
    H = np.zeros((Kn * R, Kn * R))
    H[:R, :R] += P0i
    for k in range(1, Kn):
        a, b = slice((k - 1) * R, k * R), slice(k * R, (k + 1) * R)
        H[a, a] += Qi
        H[b, b] += Qi
        H[a, b] -= Qi
        H[b, a] -= Qi
    return H


def dense_log_prior(x, m0, P0, Q):
    def lognorm(e, S):
        return -0.5 * (e @ np.linalg.solve(S, e) + len(e) * np.log(2 * np.pi)
                       + np.linalg.slogdet(S)[1])
    return lognorm(x[0] - m0, P0) + sum(lognorm(x[k] - x[k - 1], Q) for k in range(1, len(x)))


def dense_glm(x, C, y, scale, off, link):
    """Log-likelihood (up to the data constant), gradient (K, R), Hessian blocks."""
    eta = x @ C.T + off
    if link == "poisson":
        mean = scale * np.exp(eta)
        var, f = mean, np.sum(y * eta - mean)
    else:
        p = expit(eta)
        mean, var = scale * p, scale * p * (1 - p)
        f = np.sum(y * eta - scale * np.logaddexp(0, eta))
    return f, (y - mean) @ C, np.einsum("ku,ui,uj->kij", var, C, C)


def dense_mode(m0, P0, Q, C, y, scale, off, link, iters=60):
    Kn, R = y.shape[0], C.shape[1]
    Hp = dense_prior_precision(P0, Q, Kn)
    bp = np.zeros(Kn * R)
    bp[:R] = np.linalg.solve(P0, m0)
    x = np.zeros(Kn * R)
    for _ in range(iters):
        _, g, W = dense_glm(x.reshape(Kn, R), C, y, scale, off, link)
        H = Hp.copy()
        for k in range(Kn):
            H[k * R:(k + 1) * R, k * R:(k + 1) * R] += W[k]
        grad = g.ravel() - Hp @ x + bp
        x = x + np.linalg.solve(H, grad)
    return x.reshape(Kn, R), H


# ------------------------------------------------------------------------------------
# kernels
# ------------------------------------------------------------------------------------
def test_backward_sample_matches_dense_joint_posterior():
    rng = np.random.default_rng(0)
    T, d, n = 5, 2, 40000
    m0, P0 = np.array([0.3, -0.2]), np.array([[1.0, 0.3], [0.3, 0.8]])
    Q = np.array([[0.2, 0.05], [0.05, 0.1]])
    G = rng.normal(size=(T, d, d))
    J = np.einsum("tij,tkj->tik", G, G) + 0.1 * np.eye(d)
    h = rng.normal(size=(T, d))
    with jax.enable_x64(True):
        @jax.jit
        def run(key):
            post = K.filter_smooth(m0, P0, jnp.eye(d), jnp.zeros((T, d)), Q, J, h, jnp.zeros(T))
            return backward_sample(key, post.filtered_means, post.filtered_covs,
                                   post.predicted_means, post.predicted_covs, jnp.eye(d),
                                   jnp.asarray(Q), n)

        draws = np.asarray(run(jax.random.PRNGKey(1)))
    H = dense_prior_precision(P0, Q, T)
    for t in range(T):
        H[t * d:(t + 1) * d, t * d:(t + 1) * d] += J[t]
    b = h.ravel().copy()
    b[:d] += np.linalg.solve(P0, m0)
    Sig = np.linalg.inv(H)
    mean = np.linalg.solve(H, b)
    flat = draws.reshape(n, T * d)
    se_mean = np.sqrt(np.diag(Sig) / n)
    assert np.all(np.abs(flat.mean(0) - mean) < 5 * se_mean)
    emp = np.cov(flat.T)
    se_cov = np.sqrt((np.outer(np.diag(Sig), np.diag(Sig)) + Sig ** 2) / n)
    assert np.all(np.abs(emp - Sig) < 5 * se_cov)  # includes every cross-trial block


@pytest.mark.parametrize("link", ["poisson", "bernoulli"])
def test_trajectory_laplace_matches_dense_newton(link):
    rng = np.random.default_rng(3)
    Kn, U, R = 6, 8, 3
    C = rng.normal(size=(U, R)) * 0.5
    off = rng.normal(size=(Kn, U)) * 0.3 - (0.5 if link == "poisson" else 0.0)
    scale = np.where(rng.random((Kn, U)) < 0.85, 1.0 if link == "bernoulli" else 2.0, 0.0)
    y = (rng.random((Kn, U)) < 0.4).astype(float) * (scale > 0)
    m0, P0, Q = rng.normal(size=R) * 0.2, np.eye(R) * 0.7, np.diag([0.1, 0.2, 0.05])
    with jax.enable_x64(True):
        obs = core.GLMObs(*(jnp.asarray(a) for a in (C, y, scale, off)))
        lap = core.trajectory_laplace(
            jnp.asarray(m0), jnp.asarray(P0), jnp.asarray(Q), obs, jnp.zeros((Kn, R, R)),
            jnp.zeros((Kn, R)), jnp.zeros(Kn), jnp.zeros((Kn, R)), link=link, tol=1e-11)
    x, H = dense_mode(m0, P0, Q, C, y, scale, off, link)
    assert bool(lap.converged)
    np.testing.assert_allclose(np.asarray(lap.mode), x, atol=1e-7)
    Sig = np.linalg.inv(H)
    S = np.asarray(lap.posterior.smoothed_covs)
    X = np.asarray(lap.posterior.cross_covs)
    for k in range(Kn):
        np.testing.assert_allclose(S[k], Sig[k * R:(k + 1) * R, k * R:(k + 1) * R], atol=1e-8)
        if k:
            np.testing.assert_allclose(X[k], Sig[k * R:(k + 1) * R, (k - 1) * R:k * R],
                                       atol=1e-8)
    f, _, _ = dense_glm(x, C, y, scale, off, link)
    laplace = (dense_log_prior(x, m0, P0, Q) + f + 0.5 * Kn * R * np.log(2 * np.pi)
               - 0.5 * np.linalg.slogdet(H)[1])
    np.testing.assert_allclose(float(lap.log_likelihood), laplace, rtol=1e-9)


def test_unit_pulse_reduction_equals_per_bin_likelihood():
    """Per-pulse counts and exposures give the same mode and log p(y) as every bin,
    with spike history in the exposures."""
    rng = np.random.default_rng(5)
    y = rng.poisson(0.03, size=(7, 60)).astype(float)
    valid = rng.random((7, 60)) > 0.05
    y[~valid] = np.nan
    yy, vv = M._as_trials(y)
    spec = M._make_spec(60, DT, "pulse", 0.01, None, [0, 0.002, 0.004], "poisson")
    assert spec.reduced
    with jax.enable_x64(True):  # private functions: the inputs must be float64 already
        data = M._data(spec, yy, vv)
        P = {"Q": jnp.eye(6) * 0.05, "m0": jnp.full(6, np.log(30.0)), "P0": jnp.eye(6),
             "gamma": jnp.array([-1.0, 0.5])}
        x0 = jnp.full((7, 6), np.log(30.0))
        assert all(a.dtype == jnp.float64 for a in data)
        outs = [M._estep(P, data, x0, DT, link="poisson", reduced=red, max_iter=50, tol=1e-11)
                for red in (True, False)]
    np.testing.assert_allclose(np.asarray(outs[0][0].mode), np.asarray(outs[1][0].mode),
                               atol=1e-8)
    np.testing.assert_allclose(float(outs[0][1]), float(outs[1][1]), rtol=1e-10)


def test_bases_and_history_design():
    B = unit_pulse_basis(10, DT, 0.003)
    assert B.shape == (10, 4) and np.all(B.sum(1) == 1) and B[9, 3] == 1 and B[3, 1] == 1
    S = spline_basis(200, DT, 8)
    assert S.shape == (200, 8)
    np.testing.assert_allclose(S.sum(1), 1.0, atol=1e-12)
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, size=(3, 30)).astype(float)
    valid = rng.random((3, 30)) > 0.1
    lags = history_lags([0, 0.001, 0.004], DT)
    H = history_design(y, valid, lags)
    ref = np.zeros_like(H)
    for k in range(3):
        for t in range(30):
            for j, ls in enumerate(lags):
                ref[k, t, j] = sum(y[k, t - lag] * valid[k, t - lag] for lag in ls
                                   if t - lag >= 0)
    np.testing.assert_array_equal(H, ref)


# ------------------------------------------------------------------------------------
# simulated acceptance scenario (50 trials x 1 s at 1 ms)
# ------------------------------------------------------------------------------------
ONSET = 19  # 0-based: the response appears at trial 20


def drift_truth(Kn=50, T=1000):
    """20 Hz baseline; from trial 20 a response in the 200-400 ms pulses grows to
    exp(2.5) x baseline (time constant 3 trials). Piecewise constant on 50 ms pulses."""
    t = (np.arange(T) + 0.5) * DT
    g = np.interp(np.floor(t / 0.05) * 0.05 + 0.025, [0.2, 0.3, 0.4], [0, 1, 0])
    k = np.arange(Kn)
    a = np.where(k >= ONSET, 2.5 * (1 - np.exp(-(k - ONSET + 1) / 3.0)), 0.0)
    return 20.0 * np.exp(a[:, None] * g[None])


@pytest.fixture(scope="module")
def drift_fit():
    lam = drift_truth()
    y = np.random.default_rng(0).poisson(lam * DT).astype(float)
    return lam, y, ssglm(y, DT, basis_width=0.05)


def test_simulated_drift_acceptance(drift_fit):
    lam, y, res = drift_fit
    assert res.converged
    rmse = np.sqrt(np.mean((res.rates - lam) ** 2))
    rmse_trial = np.sqrt(np.mean((res.trial_glm.rates - lam) ** 2))
    assert rmse <= 0.5 * rmse_trial
    covered = np.mean((res.rates_lower <= lam) & (lam <= res.rates_upper))
    assert covered >= 0.90
    lt = res.learning_trial(window=(0.25, 0.35))
    assert lt is not None and abs(lt - ONSET) <= 3
    tr = res.log_likelihoods
    assert np.all(np.diff(tr) > -1e-5 * np.abs(tr[:-1]))


def test_rate_comparison_matches_dense_gaussian(drift_fit):
    """P(theta_mr > theta_kr) from backward-sampled draws equals the exact Gaussian
    probability from the dense joint Laplace covariance (prior + per-trial Hessians)."""
    lam, y, res = drift_fit
    Kn, R = res.theta.shape
    r = 5  # the 250-300 ms pulse: a single-pulse window makes the rate monotone in theta_r
    P = res.rate_comparison_matrix(window=(0.25, 0.3), n_draws=4000, seed=2)
    counts_exposure = 50 * DT  # every bin observed
    W = counts_exposure * np.exp(res.theta)  # (K, R) Poisson Hessian of each pulse
    H = dense_prior_precision(res.P0, res.Q, Kn)
    H[np.diag_indices_from(H)] += W.ravel()
    Sig = np.linalg.inv(H)
    idx = np.arange(Kn) * R + r
    Sr = Sig[np.ix_(idx, idx)]
    mu = res.theta[:, r]
    var = np.diag(Sr)[:, None] + np.diag(Sr)[None] - 2 * Sr
    np.fill_diagonal(var, 1.0)
    exact = norm.cdf((mu[:, None] - mu[None]) / np.sqrt(var))
    np.fill_diagonal(exact, 0.0)
    assert np.max(np.abs(P - exact)) < 0.04  # Monte Carlo: 4000 draws, sd <= 0.008
    np.testing.assert_allclose(P + P.T + np.eye(Kn), 1.0, atol=1e-12)
    np.testing.assert_allclose(res.theta_cov[:, r, r], np.diag(Sr), rtol=1e-6)


def test_calibration_random_walk_from_the_model():
    """Data simulated from the model itself (independent random walks of 20 pulses with
    one variance): the 95% credible intervals of theta cover the truth in 90-99% of
    (trial, pulse) with q_type='isotropic'. (Per-pulse variances estimated from 50 sparse
    trials collapse towards 0 for some pulses and under-cover: see docs/ssglm.md.)"""
    rng = np.random.default_rng(11)
    Kn, R = 50, 20
    theta = np.log(20.0) + np.cumsum(rng.normal(0, np.sqrt(0.02), size=(Kn, R)), axis=0)
    B = unit_pulse_basis(1000, DT, 0.05)
    y = rng.poisson(np.exp(theta @ B.T) * DT).astype(float)
    res = ssglm(y, DT, basis_width=0.05, q_type="isotropic")
    sd = np.sqrt(np.diagonal(res.theta_cov, axis1=1, axis2=2))
    inside = np.abs(res.theta - theta) <= 1.96 * sd
    assert 0.90 <= inside.mean() <= 0.99
    assert np.allclose(res.Q, res.Q[0, 0] * np.eye(R))
    assert 0.012 < res.Q[0, 0] < 0.03  # true 0.02


def test_heldout_trial_laplace_matches_monte_carlo(drift_fit):
    lam, y, _ = drift_fit
    masked = y.copy()
    masked[30] = np.nan
    res = ssglm(masked, DT, basis_width=0.05)
    ll = res.heldout_log_likelihood(y, [30])[0]
    rng = np.random.default_rng(4)
    th = rng.multivariate_normal(res.theta[30], res.theta_cov[30], size=20000)
    eta = th @ res.basis.T
    lp = (eta @ y[30] + np.log(DT) * y[30].sum() - DT * np.exp(eta).sum(1)
          - gammaln(y[30] + 1).sum())
    mc = np.logaddexp.reduce(lp) - np.log(len(lp))
    assert abs(ll - mc) < 0.1
    psth = glm_psth(np.delete(y, 30, axis=0), DT, basis_width=0.05)
    assert ll > psth.trial_log_likelihoods(y[30:31])[0]  # the response trial is predicted


def _pulse_obs(y, Bn):
    """Reduced (per-pulse) GLMObs of 0/1 or count trials y (K, T) on unit pulses Bn."""
    return core.GLMObs(jnp.eye(Bn.shape[1]), jnp.asarray(y @ Bn),
                       jnp.asarray(np.full((y.shape[0], Bn.shape[1]), DT) * Bn.sum(0)),
                       jnp.zeros((y.shape[0], Bn.shape[1])))


def test_separable_q_maximises_the_laplace_log_likelihood():
    """Unit pulses, diagonal Q: the per-pulse maximiser of separable_q beats any other
    diagonal Q on the joint Laplace log-likelihood of trajectory_laplace (which it
    factorises), and its gains are the per-pulse differences of that objective."""
    with jax.enable_x64(True):
        rng = np.random.default_rng(3)
        Kn, T = 30, 300
        Bn = unit_pulse_basis(T, DT, 0.05)  # 6 pulses
        R = Bn.shape[1]
        drift = np.zeros((Kn, R))
        drift[:, :3] = np.cumsum(rng.normal(0, 0.2, size=(Kn, 3)), axis=0)  # 3 drift
        y = rng.poisson(np.exp(np.log(30.0) + drift) @ Bn.T * DT).astype(float)
        obs = _pulse_obs(y, Bn)
        m0, p0 = jnp.full(R, np.log(30.0)), jnp.full(R, 100.0)
        x0 = jnp.full((Kn, R), np.log(30.0))
        q, gain = core.separable_q(m0, p0, obs, x0, 1e-8, jnp.zeros(2), link="poisson",
                                   shared=False, tied=False)
        q, gain = np.asarray(q), np.asarray(gain)

        def joint(qd):
            z = jnp.zeros((Kn, R))
            lap = core.trajectory_laplace(m0, jnp.diag(p0), jnp.diag(jnp.asarray(qd)), obs,
                                          jnp.zeros((Kn, R, R)), z, z[:, 0], x0,
                                          link="poisson")
            return float(lap.log_likelihood)

        best = joint(q)
        for factor in (0.5, 2.0):
            for r in range(R):
                other = q.copy()
                other[r] = max(q[r] * factor, 1e-8) if q[r] > 1e-7 else 1e-3
                assert joint(other) <= best + 1e-6
        static = q.copy()
        static[0] = 1e-8
        np.testing.assert_allclose(best - joint(static), gain[0], atol=1e-5)
        assert np.all(q[:3] > 1e-3)  # the drifting pulses drift


def test_no_drift_data_gives_the_static_model():
    """No drift in the truth: the test of drift keeps Q at its floor, and the SSGLM
    reproduces the GLM-PSTH (rates, held-out scores), so it cannot lose to it."""
    rng = np.random.default_rng(5)
    Kn, T = 30, 400
    lam = 20.0 * np.exp(np.sin(np.linspace(0, 3, T)))[None].repeat(Kn, 0)
    y = rng.poisson(lam * DT).astype(float)
    test = np.arange(2, Kn, 5)
    masked = y.copy()
    masked[test] = np.nan
    res = ssglm(masked, DT, basis_width=0.05)
    assert np.all(np.diag(res.Q) == pytest.approx(1e-8))
    psth = glm_psth(np.delete(y, test, axis=0), DT, basis_width=0.05)
    np.testing.assert_allclose(res.rates, np.broadcast_to(psth.rates, res.rates.shape),
                               rtol=1e-3)
    ss = res.heldout_log_likelihood(y, test)
    np.testing.assert_allclose(ss, psth.predictive_log_likelihoods(y[test]), atol=0.05)
    np.testing.assert_allclose(res.plugin_log_likelihood(y, test),
                               psth.trial_log_likelihoods(y[test]), atol=0.05)
    # without the test (maximum-likelihood Q) some pulses pick up noise, and the fit's
    # Laplace log-likelihood is at least the static one
    ml = ssglm(masked, DT, basis_width=0.05, drift_level=None)
    assert ml.log_likelihood >= res.log_likelihood - 1e-6


def test_history_coefficients_recovered():
    """Refractory history (gamma = -2 for the previous 2 ms) and a drifting baseline."""
    rng = np.random.default_rng(7)
    Kn, T = 12, 400
    base = np.log(40.0) + np.linspace(0, 0.6, Kn)
    y = np.zeros((Kn, T))
    for k in range(Kn):
        for t in range(T):
            recent = y[k, max(t - 2, 0):t].sum()
            y[k, t] = rng.random() < DT * np.exp(base[k] - 2.0 * recent)
    res = ssglmFB(y, DT, windowTimes=[0, 0.002], numBasis=4, fitType="binomial")
    assert res.link == "bernoulli" and res.theta.shape == (Kn, 4)
    se = np.sqrt(res.psth.theta_cov.diagonal().mean())  # scale of the estimation error
    assert abs(res.gamma[0] + 2.0) < 0.6 + se
    assert np.corrcoef(res.theta.mean(1), base)[0, 1] > 0.8


# ------------------------------------------------------------------------------------
# validation
# ------------------------------------------------------------------------------------
def test_invalid_inputs_raise_clear_errors():
    y = np.zeros((3, 20))
    with pytest.raises(ValueError, match="bernoulli.*0/1"):
        ssglm(np.full((3, 20), 2.0), DT, basis_width=0.005, link="bernoulli")
    with pytest.raises(ValueError, match="empty list"):
        ssglm([], DT)
    with pytest.raises(ValueError, match="empty"):
        ssglm(np.zeros((0, 10)), DT)
    with pytest.raises(ValueError, match="basis_width.*multiple of bin_width"):
        ssglm(y, DT, basis_width=0.0025)
    with pytest.raises(ValueError, match="window_times.*multiple of bin_width"):
        ssglm(y, DT, basis_width=0.005, window_times=[0, 0.0015])
    with pytest.raises(ValueError, match="basis must be a finite"):
        ssglm(y, DT, basis=np.ones((19, 2)))
    with pytest.raises(ValueError, match="non-integer"):
        ssglm(y + 0.5, DT, basis_width=0.005)
    with pytest.raises(ValueError, match="at least 2"):
        ssglm(y[:1], DT, basis_width=0.005)
    with pytest.raises(ValueError, match="link"):
        ssglm(y, DT, basis_width=0.005, link="gauss")
    with pytest.raises(ValueError, match="fitType"):
        ssglmFB(y, DT, fitType="normal")
    with pytest.raises(TypeError, match="bin_width"):
        ssglm(y, "1ms")
    with pytest.raises(ValueError, match="level"):
        learning_trial(np.eye(3), level=1.5)
    assert learning_trial(np.array([0.0, 0.5, 0.99, 0.2, 0.97, 0.98])) == 4
    assert learning_trial(np.array([0.0, 0.5, 0.99, 0.2, 0.97, 0.98]), sustained=False) == 2
    assert learning_trial(np.array([0.0, 0.5, 0.2])) is None


def test_figures(drift_fit):
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from spikessm.plotting.ssglm import plot_rate_comparison, plot_rate_surface, plot_ssglm_drift

    lam, y, res = drift_fit
    figs = [plot_ssglm_drift(res, 0.3, lam), plot_rate_surface(res, lam),
            plot_rate_comparison(res.rate_comparison_matrix(window=(0.25, 0.35), n_draws=200))]
    assert all(len(f.axes) >= 1 for f in figs)
    with pytest.raises(ValueError, match="outside the trial"):
        plot_ssglm_drift(res, 2.0)
    plt.close("all")


def test_result_is_plain_numpy(drift_fit):
    _, _, res = drift_fit
    for f in dataclasses.fields(res):
        v = getattr(res, f.name)
        assert not isinstance(v, jax.Array), f.name


def test_trial_gain_recovers_overdispersion_and_predicts_heldout_trials():
    """I.i.d. per-trial log-gains (sd 0.3, no drift): ``trial_gain=True`` recovers V
    within the sampling error of a variance from the observed trials (3 sd of
    V sqrt(2 / K), V enlarged by the Poisson noise of a trial's log count, 1 / n), keeps
    theta static, and predicts held-out trials better than the plain SSGLM and the
    GLM-PSTH (each scored by its Laplace predictive). 50 trials x 1 s, 50 ms pulses: the
    shapes of the fits above, whose compiled programs are reused."""
    rng = np.random.default_rng(11)
    Kn, T, V = 50, 1000, 0.09
    t = (np.arange(T) + 0.5) * DT
    base = np.log(60.0) + 0.7 * np.exp(-0.5 * ((t - 0.3) / 0.08) ** 2)
    g = rng.normal(0.0, np.sqrt(V), Kn)
    y = rng.poisson(np.exp(base[None] + g[:, None]) * DT).astype(float)
    test = np.arange(0, Kn, 5)
    masked = y.copy()
    masked[test] = np.nan
    res = ssglm(masked, DT, basis_width=0.05, trial_gain=True)
    n_obs, n_mean = Kn - test.size, y.sum(1).mean()
    tol = 3.0 * np.sqrt(2.0 / n_obs) * (V + 1.0 / n_mean)
    assert abs(res.gain_var - V) < tol, (res.gain_var, tol)
    assert np.all(np.diag(res.Q) < 1e-6)  # the gains are not taken for drift
    assert res.gain.shape == (Kn,) and res.gain_cov.shape == (Kn, res.theta.shape[1] + 1)
    np.testing.assert_allclose(res.gain[test], 0.0, atol=1e-6)  # masked: the prior's mean
    np.testing.assert_allclose(res.gain_cov[test, -1], res.gain_var, rtol=1e-6)
    plain = ssglm(masked, DT, basis_width=0.05)
    assert plain.gain_var is None
    psth = glm_psth(np.delete(y, test, axis=0), DT, basis_width=0.05)
    ll_gain = res.heldout_log_likelihood(y, test).sum()
    ll_plain = plain.heldout_log_likelihood(y, test).sum()
    ll_psth = psth.predictive_log_likelihoods(y[test]).sum()
    assert ll_gain > ll_plain + 5.0 and ll_gain > ll_psth + 5.0, (ll_gain, ll_plain, ll_psth)
