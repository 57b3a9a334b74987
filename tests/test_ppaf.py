"""Point-process adaptive filter: agreement with the Kalman engine on its pseudo-observations,
with dense NumPy references of the Eden 2004 update written here, with a particle filter
(10^4 particles) on simulated place cells, the fixed-lag and goal-directed constructions
against brute force, and input validation."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.special import gammaln

from spikessm.kernels import kalman as K
from spikessm.kernels import ppaf as KP
from spikessm.kernels import ppaf_cpu as KC
from spikessm.models.decoding import (
    PointProcessAdaptiveFilter,
    fixed_lag_smoother,
    goal_directed_filter,
    ppaf_filter,
    ppaf_smoother,
)
from spikessm.models.decoding.ppaf import check_spikes, count_constants


# --------------------------------------------------------------------------------------
# Simulated data
# --------------------------------------------------------------------------------------
def _loglinear_data(seed=0, T=120, N=12, d=2):
    rng = np.random.default_rng(seed)
    A = np.array([[0.97, 0.05], [-0.05, 0.97]])[:d, :d]
    Q = 0.02 * np.eye(d)
    C = rng.normal(0.0, 0.6, (N, d))
    b = rng.normal(-1.0, 0.3, N)
    x = np.zeros((T, d))
    x[0] = rng.normal(0, 0.5, d)
    for t in range(1, T):
        x[t] = A @ x[t - 1] + rng.multivariate_normal(np.zeros(d), Q)
    y = rng.poisson(np.exp(x @ C.T + b)).astype(float)
    return dict(A=A, Q=Q, C=C, b=b, x=x, y=y, m0=np.zeros(d), P0=0.25 * np.eye(d))


CENTRES = np.stack(np.meshgrid(np.linspace(-0.8, 0.8, 5), np.linspace(-0.8, 0.8, 5)),
                   -1).reshape(-1, 2)
WIDTH = 0.35
LOG_PEAK = np.log(0.6)  # expected spikes per bin at a field centre


def place_log_intensity(x):
    """Gaussian place fields: log rate = log peak - |x - c_i|^2 / (2 w^2), (25,)."""
    c = jnp.asarray(CENTRES)
    return LOG_PEAK - jnp.sum((x[None, :] - c) ** 2, axis=1) / (2 * WIDTH ** 2)


def _place_data(seed, T):
    rng = np.random.default_rng(seed)
    a, s = 0.995, 0.03
    x = np.zeros((T, 2))
    x[0] = rng.normal(0, 0.3, 2)
    for t in range(1, T):
        x[t] = a * x[t - 1] + rng.normal(0, s, 2)
    lam = np.exp(LOG_PEAK - ((x[:, None, :] - CENTRES[None]) ** 2).sum(-1) / (2 * WIDTH ** 2))
    y = rng.poisson(lam).astype(float)
    return x, y, a * np.eye(2), s ** 2 * np.eye(2), np.zeros(2), 0.09 * np.eye(2)


# --------------------------------------------------------------------------------------
# Dense NumPy reference of the Eden 2004 filter
# --------------------------------------------------------------------------------------
def eden_reference(y, A, Q, m0, P0, fgh, dt=1.0, family="poisson"):
    """Step by step with explicit inverses. fgh(x) -> (f (N,), grad (N, d), hess (N, d, d)).
    Missing entries (NaN) are skipped. The observed information is used unless it makes the
    posterior precision indefinite, then the expected information (as documented)."""
    T = y.shape[0]
    m, P = m0.copy(), P0.copy()
    means, covs = [], []
    for t in range(T):
        f, G, H = fgh(m)
        o = ~np.isnan(y[t])
        yt, f, G, H = y[t][o], f[o], G[o], H[o]
        if family == "poisson":
            lam = dt * np.exp(f)
            e, w = yt - lam, lam
        else:
            p = 1 / (1 + np.exp(-f))
            e, w = yt - p, p * (1 - p)
        fisher = (G * w[:, None]).T @ G
        info = fisher - np.einsum("n,nij->ij", e, H)
        prec = np.linalg.inv(P) + info
        if np.any(np.linalg.eigvalsh(prec) <= 0):
            prec = np.linalg.inv(P) + fisher
        S = np.linalg.inv(prec)
        mu = m + S @ (G.T @ e)
        means.append(mu)
        covs.append(S)
        m, P = A @ mu, A @ S @ A.T + Q
    return np.array(means), np.array(covs)


def test_loglinear_filter_equals_kalman_engine_and_numpy_reference():
    """The filter's update is the Kalman kernel's on (J, h, r) to 1e-10; the RTS smoother and
    the likelihood are the kernel's; both match a dense Eden reference with missing entries."""
    D = _loglinear_data()
    y = D["y"].copy()
    y[5, 3] = np.nan
    y[40, :4] = np.nan
    T, d = y.shape[0], 2
    with jax.enable_x64(True):
        mask = ~np.isnan(y)
        args = [jnp.asarray(v) for v in (D["m0"], D["P0"], D["A"], D["Q"])]
        off = jnp.asarray(np.broadcast_to(D["b"], y.shape))
        steps = jax.jit(KP.loglinear_forward, static_argnames="family")(
            *args, jnp.asarray(np.nan_to_num(y)), jnp.asarray(mask), off, jnp.asarray(D["C"]),
            1.0, family="poisson")
        post = jax.jit(K.filter_smooth)(args[0], args[1], args[2], jnp.zeros((T, d)), args[3],
                                        steps.J, steps.h, steps.r)
    const = -np.sum(gammaln(y[mask] + 1.0))
    np.testing.assert_allclose(steps.filtered_means, post.filtered_means, rtol=0, atol=1e-10)
    np.testing.assert_allclose(steps.filtered_covs, post.filtered_covs, rtol=0, atol=1e-10)
    assert abs(np.sum(np.asarray(steps.log_likelihoods))
               - np.sum(np.asarray(post.log_likelihoods))) < 1e-8
    sm_ll = ppaf_smoother(y, D["A"], D["Q"], D["m0"], D["P0"], C=D["C"],
                          baseline=D["b"]).marginal_log_likelihood
    assert abs(sm_ll - (np.sum(np.asarray(post.log_likelihoods)) + const)) < 1e-8

    sm = ppaf_smoother(y, D["A"], D["Q"], D["m0"], D["P0"], C=D["C"], baseline=D["b"])
    np.testing.assert_allclose(sm.filtered_means, post.filtered_means, atol=1e-10)
    np.testing.assert_allclose(sm.smoothed_means, post.smoothed_means, atol=1e-10)
    np.testing.assert_allclose(sm.smoothed_covs, post.smoothed_covs, atol=1e-10)

    C, b = D["C"], D["b"]
    ref_m, ref_P = eden_reference(
        y, D["A"], D["Q"], D["m0"], D["P0"],
        lambda x: (C @ x + b, C, np.zeros((len(b), d, d))))
    np.testing.assert_allclose(sm.filtered_means, ref_m, atol=1e-9)
    np.testing.assert_allclose(sm.filtered_covs, ref_P, atol=1e-9)
    # the general (autodiff) path is the same filter
    # (arrays closed over are converted at trace time, in float64)
    gen = ppaf_filter(y, D["A"], D["Q"], D["m0"], D["P0"],
                      log_intensity=lambda x: jnp.asarray(C) @ x + jnp.asarray(b))
    np.testing.assert_allclose(gen.filtered_means, ref_m, atol=1e-9)
    assert abs(gen.marginal_log_likelihood - sm.marginal_log_likelihood) < 1e-7


