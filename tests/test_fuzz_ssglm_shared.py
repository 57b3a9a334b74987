"""Property-based fuzzing of the state-space GLM (SSGLM, learning curves) and the
shared-dynamics multi-recording models (issue 9, part B).

Each case is a small valid input with one argument mutated (``fuzz_mutations``); the call
must return finite results of the documented shapes or raise a ValueError/TypeError naming
an argument, and must leave its inputs unmodified.
"""

from __future__ import annotations

import numpy as np
import pytest
from fuzz_harness import exercise, fuzz_settings
from fuzz_mutations import (
    OPAQUE,
    VALUE_KINDS,
    assert_unchanged,
    mutate,
    mutate_value,
    position,
    snapshot,
)
from hypothesis import given
from hypothesis import strategies as st

import spikessm as s

pytestmark = pytest.mark.fuzz

K, T = 4, 20
DT = 0.01
SP = np.random.default_rng(0).poisson(0.3, (K, T)).astype(np.int64)
SP[:, 3] = 1  # every trial has spikes
value_kind = st.sampled_from(VALUE_KINDS)
SSGLM_SPIKES = VALUE_KINDS + ("ragged_T", "allnan", "big")
SSGLM_ARGS = ("spikes", "bin_width", "basis_width", "n_basis", "window_times", "max_iter",
              "link", "q_type", "initial", "basis", None)


def _with(kw, arg, kind, pos):
    kw = dict(kw)
    if arg != "spikes" and kind in ("ragged_T", "allnan", "big"):
        kind = "ok"
    if arg == "spikes" and kind in ("ragged_T", "allnan", "big"):
        kw["spikes"] = mutate(kind, SP, pos)
    elif arg in ("link", "q_type", "initial", "basis") and kind not in ("ok",):
        kw[arg] = {"none": None, "str": "bogus", "bool": True}.get(kind, OPAQUE)
    elif arg is not None:
        kw[arg] = mutate_value(kw[arg], kind, pos)
    return kw


def _ssglm_kw():
    return dict(spikes=SP, bin_width=DT, basis_width=0.05, n_basis=None,
                window_times=np.array([0.0, 0.01, 0.02]), max_iter=1, link="poisson",
                q_type="diagonal", initial="diffuse", basis="pulse")


def _call(entry, fn, kw, also=()):
    before = snapshot(kw)
    out = exercise(entry, fn, names=tuple(kw) + ("trial",), also=(FloatingPointError,) + also,
                   **kw)
    assert_unchanged(before, kw, "arguments")
    return out


def _n_trials(spikes):
    return len(spikes) if isinstance(spikes, list) else np.asarray(spikes).shape[0]


# ------------------------------------------------------------------------------------------
# SSGLM
# ------------------------------------------------------------------------------------------
@fuzz_settings()
@given(arg=st.sampled_from(SSGLM_ARGS), kind=st.sampled_from(SSGLM_SPIKES), pos=position)
def test_ssglm(arg, kind, pos):
    kw = _with(_ssglm_kw(), arg, kind, pos)
    out = _call("ssglm", s.ssglm, kw)
    if out is not None:
        k = _n_trials(kw["spikes"])
        assert out.theta.shape[0] == k and out.rates.shape[0] == k
        assert np.all(out.rates_lower <= out.rates + 1e-9)
        assert np.all(out.rates <= out.rates_upper + 1e-9)
        assert np.all(np.linalg.eigvalsh(out.Q) > 0)


@fuzz_settings()
@given(arg=st.sampled_from(("spikes", "bin_width", "windowTimes", "numBasis", "fitType", None)),
       kind=st.sampled_from(SSGLM_SPIKES), pos=position)
