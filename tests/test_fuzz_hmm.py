"""Property-based fuzzing of the Poisson hidden Markov model (issue 9).

Every case is a small valid input with one argument mutated (``fuzz_mutations``); the call
must return finite results of the documented shapes or raise a ValueError/TypeError naming
an argument (``fuzz_harness.exercise``; FloatingPointError where documented), and must not
modify its inputs. Accepted data are (9, 3) counts (or two such trials) with K = 2 states,
so the compiled forward-backward and EM code is reused across cases.
"""

from __future__ import annotations

import numpy as np
import pytest
from fuzz_harness import exercise, fuzz_settings
from fuzz_mutations import (
    OPAQUE,
    assert_unchanged,
    mutate,
    one_mutated,
    position,
    snapshot,
)
from hypothesis import given
from hypothesis import strategies as st

import spikessm as s
from spikessm.models.poisson_hmm import make_params as hmm_params

pytestmark = pytest.mark.fuzz

T, C, K = 9, 3, 2
DT = 0.1
MODEL = s.PoissonHMM(K, DT)
TRUTH = hmm_params([0.5, 0.5], [[0.9, 0.1], [0.2, 0.8]], [[5.0, 10.0, 2.0], [20.0, 1.0, 8.0]])
Y = MODEL.sample(TRUTH, 1, T, seed=1)[1][0].astype(np.int64)
Y2 = MODEL.sample(TRUTH, 2, T, seed=2)[1]          # (2, 9, 3): train / test sets
Y3 = MODEL.sample(TRUTH, 2, T, seed=3)[1]
DATA_NAMES = ("data",)
pick = st.integers(0, 60)



# counts mutations; "batch" = two equal-length trials
DATA_KINDS = ("ok", "float32", "int32", "uint8", "bool", "list", "nan", "allnan_col",
              "allnan", "neg", "frac", "big", "huge", "tiny", "zeros", "inf", "neg_inf", "none",
              "str", "complex", "object_str", "empty_T", "empty_N", "rank4", "scalar",
              "ragged_N", "ragged_T", "batch")
MUST_REJECT = ("neg", "frac", "huge", "tiny", "inf", "neg_inf", "none", "str", "complex",
               "object_str", "empty_T", "empty_N", "rank4", "scalar", "ragged_N",
               "allnan_col", "allnan")


def data_of(kind, pos, base=Y):
    if kind == "batch":
        return np.stack([base, base[::-1]])
    return mutate(kind, base, pos)


def n_trials_of(data):
    if isinstance(data, list):
        return len(data)
    a = np.asarray(data)
    return a.shape[0] if a.ndim == 3 else 1


def lengths_of(data):
    if isinstance(data, list):
        return [np.shape(t)[0] for t in data]
    a = np.asarray(data)
    return [a.shape[1]] * a.shape[0] if a.ndim == 3 else [a.shape[0]]


PARAM_KINDS = ("ok", "huge_rates", "zero_rates", "sticky", "none", "dict",
               "wrong_K", "wrong_C", "opaque", "raw_nan")


def params_of(kind):
    if kind == "ok":
        return TRUTH
    if kind == "none":
        return None
    if kind == "opaque":
        return OPAQUE
    if kind == "dict":
        return {"initial_probs": TRUTH.initial_probs, "transition_matrix":
                TRUTH.transition_matrix, "rates": TRUTH.rates}
    if kind == "wrong_K":
        return hmm_params([1.0], [[1.0]], [[1.0, 2.0, 3.0]])
    if kind == "wrong_C":
        return hmm_params([0.5, 0.5], [[0.9, 0.1], [0.2, 0.8]], np.ones((2, 2)))
    if kind == "zero_rates":
        return hmm_params([0.5, 0.5], TRUTH.transition_matrix, np.zeros((2, 3)))
    if kind == "sticky":
        return hmm_params([1.0, 0.0], np.eye(2), TRUTH.rates)
    if kind == "huge_rates":
        return hmm_params([0.5, 0.5], TRUTH.transition_matrix, np.full((2, 3), 1e300))
    # parameters built without make_params: the dataclass must validate them itself
    rates = TRUTH.rates.copy()
    rates[0, 0] = np.nan
    return lambda: s.PoissonHMMParams(TRUTH.initial_probs, TRUTH.transition_matrix, rates)


