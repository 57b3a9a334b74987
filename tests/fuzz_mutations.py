"""Input mutations shared by the fuzz suites of part B (test_fuzz_plds, test_fuzz_glm_decoding,
test_fuzz_ssglm_shared): a valid array is turned into a bad (or unusual but valid) one by a
named mutation, so each hypothesis case is "base input + one mutation". Shapes stay in small
fixed sets so compiled JAX code is reused across cases.
"""

from __future__ import annotations

import copy

import numpy as np
from hypothesis import strategies as st

# mutations of a counts array (T, N): valid ones keep the counts valid
COUNT_OK = ("ok", "ok", "ok", "float32", "int32", "bool", "list", "nan", "uint8")
COUNT_BAD = ("object_str", "complex", "none", "str", "inf", "neg_inf", "neg", "frac", "huge",
             "tiny", "empty_T", "empty_N", "rank4", "scalar", "ragged_N", "allnan_col",
             "big")
ALL_COUNT = COUNT_OK + COUNT_BAD


def mutate(kind: str, base: np.ndarray, rng_pos: int = 0):
    """``base`` (a float/int array) changed by mutation ``kind``; ``rng_pos`` picks the entry
    that point mutations change."""
    a = np.array(base, dtype=np.float64)
    flat_i = rng_pos % max(a.size, 1)

    def point(v):
        b = a.copy()
        if b.size:
            b.flat[flat_i] = v
        return b

    if kind == "ok":
        return np.array(base).astype(np.int64) if np.all(np.isfinite(a)) and np.all(
            a == np.round(a)) else a
    if kind == "float32":
        return a.astype(np.float32)
    if kind == "int32":
        return np.nan_to_num(a).astype(np.int32)
    if kind == "uint8":
        return np.clip(np.nan_to_num(a), 0, 255).astype(np.uint8)
    if kind == "bool":
        return a > 0
    if kind == "object":
        return a.astype(object)
    if kind == "object_str":
        b = a.astype(object)
        if b.size:
            b.flat[flat_i] = "x"
        return b
    if kind == "complex":
        return a.astype(complex) + 1j
    if kind == "list":
        return a.tolist()
    if kind == "none":
        return None
    if kind == "str":
        return "not an array"
    if kind == "nan":
        return point(np.nan)
    if kind == "allnan":
        return np.full_like(a, np.nan)
    if kind == "allnan_col":
        b = a.copy()
        if b.ndim >= 2:
            b[..., 0] = np.nan
        else:
            b[:] = np.nan
        return b
    if kind == "inf":
        return point(np.inf)
    if kind == "neg_inf":
        return point(-np.inf)
    if kind == "neg":
        return point(-1.0)
    if kind == "frac":
        return point(0.5)
    if kind == "big":
        return point(1e6)
    if kind == "huge":
        return point(1e300)
    if kind == "tiny":
        return point(1e-300)
    if kind == "zeros":
        return np.zeros_like(a)
    if kind == "empty_T":
        return a[:0]
    if kind == "empty_N":
        return a[..., :0]
    if kind == "rank1":
        return a.reshape(-1)
    if kind == "rank4":
        return a[None, None]
    if kind == "scalar":
        return 3.0
    if kind == "transpose":
        return a.T
    if kind == "ragged_N":
        return [a, a[..., :1]] if a.ndim >= 2 and a.shape[-1] > 1 else [a, np.c_[a, a]]
    if kind == "ragged_T":
        return [a, a[:max(1, a.shape[0] // 2)]]
    raise AssertionError(kind)


def snapshot(x):
    return copy.deepcopy(x)


def assert_unchanged(before, after, name="input"):
    """``after`` equals the ``before`` snapshot (dtype, shape and values; NaN == NaN)."""
    if isinstance(before, np.ndarray):
        assert isinstance(after, np.ndarray), f"{name} changed type"
        assert before.dtype == after.dtype and before.shape == after.shape, f"{name} changed"
        if before.dtype.kind in "fc":
            assert np.array_equal(before, after, equal_nan=True), f"{name} was modified"
        else:
            assert np.array_equal(before, after), f"{name} was modified"
    elif isinstance(before, (list, tuple)):
        assert type(before) is type(after) and len(before) == len(after), f"{name} changed"
        for i, (b, a) in enumerate(zip(before, after)):
            assert_unchanged(b, a, f"{name}[{i}]")
    elif isinstance(before, dict):
        assert isinstance(after, dict) and before.keys() == after.keys(), f"{name} changed"
        for k in before:
            assert_unchanged(before[k], after[k], f"{name}[{k!r}]")
    elif isinstance(before, float) and np.isnan(before):
        assert isinstance(after, float) and np.isnan(after), f"{name} changed"
    elif hasattr(before, "__dataclass_fields__"):
        for f in before.__dataclass_fields__:
            assert_unchanged(getattr(before, f), getattr(after, f), f"{name}.{f}")
    else:
        assert before == after, f"{name} changed"


# small scalar choices for integer / float options
BAD_INTS = (0, -1, 1.5, True, "2", None, np.nan)
BAD_POS_FLOATS = (0.0, -1.0, np.nan, np.inf, "1", None, True, 1e-300, 1e300)

counts_kind = st.sampled_from(ALL_COUNT)
position = st.integers(0, 50)


class _Opaque:
    """An object of no numeric meaning (deep-copies to itself, so it compares equal)."""

    def __deepcopy__(self, memo):
        return self

    def __repr__(self):
        return "<opaque>"


OPAQUE = _Opaque()

VALUE_KINDS = ("ok", "ok", "ok", "nan", "inf", "neg", "huge", "tiny", "str", "none", "complex",
               "bool", "list", "zeros", "rank1", "rank4", "empty_T", "object_str", "transpose",
               "frac")


def mutate_value(value, kind: str, pos: int = 0):
    """``value`` (an array or a number) changed by ``kind``; numbers get scalar analogues."""
    if isinstance(value, np.ndarray):
        if kind == "frac" and value.dtype.kind == "f":
            return mutate("huge", value, pos) if pos % 2 else value + 0.5
        if kind == "rank1" and value.ndim <= 1:
            return value.reshape(1, -1)
        return mutate(kind, value, pos)
    if kind == "ok":
        return value
    return {"nan": np.nan, "inf": np.inf, "neg": -1, "huge": 1e300, "tiny": 1e-300,
            "str": "1", "none": None, "complex": 1j, "bool": True, "list": [value],
            "zeros": 0, "rank1": np.array([value, value]), "rank4": np.ones((1, 1, 1, 1)),
            "empty_T": np.array([]), "object_str": OPAQUE, "transpose": -np.inf,
            "frac": 0.5}[kind]


def one_mutated(defaults: dict, options: dict, arg, k: int) -> dict:
    """``defaults`` with argument ``arg`` (None: none) set to its ``k``-th option (cyclic)
    from ``options[arg]``: one mutated argument per fuzz case."""
    kw = dict(defaults)
    if arg is not None:
        vals = options[arg]
        kw[arg] = vals[k % len(vals)]
    return kw
