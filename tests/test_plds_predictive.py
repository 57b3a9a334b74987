"""One-step-ahead predictive log-likelihood (importance sampling over a Gaussian filter),
particle-filter likelihood and the constant-rate baseline."""

from __future__ import annotations

import dataclasses
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from spikessm import LinearGaussianSSM, make_params
from spikessm.evaluation.predictive import (
    PredictiveLogLik,
    _pack,
    constant_rate_predictive_ll,
    cubature_nodes,
    hybrid_predictive_ll,
    point_process_predictive_ll,
    smc_log_likelihood,
)
from spikessm.kernels import pointprocess as PP
from spikessm.models.plds import em as E
from spikessm.models.plds.model import PoissonLDS
from spikessm.models.plds.params import make_plds_params, to_jax_dict

DT = 0.05


def _rot(theta, r):
    return r * np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])


@pytest.fixture(scope="module")
def plds():
    rng = np.random.default_rng(0)
    C = rng.standard_normal((5, 2)) * 0.5
    p = make_plds_params(A=_rot(0.3, 0.95), Q=0.1 * np.eye(2), C=C, d=np.full(5, np.log(15.0)),
                         bin_width=DT, P0=0.5 * np.eye(2))
    _, y, _ = PoissonLDS(2, DT).sample(p, 40, n_trials=3, seed=11)
    return p, y


@pytest.fixture(scope="module")
def hybrid():
    rng = np.random.default_rng(1)
    p = make_plds_params(A=_rot(0.2, 0.98), Q=0.04 * np.eye(2),
                         C=rng.standard_normal((5, 2)) * 0.6, d=np.full(5, np.log(15.0)),
                         D=0.3 * rng.standard_normal((5, 1)), H=np.full((5, 2), -0.2),
                         Cg=rng.standard_normal((2, 2)), dg=np.array([0.5, -1.0]),
                         R=np.diag([0.5, 1.0]), bin_width=DT)
    u = rng.standard_normal((3, 40, 1))
    _, y, g = PoissonLDS(2, DT, n_covariates=1, history=2).sample(p, 40, n_trials=3, seed=1,
                                                                   covariates=u)
    g[0, 5, 1] = np.nan
    y[1, 7, :] = np.nan
    return p, y, g, u


def _kalman_dense(p, g):
    """Textbook covariance-form Kalman filter: per-step log N(g_t | past) over the
    observed channels (one trial, NaN = missing)."""
    m, P = p.m0.copy(), p.P0.copy()
    out = []
    for t in range(g.shape[0]):
        if t:
            m, P = p.A @ m + p.b, p.A @ P @ p.A.T + p.Q
        o = ~np.isnan(g[t])
        if not o.any():
            out.append(0.0)
            continue
        Co = p.Cg[o]
        S = Co @ P @ Co.T + p.R[np.ix_(o, o)]
        e = g[t, o] - Co @ m - p.dg[o]
        out.append(stats.multivariate_normal(np.zeros(o.sum()), S).logpdf(e))
        Kg = P @ Co.T @ np.linalg.inv(S)
        m, P = m + Kg @ e, P - Kg @ Co @ P
    return np.array(out)