def resolve(p):
    """Parameters built inside the exercised call (building them may be what fails)."""
    return p() if callable(p) else p


# ------------------------------------------------------------------------------------------
# construction: PoissonHMM, PoissonHMMParams / make_params, transition_matrix_from_rates
# ------------------------------------------------------------------------------------------
CTOR_OPTS = {
    "n_states": [1, 3, 0, -1, 1.5, True, "2", None, np.int64(2)],
    "dt": [1.0, 0.0, -0.1, np.nan, np.inf, "0.1", None, True, 1e-300, 1e300],
    "transition_mask": [np.array([[True, True], [False, True]]), np.zeros((2, 2), bool),
                        np.ones((2, 2)), np.ones((3, 3), bool), "x", [[True, False]],
                        np.array([[True, False], [False, True]])],
    "initial_mask": [np.array([True, False]), np.zeros(2, bool), np.ones(2), "x", [True]],
    "transition_prior": [2.0, 0.5, np.nan, np.inf, "2", np.full((2, 2), 3.0), np.ones(3),
                         2.0 + 1j, np.array([2.0 + 1j]), OPAQUE, -1.0],
    "initial_prior": [1.0, 0.0, np.nan, "1", np.ones(2) * 2, np.ones(5), 1j],
    "rate_prior": [(2.0, 1.0), (0.5, 1.0), (2.0, -1.0), (np.nan, 1.0), 2.0, "ab", None,
                   (2.0, 1.0, 3.0), (np.ones((2, 3)) * 2, 0.0), (np.ones(4) * 2, 0.0),
                   (2.0 + 1j, 1.0), (OPAQUE, 1.0)],
}


@fuzz_settings()
@given(arg=st.sampled_from([None] + list(CTOR_OPTS)), k=pick)
def test_model_constructor(arg, k):
    kw = one_mutated(dict(n_states=2, dt=DT), CTOR_OPTS, arg, k)
    before = snapshot(kw)
    out = exercise("PoissonHMM", s.PoissonHMM, names=tuple(CTOR_OPTS), **kw)
    assert_unchanged(before, kw, "arguments")
    value = kw.get(arg)
    if arg in ("transition_prior", "initial_prior", "rate_prior") and "j" in repr(value):
        assert out is None, f"complex {arg} accepted"
    if out is not None:
        Kn = out.n_states
        assert isinstance(Kn, int) and Kn >= 1 and np.isfinite(out.dt) and out.dt > 0
        assert out.transition_mask.shape == (Kn, Kn) and out.transition_mask.dtype == bool
        assert out.transition_prior.shape == (Kn, Kn) and np.all(out.transition_prior >= 1)
        assert "PoissonHMM(" in repr(out)


PARAM_ARGS = ("initial_probs", "transition_matrix", "rates")
PARAM_MUTATIONS = ("ok", "ok", "nan", "inf", "huge", "str", "none", "complex", "object_str",
                   "list", "rank1", "rank4", "transpose", "empty_T", "neg", "zeros", "bool",
                   "scalar", "tiny", "frac")


@pytest.mark.parametrize("how", ["make_params", "PoissonHMMParams"])
@fuzz_settings()
@given(arg=st.sampled_from(PARAM_ARGS), kind=st.sampled_from(PARAM_MUTATIONS), pos=position,
       n=st.sampled_from([1, 2, 3]))
