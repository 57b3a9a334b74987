"""Property-based fuzzing of the NWB / pynapple / Neo readers (issue 9).

``read_nwb`` gets small NWB files built with pynwb whose content is malformed (no Units
table, spike times unsorted / NaN / negative / huge, trials with stop < start, missing or
odd columns, covariate series with NaN) together with one mutated argument; most cases use
an in-memory ``NWBFile`` (``read_nwb`` accepts one), a few the same content written to
disk once per module. ``from_pynapple`` and ``from_neo`` get objects built once at module
level, with mutated contents or wrong argument types. Every call must return a valid
:class:`SpikeTrials` or raise a ValueError / TypeError naming the argument or the file, and
must not modify its inputs.
"""

from __future__ import annotations

import atexit
import datetime
import shutil
import tempfile
import warnings
from pathlib import Path

import neo
import numpy as np
import pynapple as nap
import pytest
import quantities as pq
from fuzz_harness import exercise, fuzz_settings
from fuzz_mutations import BAD_POS_FLOATS, OPAQUE, one_mutated, position
from hypothesis import given
from hypothesis import strategies as st

import spikessm as s

pytestmark = pytest.mark.fuzz

DT = 0.1
SPIKES = [np.array([0.05, 0.31, 0.62, 1.5]), np.array([0.2, 1.1]), np.array([1.9])]
WINDOWS = [(0.0, 1.0), (1.0, 2.0)]
pick = st.integers(0, 60)
BIN_WIDTHS = (DT, DT, DT, 0.25, np.float64(0.1)) + BAD_POS_FLOATS + (np.array([0.1]), OPAQUE)



def check_recording(rec, n_units=None):
    assert isinstance(rec, s.SpikeTrials) and rec.n_trials >= 1 and rec.n_units >= 1
    for c in rec.counts:
        assert c.ndim == 2 and c.shape[1] == rec.n_units and c.dtype == np.float64
        ok = c[~np.isnan(c)]
        assert np.all(ok >= 0) and np.all(ok == np.round(ok))
    assert np.isfinite(rec.bin_width) and rec.bin_width > 0
    if n_units is not None:
        assert rec.n_units == n_units


# ------------------------------------------------------------------------------------------
# read_nwb
# ------------------------------------------------------------------------------------------
CONTENT = ("ok", "ok", "ok", "no_units", "unsorted", "nan_spike", "inf_spike", "negative",
           "empty_unit", "huge_spike", "stop_before_start", "nan_trial", "overlap",
           "no_trials", "labels", "int_labels", "covariate", "covariate_nan",
           "covariate_2d", "ids")


def build_nwb(kind, pos=0):
    """An in-memory NWBFile with content ``kind`` (pynwb checks little of it)."""
    from pynwb import NWBFile, TimeSeries
    nwb = NWBFile(session_description="fuzz", identifier=f"fuzz-{kind}",
                  session_start_time=datetime.datetime(2020, 1, 1,
                                                       tzinfo=datetime.timezone.utc))
    spikes = [a.copy() for a in SPIKES]
    i = pos % len(spikes)
    if kind == "unsorted":
        spikes[0] = spikes[0][::-1]
    elif kind == "nan_spike":
        spikes[i] = np.append(spikes[i], np.nan)
    elif kind == "inf_spike":
        spikes[i] = np.append(spikes[i], np.inf)
    elif kind == "negative":
        spikes[i] = np.append(-1.0, spikes[i])
    elif kind == "empty_unit":
        spikes[i] = np.array([])
    elif kind == "huge_spike":
        spikes[i] = np.append(spikes[i], 1e300)
    if kind != "no_units":
        for u, sp in enumerate(spikes):
            nwb.add_unit(spike_times=sp, id=[7, 3, 9][u] if kind == "ids" else u + 1)
    windows = list(WINDOWS)
    if kind == "stop_before_start":
        windows[pos % 2] = (1.5, 0.5)
    elif kind == "nan_trial":
        windows[pos % 2] = (np.nan, 1.0)
    elif kind == "overlap":
        windows = [(0.0, 1.5), (0.5, 2.0)]
    if kind != "no_trials":
        if kind in ("labels", "int_labels"):
            nwb.add_trial_column("condition", "task condition")
        for k, (a, b) in enumerate(windows):
            extra = {}
            if kind == "labels":
                extra = {"condition": ["left", "right"][k]}
            elif kind == "int_labels":
                extra = {"condition": k * 3}
            nwb.add_trial(start_time=a, stop_time=b, **extra)
    if kind.startswith("covariate"):
        beh = nwb.create_processing_module("behavior", "behaviour")
        t = np.arange(0.0, 2.0, 0.01)
        v = np.sin(t) if kind != "covariate_2d" else np.column_stack([t, -t])
        if kind == "covariate_nan":
            v = v.copy()
            v[pos % t.size] = np.nan
        beh.add(TimeSeries(name="speed", data=v, unit="m/s", timestamps=t))
    return nwb