# ------------------------------------------------------------------------------------
# (a) Gaussian-only model = exact Kalman predictive
# ------------------------------------------------------------------------------------
def test_gaussian_only_equals_kalman():
    rng = np.random.default_rng(2)
    M, d = 3, 2
    L = rng.standard_normal((M, M)) * 0.3
    R = L @ L.T + 0.5 * np.eye(M)  # full covariance
    Cg = rng.standard_normal((M, d))
    p = make_plds_params(A=_rot(0.4, 0.9), b=np.array([0.1, -0.2]), Q=0.2 * np.eye(d),
                         C=np.zeros((0, d)), Cg=Cg, dg=rng.standard_normal(M), R=R,
                         m0=np.array([0.5, 0.0]), P0=np.eye(d), bin_width=DT)
    g = [rng.standard_normal((30, M)), rng.standard_normal((22, M))]
    g[0][3, 1] = np.nan
    g[1][5] = np.nan
    r = hybrid_predictive_ll(p, None, g, seed=3)
    assert r.poisson == 0.0 and r.std_error == 0.0 and r.n_spikes == 0
    lg = LinearGaussianSSM(d, emission_dim=M)
    lp = make_params(A=p.A, b=p.b, Q=p.Q, C=Cg, d=p.dg, R=R, m0=p.m0, P0=p.P0)
    ref_trials = lg.filter(lp, g).log_likelihood
    np.testing.assert_allclose(r.per_trial, ref_trials, rtol=1e-10, atol=0)
    for k, gk in enumerate(g):
        ref = _kalman_dense(p, gk)
        got = r.per_timestep[k, :len(gk)]
        assert np.max(np.abs(got - ref) / np.maximum(1.0, np.abs(ref))) < 1e-8
        assert np.all(np.isnan(r.per_timestep[k, len(gk):]))
    assert abs(r.total - lg.log_prob(lp, g)) <= 1e-10 * abs(r.total)
    # warm start: the held-out part equals the difference of exact log-likelihoods
    w = hybrid_predictive_ll(p, None, [gk[12:] for gk in g], train_gaussian=[gk[:12] for gk in g])
    exact = lg.filter(lp, g).log_likelihood - lg.filter(lp, [gk[:12] for gk in g]).log_likelihood
    np.testing.assert_allclose(w.per_trial, exact, rtol=1e-10)


# ------------------------------------------------------------------------------------
# (b) importance-sampled predictive agrees with the particle filter
# ------------------------------------------------------------------------------------
def _agree(r, s, n_se=3.0):
    se = np.hypot(r.std_error, s.std_error)
    assert abs(r.total - s.total) < n_se * se, (r.total, s.total, se)
    return (r.total - s.total) / se


def test_is_agrees_with_smc_plds(plds):
    p, y = plds
    r = point_process_predictive_ll(p, y, n_samples=1000, seed=0)
    s = smc_log_likelihood(p, y, n_particles=10_000, n_repeats=4, seed=0)
    _agree(r, s)
    assert r.gaussian == 0.0 and np.isclose(r.poisson, r.total, rtol=1e-12)  # sums in two orders
    assert r.n_scored == 120 and r.n_spikes == int(y.sum())
    assert r.min_ess > 500
    # warm start: the same compiled filter, scoring only t >= 20
    r2 = point_process_predictive_ll(p, y, score_from=20, n_samples=1000, seed=0)
    np.testing.assert_allclose(r2.per_timestep[:, 20:], r.per_timestep[:, 20:], rtol=1e-12)
    assert np.all(np.isnan(r2.per_timestep[:, :20]))


def test_is_agrees_with_smc_hybrid(hybrid):
    p, y, g, u = hybrid
    r = hybrid_predictive_ll(p, y, g, covariates=u, n_samples=1000, seed=0)
    s = smc_log_likelihood(p, y, g, covariates=u, n_particles=10_000, n_repeats=4, seed=0)
    _agree(r, s)
    assert np.isclose(r.total, r.poisson + r.gaussian, rtol=1e-12)
    np.testing.assert_allclose(np.nansum(r.per_timestep, axis=1), r.per_trial, rtol=1e-12)
    # the all-NaN spike step contributes only its Gaussian term
    assert r.poisson_per_timestep[1, 7] == 0.0 and r.gaussian_per_timestep[1, 7] != 0.0


def test_offsets_match_the_model(hybrid):
    p, y, g, u = hybrid
    pk = _pack(p, y, g, u, None, None, None, None, need_gaussian=True)
    model = PoissonLDS(2, DT, n_covariates=1, history=2)
    with jax.enable_x64(True):
        prep = model.prepare(y, g, u)
        P = jax.tree_util.tree_map(jnp.asarray, to_jax_dict(p))
        off = np.asarray(E.offsets(P, prep.data))
    np.testing.assert_allclose(pk.off, off, rtol=1e-12, atol=1e-12)


