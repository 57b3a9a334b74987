"""Property-based fuzzing of the Poisson LDS entry points (issue 9, part B).

Every case is a small valid input with one mutation (see ``fuzz_mutations``); the call must
return finite results of the documented shapes or raise a ValueError/TypeError naming an
argument (``fuzz_harness.exercise``), and must not modify its inputs. Accepted data all have
the shape (9, 3) (or a few fixed lengths for the cheap calls) so compiled code is reused.
"""

from __future__ import annotations

import numpy as np
import pytest
from fuzz_harness import exercise, fuzz_settings
from fuzz_mutations import (
    ALL_COUNT,
    assert_unchanged,
    mutate,
    position,
    snapshot,
)
from hypothesis import given
from hypothesis import strategies as st

import spikessm as s

pytestmark = pytest.mark.fuzz

T, N, D = 9, 3, 1
DT = 0.1
Y = np.random.default_rng(0).poisson(1.5, (T, N)).astype(np.int64)
G = np.random.default_rng(1).normal(size=(T, 2))
COUNT_NAMES = ("spikes", "observations", "counts")


def base_params(kind: str = "ok", n_gaussian: int = 0):
    kw = dict(A=[[0.9]], Q=[[0.1]], C=[[0.5], [-0.3], [0.2]], d=np.log([5.0, 10.0, 2.0]),
              bin_width=DT)
    if kind == "hot":      # rates overflow float64 (exp(800))
        kw["d"] = np.array([800.0, 0.0, 0.0])
    elif kind == "unstable":
        kw["A"] = [[3.0]]
    elif kind == "bigC":
        kw["C"] = [[50.0], [-50.0], [30.0]]
    elif kind == "tinyQ":
        kw["Q"] = [[1e-12]]
    elif kind == "silent":
        kw["d"] = np.array([-700.0, -700.0, -700.0])
    if n_gaussian:
        kw.update(Cg=np.ones((n_gaussian, D)), dg=np.zeros(n_gaussian), R=np.eye(n_gaussian))
    return s.make_plds_params(**kw)


PARAM_KINDS = ("ok", "ok", "ok", "hot", "unstable", "bigC", "tinyQ", "silent", "none", "dict",
               "wrong_dim")


def params_of(kind, n_gaussian=0):
    if kind == "none":
        return None
    if kind == "dict":
        return base_params(n_gaussian=n_gaussian).as_dict()
    if kind == "wrong_dim":
        return s.make_plds_params(A=np.eye(2) * 0.5, Q=np.eye(2), C=np.ones((N, 2)),
                                  bin_width=DT)
    return base_params(kind, n_gaussian)


def check_posterior(post, lengths, d=D, n=N):
    assert len(post.means) == len(lengths)
    for k, L in enumerate(lengths):
        assert post.means[k].shape == (L, d)
        assert post.covs[k].shape == (L, d, d)
        assert post.rates[k].shape == (L, n)
        assert np.all(post.rates[k] >= 0)


def trial_lengths(spikes):
    if isinstance(spikes, list):
        return [np.asarray(t).shape[0] if np.ndim(t) > 1 else len(t) for t in spikes]
    a = np.asarray(spikes)
    return [a.shape[1]] * a.shape[0] if a.ndim == 3 else [a.shape[0]]


# ------------------------------------------------------------------------------------------
# make_plds_params
# ------------------------------------------------------------------------------------------
PARAM_ARGS = ("A", "Q", "C", "d", "b", "m0", "P0", "D", "H", "Cg", "R", "bin_width")
ARG_MUTATIONS = ("ok", "nan", "inf", "huge", "str", "none", "complex", "object_str", "list",
                 "rank1", "rank4", "transpose", "empty_T", "neg", "zeros", "bool", "scalar")


@fuzz_settings()
@given(d=st.sampled_from([1, 2]), n=st.sampled_from([1, 3]), arg=st.sampled_from(PARAM_ARGS),
       kind=st.sampled_from(ARG_MUTATIONS), pos=position, hybrid=st.booleans())
