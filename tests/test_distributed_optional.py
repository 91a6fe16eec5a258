"""dlopt.distributed is optional: importing dlopt or dlopt.distributed never needs mpi4py, and using it
without mpi4py says what to install. (The MPI tests themselves are in tests/mpi, run under mpirun.)"""

import subprocess
import sys

SCRIPT = r"""
import sys
sys.modules["mpi4py"] = None          # as if mpi4py were not installed
import dlopt, dlopt.distributed
import numpy as np
assert "mpi4py.MPI" not in sys.modules
try:
    dlopt.distributed.allreduce_mean_([np.zeros(3)])
except ImportError as e:
    assert "dlopt[mpi]" in str(e), e
    print("ok")
"""


def test_distributed_without_mpi4py():
    out = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


def test_shard_layout_cuts_on_blocks_and_keeps_whole_tensors():
    from dlopt import _core

    # elementwise: cuts at multiples of 4096 inside a tensor, near total * r / N
    assert _core.shard_bounds([100_000, 5], [True, True], 3) == [0, 32768, 65536, 100_005]
    # a tensor that may not be cut goes whole to one side (the nearer end)
    assert _core.shard_bounds([100_000, 5], [False, True], 3) == [0, 0, 100_000, 100_005]
    assert _core.shard_bounds([10, 10, 10], [False] * 3, 2) == [0, 10, 30]
    assert _core.shard_bounds([], [], 4) == [0, 0, 0, 0, 0]
    assert [_core.splits_elementwise(n) for n in ("Adam", "LAMB", "Muon")] == [True, False, False]
