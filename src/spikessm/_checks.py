"""Argument checks shared by every public entry point (one place for the messages)."""

from __future__ import annotations

import numpy as np


def check_int(value, name: str, low: int) -> int:
    """``value`` as an int >= ``low``; TypeError for non-integers (bool included)."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an integer, got {type(value).__name__}")
    if value < low:
        raise ValueError(f"{name} must be >= {low}, got {value}")
    return int(value)


def check_seed(value, name: str = "seed") -> int:
    """A seed for ``np.random.default_rng``: an integer >= 0 (bool, float, str, None
    rejected with a message naming ``name``; NumPy's own errors name nothing)."""
    return check_int(value, name, 0)


def check_flag(value, name: str) -> bool:
    """A yes/no option: ``bool`` or ``np.bool_`` only (a string such as ``"no"`` or an
    object would otherwise be taken as True by its truth value)."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False, got {value!r:.40}")
    return bool(value)


def check_bin_width(value, name: str = "bin_width") -> float:
    """A positive, finite number of seconds."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a positive number of seconds, got {value!r}")
    if not np.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a positive number of seconds, got {value}")
    return float(value)


def as_float_array(x, name: str) -> np.ndarray:
    """A float64 copy of ``x``; TypeError naming ``name`` for None, strings, complex numbers
    or non-numeric entries (``np.array`` raises an anonymous error for those, or silently
    drops an imaginary part)."""
    if x is None or isinstance(x, (str, bytes)):
        raise TypeError(f"{name} must be an array of real numbers, got {type(x).__name__}")
    try:
        complex_input = np.iscomplexobj(x)
    except (TypeError, ValueError):
        complex_input = False
    if complex_input:
        raise TypeError(f"{name} must be real, not complex")
    try:
        return np.array(x, dtype=np.float64, copy=True)
    except (TypeError, ValueError, OverflowError) as exc:
        raise TypeError(f"{name} must be an array of real numbers ({exc})") from None