def test_make_plds_params(d, n, arg, kind, pos, hybrid):
    rng = np.random.default_rng(pos)
    kw = dict(A=0.5 * np.eye(d), Q=np.eye(d) * 0.2, C=rng.normal(size=(n, d)),
              d=np.zeros(n), b=np.zeros(d), m0=np.zeros(d), P0=np.eye(d),
              D=np.zeros((n, 1)), H=np.zeros((n, 2)), bin_width=0.01)
    if hybrid:
        kw.update(Cg=np.ones((2, d)), dg=np.zeros(2), R=np.eye(2))
    if arg == "bin_width":
        kw[arg] = {"ok": 0.01, "nan": np.nan, "inf": np.inf, "huge": 1e300, "str": "0.1",
                   "none": None, "complex": 0.1j, "neg": -0.1, "zeros": 0.0, "bool": True,
                   }.get(kind, 0.02)
    elif arg in kw:
        kw[arg] = mutate(kind, kw[arg], pos)
    else:
        kw[arg] = mutate(kind, np.eye(2), pos)
    before = snapshot(kw)
    out = exercise("make_plds_params", s.make_plds_params, names=PARAM_ARGS, **kw)
    assert_unchanged(before, kw, "arguments")
    if out is not None:
        k = out.state_dim
        assert out.A.shape == (k, k) and out.Q.shape == (k, k)
        assert out.C.shape[1] == k and out.d.shape == (out.n_neurons,)
        assert np.all(np.linalg.eigvalsh(out.Q) > 0)
        for f in ("A", "Q", "C", "d", "m0", "P0"):
            assert getattr(out, f).dtype == np.float64
        if isinstance(kw.get(arg), np.ndarray) and arg != "bin_width":
            # the params hold copies: changing the input afterwards leaves them intact
            src = kw[arg]
            if src.dtype.kind == "f" and src.size:
                saved = getattr(out, arg).copy()
                src.flat[0] += 1.0
                assert np.array_equal(getattr(out, arg), saved)
                src.flat[0] -= 1.0


# ------------------------------------------------------------------------------------------
# PoissonLDS: construction, sample, fit, smooth / log_prob
# ------------------------------------------------------------------------------------------
@fuzz_settings()
@given(pkind=st.sampled_from(PARAM_KINDS),
       n_steps=st.sampled_from([1, 2, 9, 9, 9, 9, 0, -1, 2.5, True, "9", None, np.int64(2)]),
       n_trials=st.sampled_from([None] * 4 + [1, 3, 3, 0, -2, 1.5, "2"]),
       seed=st.sampled_from([0] * 4 + [1, 7, -1, 1.5, None, np.int32(3)]),
       state_dim=st.sampled_from([1] * 8 + [0, 1.0, "1", True]),
       bin_width=st.sampled_from([DT] * 8 + [0.0, -1.0, np.nan, np.inf, "0.1", None]))
def test_plds_sample(pkind, n_steps, n_trials, seed, state_dim, bin_width):
    params = params_of(pkind)

    def run():
        model = s.PoissonLDS(state_dim, bin_width)
        return model.sample(params, n_steps, n_trials=n_trials, seed=seed)

    out = exercise("PoissonLDS.sample", run,
                   names=("params", "n_steps", "n_trials", "seed", "state_dim", "bin_width"))
    if out is not None:
        x, y, g = out
        lead = () if n_trials is None else (int(n_trials),)
        assert x.shape == lead + (int(n_steps), params.state_dim)
        assert y.shape == lead + (int(n_steps), params.n_neurons)
        assert np.all(y >= 0) and np.all(y == np.round(y))
        again = s.PoissonLDS(state_dim, bin_width).sample(params, n_steps, n_trials=n_trials,
                                                          seed=seed)
        assert np.array_equal(again[1], y)   # seeded: reproducible


FIT_SPIKES = ("ok", "ok", "ok", "ok", "float32", "bool", "nan", "allnan_col", "big",
              "neg", "frac", "inf", "none", "str", "complex", "object_str", "empty_T",
              "empty_N", "rank4", "scalar", "ragged_N")


@fuzz_settings()
@given(kind=st.sampled_from(FIT_SPIKES), pos=position,
       max_iter=st.sampled_from([1] * 6 + [2, 0, -1, 1.5, None]),
       init=st.sampled_from(["random"] * 6 + ["log_empirical_rate", "bogus", None]),
       seed=st.sampled_from([0] * 6 + [3, -1, 2.5]),
       ridge=st.sampled_from([0.0] * 6 + [1.0, -1.0, np.nan, np.inf, None]),
       tol=st.sampled_from([1e-6] * 6 + [-1.0, np.nan, "1e-6"]),
       warm=st.sampled_from(["none"] * 6 + ["params", "bad_params"]))
