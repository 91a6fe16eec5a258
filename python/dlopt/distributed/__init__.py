r"""Data-parallel training and ZeRO-1 sharded optimizer state over MPI (docs/distributed.md).

MPI (Open MPI, or any MPI) is the engine, through mpi4py: ``pip install 'dlopt[mpi]'``. This
package is imported only when used (``import dlopt.distributed``); launch with
``mpirun -n 4 python train.py``.

- :func:`allreduce_mean_`: averages a list of gradient arrays across ranks, in place, in fused
  buckets; the sum is made in rank order, so the result is the same for any bucket size.
- :class:`ZeroRedundancyOptimizer`: every rank keeps the full parameters and 1/N of the optimizer
  state; a step is bitwise equal to the unsharded optimizer's step on the averaged gradients.

Every call checks its arguments on each rank and agrees across ranks before any data moves: bad
input raises on every rank (the same message, prefixed with the rank that found it), never a hang.
"""

from __future__ import annotations

import hashlib
from typing import Any, Sequence

import numpy as np

from .. import _core
from ._comm import MEAN_DTYPES, agree, allgather_buckets, get_comm, mpi, reduce_scatter_buckets
from ._flat import FlatSpace, bucket_arrays, even_counts, plan_buckets, staged_size
from .zero import ZeroRedundancyOptimizer

__all__ = ["allreduce_mean_", "ZeroRedundancyOptimizer", "DEFAULT_BUCKET_BYTES", "get_comm"]

#: Bytes per fused bucket: one reduce-scatter and one all-gather each (torch DDP uses 25 MiB).
DEFAULT_BUCKET_BYTES = 25 << 20


def _dtype_name(dtype: np.dtype) -> str:
    return "bfloat16" if dtype == MEAN_DTYPES[2] else dtype.str


def check_arrays(arrays: Any, what: str, writeable: bool) -> list[np.ndarray]:
    """A list of C-contiguous arrays of a gradient dtype, or TypeError/ValueError naming the culprit."""
    if isinstance(arrays, np.ndarray) or not isinstance(arrays, (list, tuple)):
        raise TypeError(f"{what}: expected a list of numpy arrays, got {type(arrays).__name__}")
    for i, a in enumerate(arrays):
        if not isinstance(a, np.ndarray):
            raise TypeError(f"{what}[{i}]: expected a numpy.ndarray, got {type(a).__name__}")
        if a.dtype not in MEAN_DTYPES:
            raise TypeError(f"{what}[{i}]: dtype {a.dtype} is not float32, float64, bfloat16 or float16")
        if not a.flags.c_contiguous:
            raise ValueError(f"{what}[{i}]: array is not C-contiguous (dlopt never copies silently)")
        if writeable and not a.flags.writeable:
            raise ValueError(f"{what}[{i}]: array is read-only")
    if writeable:
        _core.require_distinct(list(arrays))
    return list(arrays)


def signature(arrays: Sequence[np.ndarray]) -> tuple:
    """What must match across ranks (dtypes and shapes, in order), short: a digest for long lists."""
    sig = tuple((_dtype_name(a.dtype), a.shape) for a in arrays)
    if len(sig) <= 16:
        return sig
    digest = hashlib.blake2b(repr(sig).encode(), digest_size=12).hexdigest()
    return (f"{len(sig)} arrays", f"{sum(a.size for a in arrays)} elements", f"digest {digest}")


def by_dtype(arrays: Sequence[np.ndarray]) -> list[list[int]]:
    """Indices of the arrays grouped by dtype, groups in order of first appearance."""
    groups: dict[np.dtype, list[int]] = {}
    for i, a in enumerate(arrays):
        groups.setdefault(a.dtype, []).append(i)
    return list(groups.values())