@pytest.mark.skipif(not KC.available(), reason="numba is not installed (or disabled)")
@pytest.mark.parametrize("d", [1, 2, 3, 5])
@pytest.mark.parametrize("family", ["poisson", "bernoulli"])
def test_compiled_cpu_loop_equals_the_jax_filter(d, family, monkeypatch):
    """The numba loop of the log-linear filter (kernels/ppaf_cpu) and the JAX scan
    (kernels/ppaf.loglinear_forward) are the same filter: every moment, the smoother built
    on them and the likelihood agree to 1e-12, with missing entries and per-bin offsets."""
    rng = np.random.default_rng(d)
    T, N = 200, 9
    A = 0.95 * np.eye(d) + 0.02 * rng.standard_normal((d, d))
    Q = 0.04 * np.eye(d) + 0.01
    C = rng.normal(0.0, 0.5, (N, d))
    b = rng.normal(-1.0, 0.4, (T, N))
    y = (rng.poisson(1.0, (T, N)) if family == "poisson"
         else rng.random((T, N)) < 0.3).astype(float)
    y[rng.random((T, N)) < 0.1] = np.nan
    y[17] = np.nan  # a bin with nothing observed
    kw = dict(C=C, baseline=b, observation=family, bin_width=0.5)
    out = {}
    for engine in ("0", "1"):
        monkeypatch.setenv("SPIKESSM_NO_NUMBA", engine)
        out[engine] = (ppaf_smoother(y, A, Q, np.zeros(d), np.eye(d), **kw),
                       fixed_lag_smoother(y, A, Q, np.zeros(d), np.eye(d), 3, **kw))
    for a, b_ in zip(out["0"], out["1"]):
        for k in ("filtered_means", "filtered_covs", "predicted_means", "predicted_covs",
                  "smoothed_means", "smoothed_covs", "log_likelihoods"):
            np.testing.assert_allclose(getattr(a, k), getattr(b_, k), rtol=0, atol=1e-12,
                                       err_msg=k)
        assert abs(a.marginal_log_likelihood - b_.marginal_log_likelihood) < 1e-9


