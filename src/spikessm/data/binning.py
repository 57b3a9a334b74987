"""Binning spike times into counts and aligning covariates to the bins.

Bins are half-open: bin ``t`` of a trial starting at ``s`` covers ``[s + t*dt, s + (t+1)*dt)``.
A trial window ``(start, stop)`` holds ``floor((stop - start) / dt)`` whole bins (a ratio
within 1e-9 of an integer counts as that integer); a trailing remainder shorter than one bin
is dropped, and so are the spikes in it. A spike exactly at a trial's ``stop`` therefore
belongs to no bin of that trial, and a spike exactly on an inner edge belongs to the bin that
starts there. Inner edges are computed as ``start + i * bin_width`` in float64, so a spike
time written as a decimal that lands on an edge is subject to that rounding.
"""

from __future__ import annotations

import numpy as np

from .._checks import as_float_array, check_bin_width
from .container import SpikeTrials

__all__ = ["bin_spike_times", "rebin_counts", "resample_covariate", "trial_windows"]

_EPS = 1e-9
# A binned recording larger than this (bins x units, 8 GB of float64) is refused with a
# ValueError naming bin_width and the windows (it was a MemoryError, or NumPy's "Maximum
# allowed size exceeded" for a spike time of 1e300 s).
MAX_BIN_ENTRIES = 1e9


def rebin_counts(counts, factor: int) -> np.ndarray:
    """Sum consecutive groups of ``factor`` time bins: (T, N) -> (T // factor, N).

    A trailing remainder shorter than ``factor`` is dropped. NaN (missing) in a group makes
    the summed bin NaN. Counts must be >= 0 and finite (ValueError naming ``counts``
    otherwise: a negative count would cancel a spike and +-inf is not a count). The input is
    not modified.
    """
    x = _bins_2d(counts, factor, "counts")
    finite = x[~np.isnan(x)]
    if np.any(np.isinf(finite)):
        raise ValueError("counts contains +-inf; counts must be finite (NaN marks missing)")
    if np.any(finite < 0):
        raise ValueError("counts has negative entries; counts must be >= 0")
    out = _sum_bins(x, factor)
    if np.any(np.isinf(out)):
        raise ValueError("counts are too large: their sums over factor bins overflow float64")
    return out


def _bins_2d(values, factor, name: str) -> np.ndarray:
    """``values`` as a float64 (T, N) copy (a 1-D input is one column), checked against
    ``factor``."""
    if isinstance(factor, bool) or not isinstance(factor, (int, np.integer)) or factor < 1:
        raise ValueError(f"factor must be a positive integer, got {factor!r}")
    x = as_float_array(values, name)
    if x.ndim == 1:
        x = x[:, None]
    if x.ndim != 2:
        raise ValueError(f"{name} must be (T, N), got shape {x.shape}")
    if x.shape[0] // factor == 0:
        raise ValueError(f"{name} has {x.shape[0]} bins, fewer than factor={factor}")
    return x


def _sum_bins(x: np.ndarray, factor: int) -> np.ndarray:
    """Sums of consecutive groups of ``factor`` rows of a (T, N) array (remainder dropped);
    any real values (covariates are averaged with it)."""
    n = x.shape[0] // factor
    with np.errstate(over="ignore", invalid="ignore"):
        return x[: n * factor].reshape(n, factor, x.shape[1]).sum(axis=1)


def n_bins(start: float, stop: float, bin_width: float) -> int:
    """Whole bins of ``bin_width`` in ``[start, stop)`` (ratios within 1e-9 of an integer
    round to it)."""
    return int(np.floor((stop - start) / bin_width + _EPS))


def trial_windows(trials) -> np.ndarray:
    """(K, 2) float64 array of (start, stop) seconds from a list of pairs, a (K, 2) array,
    or an interval set with ``start`` and ``end`` arrays (pynapple IntervalSet)."""
    if hasattr(trials, "start") and hasattr(trials, "end"):
        w = np.column_stack([np.asarray(trials.start, dtype=np.float64),
                             np.asarray(trials.end, dtype=np.float64)])
    else:
        try:
            w = np.array(trials, dtype=np.float64)
        except (TypeError, ValueError):
            raise TypeError("trials must be (start, stop) pairs in seconds or an interval "
                            "set with .start and .end") from None
        if w.ndim == 1 and w.shape == (2,):
            w = w[None]
    if w.ndim != 2 or w.shape[1] != 2 or w.shape[0] == 0:
        raise ValueError(f"trials must be K >= 1 (start, stop) pairs, got shape {w.shape}")
    if not np.isfinite(w).all():
        raise ValueError("trials: window limits must be finite")
    bad = np.flatnonzero(w[:, 1] <= w[:, 0])
    if bad.size:
        raise ValueError(f"trials: window {bad[0]} has stop <= start ({w[bad[0]].tolist()})")
    return w