# ------------------------------------------------------------------------------------
# (c) missing entries and ragged trials
# ------------------------------------------------------------------------------------
def test_missing_entry_equals_dropping_the_neuron():
    rng = np.random.default_rng(4)
    with jax.enable_x64(True):
        d, N = 2, 6
        C = rng.standard_normal((N, d)) * 0.7
        y = rng.poisson(2.0, N).astype(float)
        off = rng.standard_normal(N) * 0.3
        m = rng.standard_normal(d)
        L = np.linalg.cholesky(np.array([[1.0, 0.3], [0.3, 0.5]]))
        eps = jnp.asarray(rng.standard_normal((400, d)))
        mask = np.ones(N, bool)
        mask[2] = False
        keep = mask
        nodes = tuple(jnp.asarray(a) for a in cubature_nodes(d))
        const = lambda yy, mm: PP.poisson_step_constants(jnp.asarray(yy), jnp.asarray(mm), DT)
        step = jax.jit(partial(PP.laplace_is_step, n_defensive=40, max_iter=30))
        kw = dict(inflation=1.2, tol=1e-12, nodes=nodes)
        a = step(jnp.asarray(m), jnp.asarray(L), jnp.asarray(y),
                               jnp.asarray(mask), jnp.asarray(off), jnp.asarray(C), DT,
                               const(y, mask), eps, **kw)
        b = step(jnp.asarray(m), jnp.asarray(L), jnp.asarray(y[keep]),
                               jnp.ones(N - 1, bool), jnp.asarray(off[keep]),
                               jnp.asarray(C[keep]), DT, const(y[keep], np.ones(N - 1, bool)),
                               eps, **kw)
        for u, v in zip(a[:5], b[:5]):
            np.testing.assert_allclose(np.asarray(u), np.asarray(v), rtol=1e-10, atol=1e-12)


def test_nan_bin_changes_only_its_step_and_later(plds):
    p, y = plds
    base = point_process_predictive_ll(p, y, seed=5)
    y2 = y.copy()
    y2[1, 10, 2] = np.nan
    r = point_process_predictive_ll(p, y2, seed=5)
    np.testing.assert_array_equal(r.per_timestep[[0, 2]], base.per_timestep[[0, 2]])
    np.testing.assert_allclose(r.per_timestep[1, :10], base.per_timestep[1, :10], rtol=1e-13)
    assert r.per_timestep[1, 10] != base.per_timestep[1, 10]
    assert r.n_spikes == base.n_spikes - int(y[1, 10, 2])
    assert np.isfinite(r.total)


def test_padding_invariance(plds):
    p, y = plds
    full = point_process_predictive_ll(p, y, seed=7)
    ragged = point_process_predictive_ll(p, [y[0], y[1, :25], y[2, :33]], seed=7)
    np.testing.assert_allclose(ragged.per_timestep[0], full.per_timestep[0], rtol=1e-12)
    np.testing.assert_allclose(ragged.per_timestep[1, :25], full.per_timestep[1, :25],
                               rtol=1e-12)
    assert np.all(np.isnan(ragged.per_timestep[1, 25:]))
    assert ragged.n_scored == 40 + 25 + 33
    s_full = smc_log_likelihood(p, y[:1], n_particles=500, n_repeats=2, seed=1)
    s_rag = smc_log_likelihood(p, [y[0], y[1, :25]], n_particles=500, n_repeats=2, seed=1)
    np.testing.assert_allclose(s_rag.per_trial[0], s_full.per_trial[0], rtol=1e-12)


def test_warm_up_steps_skip_sampling_without_changing_the_scored_steps(plds):
    """Steps before ``score_from`` are filtered without importance sampling; the scored
    steps (same draws: step t always uses fold_in(key, t)) equal those of scoring every
    step, in ragged trials whose warm-ups differ."""
    p, y = plds
    every = point_process_predictive_ll(p, y, seed=3)
    cut = np.array([30, 12, 39])
    warm = point_process_predictive_ll(p, y, score_from=cut, seed=3)
    for k, c in enumerate(cut):
        np.testing.assert_allclose(warm.per_timestep[k, c:], every.per_timestep[k, c:],
                                   rtol=1e-13)
        np.testing.assert_allclose(warm.per_timestep_std_error[k, c:],
                                   every.per_timestep_std_error[k, c:], rtol=1e-12)
        assert np.all(np.isnan(warm.per_timestep[k, :c]))
    assert warm.n_scored == int(np.sum(40 - cut))


