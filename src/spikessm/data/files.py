"""Read recordings from .mat, .npz and .csv files, and :func:`read`, which picks the reader.

Layouts recognised (``layout=`` names them explicitly; by default they are detected):

- ``"counts"``: a count matrix ``counts`` (T, N) or (K, T, N) with ``bin_width`` (seconds;
  or pass ``bin_width=``), optional ``unit_ids``, ``trial_labels``, ``trial_starts``.
- ``"spike_times"``: ``.mat``: ``spike_times`` (or ``spikeTimes``), a cell array with one
  vector of seconds per unit. ``.npz``: ``spike_times`` (flat, seconds) and ``spike_units``
  (the unit of each spike) of equal length. Optional ``trials`` ((K, 2) windows) and
  ``trial_labels``; ``bin_width=`` is required.
- ``"place_cells"``: the nSTAT place-cell recording (``neuron`` cells with ``spikeTimes``;
  ``time``, ``x``, ``y`` the 30 Hz tracker). Without ``bin_width`` the bins are the tracker
  samples (bin i starts at ``time[i]``) and the ``position`` covariate is (x, y) as
  recorded; with ``bin_width`` the spikes are re-binned and the position averaged per bin.
- ``"yu2009"``: DataHigh's ``D`` struct array (``data``: units x 1 ms 0/1 samples per trial,
  ``condition``): summed into bins of ``bin_width`` (default 0.02 s; a multiple of 1 ms),
  trials labelled by condition, placed back to back in time.

CSV / TSV files: an event table with a time column (``time``, ``spike_time``, or with a
unit suffix ``Time (ms)`` / ``time (s)`` / ``time (us)``; seconds when no suffix) and an
optional ``unit`` column (without one, every event belongs to a single unit 0; other columns
are ignored; give ``trials=`` windows), or a count table whose columns are the units
(header = unit ids) with an optional ``trial`` column splitting the rows into trials;
``bin_width=`` is required.

Nothing here unpickles: ``.npz`` is read with ``allow_pickle=False``; MATLAB files with
``scipy.io.loadmat`` (v7.3 / HDF5 files with h5py).
"""

from __future__ import annotations

import csv
import dataclasses
import os
import re
from pathlib import Path

import numpy as np

from .._checks import as_float_array
from ._source import bad_file, existing_file, file_provenance, npz_members, require
from .binning import bin_spike_times, rebin_counts, resample_covariate
from .container import SpikeTrials

__all__ = ["read", "read_csv", "read_mat", "read_npz"]

_LAYOUTS = ("counts", "spike_times", "place_cells", "yu2009")
_TIME_COLUMN = re.compile(r"^(time|times|spike_time|spike_times|t)\s*(?:\((s|ms|us|µs)\))?$")
_TIME_SCALE = {"s": 1.0, "ms": 1e-3, "us": 1e-6, "µs": 1e-6}


def _sourced(rec: SpikeTrials, p: Path, reader: str, **details) -> SpikeTrials:
    return dataclasses.replace(rec, provenance={**file_provenance(p, reader, **details),
                                                **rec.provenance})


def _bin_width(given, stored, p):
    if given is not None:
        return given
    if stored is None:
        raise ValueError(f"{p}: no bin_width stored in the file; pass bin_width= (seconds)")
    try:
        return float(np.asarray(stored).reshape(-1)[0])
    except (TypeError, ValueError, IndexError):
        raise bad_file(p, f"bin_width {stored!r} is not a number") from None


def _counts_rec(p, v: dict, bin_width) -> SpikeTrials:
    c = np.asarray(v["counts"])
    if c.dtype.kind not in "biuf" or c.ndim not in (2, 3):
        raise bad_file(p, f"counts must be a numeric (T, N) or (K, T, N) array, got "
                          f"{c.dtype} {c.shape}")
    get = lambda k: None if v.get(k) is None else np.asarray(v[k]).reshape(-1)
    try:
        return SpikeTrials(c, _bin_width(bin_width, v.get("bin_width"), p),
                           unit_ids=get("unit_ids"), trial_labels=get("trial_labels"),
                           trial_starts=get("trial_starts"))
    except (TypeError, ValueError) as exc:
        raise bad_file(p, str(exc)) from None


def _spikes_rec(p, spikes, bin_width, trials, labels, unit_ids=None) -> SpikeTrials:
    if bin_width is None:
        raise ValueError(f"{p}: spike times need bin_width= (seconds)")
    try:
        return bin_spike_times(spikes, bin_width, trials=trials, labels=labels,
                               unit_ids=unit_ids)
    except (TypeError, ValueError) as exc:
        raise bad_file(p, str(exc)) from None