NWB_DEFAULTS = dict(bin_width=DT, trials="trials", label_column=None, units=None,
                    covariates="behavior", covariate_method="mean",
                    covariate_outside="error", start=None, stop=None)
NWB_OPTS = {
    "bin_width": BIN_WIDTHS,
    "trials": [None, "trials", "epochs", [(0.0, 1.0)], [(1.0, 0.0)], [(0.0, np.nan)], "",
               OPAQUE, 5, np.array([[0.0, 2.0]]), [(0.0, 1e300)], [[0.0, 1.0, 2.0]]],
    "label_column": [None, "condition", "nope", 5, OPAQUE],
    "units": [None, [1], [3, 1], [99], 1, "1", [[1]], [], np.array([2, 1]), OPAQUE],
    "covariates": [None, "behavior", "speed", ["speed"], ["nope"], 5, OPAQUE, []],
    "covariate_method": ["mean", "nearest", "bogus", None, 5],
    "covariate_outside": ["error", "nan", "bogus", None],
    "start": [None, 0.0, 0.5, -1.0, np.nan, np.inf, "0", 1e300, True],
    "stop": [None, 2.0, 0.5, 0.0, np.nan, np.inf, "2", 1e300],
}
NWB_NAMES = tuple(NWB_DEFAULTS) + ("<NWBFile>", ".nwb")

_DIR = Path(tempfile.mkdtemp(prefix="spikessm-fuzz-nwb-"))
atexit.register(shutil.rmtree, _DIR, ignore_errors=True)
ON_DISK = ("ok", "no_units", "nan_spike", "labels")
_FILES: dict = {}


def nwb_file(kind):
    """The content ``kind`` written to disk (once per module)."""
    if kind not in _FILES:
        from pynwb import NWBHDF5IO
        path = _DIR / f"{kind}.nwb"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with NWBHDF5IO(str(path), "w") as io:
                io.write(build_nwb(kind))
        _FILES[kind] = path
    return _FILES[kind]


@fuzz_settings()
@given(content=st.sampled_from(CONTENT), arg=st.sampled_from([None, None] + list(NWB_OPTS)),
       k=pick, pos=position, disk=st.integers(0, 9))
def test_read_nwb(content, arg, k, pos, disk):
    kw = one_mutated(NWB_DEFAULTS, NWB_OPTS, arg, k)
    on_disk = disk == 0 and content in ON_DISK
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        source = nwb_file(content) if on_disk else build_nwb(content, pos)
    out = exercise("read_nwb", s.read_nwb, source, names=NWB_NAMES, **kw)
    table = (isinstance(kw["trials"], str) and kw["trials"] == "trials"
             and kw["start"] is None and kw["stop"] is None)   # the trials table is used
    if content == "no_units" or (content in ("nan_spike", "inf_spike")
                                 and kw["units"] is None):
        assert out is None, f"{content} accepted"
    if content in ("stop_before_start", "nan_trial") and table:
        assert out is None, f"{content} accepted"
    if arg is None and content in ("ok", "unsorted", "labels", "int_labels", "covariate",
                                   "covariate_2d", "ids", "empty_unit", "negative", "overlap",
                                   "no_trials"):
        assert out is not None, f"valid content {content} rejected"
    if out is not None:
        check_recording(out)
        if content == "ok" and table and kw["units"] is None and arg != "bin_width":
            direct = s.bin_spike_times(SPIKES, DT, trials=WINDOWS)
            for a, b in zip(out.counts, direct.counts):
                np.testing.assert_array_equal(a, b)
        if content == "unsorted":   # order of spike times does not matter
            assert out.counts[0].sum() >= 0


# ------------------------------------------------------------------------------------------
# from_pynapple
# ------------------------------------------------------------------------------------------
GROUP = nap.TsGroup({i + 1: nap.Ts(t=sp) for i, sp in enumerate(SPIKES)},
                    time_support=nap.IntervalSet(0.0, 2.0))
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    EPOCHS = nap.IntervalSet(start=[0.0, 1.0], end=[0.9, 2.0],
                             metadata={"condition": ["a", "b"]})
