"""ZeroRedundancyOptimizer: bitwise equal to the unsharded optimizer on the averaged gradients, for
every optimizer and every number of ranks; checkpoints gather and reshard; bad input raises on every
rank and changes nothing."""

import copy
import os
import tempfile

import ml_dtypes
import numpy as np
import pytest

import dlopt
from mpi_helpers import assert_all, rank_grads, same, same_state, sub_comms, world
from optim_cases import FULL_STATE_CONFIGS, MATRIX_CONFIGS

BF16 = np.dtype(ml_dtypes.bfloat16)
# 2-D (Muon takes matrices only); several 4096-element blocks so that shards cut inside tensors.
SHAPES = [(64, 130), (3, 4097), (1, 7), (100, 100), (50, 300), (2, 2)]


def config(name):
    return {**FULL_STATE_CONFIGS, **MATRIX_CONFIGS}.get(name, {})


def make_params(seed=0, dtype=np.float32, shapes=SHAPES):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(s).astype(dtype) for s in shapes]


def run_both(comm, cls, params, steps, kwargs, groups=None, clip=None, bucket_bytes=None, seed=1):
    """The sharded run and the unsharded reference on the same rank's copies of the parameters."""
    from dlopt.distributed import ZeroRedundancyOptimizer, allreduce_mean_

    mine, ref = [p.copy() for p in params], [p.copy() for p in params]
    wrap = (lambda ps: [{"params": ps[:2], **groups}, {"params": ps[2:]}]) if groups else (lambda ps: ps)
    zero = ZeroRedundancyOptimizer(wrap(mine), cls, comm, bucket_bytes=bucket_bytes, **kwargs)
    opt = cls(wrap(ref), **kwargs)
    for t in range(steps):
        grads = rank_grads(params, seed, comm.Get_rank(), t)
        averaged = [g.copy() for g in grads]
        allreduce_mean_(averaged, comm)
        if clip is None:
            zero.step(grads)
        else:
            n_zero = zero.step(grads, max_norm=clip)
            n_ref = dlopt.clip_grad_norm_(averaged, clip)
            assert_all(comm, same(n_zero, n_ref), "the total norm")
        opt.step(averaged)
    return zero, opt, mine, ref


def check_equal(comm, zero, opt, mine, ref, what):
    assert_all(comm, all(same(a, b) for a, b in zip(mine, ref)), f"{what}: parameters")
    full = zero.state_dict()
    ok = comm.Get_rank() != 0 or same_state(full["state"], opt.state_dict()["state"])
    assert_all(comm, ok, f"{what}: gathered state")


FUSED = [n for n in dlopt.optim.algorithms.__all__ if issubclass(getattr(dlopt.optim, n), dlopt.optim.Optimizer)]


def test_lbfgs_is_refused():
    """L-BFGS steps through a closure over the whole flat vector: not a fused step to shard."""
    from dlopt.distributed import ZeroRedundancyOptimizer

    with pytest.raises(TypeError, match="Optimizer subclass"):
        ZeroRedundancyOptimizer([np.zeros(3)], optimizer="lbfgs")


@pytest.mark.parametrize("name", FUSED)
def test_bitwise_equal_to_unsharded_for_every_optimizer_and_rank_count(name):
    cls = getattr(dlopt.optim, name)
    for size, comm in sub_comms():
        if comm is None:
            continue
        zero, opt, mine, ref = run_both(comm, cls, make_params(), 3, config(name))
        check_equal(comm, zero, opt, mine, ref, f"{name} on {size} ranks")
        state = zero.state_nbytes()
        total = sum(v.nbytes for s in opt.state.values() for v in s.values() if isinstance(v, np.ndarray))
        assert_all(comm, sum(comm.allgather(state)) == total, "the shards hold the state exactly once")


def test_shards_cut_inside_tensors_on_block_boundaries():
    from dlopt.distributed import ZeroRedundancyOptimizer

    w = world()
    params = [np.zeros(100_000, np.float32), np.zeros(5, np.float32)]
    zero = ZeroRedundancyOptimizer(params, "adam", w)
    (bounds,) = zero.shard_bounds
    n = w.Get_size()
    ok = bounds[0] == 0 and bounds[-1] == 100_005 and all(
        b % 4096 == 0 or b in (100_000, 100_005) for b in bounds)
    ok = ok and all(abs(bounds[r] - 100_005 * r / n) <= 4096 for r in range(n + 1))
    assert_all(w, ok, f"bounds {bounds}")
    # LAMB reduces over whole tensors: they are never cut.
    (bounds,) = ZeroRedundancyOptimizer(params, "lamb", w).shard_bounds
    assert_all(w, all(b in (0, 100_000, 100_005) for b in bounds), f"LAMB bounds {bounds}")


