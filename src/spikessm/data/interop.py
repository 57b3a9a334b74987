"""Bin objects from pynapple and Neo into a :class:`SpikeTrials`.

- pynapple: a ``TsGroup`` of units (or a dict of ``Ts``), an ``IntervalSet`` of trials
  (its metadata columns can label them), ``Tsd`` / ``TsdFrame`` covariates.
- Neo: a list of ``SpikeTrain``, a ``Segment`` (one trial) or a ``Block`` (one trial per
  segment), with units converted through ``quantities``; analog signals become covariates.

Neither package is imported by spikessm until one of these functions is called.
"""

from __future__ import annotations

import numpy as np

from .._checks import as_float_array, check_flag
from ._source import require
from .binning import bin_spike_times
from .container import SpikeTrials

__all__ = ["from_neo", "from_pynapple"]


def _provenance(provenance) -> dict:
    if provenance is None:
        return {}
    if not isinstance(provenance, dict):
        raise TypeError(f"provenance must be a dict, got {type(provenance).__name__}")
    return provenance


def _tsd_pair(obj, name: str):
    t = getattr(obj, "t", None)
    values = getattr(obj, "d", None)
    if t is None or values is None:
        raise TypeError(f"covariates[{name!r}] must be a pynapple Tsd / TsdFrame or a "
                        f"(times, values) pair, got {type(obj).__name__}")
    return np.asarray(t, dtype=np.float64), np.asarray(values, dtype=np.float64)


def from_pynapple(units, bin_width: float, *, epochs=None, label_column: str | None = None,
                  labels=None, covariates: dict | None = None,
                  covariate_method: str = "mean", covariate_outside: str = "error",
                  provenance: dict | None = None) -> SpikeTrials:
    """Bin a pynapple ``TsGroup`` (times in seconds) into a SpikeTrials.

    Args:
      units: ``nap.TsGroup`` (its keys become unit ids) or a dict id -> ``Ts`` / times.
      bin_width: seconds per bin.
      epochs: ``nap.IntervalSet`` of trial windows (default: the group's time support, one
        trial per interval). Note that pynapple shortens an interval that ends where the
        next one starts by 1 microsecond, which drops the last bin of the earlier trial;
        pass explicit (start, stop) pairs to keep it.
      label_column: a metadata column of ``epochs`` holding trial labels (e.g.
        ``"condition"``); or give ``labels`` directly.
      covariates: dict name -> ``Tsd`` / ``TsdFrame`` (or a (times, values) pair),
        resampled to the bins (see :func:`spikessm.data.resample_covariate`).
    """
    prov = {"reader": "from_pynapple", **_provenance(provenance)}
    if covariates is not None and not isinstance(covariates, dict):
        raise TypeError(f"covariates must be a dict name -> Tsd / TsdFrame / (times, values), "
                        f"got {type(covariates).__name__}")
    if isinstance(units, dict):
        # TypeError naming the unit for strings, None, complex times (np.asarray parsed a
        # string as a spike time and dropped imaginary parts)
        spikes = {k: as_float_array(getattr(v, "t", v), f"units[{k!r}]") for k, v in
                  units.items()}
        support = None
    else:
        if not (hasattr(units, "keys") and hasattr(units, "time_support")):
            raise TypeError(f"units must be a pynapple TsGroup or a dict, got "
                            f"{type(units).__name__}")
        spikes = {k: np.asarray(units[k].t, dtype=np.float64) for k in units.keys()}
        support = units.time_support
    if epochs is None:
        epochs = support
    if epochs is not None and label_column is not None:
        if labels is not None:
            raise ValueError("give labels or label_column, not both")
        try:
            labels = np.asarray(epochs[label_column])
        except (KeyError, TypeError, IndexError):
            raise ValueError(f"epochs has no metadata column {label_column!r}") from None
    covs = None
    if covariates:
        covs = {n: (v if isinstance(v, tuple) else _tsd_pair(v, n))
                for n, v in covariates.items()}
    if epochs is None:
        return bin_spike_times(spikes, bin_width, labels=labels, covariates=covs,
                               covariate_method=covariate_method,
                               covariate_outside=covariate_outside, provenance=prov)
    return bin_spike_times(spikes, bin_width, trials=epochs, labels=labels, covariates=covs,
                           covariate_method=covariate_method,
                           covariate_outside=covariate_outside, provenance=prov)


def _seconds(q) -> np.ndarray:
    return np.asarray(q.rescale("s").magnitude, dtype=np.float64)


def _unit_id(st, i):
    for key in ("unit_id", "id", "channel_id"):
        if key in st.annotations:
            return st.annotations[key]
    return st.name if st.name else i


def _segment(seg, where):
    trains = list(seg.spiketrains)
    if not trains:
        raise ValueError(f"{where} has no spike trains")
    return trains


