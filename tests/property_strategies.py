"""What the property-based tests share (tests/test_properties*.py): hypothesis settings that give the
same examples on every run, the errors a bad call may raise, and a strategy for "any value at all"."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

BAD = (TypeError, ValueError, KeyError)


def derandomized(max_examples: int) -> settings:
    return settings(derandomize=True, max_examples=max_examples, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.too_slow])


anything = st.one_of(
    st.none(), st.booleans(), st.integers(-3, 2**70), st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=4), st.complex_numbers(max_magnitude=2), st.sampled_from([np.ones(2), np.float32(0.5), b"x"]),
)