def test_ssglmFB(arg, kind, pos):
    kw = dict(spikes=SP, bin_width=DT, windowTimes=np.array([0.0, 0.01, 0.02]), numBasis=4,
              fitType="poisson")
    if arg == "fitType" and kind != "ok":
        kw["fitType"] = {"none": None, "str": "bogus"}.get(kind, OPAQUE)
    elif arg == "spikes" and kind in ("ragged_T", "allnan", "big"):
        kw["spikes"] = mutate(kind, SP, pos)
    elif arg is not None and kind not in ("ragged_T", "allnan", "big"):
        kw[arg] = mutate_value(kw[arg], kind, pos)
    out = _call("ssglmFB", lambda **k: s.ssglmFB(**k, max_iter=1), kw)
    if out is not None:
        assert out.theta.shape[0] == _n_trials(kw["spikes"])


@pytest.mark.parametrize("entry", ["glm_psth", "per_trial_glm"])
@fuzz_settings()
@given(arg=st.sampled_from(SSGLM_ARGS[:5] + ("link", "basis", None)),
       kind=st.sampled_from(SSGLM_SPIKES), pos=position)
def test_glm_psth_per_trial(entry, arg, kind, pos):
    kw = _ssglm_kw()
    for k in ("max_iter", "q_type", "initial"):
        kw.pop(k)
    kw = _with(kw, arg, kind, pos)
    out = _call(entry, getattr(s, entry), kw)
    if out is not None:
        assert np.all(np.asarray(out.rates) >= 0)


FIT = s.ssglm(SP, DT, basis_width=0.05, window_times=[0.0, 0.01, 0.02], max_iter=2)


@fuzz_settings()
@given(arg=st.sampled_from(("window", "n_draws", "seed", "result", None)), kind=value_kind,
       pos=position)
def test_rate_comparison_matrix(arg, kind, pos):
    kw = dict(result=FIT, window=np.array([0.0, 0.1]), n_draws=20, seed=0)
    if arg == "result":
        kw["result"] = {"none": None, "str": "fit"}.get(kind, FIT)
    elif arg is not None:
        kw[arg] = mutate_value(kw[arg], kind, pos)
    out = _call("rate_comparison_matrix", s.rate_comparison_matrix, kw)
    if out is not None:
        assert out.shape == (K, K)
        assert np.all((out >= 0) & (out <= 1))
        off = ~np.eye(K, dtype=bool)
        assert np.allclose((out + out.T)[off], 1.0, atol=1e-9) or np.all(out[off] <= 1)


@fuzz_settings()
@given(arg=st.sampled_from(("draws", "window", "result", None)), kind=value_kind, pos=position)
def test_window_rates(arg, kind, pos):
    draws = np.random.default_rng(1).normal(size=(5,) + FIT.theta.shape) * 0.1 + FIT.theta
    kw = dict(result=FIT, draws=draws, window=np.array([0.0, 0.1]))
    if arg == "result":
        kw["result"] = {"none": None, "str": "fit"}.get(kind, FIT)
    elif arg is not None:
        kw[arg] = mutate_value(kw[arg], kind, pos)
    out = _call("window_rates", s.window_rates, kw)
    if out is not None:
        assert out.shape == (np.asarray(kw["draws"]).shape[0], K)
        assert np.all(out >= 0)


@fuzz_settings()
@given(arg=st.sampled_from(("prob", "reference", "level", None)), kind=value_kind,
       pos=position, vec=st.booleans(), sustained=st.booleans())
def test_learning_trial(arg, kind, pos, vec, sustained):
    rng = np.random.default_rng(pos)
    prob = rng.uniform(size=K) if vec else rng.uniform(size=(K, K))
    kw = dict(prob=prob, reference=0, level=0.9)
    if arg is not None:
        kw[arg] = mutate_value(kw[arg], kind, pos)
    out = _call("learning_trial", lambda **k: s.learning_trial(**k, sustained=sustained), kw)
    if out is not None:
        assert isinstance(out, (int, np.integer))
        assert int(kw["reference"]) < out < np.asarray(kw["prob"]).shape[0]


@fuzz_settings()
@given(arg=st.sampled_from(("correct", "reaction_times", "chance", "level", "max_iter",
                            "sigma2_init", None)),
       kind=value_kind, pos=position)
