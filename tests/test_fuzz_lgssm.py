"""Property-based fuzzing of the linear-Gaussian SSM and the gauge tools (issue 9).

Every case is a small valid input with one argument mutated (``fuzz_mutations``); the call
must return finite results of the documented shapes or raise a ValueError/TypeError naming
an argument (``fuzz_harness.exercise``; FloatingPointError where documented), and must not
modify its inputs. Accepted observations are (9, 3) (or two such trials) with d = 1, so the
compiled Kalman and EM code is reused across cases.
"""

from __future__ import annotations

import numpy as np
import pytest
from fuzz_harness import exercise, fuzz_settings
from fuzz_mutations import (
    OPAQUE,
    assert_unchanged,
    mutate,
    mutate_value,
    one_mutated,
    position,
    snapshot,
)
from hypothesis import given
from hypothesis import strategies as st

import spikessm as s
from spikessm.models import gauge

pytestmark = pytest.mark.fuzz

T, N, D = 9, 3, 1
MODEL = s.LinearGaussianSSM(D, N)
OBS_NAMES = ("observations", "inputs")
PARAM_ARGS = ("A", "b", "B", "Q", "C", "d", "D", "R", "m0", "P0", "input_dim")


def base_params(kind: str = "ok", q: int = 0):
    kw = dict(A=[[0.9]], C=[[1.0], [-0.5], [0.3]], Q=[[0.1]], R=0.5 * np.eye(N),
              d=np.array([0.5, -1.0, 2.0]), B=0.1 * np.ones((D, q)), D=0.1 * np.ones((N, q)))
    if kind == "unstable":
        kw["A"] = [[3.0]]
    elif kind == "bigC":
        kw["C"] = np.array(kw["C"]) * 1e150
    elif kind == "tinyR":
        kw["R"] = 1e-300 * np.eye(N)
    elif kind == "hugeQ":
        kw["Q"] = [[1e300]]
    elif kind == "tinyQ":
        kw["Q"] = [[1e-300]]
    return s.make_params(**kw)


PARAM_KINDS = ("ok", "ok", "ok", "ok", "unstable", "bigC", "tinyR", "hugeQ", "tinyQ", "none",
               "dict", "wrong_dim", "wrong_N", "opaque")


def params_of(kind, q=0):
    if kind == "none":
        return None
    if kind == "dict":
        return base_params(q=q).as_dict()
    if kind == "opaque":
        return OPAQUE
    if kind == "wrong_dim":
        return s.make_params(A=0.5 * np.eye(2), C=np.ones((N, 2)), Q=np.eye(2), R=np.eye(N))
    if kind == "wrong_N":
        return s.make_params(A=[[0.5]], C=np.ones((2, 1)), Q=[[1.0]], R=np.eye(2))
    return base_params(kind, q)


Y = MODEL.sample(base_params(), T, seed=1)[1]
U = np.random.default_rng(2).normal(size=(T, 1))
OBS_KINDS = ("ok", "ok", "ok", "ok", "float32", "int32", "list", "bool", "nan", "allnan_col",
             "allnan", "neg", "frac", "big", "huge", "tiny", "zeros", "inf", "neg_inf", "none",
             "str", "complex", "object_str", "empty_T", "empty_N", "rank1", "rank4",
             "transpose", "scalar", "ragged_N", "ragged_T", "batch")


def obs_of(kind, pos, base=Y):
    if kind == "batch":
        return np.stack([base, base[::-1]])
    return mutate(kind, base, pos)


def lengths_of(obs):
    if isinstance(obs, list):
        return [np.shape(t)[0] for t in obs]
    a = np.asarray(obs)
    return [a.shape[1]] * a.shape[0] if a.ndim == 3 else [a.shape[0]]


def check_padded(arr, lengths, single, tail):
    """Shape (K, T_max) + tail (or (T,) + tail for one trial); finite inside each trial and
    NaN in the padding (documented)."""
    a = np.asarray(arr)
    if single:
        a = a[None]
    assert a.shape == (len(lengths), max(lengths)) + tail, (a.shape, lengths, tail)
    for k, L in enumerate(lengths):
        assert np.all(np.isfinite(a[k, :L]))
        assert np.all(np.isnan(a[k, L:]))


PADDED = ("filtered_", "predicted_", "smoothed_", "cross_covs", "mean", "std")


# ------------------------------------------------------------------------------------------
# make_params, the model constructor, random_params, sample
# ------------------------------------------------------------------------------------------
ARG_MUTATIONS = ("ok", "ok", "nan", "inf", "huge", "str", "none", "complex", "object_str",
                 "list", "rank1", "rank4", "transpose", "empty_T", "neg", "zeros", "bool",
                 "scalar", "tiny")