@pytest.mark.skipif(not KC.available(), reason="numba is not installed (or disabled)")
def test_compiled_count_checks_equal_numpy(monkeypatch):
    """The one-pass count scan and count constants give the NumPy results and errors."""
    rng = np.random.default_rng(3)
    y = rng.poisson(2.0, (50, 7)).astype(float)
    y[3, 2] = np.nan
    res = {}
    for engine in ("0", "1"):
        monkeypatch.setenv("SPIKESSM_NO_NUMBA", engine)
        yy, mask = check_spikes(y, "poisson")
        res[engine] = (yy, mask, count_constants(yy, 0.01, "poisson"))
        for bad, msg in ((np.where(y == 1, 0.5, y), "integer"), (-y, "integer"),
                         (np.where(y == 1, np.inf, y), "finite")):
            with pytest.raises(ValueError, match=msg):
                check_spikes(bad, "poisson")
        with pytest.raises(ValueError, match="0/1"):
            check_spikes(y, "bernoulli")
    np.testing.assert_array_equal(res["0"][0], res["1"][0])
    np.testing.assert_array_equal(res["0"][1], res["1"][1])
    np.testing.assert_allclose(res["0"][2], res["1"][2], rtol=1e-13)
    np.testing.assert_allclose(res["0"][2], np.nansum(y * np.log(0.01) - gammaln(y + 1), 1),
                               rtol=1e-12)
    assert np.isnan(y[3, 2])  # the caller's array is not modified


def test_autodiff_intensity_and_bernoulli_match_numpy_reference():
    """Nonlinear log-intensity (Gaussian place fields, the Hessian term with the spike count
    kept) and Bernoulli (logit) observations against analytic derivatives."""
    x, y, A, Q, m0, P0 = _place_data(seed=3, T=150)

    def fgh(z):
        diff = z[None, :] - CENTRES
        f = LOG_PEAK - (diff ** 2).sum(1) / (2 * WIDTH ** 2)
        G = -diff / WIDTH ** 2
        H = np.broadcast_to(-np.eye(2) / WIDTH ** 2, (len(f), 2, 2))
        return f, G, H

    res = ppaf_filter(y, A, Q, m0, P0, log_intensity=place_log_intensity)
    ref_m, ref_P = eden_reference(y, A, Q, m0, P0, fgh)
    np.testing.assert_allclose(res.filtered_means, ref_m, atol=1e-9)
    np.testing.assert_allclose(res.filtered_covs, ref_P, atol=1e-9)

    yb = np.minimum(y, 1.0)
    rb = ppaf_filter(yb, A, Q, m0, P0, log_intensity=place_log_intensity,
                     observation="bernoulli")
    ref_b, _ = eden_reference(yb, A, Q, m0, P0, fgh, family="bernoulli")
    np.testing.assert_allclose(rb.filtered_means, ref_b, atol=1e-9)