# ------------------------------------------------------------------------------ .mat
def _loadmat(p: Path) -> dict:
    sio = require("scipy.io", "read_mat")
    try:
        m = sio.loadmat(str(p), squeeze_me=True, struct_as_record=False)
    except NotImplementedError:           # MATLAB v7.3: HDF5
        return _loadmat_h5(p)
    except Exception as exc:              # scipy raises ValueError, TypeError, OSError ...
        raise bad_file(p, f"not a readable MATLAB file ({type(exc).__name__}: {exc})") \
            from None
    return {k: v for k, v in m.items() if not k.startswith("__")}


def _loadmat_h5(p: Path) -> dict:
    """MATLAB v7.3 (HDF5): numeric arrays (transposed back to MATLAB's order) and cell
    arrays of numeric arrays; structs are not supported."""
    h5py = require("h5py", "read_mat (MATLAB v7.3 files)")
    out = {}
    try:
        with h5py.File(p, "r") as f:
            for k, ds in f.items():
                if k.startswith("#") or not isinstance(ds, h5py.Dataset):
                    continue
                if ds.dtype == h5py.ref_dtype:
                    out[k] = [np.asarray(f[r][()]).T.reshape(-1) if f[r].ndim else
                              np.asarray(f[r][()]) for r in np.asarray(ds[()]).T.reshape(-1)]
                else:
                    out[k] = np.asarray(ds[()]).T
    except OSError as exc:
        raise bad_file(p, f"not a readable MATLAB v7.3 (HDF5) file ({exc})") from None
    return out


def _detect(v: dict) -> str | None:
    if "neuron" in v and "time" in v:
        return "place_cells"
    if "D" in v:
        return "yu2009"
    if "counts" in v:
        return "counts"
    if "spike_times" in v or "spikeTimes" in v:
        return "spike_times"
    return None


def _field(s, name, p, where):
    if not hasattr(s, name):
        raise bad_file(p, f"{where} has no field {name!r}")
    return getattr(s, name)


def _place_cells(p, v, bin_width) -> SpikeTrials:
    neurons = np.atleast_1d(v["neuron"])
    spikes = [np.atleast_1d(as_float_array(_field(n, "spikeTimes", p, f"neuron{{{i + 1}}}"),
                                           f"neuron{{{i + 1}}}.spikeTimes"))
              for i, n in enumerate(neurons)]
    t = as_float_array(v["time"], "time").reshape(-1)
    pos = np.column_stack([as_float_array(v["x"], "x").reshape(-1),
                           as_float_array(v["y"], "y").reshape(-1)])
    if t.size < 2 or pos.shape[0] != t.size:
        raise bad_file(p, f"time ({t.size}) and x, y ({pos.shape[0]}) must match")
    step = (t[-1] - t[0]) / (t.size - 1)
    if bin_width is None:
        rec = bin_spike_times(spikes, step, trials=[(t[0], t[0] + t.size * step)],
                              unit_ids=np.arange(1, len(spikes) + 1))
        return rec.with_covariates(position=[pos])
    rec = bin_spike_times(spikes, bin_width, trials=[(t[0], t[0] + t.size * step)],
                          unit_ids=np.arange(1, len(spikes) + 1))
    return rec.with_covariates(position=resample_covariate(
        t, pos, rec, method="mean", outside="edge", name="position"))


def _yu2009(p, v, bin_width) -> SpikeTrials:
    D = np.atleast_1d(v["D"])
    bw = 0.02 if bin_width is None else float(bin_width)
    factor = int(round(bw / 0.001))
    if factor < 1 or abs(factor * 0.001 - bw) > 1e-9:
        raise ValueError(f"{p}: bin_width must be a multiple of 1 ms for this 1 ms layout, "
                         f"got {bw}")
    counts, labels = [], []
    for k, d in enumerate(D):
        x = as_float_array(_field(d, "data", p, f"D({k + 1})"), f"D({k + 1}).data")
        if x.ndim != 2 or x.shape[1] < factor:
            raise bad_file(p, f"D({k + 1}).data has shape {x.shape}; expected units x time "
                              f"with at least {factor} samples")
        counts.append(rebin_counts(x.T, factor))
        labels.append(str(getattr(d, "condition", k)))
    rec = SpikeTrials(counts, factor * 0.001, trial_labels=labels,
                      unit_ids=np.arange(1, counts[0].shape[1] + 1))
    return dataclasses.replace(rec, provenance={"binning": {
        "function": "rebin of 1 ms samples", "bin_width": factor * 0.001,
        "trial_starts": "back to back (the file holds no trial times)"}})