def test_params_construction(how, arg, kind, pos, n):
    rng = np.random.default_rng(pos)
    A = rng.dirichlet(np.ones(n), size=n)
    kw = dict(initial_probs=np.full(n, 1.0 / n), transition_matrix=A,
              rates=rng.gamma(2.0, 5.0, size=(n, C)))
    kw[arg] = mutate(kind, kw[arg], pos)
    before = snapshot(kw)
    fn = hmm_params if how == "make_params" else s.PoissonHMMParams
    out = exercise("poisson_hmm.make_params" if how == "make_params" else how, fn,
                   names=PARAM_ARGS, **kw)
    assert_unchanged(before, kw, "arguments")
    if kind in ("nan", "inf", "str", "none", "complex", "object_str", "rank4", "empty_T",
                "scalar", "neg"):
        assert out is None, f"{arg} {kind} accepted"
    if out is not None:
        Kn = out.n_states
        assert out.initial_probs.shape == (Kn,) and out.transition_matrix.shape == (Kn, Kn)
        assert out.rates.ndim == 2 and np.all(out.rates >= 0)
        assert abs(out.initial_probs.sum() - 1) < 1e-8
        assert np.allclose(out.transition_matrix.sum(axis=1), 1, atol=1e-8)
        for f in PARAM_ARGS:
            assert getattr(out, f).dtype == np.float64
        src = kw[arg]
        if isinstance(src, np.ndarray) and src.dtype == np.float64 and src.size:
            saved = getattr(out, arg).copy()
            src.flat[0] += 1.0   # the params hold copies
            assert np.array_equal(getattr(out, arg), saved)
            src.flat[0] -= 1.0


@fuzz_settings()
@given(kind=st.sampled_from(("ok",) * 4 + PARAM_MUTATIONS), pos=position,
       dt=st.sampled_from([0.01] * 6 + [0.0, -1.0, np.nan, np.inf, "0.1", None, True, 10.0,
                                        np.float32(0.01), np.array(0.01), [0.01]]))
def test_transition_matrix_from_rates(kind, pos, dt):
    rates = mutate(kind, np.array([[0.0, 2.0, 1.0], [3.0, 0.0, 0.5], [1.0, 1.0, 0.0]]), pos)
    before = snapshot(rates)
    out = exercise("transition_matrix_from_rates", s.transition_matrix_from_rates, rates, dt,
                   names=("rates_hz", "dt"))
    assert_unchanged(before, rates, "rates_hz")
    if isinstance(dt, (bool, str)) or dt is None:
        assert out is None, f"dt={dt!r} accepted"
    if out is not None:
        assert out.shape[0] == out.shape[1] and np.all(out >= 0)
        assert np.allclose(out.sum(axis=1), 1.0)


# ------------------------------------------------------------------------------------------
# random_params, sample
# ------------------------------------------------------------------------------------------
SEEDS = (3, -1, 1.5, "1", None, np.int32(4), True, 2**70)
RP_OPTS = {"seed": SEEDS, "data": DATA_KINDS, "n_channels": [None, 1, 0, -1, 1.5, "3", True],
           "mean_rate": [1e-3, 0.0, -1.0, np.nan, np.inf, "10", True, 1e300]}


@fuzz_settings()
@given(arg=st.sampled_from([None] + list(RP_OPTS)), k=pick, pos=position,
       with_data=st.booleans())
def test_random_params(arg, k, pos, with_data):
    kw = one_mutated(dict(seed=0, data="ok" if with_data else "absent", n_channels=None
                          if with_data else C, mean_rate=None if with_data else 10.0),
                     RP_OPTS, arg, k)
    data = None if kw["data"] == "absent" else data_of(kw["data"], pos)
    before = snapshot(data)
    out = exercise("PoissonHMM.random_params", MODEL.random_params, kw["seed"], data,
                   n_channels=kw["n_channels"], mean_rate=kw["mean_rate"],
                   names=("seed", "data", "n_channels", "mean_rate"))
    assert_unchanged(before, data, "data")
    if arg == "seed" and not isinstance(kw["seed"], (int, np.integer)):
        assert out is None
    if out is not None:
        assert out.n_states == K and np.all(np.isfinite(out.rates))
        again = MODEL.random_params(kw["seed"], data, n_channels=kw["n_channels"],
                                    mean_rate=kw["mean_rate"])
        assert np.array_equal(again.rates, out.rates)   # seeded


SAMPLE_OPTS = {"params": PARAM_KINDS, "n_trials": [2, 0, -1, 1.5, "1", None, True],
               "n_bins": [1, 0, -1, 2.5, "9", None, np.int64(4)], "seed": SEEDS}


