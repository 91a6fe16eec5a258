"""The docstring examples of the training utilities."""

import doctest

import pytest


@pytest.mark.parametrize("module", ["dlopt.clip", "dlopt.averaging", "dlopt.checkpoint"])
def test_docstring_examples(module):
    mod = __import__(module, fromlist=["_"])
    result = doctest.testmod(mod, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0