# ------------------------------------------------------------------------------------
# (d) warm start
# ------------------------------------------------------------------------------------
def test_warm_start_beats_cold_start():
    rng = np.random.default_rng(6)
    N = 8
    p = make_plds_params(A=_rot(0.05, 0.995), Q=0.01 * np.eye(2),
                         C=rng.standard_normal((N, 2)) * 0.8, d=np.full(N, np.log(10.0)),
                         P0=np.eye(2), bin_width=DT)
    _, y, _ = PoissonLDS(2, DT).sample(p, 40, n_trials=3, seed=3)
    warm = point_process_predictive_ll(p, y[:, 20:], train_spikes=y[:, :20], n_samples=500)
    same = point_process_predictive_ll(p, y, score_from=20, n_samples=500)
    np.testing.assert_allclose(warm.per_trial, same.per_trial, rtol=1e-12)
    np.testing.assert_allclose(warm.per_timestep[:, 20:], same.per_timestep[:, 20:],
                               rtol=1e-12)
    cold = point_process_predictive_ll(p, y[:, 20:], n_samples=500)
    assert warm.n_scored == cold.n_scored == 60 and warm.n_spikes == cold.n_spikes
    gain = warm.total - cold.total
    assert gain > 5 * np.hypot(warm.std_error, cold.std_error) and gain > 1.0
    # the held-out gain over a constant-rate baseline is reported in bits per spike
    base = constant_rate_predictive_ll(y[:, :20], y[:, 20:], DT)
    assert warm.bits_per_spike(base) > cold.bits_per_spike(base)


# ------------------------------------------------------------------------------------
# (e) constant-rate baseline
# ------------------------------------------------------------------------------------
def test_constant_rate_baseline_matches_scipy():
    rng = np.random.default_rng(8)
    train = [rng.poisson(1.5, (50, 4)).astype(float), rng.poisson(1.5, (30, 4)).astype(float)]
    train[0][3, 1] = np.nan
    test = rng.poisson(1.2, (25, 4)).astype(float)
    test[2, 0] = np.nan
    r = constant_rate_predictive_ll(train, test, DT)
    tr = np.concatenate(train)
    lam = np.nansum(tr, 0) / np.sum(~np.isnan(tr), 0)
    ref = stats.poisson(lam).logpmf(np.nan_to_num(test))
    ref[np.isnan(test)] = 0.0
    assert np.isclose(r.total, ref.sum(), rtol=1e-12)
    np.testing.assert_allclose(r.per_timestep, ref.sum(1), rtol=1e-12)
    assert r.std_error == 0.0 and r.n_spikes == int(np.nansum(test))
    # a neuron silent in training does not give -inf
    train2 = np.zeros((20, 2))
    train2[:, 1] = 1.0
    assert np.isfinite(constant_rate_predictive_ll(train2, np.ones((3, 2)), DT).total)


# ------------------------------------------------------------------------------------
# (f) validation, immutability, determinism
# ------------------------------------------------------------------------------------
def test_validation_errors(plds, hybrid):
    p, y = plds
    ph, yh, gh, uh = hybrid
    with pytest.raises(TypeError, match="params"):
        point_process_predictive_ll({"A": 1}, y)
    with pytest.raises(ValueError, match="hybrid_predictive_ll"):
        point_process_predictive_ll(ph, yh)
    with pytest.raises(ValueError, match="point_process_predictive_ll"):
        hybrid_predictive_ll(p, y, gh)
    with pytest.raises(ValueError, match="negative"):
        point_process_predictive_ll(p, -y)
    with pytest.raises(ValueError, match="columns"):
        point_process_predictive_ll(p, y[..., :3])
    with pytest.raises(ValueError, match="score_from"):
        point_process_predictive_ll(p, y, score_from=40)
    with pytest.raises(ValueError, match="score_from"):
        point_process_predictive_ll(p, y, score_from=[1, 2])
    with pytest.raises(ValueError, match="not both"):
        point_process_predictive_ll(p, y, train_spikes=y, score_from=3)
    with pytest.raises(ValueError, match="trials"):
        point_process_predictive_ll(p, y, train_spikes=y[:2])
    with pytest.raises(TypeError, match="n_samples"):
        point_process_predictive_ll(p, y, n_samples=True)
    with pytest.raises(ValueError, match="n_samples"):
        point_process_predictive_ll(p, y, n_samples=2)
    with pytest.raises(TypeError, match="seed"):
        point_process_predictive_ll(p, y, seed=1.5)
    with pytest.raises(ValueError, match="trial lengths"):
        hybrid_predictive_ll(ph, yh, gh[:, :30], covariates=uh)
    with pytest.raises(ValueError, match="covariates"):
        hybrid_predictive_ll(ph, yh, gh)
    with pytest.raises(ValueError, match="n_particles"):
        smc_log_likelihood(p, y, n_particles=1)
    with pytest.raises(ValueError, match="ess_threshold"):
        smc_log_likelihood(p, y, ess_threshold=0.0)
    with pytest.raises(ValueError, match="bin_width"):
        constant_rate_predictive_ll(y, y, -1.0)
    with pytest.raises(ValueError, match="columns"):
        constant_rate_predictive_ll(y, y[..., :2], DT)