@fuzz_settings()
@given(d=st.sampled_from([1, 2]), n=st.sampled_from([1, 3]), arg=st.sampled_from(PARAM_ARGS),
       kind=st.sampled_from(ARG_MUTATIONS), pos=position, q=st.sampled_from([0, 1]))
def test_make_params(d, n, arg, kind, pos, q):
    rng = np.random.default_rng(pos)
    kw = dict(A=0.5 * np.eye(d), b=np.zeros(d), B=np.ones((d, q)), Q=0.2 * np.eye(d),
              C=rng.normal(size=(n, d)), d=np.zeros(n), D=np.ones((n, q)), R=np.eye(n),
              m0=np.zeros(d), P0=np.eye(d))
    if arg == "input_dim":
        kw[arg] = 3.0 if kind == "scalar" else mutate_value(q, kind, pos)
    else:
        kw[arg] = mutate(kind, kw[arg], pos)
    before = snapshot(kw)
    out = exercise("make_params", s.make_params, names=PARAM_ARGS, **kw)
    assert_unchanged(before, kw, "arguments")
    if out is not None:
        k, m = out.state_dim, out.emission_dim
        assert out.A.shape == (k, k) and out.Q.shape == (k, k) and out.C.shape == (m, k)
        assert out.R.shape == (m, m) and out.P0.shape == (k, k)
        assert out.B.shape == (k, out.input_dim) and out.D.shape == (m, out.input_dim)
        for f in ("Q", "R", "P0"):
            M = getattr(out, f)
            assert np.array_equal(M, M.T) and np.all(np.linalg.eigvalsh(M) > 0)
        for f in ("A", "b", "B", "Q", "C", "d", "D", "R", "m0", "P0"):
            assert getattr(out, f).dtype == np.float64
        src = kw.get(arg)
        if isinstance(src, np.ndarray) and src.dtype == np.float64 and src.size:
            saved = out.as_dict()
            src.flat[0] += 1.0   # the params hold copies
            assert all(np.array_equal(v, getattr(out, k)) for k, v in saved.items())
            src.flat[0] -= 1.0


CTOR_ARGS = ("state_dim", "emission_dim", "input_dim", "dynamics_covariance",
             "emission_covariance")
CTOR_VALUES = (0, -1, 1.5, True, "2", None, np.nan, np.int64(2), 10**20, "full", "bogus",
               OPAQUE, [1], "isotropic", 3)


@fuzz_settings()
@given(arg=st.sampled_from(CTOR_ARGS + (None,)), value=st.sampled_from(CTOR_VALUES),
       d=st.sampled_from([1, 2, 3]), n=st.sampled_from([None, 3, 5]))
def test_model_constructor(arg, value, d, n):
    kw = dict(state_dim=d, emission_dim=n, input_dim=0, dynamics_covariance="full",
              emission_covariance="diagonal")
    if arg is not None:
        kw[arg] = value
    out = exercise("LinearGaussianSSM", s.LinearGaussianSSM, names=CTOR_ARGS, **kw)
    if out is not None:
        assert isinstance(out.state_dim, int) and out.state_dim >= 1
        assert out.emission_dim is None or (isinstance(out.emission_dim, int)
                                            and out.emission_dim >= 1)
        assert isinstance(out.input_dim, int) and out.input_dim >= 0
        assert out.dynamics_covariance in ("full", "diagonal", "isotropic")
        assert out.emission_covariance in ("full", "diagonal", "isotropic")
        assert "LinearGaussianSSM(" in repr(out)


SEEDS = (0, 0, 0, 3, -1, 1.5, "1", None, np.int32(4), True, 2**70)
BAD_SEEDS = (-1, 1.5, "1", None, True)



pick = st.integers(0, 60)


@fuzz_settings()
@given(d=st.sampled_from([1, 2]), model_n=st.sampled_from([None, 3]),
       n=st.sampled_from([None] * 4 + [3, 3, 4, 0, -1, 1.5, "3", True, np.int64(2)]),
       q=st.sampled_from([0, 1]), seed=st.sampled_from((0,) * 6 + SEEDS))
def test_random_params(d, model_n, n, q, seed):
    model = s.LinearGaussianSSM(d, model_n, q)
    out = exercise("LinearGaussianSSM.random_params", model.random_params, seed=seed,
                   emission_dim=n, names=("emission_dim", "seed"))
    if any(seed is b for b in BAD_SEEDS) or isinstance(n, (bool, float, str)):
        assert out is None
    if out is not None:
        assert out.state_dim == d and out.input_dim == q
        expect = model_n if n is None else int(n)
        assert out.emission_dim == expect and expect >= 1
        assert np.max(np.abs(np.linalg.eigvals(out.A))) < 1
        again = model.random_params(seed=seed, emission_dim=n)
        assert np.array_equal(again.C, out.C)   # seeded