@pytest.mark.parametrize("storage", [
    dict(state_dtype="bfloat16"),                               # stochastic: whole tensors
    dict(state_dtype="int8", stochastic_rounding=False),        # cut inside tensors, scales too
    dict(state_dtype="int8"),
])
def test_low_precision_state(storage):
    for size, comm in sub_comms():
        if comm is None:
            continue
        kwargs = dict(lr=0.01, **storage)
        zero, opt, mine, ref = run_both(comm, dlopt.optim.Adam, make_params(), 3, kwargs)
        check_equal(comm, zero, opt, mine, ref, f"Adam {storage} on {size} ranks")


@pytest.mark.parametrize("dtype,extra", [(BF16, {}), (BF16, {"master_weights": True}),
                                         (np.float16, {"stochastic_rounding": False}),
                                         (np.float64, {}), (np.float64, {"state_dtype": "float32"})])
def test_parameter_dtypes(dtype, extra):
    for size, comm in sub_comms():
        if comm is None:
            continue
        zero, opt, mine, ref = run_both(comm, dlopt.optim.AdamW, make_params(dtype=dtype), 3,
                                        dict(lr=0.01, **extra))
        check_equal(comm, zero, opt, mine, ref, f"AdamW {dtype} {extra} on {size} ranks")


def test_mixed_dtypes_groups_scheduler_and_clipping():
    for size, comm in sub_comms():
        if comm is None:
            continue
        params = make_params(dtype=np.float32)[:3] + make_params(seed=3, dtype=np.float64)[3:]
        zero, opt, mine, ref = run_both(comm, dlopt.optim.SGD, params, 2, dict(lr=0.1, momentum=0.9),
                                        groups={"lr": 0.05, "nesterov": True}, clip=1.0, bucket_bytes=4096)
        s_zero = dlopt.lr_scheduler.StepLR(zero, step_size=1, gamma=0.5)
        s_ref = dlopt.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)
        for t in range(2, 4):
            s_zero.step()
            s_ref.step()
            grads = rank_grads(params, 5, comm.Get_rank(), t)
            averaged = [g.copy() for g in grads]
            from dlopt.distributed import allreduce_mean_
            allreduce_mean_(averaged, comm)
            zero.step(grads)
            opt.step(averaged)
        check_equal(comm, zero, opt, mine, ref, f"groups + StepLR + clipping on {size} ranks")


def test_checkpoints_reshard_between_rank_counts_and_unsharded():
    """Sharded on the whole world -> file -> sharded on every size and unsharded, and back."""
    from dlopt.distributed import ZeroRedundancyOptimizer

    w = world()
    kwargs = dict(lr=0.01, amsgrad=True)
    zero, opt, mine, ref = run_both(w, dlopt.optim.Adam, make_params(), 2, kwargs)
    path = None
    if w.Get_rank() == 0:
        path = os.path.join(tempfile.mkdtemp(), "zero.dlopt")
        dlopt.save(path, optimizer=zero.state_dict())
    else:
        assert zero.state_dict() is None
    path = w.bcast(path)
    saved = dlopt.load(path)["optimizer"]
    for size, comm in sub_comms():
        if comm is None:
            continue
        # resume sharded on `size` ranks and unsharded, from the same file: same bits after 2 steps
        params_z, params_u = [p.copy() for p in mine], [p.copy() for p in mine]
        z = ZeroRedundancyOptimizer(params_z, "adam", comm, **kwargs)
        z.load_state_dict(saved if comm.Get_rank() == 0 else None)
        u = dlopt.optim.Adam(params_u, **kwargs)
        u.load_state_dict(copy.deepcopy(saved))
        for t in range(2, 4):
            grads = rank_grads(mine, 9, comm.Get_rank(), t)
            from dlopt.distributed import allreduce_mean_
            averaged = [g.copy() for g in grads]
            allreduce_mean_(averaged, comm)
            z.step(grads)
            u.step(averaged)
        check_equal(comm, z, u, params_z, params_u, f"resumed on {size} ranks")
        # an unsharded optimizer's checkpoint loads into the sharded one, and gathers back unchanged
        z.load_state_dict(u.state_dict())
        back = z.state_dict()
        assert_all(comm, comm.Get_rank() != 0 or same_state(back["state"], u.state_dict()["state"]),
                   "unsharded -> sharded -> gathered")


