"""Shared fixtures for the spikessm test-suite.

The library itself must never depend on JAX's *global* 64-bit flag (it enables float64
locally for each call).  Oracles such as Dynamax, however, only compute in float64 when the
global flag is on, so tests that call them request the ``jax_x64`` fixture, which switches
the flag on for the duration of one test and restores the previous value afterwards.
"""

from __future__ import annotations

import jax
import numpy as np
import pytest


@pytest.fixture
def jax_x64():
    """Enable JAX's global float64 mode for one test (for Dynamax), then restore it."""
    previous = bool(jax.config.jax_enable_x64)
    jax.config.update("jax_enable_x64", True)
    try:
        yield
    finally:
        jax.config.update("jax_enable_x64", previous)


@pytest.fixture(autouse=True)
def _x64_flag_untouched():
    """Every test must leave JAX's global float64 flag as it found it (library calls
    enable float64 only locally)."""
    before = bool(jax.config.jax_enable_x64)
    yield
    assert bool(jax.config.jax_enable_x64) == before, "a test or library call leaked x64"


@pytest.fixture
def rng():
    return np.random.default_rng(12345)