def read_mat(path, *, layout: str | None = None, bin_width: float | None = None,
             trials=None, labels=None) -> SpikeTrials:
    """Read a MATLAB file (v5/v7 with scipy, v7.3 with h5py) into a SpikeTrials.

    Args:
      layout: one of "counts", "spike_times", "place_cells", "yu2009" (see the module
        docstring), or None to detect it from the variable names.
      bin_width: seconds per bin (required for spike times; overrides a stored one).
      trials, labels: windows and labels for the "spike_times" layout.
    """
    p = existing_file(path)
    v = _loadmat(p)
    kind = layout or _detect(v)
    if kind not in _LAYOUTS:
        raise ValueError(f"{p}: unknown layout {kind!r}; variables found: {sorted(v)}; "
                         f"expected one of the layouts {_LAYOUTS}" if layout else
                         f"{p}: cannot tell the layout from variables {sorted(v)}; pass "
                         f"layout= one of {_LAYOUTS} (see spikessm.data.files)")
    try:
        if kind == "place_cells":
            rec = _place_cells(p, v, bin_width)
        elif kind == "yu2009":
            rec = _yu2009(p, v, bin_width)
        elif kind == "counts":
            rec = _counts_rec(p, v, bin_width)
        else:
            cells = v.get("spike_times", v.get("spikeTimes"))
            if cells is None:
                raise bad_file(p, "no variable 'spike_times'")
            cells = [cells] if isinstance(cells, np.ndarray) and cells.dtype != object \
                else list(np.atleast_1d(cells))
            rec = _spikes_rec(p, [np.atleast_1d(as_float_array(c, f"spike_times{{{i + 1}}}"))
                                  for i, c in enumerate(cells)], bin_width, trials, labels)
    except KeyError as exc:
        raise bad_file(p, f"layout {kind!r} needs variable {exc}") from None
    except (AttributeError, TypeError, ValueError, IndexError) as exc:
        if isinstance(exc, ValueError) and str(p) in str(exc):
            raise                       # already names the file
        raise bad_file(p, f"does not match layout {kind!r} ({exc})") from None
    return _sourced(rec, p, "read_mat", layout=kind)


# ------------------------------------------------------------------------------ .npz
def _check_layout(p, layout, allowed):
    if layout is not None and layout not in allowed:
        raise ValueError(f"{p}: layout {layout!r} does not apply to this file type; "
                         f"choose from {allowed}")


def read_npz(path, *, bin_width: float | None = None, trials=None, labels=None,
             layout: str | None = None) -> SpikeTrials:
    """Read a ``.npz`` recording (layouts "counts" or "spike_times", see the module
    docstring; detected unless ``layout`` names one) or a SpikeTrials saved with
    :func:`spikessm.io.save`. Never unpickles."""
    p = existing_file(path)
    _check_layout(p, layout, ("counts", "spike_times"))
    v = npz_members(p)
    if not isinstance(v, dict) or not v:
        raise bad_file(p, "empty archive")
    if "__meta__" in v:
        from ..io import load
        rec = load(p)
        if not isinstance(rec, SpikeTrials):
            raise bad_file(p, f"holds a saved {type(rec).__name__}, not a recording; load "
                              "it with spikessm.io.load")
        return rec
    if "counts" in v and layout in (None, "counts"):
        rec = _counts_rec(p, v, bin_width)
    elif "spike_times" in v and "spike_units" in v and layout in (None, "spike_times"):
        try:
            t = as_float_array(v["spike_times"], "spike_times").reshape(-1)
        except TypeError as exc:
            raise bad_file(p, str(exc)) from None
        u = np.asarray(v["spike_units"]).reshape(-1)
        if t.shape != u.shape:
            raise bad_file(p, f"spike_times ({t.size}) and spike_units ({u.size}) differ "
                              "in length")
        ids = np.unique(u)
        trials = v.get("trials") if trials is None else trials
        labels = v.get("trial_labels") if labels is None else labels
        rec = _spikes_rec(p, [t[u == i] for i in ids], bin_width, trials, labels,
                          unit_ids=ids)
    else:
        raise bad_file(p, f"members {sorted(v)} match no layout: expected 'counts' (+ "
                          "'bin_width') or 'spike_times' + 'spike_units'")
    return _sourced(rec, p, "read_npz")


