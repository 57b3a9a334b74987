"""Fuzz suite (issue 9, part A): rebin_counts on random arrays and the file readers on
random bytes. Valid containers with malformed content (.npz members, edited saved-file
descriptions, .mat variables, CSV cells), the binning functions and SpikeTrials are fuzzed
in test_fuzz_data_core.py.
"""

import numpy as np
import pytest
from fuzz_harness import exercise, fuzz_settings
from hypothesis import given
from hypothesis import strategies as st

import spikessm

pytestmark = pytest.mark.fuzz

_VALUES = st.sampled_from([0.0, 1.0, 3.0, -1.0, np.nan, np.inf, 1e300, -1e300, 1e-300])
_SHAPES = st.sampled_from([(0,), (1,), (7,), (7, 3), (2, 7, 3), (1, 1), (0, 3)])
_DTYPES = st.sampled_from([np.float64, np.float32, np.int64, bool, object, complex])


@st.composite
def _arrays(draw):
    shape = draw(_SHAPES)
    n = int(np.prod(shape))
    vals = draw(st.lists(_VALUES, min_size=n, max_size=n))
    kind = draw(st.sampled_from(["array", "list", "none"]))
    if kind == "none":
        return None
    with np.errstate(all="ignore"):
        arr = np.array(vals, dtype=np.float64).reshape(shape).astype(draw(_DTYPES))
    return arr.tolist() if kind == "list" else arr


@fuzz_settings()
@given(counts=_arrays(), factor=st.sampled_from([-1, 0, 1, 2, 3, 2.5, None, "2"]))
def test_fuzz_rebin_counts(counts, factor):
    before = counts.copy() if isinstance(counts, np.ndarray) else None
    out = exercise("rebin_counts", spikessm.rebin_counts, counts, factor,
                   names=("counts", "factor"), allow_nonfinite=("result",)
                   if counts is not None and not np.all(np.isfinite(
                       np.asarray(counts, dtype=object).astype(float, copy=False)
                       if np.asarray(counts).dtype.kind in "fiub" else 0.0)) else ())
    if isinstance(counts, np.ndarray):
        assert counts.dtype == before.dtype
        assert counts.tobytes() == before.tobytes() or counts.dtype == object
    if out is not None:
        shape = np.shape(counts)
        assert out.shape == (shape[0] // factor, shape[1] if len(shape) == 2 else 1)


@pytest.mark.parametrize("reader", ["read_npz", "read_csv", "read", "load", "read_mat",
                                    "load_metadata"])
@fuzz_settings()
@given(data=st.binary(max_size=64), suffix=st.sampled_from([".npz", ".csv", ".mat", ".h5"]))
def test_fuzz_readers_random_bytes(tmp_path, data, suffix, reader):
    path = tmp_path / f"f{suffix}"
    path.write_bytes(data)
    fn = getattr(spikessm, reader)
    kw = {"bin_width": 0.01} if reader in ("read_csv", "read") else {}
    exercise(reader, fn, path, names=("path", "file", str(path.name), "bin_width"), also=(OSError,), **kw)


def test_npz_with_object_array_is_refused(tmp_path):
    path = tmp_path / "obj.npz"
    np.savez(path, counts=np.array([{"a": 1}, None], dtype=object))
    with pytest.raises(ValueError):
        spikessm.read_npz(path, bin_width=0.01)


def test_regression_rebin_counts_complex_raises_typeerror_naming_counts():
    # bug: complex counts raised numpy's anonymous "float() argument must be ..." TypeError
    with pytest.raises(TypeError, match="counts"):
        spikessm.rebin_counts([0j], 1)


def test_regression_read_csv_without_bin_width_names_it(tmp_path):
    # bug: read("x.csv") without bin_width leaked Python's "missing keyword argument" error
    path = tmp_path / "x.csv"
    path.write_text("0.1,0\n")
    with pytest.raises(TypeError, match="bin_width= "):
        spikessm.read(path)
