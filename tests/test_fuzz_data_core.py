"""Property-based fuzzing of the data layer and of saved files (issue 9).

Binning (``bin_spike_times``, ``resample_covariate``, ``rebin_counts``), the
:class:`SpikeTrials` container and its methods, ``save`` / ``load`` round trips of fuzzed
results, and files that are valid containers with malformed content: ``.npz`` archives with
wrong members, shapes or dtypes; saved fits whose JSON description was edited; ``.mat``
files with wrong variable shapes; CSV tables with garbage cells. Random bytes are fed to the
readers by ``test_fuzz_data_io.py``. Every call must return finite results of the documented
shapes or raise a ValueError/TypeError naming an argument or the file
(``fuzz_harness.exercise``), must not modify its inputs, and must never unpickle.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import struct
from pathlib import Path

import numpy as np
import pytest
import scipy.io
from bitwise import assert_same
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
from hypothesis.extra import numpy as hnp

import spikessm as s
from spikessm.io import load, load_metadata, save

pytestmark = pytest.mark.fuzz

DT = 0.05
SPIKES = [np.array([0.011, 0.05, 0.13, 0.29]), np.array([0.02, 0.2]), np.array([])]
pick = st.integers(0, 60)



def check_recording(rec):
    assert isinstance(rec, s.SpikeTrials) and rec.n_trials >= 1 and rec.n_units >= 1
    for c in rec.counts:
        assert c.ndim == 2 and c.shape[1] == rec.n_units and c.dtype == np.float64
        ok = c[~np.isnan(c)]
        assert np.all(ok >= 0) and np.all(np.isfinite(ok))
    assert rec.unit_ids.shape == (rec.n_units,) and rec.trial_starts.shape == (rec.n_trials,)
    assert np.isfinite(rec.bin_width) and rec.bin_width > 0


# ------------------------------------------------------------------------------------------
# bin_spike_times, resample_covariate, rebin_counts
# ------------------------------------------------------------------------------------------
T_COV = np.linspace(0.0, 0.3, 31)
V_COV = np.sin(T_COV)
BIN_OPTS = {
    "spike_times": [{"a": SPIKES[0], "b": SPIKES[1]}, [list(x) for x in SPIKES],
                    np.array([0.1, 0.2]), tuple(SPIKES), "str", None, [],
                    [np.array([np.nan])], [np.array([np.inf])], [np.ones((2, 2))], [["a"]],
                    [[1e300]], [[-1e12, 0.1]], [[1e9]], [np.array([0.1 + 1j])], [OPAQUE],
                    [[True, False]], [np.array([0.3, 0.1, 0.2])], [[0.1], None]],
    "bin_width": [0.01, 0.3, 0.0, -1.0, np.nan, np.inf, "0.1", None, True, 1e-300, 1e300,
                  np.float32(0.05)],
    "start": [0.0, -1.0, 0.1, np.nan, np.inf, "0", 1e300, True, -1e300, 10.0],
    "stop": [0.3, 0.0, -1.0, np.nan, np.inf, "1", 1e300, 0.01, 1e12],
    "trials": [[(0.0, 0.3)], [(0.0, 0.2), (0.1, 0.3)], [(0.3, 0.0)], [(0.0, np.nan)], "x",
               [[0.0, 1.0, 2.0]], [], np.array([0.0, 0.3]), [(0.0, 1e300)], OPAQUE,
               [(0.0, 0.01)], [(0.0, 1e12)], [(-1e300, 0.0)]],
    "unit_ids": [["a", "b", "c"], [1, 1, 2], [1, 2], [1.5, 2.0, 3.0], [None, 1, 2], "abc",
                 [[1], [2], [3]], np.array([7, 8, 9])],
    "labels": [["x"], [1, 2], "x", [None], [[1]], [1.5]],
    "covariates": [{"x": (T_COV, V_COV)}, {"x": (T_COV, np.c_[V_COV, V_COV])}, {"x": "bad"},
                   {"x": (T_COV, V_COV[:5])}, {"x": (T_COV[::-1], V_COV)},
                   {"x": (T_COV, np.where(T_COV > 0.1, np.inf, V_COV))}, {1: (T_COV, V_COV)},
                   ["x"], {"x": (T_COV, V_COV + 1j)}, {"x": (T_COV + 10, V_COV)},
                   {"x": ("t", V_COV)}, {"x": (T_COV, "v")}, {"x": (None, None)}],
    "covariate_method": ["linear", "nearest", "bogus", None],
    "covariate_outside": ["nan", "edge", "bogus", None],
    "provenance": [{"a": 1}, {1: 2}, "x", {"a": [1, 2]}],
}
BIN_NAMES = tuple(BIN_OPTS) + ("trial", "window", "covariate", "values", "times")


@fuzz_settings()
@given(arg=st.sampled_from([None, None] + list(BIN_OPTS)), k=pick,
       with_cov=st.booleans())
def test_bin_spike_times(arg, k, with_cov):
    kw = one_mutated(dict(spike_times=SPIKES, bin_width=DT, start=None, stop=None,
                          trials=None, unit_ids=None, labels=None,
                          covariates={"x": (T_COV, V_COV)} if with_cov else None,
                          covariate_method="mean", covariate_outside="error",
                          provenance=None), BIN_OPTS, arg, k)
    if arg == "labels":
        kw["trials"] = [(0.0, 0.3)]
    if kw["covariates"] is not None and kw["trials"] is None and kw["start"] is None:
        kw["stop"] = kw["stop"] if kw["stop"] is not None else 0.3
    before = snapshot(kw)
    nan_ok = kw["covariate_outside"] == "nan"
    out = exercise("bin_spike_times", s.bin_spike_times, names=BIN_NAMES,
                   allow_nonfinite=("covariates",) if nan_ok else (), **kw)
    assert_unchanged(before, kw, "arguments")
    value = kw.get(arg)
    if arg == "bin_width" and (isinstance(value, bool) or not isinstance(
            value, (float, np.floating))):
        assert out is None, f"bin_width={value!r} accepted"
    if arg == "spike_times" and (isinstance(value, str) or value is None or (
            isinstance(value, list) and value and isinstance(value[0], np.ndarray)
            and value[0].dtype.kind == "c")):
        assert out is None, f"spike_times={value!r} accepted"
    if out is not None:
        check_recording(out)
        st_ = kw["spike_times"]
        n_spikes = sum(np.size(v) for v in (st_.values() if isinstance(st_, dict) else st_))
        assert np.nansum([c.sum() for c in out.counts]) <= n_spikes * len(out.counts)
        if kw["covariates"]:
            assert set(out.covariates) == set(kw["covariates"])


REC = s.SpikeTrials([np.ones((5, 2)), np.zeros((3, 2))], 0.1, unit_ids=["a", "b"],
                    trial_labels=["L", "R"], trial_starts=[0.0, 1.0])
TIMES = np.linspace(-0.1, 1.5, 40)
VALUES = np.cos(TIMES)
RESAMPLE_OPTS = {
    "times": ["nan", "inf", "str", "none", "complex", "empty_T", "rank4", "huge", "transpose",
              "list", "neg", "unsorted", "object_str"],
    "values": ["nan", "inf", "str", "none", "complex", "empty_T", "rank4", "huge", "list",
               "2col", "object_str", "allnan"],
    "recording": ["none", "array", "opaque"],
    "method": ["linear", "nearest", "bogus", None, 1],
    "outside": ["nan", "edge", "bogus", None],
    "name": ["speed", None, 5],
}


@fuzz_settings()
@given(arg=st.sampled_from([None] + list(RESAMPLE_OPTS)), k=pick, pos=position)
def test_resample_covariate(arg, k, pos):
    kw = one_mutated(dict(times="ok", values="ok", recording="ok", method="mean",
                          outside="error", name="values"), RESAMPLE_OPTS, arg, k)
    times = TIMES[np.argsort(-TIMES)] if kw["times"] == "unsorted" else mutate(
        kw["times"], TIMES, pos)
    values = np.c_[VALUES, -VALUES] if kw["values"] == "2col" else mutate(kw["values"],
                                                                          VALUES, pos)
    rec = {"ok": REC, "none": None, "array": np.ones((5, 2)), "opaque": OPAQUE}[
        kw["recording"]]
    before = snapshot((times, values))
    nan_ok = kw["outside"] == "nan" or kw["values"] in ("nan", "allnan")
    out = exercise("resample_covariate", s.resample_covariate, times, values, rec,
                   method=kw["method"], outside=kw["outside"], name=kw["name"],
                   names=("times", "values", "recording", "method", "outside", "name",
                          str(kw["name"])),
                   allow_nonfinite=("result",) if nan_ok else ())
    assert_unchanged(before, (times, values), "arguments")
    if kw["times"] in ("str", "complex", "object_str", "inf") or kw["values"] in (
            "str", "complex", "object_str", "inf"):
        assert out is None, f"{arg} {kw[arg]} accepted"
    if out is not None:
        assert [a.shape[0] for a in out] == REC.lengths.tolist()
        assert len({a.shape[1] for a in out}) == 1


@fuzz_settings()
@given(kind=st.sampled_from(("ok",) * 4 + ("float32", "int32", "bool", "list", "nan",
                                           "allnan_col", "neg", "frac", "big", "huge", "tiny",
                                           "inf", "neg_inf", "none", "str", "complex",
                                           "object_str", "empty_T", "empty_N", "rank4",
                                           "scalar", "ragged_N", "rank1")),
       factor=st.sampled_from([2] * 4 + [1, 3, 9, 10, 0, -1, 1.5, "2", None, True,
                                         np.int64(4)]),
       pos=position)
def test_rebin_counts(kind, factor, pos):
    counts = mutate(kind, np.arange(18.0).reshape(9, 2), pos)
    before = snapshot(counts)
    has_nan = kind in ("nan", "allnan_col")
    out = exercise("rebin_counts", s.rebin_counts, counts, factor,
                   names=("counts", "factor"), allow_nonfinite=("result",) if has_nan else ())
    assert_unchanged(before, counts, "counts")
    if kind in ("neg", "inf", "neg_inf", "str", "complex", "none", "object_str"):
        assert out is None, f"counts {kind} accepted"
    if out is not None:
        x = np.asarray(counts, float)
        x = x[:, None] if x.ndim == 1 else x
        n = x.shape[0] // factor
        assert out.shape == (n, x.shape[1])
        assert np.allclose(out, x[:n * factor].reshape(n, factor, -1).sum(axis=1),
                           equal_nan=True)


# ------------------------------------------------------------------------------------------
# SpikeTrials: construction and methods
# ------------------------------------------------------------------------------------------
ST_OPTS = {
    "counts": ["nan", "inf", "neg", "frac", "str", "none", "complex", "object_str", "empty_T",
               "empty_N", "rank4", "scalar", "ragged_N", "ragged_T", "allnan", "huge", "list",
               "bool", "3d", "empty_list"],
    "bin_width": [0.0, -1.0, np.nan, np.inf, "0.1", None, True, 1e-300, np.float32(0.1)],
    "unit_ids": [["a", "b", "c"], [1, 1, 2], [1, 2], [1.5, 2.0, 3.0], [None, 1, 2], "abc",
                 [[1], [2], [3]], [b"a", b"b", b"c"], [True, False, True]],
    "trial_labels": [["x"], ["x", "y"], [1.5], [None], "x", [[1]], [True]],
    "trial_starts": [[0.0], [np.nan], [1.0, 2.0], "0", [np.inf], [-5.0], [[0.0]]],
    "covariates": [{"x": [np.ones((9, 1))]}, {"x": np.ones((9, 2))}, {"x": [np.ones((8, 1))]},
                   {"x": [np.full((9, 1), np.inf)]}, {"": [np.ones((9, 1))]},
                   {1: [np.ones((9, 1))]}, "x", {"x": "v"}, {"x": [np.ones((9, 1)) + 1j]},
                   {"x": [np.ones((9, 1))] * 2}],
    "provenance": [{"a": 1}, {1: 2}, "x", None, {"a": np.nan}],
}


@fuzz_settings()
@given(arg=st.sampled_from([None] + list(ST_OPTS) + ["counts"] * 2), k=pick, pos=position)
def test_spike_trials_construction(arg, k, pos):
    kw = one_mutated(dict(counts="ok", bin_width=0.1, unit_ids=None, trial_labels=None,
                          trial_starts=None, covariates={}, provenance={}), ST_OPTS, arg, k)
    base = np.random.default_rng(pos).poisson(2.0, (9, 3)).astype(float)
    kind = kw["counts"]
    kw["counts"] = {"3d": lambda: np.stack([base, base]),
                    "empty_list": lambda: []}.get(kind, lambda: mutate(kind, base, pos))()
    before = snapshot(kw)
    nan_ok = kind in ("nan", "allnan")
    out = exercise("SpikeTrials", s.SpikeTrials,
                   names=tuple(ST_OPTS) + ("covariate",),
                   allow_nonfinite=("counts",) if nan_ok else (), **kw)
    assert_unchanged(before, kw, "arguments")
    if kind in ("inf", "neg", "str", "none", "complex", "object_str", "rank4", "empty_list"):
        assert out is None, f"counts {kind} accepted"
    if arg == "bin_width" and (isinstance(kw["bin_width"], bool) or not isinstance(
            kw["bin_width"], (float, np.floating))):
        assert out is None
    if out is not None:
        if not nan_ok:
            check_recording(out)
        for c in out.counts:
            assert not c.flags.writeable   # read-only copies
        if isinstance(kw["counts"], np.ndarray) and kw["counts"].dtype == np.float64:
            assert not np.shares_memory(out.counts[0], kw["counts"])


REC4 = s.SpikeTrials([np.arange(10.0).reshape(5, 2), np.ones((3, 2)), np.zeros((4, 2)),
                      np.full((6, 2), 2.0)], 0.1, unit_ids=[10, 20],
                     trial_labels=["L", "R", "L", "R"],
                     covariates={"x": [np.arange(n, dtype=float)[:, None] - 2.0
                                       for n in (5, 3, 4, 6)]})
REC_EQ = s.SpikeTrials(np.ones((2, 4, 3)), 0.02)
BAD_INDEX = [1.5, "0", None, True, [0], np.int64(1), -1, 99, -99, 0, 1, OPAQUE]
METHOD_ARGS = {
    "bin_edges": [{"trial": v} for v in BAD_INDEX],
    "bin_centres": [{"trial": v} for v in BAD_INDEX],
    "to_array": [{}],
    "inputs": [{"names": v} for v in (None, "x", ["x"], "y", ["x", "y"], [], 5, ("x", "x"),
                                      OPAQUE)],
    "select": [{"trials": v} for v in ([0, 2], slice(0, 2), [True, False, True, False],
                                       [True], [0.5], [9], [], "0", [[0]], np.array([-1]))]
    + [{"units": v} for v in ([1], [True, False], [5], [], "a", [0.0])]
    + [{"labels": v} for v in ("L", ["L", "R"], "Q", [], None, 5, [["L"]])]
    + [{"unit_ids": v} for v in ([20], [20, 10], [30], [], "20", [[10]], [10.0])],
    "split": [{"test_fraction": f, "seed": sd, "stratify": st_}
              for f in (0.5, 0.25, 0.5, 0.25, 0.0, 1.0, -1.0, np.nan, "0.5", None, True)
              for sd in (0, 3, 0, 3, -1, 1.5, "0") for st_ in (True, False, "yes", None)],
    "with_covariates": [{"y": v} for v in ([np.ones((n, 1)) for n in (5, 3, 4, 6)],
                                           [np.ones((n, 1)) for n in (5, 3, 4, 7)],
                                           [np.ones((5, 1))], np.ones((5, 1)), "v", None,
                                           [np.full((n, 1), np.inf) for n in (5, 3, 4, 6)],
                                           [np.full((n, 1), 1j) for n in (5, 3, 4, 6)])],
    "rebin": [{"factor": v} for v in (1, 2, 3, 4, 0, -1, 1.5, "2", None, True, np.int64(2))],
}


@pytest.mark.parametrize("method", sorted(METHOD_ARGS))
@fuzz_settings()
@given(k=st.integers(0, 400), which=st.sampled_from(["rec4", "rec4", "eq"]), _pos=position)
def test_spike_trials_methods(method, k, which, _pos):
    rec = REC4 if which == "rec4" else REC_EQ
    opts = METHOD_ARGS[method]
    kw = opts[k % len(opts)]
    before = snapshot(kw)
    state = [c.copy() for c in rec.counts]
    out = exercise(f"SpikeTrials.{method}", lambda: getattr(rec, method)(**kw),
                   names=("trial", "names", "trials", "units", "labels", "unit_ids",
                          "test_fraction", "seed", "stratify", "factor", "y", "covariate",
                          "selection"))
    assert_unchanged(before, kw, "arguments")
    assert all(np.array_equal(a, b) for a, b in zip(state, rec.counts))   # frozen
    value = next(iter(kw.values()), None)
    if method in ("bin_edges", "bin_centres") and (
            isinstance(value, (bool, float, str, list)) or value is None or value is OPAQUE):
        assert out is None, f"trial={value!r} accepted"
    if method == "split" and (isinstance(kw["stratify"], str) or kw["stratify"] is None
                              or isinstance(kw["test_fraction"], (str, bool))):
        assert out is None, f"{kw} accepted"
    if out is None:
        return
    if method in ("bin_edges", "bin_centres"):
        L = rec.lengths[range(rec.n_trials)[value]]
        assert out.shape == (L + (method == "bin_edges"),) and np.all(np.diff(out) > 0)
    elif method == "to_array":
        assert out.shape == (rec.n_trials, rec.lengths[0], rec.n_units)
    elif method == "inputs":
        assert [a.shape[0] for a in out] == rec.lengths.tolist()
    elif method == "split":
        train, test = out
        assert train.n_trials + test.n_trials == rec.n_trials and test.n_trials >= 1
    else:
        check_recording(out)
        if method == "rebin":
            f = int(value)
            assert out.bin_width == rec.bin_width * f
            assert out.lengths.tolist() == (rec.lengths // f).tolist()


# ------------------------------------------------------------------------------------------
# save / load round trips of fuzzed results
# ------------------------------------------------------------------------------------------
HMM = s.PoissonHMM(2, 0.1)
Y_HMM = HMM.sample(HMM.random_params(0, n_channels=3), 1, 12, seed=1)[1][0]
FIT_HMM = HMM.fit(Y_HMM, max_iter=2, progress=False)
LG_PARAMS = s.make_params(A=[[0.9]], C=np.ones((3, 1)), Q=[[0.1]], R=np.eye(3))


@dataclasses.dataclass(frozen=True)
class Foreign:   # a dataclass from outside spikessm: load() could not rebuild it
    x: float = 1.0


def _scalar_leaves():
    return st.one_of(
        st.none(), st.booleans(), st.integers(-2**80, 2**80),
        st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=6),
        st.binary(max_size=6), st.complex_numbers(allow_nan=True, allow_infinity=True),
        st.sampled_from([np.float32(-0.0), np.int8(-3), np.bool_(True), np.uint64(2**63),
                         np.str_("ü"), np.datetime64("NaT"), np.timedelta64(3, "ms"),
                         np.complex64(1 - 2j), np.float64(np.nan),
                         struct.unpack("<d", bytes.fromhex("010000000000f8ff"))[0]]))


_DTYPES = st.sampled_from([np.float64, np.float32, np.float16, np.int64, np.int8, np.uint16,
                           np.bool_, np.complex128, "U3", "S2", "M8[ns]", "m8[s]"])
_arrays = hnp.arrays(_DTYPES, hnp.array_shapes(min_dims=0, max_dims=3, min_side=0,
                                               max_side=3))
REFUSED = [lambda: None, {1, 2}, object(), Foreign(), np.array([{"a": 1}], dtype=object),
           np.zeros(2, dtype=[("a", "f8")]), {frozenset([1]): 1}, bytearray(b"x"), Foreign,
           np.ma.masked_array([1.0]), 10**5000]


def _leaves():
    return st.one_of(_scalar_leaves(), _arrays,
                     _arrays.map(lambda a: np.asfortranarray(a) if a.ndim > 1 else a),
                     st.sampled_from([LG_PARAMS, FIT_HMM.params, REC4, HMM, FIT_HMM]))


def _containers(children):
    keys = st.one_of(st.text(max_size=4), st.integers(-5, 5), st.booleans(), st.none(),
                     st.floats(allow_nan=False), st.tuples(st.integers(0, 3), st.text(max_size=2)))
    return st.one_of(st.lists(children, max_size=4),
                     st.lists(children, max_size=4).map(tuple),
                     st.dictionaries(keys, children, max_size=4))


_objects = st.recursive(_leaves(), _containers, max_leaves=12)


@st.composite
def saved_objects(draw):
    """A fuzzed object: nested containers, or a fitted result with fuzzed fields, or (now and
    then) something save() must refuse hidden inside."""
    kind = draw(st.sampled_from(["tree", "tree", "fit", "fit", "refused"]))
    if kind == "fit":
        fields = [f.name for f in dataclasses.fields(FIT_HMM) if f.name != "params"]
        name = draw(st.sampled_from(fields))
        return dataclasses.replace(FIT_HMM, **{name: draw(_objects)})
    obj = draw(_objects)
    if kind == "refused":
        bad = draw(st.sampled_from(REFUSED))
        return [obj, {"deep": (bad,)}]
    return obj


@fuzz_settings()
@given(obj=saved_objects(), compress=st.booleans(),
       provenance=st.sampled_from([None] * 4 + [{"file": "x.mat", "n": 3}, {"a": np.nan},
                                               {1: "x"}, "x", {"a": np.arange(3)},
                                               {"a": {"b": [1.5, None, True]}}]))
def test_save_load_round_trip(tmp_path_factory, obj, compress, provenance):
    path = tmp_path_factory.mktemp("rt") / "obj.npz"
    before = copy.deepcopy(obj) if not isinstance(obj, s.PoissonHMM) else obj

    def round_trip():
        save(path, obj, provenance=provenance, compress=compress)   # may refuse
        try:
            return (load(path),)
        except Exception as exc:   # saved but not loadable: a failure, not a refusal
            raise AssertionError(f"saved, then load() failed: {exc!r}") from exc

    back = exercise("save/load round trip", round_trip,
                    names=("cannot save", "provenance", "obj"), allow_nonfinite=("",))
    assert_same(before, obj)   # save() leaves its argument alone
    if back is None:
        assert not path.exists()   # atomic: a refused save leaves no file
        return
    assert_same(obj, back[0])
    meta = load_metadata(path)
    assert meta["format_version"] == 1 and meta["class"].count(":") == 1


def test_save_refuses_what_it_cannot_rebuild(tmp_path):
    for i, bad in enumerate(REFUSED):
        with pytest.raises((TypeError, ValueError), match="cannot save|not supported|dict key"):
            save(tmp_path / f"x{i}.npz", {"deep": [bad]})
    assert not list(tmp_path.iterdir())


# ------------------------------------------------------------------------------------------
# files that are valid containers with malformed content
# ------------------------------------------------------------------------------------------
class Boom:
    """Unpickling this creates a marker file: proves whether a reader ever unpickles."""

    marker = None

    def __reduce__(self):
        return (Path.touch, (Path(Boom.marker),))


GOOD_NPZ = {
    "counts": lambda: {"counts": np.ones((6, 2)), "bin_width": np.float64(0.1),
                       "unit_ids": np.array([3, 4]), "trial_labels": np.array(["a"]),
                       "trial_starts": np.array([0.0])},
    "spike_times": lambda: {"spike_times": np.array([0.1, 0.2, 0.35]),
                            "spike_units": np.array([0, 1, 0]),
                            "trials": np.array([[0.0, 0.4]])},
}
NPZ_BAD_VALUES = [np.array("x"), np.array([]), np.ones((2, 2, 2, 2)), np.array(["a", "b"]),
                  np.array([np.nan]), np.array([-1.0]), np.array([1 + 1j]), np.ones(7),
                  np.array([np.inf]), np.zeros((0, 2)), np.array(True), np.array(1e300),
                  np.array([b"x"]), np.datetime64("2020-01-01"), np.arange(5) - 2, "pickle",
                  "drop"]


@pytest.mark.parametrize("reader", ["read_npz", "read", "load", "load_metadata"])
@fuzz_settings()
@given(layout=st.sampled_from(sorted(GOOD_NPZ)), key_i=st.integers(0, 10),
       bad=st.sampled_from(NPZ_BAD_VALUES),
       extra=st.sampled_from([None, None, "junk", "__meta__"]))
def test_malformed_npz(tmp_path_factory, reader, layout, key_i, bad, extra):
    folder = tmp_path_factory.mktemp("npz")
    path = folder / "rec.npz"
    Boom.marker = folder / "unpickled"
    members = GOOD_NPZ[layout]()
    key = sorted(members)[key_i % len(members)]
    if isinstance(bad, str) and bad == "drop":
        del members[key]
    elif isinstance(bad, str) and bad == "pickle":
        members[key] = np.array([Boom()], dtype=object)
    else:
        members[key] = bad
    if extra == "junk":
        members["junk"] = np.ones(3)
    elif extra == "__meta__":
        members["__meta__"] = np.frombuffer(b'{"format": "spikessm-saved-object"}', np.uint8)
    np.savez(path, **members)
    fn = getattr(s, reader) if hasattr(s, reader) else load_metadata
    kw = {"bin_width": 0.1} if reader in ("read", "read_npz") and layout == "spike_times" \
        else {}
    out = exercise(f"{reader} (malformed .npz)", fn, path, names=(path.name,), **kw)
    assert not Boom.marker.exists(), "a reader unpickled a member"
    if reader in ("load", "load_metadata"):
        assert out is None   # none of these is a saved object
    if out is not None:
        check_recording(out)


_SAVED = {}


def _saved_fit(folder):
    """(path to write, members, description) of a saved dict holding a fitted HMM, LG-SSM
    parameters, a recording and a plain list (saved once; every case edits a copy)."""
    if not _SAVED:
        path = folder / "original.npz"
        save(path, {"fit": FIT_HMM, "params": LG_PARAMS, "rec": REC4,
                    "x": [1.5, np.nan, (2,)]}, provenance={"source": "fuzz"})
        with np.load(path, allow_pickle=False) as z:
            _SAVED.update({k: z[k] for k in z.files})
    members = {k: v.copy() for k, v in _SAVED.items()}
    return folder / "fit.npz", members, json.loads(members["__meta__"].tobytes())


def _nodes(tree, path=()):
    """Every (path, node) of a JSON tree."""
    yield path, tree
    if isinstance(tree, dict):
        for k, v in tree.items():
            yield from _nodes(v, path + (k,))
    elif isinstance(tree, list):
        for i, v in enumerate(tree):
            yield from _nodes(v, path + (i,))


JUNK = [None, 1, -1, 1.5, "x", [], {}, True, {"__array__": "zz"}, {"__array__": 5},
        {"__float__": "nah"}, {"__float__": "nan:zzzzzzzzzzzzzzzz"},
        {"__dataclass__": "os:system", "fields": {}}, {"__object__": "builtins:eval",
                                                       "init": {}},
        {"__object__": "spikessm.io.saved:_Decoder", "init": {}},
        {"__dataclass__": "spikessm.models.lgssm.params:LGSSMParams", "fields": {}},
        {"__tuple__": 5}, {"__dict__": [[1]]}, {"__complex__": [1, "x"]}, {"__scalar__": "a0"},
        {"__bytes__": "a0"}, {"__namedtuple__": "spikessm:PoissonHMM", "fields": {}},
        {"__unknown__": 1}, "a0", 10**30, [[[[[]]]]], {"fields": {}},
        {"__dataclass__": "spikessm.models.poisson_hmm.params:PoissonHMMParams"}]
META_FIELDS = ["format_version", "format", "root", "class", "spikessm_version", "provenance"]


# The fitted HMM result and the LG-SSM parameters (items 0 and 1 of the saved dict): typed
# fields without defaults, so any edit of their description except swapping one number for
# another must be refused. Edits elsewhere (a recording, a plain list) may give a valid file.
STRICT = (("__dict__", 0, 1), ("__dict__", 1, 1))


@pytest.mark.parametrize("reader", ["load", "load_metadata", "read_npz"])
@fuzz_settings()
@given(where=st.integers(0, 10**6), junk=st.sampled_from(JUNK),
       action=st.sampled_from(["replace", "replace", "replace", "delete", "add", "version",
                               "retype", "blob"]))
def test_tampered_saved_fit(tmp_path_factory, reader, where, junk, action):
    folder = tmp_path_factory.mktemp("fit")
    path, members, meta = _saved_fit(folder)
    edited = copy.deepcopy(meta)
    must_fail = True
    if action == "version":
        edited["format_version"] = [2, 0, -1, "1", 1.0, None, True, 10**30, [1]][where % 9]
    elif action == "blob":
        blob = [b"{", b"\xff\xfe", b"[]", b"null", json.dumps(meta).encode()[:-1],
                b'{"format": 1}'][where % 6]
        members["__meta__"] = np.frombuffer(blob, np.uint8)
    elif action == "retype":   # a field of the saved fit gets a value of the wrong type
        fields = edited["root"]["__dict__"][0][1]["fields"]
        name = sorted(fields)[where % len(fields)]
        fields[name] = ["x", {"__dict__": []}, None, [1, 2], {"__tuple__": []}][
            (where // 16) % 5]
    else:
        nodes = [(p, n) for p, n in _nodes(edited["root"]) if p]
        p, node = nodes[where % len(nodes)]
        parent = edited["root"]
        for step in p[:-1]:
            parent = parent[step]
        last = p[-1]
        strict = p[:3] in STRICT and len(p) > 3
        if action == "replace":
            parent[last] = copy.deepcopy(junk)
            number_for_number = (isinstance(node, (int, float)) and isinstance(
                junk, (int, float)) and type(node) is not bool and type(junk) is not bool)
            same_scalar = type(node) is type(junk) and isinstance(node, (bool, int, float))
            must_fail = strict and junk != node and not (number_for_number or same_scalar)
        elif action == "delete":
            if isinstance(parent, dict):
                del parent[last]
            else:
                parent.pop(last)
            must_fail = strict and isinstance(parent, dict)
        else:   # an unexpected key or element
            if isinstance(parent, dict):
                parent["__extra__"] = 1
            else:
                parent.append(copy.deepcopy(junk))
            must_fail = strict and isinstance(parent, dict)
    if action != "blob":
        members["__meta__"] = np.frombuffer(json.dumps(edited).encode(), np.uint8)
    if reader == "load_metadata" and action not in ("version", "blob"):
        must_fail = False   # the description of the object itself is not read
    np.savez(path, **members)
    fn = {"load": load, "read_npz": s.read_npz, "load_metadata": load_metadata}[reader]
    out = exercise(f"{reader} (tampered description)", fn, path, names=(path.name,),
                   allow_nonfinite=("",))
    if reader == "read_npz":
        assert out is None   # a saved dict is not a recording
    elif must_fail:
        assert out is None, f"{action} ({junk!r}) at node {where} was not detected"


MAT_GOOD = {
    "counts": {"counts": np.ones((6, 2)), "bin_width": 0.1},
    "spike_times": {"spike_times": np.array([np.array([0.1, 0.2]), np.array([0.3])],
                                            dtype=object)},
    "place_cells": {"neuron": np.array([{"spikeTimes": np.array([0.1, 0.5])}], dtype=object),
                    "time": np.arange(10) / 30.0, "x": np.zeros(10), "y": np.ones(10)},
    "yu2009": {"D": np.array([{"data": np.ones((2, 40)), "condition": "a"}], dtype=object)},
}
MAT_BAD = ["x", np.array([]), np.ones((2, 2, 2, 2)), np.array(["ab", "cd"]), np.nan, -1.0,
           np.ones(3), np.array([np.inf]), np.zeros((0, 2)), 1e300, {"a": 1},
           np.array([{"a": 1}], dtype=object), np.array([np.array(["x"])], dtype=object),
           np.ones((3, 1)) * np.nan, "drop", np.array([[1, 2], [3, 4]]),
           np.array([{"spikeTimes": "x"}], dtype=object),
           np.array([{"data": np.ones(3)}], dtype=object)]


@fuzz_settings()
@given(layout=st.sampled_from(sorted(MAT_GOOD)), key_i=st.integers(0, 10),
       bad=st.sampled_from(MAT_BAD), bin_width=st.sampled_from([None, 0.1, 0.02]),
       force=st.booleans())
def test_malformed_mat(tmp_path_factory, layout, key_i, bad, bin_width, force):
    folder = tmp_path_factory.mktemp("mat")
    path = folder / "rec.mat"
    variables = dict(MAT_GOOD[layout])
    key = sorted(variables)[key_i % len(variables)]
    if isinstance(bad, str) and bad == "drop":
        del variables[key]
    else:
        variables[key] = bad
    scipy.io.savemat(path, variables)
    kw = {"bin_width": bin_width}
    if force:
        kw["layout"] = layout
    if layout == "spike_times" and bin_width is None:
        kw["bin_width"] = 0.1
    out = exercise("read_mat (malformed)", s.read_mat, path, names=(path.name,), **kw)
    if out is not None:
        check_recording(out)


CELLS = ["0.1", "abc", "", "nan", "inf", "-inf", "1e300", "-1", "1.5", "0x10", "1,2", '"q"',
         "NaN", "True", "１", "0.25 ", "1e-300", "—"]


@fuzz_settings()
@given(table=st.sampled_from(["events", "events_ms", "counts", "counts_trial"]),
       cells=st.lists(st.sampled_from(CELLS), min_size=1, max_size=6),
       bin_width=st.sampled_from([0.1, 0.1, 0.0, "0.1", None]), pos=position)
def test_csv_with_garbage_cells(tmp_path_factory, table, cells, bin_width, pos):
    path = tmp_path_factory.mktemp("csv") / "rec.csv"
    rows = {"events": ["unit,time", "a,0.1", "b,0.25", "a,0.3"],
            "events_ms": ["unit,Time (ms)", "a,100", "b,250"],
            "counts": ["n1,n2", "0,1", "2,0", "1,1"],
            "counts_trial": ["trial,n1,n2", "1,0,1", "1,2,0", "2,1,1"]}[table]
    for i, cell in enumerate(cells):   # overwrite cells of the data rows
        r = 1 + (pos + i) % (len(rows) - 1)
        parts = rows[r].split(",")
        parts[(pos + 3 * i) % len(parts)] = cell
        rows[r] = ",".join(parts)
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    missing = table.startswith("counts") and any(c in ("", "nan", "NaN") for c in cells)
    out = exercise("read_csv (garbage cells)", s.read_csv, path, bin_width=bin_width,
                   names=(path.name, "bin_width"),   # an empty count cell is missing (NaN)
                   allow_nonfinite=("counts",) if missing else ())
    if out is not None:
        check_recording(out)


# ------------------------------------------------------------------------------------------
# regression tests for bugs the fuzzing found
# ------------------------------------------------------------------------------------------
def test_regression_rebin_counts_rejects_inf_and_negative_counts():
    # was: [[inf], [1]] -> [[inf]] and [[-1], [1]] -> [[0]] (a spike silently cancelled)
    with pytest.raises(ValueError, match="counts"):
        s.rebin_counts([[np.inf], [1.0]], 2)
    with pytest.raises(ValueError, match="counts"):
        s.rebin_counts([[-1.0], [1.0]], 2)
    with pytest.raises(ValueError, match="counts"):   # sums overflowing to inf
        s.rebin_counts([[1e308], [1e308]], 2)
    assert np.isnan(s.rebin_counts([[np.nan], [1.0]], 2)[0, 0])   # NaN = missing, kept
    # covariates (which may be negative) are still averaged by SpikeTrials.rebin
    assert REC4.rebin(2).covariates["x"][0][:, 0].tolist() == [-1.5, 0.5]


def test_regression_bin_spike_times_refuses_absurd_windows_and_bad_values():
    # was: MemoryError (745 GiB) or NumPy's "Maximum allowed size exceeded"
    for kw in ({"spike_times": [[1e300]]}, {"spike_times": [[1e9]]},
               {"spike_times": [[1.0]], "trials": [(0.0, 1e12)]}):
        with pytest.raises(ValueError, match="bin_width"):
            s.bin_spike_times(bin_width=0.01, **kw)
    with pytest.raises(TypeError, match="spike_times"):   # imaginary part was dropped
        s.bin_spike_times([np.array([0.1 + 1j])], 0.01)
    with pytest.raises(TypeError, match="provenance"):   # was dict("x"): unnamed ValueError
        s.bin_spike_times(SPIKES, 0.01, provenance="x")
    with pytest.raises(TypeError, match="start"):   # was float("abc")
        s.bin_spike_times(SPIKES, 0.01, start="abc")
    with pytest.raises(ValueError, match="covariate_method"):   # the message said "method"
        s.bin_spike_times(SPIKES, 0.05, stop=0.3, covariates={"x": (T_COV, V_COV)},
                          covariate_method="bogus")


def test_regression_resample_covariate_names_times_and_values():
    with pytest.raises(TypeError, match="times"):   # "could not convert string to float"
        s.resample_covariate("not an array", VALUES, REC)
    with pytest.raises(TypeError, match="values"):   # the imaginary part was dropped
        s.resample_covariate(TIMES, VALUES + 1j, REC)


def test_regression_spike_trials_methods_check_their_arguments():
    with pytest.raises(ValueError, match="trial"):   # IndexError "range object index ..."
        REC4.bin_edges(99)
    with pytest.raises(TypeError, match="trial"):   # True was trial 1
        REC4.bin_centres(True)
    with pytest.raises(ValueError, match="names"):   # a raw KeyError
        REC4.inputs("y")
    with pytest.raises(TypeError, match="names"):   # "'int' object is not iterable"
        REC4.inputs(5)
    with pytest.raises(TypeError, match="test_fraction"):   # "'<' not supported ..."
        REC4.split("0.5")
    with pytest.raises(ValueError, match="seed"):   # "expected non-negative integer"
        REC4.split(0.5, seed=-1)
    with pytest.raises(TypeError, match="stratify"):   # "yes" and "no" were both True
        REC4.split(0.5, stratify="no")
    with pytest.raises(ValueError, match="factor"):   # "'<' not supported ..."
        REC4.rebin("2")
    with pytest.raises(ValueError, match="provenance"):   # accepted, then save() refused
        s.SpikeTrials([np.ones((2, 1))], 0.1, provenance={"a": np.nan})


def test_regression_save_keeps_nan_bits_and_refuses_what_load_cannot_read(tmp_path):
    neg_nan = struct.unpack("<d", bytes.fromhex("000000000000f8ff"))[0]
    save(tmp_path / "nan.npz", [neg_nan])
    back = load(tmp_path / "nan.npz")[0]   # came back as the positive NaN
    assert struct.pack("<d", back) == struct.pack("<d", neg_nan)
    with pytest.raises(ValueError, match="cannot save"):   # json's unnamed digit limit
        save(tmp_path / "big.npz", 10**5000)
    with pytest.raises(TypeError, match="log_likelihoods"):   # was saved, then unloadable
        save(tmp_path / "bad.npz", dataclasses.replace(FIT_HMM, log_likelihoods="x"))


def test_regression_load_refuses_wrong_field_types(tmp_path):
    path, members, meta = _saved_fit(tmp_path)
    meta["root"]["__dict__"][0][1]["fields"]["log_likelihoods"] = "x"
    members["__meta__"] = np.frombuffer(json.dumps(meta).encode(), np.uint8)
    np.savez(path, **members)
    with pytest.raises(ValueError, match="log_likelihoods"):   # loaded with a string there
        load(path)


def test_regression_readers_name_the_file(tmp_path):
    npz = tmp_path / "t.npz"
    np.savez(npz, spike_times=np.array(["x"]), spike_units=np.array([0]))
    with pytest.raises((TypeError, ValueError), match="t.npz"):   # unnamed ValueError
        s.read_npz(npz, bin_width=0.1)
    np.savez(npz, spike_times=np.array([0.1 + 1j]), spike_units=np.array([0]))
    with pytest.raises(ValueError, match="t.npz"):   # the imaginary part was dropped
        s.read_npz(npz, bin_width=0.1)
    mat = tmp_path / "p.mat"
    scipy.io.savemat(mat, {**MAT_GOOD["place_cells"], "time": np.array(["ab", "cd"])})
    with pytest.raises(ValueError, match="p.mat"):   # "could not convert string to float"
        s.read_mat(mat)
    csv = tmp_path / "c.csv"
    csv.write_text("n1,n2\n0,1\n2\n")   # a short row was read as a missing count (NaN)
    with pytest.raises(ValueError, match="c.csv"):
        s.read_csv(csv, bin_width=0.1)
    csv.write_text("n1,n2\n0,1,2\n2,0,1\n")   # the first column became the row index
    with pytest.raises(ValueError, match="c.csv"):
        s.read_csv(csv, bin_width=0.1)