SAMPLE_OPTS = {
    "params": ["unstable", "bigC", "tinyR", "hugeQ", "tinyQ", "none", "dict", "wrong_dim",
               "wrong_N", "opaque"],
    "n_steps": [1, 2, 0, -1, 2.5, True, "9", None, np.int64(3)],
    "n_trials": [1, 3, 0, -2, 1.5, "2", True],
    "seed": [3, -1, 1.5, "1", None, np.int32(4), True, 2**70],
    "inputs": ["nan", "inf", "none", "str", "empty_T", "rank4", "transpose", "complex",
               "huge", "object_str", "list", "float32"],
}


@fuzz_settings()
@given(arg=st.sampled_from([None, None] + list(SAMPLE_OPTS)), pick=pick, pos=position,
       q=st.sampled_from([0, 0, 1]))
def test_sample(arg, pick, pos, q):
    kw = one_mutated(dict(params="ok", n_steps=9, n_trials=None, seed=0, inputs="ok"),
                     SAMPLE_OPTS, arg, pick)
    model = s.LinearGaussianSSM(D, None, q)
    params = params_of(kw["params"], q)
    T_u = kw["n_steps"] if isinstance(kw["n_steps"], (int, np.integer)) and not isinstance(
        kw["n_steps"], bool) and kw["n_steps"] > 0 else 2
    ukind = kw["inputs"]
    inputs = None if (ukind == "ok" and not q) else mutate(ukind, np.ones((T_u, max(q, 1))),
                                                           pos)
    before = snapshot(inputs)
    out = exercise("LinearGaussianSSM.sample", model.sample, params, kw["n_steps"],
                   n_trials=kw["n_trials"], inputs=inputs, seed=kw["seed"],
                   names=("params", "n_steps", "n_trials", "seed", "inputs"),
                   also=(FloatingPointError,))
    assert_unchanged(before, inputs, "inputs")
    if arg == "seed" and any(kw["seed"] is b for b in BAD_SEEDS):
        assert out is None
    if arg == "inputs" and ukind in ("nan", "inf", "str", "complex", "object_str", "huge"):
        assert out is None, f"inputs {ukind} accepted"
    if out is not None:
        x, y = out
        n_trials, n_steps = kw["n_trials"], int(kw["n_steps"])
        lead = () if n_trials is None else (int(n_trials),)
        assert x.shape == lead + (n_steps, params.state_dim)
        assert y.shape == lead + (n_steps, params.emission_dim)
        again = model.sample(params, kw["n_steps"], n_trials=n_trials, inputs=inputs,
                             seed=kw["seed"])
        assert np.array_equal(again[1], y)


# ------------------------------------------------------------------------------------------
# inference: filter, smooth, log_prob, score, posterior_predictive, forecast
# ------------------------------------------------------------------------------------------
INFER_OPTS = {"observations": OBS_KINDS, "params": PARAM_KINDS,
              "inputs": ["ok", "str", "nan", "none"]}


@pytest.mark.parametrize("what", ["smooth", "filter", "log_prob", "score",
                                  "posterior_predictive"])
@fuzz_settings()
@given(arg=st.sampled_from([None] + list(INFER_OPTS) + ["observations"] * 2), pick=pick,
       pos=position)
def test_inference(what, arg, pick, pos):
    kw = one_mutated(dict(observations="ok", params="ok", inputs="none"), INFER_OPTS, arg,
                     pick)
    kind = kw["observations"]
    obs = obs_of(kind, pos)
    params = params_of(kw["params"])
    inputs = None if kw["inputs"] == "none" else mutate(kw["inputs"], U, pos)
    before, pbefore = snapshot(obs), snapshot(params)
    fn = getattr(MODEL, what)
    ragged = kind == "ragged_T"
    out = exercise(f"LinearGaussianSSM.{what}", fn, params, obs, inputs,
                   names=OBS_NAMES + ("params",), also=(FloatingPointError,),
                   allow_nonfinite=PADDED if ragged else ())
    assert_unchanged(before, obs, "observations")
    assert_unchanged(pbefore, params, "params")
    if kind in ("inf", "neg_inf", "str", "complex", "object_str", "huge", "allnan_col"):
        assert out is None, f"observations {kind} accepted"
    if out is None:
        return
    lengths = lengths_of(obs)
    single = not isinstance(obs, list) and np.ndim(obs) <= 2
    if what in ("log_prob", "score"):
        assert isinstance(out, float) and np.isfinite(out)
    elif what == "posterior_predictive":
        check_padded(out.mean, lengths, single, (N,))
        check_padded(out.std, lengths, single, (N,))
        assert np.all(out.std[np.isfinite(out.std)] > 0)
    else:
        check_padded(out.filtered_means, lengths, single, (D,))
        check_padded(out.filtered_covs, lengths, single, (D, D))
        check_padded(out.predicted_covs, lengths, single, (D, D))
        assert np.all(np.isfinite(out.log_likelihood))
        if what == "smooth":
            check_padded(out.smoothed_means, lengths, single, (D,))
            check_padded(out.smoothed_covs, lengths, single, (D, D))
            covs = np.asarray(out.smoothed_covs)
            assert np.all(covs[np.isfinite(covs)] > 0)   # d = 1: variances
        else:
            assert out.smoothed_means is None


