"""How fast this machine's MPI moves a ZeRO step's bytes, by collective: the evidence behind
dlopt.distributed's choice of point-to-point messages (docs/distributed.md, "Buckets and messages").

    mpirun -n 2 python bench/bench_mpi_moves.py                   # 25M float32 per rank's part
    mpirun -n 2 --mca smsc ^cma python bench/bench_mpi_moves.py   # without Open MPI's single copy
    mpirun -n 2 --mca btl self,tcp python bench/bench_mpi_moves.py

Each rank holds ``--elements`` float32 values cut into N parts; per call, rank 0 prints the slowest
rank's best of 3 (after one warm-up call, so no page is touched for the first time in a timed call):

- alltoallv: each rank receives every rank's copy of its part (the data of a reduce-scatter);
- allgatherv (in place): each rank's part to every rank (the all-gather of the parameters);
- reduce_scatter_block and allreduce: MPI's own reductions of the same data (MPI_SUM);
- point to point: Isend / Irecv of each part to and from each other rank, all posted at once.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from mpi4py import MPI


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--elements", type=float, default=50e6, help="float32 values per rank (all parts)")
    args = p.parse_args()
    comm = MPI.COMM_WORLD
    rank, size = comm.Get_rank(), comm.Get_size()
    mine = int(args.elements) // size
    n = mine * size
    send = np.random.default_rng(rank).random(n, dtype=np.float32)
    recv = np.zeros(n, np.float32)
    counts, displs = [mine * 4] * size, [r * mine * 4 for r in range(size)]

    def alltoallv():
        comm.Alltoallv([send.view(np.uint8), (counts, displs), MPI.BYTE],
                       [recv.view(np.uint8), (counts, displs), MPI.BYTE])

    def allgatherv():
        comm.Allgatherv(MPI.IN_PLACE, [send.view(np.uint8), (counts, displs), MPI.BYTE])

    def reduce_scatter_block():
        comm.Reduce_scatter_block(send, recv[:mine], op=MPI.SUM)

    def allreduce():
        comm.Allreduce(MPI.IN_PLACE, send, op=MPI.SUM)

    def point_to_point():
        reqs = []
        for q in range(size):
            if q != rank:
                reqs.append(comm.Irecv([recv[q * mine:(q + 1) * mine], MPI.FLOAT], q, 1))
                reqs.append(comm.Isend([send[q * mine:(q + 1) * mine], MPI.FLOAT], q, 1))
        MPI.Request.Waitall(reqs)

    if rank == 0:
        print(f"{size} ranks, {n * 4 / 1e6:.0f} MB per rank ({mine * 4 / 1e6:.0f} MB per part); "
              f"the slowest rank's best of 3")
    for name, f in [("alltoallv", alltoallv), ("allgatherv (in place)", allgatherv),
                    ("reduce_scatter_block", reduce_scatter_block), ("allreduce", allreduce),
                    ("point to point", point_to_point)]:
        times = []
        for _ in range(4):
            comm.Barrier()
            t = time.perf_counter()
            f()
            times.append(time.perf_counter() - t)
        slowest = max(comm.allgather(min(times[1:])))
        if rank == 0:
            print(f"{name:24s} {slowest * 1e3:8.1f} ms", flush=True)


if __name__ == "__main__":
    main()