def test_plds_fit(kind, pos, max_iter, init, seed, ridge, tol, warm):
    spikes = mutate(kind, Y, pos)
    params = {"none": None, "params": base_params(), "bad_params": params_of("wrong_dim")}[warm]
    before = snapshot(spikes)
    model = s.PoissonLDS(D, DT)
    out = exercise("PoissonLDS.fit", model.fit, spikes, params=params, max_iter=max_iter,
                   init=init, seed=seed, ridge_lambda=ridge, tol=tol, progress=False,
                   names=("spikes", "max_iter", "init", "seed", "ridge_lambda", "tol",
                          "params"))
    assert_unchanged(before, spikes, "spikes")
    if out is not None:
        p = out.params
        assert p.A.shape == (D, D) and p.C.shape == (N, D) and p.d.shape == (N,)
        assert np.isfinite(out.log_likelihood)
        assert 1 <= out.n_iter <= max_iter
        assert np.all(np.linalg.eigvalsh(p.Q) > 0)


SMOOTH_SPIKES = ALL_COUNT + ("ragged_T", "allnan", "rank1")


@pytest.mark.parametrize("what", ["smooth", "log_prob"])
@fuzz_settings()
@given(kind=st.sampled_from(SMOOTH_SPIKES), pos=position, t_len=st.sampled_from([1, 9, 9]),
       pkind=st.sampled_from(PARAM_KINDS), newton=st.sampled_from([50, 50, 1, 0, -3, 2.5]))
def test_plds_smooth_log_prob(what, kind, pos, t_len, pkind, newton):
    spikes = mutate(kind, Y[:t_len], pos)
    params = params_of(pkind)
    before, pbefore = snapshot(spikes), snapshot(params)
    model = s.PoissonLDS(D, DT)
    if what == "smooth":
        out = exercise("PoissonLDS.smooth", model.smooth, params, spikes, newton_iters=newton,
                       names=COUNT_NAMES + ("params", "newton_iters"),
                       also=(FloatingPointError,))
    else:
        out = exercise("PoissonLDS.log_prob", model.log_prob, params, spikes,
                       names=COUNT_NAMES + ("params",), also=(FloatingPointError,))
    assert_unchanged(before, spikes, "spikes")
    assert_unchanged(pbefore, params, "params")
    if out is not None and what == "smooth":
        check_posterior(out, trial_lengths(spikes))
    elif out is not None:
        assert isinstance(out, float)


# ------------------------------------------------------------------------------------------
# point-process / hybrid EM (functional API)
# ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("hybrid", [False, True])
@fuzz_settings()
@given(kind=st.sampled_from(FIT_SPIKES), pos=position,
       gkind=st.sampled_from(["ok"] * 8 + ["nan", "inf", "none", "str", "empty_T",
                                           "rank1", "allnan", "huge", "complex", "ragged_T"]),
       state_dim=st.sampled_from([1] * 6 + [0, 1.5, "1"]),
       n_iter=st.sampled_from([1] * 6 + [0, -1]),
       init=st.sampled_from(["random"] * 6 + ["bogus"]),
       bin_width=st.sampled_from([1.0] * 6 + [0.0, np.nan]),
       cov=st.sampled_from(["diagonal"] * 6 + ["spherical", None]))
def test_fit_point_process_and_hybrid_em(hybrid, kind, pos, gkind, state_dim, n_iter, init,
                                         bin_width, cov):
    spikes = mutate(kind, Y, pos)
    names = ("observations", "state_dim", "n_iter", "init", "bin_width",
             "gaussian_covariance")
    before = snapshot(spikes)
    if hybrid:
        gauss = mutate(gkind, G, pos)
        gbefore = snapshot(gauss)
        out = exercise("fit_hybrid_em", s.fit_hybrid_em, spikes, gauss, state_dim,
                       n_iter=n_iter, init=init, bin_width=bin_width, gaussian_covariance=cov,
                       names=names + ("poisson_observations", "gaussian"))
        assert_unchanged(gbefore, gauss, "gaussian_observations")
    else:
        out = exercise("fit_point_process_em", s.fit_point_process_em, spikes, state_dim,
                       n_iter=n_iter, init=init, bin_width=bin_width, names=names)
    assert_unchanged(before, spikes, "observations")
    if out is not None:
        p = out.params
        assert p.C.shape == (N, 1) and p.A.shape == (1, 1)
        if hybrid:
            assert p.Cg.shape == (2, 1)


