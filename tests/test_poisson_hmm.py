"""Poisson HMM: exactness against brute-force enumeration and hmmlearn, monotone EM,
recovery on the tutorial configuration, structural zeros, change points, the ECLL lower
bound, missing / ragged data, priors, validation and the real premotor recording."""

from __future__ import annotations

import itertools
from pathlib import Path

import jax
import numpy as np
import pytest
from scipy.special import gammaln, logsumexp

from spikessm.models.poisson_hmm import (
    PoissonHMM,
    align_states,
    make_params,
    select_n_states,
    transition_matrix_from_rates,
)
from spikessm.models.poisson_hmm import em as E

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
TUT_RATES = np.array([[.02, .8, .37], [1., .7, .1], [.92, .07, .5], [.25, .42, .75],
                      [.15, .2, .85]]).T * 50.0  # (K=3, C=5) in Hz


# ------------------------------------------------------------------------------------
# dense references written from the definitions
# ------------------------------------------------------------------------------------
def brute_force(params, y, dt):
    """Enumerate every state path of one trial (T, C) with NaN = missing. Returns the
    log-likelihood, gammas (T, K), expected transitions (K, K) and the best path."""
    T, K = y.shape[0], params.n_states
    obs = ~np.isnan(y)
    yy = np.where(obs, y, 0.0)
    lam = params.rates * dt
    with np.errstate(divide="ignore"):
        le = (yy[:, None, :] * np.log(lam)[None] - lam[None] - gammaln(yy + 1)[:, None, :])
    le = np.where(obs[:, None, :], le, 0.0).sum(axis=2)  # (T, K)
    with np.errstate(divide="ignore"):
        lpsi, lA = np.log(params.initial_probs), np.log(params.transition_matrix)
    paths = np.array(list(itertools.product(range(K), repeat=T)))
    lp = lpsi[paths[:, 0]] + le[0, paths[:, 0]]
    for t in range(1, T):
        lp = lp + lA[paths[:, t - 1], paths[:, t]] + le[t, paths[:, t]]
    ll = logsumexp(lp)
    w = np.exp(lp - ll)
    gam = np.zeros((T, K))
    xi = np.zeros((K, K))
    for t in range(T):
        np.add.at(gam[t], paths[:, t], w)
        if t:
            np.add.at(xi, (paths[:, t - 1], paths[:, t]), w)
    return ll, gam, xi, paths[np.argmax(lp)]


def tutorial_truth(seed=0, dt=0.002):
    rng = np.random.default_rng(seed)
    R = rng.uniform(0.0, 3.0, (3, 3))
    np.fill_diagonal(R, 0.0)
    return make_params(np.array([1.0, 2.0, 3.0]) / 6, transition_matrix_from_rates(R, dt),
                       TUT_RATES), R


@pytest.fixture(scope="module")
def tiny():
    """K=2, C=2, three ragged trials (T = 8, 5, 8) with missing entries and a missing
    bin; parameters with unequal rates."""
    rng = np.random.default_rng(3)
    dt = 0.05
    p = make_params([0.3, 0.7], [[0.8, 0.2], [0.35, 0.65]], [[4.0, 30.0], [25.0, 8.0]])
    model = PoissonHMM(2, dt)
    _, y = model.sample(p, 3, 8, seed=4)
    trials = [y[0].copy(), y[1, :5].copy(), y[2].copy()]
    trials[0][2, 1] = np.nan  # one channel missing
    trials[2][4] = np.nan  # a whole bin missing
    trials[2][6, 0] = np.nan
    del rng
    return model, p, trials


def test_brute_force_enumeration(tiny):
    model, p, trials = tiny
    refs = [brute_force(p, y, model.dt) for y in trials]
    ll = model.log_likelihood(trials, p, per_trial=True)
    np.testing.assert_allclose(ll, [r[0] for r in refs], rtol=1e-10)
    xi_ref = sum(r[2] for r in refs)
    for log_space in (False, True):
        post = model.posterior(trials, p, log_space=log_space)
        for g, r in zip(post, refs):
            np.testing.assert_allclose(g, r[1], atol=1e-10)
        xi = model.expected_transitions(trials, p, log_space=log_space)
        np.testing.assert_allclose(xi, xi_ref, rtol=1e-10)
    for path, r in zip(model.viterbi(trials, p), refs):
        np.testing.assert_array_equal(path, r[3])
    # a single (T, C) trial comes back unbatched
    assert model.posterior(trials[0], p).shape == (8, 2)
    assert np.isclose(model.log_likelihood(trials[0], p), refs[0][0], rtol=1e-10)


