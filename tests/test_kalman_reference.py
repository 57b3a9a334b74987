"""The information-form Kalman filter / RTS smoother against independent references.

References:

* a dense, textbook covariance-form Kalman filter + RTS smoother written here in NumPy
  (drops the missing rows/columns of C and R at each step);
* Dynamax's ``LinearGaussianSSM.smoother`` (float64 via the ``jax_x64`` fixture).

Also: steady-state path == general path, and positive-definite covariances over a long,
badly conditioned run.
"""

from __future__ import annotations

import jax
import numpy as np
import pytest

from spikessm import LinearGaussianSSM, make_params
from spikessm.kernels.kalman import steady_cov_sums, steady_filtered_covs, steady_smoothed_covs
from spikessm.models.lgssm.model import steady_state_posterior

RTOL = 1e-8
LOG_2PI = np.log(2.0 * np.pi)


# ---------------------------------------------------------------------------
# dense NumPy reference
# ---------------------------------------------------------------------------
def reference_filter_smooth(p, y, u=None):
    """Covariance-form Kalman filter + RTS smoother (textbook, O(N^3) per step).

    x_0 ~ N(m0, P0); x_t = A x_{t-1} + b + B u_t + w; y_t = C x_t + d + D u_t + v.
    NaN entries of ``y`` are missing: the matching rows of C and rows/cols of R are dropped.
    Returns a dict of filtered/predicted/smoothed moments, cross[t] = Cov(x_t, x_{t-1} | y)
    (zero at t = 0) and the marginal log-likelihood.
    """
    y = np.asarray(y, dtype=float)
    T, N = y.shape
    n = p.A.shape[0]
    u = np.zeros((T, p.B.shape[1])) if u is None else np.asarray(u, dtype=float)
    fm, fc = np.zeros((T, n)), np.zeros((T, n, n))
    pm, pc = np.zeros((T, n)), np.zeros((T, n, n))
    ll = 0.0
    m, P = p.m0.copy(), p.P0.copy()
    for t in range(T):
        if t > 0:
            m = p.A @ fm[t - 1] + p.b + p.B @ u[t]
            P = p.A @ fc[t - 1] @ p.A.T + p.Q
        pm[t], pc[t] = m, P
        o = ~np.isnan(y[t])
        if o.any():
            Co = p.C[o]
            Ro = p.R[np.ix_(o, o)]
            e = y[t, o] - Co @ m - p.d[o] - p.D[o] @ u[t]
            S = Co @ P @ Co.T + Ro
            K = np.linalg.solve(S, Co @ P).T
            fm[t] = m + K @ e
            IKC = np.eye(n) - K @ Co
            fc[t] = IKC @ P @ IKC.T + K @ Ro @ K.T  # Joseph form
            _, logdet = np.linalg.slogdet(S)
            ll += -0.5 * (e @ np.linalg.solve(S, e) + logdet + o.sum() * LOG_2PI)
        else:
            fm[t], fc[t] = m, P
    sm, sc = fm.copy(), fc.copy()
    cross = np.zeros((T, n, n))
    for t in range(T - 2, -1, -1):
        G = np.linalg.solve(pc[t + 1], p.A @ fc[t]).T  # fc A' pc^-1
        sm[t] = fm[t] + G @ (sm[t + 1] - pm[t + 1])
        sc[t] = fc[t] + G @ (sc[t + 1] - pc[t + 1]) @ G.T
        cross[t + 1] = sc[t + 1] @ G.T
    return dict(fm=fm, fc=fc, pm=pm, pc=pc, sm=sm, sc=sc, cross=cross, ll=ll)


