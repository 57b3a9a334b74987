"""Property-based fuzzing of the point-process GLM and decoding entry points (issue 9, part B).

Each case starts from a small valid set of arguments and changes one of them
(``fuzz_mutations.mutate_value``); the call must return finite results of the documented
shapes or raise a ValueError/TypeError naming an argument (``fuzz_harness.exercise``), and
must leave its inputs unmodified.
"""

from __future__ import annotations

import numpy as np
import pytest
from fuzz_harness import exercise, fuzz_settings
from fuzz_mutations import VALUE_KINDS, assert_unchanged, mutate_value, position, snapshot
from hypothesis import given
from hypothesis import strategies as st

import spikessm as s

pytestmark = pytest.mark.fuzz

T, N = 9, 3
RNG = np.random.default_rng(0)
Y = RNG.poisson(1.0, (T, N)).astype(np.int64)
Y01 = (Y > 0).astype(np.int64)
TG = 40  # GLM data length
YG = np.random.default_rng(1).poisson(0.6, (TG, 2)).astype(np.int64)
XG = np.random.default_rng(2).normal(size=(TG, 1))

value_kind = st.sampled_from(VALUE_KINDS)


def run_mutated(entry, fn, kw, arg, kind, pos, *, positional=(), also=(), allow_nonfinite=()):
    """Call ``fn(*[kw[p] for p in positional], **rest)`` with ``kw[arg]`` mutated; check that
    no argument is modified. Returns (result or None, the mutated kwargs)."""
    kw = dict(kw)
    if arg is not None:
        kw[arg] = mutate_value(kw[arg], kind, pos)
    before = snapshot(kw)
    args = [kw[p] for p in positional]
    rest = {k: v for k, v in kw.items() if k not in positional}
    out = exercise(entry, fn, *args, names=tuple(kw), also=(FloatingPointError,) + also,
                   allow_nonfinite=allow_nonfinite, **rest)
    assert_unchanged(before, kw, "arguments")
    return out, kw


# ------------------------------------------------------------------------------------------
# decoding: PPAF family, hybrid filter, CMGF, static decoders
# ------------------------------------------------------------------------------------------
def ppaf_kw(d):
    return dict(spikes=Y, A=0.9 * np.eye(d), Q=0.05 * np.eye(d), m0=np.zeros(d),
                P0=np.eye(d), C=np.linspace(-0.5, 0.5, N * d).reshape(N, d),
                baseline=np.full(N, -0.5), bin_width=1.0)


PPAF_ARGS = ("spikes", "A", "Q", "m0", "P0", "C", "baseline", "bin_width", None)


def check_ppaf(out, d, smoothed=False):
    assert out.filtered_means.shape == (T, d)
    assert out.filtered_covs.shape == (T, d, d)
    assert np.all(np.linalg.eigvalsh(out.filtered_covs) > 0)
    if smoothed:
        assert out.smoothed_means.shape == (T, d)


D = 2  # one state dimension for the PPAF family: compiled code is reused


@fuzz_settings()
@given(arg=st.sampled_from(PPAF_ARGS), kind=value_kind, pos=position,
       obs=st.sampled_from(["poisson", "poisson", "bernoulli", "gauss"]),
       iterated=st.sampled_from([False, False, True]))
def test_ppaf_filter(arg, kind, pos, obs, iterated):
    kw = ppaf_kw(D)
    if obs == "bernoulli":
        kw["spikes"] = Y01
    out, kw = run_mutated("ppaf_filter", lambda **k: s.ppaf_filter(
        **k, observation=obs, iterated=iterated, max_iter=5), kw, arg, kind, pos)
    if out is not None:
        check_ppaf(out, D)


@fuzz_settings()
@given(arg=st.sampled_from(PPAF_ARGS), kind=value_kind, pos=position)
def test_ppaf_smoother(arg, kind, pos):
    out, kw = run_mutated("ppaf_smoother", s.ppaf_smoother, ppaf_kw(D), arg, kind, pos)
    if out is not None:
        check_ppaf(out, D, smoothed=True)


@fuzz_settings()
@given(arg=st.sampled_from(PPAF_ARGS + ("lag",)), kind=value_kind, pos=position,
       lag=st.sampled_from([2, 2, 2, 0, -1, 1.5, 100, None, True, "2"]))