def test_learning_curve(arg, kind, pos):
    rng = np.random.default_rng(2)
    correct = (rng.uniform(size=15) < np.linspace(0.3, 0.9, 15)).astype(np.int64)
    kw = dict(correct=correct, reaction_times=np.exp(rng.normal(size=15)), chance=0.5,
              level=0.95, max_iter=2, sigma2_init=0.05)
    if arg is not None:
        kw[arg] = mutate_value(kw[arg], kind, pos)
    before = snapshot(kw)
    out = exercise("learning_curve", s.learning_curve, names=tuple(kw),
                   also=(FloatingPointError,),
                   allow_nonfinite=("result.rt",) if kw["reaction_times"] is None else (),
                   **kw)
    assert_unchanged(before, kw, "arguments")
    if out is not None:
        n = np.asarray(kw["correct"]).shape[0]
        assert out.p.shape == (n,)
        assert np.all((out.p_lower <= out.p + 1e-9) & (out.p <= out.p_upper + 1e-9))
        assert np.all((out.p > 0) & (out.p < 1))


# ------------------------------------------------------------------------------------------
# shared-dynamics models (lists of recordings)
# ------------------------------------------------------------------------------------------
TS = 9
REC = [np.random.default_rng(3).poisson(1.0, (TS, 3)).astype(np.int64),
       np.random.default_rng(4).poisson(1.0, (TS, 2)).astype(np.int64)]
GREC = [np.random.default_rng(5).normal(size=(TS, 3)),
        np.random.default_rng(6).normal(size=(TS, 2))]
REC_KINDS = ("ok", "ok", "ok", "ok", "one", "empty", "none", "str", "array", "tuple",
             "nan", "neg", "frac", "inf", "huge", "complex", "empty_T", "rank4", "object_str",
             "allnan_col", "big", "float32")


def recordings(kind, base, pos):
    if kind == "ok":
        return [b.copy() for b in base]
    if kind == "one":
        return [base[0].copy()]
    if kind == "empty":
        return []
    if kind == "none":
        return None
    if kind == "str":
        return "recordings"
    if kind == "array":
        return base[0].copy()
    if kind == "tuple":
        return tuple(b.copy() for b in base)
    i = pos % len(base)
    out = [b.copy() for b in base]
    out[i] = mutate(kind, base[i], pos)
    return out


@fuzz_settings()
@given(kind=st.sampled_from(REC_KINDS), pos=position,
       state_dim=st.sampled_from([1, 1, 1, 0, 1.5, "1"]),
       max_iter=st.sampled_from([1, 1, 1, 0, -1]),
       init=st.sampled_from(["random", "random", "log_empirical_rate", "bogus"]),
       bin_width=st.sampled_from([0.1, 0.1, 0.0, np.nan]),
       what=st.sampled_from(["fit", "fit", "smooth", "log_prob"]))
def test_shared_poisson_lds(kind, pos, state_dim, max_iter, init, bin_width, what):
    recs = recordings(kind, REC, pos)
    before = snapshot(recs)
    names = ("recordings", "state_dim", "max_iter", "init", "bin_width", "params")

    def run():
        model = s.SharedPoissonLDS(state_dim, bin_width)
        if what == "fit":
            return model.fit(recs, max_iter=max_iter, init=init, progress=False)
        return getattr(model, what)(SHARED_PLDS.params, recs)

    out = exercise("SharedPoissonLDS", run, names=names, also=(FloatingPointError,))
    assert_unchanged(before, recs, "recordings")
    if out is not None and what == "fit":
        assert len(out.params.recordings) == len(recs)
        assert np.isfinite(out.log_likelihood)
    elif out is not None and what == "smooth":
        assert [p.means[0].shape for p in out] == [(np.asarray(r).shape[0], 1) for r in recs]
    elif out is not None:
        assert np.asarray(out).shape == (len(recs),)


