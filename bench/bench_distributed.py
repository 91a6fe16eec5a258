"""ZeRO-1 over MPI: dlopt.distributed.ZeroRedundancyOptimizer against the unsharded dlopt step and
torch's ZeroRedundancyOptimizer over gloo, side by side, on this machine.

    python bench/bench_distributed.py                       # 50M float32 parameters, Adam, 1, 2, 4 ranks
    python bench/bench_distributed.py --params 10e6 --ranks 1 2

The driver launches ``mpirun -n N --oversubscribe python bench/bench_distributed.py --worker ...`` for
each N (and the torch peer the same way, its gloo group initialised from Open MPI's rank variables)
and prints, per step (median over --steps after --warmup; with --rounds R, R launches of dlopt then
torch per rank count, interleaved, and the median ratios):

- comm: bytes each rank sends (reduce-scatter of the gradients + all-gather of the parameters) and the
  time of the two exchanges (MPI's point-to-point messages, with the rank-order sum that the
  reduce-scatter makes as the buckets arrive) plus the two small all-gathers by which the ranks agree
  on the arguments (which also absorb any skew between ranks);
- step: this rank's optimizer step on its shard (the fused C++ kernel);
- overhead: the rest of the sharded step (argument checks and the hyperparameters' digest);
- state: optimizer state bytes per rank, and its fraction of the unsharded state;
- the unsharded dlopt step on all parameters (one rank, measured in the same run) and torch's
  ZeroRedundancyOptimizer (gloo) step plus its gradient all-reduce (what DDP does before it).

Timings share the machine's cores and memory bandwidth between ranks: with more ranks than cores
(--oversubscribe) they measure contention, not a cluster. docs/distributed.md turns the measured
figures into a cost model for a cluster.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

HERE = os.path.abspath(__file__)


def _tensor_sizes(total: int, count: int) -> list[int]:
    return [total // count + (1 if i < total % count else 0) for i in range(count)]


def worker_dlopt(args) -> dict:
    import numpy as np
    from mpi4py import MPI

    import dlopt
    from dlopt.distributed import ZeroRedundancyOptimizer

    class TimedComm(MPI.Intracomm):
        """The world communicator, timing the ranks' agreement on arguments (two small all-gathers
        per step, which also absorb any skew between ranks)."""
        seconds = 0.0

        def allgather(self, obj):
            t = time.perf_counter()
            out = super().allgather(obj)
            TimedComm.seconds += time.perf_counter() - t
            return out

    comm = TimedComm(MPI.COMM_WORLD)
    rank, size = comm.Get_rank(), comm.Get_size()
    rng = np.random.default_rng(rank)
    sizes = _tensor_sizes(int(args.params), args.tensors)
    params = [np.random.default_rng(i).random(n, dtype=np.float32) for i, n in enumerate(sizes)]
    grads = [rng.random(n, dtype=np.float32) - 0.5 for n in sizes]
    zero = ZeroRedundancyOptimizer(params, args.optimizer, comm, lr=1e-3)
    local = {"step": 0.0, "comm": 0.0}

    def timed(fn, key):
        def run(*a):
            t = time.perf_counter()
            fn(*a)
            local[key] += time.perf_counter() - t
        return run
    # the data's exchanges (with the rank-order sum inside the reduce-scatter) and the shard's step
    zero._reduce_scatter = timed(zero._reduce_scatter, "comm")
    zero._allgather_params = timed(zero._allgather_params, "comm")
    zero._local.step = timed(zero._local.step, "step")

    rows = []
    for s in range(args.warmup + args.steps):
        TimedComm.seconds, local["step"], local["comm"] = 0.0, 0.0, 0.0
        comm.Barrier()
        t = time.perf_counter()
        zero.step(grads)
        total = time.perf_counter() - t
        if s >= args.warmup:
            comm_s = TimedComm.seconds + local["comm"]
            rows.append((total, comm_s, local["step"], total - comm_s - local["step"]))
    # the slowest rank decides a step: the maximum over ranks of each median
    med = [statistics.median(r[k] for r in rows) for k in range(4)]
    med = [max(v) for v in zip(*comm.allgather(med))]
    (bounds,) = zero.shard_bounds
    own = bounds[rank + 1] - bounds[rank]
    sent = 4 * (int(args.params) - own) * 2 if size > 1 else 0  # reduce-scatter + all-gather
    state = max(comm.allgather(zero.state_nbytes()))
    out = dict(ranks=size, step_ms=med[0] * 1e3, comm_ms=med[1] * 1e3, local_step_ms=med[2] * 1e3,
               overhead_ms=med[3] * 1e3, comm_bytes_per_rank=sent, state_bytes_per_rank=state)
    del zero
    if size == 1:  # the unsharded step on all parameters, alone on the machine
        opt = getattr(dlopt.optim, {"adam": "Adam", "adamw": "AdamW", "sgd": "SGD"}[args.optimizer])(params, lr=1e-3)
        times = []
        for s in range(args.warmup + args.steps):
            t = time.perf_counter()
            opt.step(grads)
            if s >= args.warmup:
                times.append(time.perf_counter() - t)
        out["unsharded_step_ms"] = statistics.median(times) * 1e3
        out["unsharded_state_bytes"] = sum(v.nbytes for st in opt.state.values() for v in st.values()
                                           if isinstance(v, np.ndarray))
    comm.Barrier()
    return out


def worker_torch(args) -> dict:
    import torch
    import torch.distributed as dist
    from torch.distributed.optim import ZeroRedundancyOptimizer

    rank, size = int(os.environ["OMPI_COMM_WORLD_RANK"]), int(os.environ["OMPI_COMM_WORLD_SIZE"])
    torch.set_num_threads(max(1, (os.cpu_count() or 1) // size))
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{args.port}", rank=rank, world_size=size)
    sizes = _tensor_sizes(int(args.params), args.tensors)
    gen = torch.Generator().manual_seed(rank)
    params = [torch.nn.Parameter(torch.rand(n)) for n in sizes]
    for p in params:
        p.grad = torch.rand(n := p.numel(), generator=gen) - 0.5
    cls = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW, "sgd": torch.optim.SGD}[args.optimizer]
    zero = ZeroRedundancyOptimizer(params, optimizer_class=cls, lr=1e-3)
    flat = torch.empty(int(args.params))
    rows = []
    for s in range(args.warmup + args.steps):
        dist.barrier()
        t = time.perf_counter()
        # DDP's gradient averaging (one flat bucket), then the sharded step and its parameter broadcast
        torch.cat([p.grad for p in params], out=flat)
        dist.all_reduce(flat)
        flat /= size
        t_reduce = time.perf_counter()
        zero.step()
        t_end = time.perf_counter()
        if s >= args.warmup:
            rows.append((t_end - t, t_reduce - t, t_end - t_reduce))
    med = [statistics.median(r[k] for r in rows) for k in range(3)]
    everyone = [None] * size
    dist.all_gather_object(everyone, med)
    med = [max(v) for v in zip(*everyone)]
    dist.destroy_process_group()
    return dict(ranks=size, torch_step_ms=med[0] * 1e3, torch_allreduce_ms=med[1] * 1e3,
                torch_zero_step_ms=med[2] * 1e3)


def launch(n: int, args, kind: str) -> dict:
    # each rank its share of the cores (dlopt's kernels use OpenMP)
    env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
               OMP_NUM_THREADS=str(max(1, (os.cpu_count() or 1) // n)))
    cmd = ["mpirun", "-n", str(n), "--oversubscribe", sys.executable, HERE, "--worker", kind,
           "--params", str(args.params), "--tensors", str(args.tensors), "--steps", str(args.steps),
           "--warmup", str(args.warmup), "--optimizer", args.optimizer, "--port", str(29500 + n)]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=1800)
    lines = [ln for ln in out.stdout.splitlines() if ln.startswith("{")]
    if out.returncode != 0 or not lines:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{out.stdout}\n{out.stderr}")
    return json.loads(lines[0])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--params", type=float, default=50e6)
    p.add_argument("--tensors", type=int, default=50, help="the parameters are this many equal tensors")
    p.add_argument("--ranks", type=int, nargs="+", default=[1, 2, 4])
    p.add_argument("--optimizer", default="adam", choices=["adam", "adamw", "sgd"])
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--rounds", type=int, default=1, help="launches of dlopt then torch per rank count")
    p.add_argument("--no-torch", action="store_true")
    p.add_argument("--worker", choices=["dlopt", "torch"], help=argparse.SUPPRESS)
    p.add_argument("--port", type=int, default=29500, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        result = worker_dlopt(args) if args.worker == "dlopt" else worker_torch(args)
        if int(os.environ.get("OMPI_COMM_WORLD_RANK", "0")) == 0:
            print(json.dumps(result), flush=True)
        return

    print(f"{args.optimizer}, {args.params / 1e6:g}M float32 parameters in {args.tensors} tensors, "
          f"{os.cpu_count()} cores; per step, the slowest rank's median of {args.steps}; "
          f"{args.rounds} round(s) of dlopt then torch per rank count")
    head = ("ranks", "step ms", "comm ms", "shard step ms", "overhead ms", "overhead/unsharded",
            "comm MB/rank", "state MB/rank", "state/unsharded", "torch ZeRO+allreduce ms", "dlopt speedup",
            "load avg")
    print(" | ".join(head))
    base = launch(1, args, "dlopt")  # the unsharded step and state, alone on the machine
    unsharded, unsharded_state = base["unsharded_step_ms"], base["unsharded_state_bytes"]
    for n in args.ranks:
        speedups, overheads = [], []
        for round_ in range(args.rounds):  # interleaved: the machine's load changes between launches
            r = base if n == 1 and round_ == 0 else launch(n, args, "dlopt")
            t = None if args.no_torch else launch(n, args, "torch")
            overheads.append(r["overhead_ms"] / unsharded)
            if t is not None:
                speedups.append(t["torch_step_ms"] / r["step_ms"])
            cells = [n, f"{r['step_ms']:.1f}", f"{r['comm_ms']:.1f}", f"{r['local_step_ms']:.1f}",
                     f"{r['overhead_ms']:.1f}", f"{overheads[-1]:.1%}",
                     f"{r['comm_bytes_per_rank'] / 1e6:.0f}", f"{r['state_bytes_per_rank'] / 1e6:.0f}",
                     f"{r['state_bytes_per_rank'] / unsharded_state:.3f} (1/N = {1 / n:.3f})",
                     "-" if t is None else
                     f"{t['torch_step_ms']:.1f} ({t['torch_allreduce_ms']:.1f} + {t['torch_zero_step_ms']:.1f})",
                     "-" if t is None else f"{speedups[-1]:.2f}x",
                     f"{os.getloadavg()[0]:.1f}"]
            print(" | ".join(str(c) for c in cells), flush=True)
        if args.rounds > 1:
            print(f"{n} ranks, median over {args.rounds} rounds: overhead/unsharded "
                  f"{statistics.median(overheads):.1%}"
                  + ("" if not speedups else f", dlopt speedup {statistics.median(speedups):.2f}x"), flush=True)
    print(f"unsharded dlopt {args.optimizer} step on one rank: {unsharded:.1f} ms")

if __name__ == "__main__":
    main()