def test_fixed_lag_smoother(arg, kind, pos, lag):
    kw = ppaf_kw(D)
    kw["lag"] = lag
    out, kw = run_mutated("fixed_lag_smoother", s.fixed_lag_smoother, kw, arg, kind, pos)
    if out is not None:
        check_ppaf(out, D)
        assert out.lag == int(kw["lag"])


@fuzz_settings()
@given(arg=st.sampled_from(PPAF_ARGS), kind=value_kind, pos=position,
       method=st.sampled_from(["filter", "smooth", "fixed_lag"]))
def test_point_process_adaptive_filter(arg, kind, pos, method):
    def run(spikes, **k):
        f = s.PointProcessAdaptiveFilter(**k)
        return f.fixed_lag(spikes, 2) if method == "fixed_lag" else getattr(f, method)(spikes)

    out, kw = run_mutated("PointProcessAdaptiveFilter", run, ppaf_kw(D), arg, kind, pos)
    if out is not None:
        check_ppaf(out, D, smoothed=method == "smooth")


@fuzz_settings()
@given(arg=st.sampled_from(PPAF_ARGS[:-1] + ("target", "target_cov", "target_time", None)),
       kind=value_kind, pos=position, smooth=st.booleans())
def test_goal_directed_filter(arg, kind, pos, smooth):
    d = D
    kw = ppaf_kw(d)
    kw.update(target=np.ones(d), target_cov=0.01 * np.eye(d), target_time=T - 1)
    out, kw = run_mutated("goal_directed_filter",
                          lambda **k: s.goal_directed_filter(**k, smooth=smooth), kw, arg,
                          kind, pos)
    if out is not None:
        check_ppaf(out, d, smoothed=smooth)


@fuzz_settings()
@given(d=st.sampled_from([1, 2]),
       arg=st.sampled_from(("spikes", "transition_matrix", "A", "Q", "m0", "P0", "C",
                            "initial_mode_probs", "baseline", "bin_width", None)),
       kind=value_kind, pos=position, per_mode=st.booleans())
def test_hybrid_filter(d, arg, kind, pos, per_mode):
    kw = ppaf_kw(d)
    if per_mode:
        kw["A"] = np.stack([0.9 * np.eye(d), 0.5 * np.eye(d)])
    kw.update(transition_matrix=np.array([[0.9, 0.1], [0.2, 0.8]]),
              initial_mode_probs=np.array([0.5, 0.5]))
    out, kw = run_mutated("hybrid_filter", s.hybrid_filter, kw, arg, kind, pos)
    if out is not None:
        assert out.mode_probabilities.shape == (T, 2)
        assert np.allclose(out.mode_probabilities.sum(1), 1.0)
        assert out.means.shape == (T, d)


@pytest.mark.parametrize("smoother", [False, True])
@fuzz_settings()
@given(arg=st.sampled_from(("observations", "transition_matrix", "observation_matrix",
                            "transition_covariance", "initial_state_mean",
                            "initial_state_covariance", "baseline", "bin_width", None)),
       kind=value_kind, pos=position, iterated=st.booleans())
def test_cmgf_poisson(smoother, arg, kind, pos, iterated):
    d = D
    p = ppaf_kw(d)
    kw = dict(observations=Y, transition_matrix=p["A"], observation_matrix=p["C"],
              transition_covariance=p["Q"], initial_state_mean=p["m0"],
              initial_state_covariance=p["P0"], baseline=p["baseline"], bin_width=1.0)
    fn = s.cmgf_poisson_smoother if smoother else s.cmgf_poisson_filter
    name = "cmgf_poisson_smoother" if smoother else "cmgf_poisson_filter"
    out, kw = run_mutated(name, lambda **k: fn(**k, iterated=iterated, num_iter=5), kw, arg,
                          kind, pos)
    if out is not None:
        assert out.state_means.shape == (T, d)
        assert out.state_covariances.shape == (T, d, d)


@fuzz_settings()
@given(arg=st.sampled_from(("spikes", "grid", "log_intensity_grid", "prior", "truth", "level",
                            "bin_width", "chunk", None)),
       kind=value_kind, pos=position)
def test_bayesian_decoder(arg, kind, pos):
    G = 5
    grid = np.linspace(0, 1, G)[:, None]
    kw = dict(spikes=Y, grid=grid, log_intensity_grid=np.cos(3 * grid + np.arange(N)) - 1.0,
              prior=np.ones(G), truth=np.full((T, 1), 0.4), level=0.9, bin_width=1.0,
              chunk=4)
    out, kw = run_mutated("bayesian_decoder", s.bayesian_decoder, kw, arg, kind, pos)
    if out is not None:
        assert out.means.shape == (T, 1) and out.maps.shape == (T, 1)
        g = np.asarray(kw["grid"], dtype=float)
        assert np.all(out.means >= g.min() - 1e-9) and np.all(out.means <= g.max() + 1e-9)