BEST_SPIKES = ("ok", "ok", "ok", "ok", "float32", "nan", "neg", "frac", "inf",
               "none", "str", "empty_T", "rank4", "complex", "ragged_N")


@pytest.mark.parametrize("hybrid", [False, True])
@fuzz_settings()
@given(kind=st.sampled_from(BEST_SPIKES), pos=position,
       frac=st.sampled_from([0.2, 0.2, 0.2, 0.0, 1.0, -0.1, np.nan, "0.2"]),
       holdout=st.sampled_from(["time", "time", "time", "trials", "bogus"]),
       n_restarts=st.sampled_from([2, 2, 2, 0, 1.5]),
       n_samples=st.sampled_from([10, 10, 0, -5]),
       gkind=st.sampled_from(["ok", "ok", "ok", "inf", "none", "empty_T", "str"]))
def test_fit_em_best_of(hybrid, kind, pos, frac, holdout, n_restarts, n_samples, gkind):
    spikes = mutate(kind, Y, pos)
    before = snapshot(spikes)
    kw = dict(n_restarts=n_restarts, holdout_fraction=frac, holdout=holdout, n_iter=1,
              n_samples=n_samples, seed=0)
    names = ("observations", "n_restarts", "holdout_fraction", "holdout", "n_samples")
    if hybrid:
        gauss = mutate(gkind, G, pos)
        out = exercise("fit_hybrid_em_best_of", s.fit_hybrid_em_best_of, spikes, gauss, 1,
                       names=names + ("poisson_observations", "gaussian"),
                       also=(FloatingPointError,), **kw)
    else:
        out = exercise("fit_point_process_em_best_of", s.fit_point_process_em_best_of,
                       spikes, 1, names=names, also=(FloatingPointError,), **kw)
    assert_unchanged(before, spikes, "observations")
    if out is not None:
        assert len(out.all_results) == n_restarts == len(out.all_predictive_lls)
        assert out.best_result.params.C.shape == (N, 1)
        assert out.best_predictive_ll == max(out.all_predictive_lls)


@fuzz_settings()
@given(dims=st.sampled_from([[1], [1], [1], [], [0], [1.5], "1", None, [True], 1, ["1"],
                             np.array([1])]),
       kind=st.sampled_from(("ok", "ok", "ok", "float32", "neg", "str", "empty_T")),
       pos=position)
def test_select_state_dim(dims, kind, pos):
    spikes = mutate(kind, Y, pos)
    kw = dict(n_restarts=2, n_iter=1, n_samples=10)
    out = exercise("select_state_dim", s.select_state_dim, spikes, dims,
                   names=("state_dims", "observations", "spikes"),
                   also=(FloatingPointError,), **kw)
    if out is not None:
        assert out.best_state_dim in list(dims)


# ------------------------------------------------------------------------------------------
# predictive scores, SMC, co-smoothing
# ------------------------------------------------------------------------------------------
PRED_KINDS = ("ok", "ok", "ok", "float32", "list", "nan", "allnan_col", "big", "neg", "frac",
              "inf", "none", "str", "complex", "empty_T", "empty_N", "rank4", "ragged_N",
              "ragged_T")


@pytest.mark.parametrize("hybrid", [False, True])
@fuzz_settings()
@given(kind=st.sampled_from(PRED_KINDS), pos=position, t_len=st.sampled_from([9]),
       pkind=st.sampled_from(PARAM_KINDS),
       train=st.sampled_from(["none", "ok", "bad"]),
       score_from=st.sampled_from([None, None, 1, 0, -1, 100, 1.5]),
       n_samples=st.sampled_from([10, 10, 1, 0, -1]),
       gkind=st.sampled_from(["ok", "ok", "nan", "inf", "empty_T", "none"]))
