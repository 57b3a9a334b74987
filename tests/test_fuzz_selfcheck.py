"""The fuzz harness itself: it must fail on a non-finite result, on an exception that is
not a clear ValueError/TypeError, and on a message naming no argument."""

import numpy as np
import pytest
from fuzz_harness import exercise, fuzz_settings
from hypothesis import given
from hypothesis import strategies as st

pytestmark = pytest.mark.fuzz


def test_harness_catches_contract_violations():
    with pytest.raises(AssertionError, match="non-finite"):
        exercise("selfcheck", lambda: {"x": np.array([1.0, np.nan])})
    with pytest.raises(AssertionError, match="names none"):
        exercise("selfcheck", lambda: (_ for _ in ()).throw(ValueError("bad")), names=("y",))
    with pytest.raises(ZeroDivisionError):
        exercise("selfcheck", lambda: 1 / 0)
    assert exercise("selfcheck", lambda: (_ for _ in ()).throw(ValueError("y is bad")),
                    names=("y",)) is None
    assert exercise("selfcheck", lambda: np.ones(2)).shape == (2,)


@fuzz_settings(max_examples=20)
@given(st.floats(allow_nan=True, allow_infinity=True))
def test_harness_counts_cases(x):
    def f(v):
        if not np.isfinite(v):
            raise ValueError("v must be finite")
        return np.float64(v)
    exercise("selfcheck.given", f, x, names=("v",))
