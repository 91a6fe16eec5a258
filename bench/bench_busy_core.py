"""1 vs 2 threads with one core busy: does dlopt degrade gracefully on a loaded machine?

    python bench/bench_busy_core.py [--rows 200000] [--features 100] [--batch-size 256] [--repeats 5]

Times mini-batch epochs of LinearRegression (float32, SGD) with dlopt.set_num_threads(1) and (2), first
on an idle machine, then with a busy-loop process pinned to CPU 0 (the machine's other work). Prints
the median ms per epoch of each; speed is measured here, never asserted in tests.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import statistics
import time

import numpy as np

import dlopt
from dlopt.linear_model import LinearRegression


def busy_loop(cpu: int, stop) -> None:
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {cpu})
    while not stop.is_set():
        pass


def ms_per_epoch(X, y, threads: int, batch_size: int, repeats: int) -> float:
    dlopt.set_num_threads(threads)
    model = LinearRegression(optimizer="sgd", lr=1e-3, epochs=1, batch_size=batch_size, random_state=0)
    model.partial_fit(X, y)  # warm-up: the thread pool, page faults
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        model.partial_fit(X, y)
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rows", type=int, default=200_000)
    p.add_argument("--features", type=int, default=100)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--repeats", type=int, default=5)
    args = p.parse_args()
    rng = np.random.default_rng(0)
    X = rng.normal(size=(args.rows, args.features)).astype(np.float32)
    y = (X @ rng.normal(size=args.features)).astype(np.float32)
    print(f"LinearRegression mini-batch SGD epoch, {args.rows} x {args.features} float32, batch {args.batch_size}, "
          f"{os.cpu_count()} CPUs, median of {args.repeats}")
    original = dlopt.get_num_threads()
    for label in ("idle", "CPU 0 busy"):
        stop = mp.Event()
        hog = None
        if label != "idle":
            hog = mp.Process(target=busy_loop, args=(0, stop), daemon=True)
            hog.start()
            time.sleep(0.2)
        try:
            one = ms_per_epoch(X, y, 1, args.batch_size, args.repeats)
            two = ms_per_epoch(X, y, 2, args.batch_size, args.repeats)
        finally:
            stop.set()
            if hog is not None:
                hog.join()
        print(f"{label:>11}: 1 thread {one:8.2f} ms   2 threads {two:8.2f} ms   (2 threads / 1 thread: {two / one:.2f})")
    dlopt.set_num_threads(original)


if __name__ == "__main__":
    main()