def test_hmmlearn_oracle():
    from hmmlearn import hmm  # a declared test dependency (oracle): never skipped
    dt = 0.002
    p, _ = tutorial_truth(1, dt)
    model = PoissonHMM(3, dt)
    _, y = model.sample(p, 4, 600, seed=2)
    ref = hmm.PoissonHMM(n_components=3, implementation="log")
    ref.n_features = 5
    ref.startprob_, ref.transmat_, ref.lambdas_ = (p.initial_probs, p.transition_matrix,
                                                   p.rates * dt)
    X = y.reshape(-1, 5).astype(int)
    lengths = [600] * 4
    assert np.isclose(model.log_likelihood(y, p), ref.score(X, lengths), rtol=1e-10, atol=0)
    gam = np.concatenate(model.posterior(y, p))
    np.testing.assert_allclose(gam, ref.predict_proba(X, lengths), atol=1e-8)
    np.testing.assert_array_equal(np.concatenate(model.viterbi(y, p)),
                                  ref.predict(X, lengths))


@pytest.fixture(scope="module")
def tutorial_fit():
    dt = 0.002
    truth, R = tutorial_truth(0, dt)
    model = PoissonHMM(3, dt)
    _, y = model.sample(truth, 300, 1000, seed=1)
    fit = model.fit(y, seed=0, max_iter=200, tol=1e-8, progress=False)
    return model, truth, R, y, fit


def test_tutorial_recovery_and_monotone_ll(tutorial_fit):
    model, truth, R, y, fit = tutorial_fit
    lls = fit.log_likelihoods
    assert np.all(np.diff(lls) >= -1e-8 * np.abs(lls[1:]))
    assert fit.converged and fit.n_clipped == 0
    assert fit.log_likelihood >= lls[-1] - 1e-8 * abs(lls[-1])
    p = fit.params.permute(align_states(fit.params.rates, truth.rates))
    assert np.max(np.abs(p.rates / truth.rates - 1)) < 0.10
    off = ~np.eye(3, dtype=bool)
    assert np.max(np.abs(p.transition_rates(model.dt)[off] / R[off] - 1)) < 0.30
    np.testing.assert_allclose(p.transition_matrix.sum(axis=1), 1.0, atol=1e-12)
    # minorisation along EM: LL(theta_i) <= Q(theta_{i+1}|theta_i) + H(theta_i) <= LL_{i+1}
    bound = lls + fit.expected_complete_lls - fit.expected_complete_lls_at_current
    tol = 1e-9 * np.abs(lls)
    assert np.all(bound >= lls - tol)
    assert np.all(bound[:-1] <= lls[1:] + tol[1:])


def test_no_recompile_same_shapes(tutorial_fit):
    model, truth, _, y, _ = tutorial_fit
    n0 = E.em_chunk._cache_size()
    _, y2 = model.sample(truth, 300, 1000, seed=7)
    model.fit(y2, seed=3, max_iter=3, tol=0, progress=False)
    PoissonHMM(3, 0.004, transition_prior=2.0).fit(y2, max_iter=2, progress=False)
    assert E.em_chunk._cache_size() == n0


def test_ecll_lower_bound_along_line(tiny):
    model, p, trials = tiny
    line = model.ll_ecll_line(trials, p, s=np.linspace(0, 1, 11))
    assert np.isclose(line.bound[0], line.log_likelihoods[0], rtol=1e-12)
    assert np.all(line.bound <= line.log_likelihoods + 1e-9)
    # the M-step maximises Q, so Q increases all the way to s = 1
    assert np.all(np.diff(line.expected_complete_lls) > 0)
    default = model.ll_ecll_line(trials, p)
    assert default.s[-1] >= 1.0 and np.all(default.bound <= default.log_likelihoods + 1e-9)
    nxt = model.mstep(trials, p)
    assert np.isclose(model.expected_complete_ll(trials, p, nxt), line.expected_complete_lls[10])