SHARED_PLDS = s.SharedPoissonLDS(1, 0.1).fit(REC, max_iter=1, init="random", progress=False)


@fuzz_settings()
@given(kind=st.sampled_from(REC_KINDS), pos=position,
       state_dim=st.sampled_from([1, 1, 1, 0, 1.5, None]),
       max_iter=st.sampled_from([1, 1, 1, 0, 2.5]),
       init=st.sampled_from(["pca", "pca", "pca", "bogus"]),
       what=st.sampled_from(["fit", "fit", "smooth", "log_prob"]))
def test_shared_linear_gaussian_ssm(kind, pos, state_dim, max_iter, init, what):
    recs = recordings(kind, GREC, pos)
    before = snapshot(recs)

    def run():
        model = s.SharedLinearGaussianSSM(state_dim)
        if what == "fit":
            return model.fit(recs, max_iter=max_iter, init=init, progress=False)
        return getattr(model, what)(SHARED_LG.params, recs)

    out = exercise("SharedLinearGaussianSSM", run,
                   names=("recordings", "state_dim", "max_iter", "init", "params"),
                   also=(FloatingPointError,))
    assert_unchanged(before, recs, "recordings")
    if out is not None and what == "fit":
        assert len(out.params.recordings) == len(recs)
        assert np.isfinite(out.log_likelihood)
    elif out is not None and what == "log_prob":
        assert np.asarray(out).shape == (len(recs),)


SHARED_LG = s.SharedLinearGaussianSSM(1).fit(GREC, max_iter=1, progress=False)


@fuzz_settings()
@given(d=st.sampled_from([1, 2]),
       arg=st.sampled_from(("A", "A_ref", "Q", "Q_ref", "m0", "m0_ref", "n_search",
                            "n_starts", "seed", None)),
       kind=value_kind, pos=position)
def test_align_dynamics(d, arg, kind, pos):
    rng = np.random.default_rng(7)
    A = np.diag(np.linspace(0.5, 0.9, d))
    O = np.linalg.qr(rng.normal(size=(d, d)))[0]
    kw = dict(A=A, A_ref=O @ A @ O.T, Q=np.eye(d), Q_ref=np.eye(d), m0=np.ones(d),
              m0_ref=O @ np.ones(d), n_search=20, n_starts=1, seed=0)
    if arg is not None:
        kw[arg] = mutate_value(kw[arg], kind, pos)
    out = _call("align_dynamics", lambda A, A_ref, **k: s.align_dynamics(A, A_ref, **k), kw)
    if out is not None:
        assert out.shape == (d, d)
        assert np.allclose(out @ out.T, np.eye(d), atol=1e-8)


@fuzz_settings()
@given(arg=st.sampled_from(("loadings", "means", "valid", None)), kind=value_kind,
       pos=position, which=st.integers(0, 1))
def test_shared_canonical_transform(arg, kind, pos, which):
    rng = np.random.default_rng(8)
    d = 2
    kw = dict(loadings=[rng.normal(size=(3, d)), rng.normal(size=(2, d))],
              means=[rng.normal(size=(1, TS, d)), rng.normal(size=(2, TS, d))],
              valid=[np.ones((1, TS), bool), np.ones((2, TS), bool)])
    if arg is not None:
        kw[arg] = list(kw[arg])
        kw[arg][which] = mutate_value(kw[arg][which], kind, pos)
    out = _call("shared_canonical_transform", s.shared_canonical_transform, kw)
    if out is not None:
        assert out.shape == (d, d)
        assert abs(np.linalg.det(out)) > 0