@fuzz_settings()
@given(arg=st.sampled_from([None] + list(SAMPLE_OPTS)), k=pick)
def test_sample(arg, k):
    kw = one_mutated(dict(params="ok", n_trials=1, n_bins=T, seed=0), SAMPLE_OPTS, arg, k)
    params = params_of(kw["params"])
    out = exercise("PoissonHMM.sample",
                   lambda: MODEL.sample(resolve(params), kw["n_trials"], kw["n_bins"],
                                        seed=kw["seed"]),
                   names=("params", "rates", "n_trials", "n_bins", "seed"))
    if arg == "seed" and not isinstance(kw["seed"], (int, np.integer)):
        assert out is None
    if out is not None:
        z, y = out
        assert not callable(params), "parameters with NaN rates accepted"
        shape = (int(kw["n_trials"]), int(kw["n_bins"]))
        assert z.shape == shape and y.shape == shape + (params.n_channels,)
        assert np.all((z >= 0) & (z < K)) and np.all(y >= 0) and np.all(y == np.round(y))
        again = MODEL.sample(params, kw["n_trials"], kw["n_bins"], seed=kw["seed"])
        assert not callable(params)
        assert np.array_equal(again[1], y)


# ------------------------------------------------------------------------------------------
# fitting (with restarts)
# ------------------------------------------------------------------------------------------
FIT_OPTS = {"data": DATA_KINDS, "params": PARAM_KINDS,
            "n_restarts": [2, 3, 0, -1, 1.5, None, True],
            "seed": SEEDS, "max_iter": [2, 3, 0, -1, 1.5, None, True],
            "tol": [0.0, 1e-3, -1.0, np.nan, np.inf, "0", None, True]}


@fuzz_settings()
@given(arg=st.sampled_from([None] + list(FIT_OPTS) + ["data"] * 2), k=pick, pos=position)
def test_fit(arg, k, pos):
    kw = one_mutated(dict(data="ok", params="none", n_restarts=1, seed=0, max_iter=1,
                          tol=1e-8), FIT_OPTS, arg, k)
    kind = kw.pop("data")
    data = data_of(kind, pos)
    params = params_of(kw.pop("params"))
    before = snapshot(data)
    out = exercise("PoissonHMM.fit",
                   lambda **a: MODEL.fit(data, params=resolve(params), **a), progress=False,
                   names=DATA_NAMES + ("params", "rates", "n_restarts", "seed", "max_iter",
                                       "tol"),
                   also=(FloatingPointError,), **kw)
    assert_unchanged(before, data, "data")
    if kind in MUST_REJECT:
        assert out is None, f"data {kind} accepted"
    if out is not None:
        p = out.params
        assert p.n_states == K and p.rates.shape[0] == K and np.all(p.rates >= 0)
        assert 1 <= out.n_iter <= kw["max_iter"]
        assert out.restart_log_likelihoods.shape == (kw["n_restarts"],)
        assert out.log_likelihood == np.nanmax(out.restart_log_likelihoods)
        assert np.all(np.diff(out.log_likelihoods) >= -1e-8 * abs(out.log_likelihood))


# ------------------------------------------------------------------------------------------
# inference and scores
# ------------------------------------------------------------------------------------------
INFER = ("posterior", "viterbi", "log_likelihood", "score", "expected_transitions",
         "expected_complete_ll", "mstep", "aic", "bic")
INFER_OPTS = {"data": DATA_KINDS, "params": PARAM_KINDS,
              "option": [True, False, "yes", None, 1, OPAQUE]}


