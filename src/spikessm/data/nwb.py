"""Read Neurodata Without Borders (NWB) files with pynwb into a :class:`SpikeTrials`.

What is read: the Units table (``spike_times``; the table's ids become ``unit_ids``), the
trials table (``start_time`` / ``stop_time`` windows; a column such as ``condition`` gives
the trial labels) and behavioural time series (every TimeSeries / SpatialSeries in the
``behavior`` processing module, or those named) resampled to the bins as covariates. NWB
files are HDF5: reading never unpickles.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from ._source import bad_file, existing_file, file_provenance, require
from .binning import bin_spike_times
from .container import SpikeTrials

__all__ = ["read_nwb"]


def _series_in(container, ts_type):
    """TimeSeries held by a processing module or interface (Position, BehavioralTimeSeries,
    ...), one level down, by name."""
    found = {}
    items = getattr(container, "data_interfaces", None)
    for name, obj in (items.items() if items is not None else []):
        if isinstance(obj, ts_type):
            found[name] = obj
        else:
            for child in getattr(obj, "children", ()):
                if isinstance(child, ts_type):
                    found[child.name] = child
    return found


def _series_values(ts) -> tuple[np.ndarray, np.ndarray]:
    data = np.asarray(ts.data[:], dtype=np.float64)
    data = data * float(getattr(ts, "conversion", 1.0) or 1.0) + float(
        getattr(ts, "offset", 0.0) or 0.0)
    if ts.timestamps is not None:
        t = np.asarray(ts.timestamps[:], dtype=np.float64)
    else:
        t = float(ts.starting_time or 0.0) + np.arange(data.shape[0]) / float(ts.rate)
    return t, data.reshape(data.shape[0], -1)


def _extract(nwb, path, bin_width, trials, label_column, units, covariates,
             covariate_method, covariate_outside, start, stop) -> SpikeTrials:
    pynwb = require("pynwb", "read_nwb")
    if nwb.units is None or "spike_times" not in nwb.units.colnames:
        raise bad_file(path, "has no Units table with spike_times")
    ids = np.asarray(nwb.units.id[:])
    col = nwb.units["spike_times"]
    keep = range(len(ids))
    if units is not None:
        pos = {u: i for i, u in enumerate(ids.tolist())}
        if np.ndim(units) > 1:
            raise ValueError(f"units must be a list of Units-table ids, got shape "
                             f"{np.shape(units)}")
        missing = [u for u in np.atleast_1d(units).tolist() if u not in pos]
        if missing:
            raise ValueError(f"{path}: units {missing[:5]} not in the Units table "
                             f"(ids {ids[:10].tolist()}...)")
        keep = [pos[u] for u in np.atleast_1d(units).tolist()]
    spikes = [np.asarray(col[i], dtype=np.float64) for i in keep]
    unit_ids = ids[list(keep)]
    for sp, u in zip(spikes, unit_ids.tolist()):
        if not np.all(np.isfinite(sp)):
            raise bad_file(path, f"unit {u!r} has NaN or infinite spike_times")

    windows, labels, used = None, None, None
    if isinstance(trials, str):
        table = nwb.intervals.get(trials) if nwb.intervals is not None else None
        if table is None and trials in ("trials", "epochs", "invalid_times"):
            # an NWBFile built in memory holds these tables as attributes only (a file read
            # back from disk also lists them under intervals)
            table = getattr(nwb, trials, None)
        if table is None and trials != "trials":
            raise ValueError(f"{path}: no intervals table {trials!r}")
        if table is not None and start is None and stop is None:
            windows = np.column_stack([table["start_time"][:], table["stop_time"][:]])
            used = trials
            if label_column is None and "condition" in table.colnames:
                label_column = "condition"
            if label_column is not None:
                if label_column not in table.colnames:
                    raise ValueError(f"{path}: the {trials!r} table has no column "
                                     f"{label_column!r}; columns: {list(table.colnames)}")
                labels = np.asarray(table[label_column][:])
    elif trials is not None:
        windows = trials
    if windows is None and start is None:
        start = 0.0

    series = {}
    if covariates is not None and not (
            isinstance(covariates, str) or (isinstance(covariates, (list, tuple)) and all(
                isinstance(n, str) for n in covariates))):
        raise TypeError(f"covariates must be 'behavior', a series name, a list of names or "
                        f"None, got {covariates!r:.60}")
    if covariates is not None:
        pool = {}
        for mod in nwb.processing.values():
            pool.update({f"{mod.name}/{k}": v
                         for k, v in _series_in(mod, pynwb.TimeSeries).items()})
        pool.update({f"acquisition/{k}": v for k, v in nwb.acquisition.items()
                     if isinstance(v, pynwb.TimeSeries)})
        if covariates == "behavior":
            chosen = {k.split("/", 1)[1]: v for k, v in pool.items()
                      if k.startswith("behavior/")}
        else:
            names = [covariates] if isinstance(covariates, str) else list(covariates)
            chosen = {}
            for n in names:
                hits = [v for k, v in pool.items() if k == n or k.split("/", 1)[1] == n]
                if not hits:
                    raise ValueError(f"{path}: no time series {n!r}; available: "
                                     f"{sorted(pool)}")
                chosen[n] = hits[0]
        series = {n: _series_values(ts) for n, ts in chosen.items()}
    details = {"trials_table": used, "label_column": label_column,
               "covariates": sorted(series) or None}
    try:
        return bin_spike_times(spikes, bin_width, trials=windows, start=start, stop=stop,
                               unit_ids=unit_ids, labels=labels, covariates=series or None,
                               covariate_method=covariate_method,
                               covariate_outside=covariate_outside, provenance=details)
    except (ValueError, TypeError) as exc:
        # the windows, labels and covariates may come from the file: name it
        raise type(exc)(f"{path}: {exc}") from None


def read_nwb(path, bin_width: float, *, trials="trials", label_column: str | None = None,
             units=None, covariates="behavior", covariate_method: str = "mean",
             covariate_outside: str = "error", start: float | None = None,
             stop: float | None = None) -> SpikeTrials:
    """Bin the spikes of an NWB file (or an open ``pynwb.NWBFile``) into a SpikeTrials.

    Args:
      path: ``.nwb`` file name, or an ``NWBFile`` already in memory.
      bin_width: seconds per bin.
      trials: name of the intervals table that defines the trial windows (default
        ``"trials"``; used when present), None for one window over the whole recording,
        or explicit (start, stop) pairs.
      label_column: column of the trials table holding the labels (default ``"condition"``
        when that column exists, else trial numbers).
      units: Units-table ids to keep, in order (default all).
      covariates: ``"behavior"`` (every time series in the behavior processing module),
        a name or list of names of time series (in any processing module or acquisition),
        or None. Each is resampled to the bins (``covariate_method``, ``covariate_outside``:
        see :func:`spikessm.data.resample_covariate`), named after the series.
      start, stop: the window when there is no trials table (default: 0 to the last spike).

    Raises ImportError naming the ``io`` extra when pynwb is missing, FileNotFoundError,
    and ValueError naming the file when it is not a readable NWB file or lacks a part asked
    for.
    """
    pynwb = require("pynwb", "read_nwb")
    if isinstance(path, pynwb.NWBFile):
        rec = _extract(path, "<NWBFile>", bin_width, trials, label_column, units,
                                  covariates, covariate_method, covariate_outside, start,
                                  stop)
        return _with_source(rec, {"reader": "read_nwb", "source": "in-memory NWBFile",
                                  "identifier": str(path.identifier)})
    p = existing_file(path)
    try:
        io = pynwb.NWBHDF5IO(str(p), "r")
    except Exception as exc:        # h5py OSError, hdmf errors: not an NWB/HDF5 file
        raise bad_file(p, f"not a readable NWB file ({type(exc).__name__}: {exc})") from None
    with io:
        try:
            nwb = io.read()
        except Exception as exc:
            raise bad_file(p, f"damaged NWB file ({type(exc).__name__}: {exc})") from None
        rec = _extract(nwb, p, bin_width, trials, label_column, units, covariates,
                                  covariate_method, covariate_outside, start, stop)
        ident = str(nwb.identifier)
    return _with_source(rec, file_provenance(p, "read_nwb", identifier=ident))


def _with_source(rec: SpikeTrials, source: dict) -> SpikeTrials:
    return dataclasses.replace(rec, provenance={**source, **rec.provenance})