@fuzz_settings()
@given(arg=st.sampled_from(("train_spikes", "train_states", "test_spikes", "ridge", None)),
       kind=value_kind, pos=position, smooth=st.booleans())
def test_kalman_decoder(arg, kind, pos, smooth):
    states = np.cumsum(np.random.default_rng(3).normal(size=(TG, 1)), 0)
    train = np.random.default_rng(4).poisson(np.exp(0.3 * states + np.zeros((1, N))))
    kw = dict(train_spikes=train, train_states=states, test_spikes=Y, ridge=1e-6)
    out, kw = run_mutated("kalman_decoder", lambda **k: s.kalman_decoder(**k, smooth=smooth),
                          kw, arg, kind, pos)
    if out is not None:
        assert out.filtered_means.shape == (T, 1)


# ------------------------------------------------------------------------------------------
# GLM
# ------------------------------------------------------------------------------------------
def glm_kw():
    return dict(counts=YG, features=XG, bin_width=0.01, link="log", history=np.array([1, 2, 4]),
                ensemble=None, l2=0.0, max_iter=20)


@fuzz_settings()
@given(arg=st.sampled_from(("counts", "features", "bin_width", "history", "ensemble", "l2",
                            "max_iter", "link", None)),
       kind=value_kind, pos=position, link=st.sampled_from(["log", "log", "logit", "probit"]),
       ens=st.booleans())
def test_fit_glm(arg, kind, pos, link, ens):
    kw = glm_kw()
    kw["link"] = link
    if link == "logit":
        kw["counts"] = (YG > 0).astype(np.int64)
    if ens:
        kw["ensemble"] = np.array([1, 3])
    if arg == "link":
        kw["link"] = {"ok": link, "none": None, "str": "LOG"}.get(kind, 3)
        arg = None
    out, kw = run_mutated("fit_glm", s.fit_glm, kw, arg, kind, pos, positional=("counts",))
    if out is not None:
        assert out.coef.shape[0] == np.asarray(kw["counts"]).shape[-1] if np.ndim(
            kw["counts"]) == 2 else True
        assert np.all(out.se >= 0)
        assert np.all(np.asarray(out.fitted) >= 0)


FIT = s.fit_glm(YG, XG, bin_width=0.01, history=(1, 2, 4))


@fuzz_settings()
@given(kind=value_kind, pos=position, basis=st.sampled_from([None, None, "bumps", "bad"]),
       lead=st.sampled_from([(), (4,), (2, 3)]))
def test_log_intensity(kind, pos, basis, lead):
    x = np.random.default_rng(pos).normal(size=lead + (1,))
    x = mutate_value(x, kind, pos)
    b = {None: None, "bumps": s.GaussianBumps(np.array([[0.0]]), 1.0), "bad": "basis"}[basis]
    before = snapshot(x)

    def run():
        return s.log_intensity(FIT, b)(x)

    out = exercise("log_intensity", run, names=("x", "basis", "fit", "dim", "feature"))
    assert_unchanged(before, x, "x")
    if out is not None:
        assert np.shape(out) == np.shape(x)[:-1] + (2,)


@fuzz_settings()
@given(arg=st.sampled_from(("counts", "edges", None)), kind=value_kind, pos=position,
       edges=st.sampled_from([(1, 2, 5), (1, 2), (2, 3), (1,), (), (3, 1), (0, 1), (1, 1),
                              (1.5, 2), (1, 100)]),
       one=st.booleans())
def test_history_features(arg, kind, pos, edges, one):
    kw = dict(counts=YG[:, 0] if one else YG, edges=np.array(edges))
    out, kw = run_mutated("history_features", s.history_features, kw, arg, kind, pos,
                          positional=("counts", "edges"))
    if out is not None:
        c = np.asarray(kw["counts"])
        assert out.shape == c.shape + (len(np.asarray(kw["edges"])) - 1,)
        assert np.all(out >= 0)


@fuzz_settings()
@given(arg=st.sampled_from(("counts", "bin_width", "history", "ensemble", "alpha",
                            "correction", None)),
       kind=value_kind, pos=position)
