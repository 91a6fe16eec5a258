"""The docstring examples of dlopt.distributed, run on every rank (the single-process suite does not
import MPI, so tests/test_docs.py leaves these modules to this file)."""

import doctest
import importlib
import pkgutil

import pytest

import dlopt.distributed

MODULES = ["dlopt.distributed"] + [m.name for m in pkgutil.iter_modules(dlopt.distributed.__path__,
                                                                        "dlopt.distributed.")]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run_on_every_rank(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE | doctest.ELLIPSIS)
    assert result.failed == 0