# ------------------------------------------------------------------------------ .csv
def read_csv(path, *, bin_width: float, trials=None, labels=None, sep: str | None = None,
             layout: str | None = None) -> SpikeTrials:
    """Read a CSV spike table (columns ``unit``, ``time``) or count table (one column per
    unit, optional ``trial`` column) into a SpikeTrials. See the module docstring;
    ``layout`` ("spike_times" or "counts") forces one reading instead of detecting it."""
    pd = require("pandas", "read_csv")
    p = existing_file(path)
    _check_layout(p, layout, ("counts", "spike_times"))
    if sep is None:
        sep = "\t" if p.suffix.lower() in (".tsv", ".txt") else ","
    try:
        df = pd.read_csv(p, sep=sep, float_precision="round_trip")
    except Exception as exc:              # ParserError, UnicodeDecodeError, EmptyDataError
        raise bad_file(p, f"not a readable table ({type(exc).__name__}: {exc})") from None
    _check_row_lengths(p, sep)
    cols = {str(c).strip().lower(): c for c in df.columns}
    time_col = scale = None
    for key, c in (cols.items() if layout != "counts" else ()):
        m = _TIME_COLUMN.match(key)
        if m:
            time_col, scale = c, _TIME_SCALE[m.group(2) or "s"]
            break
    if time_col is not None:
        t = pd.to_numeric(df[time_col], errors="coerce").to_numpy(dtype=np.float64)
        if np.isnan(t).any():
            raise bad_file(p, f"column {str(time_col)!r} has {int(np.isnan(t).sum())} "
                              "non-numeric or empty entries")
        t = t * scale
        if "unit" in cols:
            u = df[cols["unit"]].to_numpy()
            u = u.astype(str) if u.dtype == object else u
        else:
            u = np.zeros(t.size, dtype=np.int64)
        ids = np.unique(u)
        rec = _spikes_rec(p, [t[u == i] for i in ids], bin_width, trials, labels,
                          unit_ids=ids)
        return _sourced(rec, p, "read_csv", layout="spike_times",
                        time_column=str(time_col))
    if layout == "spike_times":
        raise bad_file(p, "no time column (time, spike_time, 'Time (ms)', ...) for layout "
                          "'spike_times'")
    trial_col = cols.get("trial")
    data = df.drop(columns=[trial_col]) if trial_col is not None else df
    try:
        x = data.apply(pd.to_numeric, errors="raise").to_numpy(dtype=np.float64)
    except (ValueError, TypeError) as exc:
        raise bad_file(p, f"expected columns 'unit' and 'time' (spike table) or numeric "
                          f"count columns ({exc})") from None
    unit_ids = [str(c) for c in data.columns]
    if trial_col is None:
        counts, tl = [x], labels
    else:
        tr = df[trial_col].to_numpy()
        order = list(dict.fromkeys(tr.tolist()))
        counts = [x[tr == k] for k in order]
        tl = labels if labels is not None else order
    try:
        rec = SpikeTrials(counts, bin_width, unit_ids=unit_ids, trial_labels=tl)
    except (TypeError, ValueError) as exc:
        raise bad_file(p, str(exc)) from None
    return _sourced(rec, p, "read_csv", layout="counts")


def _check_row_lengths(p: Path, sep: str) -> None:
    """ValueError naming the file when a row has more or fewer fields than the header.
    pandas fills missing trailing fields with NaN (read as missing counts) and, when every
    row has one field too many, silently takes the first column as the row index; a cell
    such as ``1,2`` written without quotes does either."""
    if len(sep) != 1:                     # a regular-expression separator: pandas only
        return
    with open(p, newline="", encoding="utf-8") as f:
        rows = [r for r in csv.reader(f, delimiter=sep) if r]
    if not rows:
        return
    width = len(rows[0])
    for i, r in enumerate(rows[1:], start=2):
        if len(r) != width:
            raise bad_file(p, f"row {i} has {len(r)} fields; the header has {width} (a "
                              "value holding the separator must be quoted)")


# ------------------------------------------------------------------------------ dispatch
_READERS = {".nwb": "nwb", ".mat": "mat", ".npz": "npz", ".csv": "csv", ".tsv": "csv",
            ".txt": "csv"}


def read(path, **kwargs) -> SpikeTrials:
    """Read a recording, choosing the reader by file extension.

    ``.nwb`` -> :func:`spikessm.data.read_nwb` (needs ``bin_width``), ``.mat`` ->
    :func:`read_mat`, ``.npz`` -> :func:`read_npz`, ``.csv`` / ``.tsv`` / ``.txt`` ->
    :func:`read_csv`. Keyword arguments go to that reader (e.g. ``bin_width``,
    ``layout``, ``trials``). Returns a :class:`SpikeTrials` whose ``provenance`` records
    the file, its sha256 and the reader's arguments.
    """
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a file name, got {type(path).__name__}")
    kind = _READERS.get(Path(os.fspath(path)).suffix.lower())
    if kind is None:
        raise ValueError(f"{os.fspath(path)}: unknown file type; spikessm reads "
                         f"{sorted(_READERS)}")
    if kind == "nwb":
        from .nwb import read_nwb
        if "bin_width" not in kwargs:
            raise TypeError("reading an NWB file needs bin_width= (seconds)")
        if kwargs.pop("layout", None) is not None:
            raise ValueError(f"{os.fspath(path)}: layout= applies to .mat, .npz and .csv "
                             "files, not NWB")
        return read_nwb(path, **kwargs)
    if kind == "csv" and "bin_width" not in kwargs:
        raise TypeError(f"{os.fspath(path)}: reading a CSV file needs bin_width= (seconds)")
    return {"mat": read_mat, "npz": read_npz, "csv": read_csv}[kind](path, **kwargs)