FORECAST_OPTS = {"observations": OBS_KINDS, "params": PARAM_KINDS,
                 "horizon": [1, 0, -1, 1.5, "3", None, True, np.int64(2)],
                 "future_inputs": ["nan", "inf", "none", "str", "empty_T", "transpose",
                                   "rank4", "huge", "complex"]}


@fuzz_settings()
@given(arg=st.sampled_from([None] + list(FORECAST_OPTS)), pick=pick, pos=position,
       q=st.sampled_from([0, 0, 1]))
def test_forecast(arg, pick, pos, q):
    kw = one_mutated(dict(observations="ok", params="ok", horizon=3, future_inputs="ok"),
                     FORECAST_OPTS, arg, pick)
    kind, horizon = kw["observations"], kw["horizon"]
    model = s.LinearGaussianSSM(D, N, q)
    obs = obs_of(kind, pos)
    params = params_of(kw["params"], q)
    inputs = future = None
    if q:
        inputs = {"batch": np.stack([U, U]), "ragged_T": [U, U[:4]]}.get(kind, U)
        h = int(horizon) if isinstance(horizon, (int, np.integer)) and horizon > 0 else 3
        future = mutate(kw["future_inputs"], np.ones((h, q)), pos)
    before, fbefore = snapshot(obs), snapshot(future)
    out = exercise("LinearGaussianSSM.forecast", model.forecast, params, obs, horizon,
                   inputs=inputs, future_inputs=future,
                   names=OBS_NAMES + ("params", "horizon", "future_inputs"),
                   also=(FloatingPointError,))
    assert_unchanged(before, obs, "observations")
    assert_unchanged(fbefore, future, "future_inputs")
    if q and kw["future_inputs"] in ("nan", "inf", "str", "complex", "huge"):
        assert out is None
    if out is not None:
        single = not isinstance(obs, list) and np.ndim(obs) <= 2
        lead = () if single else (len(lengths_of(obs)),)
        h = int(horizon)
        assert out.state_means.shape == lead + (h, D)
        assert out.emission_covs.shape == lead + (h, N, N)
        ec = out.emission_covs.reshape(-1, N, N)
        ev = np.linalg.eigvalsh(ec)   # positive semi-definite up to rounding
        assert np.all(ev >= -1e-12 * np.abs(ev).max(axis=-1, keepdims=True))


# ------------------------------------------------------------------------------------------
# fitting: fit_em, fit_sgd, initialize, fit_linear_gaussian_em
# ------------------------------------------------------------------------------------------
FIT_KINDS = ("ok", "float32", "int32", "list", "nan", "allnan_col", "neg", "big", "huge",
             "tiny", "zeros", "inf", "none", "str", "complex", "object_str", "empty_T",
             "empty_N", "rank4", "transpose", "scalar", "ragged_N", "ragged_T", "batch")
FROZEN = [("A",), "A", ("bogus",), None, 5, ["C", "C"], ("A", "C", "Q")]
WARM = ["params", "wrong_dim", "dict", "unstable", "opaque", "wrong_N"]


def warm_params(warm):
    return {"none": None, "params": base_params(), "wrong_dim": params_of("wrong_dim"),
            "dict": params_of("dict"), "unstable": base_params("unstable"),
            "opaque": OPAQUE, "wrong_N": params_of("wrong_N")}[warm]


def check_fit(p, n=N):
    assert p.A.shape == (D, D) and p.C.shape == (n, D) and p.R.shape == (n, n)
    for M in (p.Q, p.R, p.P0):
        assert np.all(np.linalg.eigvalsh(M) > 0)


EM_OPTS = {"observations": FIT_KINDS, "max_iter": [2, 3, 0, -1, 1.5, None, True],
           "tol": [0.0, -1.0, np.nan, np.inf, "1e-6", None], "init": ["random", "bogus", None],
           "seed": [3, -1, 1.5, "0", None, True], "path": ["general", "steady", "bogus", None],
           "frozen": FROZEN, "params": WARM}