def test_granger_causality(arg, kind, pos):
    kw = dict(counts=YG, bin_width=0.01, history=np.array([1, 2, 4]), ensemble=None,
              alpha=0.05, correction="fdr_bh")
    if arg == "correction":
        kw["correction"] = {"ok": "holm", "none": None, "str": "FDR"}.get(kind, "bonferroni")
        arg = None
    out, kw = run_mutated("granger_causality", s.granger_causality, kw, arg, kind, pos,
                          positional=("counts",), allow_nonfinite=("deviance_difference",
                                                                   "pvalues", "sign"))
    if out is not None:
        n = np.asarray(kw["counts"]).shape[1]
        assert out.pvalues.shape == (n, n)
        off = ~np.eye(n, dtype=bool)
        assert np.all((out.pvalues[off] >= 0) & (out.pvalues[off] <= 1))


@fuzz_settings()
@given(arg=st.sampled_from(("data", "fs", "order", "max_order", "n_freqs", None)),
       kind=value_kind, pos=position)
def test_spectral_granger(arg, kind, pos):
    data = np.random.default_rng(5).normal(size=(60, 2))
    data[1:, 1] += 0.5 * data[:-1, 0]
    kw = dict(data=data, fs=100.0, order=2, max_order=3, n_freqs=9)
    out, kw = run_mutated("spectral_granger", s.spectral_granger, kw, arg, kind, pos,
                          positional=("data",), allow_nonfinite=("spectrum", "time_domain"))
    if out is not None:  # NaN on the diagonal only (documented)
        off = ~np.eye(2, dtype=bool)
        assert out.freqs.shape == (int(kw["n_freqs"]),)
        assert np.all(np.isfinite(out.spectrum[off])) and np.all(np.isnan(out.spectrum[~off]))
        assert np.all(np.isfinite(out.time_domain[off]))


@fuzz_settings()
@given(arg=st.sampled_from(("spikes", "integrated_intensity", "seed", None)), kind=value_kind,
       pos=position, discrete=st.booleans())
def test_time_rescaling(arg, kind, pos, discrete):
    kw = dict(spikes=YG[:, 0], integrated_intensity=np.full(TG, 0.6), seed=0)
    out, kw = run_mutated("time_rescaling",
                          lambda spikes, integrated_intensity, **k: s.time_rescaling(
                              spikes, integrated_intensity, discrete=discrete, **k),
                          kw, arg, kind, pos, positional=("spikes", "integrated_intensity"))
    if out is not None:
        assert 0 <= out.ks_statistic <= 1 and 0 <= out.ks_pvalue <= 1
        assert np.all((out.uniform >= 0) & (out.uniform <= 1))


@fuzz_settings()
@given(arg=st.sampled_from(("counts", "seed", "fit", None)), kind=value_kind, pos=position)
def test_time_rescaling_fit(arg, kind, pos):
    kw = dict(fit=FIT, counts=YG, seed=1)
    if arg == "fit":
        kw["fit"] = {"none": None, "str": "fit"}.get(kind, FIT)
        arg = None
    out, kw = run_mutated("time_rescaling_fit", s.time_rescaling_fit, kw, arg, kind, pos,
                          positional=("fit", "counts"))
    if out is not None:
        assert len(out) == 2


@pytest.mark.parametrize("which", ["bumps", "bspline", "zernike", "tensor"])
@fuzz_settings()
@given(arg=st.sampled_from(("a", "b", None)), kind=value_kind, pos=position,
       xkind=st.sampled_from(["ok", "ok", "ok", "nan", "inf", "rank1", "str", "huge"]))
