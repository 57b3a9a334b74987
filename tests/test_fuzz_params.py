"""Property-based fuzzing of the parameter dataclasses built directly (issue 9).

Users can build :class:`LGSSMParams`, :class:`PLDSParams`, :class:`SharedLGSSMParams` and
:class:`SharedPLDSParams` without ``make_params`` / ``make_plds_params``; each validates
itself in ``__post_init__``. Every case is a valid parameter set with one field mutated
(``fuzz_mutations``): construction must give finite float64 fields of consistent shapes,
covariances symmetric (to rounding) and positive definite, or raise a ValueError /
TypeError naming the field; the arguments are never modified and accepted values are
stored unchanged (bitwise). No JAX code runs here: construction is pure NumPy.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from fuzz_harness import exercise, fuzz_settings
from fuzz_mutations import OPAQUE, VALUE_KINDS, assert_unchanged, mutate_value, position, snapshot
from hypothesis import given
from hypothesis import strategies as st

import spikessm as s

pytestmark = pytest.mark.fuzz

D, N, Q_IN, M, L = 2, 3, 1, 2, 2
_rng = np.random.default_rng(0)
LG = s.make_params(A=np.array([[0.9, 0.1], [-0.1, 0.8]]), C=_rng.standard_normal((N, D)),
                   Q=np.array([[0.2, 0.05], [0.05, 0.1]]), R=np.array([0.5, 1.0, 0.3]),
                   b=np.array([0.1, -0.2]), B=0.1 * np.ones((D, Q_IN)),
                   d=np.array([1.0, 0.0, -1.0]), D=0.2 * np.ones((N, Q_IN)),
                   m0=np.array([0.5, -0.5]), P0=np.array([[1.0, 0.2], [0.2, 2.0]]))
PL = s.make_plds_params(A=np.array([[0.95, 0.0], [0.1, 0.9]]), Q=0.05 * np.eye(D),
                        C=_rng.standard_normal((N, D)), d=np.log([5.0, 10.0, 2.0]),
                        b=np.zeros(D), D=0.1 * np.ones((N, Q_IN)), H=-0.5 * np.ones((N, L)),
                        Cg=_rng.standard_normal((M, D)), dg=np.array([0.0, 1.0]),
                        R=np.array([[1.0, 0.3], [0.3, 0.5]]), m0=np.zeros(D),
                        P0=np.eye(D), bin_width=0.01)
PL_POISSON = s.make_plds_params(A=PL.A, Q=PL.Q, C=PL.C, d=PL.d, bin_width=0.01)

# extra mutations for the parameter sets: asymmetric, indefinite, a wrong size on one axis
EXTRA = ("asym", "indef", "grow0", "grow1", "ints", "jitter")
KINDS = VALUE_KINDS + EXTRA
COVS = {"Q", "R", "P0"}
BAD_ALWAYS = ("nan", "inf", "str", "none", "complex", "object_str", "rank4", "asym",
              "indef", "grow0", "grow1")


def mutate_field(value, kind, pos, name):
    """``value`` (a field of a valid parameter set) changed by ``kind``."""
    if kind in EXTRA:
        a = np.array(value, dtype=np.float64)
        if kind == "ints":
            return np.round(a).astype(np.int64) if name not in COVS else np.eye(
                a.shape[0], dtype=np.int64)
        if kind == "jitter":   # symmetric only to rounding: must be accepted for covariances
            if a.ndim == 2 and a.shape[0] == a.shape[1] and a.size > 1:
                a = a.copy()
                a[0, 1] *= 1 + 4e-16
            return a
        if kind == "asym":
            if a.ndim == 2 and a.size > 1:
                a = a.copy()
                a[0, -1] += 1.0 + abs(a[0, -1])
                return a if name in COVS else np.full((3, 3, 3), 1.0)
            return np.full((3, 3, 3), 1.0)
        if kind == "indef":
            if a.ndim == 2 and a.shape[0] == a.shape[1] and a.size:
                return a - 10.0 * np.eye(a.shape[0]) if name in COVS else np.full((3, 3, 3), 1.0)
            return np.full((3, 3, 3), 1.0)
        if a.ndim == 0:
            return np.full((3, 3, 3), 1.0)
        ax = 0 if kind == "grow0" or a.ndim == 1 else 1
        return np.concatenate([a, np.take(a, [0], axis=ax) if a.shape[ax] else
                               np.ones(a.shape[:ax] + (1,) + a.shape[ax + 1:])], axis=ax)
    if name == "bin_width" and kind == "rank1":
        return np.array([value])
    return mutate_value(value, kind, pos)


def check_stored(out, kw, changed):
    """Accepted: float64 fields equal (bitwise) to the arguments, none aliasing them."""
    for f in dataclasses.fields(out):
        got, src = getattr(out, f.name), kw[f.name]
        if f.name == "bin_width":
            assert isinstance(got, float) and got > 0 and got == float(src)
            continue
        assert isinstance(got, np.ndarray) and got.dtype == np.float64, f.name
        assert np.array_equal(got, np.asarray(src, dtype=np.float64)), f"{f.name} changed"
        assert not np.shares_memory(got, np.asarray(src)), f"{f.name} aliases the argument"
    for name in ("Q", "R", "P0"):
        c = getattr(out, name)
        if c.size:
            assert np.max(np.abs(c - c.T)) <= 1e-8 * np.max(np.abs(c)), name
            assert np.all(np.linalg.eigvalsh(0.5 * (c + c.T)) > 0), name


def _fields(p):
    return {f.name: getattr(p, f.name).copy() if isinstance(getattr(p, f.name), np.ndarray)
            else getattr(p, f.name) for f in dataclasses.fields(p)}


# ------------------------------------------------------------------------------------------
# LGSSMParams
# ------------------------------------------------------------------------------------------
LG_NAMES = tuple(f.name for f in dataclasses.fields(s.LGSSMParams))


@fuzz_settings()
@given(arg=st.sampled_from(LG_NAMES), kind=st.sampled_from(KINDS), pos=position)
def test_lgssm_params(arg, kind, pos):
    kw = _fields(LG)
    kw[arg] = mutate_field(kw[arg], kind, pos, arg)
    before = snapshot(kw)
    out = exercise("LGSSMParams", s.LGSSMParams, names=LG_NAMES, **kw)
    assert_unchanged(before, kw, "arguments")
    if kind in BAD_ALWAYS:
        assert out is None, f"{arg} {kind} accepted"
    if kind in ("ok", "jitter", "list", "ints"):
        assert out is not None, f"{arg} {kind} rejected"
    if out is not None:
        check_stored(out, kw, arg)
        assert out.state_dim == D and out.emission_dim == N
        assert out.B.shape == (D, out.input_dim) and out.D.shape == (N, out.input_dim)


# ------------------------------------------------------------------------------------------
# PLDSParams (hybrid base with covariates and history; a pure Poisson base too)
# ------------------------------------------------------------------------------------------
PL_NAMES = tuple(f.name for f in dataclasses.fields(s.PLDSParams))


@fuzz_settings()
@given(arg=st.sampled_from(PL_NAMES), kind=st.sampled_from(KINDS), pos=position,
       hybrid=st.sampled_from([True, True, False]))
def test_plds_params(arg, kind, pos, hybrid):
    kw = _fields(PL if hybrid else PL_POISSON)
    if arg == "bin_width" and kind in EXTRA:
        kw[arg] = {"asym": -0.01, "indef": 0.0, "grow0": np.inf, "grow1": "0.01",
                   "ints": 1, "jitter": np.float32(0.01)}[kind]
    else:
        kw[arg] = mutate_field(kw[arg], kind, pos, arg)
    before = snapshot(kw)
    out = exercise("PLDSParams", s.PLDSParams, names=PL_NAMES, **kw)
    assert_unchanged(before, kw, "arguments")
    value = kw[arg]
    sized = not (isinstance(value, np.ndarray) and value.size == 0)
    if kind in ("nan", "inf", "str", "none", "complex", "object_str") and sized:
        assert out is None, f"{arg} {kind} accepted"
    if arg == "bin_width" and not (
            isinstance(value, (int, float, np.integer, np.floating))
            and not isinstance(value, bool) and np.isfinite(value) and value > 0):
        assert out is None, f"bin_width={value!r} accepted"
    if arg in COVS and kind in ("asym", "indef") and sized:
        assert out is None, f"{arg} {kind} accepted"
    if kind in ("ok", "jitter") and arg != "bin_width":
        assert out is not None, f"{arg} {kind} rejected"
    if out is not None:
        check_stored(out, kw, arg)
        k, n = out.state_dim, out.n_neurons
        assert out.C.shape == (n, k) and out.D.shape[0] == n and out.H.shape[0] == n
        assert out.Cg.shape == (out.n_gaussian, k) and out.R.shape == (out.n_gaussian,) * 2


# ------------------------------------------------------------------------------------------
# SharedPLDSParams / SharedLGSSMParams
# ------------------------------------------------------------------------------------------
PL_OTHER = s.make_plds_params(A=PL.A, Q=PL.Q, C=np.ones((4, D)), d=np.zeros(4),
                              bin_width=0.01)
PL_OWN_DYN = s.make_plds_params(A=0.5 * np.eye(D), Q=PL.Q, C=PL.C, bin_width=0.01)
PL_OWN_INIT = s.make_plds_params(A=PL.A, Q=PL.Q, C=PL.C, m0=np.ones(D), bin_width=0.01)
PL_DT = s.make_plds_params(A=PL.A, Q=PL.Q, C=PL.C, bin_width=0.02)
PL_D3 = s.make_plds_params(A=0.9 * np.eye(3), Q=np.eye(3), C=np.ones((2, 3)), bin_width=0.01)
PL_ROUND = s.PLDSParams(**{**_fields(PL_OTHER), "A": PL.A * (1 + 1e-15)})
LG_OTHER = s.make_params(A=LG.A, Q=LG.Q, C=np.ones((4, D)), R=np.ones(4), b=LG.b,
                         m0=LG.m0, P0=LG.P0)
LG_OWN_DYN = s.make_params(A=0.5 * np.eye(D), Q=LG.Q, C=LG.C, R=LG.R, b=LG.b, m0=LG.m0,
                           P0=LG.P0)
LG_OWN_INIT = s.make_params(A=LG.A, Q=LG.Q, C=LG.C, R=LG.R, b=LG.b)
LG_D3 = s.make_params(A=0.9 * np.eye(3), Q=np.eye(3), C=np.ones((2, 3)), R=1.0)

SHARED = {
    "SharedPLDSParams": (s.SharedPLDSParams, s.PLDSParams, [PL_POISSON, PL_OTHER, PL_ROUND],
                         {"own_dyn": PL_OWN_DYN, "own_init": PL_OWN_INIT, "d3": PL_D3,
                          "dt": PL_DT, "wrong_type": LG}),
    "SharedLGSSMParams": (s.SharedLGSSMParams, s.LGSSMParams, [LG, LG_OTHER],
                          {"own_dyn": LG_OWN_DYN, "own_init": LG_OWN_INIT, "d3": LG_D3,
                           "dt": LG_OTHER, "wrong_type": PL}),
}
REC_KINDS = ("ok", "ok", "list", "single", "empty", "none", "str", "dict", "opaque", "own_dyn",
             "own_init", "d3", "dt", "wrong_type", "nested", "array", "generator")
FLAGS = (True, True, False, np.bool_(True), np.False_, 1, 0, "yes", None, 1.0, OPAQUE)


def recordings_of(kind, base, extra, pos):
    if kind == "ok":
        return tuple(base)
    if kind == "list":
        return list(base)
    if kind == "single":
        return (base[0],)
    if kind == "empty":
        return ()
    if kind == "none":
        return None
    if kind == "str":
        return "recordings"
    if kind == "dict":
        return {0: base[0]}
    if kind == "opaque":
        return (base[0], OPAQUE)
    if kind == "nested":
        return ((base[0],), base[0])
    if kind == "array":
        return np.ones((2, 2))
    if kind == "generator":
        return (p for p in base)
    out = list(base)
    out.insert(pos % (len(out) + 1), extra[kind])
    return tuple(out)


@pytest.mark.parametrize("entry", list(SHARED))
@fuzz_settings()
@given(kind=st.sampled_from(REC_KINDS), dyn=st.sampled_from(FLAGS),
       init=st.sampled_from(FLAGS), pos=position)
def test_shared_params(entry, kind, dyn, init, pos):
    cls, inner, base, extra = SHARED[entry]
    recs = recordings_of(kind, base, extra, pos)
    before = snapshot((recs, dyn, init)) if kind != "generator" else None
    out = exercise(entry, cls, recs, dyn, init,
                   names=("recordings", "shared_dynamics", "shared_initial"))
    if before is not None:
        assert_unchanged(before, (recs, dyn, init), "arguments")
    flags_ok = all(isinstance(f, (bool, np.bool_)) for f in (dyn, init))
    if not flags_ok or kind in ("empty", "none", "str", "dict", "opaque", "nested", "array",
                                "generator", "d3", "wrong_type"):
        assert out is None, f"{kind} / {dyn!r} / {init!r} accepted"
    if (kind == "own_dyn" and dyn is True) or (kind == "own_init" and init is True):
        assert out is None, f"{kind} accepted with shared flags {dyn!r}, {init!r}"
    if entry == "SharedPLDSParams" and kind == "dt":
        assert out is None, "recordings with different bin widths accepted"
    if flags_ok and kind in ("ok", "list", "single"):
        assert out is not None, f"{kind} rejected"
    if out is not None:
        assert isinstance(out.recordings, tuple) and len(out.recordings) >= 1
        assert all(isinstance(p, inner) for p in out.recordings)
        assert out.recordings[0] is recs[0]
        assert type(out.shared_dynamics) is bool and type(out.shared_initial) is bool
        assert out.state_dim == D and out.n_recordings == len(out.recordings)


# ------------------------------------------------------------------------------------------
# regression tests for what the fuzzing found
# ------------------------------------------------------------------------------------------
def test_regression_lgssm_params_validate_themselves():
    kw = _fields(LG)
    with pytest.raises(ValueError, match="Q"):   # was: stored, the filter returned NaN
        s.LGSSMParams(**{**kw, "Q": np.full((D, D), np.nan)})
    with pytest.raises(TypeError, match="C"):    # was: a string was stored
        s.LGSSMParams(**{**kw, "C": "loadings"})
    with pytest.raises(ValueError, match="R"):   # was: accepted, fails later in Cholesky
        s.LGSSMParams(**{**kw, "R": -np.eye(N)})
    with pytest.raises(ValueError, match="d"):
        s.LGSSMParams(**{**kw, "d": np.zeros(N + 1)})
    p = s.LGSSMParams(**{**kw, "A": [[1, 0], [0, 1]]})
    assert p.A.dtype == np.float64   # was: a list stored as given (p.state_dim failed)


def test_regression_plds_params_validate_themselves():
    kw = _fields(PL)
    with pytest.raises(ValueError, match="bin_width"):   # was: negative bin width stored
        s.PLDSParams(**{**kw, "bin_width": -0.01})
    with pytest.raises(TypeError, match="bin_width"):
        s.PLDSParams(**{**kw, "bin_width": "0.01"})
    with pytest.raises(ValueError, match="P0"):
        s.PLDSParams(**{**kw, "P0": np.array([[1.0, 2.0], [0.0, 1.0]])})
    with pytest.raises(ValueError, match="H"):
        s.PLDSParams(**{**kw, "H": np.ones((N + 1, L))})
    fitted_like = s.PLDSParams(**{**kw, "Q": kw["Q"] + np.array([[0, 1e-18], [0, 0]])})
    assert np.array_equal(fitted_like.Q, kw["Q"] + np.array([[0, 1e-18], [0, 0]]))


def test_regression_shared_params_validate_themselves():
    with pytest.raises(ValueError, match="shared_dynamics"):   # was: silently inconsistent
        s.SharedPLDSParams((PL_POISSON, PL_OWN_DYN), True, False)
    with pytest.raises(TypeError, match="recordings"):   # was: a string stored
        s.SharedLGSSMParams("abc", True, True)
    with pytest.raises(TypeError, match="shared_initial"):
        s.SharedLGSSMParams((LG,), True, "no")
    with pytest.raises(ValueError, match="recordings"):
        s.SharedPLDSParams((), True, True)
    sp = s.SharedPLDSParams([PL_POISSON, PL_OTHER], True, True)
    assert isinstance(sp.recordings, tuple)