TSD = nap.Tsd(t=np.arange(0.0, 2.0, 0.01), d=np.sin(np.arange(0.0, 2.0, 0.01)))
TSD_NAN = nap.Tsd(t=np.arange(0.0, 2.0, 0.01), d=np.where(np.arange(200) == 5, np.nan, 1.0))
FRAME = nap.TsdFrame(t=np.arange(0.0, 2.0, 0.01), d=np.ones((200, 2)), columns=["x", "y"])

UNIT_KINDS = ("group", "group", "dict_ts", "dict_arrays", "dict_lists", "dict_nan",
              "dict_str", "dict_none", "dict_unsorted", "dict_2d", "dict_empty",
              "dict_empty_unit", "list", "str", "none", "opaque", "array", "dict_huge",
              "dict_complex", "dict_str_keys")


def units_of(kind):
    if kind == "group":
        return GROUP
    base = {i + 1: sp.copy() for i, sp in enumerate(SPIKES)}
    if kind == "dict_ts":
        return {k: nap.Ts(t=v) for k, v in base.items()}
    if kind == "dict_arrays":
        return base
    if kind == "dict_lists":
        return {k: v.tolist() for k, v in base.items()}
    if kind == "dict_nan":
        return {**base, 1: np.array([0.1, np.nan])}
    if kind == "dict_str":
        return {**base, 1: "0.1"}
    if kind == "dict_none":
        return {**base, 1: None}
    if kind == "dict_unsorted":
        return {**base, 1: base[1][::-1].copy()}
    if kind == "dict_2d":
        return {**base, 1: np.ones((2, 2))}
    if kind == "dict_empty":
        return {}
    if kind == "dict_empty_unit":
        return {**base, 1: np.array([])}
    if kind == "dict_huge":
        return {**base, 1: np.array([1e300])}
    if kind == "dict_complex":
        return {**base, 1: base[1] + 0j}
    if kind == "dict_str_keys":
        return {f"u{k}": v for k, v in base.items()}
    return {"list": [SPIKES[0]], "str": "units", "none": None, "opaque": OPAQUE,
            "array": np.ones(3)}[kind]


NAP_DEFAULTS = dict(bin_width=DT, epochs=None, label_column=None, labels=None,
                    covariates=None, covariate_method="mean", covariate_outside="nan",
                    provenance=None)
NAP_OPTS = {
    "bin_width": BIN_WIDTHS,
    "epochs": [None, EPOCHS, [(0.0, 1.0)], [(1.0, 0.0)], "epochs", OPAQUE,
               np.array([[0.0, 2.0]]), [(0.0, np.nan)], [(0.0, 1e300)], 5],
    "label_column": [None, "condition", "nope", 5, OPAQUE],
    "labels": [None, ["x"], ["x", "y"], "xy", [None], OPAQUE, [[1]]],
    "covariates": [None, {"v": TSD}, {"v": TSD_NAN}, {"pos": FRAME},
                   {"v": (np.array([0.0, 2.0]), np.array([0.0, 1.0]))},
                   {"v": (np.array([0.0, 2.0]), np.array([0.0]))}, {"v": "bad"},
                   {"v": (np.array([0.0, 2.0]),)}, {"v": OPAQUE}, ["v"], "v", OPAQUE, {},
                   {5: TSD}, {"v": ("a", "b")}],
    "covariate_method": ["mean", "nearest", "bogus", None],
    "covariate_outside": ["nan", "error", "bogus", 5],
    "provenance": [None, {"source": "fuzz"}, "x", ["a"], 5, OPAQUE],
}
NAP_NAMES = ("units", "bin_width", "epochs", "label_column", "labels", "covariates",
             "covariate_method", "covariate_outside", "provenance", "spike_times",
             "trials", "unit_ids")


@fuzz_settings()
@given(units=st.sampled_from(UNIT_KINDS), arg=st.sampled_from([None] + list(NAP_OPTS)),
       k=pick)