@pytest.mark.parametrize("what", INFER)
@fuzz_settings()
@given(arg=st.sampled_from([None] + list(INFER_OPTS) + ["data"] * 2), k=pick, pos=position)
def test_inference(what, arg, k, pos):
    kw = one_mutated(dict(data="ok", params="ok", option=False), INFER_OPTS, arg, k)
    kind = kw["data"]
    data = data_of(kind, pos)
    params = params_of(kw["params"])
    before, pbefore = snapshot(data), snapshot(params)
    fn = getattr(MODEL, what)
    opt = kw["option"]
    extra = {"posterior": {"log_space": opt}, "expected_transitions": {"log_space": opt},
             "log_likelihood": {"per_trial": opt}}.get(what, {})

    def call():
        p = resolve(params)
        return fn(data, p, p, **extra) if what == "expected_complete_ll" else fn(data, p,
                                                                                  **extra)

    out = exercise(f"PoissonHMM.{what}", call,
                   names=DATA_NAMES + ("params", "rates", "params_at", "params_eval",
                                       "log_space", "per_trial"),
                   also=(FloatingPointError,))
    assert_unchanged(before, data, "data")
    assert_unchanged(pbefore, params, "params")
    if kind in MUST_REJECT:
        assert out is None, f"data {kind} accepted"
    if extra and not isinstance(opt, (bool, np.bool_)):
        assert out is None, f"option {opt!r} accepted"
    if out is None:
        return
    assert not callable(params), "parameters with NaN rates accepted"
    lengths = lengths_of(data)
    single = not isinstance(data, list) and np.ndim(data) <= 2
    if what == "posterior":
        post = [out] if single else out
        assert [g.shape for g in post] == [(L, K) for L in lengths]
        assert all(np.allclose(g.sum(axis=1), 1.0) and np.all(g >= 0) for g in post)
    elif what == "viterbi":
        paths = [out] if single else out
        assert [z.shape for z in paths] == [(L,) for L in lengths]
        assert all(np.all((z >= 0) & (z < K)) for z in paths)
    elif what == "log_likelihood" and opt is True:
        assert out.shape == (n_trials_of(data),) and np.all(out <= 0)
    elif what == "expected_transitions":
        assert out.shape == (K, K) and np.all(out >= 0)
        assert np.isclose(out.sum(), sum(L - 1 for L in lengths))
    elif what == "mstep":
        assert isinstance(out, s.PoissonHMMParams) and out.rates.shape == (K, C)
    else:
        assert isinstance(out, float) and np.isfinite(out)


# a fitted model scored on held-out trials
FITTED = MODEL.fit(Y2, max_iter=3, progress=False, seed=0).params


@fuzz_settings()
@given(kind=st.sampled_from(("ok",) * 6 + DATA_KINDS), pos=position,
       per_trial=st.sampled_from([False, True]))
def test_held_out_score(kind, pos, per_trial):
    test = data_of(kind, pos, base=Y3[0])
    before = snapshot(test)
    ll = exercise("PoissonHMM.log_likelihood (held out)", MODEL.log_likelihood, test, FITTED,
                  per_trial=per_trial, names=DATA_NAMES, also=(FloatingPointError,))
    sc = exercise("PoissonHMM.score (held out)", MODEL.score, test, FITTED,
                  names=DATA_NAMES, also=(FloatingPointError,))
    assert_unchanged(before, test, "data")
    assert (ll is None) == (sc is None)
    if sc is not None:
        trials = test if isinstance(test, list) else list(
            np.asarray(test, float).reshape(-1, *np.shape(test)[-2:]))
        n_bins = sum(int(np.sum(~np.all(np.isnan(np.asarray(t, float)), axis=1)))
                     for t in trials)   # bins with at least one observed channel
        assert np.isclose(sc, float(np.sum(ll)) / n_bins)


# ------------------------------------------------------------------------------------------
# model choice and state alignment
# ------------------------------------------------------------------------------------------
SEL_OPTS = {"n_states": [[1, 2], [2, 1], [], [0], [1.5], "2", None, [True], 2, np.array([1]),
                         [2, 2], ["1"]],
            "train": DATA_KINDS, "test": DATA_KINDS,
            "dt": [1.0, 0.0, -1.0, np.nan, "0.1", None],
            "n_restarts": [2, 0, 1.5], "max_iter": [2, 0, -1], "tol": [-1.0, np.nan, "0"],
            "seed": [-1, 1.5, "0"],
            "model_kwargs": [{"transition_prior": 2.0}, {"bogus": 1},
                             {"transition_mask": np.ones((3, 3), bool)},
                             {"rate_prior": (2.0, 0.1)}]}