def test_bad_input_raises_on_every_rank_and_changes_nothing():
    from dlopt.distributed import ZeroRedundancyOptimizer

    w = world()
    rank, n = w.Get_rank(), w.Get_size()
    with pytest.raises(TypeError, match="intra-communicator"):
        ZeroRedundancyOptimizer(make_params(), "adam", comm=object())
    with pytest.raises(ValueError, match="unknown optimizer"):
        ZeroRedundancyOptimizer(make_params(), "adamm", w)
    if n > 1:  # ranks disagree on shapes, order, or hyperparameters: every rank raises
        shapes = SHAPES if rank == 0 else SHAPES[::-1]
        with pytest.raises(ValueError, match="ranks disagree"):
            ZeroRedundancyOptimizer(make_params(shapes=shapes), "adam", w)
        with pytest.raises(ValueError, match="ranks disagree"):
            ZeroRedundancyOptimizer(make_params(), "adam", w, lr=0.1 * (rank + 1))
    # a bad hyperparameter or gradient on the last rank only
    params = make_params()
    zero = ZeroRedundancyOptimizer(params, "adam", w, lr=0.01)
    zero.step(rank_grads(params, 0, rank, 0))
    before = ([p.copy() for p in params], copy.deepcopy(zero.optimizer.state))
    grads = rank_grads(params, 0, rank, 1)
    if rank == n - 1:
        grads[3] = grads[3].astype(np.float64)
    with pytest.raises(TypeError, match="float64 gradient"):
        zero.step(grads)
    if rank == n - 1:
        zero.param_groups[0]["lr"] = -1.0
    with pytest.raises(ValueError, match="lr"):
        zero.step(rank_grads(params, 0, rank, 1))
    zero.param_groups[0]["lr"] = 0.01
    with pytest.raises(ValueError, match="None"):
        zero.step([None] * len(params))
    # a checkpoint of another model
    other = dlopt.optim.Adam(make_params(shapes=[(3, 3)] * len(SHAPES)), lr=0.01)
    other.step([np.ones((3, 3), np.float32)] * len(SHAPES))
    with pytest.raises(ValueError, match="shape"):
        zero.load_state_dict(other.state_dict())
    with pytest.raises(ValueError, match="param groups|parameters"):
        zero.load_state_dict({"state": {}, "param_groups": []})
    ok = all(same(a, b) for a, b in zip(params, before[0])) and same_state(zero.optimizer.state, before[1])
    assert_all(w, ok, "nothing changed")
    # and it still steps in agreement with the ranks
    zero.step(rank_grads(params, 0, rank, 1))


def test_schedule_free_train_eval_switch():
    """Schedule-Free's eval()/train() move the parameters with the (sharded) state: equal to unsharded."""
    from dlopt.distributed import ZeroRedundancyOptimizer, allreduce_mean_

    for size, comm in sub_comms():
        if comm is None:
            continue
        params = make_params()
        mine, ref = [p.copy() for p in params], [p.copy() for p in params]
        zero = ZeroRedundancyOptimizer(mine, dlopt.optim.ScheduleFreeAdamW, comm, lr=0.01)
        opt = dlopt.optim.ScheduleFreeAdamW(ref, lr=0.01)
        for t in range(3):
            grads = rank_grads(params, 4, comm.Get_rank(), t)
            averaged = [g.copy() for g in grads]
            allreduce_mean_(averaged, comm)
            zero.step(grads)
            opt.step(averaged)
            if t == 1:
                zero.eval()
                opt.eval()
                check_equal(comm, zero, opt, mine, ref, f"Schedule-Free eval() on {size} ranks")
                zero.train()
                opt.train()
        check_equal(comm, zero, opt, mine, ref, f"Schedule-Free on {size} ranks")