def test_predictive_ll(hybrid, kind, pos, t_len, pkind, train, score_from, n_samples, gkind):
    spikes = mutate(kind, Y[:t_len], pos)
    train_spikes = {"none": None, "ok": Y, "bad": mutate("neg", Y, pos)}[train]
    before = snapshot(spikes)
    names = ("spikes", "train_spikes", "score_from", "n_samples", "params", "gaussian")
    if hybrid:
        params = params_of(pkind, n_gaussian=2)
        gauss = mutate(gkind, G[:t_len], pos)
        tg = None if train_spikes is None else G
        out = exercise("hybrid_predictive_ll", s.hybrid_predictive_ll, params, spikes, gauss,
                       train_spikes=train_spikes, train_gaussian=tg, score_from=score_from,
                       n_samples=n_samples, names=names + ("train_gaussian",),
                       also=(FloatingPointError,), allow_nonfinite=PRED_NONFINITE)
    else:
        params = params_of(pkind)
        out = exercise("point_process_predictive_ll", s.point_process_predictive_ll, params,
                       spikes, train_spikes=train_spikes, score_from=score_from,
                       n_samples=n_samples, names=names, also=(FloatingPointError,),
                       allow_nonfinite=PRED_NONFINITE)
    assert_unchanged(before, spikes, "spikes")
    if out is not None:
        check_predictive(out, spikes)


def check_predictive(out, spikes):
    """NaN in per_timestep marks steps not scored (documented); every scored step is finite."""
    assert np.isfinite(out.total) and out.total <= 1e-9 or out.gaussian != 0.0
    lengths = trial_lengths(spikes)
    per = np.atleast_2d(out.per_timestep)
    # (K, T_max); with train_spikes the training segments come first
    assert per.shape[0] == len(lengths) and per.shape[1] >= max(lengths)
    assert np.sum(np.isfinite(per)) == out.n_scored
    assert np.isclose(np.nansum(per), out.total)
    assert out.per_trial.shape == (len(lengths),)


PRED_NONFINITE = ("per_timestep", "min_ess")


@fuzz_settings()
@given(kind=st.sampled_from(PRED_KINDS + ("allnan", "huge", "tiny")), pos=position,
       tkind=st.sampled_from(("ok", "ok", "ok", "nan", "neg", "frac", "empty_T", "empty_N",
                              "none", "allnan_col", "allnan", "big", "zeros", "ragged_T")),
       bin_width=st.sampled_from([DT, DT, 1.0, 0.0, -1.0, np.nan, np.inf, None, "1", 1e-300]),
       t_len=st.sampled_from([1, 2, 9]))
def test_constant_rate_predictive_ll(kind, pos, tkind, bin_width, t_len):
    test = mutate(kind, Y[:t_len], pos)
    train = mutate(tkind, Y, pos + 1)
    before, tbefore = snapshot(test), snapshot(train)
    out = exercise("constant_rate_predictive_ll", s.constant_rate_predictive_ll, train, test,
                   bin_width, names=("train_spikes", "test_spikes", "bin_width"),
                   allow_nonfinite=PRED_NONFINITE)
    assert_unchanged(before, test, "test_spikes")
    assert_unchanged(tbefore, train, "train_spikes")
    if out is not None:
        check_predictive(out, test)


@fuzz_settings()
@given(kind=st.sampled_from(PRED_KINDS), pos=position, pkind=st.sampled_from(PARAM_KINDS),
       n_particles=st.sampled_from([8, 8, 8, 1, 0, -1, 2.5]),
       n_repeats=st.sampled_from([2, 2, 1, 0]),
       ess=st.sampled_from([0.5, 0.5, 0.0, 1.0, -0.1, 1.5, np.nan]),
       score_from=st.sampled_from([None, None, 2, -1, 50]),
       gauss=st.booleans())
def test_smc_log_likelihood(kind, pos, pkind, n_particles, n_repeats, ess, score_from, gauss):
    spikes = mutate(kind, Y, pos)
    params = params_of(pkind, n_gaussian=2 if gauss else 0)
    before = snapshot(spikes)
    out = exercise("smc_log_likelihood", s.smc_log_likelihood, params, spikes,
                   G if gauss else None, n_particles=n_particles, n_repeats=n_repeats,
                   ess_threshold=ess, score_from=score_from,
                   names=("spikes", "params", "n_particles", "n_repeats", "ess_threshold",
                          "score_from", "gaussian"),
                   also=(FloatingPointError,))
    assert_unchanged(before, spikes, "spikes")
    if out is not None:
        assert np.isfinite(out.total) and out.n_particles == n_particles


@fuzz_settings()
@given(held=st.sampled_from([[0], [0], [2], [0, 1], [], [3], [-1], [0, 0], [0.5], "0", None,
                             [0, 1, 2], np.array([1]), 0, [True]]),
       kind=st.sampled_from(("ok", "ok", "ok", "nan", "neg", "frac", "inf", "empty_T",
                             "empty_N", "none", "ragged_N", "ragged_T", "allnan_col")),
       tkind=st.sampled_from(("ok", "ok", "neg", "none", "empty_N")), pos=position,
       pkind=st.sampled_from(PARAM_KINDS))