def _seconds(value, name: str) -> float:
    """A finite time in seconds (a string such as "0" or a bool is refused, not parsed)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(
            value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a number of seconds, got {value!r:.40}")
    if not np.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value}")
    return float(value)


def _spike_arrays(spike_times, unit_ids):
    if isinstance(spike_times, dict):
        if unit_ids is not None:
            raise ValueError("give unit_ids only with a list of spike-time arrays (a dict's "
                             "keys are the unit ids)")
        unit_ids = list(spike_times)
        spike_times = list(spike_times.values())
    if isinstance(spike_times, np.ndarray) and spike_times.dtype != object:
        raise TypeError("spike_times must be a list of 1-D arrays (one per unit), not one "
                        "array; for a single unit pass [times]")
    if isinstance(spike_times, (str, bytes)) or not hasattr(spike_times, "__len__"):
        raise TypeError("spike_times must be a list of 1-D arrays of seconds, one per unit")
    if len(spike_times) == 0:
        raise ValueError("spike_times is empty; expected one array per unit")
    out = []
    for i, s in enumerate(spike_times):
        try:
            ndim = np.ndim(s)
        except (TypeError, ValueError):   # ragged nested lists
            ndim = None
        if ndim is None or ndim > 1:
            raise ValueError(f"spike_times[{i}] must be 1-D, got {s!r:.60}")
        # TypeError for None, strings, complex numbers (the imaginary part was dropped)
        a = as_float_array(s, f"spike_times[{i}]").reshape(-1)
        if not np.isfinite(a).all():
            raise ValueError(f"spike_times[{i}] contains NaN or inf")
        out.append(a)
    return out, unit_ids


def bin_spike_times(spike_times, bin_width: float, *, start: float | None = None,
                    stop: float | None = None, trials=None, unit_ids=None, labels=None,
                    covariates: dict | None = None, covariate_method: str = "mean",
                    covariate_outside: str = "error",
                    provenance: dict | None = None) -> SpikeTrials:
    """Count spikes in half-open bins ``[t, t + bin_width)``, per trial window.

    Args:
      spike_times: list of N 1-D arrays of spike times in seconds (one per unit, any
        order), or a dict unit_id -> times.
      bin_width: seconds per bin (any positive width).
      start, stop: the single window when ``trials`` is None. Defaults: ``start`` =
        min(0, earliest spike); ``stop`` = just past the latest spike (its bin included).
      trials: K windows: (start, stop) pairs in seconds, a (K, 2) array or an interval set
        with ``.start`` / ``.end`` (pynapple IntervalSet). Windows may differ in length and
        may overlap.
      unit_ids: (N,) ids (default 0..N-1, or the dict's keys).
      labels: (K,) trial labels such as the condition (default 0..K-1).
      covariates: dict name -> (times, values): sampled signals (position, kinematics, LFP)
        resampled to the bins with :func:`resample_covariate` (``covariate_method``,
        ``covariate_outside`` are its ``method`` and ``outside``).
      provenance: dict stored in the result (the binning arguments are added to it).

    Returns a :class:`SpikeTrials`. Bins follow the module docstring: a spike exactly at a
    trial's ``stop`` belongs to no bin of that trial; a trailing partial bin is dropped.

    Example:
      >>> rec = bin_spike_times([[0.01, 0.02, 0.15], [0.45]], 0.1, trials=[(0, 0.3), (0.4, 0.6)])
      >>> [c.tolist() for c in rec.counts]
      [[[2.0, 0.0], [1.0, 0.0], [0.0, 0.0]], [[0.0, 1.0], [0.0, 0.0]]]
    """
    dt = check_bin_width(bin_width)
    if covariates:   # checked here so that the messages name this function's arguments
        if covariate_method not in ("mean", "linear", "nearest"):
            raise ValueError(f"covariate_method must be 'mean', 'linear' or 'nearest', got "
                             f"{covariate_method!r}")
        if covariate_outside not in ("error", "nan", "edge"):
            raise ValueError(f"covariate_outside must be 'error', 'nan' or 'edge', got "
                             f"{covariate_outside!r}")
    spikes, unit_ids = _spike_arrays(spike_times, unit_ids)
    N = len(spikes)
    unit = np.concatenate([np.full(a.size, i, dtype=np.int64) for i, a in enumerate(spikes)])
    t_all = np.concatenate(spikes)
    order = np.argsort(t_all, kind="stable")
    t_all, unit = t_all[order], unit[order]
    if trials is None:
        lo = _seconds(start, "start") if start is not None else min(
            0.0, t_all[0] if t_all.size else 0.0)
        if stop is not None:
            windows = trial_windows([(lo, _seconds(stop, "stop"))])
        else:
            last = t_all[-1] if t_all.size else lo
            if last < lo:
                raise ValueError(f"start={lo} is after every spike (latest {last} s)")
            with np.errstate(over="ignore"):   # in float: inf is refused just below
                whole = np.floor((last - lo) / dt + _EPS)
            windows = np.array([[lo, lo + (whole + 1) * dt]])
    else:
        if start is not None or stop is not None:
            raise ValueError("give either trials or start/stop, not both")
        windows = trial_windows(trials)
    with np.errstate(over="ignore"):
        total = float(np.sum((windows[:, 1] - windows[:, 0]) / dt)) * max(N, 1)
    if not total <= MAX_BIN_ENTRIES:
        raise ValueError(f"bin_width={dt:g} s over the trial windows ({windows[0, 0]:.6g}.."
                         f"{windows[-1, 1]:.6g} s, {N} units) gives {total:.3g} bins x units, "
                         f"more than {MAX_BIN_ENTRIES:.0e}; use wider bins or shorter windows "
                         "(start, stop, trials)")
    counts, starts = [], []
    for k, (a, b) in enumerate(windows):
        T = n_bins(a, b, dt)
        if T < 1:
            raise ValueError(f"trial {k} ({a}..{b} s) is shorter than one bin of {dt} s "
                             "(bin_width)")
        edges = a + dt * np.arange(T + 1)
        if abs((b - a) / dt - T) < _EPS:
            edges[-1] = b           # the window's own stop, not start + T*dt in rounding
        i0, i1 = np.searchsorted(t_all, [edges[0], edges[-1]], side="left")
        seg = t_all[i0:i1]
        b_idx = np.searchsorted(edges, seg, side="right") - 1
        flat = np.bincount(b_idx * N + unit[i0:i1], minlength=T * N)
        counts.append(flat.reshape(T, N).astype(np.float64))
        starts.append(a)
    if provenance is not None and not isinstance(provenance, dict):
        raise TypeError(f"provenance must be a dict, got {type(provenance).__name__}")
    prov = dict(provenance or {})
    prov["binning"] = {"function": "bin_spike_times", "bin_width": dt,
                       "n_trials": int(len(windows)),
                       "windows": "given" if trials is not None else
                       [float(windows[0, 0]), float(windows[0, 1])],
                       "bins": "half-open [t, t + bin_width)"}
    rec = SpikeTrials(counts, dt, unit_ids=unit_ids, trial_labels=labels,
                      trial_starts=np.array(starts), provenance=prov)
    if covariates:
        if not isinstance(covariates, dict):
            raise TypeError("covariates must be a dict name -> (times, values)")
        added = {}
        for name, pair in covariates.items():
            if not isinstance(name, str):   # was: "keywords must be strings"
                raise TypeError(f"covariates names must be strings, got {name!r:.40}")
            try:
                times, values = pair
            except (TypeError, ValueError):
                raise TypeError(f"covariates[{name!r}] must be a (times, values) pair") \
                    from None
            added[name] = resample_covariate(times, values, rec, method=covariate_method,
                                             outside=covariate_outside,
                                             name=f"covariates[{name!r}]")
        rec = rec.with_covariates(**added)
    return rec


def resample_covariate(times, values, recording: SpikeTrials, *, method: str = "mean",
                       outside: str = "error", name: str = "values") -> list[np.ndarray]:
    """Align a sampled signal to the bins of ``recording``: list of K arrays (T_k, q).

    Args:
      times: (M,) sample times in seconds, non-decreasing.
      values: (M,) or (M, q) samples (NaN = missing sample, kept as NaN).
      recording: the :class:`SpikeTrials` whose bins to align to.
      method: "mean" — average of the samples inside each bin (suits signals sampled faster
        than the bins, e.g. LFP); bins holding no sample get the linear interpolation at the
        bin centre. "linear" — linear interpolation at each bin centre. "nearest" — the
        sample nearest each bin centre (ties: the earlier sample).
      outside: bins whose centre lies outside ``[times[0], times[-1]]``: "error" (default,
        ValueError), "nan" (NaN) or "edge" (hold the first / last sample).

    Add the result to the recording with ``recording.with_covariates(name=result)``.
    """
    if method not in ("mean", "linear", "nearest"):
        raise ValueError(f"method must be 'mean', 'linear' or 'nearest', got {method!r}")
    if outside not in ("error", "nan", "edge"):
        raise ValueError(f"outside must be 'error', 'nan' or 'edge', got {outside!r}")
    if not isinstance(recording, SpikeTrials):
        raise TypeError(f"recording must be a SpikeTrials, got {type(recording).__name__}")
    t = as_float_array(times, f"{name}: times").reshape(-1)   # TypeError for strings,
    v = as_float_array(values, f"{name}: values")             # None, complex numbers
    if v.ndim == 1:
        v = v[:, None]
    if v.ndim != 2 or v.shape[0] != t.size:
        raise ValueError(f"{name}: values must be (M,) or (M, q) with M = len(times) = "
                         f"{t.size}, got shape {np.shape(values)}")
    if t.size == 0:
        raise ValueError(f"{name}: no samples")
    if not np.isfinite(t).all():
        raise ValueError(f"{name}: times contain NaN or inf")
    if np.any(np.diff(t) < 0):
        raise ValueError(f"{name}: times must be non-decreasing")
    if np.isinf(v).any():
        raise ValueError(f"{name}: values contain +-inf (use NaN for missing samples)")
    out = []
    for k in range(recording.n_trials):
        edges = recording.bin_edges(k)
        c = 0.5 * (edges[:-1] + edges[1:])
        out_of = (c < t[0]) | (c > t[-1])
        if out_of.any() and outside == "error":
            raise ValueError(
                f"{name}: samples cover {t[0]:.6g}..{t[-1]:.6g} s but trial {k}'s bins reach "
                f"{edges[0]:.6g}..{edges[-1]:.6g} s ({int(out_of.sum())} bins outside); pass "
                "outside='nan' or 'edge'")
        if method == "nearest":
            j = np.clip(np.searchsorted(t, c, side="left"), 1, t.size - 1) if t.size > 1 \
                else np.zeros(c.size, dtype=np.int64)
            if t.size > 1:
                j = np.where(c - t[j - 1] <= t[j] - c, j - 1, j)
            r = v[j]
        else:
            r = np.column_stack([np.interp(c, t, v[:, i]) for i in range(v.shape[1])])
            if method == "mean":
                b = np.searchsorted(edges, t, side="right") - 1
                inside = (b >= 0) & (b < c.size)
                bb, vv = b[inside], v[inside]
                n_in = np.bincount(bb, minlength=c.size)
                ok = ~np.isnan(vv)
                for i in range(v.shape[1]):
                    n_ok = np.bincount(bb[ok[:, i]], minlength=c.size)
                    s = np.bincount(bb[ok[:, i]], weights=vv[ok[:, i], i], minlength=c.size)
                    with np.errstate(invalid="ignore", divide="ignore"):
                        m = s / n_ok
                    m[(n_ok == 0) & (n_in > 0)] = np.nan      # only missing samples: missing
                    r[:, i] = np.where(n_in > 0, m, r[:, i])
        if out_of.any():
            r[out_of] = np.nan if outside == "nan" else v[np.where(c[out_of] < t[0], 0, -1)]
        out.append(r)
    return out
