"""Shared harness for the property-based (fuzz) suites, issue 9.

Every public entry point is driven by hypothesis through :func:`exercise`, which enforces
the contract of ``docs/reliability.md``: a call either

* returns a result whose floating-point arrays are all finite (recursively through
  dataclasses, tuples, lists and dicts), or
* raises ``ValueError`` / ``TypeError`` with a message that names one of the arguments
  (``names=``), or one of the documented numerical errors the caller lists (``also=``).

Anything else (another exception, a non-finite number, a call slower than ``HANG_SECONDS``)
fails the test. Cases are counted per entry point and printed at the end of the run
(``conftest.pytest_terminal_summary``), so CI shows how many cases each entry point saw.

Number of examples: 200 per test in CI (deterministic: ``derandomize=True``). For a longer,
randomised run: ``python -m pytest -m fuzz --fuzz-examples 5000``.
"""

from __future__ import annotations

import dataclasses
import time
import warnings
from collections import Counter

import numpy as np
from hypothesis import HealthCheck, settings

DEFAULT_EXAMPLES = 200
HANG_SECONDS = 60.0

ACCEPTED: Counter = Counter()
REJECTED: Counter = Counter()
_EXAMPLES = {"n": DEFAULT_EXAMPLES, "derandomize": True}


def configure(n_examples: int | None) -> None:
    """Called by conftest from the ``--fuzz-examples`` option."""
    if n_examples is not None:
        _EXAMPLES["n"] = int(n_examples)
        _EXAMPLES["derandomize"] = False


def fuzz_settings(**overrides):
    """hypothesis settings for a fuzz test: no deadline (first calls compile), no example
    database (CI is stateless), deterministic unless ``--fuzz-examples`` was given."""
    kw = dict(max_examples=_EXAMPLES["n"], deadline=None, database=None,
              derandomize=_EXAMPLES["derandomize"], print_blob=True,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                     HealthCheck.filter_too_much,
                                     HealthCheck.function_scoped_fixture])
    kw.update(overrides)
    return settings(**kw)


def _nonfinite_paths(obj, path="result", out=None, seen=None):
    """Paths (``result.field[2]``) of floating arrays/scalars in ``obj`` that are not finite."""
    out = [] if out is None else out
    seen = set() if seen is None else seen
    if id(obj) in seen:
        return out
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        seen.add(id(obj))
        for f in dataclasses.fields(obj):
            _nonfinite_paths(getattr(obj, f.name), f"{path}.{f.name}", out, seen)
    elif isinstance(obj, dict):
        seen.add(id(obj))
        for k, v in obj.items():
            _nonfinite_paths(v, f"{path}[{k!r}]", out, seen)
    elif isinstance(obj, (list, tuple)):
        seen.add(id(obj))
        for i, v in enumerate(obj):
            _nonfinite_paths(v, f"{path}[{i}]", out, seen)
    elif isinstance(obj, (float, np.floating)):
        if not np.isfinite(obj):
            out.append(path)
    elif hasattr(obj, "dtype") and hasattr(obj, "shape"):
        arr = np.asarray(obj)
        if np.issubdtype(arr.dtype, np.inexact) and not np.all(np.isfinite(arr)):
            out.append(path)
    return out


def exercise(entry: str, fn, *args, names=(), also=(), allow_nonfinite=(), **kwargs):
    """Call ``fn(*args, **kwargs)`` under the reliability contract; count the case under
    ``entry``. Returns the result, or ``None`` when the call was (correctly) rejected.

    names: argument names one of which a ValueError/TypeError message must contain
      (empty: any non-empty message).
    also: further exception types that are documented outcomes (e.g. FloatingPointError).
    allow_nonfinite: substrings of result paths allowed to hold NaN/inf (documented, e.g.
      a log-likelihood of -inf for an impossible observation).
    """
    documented = tuple(also)
    start = time.perf_counter()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # warnings are a documented outcome, not errors
            out = fn(*args, **kwargs)
    except (ValueError, TypeError) as exc:
        msg = str(exc)
        assert msg.strip(), f"{entry}: {type(exc).__name__} with an empty message"
        if names:
            assert any(n.lower() in msg.lower() for n in names), (
                f"{entry}: {type(exc).__name__} message names none of {list(names)}: {msg!r}")
        REJECTED[entry] += 1
        return None
    except documented:  # an empty tuple catches nothing
        REJECTED[entry] += 1
        return None
    finally:
        elapsed = time.perf_counter() - start
        assert elapsed < HANG_SECONDS, f"{entry}: one call took {elapsed:.0f} s (hang?)"
    bad = [p for p in _nonfinite_paths(out)
           if not any(a in p for a in allow_nonfinite)]
    assert not bad, f"{entry}: non-finite values in {bad}"
    ACCEPTED[entry] += 1
    return out


def export_counts() -> dict:
    """This process's counts as plain dicts (an xdist worker sends them to the
    controller, which adds them with :func:`merge_counts`)."""
    return {"accepted": dict(ACCEPTED), "rejected": dict(REJECTED)}


def merge_counts(counts: dict) -> None:
    ACCEPTED.update(counts.get("accepted", {}))
    REJECTED.update(counts.get("rejected", {}))


def summary_lines() -> list[str]:
    entries = sorted(set(ACCEPTED) | set(REJECTED))
    if not entries:
        return []
    width = max(len(e) for e in entries)
    lines = [f"{'entry point':<{width}}  cases  accepted  rejected"]
    for e in entries:
        a, r = ACCEPTED[e], REJECTED[e]
        lines.append(f"{e:<{width}}  {a + r:5d}  {a:8d}  {r:8d}")
    lines.append(f"{len(entries)} entry points, {sum(ACCEPTED.values()) + sum(REJECTED.values())}"
                 " cases in all")
    return lines