def test_bases(which, arg, kind, pos, xkind):
    knots = np.array([0, 0, 0, 0, 0.5, 1, 1, 1, 1.0])
    if which == "bumps":
        kw, cls, dim = dict(a=np.array([[0.0], [0.5]]), b=0.3), s.GaussianBumps, 1
        names = ("centers", "width")
    elif which == "bspline":
        kw, cls, dim = dict(a=knots, b=3), s.BSpline1D, 1
        names = ("knots", "degree")
    elif which == "zernike":
        kw, cls, dim = dict(a=2, b=1.0), s.Zernike, 2
        names = ("max_order", "radius")
    else:
        kw, cls, dim = dict(a=knots, b=knots), None, 2
        names = ("bases",)
    kw = dict(kw)
    if arg is not None:
        kw[arg] = mutate_value(kw[arg], kind, pos)
    before = snapshot(kw)
    x = mutate_value(np.random.default_rng(pos).uniform(-0.2, 1.2, size=(4, dim)), xkind, pos)

    def run():
        if cls is None:
            basis = s.TensorProduct((s.BSpline1D(kw["a"], 3), s.BSpline1D(kw["b"], 3)))
        else:
            basis = cls(**dict(zip(names, (kw["a"], kw["b"]))))
        return basis(x), basis.n_features

    entry = {"bumps": "GaussianBumps", "bspline": "BSpline1D", "zernike": "Zernike",
             "tensor": "TensorProduct"}[which]
    out = exercise(entry, run, names=names + ("knots", "x", "dim"))
    assert_unchanged(before, kw, "arguments")
    if out is not None:
        feats, n_feat = out
        assert np.shape(feats) == np.shape(x)[:-1] + (n_feat,)


@fuzz_settings()
@given(arg=st.sampled_from(("n_bins", "bin_width", "baseline_rate", "coupling", "ensemble",
                            "self_history", "history", "seed", None)),
       kind=value_kind, pos=position)
def test_simulate_network(arg, kind, pos):
    kw = dict(n_bins=30, bin_width=0.01, baseline_rate=np.array([5.0, 10.0]),
              coupling=np.full((2, 2, 1), 0.5), ensemble=np.array([1, 3]),
              self_history=np.full((2, 1), -1.0), history=np.array([1, 2]), seed=0)
    out, kw = run_mutated("simulate_network", s.simulate_network, kw, arg, kind, pos,
                          positional=("n_bins",))
    if out is not None:
        assert out.shape == (int(kw["n_bins"]), 2)
        assert set(np.unique(out)) <= {0.0, 1.0}


# ------------------------------------------------------------------------------------------
# regression tests for bugs the fuzzing found
# ------------------------------------------------------------------------------------------
def test_regression_cmgf_names_nstat_arguments():
    p = ppaf_kw(D)
    args = [Y, p["A"], p["C"], p["Q"], p["m0"], p["P0"]]
    for i, name in [(0, "observations"), (1, "transition_matrix"), (2, "observation_matrix"),
                    (3, "transition_covariance"), (4, "initial_state_mean"),
                    (5, "initial_state_covariance")]:
        bad = list(args)
        bad[i] = -Y if i == 0 else np.full_like(np.asarray(args[i], dtype=float), np.nan)
        with pytest.raises(ValueError, match=name):  # was: "A must be finite", "m0 ..."
            s.cmgf_poisson_filter(*bad)


@pytest.mark.parametrize("bad", [None, "x", np.ones((T, N)) * 1j])
def test_regression_unconvertible_arrays_named(bad):
    p = ppaf_kw(D)
    with pytest.raises(TypeError, match="spikes"):
        s.ppaf_filter(bad, p["A"], p["Q"], p["m0"], p["P0"], C=p["C"])
    if bad is not None:  # features=None means "no covariates"
        with pytest.raises(TypeError, match="features"):
            s.fit_glm(YG, bad, bin_width=0.01)
    with pytest.raises(TypeError, match="grid"):
        s.bayesian_decoder(Y, bad, np.zeros((5, N)))
    with pytest.raises(TypeError, match="coupling"):
        s.simulate_network(5, bin_width=0.01, baseline_rate=[5.0, 5.0], coupling=bad,
                           ensemble=(1, 2), seed=0)