def test_from_pynapple(units, arg, k):
    kw = one_mutated(NAP_DEFAULTS, NAP_OPTS, arg, k)
    u = units_of(units)
    if kw["label_column"] is not None and kw["epochs"] is None and units != "group":
        kw["epochs"] = EPOCHS
    out = exercise("from_pynapple", s.from_pynapple, u, names=NAP_NAMES, **kw,
                   allow_nonfinite=("covariates",) if kw["covariate_outside"] == "nan" else ())
    if units in ("list", "str", "none", "opaque", "array", "dict_empty", "dict_str",
                 "dict_complex", "dict_nan", "dict_none", "dict_2d"):
        assert out is None, f"units {units} accepted"
    if arg is None and units in ("group", "dict_ts", "dict_arrays", "dict_lists",
                                 "dict_unsorted", "dict_str_keys"):
        assert out is not None, f"units {units} rejected"
    if out is not None:
        check_recording(out)
        if arg is None and units == "group":
            direct = s.bin_spike_times(SPIKES, DT, trials=[(0.0, 2.0)])
            np.testing.assert_array_equal(out.counts[0], direct.counts[0])


# ------------------------------------------------------------------------------------------
# from_neo
# ------------------------------------------------------------------------------------------
def _train(sp, a=0.0, b=2.0, unit="s", **ann):
    scale = 1000.0 if unit == "ms" else 1.0
    return neo.SpikeTrain(sp * scale * getattr(pq, unit), t_start=a * scale * getattr(pq, unit),
                          t_stop=b * scale * getattr(pq, unit), **ann)


TRAINS = [_train(sp, unit_id=i + 1) for i, sp in enumerate(SPIKES)]
TRAINS_MS = [_train(sp, unit="ms", name=f"n{i}") for i, sp in enumerate(SPIKES)]


def _segment(trains, a=0.0, signal=True, name="t", **ann):
    seg = neo.Segment(name=name, **ann)
    for t in trains:
        seg.spiketrains.append(t)
    if signal:
        seg.analogsignals.append(neo.AnalogSignal(
            np.arange(20.0)[:, None], units="cm", sampling_rate=10 * pq.Hz, t_start=a * pq.s,
            name="pos"))
    return seg


SEGMENT = _segment([_train(sp, unit_id=i + 1) for i, sp in enumerate(SPIKES)],
                   condition="left")
BLOCK = neo.Block()
for _k, _a in enumerate((0.0, 3.0)):
    BLOCK.segments.append(_segment([_train(sp + _a, _a, _a + 2.0, unit_id=i + 1)
                                    for i, sp in enumerate(SPIKES)], _a,
                                   condition=["left", "right"][_k]))
BLOCK_MISMATCH = neo.Block()
BLOCK_MISMATCH.segments.append(_segment([_train(SPIKES[0], unit_id=1)]))
BLOCK_MISMATCH.segments.append(_segment([_train(SPIKES[0], unit_id=2)]))
BLOCK_EMPTY_SEG = neo.Block()
BLOCK_EMPTY_SEG.segments.append(neo.Segment(name="empty"))
SEGMENT_NAN_SIGNAL = _segment([_train(SPIKES[0], unit_id=1)], signal=False)
SEGMENT_NAN_SIGNAL.analogsignals.append(neo.AnalogSignal(
    np.full((20, 1), np.nan), units="cm", sampling_rate=10 * pq.Hz, name="pos"))

OBJ_KINDS = ("list", "list", "tuple", "ms", "segment", "segment", "block", "block",
             "block_mismatch", "block_empty", "block_empty_seg", "segment_nan_signal",
             "empty_list", "mixed_list", "single_train", "str", "none", "opaque", "array",
             "dict")


def obj_of(kind):
    return {"list": TRAINS, "tuple": tuple(TRAINS), "ms": TRAINS_MS, "segment": SEGMENT,
            "block": BLOCK, "block_mismatch": BLOCK_MISMATCH, "block_empty": neo.Block(),
            "block_empty_seg": BLOCK_EMPTY_SEG, "segment_nan_signal": SEGMENT_NAN_SIGNAL,
            "empty_list": [], "mixed_list": [TRAINS[0], SPIKES[1]],
            "single_train": TRAINS[0], "str": "trains", "none": None, "opaque": OPAQUE,
            "array": np.ones((3, 2)), "dict": {1: TRAINS[0]}}[kind]


NEO_DEFAULTS = dict(bin_width=DT, trials=None, label_annotation="condition", labels=None,
                    covariates=True, covariate_method="mean", covariate_outside="nan",
                    provenance=None)
