"""allreduce_mean_: the mean in rank order, the same bits for any bucket size, every dtype."""

import ml_dtypes
import numpy as np
import pytest

from mpi_helpers import assert_all, same, sub_comms, world

BF16 = np.dtype(ml_dtypes.bfloat16)


def grads_of(rank):
    rng = np.random.default_rng([7, rank])
    shapes_dtypes = [((3, 5), np.float32), ((1000,), np.float64), ((0,), np.float32), ((33,), BF16),
                     ((17, 3), np.float16), ((4099,), np.float32)]
    return [rng.standard_normal(s).astype(d) for s, d in shapes_dtypes]


def expected_mean(all_grads, k):
    """The definition: (g_0 + ... + g_{N-1}) / N added in rank order, 16-bit in float32."""
    dtype = all_grads[0][k].dtype
    acc_dtype = np.dtype(np.float32 if dtype.itemsize == 2 else dtype).type
    acc = all_grads[0][k].astype(acc_dtype)
    for g in all_grads[1:]:
        acc = acc + g[k].astype(acc_dtype)
    return (acc / acc_dtype(len(all_grads))).astype(dtype)


@pytest.mark.parametrize("bucket_bytes", [None, 64, 1000])
def test_mean_in_rank_order_for_every_size(bucket_bytes):
    from dlopt.distributed import allreduce_mean_

    for size, comm in sub_comms():
        if comm is None:
            continue
        grads = grads_of(comm.Get_rank())
        everyone = comm.allgather(grads)
        kwargs = {} if bucket_bytes is None else {"bucket_bytes": bucket_bytes}
        allreduce_mean_(grads, comm, **kwargs)
        ok = all(same(g, expected_mean(everyone, k)) for k, g in enumerate(grads))
        assert_all(comm, ok, f"allreduce_mean_ on {size} ranks, bucket_bytes={bucket_bytes}")


def test_default_communicator_is_the_world():
    from dlopt.distributed import allreduce_mean_

    w = world()
    g = [np.full(10, float(w.Get_rank()), np.float64)]
    allreduce_mean_(g)
    assert_all(w, same(g[0], np.full(10, sum(range(w.Get_size())) / w.Get_size())))


def test_bad_input_raises_on_every_rank_and_changes_nothing():
    from dlopt.distributed import allreduce_mean_

    w = world()
    with pytest.raises(TypeError, match="intra-communicator"):
        allreduce_mean_([np.zeros(3)], comm="world")
    # One rank passes a different shape: every rank raises, nothing is averaged.
    g = [np.full(4 if w.Get_rank() == 0 or w.Get_size() == 1 else 5, 1.0 + w.Get_rank())]
    before = g[0].copy()
    if w.Get_size() > 1:
        with pytest.raises(ValueError, match="ranks disagree"):
            allreduce_mean_(g, w)
        assert_all(w, same(g[0], before))
    # A bad array on the last rank only: the others learn it from the message.
    bad = [np.zeros(3, np.int32) if w.Get_rank() == w.Get_size() - 1 else np.zeros(3)]
    with pytest.raises(TypeError, match="int32"):
        allreduce_mean_(bad, w)
    ro = np.zeros(3)
    ro.flags.writeable = w.Get_rank() != 0
    with pytest.raises(ValueError, match="read-only"):
        allreduce_mean_([ro], w)
    with pytest.raises(ValueError, match="bucket_bytes"):
        allreduce_mean_([np.zeros(3)], w, bucket_bytes=0)