def test_regression_decoders_validate_and_never_return_nan():
    p = ppaf_kw(D)
    with pytest.raises(TypeError, match="m0"):  # was: IndexError
        s.hybrid_filter(Y, np.eye(2), p["A"], p["Q"], None, p["P0"], C=p["C"])
    with pytest.raises(TypeError, match="spikes"):  # was: IndexError
        s.goal_directed_filter("x", p["A"], p["Q"], p["m0"], p["P0"], np.ones(D),
                               target_cov=np.eye(D))
    big = Y.astype(float)
    big[0, 0] = 1e300  # was: "Maximum allowed size exceeded"
    with pytest.raises(ValueError, match="spikes"):
        s.ppaf_filter(big, p["A"], p["Q"], p["m0"], p["P0"], C=p["C"])
    with pytest.raises(FloatingPointError):  # was: a NaN marginal log-likelihood
        s.cmgf_poisson_filter(Y, p["A"], p["C"] * 1e300, p["Q"], p["m0"], p["P0"])
    grid = np.linspace(0, 1, 5)[:, None]
    F = np.zeros((5, N))
    for kw, name in [(dict(level=None), "level"), (dict(level=1.5), "level"),
                     (dict(prior=-np.ones(5)), "prior"),
                     (dict(truth=np.full((T, 1), np.nan)), "truth")]:
        with pytest.raises((TypeError, ValueError), match=name):
            s.bayesian_decoder(Y, grid, F, **kw)
    with pytest.raises(ValueError, match="grid"):  # was: NaN means and maps
        s.bayesian_decoder(Y, np.full((5, 1), np.nan), F)
    states = np.cumsum(np.ones((TG, 1)), 0)
    train = np.random.default_rng(4).poisson(1.0, (TG, N))
    with pytest.raises(ValueError, match="train_states"):  # was: LinAlgError
        s.kalman_decoder(train, np.full((TG, 1), np.nan), Y)
    with pytest.raises(TypeError, match="ridge"):
        s.kalman_decoder(train, states, Y, ridge="1")
    with pytest.raises(ValueError, match="train_spikes"):  # message named "spikes"
        s.kalman_decoder(-train, states, Y)


def test_regression_glm_argument_checks():
    for bad in (None, np.nan, np.inf):  # were: anonymous TypeError / OverflowError
        with pytest.raises((TypeError, ValueError), match="max_iter"):
            s.fit_glm(YG, XG, bin_width=0.01, max_iter=bad)
    with pytest.raises(ValueError, match="counts"):  # "neurons [...] have no spikes"
        s.granger_causality(np.c_[YG, np.zeros(TG)], bin_width=0.01, history=(1, 2))
    with pytest.raises(TypeError, match="basis"):  # was: AttributeError
        s.log_intensity(FIT, "basis")
    with pytest.raises(ValueError, match="x"):  # was: silent NaN
        s.log_intensity(FIT)(np.array([[np.nan]]))
    with pytest.raises(ValueError, match="counts"):  # were: silent NaN / negative sums
        s.history_features(np.array([1.0, np.nan, 2.0]), (1, 2))
    with pytest.raises(ValueError, match="counts"):
        s.history_features(np.array([1.0, -1.0, 2.0]), (1, 2))
    with pytest.raises(ValueError, match="edges"):  # was: "history must ..."
        s.history_features(YG, (0, 1))


def test_regression_spectral_granger_degenerate_data():
    with pytest.raises(ValueError, match="data"):  # was: NaN spectrum off the diagonal
        s.spectral_granger(np.zeros((60, 2)), fs=100.0, order=2)
    with pytest.raises(ValueError, match="data"):  # was: an infinite noise covariance
        s.spectral_granger(np.random.default_rng(0).normal(size=(60, 2)) * 1e300, fs=100.0,
                           order=2)
    with pytest.raises(ValueError, match="data"):  # was: "zero-size array ..."
        s.spectral_granger(np.zeros((0, 2)), fs=100.0, order=2)


def test_regression_time_rescaling_argument_checks():
    with pytest.raises(ValueError, match="seed"):  # was: "expected non-negative integer"
        s.time_rescaling(YG[:, 0], np.full(TG, 0.6), seed=-1)
    with pytest.raises(TypeError, match="seed"):  # was: list concatenation error
        s.time_rescaling_fit(FIT, YG, seed=[1])
    with pytest.raises(TypeError, match="fit"):
        s.time_rescaling_fit("fit", YG)
    with pytest.raises(ValueError, match="counts"):  # the KS message named no argument
        s.time_rescaling_fit(FIT, np.zeros_like(YG))


def test_regression_bases_argument_checks():
    with pytest.raises(TypeError, match="width"):  # was: float() TypeError
        s.GaussianBumps(np.zeros((1, 1)), None)
    with pytest.raises(TypeError, match="centers"):
        s.GaussianBumps("c", 1.0)
    with pytest.raises(ValueError, match="x"):  # was: silent NaN features
        s.GaussianBumps(np.zeros((1, 1)), 1.0)(np.array([[np.nan]]))
    with pytest.raises(ValueError, match="x"):  # was: infinite features
        s.Zernike(2)(np.array([[1e300, 0.0]]))
    # was: OverflowError squaring a huge width
    assert np.isfinite(s.GaussianBumps(np.zeros((1, 1)), 1e300)(np.ones((2, 1)))).all()