def from_neo(obj, bin_width: float, *, trials=None, label_annotation: str = "condition",
             labels=None, covariates: bool = True, covariate_method: str = "mean",
             covariate_outside: str = "error",
             provenance: dict | None = None) -> SpikeTrials:
    """Bin Neo spike trains into a SpikeTrials.

    Args:
      obj: a list of ``neo.SpikeTrain`` (one per unit; one trial spanning the earliest
        ``t_start`` to the latest ``t_stop`` unless ``trials`` is given), a ``neo.Segment``
        (the same, from its spike trains) or a ``neo.Block`` (one trial per segment,
        window = that segment's ``t_start`` .. ``t_stop``; every segment must have the same
        units, matched by unit id).
      bin_width: seconds per bin. Times are converted to seconds with ``quantities``.
      trials: explicit (start, stop) windows in seconds (list / Segment input only).
      label_annotation: segment annotation holding the trial label (Block input); falls
        back to the segment name, then the segment number.
      covariates: also bin the segments' ``AnalogSignal`` / ``IrregularlySampledSignal``
        objects (named by their ``name``) as covariates.

    Unit ids come from a spike train's ``unit_id`` / ``id`` / ``channel_id`` annotation,
    else its name, else its position. A spike exactly at a window's ``t_stop`` (allowed by
    Neo) falls outside the half-open bins and is not counted.
    """
    neo = require("neo", "from_neo")
    prov = {"reader": "from_neo", **_provenance(provenance)}
    covariates = check_flag(covariates, "covariates")   # "no" was taken as True
    kw = dict(covariate_method=covariate_method, covariate_outside=covariate_outside)
    if isinstance(obj, neo.Block):
        segs = list(obj.segments)
        if not segs:
            raise ValueError("the Block has no segments")
        if trials is not None:
            raise ValueError("trials: a Block's segments are the trials; select segments "
                             "instead")
        ids = [_unit_id(st, i) for i, st in enumerate(_segment(segs[0], "segment 0"))]
        per_seg, windows, seg_labels, cov = [], [], [], {}
        for k, seg in enumerate(segs):
            trains = _segment(seg, f"segment {k}")
            by_id = {_unit_id(st, i): st for i, st in enumerate(trains)}
            if sorted(map(str, by_id)) != sorted(map(str, ids)):
                raise ValueError(f"segment {k} has units {list(by_id)}; segment 0 has {ids}")
            per_seg.append([_seconds(by_id[u].times) for u in ids])
            windows.append((min(float(_seconds(st.t_start)) for st in trains),
                            max(float(_seconds(st.t_stop)) for st in trains)))
            seg_labels.append(seg.annotations.get(label_annotation, seg.name or k))
            if covariates:
                for name, pair in _signals(seg).items():
                    cov.setdefault(name, []).append(pair)
        # one binning call over all windows: spikes of segment k only count in window k
        recs = [bin_spike_times(per_seg[k], bin_width, trials=[windows[k]], unit_ids=ids,
                                covariates={n: v[k] for n, v in cov.items()
                                            if len(v) == len(segs)} or None, **kw)
                for k in range(len(segs))]
        return SpikeTrials([r.counts[0] for r in recs], recs[0].bin_width, unit_ids=ids,
                           trial_labels=seg_labels if labels is None else labels,
                           trial_starts=[w[0] for w in windows],
                           covariates={n: [r.covariates[n][0] for r in recs]
                                       for n in recs[0].covariates},
                           provenance={**prov, "binning": recs[0].provenance["binning"],
                                       "trials": "one per segment"})
    if isinstance(obj, neo.Segment):
        trains = _segment(obj, "the Segment")
        cov = _signals(obj) if covariates else {}
    else:
        trains = list(obj) if isinstance(obj, (list, tuple)) else None
        if not trains or not all(isinstance(st, neo.SpikeTrain) for st in trains):
            raise TypeError("obj must be a neo Block, Segment or a non-empty list of "
                            f"SpikeTrain, got {type(obj).__name__}")
        cov = {}
    ids = [_unit_id(st, i) for i, st in enumerate(trains)]
    spikes = [_seconds(st.times) for st in trains]
    if trials is None:
        trials = [(min(float(_seconds(st.t_start)) for st in trains),
                   max(float(_seconds(st.t_stop)) for st in trains))]
    return bin_spike_times(spikes, bin_width, trials=trials, unit_ids=ids, labels=labels,
                           covariates=cov or None, provenance=prov, **kw)


def _signals(seg) -> dict:
    out = {}
    for i, sig in enumerate(list(seg.analogsignals) + list(seg.irregularlysampledsignals)):
        name = sig.name or f"signal{i}"
        out[name] = (_seconds(sig.times), np.asarray(sig.magnitude, dtype=np.float64))
    return out
