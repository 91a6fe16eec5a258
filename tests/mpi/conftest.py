"""The MPI tests run under mpirun (scripts/test.sh: `mpirun -n 2` and `-n 3`); every rank runs the
same tests in the same order. In the single-process suite (no mpirun) or without mpi4py they skip.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(__file__))  # mpi_helpers

import pytest

UNDER_MPIRUN = any(k in os.environ for k in ("OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK"))


def pytest_collection_modifyitems(config, items):
    here = os.path.dirname(__file__)
    reason = None
    if not UNDER_MPIRUN:
        reason = "MPI tests run under mpirun (scripts/test.sh)"
    else:
        try:
            import mpi4py  # noqa: F401
        except ImportError:
            reason = "mpi4py is not installed (pip install 'dlopt[mpi]')"
    if reason:
        for item in items:
            if str(item.fspath).startswith(here):
                item.add_marker(pytest.mark.skip(reason=reason))


def pytest_runtest_logreport(report):
    """A test that fails on one rank aborts the whole job: the other ranks may be waiting in a
    collective the failed rank will never join, and a hang is the one outcome a test must not have."""
    if UNDER_MPIRUN and report.failed:
        from mpi4py import MPI

        sys.stderr.write(f"\n[rank {MPI.COMM_WORLD.Get_rank()}] FAILED {report.nodeid}\n{report.longreprtext}\n")
        sys.stderr.flush()
        MPI.COMM_WORLD.Abort(1)