@fuzz_settings()
@given(arg=st.sampled_from([None, None] + list(SEL_OPTS)), k=pick, pos=position)
def test_select_n_states(arg, k, pos):
    kw = one_mutated(dict(n_states=[1, 2], train="ok", test="ok", dt=DT, n_restarts=1,
                          max_iter=1, tol=1e-6, seed=0, model_kwargs={}), SEL_OPTS, arg, k)
    train = Y2 if kw["train"] == "ok" else data_of(kw["train"], pos, base=Y2[0])
    test = Y3 if kw["test"] == "ok" else data_of(kw["test"], pos, base=Y3[0])
    ks = kw["n_states"]
    before = snapshot((train, test, ks))
    extra = kw.pop("model_kwargs")
    out = exercise("select_n_states", s.select_n_states, train, test, ks, kw["dt"],
                   n_restarts=kw["n_restarts"], seed=kw["seed"], max_iter=kw["max_iter"],
                   tol=kw["tol"],
                   names=("train", "test", "data", "n_states", "dt", "n_restarts", "seed",
                          "max_iter", "tol", "bogus", "transition_mask", "transition_prior",
                          "rate_prior"),
                   also=(FloatingPointError,), allow_nonfinite=("test_standard_errors",),
                   **extra)
    assert_unchanged(before, (train, test, ks), "arguments")
    valid = [ks] if isinstance(ks, int) else (list(ks) if isinstance(ks, (list, np.ndarray))
                                              else [])
    if arg == "n_states" and not (valid and all(
            isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v >= 1
            for v in valid)):
        assert out is None, f"n_states={ks!r} accepted"
    if out is not None:
        m = len(out.n_states)
        assert m >= 1 and out.test_log_likelihoods.shape == (m,) and len(out.fits) == m
        assert out.best_n_states in out.n_states.tolist()
        assert out.parsimonious_n_states in out.n_states.tolist()
        se = out.test_standard_errors
        assert np.all(np.isfinite(se)) or out.test_trial_log_likelihoods.shape[1] == 1


ALIGN_KINDS = ("ok",) * 4 + PARAM_MUTATIONS + ("ragged_N", "big", "allnan")


@fuzz_settings()
@given(arg=st.sampled_from(["rates_fit", "rates_ref", None]),
       kind=st.sampled_from(ALIGN_KINDS), pos=position, n=st.sampled_from([1, 2, 3]))
def test_align_states(arg, kind, pos, n):
    rng = np.random.default_rng(pos)
    ref = rng.gamma(2.0, 5.0, size=(n, C))
    perm = rng.permutation(n)
    kw = {"rates_fit": ref[perm] * 1.01, "rates_ref": ref}
    if arg is not None:
        kw[arg] = mutate(kind, kw[arg], pos)
    before = snapshot(kw)
    out = exercise("align_states", s.align_states, names=("rates_fit", "rates_ref", "rates"),
                   **kw)
    assert_unchanged(before, kw, "arguments")
    if arg is not None and kind in ("nan", "inf", "str", "none", "complex", "object_str",
                                    "allnan"):
        assert out is None, f"{arg} {kind} accepted"
    if out is not None:
        m = np.shape(kw["rates_ref"])[0]
        assert sorted(out.tolist()) == list(range(m))
        if arg is None:   # the fitted states were a permutation of the reference
            assert np.allclose(np.asarray(kw["rates_fit"])[out] / 1.01, ref)


@fuzz_settings()
@given(n=st.sampled_from([3, 3, 3, 1, 0, -1, 1.5, "3", None, True, np.int64(2)]),
       model=st.sampled_from(["plain", "masked"]), _pos=position)
def test_n_parameters(n, model, _pos):
    m = MODEL if model == "plain" else s.PoissonHMM(
        2, DT, transition_mask=np.array([[True, True], [False, True]]))
    out = exercise("PoissonHMM.n_parameters", m.n_parameters, n, names=("n_channels",))
    if out is not None:
        assert isinstance(out, int) and out == 2 * int(n) + 1 + (2 if model == "plain" else 1)


