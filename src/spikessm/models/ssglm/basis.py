"""Within-trial bases and spike-history designs for the state-space GLM (NumPy).

All functions take the bin width ``bin_width`` in seconds and return float64 arrays; they
never modify their inputs. Times are bin centres, ``(t + 1/2) * bin_width``.
"""

from __future__ import annotations

import numpy as np
from scipy.interpolate import BSpline

from ..._checks import check_bin_width, check_int

_TOL = 1e-9


MAX_BINS = 1e7  # a basis pulse or history window longer than this many bins is an input error


def _n_bins_of(duration: float, bin_width: float, name: str) -> int:
    """``duration / bin_width`` as an int; ValueError when it is not a whole number."""
    ratio = duration / bin_width
    if not ratio <= MAX_BINS:
        raise ValueError(f"{name} ({duration} s) spans {ratio:.3g} bins of bin_width "
                         f"({bin_width} s); at most {MAX_BINS:g} are supported")
    n = int(round(ratio))
    if n < 1 or abs(ratio - n) > 1e-6 * max(1.0, ratio):
        raise ValueError(f"{name} ({duration} s) must be a whole multiple of bin_width "
                         f"({bin_width} s); the ratio is {ratio:.6g}")
    return n


def unit_pulse_basis(n_bins: int, bin_width: float, basis_width: float) -> np.ndarray:
    """Unit pulses (piecewise-constant basis) of width ``basis_width`` seconds.

    Returns ``B`` (n_bins, R) with ``B[t, r] = 1`` when bin t lies in pulse r, where
    R = ceil(n_bins / w) and w = basis_width / bin_width bins (the last pulse may be
    shorter). ValueError when ``basis_width`` is not a whole multiple of ``bin_width``.
    """
    n_bins = check_int(n_bins, "n_bins", 1)
    dt = check_bin_width(bin_width)
    width = check_bin_width(basis_width, "basis_width")
    w = _n_bins_of(width, dt, "basis_width")
    R = -(-n_bins // w)
    B = np.zeros((n_bins, R))
    B[np.arange(n_bins), np.arange(n_bins) // w] = 1.0
    return B


def spline_basis(n_bins: int, bin_width: float, n_basis: int, degree: int = 3) -> np.ndarray:
    """Clamped B-splines on equally spaced knots over the trial, evaluated at bin centres.

    Returns ``B`` (n_bins, n_basis); the rows sum to one (a constant is representable).
    Built with :meth:`scipy.interpolate.BSpline.design_matrix`.
    """
    n_bins = check_int(n_bins, "n_bins", 1)
    dt = check_bin_width(bin_width)
    degree = check_int(degree, "degree", 0)
    n_basis = check_int(n_basis, "n_basis", degree + 1)
    duration = n_bins * dt
    n_inner = n_basis - degree - 1
    inner = np.linspace(0.0, duration, n_inner + 2)[1:-1]
    knots = np.concatenate([np.zeros(degree + 1), inner, np.full(degree + 1, duration)])
    x = (np.arange(n_bins) + 0.5) * dt
    return BSpline.design_matrix(x, knots, degree).toarray()


def history_lags(window_times, bin_width: float) -> list[np.ndarray]:
    """Lag sets of the history windows: window j covers lags l (in bins) with
    ``window_times[j] < l * bin_width <= window_times[j + 1]``.

    ``window_times`` (J + 1,) increasing, in seconds, starting at >= 0, each a whole
    multiple of ``bin_width`` (ValueError otherwise, or when a window holds no lag).
    """
    dt = check_bin_width(bin_width)
    w = np.asarray(window_times, dtype=float).ravel()
    if w.size < 2:
        raise ValueError("window_times needs at least two edges (seconds), e.g. "
                         f"[0, 0.001, 0.005]; got {w.tolist()}")
    if not np.all(np.isfinite(w)) or w[0] < 0 or np.any(np.diff(w) <= 0):
        raise ValueError("window_times must be finite, >= 0 and strictly increasing; got "
                         f"{w.tolist()}")
    edges = [0 if e == 0 else _n_bins_of(e, dt, f"window_times[{i}]") for i, e in enumerate(w)]
    return [np.arange(a + 1, b + 1) for a, b in zip(edges[:-1], edges[1:])]


def history_design(spikes: np.ndarray, valid: np.ndarray, lags: list[np.ndarray]) -> np.ndarray:
    """(K, T, J) history features: spikes of the same trial summed over each window's lags.

    ``spikes`` (K, T) counts, ``valid`` (K, T) bool (a missing or out-of-trial bin
    contributes 0). The start of a trial sees no spikes before it.
    """
    Kn, T = spikes.shape
    y = np.where(valid, spikes, 0.0)
    csum = np.concatenate([np.zeros((Kn, 1)), np.cumsum(y, axis=1)], axis=1)  # (K, T+1)
    t = np.arange(T)
    H = np.zeros((Kn, T, len(lags)))
    for j, lag in enumerate(lags):
        # sum of y[t - l] for l in [lo, hi] = csum[t - lo + 1] - csum[t - hi]
        lo, hi = int(lag[0]), int(lag[-1])
        top = np.clip(t - lo + 1, 0, T)
        bot = np.clip(t - hi, 0, T)
        H[:, :, j] = csum[:, top] - csum[:, bot]
    return H


__all__ = ["history_design", "history_lags", "spline_basis", "unit_pulse_basis"]