EM_DEFAULTS = dict(observations="ok", max_iter=1, tol=1e-7, init="pca", seed=0, path="auto",
                   frozen=(), params="none")


@fuzz_settings()
@given(arg=st.sampled_from([None] + list(EM_OPTS) + ["observations"] * 2), pick=pick,
       pos=position)
def test_fit_em(arg, pick, pos):
    kw = one_mutated(EM_DEFAULTS, EM_OPTS, arg, pick)
    obs = obs_of(kw.pop("observations"), pos)
    params = warm_params(kw.pop("params"))
    before = snapshot(obs)
    out = exercise("LinearGaussianSSM.fit_em", MODEL.fit_em, obs, params=params,
                   progress=False,
                   names=OBS_NAMES + ("params", "frozen", "max_iter", "tol", "init", "seed",
                                      "path"),
                   also=(FloatingPointError,), **kw)
    assert_unchanged(before, obs, "observations")
    if arg == "seed" and any(kw["seed"] is b for b in BAD_SEEDS):
        assert out is None
    if out is not None:
        check_fit(out.params)
        assert 1 <= out.n_iter <= kw["max_iter"]
        assert out.log_likelihoods.shape == (out.n_iter,)
        assert np.isfinite(out.log_likelihood)
        if params is not None and "A" in kw["frozen"]:
            assert np.array_equal(out.params.A, params.A)


SGD_OPTS = {"observations": FIT_KINDS, "n_steps": [2, 0, -1, 1.5, None, True],
            "learning_rate": [0.0, -1.0, np.nan, np.inf, "0.01", None, True, 1e300,
                              np.float64(1e-2)],
            "init": ["random", "bogus"], "frozen": FROZEN[:2] + FROZEN[3:6], "params": WARM}


@fuzz_settings()
@given(arg=st.sampled_from([None] + list(SGD_OPTS) + ["observations"] * 2), pick=pick,
       pos=position)
def test_fit_sgd(arg, pick, pos):
    kw = one_mutated(dict(observations="ok", n_steps=1, learning_rate=1e-2, init="pca",
                          frozen=(), params="none"), SGD_OPTS, arg, pick)
    obs = obs_of(kw.pop("observations"), pos)
    params = warm_params(kw.pop("params"))
    before = snapshot(obs)
    out = exercise("LinearGaussianSSM.fit_sgd", MODEL.fit_sgd, obs, params=params,
                   progress=False,
                   names=OBS_NAMES + ("params", "frozen", "n_steps", "learning_rate", "init"),
                   also=(FloatingPointError,), **kw)
    assert_unchanged(before, obs, "observations")
    if arg == "learning_rate" and not isinstance(kw["learning_rate"], float):
        assert out is None
    if out is not None:
        check_fit(out.params)
        assert out.losses.shape == (kw["n_steps"],) and np.isfinite(out.log_likelihood)


@fuzz_settings()
@given(kind=st.sampled_from(("ok",) * 6 + FIT_KINDS), pos=position,
       method=st.sampled_from(["pca"] * 4 + ["random"] * 2 + ["bogus", None]),
       seed=st.sampled_from(SEEDS), d=st.sampled_from([1, 1, 2, 4]))
def test_initialize(kind, pos, method, seed, d):
    model = s.LinearGaussianSSM(d, N)
    obs = obs_of(kind, pos)
    before = snapshot(obs)
    out = exercise("LinearGaussianSSM.initialize", model.initialize, obs, method=method,
                   seed=seed, names=OBS_NAMES + ("method", "init", "seed"))
    assert_unchanged(before, obs, "observations")
    if out is not None:
        assert out.state_dim == d and out.emission_dim == N
        assert np.all(np.linalg.eigvalsh(out.Q) > 0) and np.all(np.linalg.eigvalsh(out.R) > 0)


KF_OPTS = {"observations": FIT_KINDS, "state_dim": [0, -1, 1.5, "1", None, True],
           "n_iter": [2, 0, -1, 1.5, None], "tol": [1e-3, -1.0, np.nan, "0"],
           "inputs": ["ok", "str", "scalar", "rank4", "nan", "empty_T", "list", "complex",
                      "ragged_N"],
           "emission_covariance": ["diagonal", "bogus", None],
           "initial_params": WARM}


@fuzz_settings()
@given(arg=st.sampled_from([None] + list(KF_OPTS) + ["observations"] * 2), pick=pick,
       pos=position)
