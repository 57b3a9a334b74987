"""Spike-history window features (strictly causal), shared by the GLM and Granger tests.

A history specification is a list of window edges in bins, ``edges = (e_0, e_1, ...,
e_W)`` with ``1 <= e_0 < e_1 < ... < e_W``; window ``w`` covers lags
``e_w <= l < e_{w+1}`` and its feature at bin ``t`` is ``sum_{l in window} y[t - l]``
(as nSTAT's history windows, e.g. ``(1, 2, 5, 10)`` gives lags {1}, {2, 3, 4}, {5..9}).
Lag 0 (bin ``t`` itself) is never included, and bins before the start of the recording
count as zero spikes.

(``spikessm.models.plds.model.history_features`` computes single-lag features with
missing-bin masks across ragged trials for the Poisson LDS; single lags are the windows
``(1, 2, ..., L + 1)`` here.)
"""

from __future__ import annotations

import numpy as np

from ..._checks import as_float_array

__all__ = ["check_history", "history_features", "history_names"]


def check_history(edges, name: str = "history") -> tuple:
    """Validate window edges; returns a tuple of ints (empty tuple for ``None``)."""
    if edges is None:
        return ()
    if isinstance(edges, (int, np.integer)) and not isinstance(edges, bool):
        raise TypeError(f"{name} must be a sequence of window edges in bins such as "
                        f"(1, 2, 5, 10), got the integer {edges}")
    arr = np.asarray(edges)
    if arr.ndim != 1 or arr.size < 2:
        raise ValueError(f"{name} must be a sequence of at least 2 window edges in bins, "
                         f"e.g. (1, 2, 5, 10); got {edges!r}")
    if not np.issubdtype(arr.dtype, np.number) or np.any(arr != np.round(arr)):
        raise TypeError(f"{name} edges must be whole numbers of bins, got {edges!r}")
    arr = arr.astype(int)
    if arr[0] < 1:
        raise ValueError(f"{name} edges must start at lag >= 1 (strictly causal), got {edges!r}")
    if np.any(np.diff(arr) <= 0):
        raise ValueError(f"{name} edges must be strictly increasing, got {edges!r}")
    return tuple(int(e) for e in arr)


def history_names(edges, prefix: str = "hist") -> tuple:
    """``("hist[1,2)", "hist[2,5)", ...)`` for window edges ``(1, 2, 5, ...)``."""
    return tuple(f"{prefix}[{a},{b})" for a, b in zip(edges[:-1], edges[1:]))


def history_features(counts, edges) -> np.ndarray:
    """Windowed spike-history sums.

    Args:
      counts: ``(T, N)`` spike counts (or ``(T,)`` for one neuron).
      edges: window edges in bins (see module docstring).

    Returns:
      ``(T, N, W)`` float64 array (``(T, W)`` for a 1-D input): feature ``[t, n, w]`` is
      the number of spikes of neuron ``n`` in bins ``t - e_{w+1} + 1 ... t - e_w``.
    """
    edges = check_history(edges, "edges")
    if not edges:
        raise ValueError("edges must hold at least 2 window edges")
    y = as_float_array(counts, "counts")
    squeeze = y.ndim == 1
    if squeeze:
        y = y[:, None]
    if y.ndim != 2:
        raise ValueError(f"counts must have shape (T, N), got {y.shape}")
    if not np.all(np.isfinite(y)) or np.any(y < 0):
        raise ValueError("counts must be finite and non-negative (no NaN or inf)")
    T = y.shape[0]
    # C[k] = sum_{s < k} y[s]; window [a, b) at t sums y[t-b+1 .. t-a] = C[t-a+1] - C[t-b+1]
    C = np.concatenate([np.zeros((1, y.shape[1])), np.cumsum(y, axis=0)])
    t = np.arange(T)
    out = np.empty((T, y.shape[1], len(edges) - 1))
    for w, (a, b) in enumerate(zip(edges[:-1], edges[1:])):
        hi = np.clip(t - a + 1, 0, T)
        lo = np.clip(t - b + 1, 0, T)
        out[:, :, w] = C[hi] - C[lo]
    return out[:, 0, :] if squeeze else out
