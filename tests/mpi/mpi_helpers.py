"""Helpers of the MPI tests: sub-communicators of every size, and assertions every rank agrees on
(a failure on one rank fails the test on all ranks, so no rank goes on to the next test's
collectives alone)."""

import numpy as np


def world():
    from mpi4py import MPI
    return MPI.COMM_WORLD


def sub_comms():
    """(size, comm) for every size 1..world: ranks < size get the communicator, the others None."""
    from mpi4py import MPI
    w = world()
    out = []
    for size in range(1, w.Get_size() + 1):
        comm = w.Split(0 if w.Get_rank() < size else MPI.UNDEFINED, w.Get_rank())
        out.append((size, None if comm == MPI.COMM_NULL else comm))
    return out


def assert_all(comm, ok, message=""):
    """Asserts `ok` on every rank of comm: each rank learns which ranks failed."""
    flags = comm.allgather(bool(ok))
    assert all(flags), f"{message} (failed on ranks {[r for r, f in enumerate(flags) if not f]})"


def same(a, b):
    """Bitwise equality of two arrays (NaNs in the same places count as equal)."""
    a, b = np.asarray(a), np.asarray(b)
    return a.shape == b.shape and a.dtype == b.dtype and a.tobytes() == b.tobytes()


def same_state(a, b):
    """Two state_dicts' state (index -> entries) equal bit for bit."""
    if a.keys() != b.keys():
        return False
    for i in a:
        if a[i].keys() != b[i].keys():
            return False
        for k in a[i]:
            x, y = a[i][k], b[i][k]
            if isinstance(x, np.ndarray) or isinstance(y, np.ndarray):
                if not same(x, y):
                    return False
            elif x != y:
                return False
    return True


def rank_grads(params, seed, rank, step):
    rng = np.random.default_rng([seed, rank, step])
    return [rng.standard_normal(p.shape).astype(p.dtype) for p in params]