def test_fit_linear_gaussian_em(arg, pick, pos):
    kw = one_mutated(dict(observations="ok", state_dim=1, n_iter=1, tol=0.0, inputs="none",
                          emission_covariance="full", initial_params="none"), KF_OPTS, arg,
                     pick)
    kind = kw.pop("observations")
    obs = obs_of(kind, pos)
    ukind = kw.pop("inputs")
    inputs = None if ukind == "none" else mutate(ukind, U, pos)
    kw["initial_params"] = warm_params(kw["initial_params"])
    before, ubefore = snapshot(obs), snapshot(inputs)
    out = exercise("fit_linear_gaussian_em", s.fit_linear_gaussian_em, obs, inputs=inputs,
                   names=OBS_NAMES + ("state_dim", "n_iter", "tol", "initial_params",
                                      "params", "emission_covariance", "input_dim"),
                   also=(FloatingPointError,), **kw)
    assert_unchanged(before, obs, "observations")
    assert_unchanged(ubefore, inputs, "inputs")
    if ukind in ("str", "scalar", "nan", "complex"):
        assert out is None
    if out is not None:
        n = 1 if kind == "list" else N   # a list of 1-D rows is a list of one-channel trials
        check_fit(out.params, n)
        assert out.transition_matrix.shape == (D, D)
        assert out.observation_matrix.shape == (n, D)
        assert out.log_likelihoods.shape == (out.n_iter,) and out.n_iter <= kw["n_iter"]


# ------------------------------------------------------------------------------------------
# gauge / identifiability tools
# ------------------------------------------------------------------------------------------
RNG = np.random.default_rng(3)
GC = RNG.normal(size=(4, 2))
GQ = np.array([[0.5, 0.1], [0.1, 0.3]])
GS = np.array([[1.0, 0.5], [-0.2, 2.0]])
GX = RNG.normal(size=(9, 2))
GY = GX @ GS.T + 0.01 * RNG.normal(size=(9, 2))
GA = np.array([[0.9, 0.2], [-0.1, 0.8]])
GAUGE_KINDS = ("ok", "ok", "ok", "ok", "nan", "inf", "huge", "tiny", "big", "str", "none",
               "complex", "object_str", "list", "rank1", "rank4", "transpose", "empty_T",
               "zeros", "bool", "scalar", "ragged_N", "float32", "int32", "neg")
gauge_kind = st.sampled_from(GAUGE_KINDS)
FLAGS = (True, False, True, False, "no", None, 1, np.bool_(True), OPAQUE)


def gauge_call(entry, fn, args, arg, kind, pos, names):
    args = dict(args)
    if arg is not None and args.get(arg) is not None:
        args[arg] = mutate_value(args[arg], kind, pos) if not isinstance(
            args[arg], np.ndarray) else mutate(kind, args[arg], pos)
    elif arg is not None:   # an optional argument left out: give it a mutated value
        args[arg] = mutate(kind, GQ, pos)
    before = snapshot(args)
    out = exercise(entry, fn, names=names, **args)
    assert_unchanged(before, args, "arguments")
    return out, args


def spd(M):
    return np.allclose(M, M.T) and np.all(np.linalg.eigvalsh(0.5 * (M + M.T)) > 0)


@fuzz_settings()
@given(arg=st.sampled_from(["C", "Q", "P", None]), kind=gauge_kind, pos=position,
       with_q=st.booleans())
def test_canonical_transform(arg, kind, pos, with_q):
    base = {"C": GC, "Q": GQ if with_q else None, "P": None}
    out, args = gauge_call("canonical_transform", gauge.canonical_transform, base, arg, kind,
                           pos, ("C", "Q", "P"))
    if out is not None:
        d = np.shape(args["C"])[1]
        assert out.shape == (d, d) and np.linalg.matrix_rank(out) == d
        M = args["P"] if args["P"] is not None else args["Q"]
        if M is not None and kind == "ok":
            assert np.allclose(out @ np.asarray(M, float) @ out.T, np.eye(d), atol=1e-8)


# keys that transform_params passes through unchanged (documented): not its to validate
PASS_THROUGH = ("['d']", "['R']", "['D']")
PDICT = {"A": GA, "Q": GQ, "C": GC, "b": np.zeros(2), "m0": np.ones(2), "P0": np.eye(2),
         "B": np.ones((2, 1)), "d": np.zeros(4), "R": np.eye(4)}


@fuzz_settings()
@given(key=st.sampled_from(sorted(PDICT) + ["P", "params", None]), kind=gauge_kind,
       pos=position)
def test_canonicalize(key, kind, pos):
    params = dict(PDICT)
    P = None
    if key == "params":
        params = {"none": None, "str": "x", "list": [GC], "ok": params}.get(kind, OPAQUE)
    elif key == "P":
        P = mutate(kind, GQ, pos)
    elif key is not None:
        params[key] = mutate(kind, params[key], pos)
    before, pbefore = snapshot(params), snapshot(P)
    out = exercise("canonicalize", gauge.canonicalize, params, P,
                   names=("params", "P", "C", "Q"), allow_nonfinite=PASS_THROUGH)
    assert_unchanged(before, params, "params")
    assert_unchanged(pbefore, P, "P")
    if out is not None:
        new, S = out
        assert S.shape == (2, 2) and set(new) == set(params)
        for k in ("A", "Q", "C", "P0"):
            assert np.asarray(new[k]).shape == np.asarray(params[k]).shape
        if kind == "ok":
            assert spd(new["Q"]) and spd(new["P0"])
            assert np.allclose(S @ GQ @ S.T, np.eye(2))   # whitened by Q


