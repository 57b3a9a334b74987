"""Binning of spike counts (more readers and spike-time binning come with the data layer)."""

from __future__ import annotations

import numpy as np


def rebin_counts(counts, factor: int) -> np.ndarray:
    """Sum consecutive groups of ``factor`` time bins: (T, N) -> (T // factor, N).

    A trailing remainder shorter than ``factor`` is dropped. NaN (missing) in a group makes
    the summed bin NaN. The input is not modified.
    """
    if isinstance(factor, bool) or not isinstance(factor, (int, np.integer)) or factor < 1:
        raise ValueError(f"factor must be a positive integer, got {factor!r}")
    x = np.asarray(counts, dtype=np.float64)
    if x.ndim == 1:
        x = x[:, None]
    if x.ndim != 2:
        raise ValueError(f"counts must be (T, N), got shape {x.shape}")
    n = x.shape[0] // factor
    if n == 0:
        raise ValueError(f"counts has {x.shape[0]} bins, fewer than factor={factor}")
    return x[: n * factor].reshape(n, factor, x.shape[1]).sum(axis=1)
