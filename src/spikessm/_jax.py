"""float64 for our computations without touching the user's global JAX settings.

Every public entry point that runs JAX code is wrapped in :func:`x64`, which enables
64-bit types only for the duration of the call (``jax.enable_x64`` is a context manager).
Compiled functions are cached per configuration, so calling again on data of the same
shapes does not recompile.
"""

from __future__ import annotations

import functools

import jax


def x64(fn):
    """Decorator: run ``fn`` with JAX 64-bit types enabled, restoring the setting after."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        with jax.enable_x64(True):
            return fn(*args, **kwargs)

    return wrapper
