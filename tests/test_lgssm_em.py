"""EM for the linear-Gaussian SSM: exactness against Dynamax and pykalman, monotonicity,
frozen parameters, parameter recovery, missing data and ragged trials.

Shapes are shared between tests (n=3 latents, N=6 channels, T=200 steps) so that the
jit-compiled E- and M-steps are reused and the module stays fast.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from spikessm import LinearGaussianSSM, make_params
from spikessm.evaluation import eigenvalue_match, max_subspace_angle

n, N, T, Q_IN = 3, 6, 200, 2
MONO = 1e-8  # allowed relative decrease per EM iteration (rounding only)


def spd(rng, k, lo=0.2, hi=1.5):
    U, _ = np.linalg.qr(rng.standard_normal((k, k)))
    return (U * rng.uniform(lo, hi, size=k)) @ U.T


def random_params(rng, q=Q_IN, r_kind="full", q_kind="full"):
    U, _ = np.linalg.qr(rng.standard_normal((n, n)))
    A = 0.9 * U
    R = {"full": spd(rng, N, 0.3, 1.2), "diagonal": np.diag(rng.uniform(0.3, 1.2, N)),
         "isotropic": 0.7}[r_kind]
    Q = {"full": 0.3 * spd(rng, n), "diagonal": np.diag(rng.uniform(0.1, 0.4, n)),
         "isotropic": 0.2}[q_kind]
    return make_params(A=A, b=0.3 * rng.standard_normal(n), B=0.5 * rng.standard_normal((n, q)),
                       Q=Q, C=rng.standard_normal((N, n)), d=rng.standard_normal(N),
                       D=0.5 * rng.standard_normal((N, q)), R=R,
                       m0=rng.standard_normal(n), P0=spd(rng, n, 0.5, 2.0))


def rel_trace_err(a, b):
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    assert a.shape == b.shape, (a.shape, b.shape)
    return float(np.max(np.abs(a - b) / np.abs(b)))


def max_rel(a, b):
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    assert a.shape == b.shape, (a.shape, b.shape)
    return float(np.max(np.abs(a - b)) / np.max(np.abs(b)))


def assert_monotone(lls, tol=MONO):
    lls = np.asarray(lls)
    assert np.all(np.isfinite(lls))
    drops = np.diff(lls) / np.abs(lls[:-1])
    assert drops.min() >= -tol, f"EM log-likelihood decreased: min relative change {drops.min()}"


def fit(model, y, **kw):
    kw.setdefault("tol", 0.0)
    kw.setdefault("progress", False)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # a decrease warning fails the test
        return model.fit_em(y, **kw)


MODEL = LinearGaussianSSM(n, N, input_dim=Q_IN)


@pytest.fixture(scope="module")
def data():
    """Truth, one trial (T, N) with inputs u (T, q), and a different starting point.

    Every small EM test uses these shapes (n=3, N=6, T=200, q=2) so that the compiled E-step
    is shared; tests of models "without inputs" freeze B = D = 0."""
    rng = np.random.default_rng(2024)
    truth = random_params(rng)
    u = rng.standard_normal((T, Q_IN))
    _, y = MODEL.sample(truth, T, inputs=u, seed=1)
    init = random_params(np.random.default_rng(7))
    return truth, y, u, init


# ---------------------------------------------------------------------------
# exactness: Dynamax
# ---------------------------------------------------------------------------
def _dynamax_params(dyn_model, p):
    import jax.numpy as jnp
    import jax.random as jr

    params, props = dyn_model.initialize(
        jr.PRNGKey(0), initial_mean=jnp.asarray(p.m0), initial_covariance=jnp.asarray(p.P0),
        dynamics_weights=jnp.asarray(p.A), dynamics_bias=jnp.asarray(p.b),
        dynamics_input_weights=jnp.asarray(p.B), dynamics_covariance=jnp.asarray(p.Q),
        emission_weights=jnp.asarray(p.C), emission_bias=jnp.asarray(p.d),
        emission_input_weights=jnp.asarray(p.D), emission_covariance=jnp.asarray(p.R))
    return params, props


N_ITER = 15


@pytest.fixture(scope="module")
def dynamax_em(data):
    """Dynamax EM from ``init`` (float64: the global flag is switched on only while Dynamax
    runs, then restored; results come back as NumPy arrays)."""
    import jax
    import jax.numpy as jnp
    from dynamax.linear_gaussian_ssm import LinearGaussianSSM as DynLGSSM

    _, y, u, init = data
    previous = bool(jax.config.jax_enable_x64)
    jax.config.update("jax_enable_x64", True)
    try:
        dyn = DynLGSSM(n, N, input_dim=Q_IN)
        params, props = _dynamax_params(dyn, init)
        fitted, lls = dyn.fit_em(params, props, jnp.asarray(y), jnp.asarray(u),
                                 num_iters=N_ITER, verbose=False)
        assert lls.dtype == jnp.float64
        fitted = jax.tree_util.tree_map(np.asarray, fitted)
        return fitted, np.asarray(lls)
    finally:
        jax.config.update("jax_enable_x64", previous)


@pytest.mark.parametrize("path", ["steady", "general"])
def test_em_trace_matches_dynamax(data, dynamax_em, path):
    """Everything free (A, b, B, Q, C, d, D, R, m0, P0), full R, inputs."""
    _, y, u, init = data
    dyn_params, dyn_lls = dynamax_em
    res = fit(MODEL, y, inputs=u, params=init, max_iter=N_ITER, path=path)
    assert res.path == path and res.n_iter == N_ITER and not res.converged
    err = rel_trace_err(res.log_likelihoods, dyn_lls)
    assert err < 1e-6, err  # measured ~1e-14
    assert dyn_lls[-1] - dyn_lls[0] > 10.0  # EM really moved
    assert_monotone(res.log_likelihoods)
    # the fitted parameters agree too
    p, dp = res.params, dyn_params
    pairs = {"A": dp.dynamics.weights, "b": dp.dynamics.bias, "B": dp.dynamics.input_weights,
             "Q": dp.dynamics.cov, "C": dp.emissions.weights, "d": dp.emissions.bias,
             "D": dp.emissions.input_weights, "R": dp.emissions.cov, "m0": dp.initial.mean,
             "P0": dp.initial.cov}
    errs = {k: max_rel(getattr(p, k), v) for k, v in pairs.items()}
    assert max(errs.values()) < 1e-6, errs


# ---------------------------------------------------------------------------
# exactness: pykalman (no offsets, no inputs: our b, d, B, D frozen at zero)
# ---------------------------------------------------------------------------
PYK_NAMES = {"A": "transition_matrices", "C": "observation_matrices",
             "Q": "transition_covariance", "R": "observation_covariance",
             "m0": "initial_state_mean", "P0": "initial_state_covariance"}


@pytest.mark.parametrize("free", [("A", "C", "Q", "R", "m0", "P0"), ("A", "R", "P0"),
                                  ("C", "Q", "m0")], ids="+".join)
def test_em_trace_matches_pykalman(data, free):
    from pykalman import KalmanFilter

    _, y, u, init = data
    y = y - y.mean(axis=0)
    init = init.replace(b=np.zeros(n), d=np.zeros(N), B=np.zeros((n, Q_IN)),
                        D=np.zeros((N, Q_IN)))
    kf = KalmanFilter(
        transition_matrices=init.A, observation_matrices=init.C,
        transition_covariance=init.Q, observation_covariance=init.R,
        transition_offsets=np.zeros(n), observation_offsets=np.zeros(N),
        initial_state_mean=init.m0, initial_state_covariance=init.P0)
    n_iter = 6
    pyk_lls = []
    for _ in range(n_iter):
        pyk_lls.append(kf.loglikelihood(y))
        kf.em(y, n_iter=1, em_vars=[PYK_NAMES[k] for k in free])
    frozen = ("b", "d", "B", "D") + tuple(k for k in PYK_NAMES if k not in free)
    res = fit(MODEL, y, inputs=u, params=init, frozen=frozen, max_iter=n_iter)
    err = rel_trace_err(res.log_likelihoods, pyk_lls)
    assert err < 1e-6, err  # measured ~1e-13
    assert_monotone(res.log_likelihoods)
    errs = {k: max_rel(getattr(res.params, k), getattr(kf, name))
            for k, name in PYK_NAMES.items()}
    assert max(errs.values()) < 1e-6, errs
    assert res.log_likelihood == pytest.approx(kf.loglikelihood(y), rel=1e-8)


# ---------------------------------------------------------------------------
# monotonicity for every covariance structure, missing data, inputs
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("q_kind, r_kind", [("full", "full"), ("diagonal", "diagonal"),
                                            ("isotropic", "isotropic"),
                                            ("full", "isotropic"), ("isotropic", "diagonal")])
def test_em_monotone_covariance_structures(q_kind, r_kind):
    rng = np.random.default_rng(31)
    model = LinearGaussianSSM(n, N, input_dim=Q_IN, dynamics_covariance=q_kind,
                              emission_covariance=r_kind)
    truth = random_params(rng, r_kind=r_kind, q_kind=q_kind)
    u = rng.standard_normal((T, Q_IN))
    _, y = model.sample(truth, T, inputs=u, seed=32)
    res = fit(model, y, inputs=u, max_iter=25)
    assert res.path == "steady"
    assert_monotone(res.log_likelihoods)
    assert res.log_likelihoods[-1] > res.log_likelihoods[0]
    p = res.params
    for M, kind in ((p.Q, q_kind), (p.R, r_kind)):
        if kind != "full":
            np.testing.assert_array_equal(M, np.diag(np.diag(M)))
        else:
            assert np.abs(M - np.diag(np.diag(M))).max() > 0
        if kind == "isotropic":
            assert np.all(np.diag(M) == M[0, 0])
    # one more E-step: the returned parameters are at least as good as the last trace entry
    assert res.log_likelihood >= res.log_likelihoods[-1] - MONO * abs(res.log_likelihood)
    assert res.log_likelihood == pytest.approx(model.log_prob(p, y, inputs=u), rel=1e-12)


@pytest.fixture(scope="module")
def three_trials(data):
    truth = data[0]
    u = np.random.default_rng(8).standard_normal((3, T, Q_IN))
    _, y = MODEL.sample(truth, T, n_trials=3, inputs=u, seed=9)
    return y, u


def test_em_steady_equals_general_multi_trial(three_trials):
    """Several equal-length trials with inputs on both E-step paths, from the data-driven
    (PCA) initialisation."""
    y, u = three_trials
    steady = fit(MODEL, y, inputs=u, max_iter=20)
    general = fit(MODEL, y, inputs=u, max_iter=20, path="general")
    assert steady.path == "steady" and general.path == "general"
    assert_monotone(steady.log_likelihoods)
    assert rel_trace_err(steady.log_likelihoods, general.log_likelihoods) < 1e-9
    for k in FREEZABLE:
        assert max_rel(getattr(steady.params, k), getattr(general.params, k)) < 1e-8, k
    assert np.all(steady.params.B != 0) and np.all(steady.params.D != 0)
    # EM with inputs does better than EM that ignores them (B = D = 0 frozen)
    no_u = fit(MODEL, y, inputs=u, max_iter=20, frozen=("B", "D"))
    assert steady.log_likelihood > no_u.log_likelihood + 10.0


def test_initial_state_mstep_over_trials(data, three_trials):
    """m0, P0 after one EM step = moments of the smoothed x_0 pooled over trials:
    m0 = mean_k E[x0_k], P0 = mean_k (Cov[x0_k] + (E[x0_k] - m0)(E[x0_k] - m0)')."""
    y, u = three_trials
    init = data[3]
    frozen = tuple(k for k in FREEZABLE if k not in ("m0", "P0"))
    res = fit(MODEL, y, inputs=u, params=init, frozen=frozen, max_iter=1)
    post = MODEL.smooth(init, y, inputs=u)
    mu0, S0 = post.smoothed_means[:, 0], post.smoothed_covs[:, 0]
    m0 = mu0.mean(axis=0)
    P0 = np.mean(S0 + (mu0 - m0)[:, :, None] * (mu0 - m0)[:, None, :], axis=0)
    assert max_rel(res.params.m0, m0) < 1e-10 and max_rel(res.params.P0, P0) < 1e-10


def _missing(y, rng, frac=0.2):
    y = y.copy()
    y[rng.random(y.shape) < frac] = np.nan
    y[[5, 6, 40]] = np.nan  # fully missing rows
    return y


@pytest.fixture(scope="module")
def missing_data(data):
    """The shared trial with 20% missing entries and a few fully missing rows."""
    _, y, u, _ = data
    return _missing(y, np.random.default_rng(41)), u


@pytest.mark.parametrize("r_kind", ["full", "diagonal", "isotropic"])
def test_em_monotone_missing_with_inputs(missing_data, r_kind):
    ym, u = missing_data
    model = LinearGaussianSSM(n, N, input_dim=Q_IN, emission_covariance=r_kind)
    init = model.initialize(ym, inputs=u)
    res = fit(model, ym, inputs=u, params=init, max_iter=25)
    assert res.path == "general"
    assert_monotone(res.log_likelihoods)
    assert res.log_likelihoods[-1] - res.log_likelihoods[0] > 1.0
    # input weights are learned (they start at zero)
    assert np.all(res.params.B != 0) and np.all(res.params.D != 0)
    assert res.log_likelihood == pytest.approx(model.log_prob(res.params, ym, inputs=u),
                                               rel=1e-12)


# ---------------------------------------------------------------------------
# frozen parameters
# ---------------------------------------------------------------------------
# (each distinct frozen set is a separate compilation of the EM loop, so the list is short)
FROZEN_SETS = [("A",), ("C",), ("Q",), ("R",), ("b",), ("d",), ("m0",), ("P0",),
               ("A", "Q"), ("C", "d", "R"), ("b", "m0", "P0"),
               ("A", "b", "B", "Q", "C", "d", "D", "R")]
FREEZABLE = ("A", "b", "B", "Q", "C", "d", "D", "R", "m0", "P0")


@pytest.mark.parametrize("frozen", FROZEN_SETS, ids="+".join)
def test_frozen_parameters_unchanged(data, frozen):
    _, y, u, init = data
    before = {k: v.copy() for k, v in init.as_dict().items()}
    res = fit(MODEL, y, inputs=u, params=init, frozen=frozen, max_iter=4)
    assert_monotone(res.log_likelihoods)
    assert res.log_likelihoods[-1] > res.log_likelihoods[0]
    for k in FREEZABLE:
        same = np.array_equal(getattr(res.params, k), before[k])
        assert same == (k in frozen), (k, same)
    # init was not modified in place
    for k, v in before.items():
        np.testing.assert_array_equal(getattr(init, k), v)
    # internal consistency: the trace after 3 iterations is the LL of the 3-iteration fit,
    # i.e. the parameters EM works with are the returned ones (frozen values included)
    res3 = fit(MODEL, y, inputs=u, params=init, frozen=frozen, max_iter=3)
    assert res.log_likelihoods[3] == pytest.approx(res3.log_likelihood, rel=1e-10)


@pytest.mark.parametrize("r_kind, frozen", [("full", ("C", "D")),
                                             ("diagonal", ("d", "R", "A"))])
def test_frozen_missing(missing_data, r_kind, frozen):
    """Conditional M-steps on the missing-data paths (per-channel regression for a
    diagonal R, imputed second moments for a full R)."""
    ym, u = missing_data
    model = LinearGaussianSSM(n, N, input_dim=Q_IN, emission_covariance=r_kind)
    init = model.initialize(ym, inputs=u)
    res = fit(model, ym, inputs=u, params=init, frozen=frozen, max_iter=6)
    assert_monotone(res.log_likelihoods)
    assert res.log_likelihoods[-1] > res.log_likelihoods[0]
    for k in ("A", "C", "d", "D", "R"):
        assert np.array_equal(getattr(res.params, k), getattr(init, k)) == (k in frozen)


def test_mstep_without_inputs_all_regressions_frozen(data):
    """Unit test of the compiled M-step with input_dim = 0 and A, b, C, d frozen.

    Regression test: ``mstep`` used to slice the zero-width input block out of the
    concatenated regression weights; XLA (CPU) then aborted the whole Python process while
    compiling ("SmallVector unable to grow"). Fixed in em.py by not slicing when q == 0."""
    import jax
    import jax.numpy as jnp

    from spikessm.data.trials import pack_trials
    from spikessm.models.lgssm import em as E

    truth, _, _, init = data
    no_q = dict(B=np.zeros((n, 0)), D=np.zeros((N, 0)))
    init = init.replace(**no_q)
    _, y = LinearGaussianSSM(n, N).sample(truth.replace(**no_q), 30, seed=71)
    frozen = ("A", "C", "b", "d")
    with jax.enable_x64(True):
        batch = pack_trials(y)
        dat = E.Data(*(jnp.asarray(a) for a in (batch.y, batch.mask, batch.valid,
                                                 batch.inputs)))
        P = {k: jnp.asarray(v) for k, v in init.as_dict().items()}
        st = E.estep_general(P, dat, E.data_sums(dat), diag=False, missing=False)
        new = E.mstep(P, st, frozen=frozen, q_type="full", r_type="full", per_channel=False)
        new = {k: np.asarray(v) for k, v in new.items()}
    for k in frozen + ("B", "D"):
        assert np.array_equal(new[k], getattr(init, k)), k
    assert not np.array_equal(new["Q"], init.Q) and not np.array_equal(new["R"], init.R)


def test_frozen_regressions_without_inputs(data):
    """input_dim = 0 with both regressions' matrices and offsets frozen, through fit_em."""
    truth, _, _, init = data
    no_q = dict(B=np.zeros((n, 0)), D=np.zeros((N, 0)))
    truth, init = truth.replace(**no_q), init.replace(**no_q)
    model = LinearGaussianSSM(n, N)
    _, y = model.sample(truth, 60, seed=70)
    frozen = ("A", "b", "C", "d")
    res = fit(model, y, params=init, frozen=frozen, max_iter=5)
    assert_monotone(res.log_likelihoods)
    assert res.log_likelihoods[-1] > res.log_likelihoods[0]
    for k in FREEZABLE:
        assert np.array_equal(getattr(res.params, k), getattr(init, k)) == (
            k in frozen + ("B", "D")), k


# ---------------------------------------------------------------------------
# parameter recovery
# ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def recovery_problem():
    model = LinearGaussianSSM(3, 20)
    truth = model.random_params(seed=0)  # A = 0.95 x rotation, Q = 0.1 I, R = 0.5 I
    _, y = model.sample(truth, 5000, seed=1)
    _, y_test = model.sample(truth, 5000, seed=2)
    return truth, y, y_test


def _recovery_errors(model, truth, res, y_test):
    eig = eigenvalue_match(res.params.A, truth.A)
    ang = max_subspace_angle(res.params.C, truth.C)
    ll_true = model.log_prob(truth, y_test)
    ll_fit = model.log_prob(res.params, y_test)
    return eig, ang, (ll_true - ll_fit) / abs(ll_true)


def test_parameter_recovery(recovery_problem):
    truth, y, y_test = recovery_problem
    model = LinearGaussianSSM(3, 20)
    res = fit(model, y, max_iter=200, tol=1e-8)
    assert res.path == "steady" and res.converged
    assert_monotone(res.log_likelihoods)
    eig, ang, gap = _recovery_errors(model, truth, res, y_test)
    # measured: eig ~0.008, angle ~0.8 deg, held-out gap ~0.15%
    assert eig < 0.02 and ang < 5.0 and abs(gap) < 0.005, (eig, ang, gap)


def test_parameter_recovery_missing(recovery_problem):
    """20% missing at random. The emission noise is modelled as diagonal (the truth is
    R = 0.5 I) so that EM takes the exact per-channel path; the tolerances are the same as
    with complete data: 80% of 5000 x 20 entries still pins down 3 latents easily."""
    truth, y, y_test = recovery_problem
    ym = y.copy()
    ym[np.random.default_rng(3).random(y.shape) < 0.2] = np.nan
    model = LinearGaussianSSM(3, 20, emission_covariance="diagonal")
    res = fit(model, ym, max_iter=60, tol=1e-7)
    assert res.path == "general"
    assert_monotone(res.log_likelihoods)
    eig, ang, gap = _recovery_errors(model, truth, res, y_test)
    # measured: eig ~0.005, angle ~0.8 deg, held-out gap ~0.09%
    assert eig < 0.02 and ang < 5.0 and abs(gap) < 0.005, (eig, ang, gap)


# ---------------------------------------------------------------------------
# ragged trials
# ---------------------------------------------------------------------------
def test_em_ragged_trials(data):
    truth, _, _, init = data
    truth = truth.replace(B=np.zeros((n, 0)), D=np.zeros((N, 0)))
    init = init.replace(B=np.zeros((n, 0)), D=np.zeros((N, 0)))
    model = LinearGaussianSSM(n, N)  # input_dim = 0 (the q = 0 code path)
    lengths = [50, 500, 137, 200]
    trials = [model.sample(truth, L, seed=60 + k)[1] for k, L in enumerate(lengths)]
    res = fit(model, trials, params=init, max_iter=15)
    assert res.path == "general"
    assert_monotone(res.log_likelihoods)
    assert res.log_likelihoods[-1] - res.log_likelihoods[0] > 10.0
    assert res.log_likelihood == pytest.approx(model.log_prob(res.params, trials), rel=1e-12)
    with pytest.raises(ValueError, match="path"):
        model.fit_em(trials, params=init, max_iter=2, path="steady", progress=False)