@fuzz_settings()
@given(key=st.sampled_from(sorted(PDICT) + ["S", "params", None]), kind=gauge_kind,
       pos=position)
def test_transform_params(key, kind, pos):
    params = dict(PDICT)
    S = GS
    if key == "params":
        params = {"none": None, "str": "x", "list": [GC], "ok": params}.get(kind, OPAQUE)
    elif key == "S":
        S = mutate(kind, GS, pos)
    elif key is not None:
        params[key] = mutate(kind, params[key], pos)
    before, sbefore = snapshot(params), snapshot(S)
    out = exercise("transform_params", gauge.transform_params, params, S,
                   names=("params", "S"), allow_nonfinite=PASS_THROUGH)
    assert_unchanged(before, params, "params")
    assert_unchanged(sbefore, S, "S")
    if out is not None:
        assert set(out) == set(params)
        S_, C_ = np.asarray(S, float), np.asarray(params["C"], float)
        assert np.allclose(out["C"] @ S_, C_, rtol=1e-6, atol=1e-8 * np.max(np.abs(C_),
                                                                           initial=0.0))
        for k in ("d", "R"):   # passed through unchanged (copies)
            assert_unchanged(snapshot(params[k]), out[k], k)


@fuzz_settings()
@given(arg=st.sampled_from(["mean", "S", "cov", None]), kind=gauge_kind, pos=position,
       cov_rank=st.sampled_from([None, 2, 3]))
def test_transform_latents(arg, kind, pos, cov_rank):
    cov = None if cov_rank is None else (GQ if cov_rank == 2 else np.stack([GQ] * 9))
    out, args = gauge_call("transform_latents", gauge.transform_latents,
                           {"mean": GX, "S": GS, "cov": cov}, arg, kind, pos,
                           ("mean", "S", "cov"))
    if out is not None:
        m, c = out
        assert m.shape == np.shape(args["mean"])
        assert (c is None) == (args["cov"] is None)
        if kind == "ok" and c is not None and c.ndim == 2:
            assert np.allclose(c, GS @ GQ @ GS.T)


@pytest.mark.parametrize("which", ["procrustes_align", "affine_align"])
@fuzz_settings()
@given(arg=st.sampled_from(["X", "Y", "allow_scaling", None]), kind=gauge_kind, pos=position,
       flag=st.sampled_from(FLAGS), t_len=st.sampled_from([9, 9, 9, 2, 1]))
def test_align(which, arg, kind, pos, flag, t_len):
    args = {"X": GX[:t_len], "Y": GY[:t_len]}
    fn = getattr(gauge, which)
    if which == "procrustes_align":
        args["allow_scaling"] = flag
    if arg == "allow_scaling":
        arg = None
    out, args = gauge_call(which, fn, args, arg, kind, pos, ("X", "Y", "allow_scaling"))
    if which == "procrustes_align" and not isinstance(flag, (bool, np.bool_)):
        assert out is None, "a non-boolean allow_scaling was accepted"
    if out is not None:
        aligned, M = out
        assert aligned.shape == np.shape(args["X"]) and M.shape == (2, 2)
        if which == "procrustes_align":
            assert np.allclose(M.T @ M, np.eye(2), atol=1e-8)


@pytest.mark.parametrize("which", ["subspace_angles", "max_subspace_angle"])
@fuzz_settings()
@given(arg=st.sampled_from(["C_fit", "C_true", None]), kind=gauge_kind, pos=position,
       flag=st.sampled_from(FLAGS), d2=st.sampled_from([2, 2, 1]))
def test_subspace_angles(which, arg, kind, pos, flag, d2):
    args = {"C_fit": GC, "C_true": (GC @ GS)[:, :d2], "degrees": flag}
    out, args = gauge_call(which, getattr(gauge, which), args, arg, kind, pos,
                           ("C_fit", "C_true", "degrees"))
    if not isinstance(flag, (bool, np.bool_)):
        assert out is None, "a non-boolean degrees was accepted"
    if out is not None:
        a = np.atleast_1d(out)
        top = 90.0 if args["degrees"] else np.pi / 2
        assert np.all(a >= 0) and np.all(a <= top + 1e-9)