# ------------------------------------------------------------------------------------------
# regression tests for bugs the fuzzing found
# ------------------------------------------------------------------------------------------
def test_regression_params_dataclass_validates():
    bad = TRUTH.rates.copy()
    bad[0, 0] = np.nan
    # was: accepted, and the posterior / log-likelihood / M-step came back NaN
    with pytest.raises(ValueError, match="rates"):
        s.PoissonHMMParams(TRUTH.initial_probs, TRUTH.transition_matrix, bad)
    with pytest.raises(TypeError, match="initial_probs"):   # was: a string was stored
        s.PoissonHMMParams("not an array", TRUTH.transition_matrix, TRUTH.rates)
    with pytest.raises(ValueError, match="transition_matrix"):
        s.PoissonHMMParams(TRUTH.initial_probs, np.ones((2, 2)), TRUTH.rates)
    p = s.PoissonHMMParams([1, 0], [[1, 0], [0, 1]], [[1, 2, 3], [4, 5, 6]])
    assert p.rates.dtype == np.float64   # was: int64 arrays kept as given


def test_regression_complex_priors_rejected():
    # the imaginary part was dropped silently (ComplexWarning only)
    with pytest.raises(TypeError, match="transition_prior"):
        s.PoissonHMM(2, DT, transition_prior=np.array([2.0 + 1j]))
    with pytest.raises(TypeError, match="rate_prior"):
        s.PoissonHMM(2, DT, rate_prior=(np.array([2.0 + 1j]), 1.0))


def test_regression_seeds_checked_by_name():
    for call in (lambda: MODEL.random_params(-1, n_channels=C),
                 lambda: MODEL.sample(TRUTH, 1, T, seed=-1)):
        with pytest.raises(ValueError, match="seed"):   # "expected non-negative integer"
            call()
    with pytest.raises(TypeError, match="seed"):   # True was taken as 1
        MODEL.random_params(True, n_channels=C)


def test_regression_sample_overflowing_rates_names_params():
    huge = hmm_params([0.5, 0.5], TRUTH.transition_matrix, np.full((2, 3), 1e300))
    with pytest.raises(ValueError, match="params"):   # was NumPy's "lam value too large"
        MODEL.sample(huge, 1, T, seed=0)


def test_regression_transition_matrix_from_rates_dt():
    R = np.array([[0.0, 1.0], [2.0, 0.0]])
    with pytest.raises(TypeError, match="dt"):   # was: "ufunc 'isfinite' not supported"
        s.transition_matrix_from_rates(R, "0.1")
    with pytest.raises(TypeError, match="dt"):   # True was taken as 1 s
        s.transition_matrix_from_rates(R, True)


def test_regression_fit_expected_complete_ll_finite():
    y = Y.astype(float)
    y[0, 0] = 1e6   # one busy bin: the M-step rounds a probability to exactly 0
    fit = MODEL.fit(y, max_iter=1, progress=False)   # Q(theta' | theta) was -inf
    assert np.all(np.isfinite(fit.expected_complete_lls))


def test_regression_absurd_counts_and_flags_rejected():
    y = Y.astype(float)
    y[0, 0] = 1e300   # a whole number, but not a spike count
    with pytest.raises(ValueError, match="data"):
        MODEL.viterbi(y, TRUTH)
    with pytest.raises(TypeError, match="log_space"):   # "yes" and "no" were both True
        MODEL.posterior(Y, TRUTH, log_space="no")
    with pytest.raises(TypeError, match="per_trial"):
        MODEL.log_likelihood(Y, TRUTH, per_trial="no")


def test_regression_select_n_states_rejects_non_integers():
    for bad in ([1.5], ["2"], [True], "2"):   # 1.5 was truncated to 1, "2" parsed
        with pytest.raises(TypeError, match="n_states"):
            s.select_n_states(Y2, Y3, bad, DT, n_restarts=1, max_iter=1)


def test_regression_align_states_names_rates():
    ref = TRUTH.rates
    with pytest.raises(TypeError, match="rates_fit"):   # "could not convert string ..."
        s.align_states("x", ref)
    with pytest.raises(TypeError, match="rates_ref"):   # the imaginary part was dropped
        s.align_states(ref, ref + 1j)
    big = ref.copy()
    big[0, 0] = 1e300
    with pytest.raises(ValueError, match="rates"):   # "cost matrix is infeasible"
        s.align_states(big, ref)