def test_structural_zeros_and_change_points():
    K, dt, T = 4, 0.01, 400
    mask = np.eye(K, dtype=bool) | np.eye(K, k=1, dtype=bool)
    init_mask = np.arange(K) == 0
    rng = np.random.default_rng(5)
    bounds = [0, 90, 210, 300, T]
    seg_rates = np.array([[5, 40, 10], [30, 5, 15], [8, 8, 50], [40, 30, 5]], float)
    z = np.repeat(np.arange(K), np.diff(bounds))
    y = rng.poisson(seg_rates[z] * dt * 4).astype(float)  # 4 repeats of the descent
    model = PoissonHMM(K, dt, transition_mask=mask, initial_mask=init_mask)
    fit = model.fit(y, n_restarts=2, seed=0, max_iter=300, progress=False)
    A = fit.params.transition_matrix
    assert np.all(A[~mask] == 0.0) and fit.params.initial_probs[1:].tolist() == [0, 0, 0]
    path = model.viterbi(y, fit.params)
    found = np.flatnonzero(np.diff(path)) + 1
    assert len(found) == 3
    assert np.all(np.abs(found - np.array(bounds[1:-1])) <= 2)


def test_missing_bins_contribute_nothing(tiny):
    model, p, trials = tiny
    y = trials[0].copy()
    y_nan = y.copy()
    y_nan[3] = np.nan
    # a missing bin = that bin's emission term removed: marginalise it by hand
    ll_nan = model.log_likelihood(y_nan, p)
    assert np.isclose(ll_nan, brute_force(p, y_nan, model.dt)[0], rtol=1e-12)
    assert ll_nan > model.log_likelihood(y, p)
    # ragged trials: per-trial LLs equal trials scored alone
    per = model.log_likelihood(trials, p, per_trial=True)
    np.testing.assert_allclose(per, [model.log_likelihood(t, p) for t in trials], rtol=1e-12)


def test_priors_map_monotone_and_positive_rates():
    dt = 0.01
    model = PoissonHMM(2, dt, transition_prior=2.0, initial_prior=1.5, rate_prior=(2.0, 0.1))
    p = make_params([0.5, 0.5], [[0.9, 0.1], [0.1, 0.9]], [[0.0, 20.0], [15.0, 0.0]])
    _, y = PoissonHMM(2, dt).sample(p, 5, 200, seed=0)
    fit = model.fit(y, max_iter=60, tol=0, progress=False)
    assert np.all(np.diff(fit.objectives) >= -1e-8 * np.abs(fit.objectives[1:]))
    assert np.all(fit.params.rates > 0)
    ml = PoissonHMM(2, dt).fit(y, max_iter=60, progress=False)
    assert np.all(np.isfinite(ml.log_likelihoods))


def test_bad_input_and_no_mutation(tiny):
    model, p, trials = tiny
    y = trials[0]
    keep = [t.copy() for t in trials]
    with pytest.raises(ValueError, match="non-negative"):
        model.log_likelihood(-np.abs(y) - 1, p)
    with pytest.raises(ValueError, match="integer"):
        model.log_likelihood(y + 0.5, p)
    with pytest.raises(ValueError, match="n_states must be >= 1"):
        PoissonHMM(0, 0.01)
    with pytest.raises(ValueError, match="dt must be a positive"):
        PoissonHMM(2, 0.0)
    with pytest.raises(ValueError, match="rows must sum to 1"):
        make_params([0.5, 0.5], [[0.9, 0.2], [0.1, 0.9]], [[1.0], [2.0]])
    with pytest.raises(ValueError, match="initial_probs must have shape"):
        make_params([1.0], [[0.9, 0.1], [0.1, 0.9]], [[1.0], [2.0]])
    with pytest.raises(ValueError, match="channels"):
        model.log_likelihood(np.zeros((5, 3)), p)
    with pytest.raises(ValueError, match="must be 2-D"):
        model.log_likelihood([np.zeros((2, 2, 2))], p)
    with pytest.raises(ValueError, match="transition_mask"):
        PoissonHMM(2, 0.1, transition_mask=np.ones((3, 3), bool))
    with pytest.raises(ValueError, match="structural zeros"):
        PoissonHMM(2, 0.1, transition_mask=np.eye(2, dtype=bool)).log_likelihood(y, p)
    with pytest.raises(ValueError, match="transition_prior"):
        PoissonHMM(2, 0.1, transition_prior=0.5)
    with pytest.raises(ValueError, match="s=.* leaves the parameter space"):
        model.ll_ecll_line(trials, p, s=[0.0, 50.0])
    model.fit(trials, params=p, max_iter=2, progress=False)
    model.posterior(trials, p)
    for a, b in zip(trials, keep):
        np.testing.assert_array_equal(a, b)