def allreduce_mean_(grads: Sequence[np.ndarray], comm: Any = None, *,
                    bucket_bytes: int = DEFAULT_BUCKET_BYTES) -> None:
    r"""Replaces each gradient by its mean over the ranks of ``comm`` (the world by default), in place.

    The arrays (float32, float64, bfloat16, float16; C-contiguous, writeable) are packed by dtype into
    buckets of ``bucket_bytes``; each bucket is one reduce-scatter and one all-gather (MPI_Alltoallw
    reading and writing the arrays in place), not one collective per tensor. The mean is

    .. math:: \bar g = (g_0 + g_1 + \dots + g_{N-1}) / N

    added elementwise in rank order (16-bit gradients in float32, rounded once): the same bits for
    any bucket size, and the same as :class:`ZeroRedundancyOptimizer`'s reduce-scatter. Every rank
    must pass arrays of the same dtypes and shapes in the same order (checked: ValueError on every
    rank otherwise).

    Parameters
    ----------
    grads : sequence of arrays
        This rank's gradients, replaced in place by the mean over the ranks.
    comm : mpi4py.MPI.Intracomm, optional
        The communicator; ``None``: ``MPI.COMM_WORLD``.
    bucket_bytes : int, default 26214400
        The size of a fused bucket (:data:`DEFAULT_BUCKET_BYTES`, 25 MiB).

    Raises
    ------
    ValueError
        On every rank, if any rank passed arrays that differ from the others' (dtypes, shapes,
        order) or a bad ``bucket_bytes``.
    TypeError
        On every rank, if any rank passed something other than writeable, C-contiguous arrays of a
        supported dtype, or ``comm`` is not an intra-communicator.

    Examples
    --------
    Under ``mpirun -n N``, every rank runs:

    >>> import numpy as np
    >>> from mpi4py import MPI
    >>> from dlopt.distributed import allreduce_mean_
    >>> rank, n = MPI.COMM_WORLD.Get_rank(), MPI.COMM_WORLD.Get_size()
    >>> g = np.full(3, float(rank))
    >>> allreduce_mean_([g])
    >>> bool((g == (n - 1) / 2).all())   # the mean of 0, 1, ..., n - 1
    True
    """
    comm = get_comm(comm)
    error, sig = None, None
    try:
        if not isinstance(bucket_bytes, (int, np.integer)) or isinstance(bucket_bytes, bool) or bucket_bytes < 1:
            raise ValueError(f"bucket_bytes: expected a positive int, got {bucket_bytes!r}")
        arrays = check_arrays(grads, "grads", writeable=True)
        sig = signature(arrays)
    except Exception as e:  # noqa: BLE001 - agree() raises it on every rank
        error = e
    agree(comm, error, (sig, int(bucket_bytes) if error is None else None), "allreduce_mean_")
    size = comm.Get_size()
    if size == 1:
        return  # the mean of one rank's values is those values
    rank = comm.Get_rank()
    for indices in by_dtype(arrays):
        space = FlatSpace([arrays[i] for i in indices])
        dtype = arrays[indices[0]].dtype
        counts = even_counts(space.size, size)
        bounds = [sum(counts[:r]) for r in range(size + 1)]
        plan = plan_buckets(space, bounds, max(1, int(bucket_bytes) // dtype.itemsize // size))
        # every rank's part of every bucket as one array: large pieces in place, small ones staged
        parts = bucket_arrays(space.flat, plan, np.empty(staged_size(plan), dtype), pack=lambda q: True)
        longest = max([row[rank].size for row in parts] + [0])
        mean = np.empty(longest, dtype)

        def write_back(k: int) -> None:  # this rank's mean of bucket k into its part (other parts: unsent)
            own = parts[k][rank]
            if len(plan[k][rank]) > 1:
                space.unpack_pieces(plan[k][rank], mean)
            own[...] = mean[: own.size]

        reduce_scatter_buckets(comm, parts, [mean[: row[rank].size] for row in parts],
                               np.empty(2 * (size - 1) * longest, dtype),
                               np.empty(longest, np.float32) if dtype.itemsize == 2 else None, write_back)
        allgather_buckets(comm, parts)  # then every rank's mean to every rank
        for bucket, row in zip(plan, parts):
            for q, part in enumerate(bucket):
                if q != rank and len(part) > 1:
                    space.unpack_pieces(part, row[q])