NEO_OPTS = {
    "bin_width": BIN_WIDTHS,
    "trials": [None, WINDOWS, [(1.0, 0.0)], [(0.0, np.nan)], "x", OPAQUE,
               np.array([[0.0, 2.0]]), [(0.0, 1e300)], [[0.0, 1.0, 2.0]], 5],
    "label_annotation": ["condition", "nope", None, 5],
    "labels": [None, ["x"], ["x", "y"], "xy", OPAQUE, [[1]]],
    "covariates": [True, False, "no", None, 1, OPAQUE],
    "covariate_method": ["mean", "nearest", "bogus", None],
    "covariate_outside": ["nan", "error", "bogus", 5],
    "provenance": [None, {"source": "fuzz"}, "x", ["a"], 5, OPAQUE],
}
NEO_NAMES = ("obj", "bin_width", "trials", "label_annotation", "labels", "covariates",
             "covariate_method", "covariate_outside", "provenance", "segment", "Block",
             "spike_times", "unit_ids", "trial_labels")


@fuzz_settings()
@given(kind=st.sampled_from(OBJ_KINDS), arg=st.sampled_from([None] + list(NEO_OPTS)),
       k=pick)
def test_from_neo(kind, arg, k):
    kw = one_mutated(NEO_DEFAULTS, NEO_OPTS, arg, k)
    obj = obj_of(kind)
    out = exercise("from_neo", s.from_neo, obj, names=NEO_NAMES, **kw,
                   allow_nonfinite=("covariates",) if kw["covariate_outside"] == "nan" else ())
    if kind in ("block_mismatch", "block_empty", "block_empty_seg", "empty_list",
                "mixed_list", "single_train", "str", "none", "opaque", "array", "dict"):
        assert out is None, f"obj {kind} accepted"
    if arg == "covariates" and not isinstance(kw["covariates"], bool):
        assert out is None, f"covariates={kw['covariates']!r} accepted"
    if arg is None and kind in ("list", "tuple", "ms", "segment", "block"):
        assert out is not None, f"obj {kind} rejected"
    if out is not None:
        check_recording(out)
        if arg is None and kind == "list":   # (ms: rounding may move a spike at an edge)
            direct = s.bin_spike_times(SPIKES, DT, trials=[(0.0, 2.0)])
            np.testing.assert_array_equal(out.counts[0], direct.counts[0])


# ------------------------------------------------------------------------------------------
# regression tests for bugs the fuzzing found
# ------------------------------------------------------------------------------------------
def test_regression_read_nwb_in_memory_trials_table():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        nwb = build_nwb("ok")
        rec = s.read_nwb(nwb, DT)   # was: the trials table ignored, one window 0..2 s
    assert rec.n_trials == 2 and rec.trial_starts.tolist() == [0.0, 1.0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        bad = build_nwb("stop_before_start", 1)
    with pytest.raises(ValueError, match="<NWBFile>: trials"):   # was: accepted
        s.read_nwb(bad, DT)


def test_regression_read_nwb_names_file_and_unit():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        nwb = build_nwb("nan_spike", 1)
    with pytest.raises(ValueError, match="<NWBFile>: unit 2 has NaN"):   # was: spike_times[1]
        s.read_nwb(nwb, DT)
    with pytest.raises(TypeError, match="covariates"):   # was: "object is not iterable"
        s.read_nwb(build_nwb("ok"), DT, covariates=5)
    with pytest.raises(ValueError, match="units"):   # was: "unhashable type: 'list'"
        s.read_nwb(build_nwb("ok"), DT, units=[[1]])


def test_regression_from_pynapple_checks_units_and_options():
    with pytest.raises(TypeError, match=r"units\[1\]"):   # was: "0.1" parsed as a time
        s.from_pynapple({1: "0.1"}, DT)
    with pytest.raises(TypeError, match=r"units\[1\]"):   # was: imaginary part dropped
        s.from_pynapple({1: np.array([0.1 + 1j])}, DT)
    with pytest.raises(TypeError, match="covariates"):   # was: AttributeError 'items'
        s.from_pynapple(GROUP, DT, covariates=["v"])
    with pytest.raises(TypeError, match="covariates"):   # was: "keywords must be strings"
        s.from_pynapple(GROUP, DT, covariates={5: TSD})
    with pytest.raises(TypeError, match="provenance"):   # was: "must be a mapping"
        s.from_pynapple(GROUP, DT, provenance="x")
    with pytest.raises(ValueError, match="bin_width"):   # named only "trial 0"
        s.from_pynapple(GROUP, 1e300)


def test_regression_from_neo_flags_and_provenance():
    with pytest.raises(TypeError, match="covariates"):   # "no" was taken as True
        s.from_neo(SEGMENT, DT, covariates="no")
    with pytest.raises(TypeError, match="provenance"):
        s.from_neo(TRAINS, DT, provenance=["a"])