def test_iterated_update_reaches_the_one_step_posterior_mode():
    D = _loglinear_data(seed=1)
    r = ppaf_filter(D["y"], D["A"], D["Q"], D["m0"], D["P0"], C=D["C"], baseline=D["b"],
                    iterated=True)
    C, b = D["C"], D["b"]
    for t in (0, 17, 119):
        mu, m, P = r.filtered_means[t], r.predicted_means[t], r.predicted_covs[t]
        grad = C.T @ (D["y"][t] - np.exp(C @ mu + b)) - np.linalg.solve(P, mu - m)
        assert np.max(np.abs(grad)) < 1e-7
        # the covariance is the inverse negative Hessian at the mode
        H = np.linalg.inv(P) + (C * np.exp(C @ mu + b)[:, None]).T @ C
        np.testing.assert_allclose(r.filtered_covs[t], np.linalg.inv(H), atol=1e-9)
    assert np.all(r.newton_iters >= 1)


def _bootstrap_pf(y, A, Q, m0, P0, n, seed):
    """Bootstrap particle filter (NumPy): posterior means of x_t | y_0..y_t."""
    rng = np.random.default_rng(seed)
    Lq = np.linalg.cholesky(Q)
    X = m0 + rng.standard_normal((n, 2)) @ np.linalg.cholesky(P0).T
    out = []
    for t in range(y.shape[0]):
        if t:
            X = X @ A.T + rng.standard_normal((n, 2)) @ Lq.T
        f = LOG_PEAK - ((X[:, None, :] - CENTRES[None]) ** 2).sum(-1) / (2 * WIDTH ** 2)
        logw = f @ y[t] - np.exp(f).sum(1)
        w = np.exp(logw - logw.max())
        w /= w.sum()
        out.append(w @ X)
        u = (rng.random() + np.arange(n)) / n
        X = X[np.minimum(np.searchsorted(np.cumsum(w), u), n - 1)]
    return np.array(out)


def test_place_cell_decoding_close_to_particle_filter_and_calibrated():
    """Decoding RMSE within 10% of a 10^4-particle filter; 95% intervals cover 90-99%."""
    x, y, A, Q, m0, P0 = _place_data(seed=7, T=800)
    r = ppaf_filter(y, A, Q, m0, P0, log_intensity=place_log_intensity)
    pf = _bootstrap_pf(y, A, Q, m0, P0, 10_000, seed=11)
    rmse = np.sqrt(np.mean(np.sum((r.filtered_means - x) ** 2, 1)))
    rmse_pf = np.sqrt(np.mean(np.sum((pf - x) ** 2, 1)))
    assert rmse <= 1.1 * rmse_pf, (rmse, rmse_pf)
    lo, hi = r.intervals(0.95)
    cover = np.mean((x >= lo) & (x <= hi))
    assert 0.90 <= cover <= 0.99, cover
    # the smoother uses the future: lower error, still calibrated
    s = PointProcessAdaptiveFilter(A, Q, m0, P0, log_intensity=place_log_intensity).smooth(y)
    assert np.sqrt(np.mean(np.sum((s.smoothed_means - x) ** 2, 1))) < rmse
    lo, hi = s.intervals(0.95)
    assert 0.90 <= np.mean((x >= lo) & (x <= hi)) <= 0.99