def test_select_n_states_and_alignment(tutorial_fit):
    perm = align_states(TUT_RATES[[2, 0, 1]], TUT_RATES)
    np.testing.assert_array_equal(perm, [1, 2, 0])
    with pytest.raises(ValueError, match="same shape"):
        align_states(TUT_RATES, TUT_RATES[:2])
    model, truth, _, _, _ = tutorial_fit
    _, y = model.sample(truth, 40, 1000, seed=11)
    sel = select_n_states(y[:20], y[20:], [1, 3], model.dt, n_restarts=1, max_iter=40)
    assert sel.best_n_states == 3
    assert sel.test_log_likelihoods[1] > sel.test_log_likelihoods[0]
    assert sel.bic[1] < sel.bic[0]


def test_select_n_states_one_standard_error_rule():
    """The parsimonious choice is the smallest K within one paired standard error of the
    best held-out log-likelihood; on 2-state data it recovers K = 2 whichever of 2..4 has
    the highest held-out score."""
    from spikessm.models.poisson_hmm.params import make_params as hmm_params

    dt = 0.01
    rates = np.array([[2.0, 4.0, 3.0, 1.0, 6.0], [15.0, 3.0, 20.0, 8.0, 1.0]])
    truth = hmm_params(np.array([0.5, 0.5]), transition_matrix_from_rates(
        np.array([[0.0, 1.0], [1.5, 0.0]]), dt), rates)
    model = PoissonHMM(2, dt)
    _, y = model.sample(truth, n_trials=24, n_bins=300, seed=3)
    sel = select_n_states(y[:12], y[12:], [1, 2, 3, 4], dt, n_restarts=2, max_iter=100,
                          tol=1e-7)
    np.testing.assert_allclose(sel.test_trial_log_likelihoods.sum(axis=1),
                               sel.test_log_likelihoods, rtol=1e-12)
    best = list(sel.n_states).index(sel.best_n_states)
    diff = sel.test_trial_log_likelihoods - sel.test_trial_log_likelihoods[best]
    np.testing.assert_allclose(sel.test_standard_errors,
                               np.sqrt(12) * diff.std(axis=1, ddof=1), rtol=1e-12)
    assert sel.test_standard_errors[best] == 0.0
    assert sel.parsimonious_n_states == 2 <= sel.best_n_states
    chosen = list(sel.n_states).index(2)
    assert (sel.test_log_likelihoods[chosen]
            >= sel.test_log_likelihoods[best] - sel.test_standard_errors[chosen])
    assert (sel.test_log_likelihoods[0]
            < sel.test_log_likelihoods[best] - sel.test_standard_errors[0])


def _premotor_counts(bin_ms):
    from scipy.io import loadmat

    D = loadmat(DATA / "yu2009_pmd" / "ex2_rawspiketrains.mat", squeeze_me=True)["D"]
    out = []
    for d in D:
        x = np.asarray(d["data"], dtype=float)  # (61, T_i) 0/1 at 1 ms
        nb = x.shape[1] // bin_ms
        out.append(x[:, :nb * bin_ms].reshape(61, nb, bin_ms).sum(axis=2).T)
    return out


@pytest.mark.skipif(not (DATA / "yu2009_pmd").exists(),
                    reason="../shared/data/yu2009_pmd (real premotor recording) not present")
def test_premotor_heldout_beats_homogeneous_poisson():
    trials = _premotor_counts(50)
    rng = np.random.default_rng(0)
    idx = rng.permutation(len(trials))
    train = [trials[i] for i in idx[:80]]
    test = [trials[i] for i in idx[80:]]
    sel = select_n_states(train, test, [1, 4], 0.05, n_restarts=2, max_iter=100, tol=1e-7)
    assert sel.best_n_states == 4
    assert sel.test_per_bin[1] > sel.test_per_bin[0]


def test_x64_scoped():
    before = bool(jax.config.jax_enable_x64)
    PoissonHMM(2, 0.1).random_params(0, n_channels=2)
    assert bool(jax.config.jax_enable_x64) == before


def test_figures_return_figures(tiny, tutorial_fit):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.figure import Figure

    from spikessm.plotting import (
        plot_learning_curve,
        plot_ll_ecll_epochs,
        plot_ll_ecll_line,
        plot_raster_states,
        plot_rates_comparison,
    )

    model, p, trials = tiny
    tmodel, truth, _, y, fit = tutorial_fit
    aligned = fit.params.permute(align_states(fit.params.rates, truth.rates))
    figs = [plot_raster_states(trials[0], model.viterbi(trials[0], p), model.dt, n_states=2),
            plot_learning_curve(fit), plot_ll_ecll_epochs(fit),
            plot_ll_ecll_line(model.ll_ecll_line(trials, p)),
            plot_rates_comparison(aligned, truth, tmodel.dt)]
    assert all(isinstance(f, Figure) for f in figs)
    plt.close("all")
