"""Fixtures shared by the test modules (helpers live in optim_cases.py)."""

import pytest

from optim_cases import FULL_STATE_CONFIGS


@pytest.fixture(params=sorted(FULL_STATE_CONFIGS))
def optimizer_name(request):
    """Each optimizer's registry name in turn."""
    return request.param