def test_fixed_lag_equals_smoother_on_the_window():
    """Fixed-lag estimate at t == RTS smoother of the data up to t + lag (the filter's
    pseudo-observations after t + lag removed: zero information, as padding)."""
    D = _loglinear_data(seed=2)
    lag, T = 4, D["y"].shape[0]
    args = (D["A"], D["Q"], D["m0"], D["P0"])
    fl = fixed_lag_smoother(D["y"], *args, lag, C=D["C"], baseline=D["b"])
    full = ppaf_smoother(D["y"], *args, C=D["C"], baseline=D["b"])
    assert fl.lag == lag
    with jax.enable_x64(True):
        steps = jax.jit(KP.loglinear_forward, static_argnames="family")(
            *(jnp.asarray(v) for v in (D["m0"], D["P0"], D["A"], D["Q"], D["y"])),
            jnp.ones(D["y"].shape, bool), jnp.asarray(np.broadcast_to(D["b"], D["y"].shape)),
            jnp.asarray(D["C"]), 1.0, family="poisson")
        window = jax.jit(lambda keep: K.filter_smooth(
            *(jnp.asarray(v) for v in (D["m0"], D["P0"], D["A"])), jnp.zeros((T, 2)),
            jnp.asarray(D["Q"]), steps.J * keep[:, None, None], steps.h * keep[:, None],
            steps.r * keep))
        for t in (0, 9, 60, 110):
            win = window(jnp.asarray(np.arange(T) <= t + lag, dtype=float))
            np.testing.assert_allclose(fl.smoothed_means[t], win.smoothed_means[t], atol=1e-10)
            np.testing.assert_allclose(fl.smoothed_covs[t], win.smoothed_covs[t], atol=1e-10)
    np.testing.assert_allclose(fl.smoothed_means[-lag:], full.smoothed_means[-lag:], atol=1e-10)
    np.testing.assert_allclose(fl.filtered_means, full.filtered_means, atol=1e-12)


@pytest.mark.parametrize("target_time", [7, 10])
def test_goal_prior_matches_bruteforce_gaussian_conditioning(target_time):
    """Time-varying goal prior + Kalman engine on Gaussian emissions == dense conditioning of
    the joint Gaussian of (x_0..x_{T-1}, y, target observation)."""
    rng = np.random.default_rng(target_time)
    d, T, n_obs = 2, 8, 3
    A = np.array([[0.9, 0.2], [-0.1, 0.95]])
    Q = np.array([[0.05, 0.01], [0.01, 0.03]])
    m0, P0 = np.array([0.3, -0.2]), 0.5 * np.eye(d)
    H, R = rng.normal(size=(n_obs, d)), 0.4 * np.eye(n_obs)
    target, target_cov = np.array([1.0, -0.5]), 0.01 * np.eye(d)
    y = rng.normal(size=(T, n_obs))
    # dense prior of x_0..x_{target_time}
    n = target_time + 1
    mean = [m0]
    cov = np.zeros((n * d, n * d))
    cov[:d, :d] = P0
    for t in range(1, n):
        mean.append(A @ mean[-1])
        for s in range(t):
            cov[t * d:(t + 1) * d, s * d:(s + 1) * d] = A @ cov[(t - 1) * d:t * d, s * d:(s + 1) * d]
            cov[s * d:(s + 1) * d, t * d:(t + 1) * d] = cov[t * d:(t + 1) * d, s * d:(s + 1) * d].T
        Pp = cov[(t - 1) * d:t * d, (t - 1) * d:t * d]
        cov[t * d:(t + 1) * d, t * d:(t + 1) * d] = A @ Pp @ A.T + Q
    mean = np.concatenate(mean)
    # observation operator: y_t = H x_t (t < T), target = x_{target_time} + noise
    O = np.zeros((T * n_obs + d, n * d))
    for t in range(T):
        O[t * n_obs:(t + 1) * n_obs, t * d:(t + 1) * d] = H
    O[T * n_obs:, (n - 1) * d:] = np.eye(d)
    Rbig = np.zeros((T * n_obs + d,) * 2)
    Rbig[:T * n_obs, :T * n_obs] = np.kron(np.eye(T), R)
    Rbig[T * n_obs:, T * n_obs:] = target_cov
    z = np.concatenate([y.ravel(), target])
    S = O @ cov @ O.T + Rbig
    Kg = cov @ O.T @ np.linalg.inv(S)
    post_mean = (mean + Kg @ (z - O @ mean))[:T * d].reshape(T, d)
    post_cov = (cov - Kg @ O @ cov)[:T * d, :T * d]

    with jax.enable_x64(True):
        m0g, P0g, F, a, Qg = KP.goal_prior(*(jnp.asarray(v) for v in (m0, P0, A, Q, target,
                                                                       target_cov)),
                                           T, target_time)
        J, h, r = K.gaussian_information_full(jnp.asarray(y), jnp.asarray(H),
                                              jnp.asarray(np.diag(R)), diagonal=True)
        post = K.filter_smooth(m0g, P0g, F, a, Qg, J, h, r)
    np.testing.assert_allclose(post.smoothed_means, post_mean, atol=1e-9)
    for t in range(T):
        np.testing.assert_allclose(post.smoothed_covs[t],
                                   post_cov[t * d:(t + 1) * d, t * d:(t + 1) * d], atol=1e-9)