@fuzz_settings()
@given(arg=st.sampled_from(["A_fit", "A_true", None]), kind=gauge_kind, pos=position)
def test_eigenvalue_match(arg, kind, pos):
    out, _ = gauge_call("eigenvalue_match", gauge.eigenvalue_match,
                        {"A_fit": GA, "A_true": GS @ GA @ np.linalg.inv(GS)}, arg, kind, pos,
                        ("A_fit", "A_true"))
    if out is not None:
        assert isinstance(out, float) and out >= 0
        if arg is None:
            assert out < 1e-8   # similar matrices: same spectrum


# ------------------------------------------------------------------------------------------
# regression tests for bugs the fuzzing found
# ------------------------------------------------------------------------------------------
def test_regression_random_params_checks_emission_dim_and_seed():
    model = s.LinearGaussianSSM(1)
    for bad in (1.5, -1, "3", True):  # were NumPy's "negative dimensions ..." and the like
        with pytest.raises((TypeError, ValueError), match="emission_dim"):
            model.random_params(emission_dim=bad)
    with pytest.raises(ValueError, match="emission_dim"):   # 0 silently meant "the model's"
        s.LinearGaussianSSM(1, 3).random_params(emission_dim=0)
    for bad in (-1, 1.5, None):   # were NumPy's "expected non-negative integer" and the like
        with pytest.raises((TypeError, ValueError), match="seed"):
            MODEL.random_params(seed=bad)


@pytest.mark.parametrize("call", ["sample", "initialize", "fit_em"])
def test_regression_seed_checked_by_name(call):
    with pytest.raises(ValueError, match="seed"):   # was "expected non-negative integer"
        if call == "sample":
            MODEL.sample(base_params(), T, seed=-1)
        elif call == "initialize":
            MODEL.initialize(Y, seed=-1)
        else:
            MODEL.fit_em(Y, seed=-1, max_iter=1, progress=False)


def test_regression_overflowing_observations_rejected():
    y = Y.copy()
    y[0, 0] = 1e300
    # was: log_likelihood -inf from smooth / filter / log_prob, and a LinAlgError
    # ("SVD did not converge") from the PCA initialisation of fit_em / fit_sgd
    for call in (lambda: MODEL.smooth(base_params(), y), lambda: MODEL.log_prob(base_params(), y),
                 lambda: MODEL.fit_em(y, max_iter=1, progress=False),
                 lambda: MODEL.fit_sgd(y, n_steps=1, progress=False)):
        with pytest.raises(ValueError, match="observations"):
            call()


def test_regression_non_finite_posterior_raises():
    y = Y.copy()
    y[0, 0] = 1e6   # a large but legal value; with R = 1e-300 the likelihood overflows
    with pytest.raises(FloatingPointError, match="params"):   # was: a -inf score
        MODEL.score(base_params("tinyR"), y)


def test_regression_sgd_divergence_raises():
    # was: an SGDResult with non-finite R and log-likelihood
    with pytest.raises(FloatingPointError, match="learning_rate"):
        MODEL.fit_sgd(Y, n_steps=1, learning_rate=1e300, progress=False)
    with pytest.raises(ValueError, match="learning_rate"):   # True was taken as 1.0
        MODEL.fit_sgd(Y, n_steps=1, learning_rate=True, progress=False)


def test_regression_complex_inputs_rejected():
    model = s.LinearGaussianSSM(D, N, 1)
    p = base_params(q=1)
    with pytest.raises(TypeError, match="inputs"):   # the imaginary part was dropped
        model.sample(p, T, inputs=U + 1j, seed=0)
    with pytest.raises(TypeError, match="future_inputs"):
        model.forecast(p, Y, 2, inputs=U, future_inputs=np.ones((2, 1)) + 1j)


def test_regression_fit_linear_gaussian_em_names_its_arguments():
    with pytest.raises(ValueError, match="n_iter"):   # the message said max_iter
        s.fit_linear_gaussian_em(Y, 1, n_iter=0)
    for bad in ("str", 3.0, np.ones(())):   # was: IndexError "tuple index out of range"
        with pytest.raises((TypeError, ValueError), match="inputs"):
            s.fit_linear_gaussian_em(Y, 1, n_iter=1, inputs=bad)


def test_regression_gauge_flags_and_overflow():
    with pytest.raises(TypeError, match="allow_scaling"):   # "no" was taken as True
        gauge.procrustes_align(GX, GY, allow_scaling="no")
    with pytest.raises(TypeError, match="degrees"):
        gauge.subspace_angles(GC, GC, degrees="no")
    with pytest.raises(ValueError, match="S"):   # was: inf covariances
        gauge.transform_latents(GX, np.array([[1e300, 0.0], [0.0, 1.0]]), GQ)