def test_co_smoothing(held, kind, pos, tkind, pkind):
    test = mutate(kind, Y, pos)
    train = mutate(tkind, Y, pos)
    params = params_of(pkind)
    before, hbefore = snapshot(test), snapshot(held)
    out = exercise("co_smoothing", s.co_smoothing, params, train, test, held,
                   names=("held_out", "test_spikes", "train_spikes", "params", "spikes"),
                   also=(FloatingPointError,))
    assert_unchanged(before, test, "test_spikes")
    assert_unchanged(hbefore, held, "held_out")
    if out is not None:
        assert np.isfinite(out.log_likelihood) and np.isfinite(out.bits_per_spike)


# ------------------------------------------------------------------------------------------
# regression tests for bugs the fuzzing found
# ------------------------------------------------------------------------------------------
def test_regression_sample_overflowing_rates_names_params():
    # was: NumPy's "lam value too large" (names no argument)
    with pytest.raises(ValueError, match="params"):
        s.PoissonLDS(D, DT).sample(base_params("hot"), 3, seed=0)


def test_regression_smooth_rejects_non_params_and_nonfinite_posterior():
    model = s.PoissonLDS(D, DT)
    with pytest.raises(TypeError, match="params"):  # was: AttributeError on None
        model.smooth(None, Y)
    with pytest.raises(FloatingPointError, match="params"):  # was: silent NaN posterior
        model.smooth(base_params("hot"), Y)


def test_regression_nstat_fits_name_their_arguments():
    # messages named "spikes" / "max_iter" (PoissonLDS.fit's names), not the arguments
    with pytest.raises(ValueError, match="observations"):
        s.fit_point_process_em(-np.ones((T, N)), 1, n_iter=1)
    with pytest.raises(ValueError, match="n_iter"):
        s.fit_point_process_em(Y, 1, n_iter=0)
    with pytest.raises(ValueError, match="poisson_observations"):
        s.fit_hybrid_em(-np.ones((T, N)), G, 1, n_iter=1)
    with pytest.raises(ValueError, match="gaussian_observations"):  # was: a pure PLDS fit
        s.fit_hybrid_em(Y, None, 1, n_iter=1)
    with pytest.raises(ValueError, match="observations"):
        s.fit_point_process_em_best_of(-np.ones((T, N)), 1, n_restarts=2, n_iter=1)
    with pytest.raises(ValueError, match="n_samples"):  # checked before fitting
        s.fit_point_process_em_best_of(Y, 1, n_restarts=2, n_iter=1, n_samples=0)


def test_regression_em_options_type_checked():
    # was: NumPy's "ufunc 'isfinite' not supported" for tol=None
    with pytest.raises(TypeError, match="tol"):
        s.PoissonLDS(D, DT).fit(Y, tol=None, max_iter=1, init="random", progress=False)
    with pytest.raises(TypeError, match="ridge_lambda"):
        s.PoissonLDS(D, DT).fit(Y, ridge_lambda="1", max_iter=1, init="random",
                                progress=False)


@pytest.mark.parametrize("dims", [[1.5], ["1"], None, "1", [True]])
def test_regression_select_state_dim_rejects_non_integers(dims):
    # was: int() silently truncated 1.5 and parsed "1"; None gave an anonymous TypeError
    with pytest.raises((TypeError, ValueError), match="state_dims"):
        s.select_state_dim(Y, dims, n_restarts=2, n_iter=1, n_samples=10)


def test_regression_co_smoothing_held_out_and_overflow():
    p = base_params()
    for bad in ([0.5], "0", None, [True]):  # [0.5] was silently truncated to neuron 0
        with pytest.raises(TypeError, match="held_out"):
            s.co_smoothing(p, Y, Y, bad)
    with pytest.raises(FloatingPointError):  # was: NaN log-likelihood and bits/spike
        s.co_smoothing(base_params("hot"), Y, Y, [0])


def test_regression_absurd_counts_rejected():
    y = Y.astype(float)
    y[0, 0] = 1e300  # a whole number, but not a spike count: overflowed the fits
    with pytest.raises(ValueError, match="spikes"):
        s.PoissonLDS(D, DT).smooth(base_params(), y)