def test_goal_directed_filter_reaches_target_and_is_uninformative_with_vague_target():
    D = _loglinear_data(seed=4)
    args = (D["y"], D["A"], D["Q"], D["m0"], D["P0"])
    target = np.array([0.8, -0.6])
    g = goal_directed_filter(*args, target, target_cov=1e-6 * np.eye(2), smooth=True,
                             C=D["C"], baseline=D["b"])
    assert np.max(np.abs(g.filtered_means[-1] - target)) < 5e-3
    assert np.max(np.abs(g.smoothed_means[-1] - target)) < 5e-3
    vague = goal_directed_filter(*args, target, target_cov=1e8 * np.eye(2), C=D["C"],
                                 baseline=D["b"])
    plain = ppaf_filter(*args, C=D["C"], baseline=D["b"])
    np.testing.assert_allclose(vague.filtered_means, plain.filtered_means, atol=1e-6)


def test_bad_input_raises_clear_errors():
    D = _loglinear_data(seed=5)
    y, A, Q, m0, P0, C = D["y"], D["A"], D["Q"], D["m0"], D["P0"], D["C"]
    with pytest.raises(ValueError, match="C must have shape"):
        ppaf_filter(y[:, :-1], A, Q, m0, P0, C=C)
    with pytest.raises(ValueError, match="expected \\(12,\\)"):
        ppaf_filter(y, A, Q, m0, P0, log_intensity=lambda x: jnp.zeros(5) + x[0])
    with pytest.raises(ValueError, match="bin_width"):
        ppaf_filter(y, A, Q, m0, P0, C=C, bin_width=0.0)
    with pytest.raises(ValueError, match="bin_width"):
        ppaf_filter(y, A, Q, m0, P0, C=C, bin_width=-0.01)
    with pytest.raises(ValueError, match="Q must be positive definite"):
        ppaf_filter(y, A, np.array([[1.0, 0.0], [0.0, -1e-3]]), m0, P0, C=C)
    with pytest.raises(ValueError, match="Q must be symmetric"):
        ppaf_filter(y, A, np.array([[1.0, 0.5], [0.0, 1.0]]), m0, P0, C=C)
    with pytest.raises(ValueError, match="non-negative integer"):
        ppaf_filter(-y, A, Q, m0, P0, C=C)
    with pytest.raises(ValueError, match="bernoulli"):
        ppaf_filter(y + 2, A, Q, m0, P0, C=C, observation="bernoulli")
    with pytest.raises(ValueError, match="exactly one of C"):
        ppaf_filter(y, A, Q, m0, P0)
    with pytest.raises(ValueError, match="baseline"):
        ppaf_filter(y, A, Q, m0, P0, C=C, baseline=np.zeros(3))
    with pytest.raises(ValueError, match="target_cov"):
        goal_directed_filter(y, A, Q, m0, P0, np.zeros(2), target_cov=np.zeros((2, 2)), C=C)
    y0 = y.copy()
    ppaf_filter(y, A, Q, m0, P0, C=C)
    np.testing.assert_array_equal(y, y0)  # inputs are not modified


def test_place_cell_recording_ppaf_beats_static_and_linear_decoders():
    """Real data (examples/decode_place_cells.py): on the held-out half the PPAF's median
    error is below the static Bayesian decoder's and the linear Kalman decoder's."""
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    if not (root.parent / "shared" / "data" / "place_cells").exists():
        pytest.skip("../shared/data/place_cells not found")
    sys.path.insert(0, str(root / "examples"))
    from decode_place_cells import main

    out = main(["--no-figures", "--no-iterated"])
    ppaf = out["PPAF filter"]["median_cm"]
    assert ppaf < out["static Bayesian (posterior mean)"]["median_cm"]
    assert ppaf < out["linear Kalman decoder"]["median_cm"]
    assert out["PPAF smoother"]["median_cm"] < ppaf