# ------------------------------------------------------------------------------------------
# regression tests for bugs the fuzzing found
# ------------------------------------------------------------------------------------------
def test_regression_ssglm_argument_checks():
    with pytest.raises(TypeError, match="basis"):  # was: float() TypeError
        s.glm_psth(SP, DT, basis=OPAQUE)
    with pytest.raises(ValueError, match="window_times"):  # was: "Maximum allowed size"
        s.glm_psth(SP, DT, window_times=[0.0, 1e300])
    with pytest.raises(ValueError, match="basis_width"):  # was: OverflowError
        s.glm_psth(SP, 1e-300)
    big = SP.astype(float)
    big[0, 0] = 1e300  # was: non-finite per-trial coefficients
    with pytest.raises(ValueError, match="spikes"):
        s.per_trial_glm(big, DT)
    with pytest.raises(ValueError, match="windowTimes"):  # named window_times
        s.ssglmFB(SP, DT, windowTimes=[np.nan, 0.01], max_iter=1)
    with pytest.raises(TypeError, match="numBasis"):
        s.ssglmFB(SP, DT, numBasis=2.5, max_iter=1)


def test_regression_ssglm_posterior_summaries():
    with pytest.raises(TypeError, match="result"):  # was: AttributeError
        s.rate_comparison_matrix("fit")
    with pytest.raises(TypeError, match="window"):
        s.rate_comparison_matrix(FIT, "ab", n_draws=5)
    draws = np.repeat(FIT.theta[None], 2, axis=0)
    with pytest.raises(ValueError, match="draws"):  # was: silent NaN rates
        s.window_rates(FIT, np.full_like(draws, np.nan))
    with pytest.raises(ValueError, match="draws"):  # was: infinite rates
        s.window_rates(FIT, draws + 1e300)
    with pytest.raises(TypeError, match="level"):  # was: anonymous comparison errors
        s.learning_trial(np.full(K, 0.5), level="0.9")
    with pytest.raises(TypeError, match="reference"):
        s.learning_trial(np.full(K, 0.5), reference=np.nan)
    with pytest.raises(ValueError, match="prob"):
        s.learning_trial(np.full(K, 2.0))


def test_regression_learning_curve_argument_checks():
    correct = np.array([0, 1, 0, 1, 1, 1, 1, 1])
    for kw, name in [(dict(sigma2_init=None), "sigma2_init"), (dict(level="x"), "level"),
                     (dict(chance="x"), "chance")]:
        with pytest.raises(TypeError, match=name):
            s.learning_curve(correct, **kw)
    with pytest.raises(ValueError, match="correct"):  # (2, 4) was silently flattened
        s.learning_curve(correct.reshape(2, 4))
    with pytest.raises(TypeError, match="reaction_times"):
        s.learning_curve(correct, "rt")


def test_regression_shared_models_argument_checks():
    bad = [GREC[0], np.full((TS, 2), np.nan)]
    with pytest.raises(ValueError, match=r"recordings\[1\]"):  # named "observations"
        s.SharedLinearGaussianSSM(1).smooth(SHARED_LG.params, bad)
    huge = [GREC[0] * 1e300, GREC[1]]  # was: LinAlgError / a non-finite log-likelihood
    with pytest.raises(ValueError, match=r"recordings\[0\]"):
        s.SharedLinearGaussianSSM(1).fit(huge, max_iter=1, progress=False)
    with pytest.raises(ValueError, match=r"recordings\[0\]"):
        s.SharedLinearGaussianSSM(1).log_prob(SHARED_LG.params, huge)
    with pytest.raises(ValueError, match="n_starts"):  # was: IndexError
        s.align_dynamics(np.eye(2), np.eye(2), n_starts=0)
    with pytest.raises(TypeError, match="A_ref"):
        s.align_dynamics(np.eye(2), "A")
    with pytest.raises(ValueError, match="valid"):  # was: anonymous IndexError
        s.shared_canonical_transform([np.ones((2, 1))], [np.ones((1, 3, 1))],
                                     [np.ones((1, 2), bool)])
    with pytest.raises(ValueError, match="means"):  # was: "P contains non-finite values"
        s.shared_canonical_transform([np.ones((2, 1))], [np.full((1, 3, 1), 1e300)],
                                     [np.ones((1, 3), bool)])