def rel_err(a, b):
    """max |a - b| / max |b| (norm-wise relative error)."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    assert a.shape == b.shape, (a.shape, b.shape)
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-300))


def assert_matches_reference(post, ref, rtol=RTOL):
    pairs = [("filtered_means", "fm"), ("filtered_covs", "fc"), ("predicted_means", "pm"),
             ("predicted_covs", "pc"), ("smoothed_means", "sm"), ("smoothed_covs", "sc"),
             ("cross_covs", "cross")]
    errs = {ours: rel_err(getattr(post, ours), ref[theirs]) for ours, theirs in pairs}
    errs["log_likelihood"] = abs(post.log_likelihood - ref["ll"]) / abs(ref["ll"])
    bad = {k: v for k, v in errs.items() if not v <= rtol}
    assert not bad, f"relative errors above {rtol}: {bad}"
    return errs


def spd(rng, n, lo=0.2, hi=1.5):
    U, _ = np.linalg.qr(rng.standard_normal((n, n)))
    return (U * rng.uniform(lo, hi, size=n)) @ U.T


def random_params(rng, n, N, q=0, r_kind="full"):
    U, _ = np.linalg.qr(rng.standard_normal((n, n)))
    A = U * rng.uniform(0.6, 0.97, size=n) @ U.T @ np.linalg.qr(rng.standard_normal((n, n)))[0]
    A = A / max(1.0, np.max(np.abs(np.linalg.eigvals(A))) / 0.97)
    R = {"full": spd(rng, N, 0.3, 1.2), "diagonal": np.diag(rng.uniform(0.3, 1.2, N))}[r_kind]
    return make_params(A=A, b=0.3 * rng.standard_normal(n), B=0.5 * rng.standard_normal((n, q)),
                       Q=0.3 * spd(rng, n), C=rng.standard_normal((N, n)),
                       d=rng.standard_normal(N), D=0.5 * rng.standard_normal((N, q)), R=R,
                       m0=rng.standard_normal(n), P0=spd(rng, n, 0.5, 2.0))


def sample(model, p, T, seed, u=None):
    return model.sample(p, T, seed=seed, inputs=u)[1]


# Most tests share one compiled shape (T=200 steps, N=6 channels, n=3 latents, q=2 inputs;
# tests "without inputs" set B = D = 0), which keeps the module fast.
n, N, T, Q_IN = 3, 6, 200, 2


def no_inputs(p):
    return p.replace(B=np.zeros_like(p.B), D=np.zeros_like(p.D))


# ---------------------------------------------------------------------------
# NumPy reference: complete data, full / diagonal R, inputs
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("r_kind", ["full", "diagonal"])
def test_matches_reference_complete(r_kind):
    rng = np.random.default_rng(1)
    p = no_inputs(random_params(rng, n, N, q=Q_IN, r_kind=r_kind))
    model = LinearGaussianSSM(n, N, input_dim=Q_IN, emission_covariance=r_kind)
    u = np.zeros((T, Q_IN))
    y = sample(model, p, T, seed=2, u=u)
    post = model.smooth(p, y, inputs=u)
    errs = assert_matches_reference(post, reference_filter_smooth(p, y, u))
    assert max(errs.values()) < 1e-10  # measured: ~1e-13 on this problem
    filt = model.filter(p, y, inputs=u)
    np.testing.assert_array_equal(filt.filtered_means, post.filtered_means)
    assert filt.smoothed_means is None
    assert model.log_prob(p, y, inputs=u) == pytest.approx(post.log_likelihood, rel=1e-12)


def test_matches_reference_with_inputs():
    rng = np.random.default_rng(3)
    p = random_params(rng, n, N, q=Q_IN)
    assert np.all(p.B != 0) and np.all(p.D != 0) and np.all(p.b != 0) and np.all(p.d != 0)
    model = LinearGaussianSSM(n, N, input_dim=Q_IN)
    u = rng.standard_normal((T, Q_IN))
    y = sample(model, p, T, seed=4, u=u)
    post = model.smooth(p, y, inputs=u)
    assert_matches_reference(post, reference_filter_smooth(p, y, u))
    # the inputs really matter: ignoring them changes the answer
    wrong = reference_filter_smooth(p, y, np.zeros_like(u))
    assert rel_err(post.smoothed_means, wrong["sm"]) > 1e-3


def _punch_holes(rng, y, frac=0.2, full_rows=(0, 7, 8, 50), partial_row=3):
    y = y.copy()
    y[rng.random(y.shape) < frac] = np.nan
    y[list(full_rows)] = np.nan  # fully missing rows, including the first step
    y[partial_row] = np.nan
    y[partial_row, 1] = 1.5  # a row with a single observed entry
    y[-1, 0] = np.nan  # partially observed last row
    y[-1, 1] = 0.2
    return y


@pytest.mark.parametrize("r_kind", ["full", "diagonal"])
def test_matches_reference_missing(r_kind):
    rng = np.random.default_rng(5)
    p = random_params(rng, n, N, q=Q_IN, r_kind=r_kind)
    model = LinearGaussianSSM(n, N, input_dim=Q_IN, emission_covariance=r_kind)
    u = rng.standard_normal((T, Q_IN))
    y = _punch_holes(rng, sample(model, p, T, seed=6, u=u))
    frac = np.isnan(y).mean()
    rows = np.isnan(y).sum(1)
    assert 0.18 < frac < 0.3 and (rows == N).sum() >= 4 and ((rows > 0) & (rows < N)).sum() > 50
    post = model.smooth(p, y, inputs=u)
    assert_matches_reference(post, reference_filter_smooth(p, y, u))


@pytest.mark.parametrize("holes", [False, True], ids=["complete", "missing"])
def test_ragged_trials_match_single_trial_runs(holes):
    """Padding must carry no information, on both the complete-data projection (shared J,
    padding masked) and the per-step missing-data projection. Also the reference
    comparison of a model with input_dim=0."""
    rng = np.random.default_rng(7)
    p = random_params(rng, n, N)
    model = LinearGaussianSSM(n, N)
    lengths = [50, 500, 137, 200]
    trials = [sample(model, p, T, seed=10 + k) for k, T in enumerate(lengths)]
    if holes:
        trials[2] = _punch_holes(rng, trials[2])
    post = model.smooth(p, trials)
    assert post.filtered_means.shape == (4, 500, n)
    np.testing.assert_array_equal(post.lengths, lengths)
    ref_lls = []
    for k, (T, y) in enumerate(zip(lengths, trials)):
        ref = reference_filter_smooth(p, y)
        ref_lls.append(ref["ll"])
        assert abs(post.log_likelihood[k] - ref["ll"]) <= RTOL * abs(ref["ll"])
        for ours, theirs in [("filtered_means", "fm"), ("filtered_covs", "fc"),
                             ("smoothed_means", "sm"), ("smoothed_covs", "sc"),
                             ("cross_covs", "cross")]:
            assert rel_err(getattr(post, ours)[k, :T], ref[theirs]) < RTOL, (k, ours)
        assert np.all(np.isnan(post.smoothed_means[k, T:]))  # padding is marked
    # a single-trial run of the same trial (written with q=2 zero-weight inputs so that it
    # reuses the compiled T=200 shape of the other tests)
    p2 = p.replace(B=np.zeros((n, Q_IN)), D=np.zeros((N, Q_IN)))
    single = LinearGaussianSSM(n, N, input_dim=Q_IN).log_prob(p2, trials[3],
                                                              inputs=np.zeros((200, Q_IN)))
    assert abs(single - post.log_likelihood[3]) <= 1e-12 * abs(ref_lls[3])
    total = model.log_prob(p, trials)
    assert abs(total - sum(ref_lls)) <= RTOL * abs(total)
    assert abs(np.sum(post.log_likelihood) - total) <= 1e-12 * abs(total)


# ---------------------------------------------------------------------------
# Dynamax
# ---------------------------------------------------------------------------
def _dynamax_params(dyn_model, p):
    import jax.numpy as jnp
    import jax.random as jr

    params, _ = dyn_model.initialize(
        jr.PRNGKey(0), initial_mean=jnp.asarray(p.m0), initial_covariance=jnp.asarray(p.P0),
        dynamics_weights=jnp.asarray(p.A), dynamics_bias=jnp.asarray(p.b),
        dynamics_input_weights=jnp.asarray(p.B), dynamics_covariance=jnp.asarray(p.Q),
        emission_weights=jnp.asarray(p.C), emission_bias=jnp.asarray(p.d),
        emission_input_weights=jnp.asarray(p.D), emission_covariance=jnp.asarray(p.R))
    return params


def test_matches_dynamax_smoother(jax_x64):
    import jax.numpy as jnp
    from dynamax.linear_gaussian_ssm import LinearGaussianSSM as DynLGSSM

    rng = np.random.default_rng(11)
    p = random_params(rng, n, N, q=Q_IN)  # full R, b, d, B, D all nonzero
    model = LinearGaussianSSM(n, N, input_dim=Q_IN)
    u = rng.standard_normal((T, Q_IN))
    y = sample(model, p, T, seed=12, u=u)
    dyn = DynLGSSM(n, N, input_dim=Q_IN)
    dpost = dyn.smoother(_dynamax_params(dyn, p), jnp.asarray(y), jnp.asarray(u))
    assert dpost.smoothed_means.dtype == jnp.float64
    post = model.smooth(p, y, inputs=u)
    errs = {
        "filtered_means": rel_err(post.filtered_means, dpost.filtered_means),
        "filtered_covs": rel_err(post.filtered_covs, dpost.filtered_covariances),
        "smoothed_means": rel_err(post.smoothed_means, dpost.smoothed_means),
        "smoothed_covs": rel_err(post.smoothed_covs, dpost.smoothed_covariances),
        "ll": abs(post.log_likelihood - float(dpost.marginal_loglik))
        / abs(float(dpost.marginal_loglik)),
    }
    # Dynamax's smoothed_cross_covariances[t] = E[x_t x_{t+1}'] (a second moment)
    sm = post.smoothed_means
    ours_cross = np.swapaxes(post.cross_covs[1:], 1, 2) + sm[:-1, :, None] * sm[1:, None, :]
    errs["cross"] = rel_err(ours_cross, dpost.smoothed_cross_covariances)
    # Dynamax's psd_solve adds 1e-9 to the diagonal of every matrix it inverts, so it sits
    # ~1e-9 (relative) from the exact answer; we match the dense NumPy reference to ~1e-15.
    # Measured here: covariances ~6e-9, means ~3e-10, log-likelihood ~6e-12.
    assert max(errs.values()) < RTOL, errs


# ---------------------------------------------------------------------------
# steady-state path == general path
# ---------------------------------------------------------------------------
def test_steady_state_path_equals_general_path():
    rng = np.random.default_rng(13)
    L = 64
    p = no_inputs(random_params(rng, n, N, q=Q_IN))  # steady_state_posterior has no inputs
    model = LinearGaussianSSM(n, N, input_dim=Q_IN)
    u = np.zeros((T, Q_IN))
    y = sample(model, p, T, seed=14, u=u)
    spost, cov = steady_state_posterior(p, y, buffer=L)
    assert bool(cov.converged), float(cov.err)
    gen = model.smooth(p, y, inputs=u)
    errs = {
        "filtered_means": rel_err(spost.filtered_means[0], gen.filtered_means),
        "predicted_means": rel_err(spost.predicted_means[0], gen.predicted_means),
        "smoothed_means": rel_err(spost.smoothed_means[0], gen.smoothed_means),
    }
    # the kernel helpers are low-level JAX functions: the caller supplies float64
    with jax.enable_x64(True):
        Ss, cross = (np.asarray(a) for a in steady_smoothed_covs(cov, T))
        Sf, Sp = (np.asarray(a) for a in steady_filtered_covs(cov, T))
        s_all, first, last, s_cross = (np.asarray(a) for a in steady_cov_sums(cov, T))
    assert Ss.dtype == np.float64 and s_all.dtype == np.float64
    errs.update(
        smoothed_covs=rel_err(Ss, gen.smoothed_covs), cross_covs=rel_err(cross, gen.cross_covs),
        filtered_covs=rel_err(Sf, gen.filtered_covs),
        predicted_covs=rel_err(Sp, gen.predicted_covs),
        sum_all=rel_err(s_all, gen.smoothed_covs.sum(0)),
        first=rel_err(first, gen.smoothed_covs[0]), last=rel_err(last, gen.smoothed_covs[-1]),
        sum_cross=rel_err(s_cross, gen.cross_covs[1:].sum(0)))
    # log-likelihood: the steady path's per-step terms omit the data term r_t
    e = y - p.d
    r = (np.einsum("ti,ij,tj->t", e, np.linalg.inv(p.R), e) + N * LOG_2PI
         + np.linalg.slogdet(p.R)[1])
    ll_steady = np.sum(np.asarray(spost.log_likelihoods[0]) - 0.5 * r)
    errs["log_likelihood"] = abs(ll_steady - gen.log_likelihood) / abs(gen.log_likelihood)
    bad = {k: v for k, v in errs.items() if not v < 1e-10}
    assert not bad, bad


# ---------------------------------------------------------------------------
# numerical robustness: long run, near-singular Q, small R
# ---------------------------------------------------------------------------
def test_covariances_stay_positive_definite_long_run():
    rng = np.random.default_rng(17)
    d, M, TL = 4, 3, 100_000
    U, _ = np.linalg.qr(rng.standard_normal((d, d)))
    p = make_params(A=0.999 * U, C=rng.standard_normal((M, d)), Q=1e-8 * np.eye(d),
                    R=1e-6 * np.eye(M), P0=np.eye(d))
    model = LinearGaussianSSM(d, M)
    x, y = model.sample(p, TL, seed=18)
    post = model.smooth(p, y)
    assert np.isfinite(post.log_likelihood)
    for name in ("filtered_covs", "predicted_covs", "smoothed_covs"):
        S = getattr(post, name)
        assert np.all(np.isfinite(S)), name
        assert np.max(np.abs(S - np.swapaxes(S, 1, 2))) <= 1e-14 * np.max(np.abs(S)), name
        lam = np.linalg.eigvalsh(S[1:])  # skip t = 0 (P0 = I)
        assert lam.min() > 0, (name, lam.min())
    assert np.all(np.isfinite(post.smoothed_means))
    # the smoother tracks the state to the noise level (a broken update would not)
    assert np.sqrt(np.mean((post.smoothed_means - x) ** 2)) < 1e-3
