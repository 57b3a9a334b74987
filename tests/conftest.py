"""Shared fixtures for the spikessm test-suite.

The library itself must never depend on JAX's *global* 64-bit flag (it enables float64
locally for each call).  Oracles such as Dynamax, however, only compute in float64 when the
global flag is on, so tests that call them request the ``jax_x64`` fixture, which switches
the flag on for the duration of one test and restores the previous value afterwards.
"""

from __future__ import annotations

import os

# Compilation, not computation, dominates this suite's run time (every new shape or static
# option is a fresh XLA compile of a scan). XLA's backend optimisation level 0 roughly halves
# compile time on CPU and does not change results beyond rounding (no fast-math either way).
# Must be set before JAX initialises its backend. Opt out: SPIKESSM_TEST_XLA_OPT=1.
if os.environ.get("SPIKESSM_TEST_XLA_OPT", "0") != "1" and (
        "xla_backend_optimization_level" not in os.environ.get("XLA_FLAGS", "")):
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "")
                               + " --xla_backend_optimization_level=0").strip()

import jax  # noqa: E402
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


@pytest.fixture(autouse=True, scope="module")
def _release_compiled_code():
    """Drop JAX's compiled executables after each test module.

    One process keeping the whole suite's executables crashed inside XLA's compiler
    (segfault / abort in backend_compile) after about 160 tests on a clean CI run: every
    CPU executable holds its own memory mappings, and the process reached the kernel's
    vm.max_map_count (65530). Released between modules, the count stays below ~22,000."""
    yield
    jax.clear_caches()


@pytest.fixture
def rng():
    return np.random.default_rng(12345)


def _enable_persistent_compilation_cache():
    """Opt-in (SPIKESSM_TEST_JAX_CACHE=1): reuse XLA executables across local test runs,
    stored under .pytest_cache/ (git-ignored) or JAX_COMPILATION_CACHE_DIR.

    Off by default: with jaxlib 0.10.2 a clean CI run died with a segmentation fault inside
    JAX's cache write (compilation_cache.put_executable_and_time), and a fresh checkout
    gains nothing from an empty cache."""
    from pathlib import Path

    if os.environ.get("SPIKESSM_TEST_JAX_CACHE", "0") != "1":
        return
    default = Path(__file__).resolve().parent.parent / ".pytest_cache" / "jax-compilation-cache"
    path = os.environ.get("JAX_COMPILATION_CACHE_DIR", str(default))
    jax.config.update("jax_compilation_cache_dir", path)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.2)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)


_enable_persistent_compilation_cache()


# ---------------------------------------------------------------------------
# fuzz suites (issue 9): example count option and the per-entry-point case report
# ---------------------------------------------------------------------------
def pytest_addoption(parser):
    parser.addoption("--fuzz-examples", type=int, default=None,
                     help="hypothesis examples per fuzz test (default 200, deterministic); "
                          "a value here also randomises the draws. Use with -m fuzz.")


def pytest_configure(config):
    import fuzz_harness

    fuzz_harness.configure(config.getoption("--fuzz-examples"))


def pytest_xdist_auto_num_workers(config):
    """``-n auto`` (pyproject addopts): one worker per CPU this process may use, at most 4
    (a CI container can report many more CPUs than its quota; each worker holds its own
    JAX runtime and compiled code)."""
    try:
        n = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        n = os.cpu_count() or 1
    return max(1, min(n, 4))


# The heaviest test files (measured wall time, most first). With ``--dist loadfile`` xdist
# hands out files in collection order, so starting these first keeps both workers busy
# until the end instead of leaving one long file running alone.
HEAVY_FIRST = ("test_plds.py", "test_plds_restarts.py", "test_shared.py", "test_docs.py",
               "test_fuzz_lgssm.py", "test_torture.py", "test_fuzz_plds.py", "test_cli.py",
               "test_fuzz_ssglm_shared.py", "test_plds_realdata.py", "test_sweep.py",
               "test_ppaf.py", "test_fuzz_hmm.py", "test_reproducibility.py")


def pytest_collection_modifyitems(config, items):
    rank = {name: i for i, name in enumerate(HEAVY_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))


def pytest_sessionfinish(session):
    """On an xdist worker, hand this worker's fuzz case counts to the controller."""
    import sys

    harness = sys.modules.get("fuzz_harness")
    if hasattr(session.config, "workeroutput") and harness is not None:
        session.config.workeroutput["fuzz_counts"] = harness.export_counts()


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node, error):
    """On the xdist controller, add each finished worker's fuzz case counts."""
    import fuzz_harness

    counts = getattr(node, "workeroutput", {}).get("fuzz_counts")
    if counts:
        fuzz_harness.merge_counts(counts)


def pytest_terminal_summary(terminalreporter):
    import sys

    harness = sys.modules.get("fuzz_harness")
    lines = harness.summary_lines() if harness is not None else []
    if lines:
        terminalreporter.write_sep("=", "fuzz cases per entry point (issue 9)")
        for line in lines:
            terminalreporter.write_line(line)