def test_inputs_not_mutated_and_deterministic(hybrid):
    p, y, g, u = hybrid
    copies = [a.copy() for a in (y, g, u, p.A, p.C, p.R)]
    a = hybrid_predictive_ll(p, y, g, covariates=u, seed=4)
    b = hybrid_predictive_ll(p, y, g, covariates=u, seed=4)
    c = hybrid_predictive_ll(p, y, g, covariates=u, seed=5)
    for x, x0 in zip((y, g, u, p.A, p.C, p.R), copies):
        np.testing.assert_array_equal(x, x0)
    assert isinstance(a, PredictiveLogLik)
    np.testing.assert_array_equal(a.per_timestep, b.per_timestep)
    assert a.total != c.total and abs(a.total - c.total) < 5 * np.hypot(a.std_error,
                                                                        c.std_error)
    assert a.gaussian == c.gaussian  # the Gaussian part is exact, not sampled
    with pytest.raises(dataclasses.FrozenInstanceError):
        a.total = 0.0  # type: ignore[misc]


def test_cubature_rules_integrate_quintics_exactly():
    for d in (1, 2, 4, 5):
        x, w = cubature_nodes(d)
        assert np.isclose(w.sum(), 1.0)
        np.testing.assert_allclose(w @ x, 0.0, atol=1e-12)
        np.testing.assert_allclose((x * w[:, None]).T @ x, np.eye(d), atol=1e-12)
        np.testing.assert_allclose(w @ x[:, 0] ** 4, 3.0, rtol=1e-12)
        if d > 1:
            np.testing.assert_allclose(w @ (x[:, 0] ** 2 * x[:, 1] ** 2), 1.0, rtol=1e-12)
            np.testing.assert_allclose(w @ (x[:, 0] ** 3 * x[:, 1] ** 2), 0.0, atol=1e-12)


def test_non_finite_step_raises_instead_of_a_silent_score(monkeypatch):
    """Regression: with parameters from a diverged peer fit (loadings ~200) the filter
    produced NaN steps, which the sum skipped, and the score came back as 0.0."""
    import spikessm
    from spikessm.evaluation import predictive as PR
    from spikessm.models.plds import make_plds_params

    p = make_plds_params(A=np.array([[0.9]]), Q=np.array([[0.1]]), C=np.ones((3, 1)),
                         d=np.zeros(3), bin_width=0.02)
    y = np.random.default_rng(0).poisson(0.3, size=(30, 3)).astype(float)
    core = PR._predictive_core

    def poisoned(*a, **k):
        out = core(*a, **k)
        return out._replace(poisson=out.poisson.at[0, 7].set(np.nan))

    monkeypatch.setattr(PR, "_predictive_core", poisoned)
    with pytest.raises(FloatingPointError, match="not finite at trial 0, step 7"):
        spikessm.point_process_predictive_ll(p, y, n_samples=50)
    smc = PR._smc_core

    def poisoned_smc(*a, **k):
        out = smc(*a, **k)
        return out._replace(log_z=out.log_z.at[0, 0, 5].set(np.nan))

    monkeypatch.setattr(PR, "_smc_core", poisoned_smc)
    with pytest.raises(FloatingPointError, match="non-finite"):
        spikessm.smc_log_likelihood(p, y, n_particles=100, n_repeats=2)
