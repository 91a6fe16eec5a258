#!/usr/bin/env python3
"""dlopt on a CUDA device: Adam's step bandwidth against a same-size device copy and, side by
side, against torch's fused CUDA Adam.

    python bench/bench_cuda.py                      # Adam float32, 100M parameters, one tensor
    python bench/bench_cuda.py --tensors 200        # the same parameters split into 200 tensors
    python bench/bench_cuda.py --json out.json

Every number is GPU time between CUDA events on the legacy default stream (where dlopt, torch's
default stream and the copy all run), per step, median over interleaved rounds:
  copy         cudaMemcpyAsync device-to-device of 2N elements: the bandwidth roof (GB/s = bytes
               read + written / time)
  dlopt        dlopt.optim.Adam(params).step(grads) on torch CUDA tensors (dlopt DeviceArrays
               without a CUDA build of torch)
  torch fused  torch.optim.Adam(params, fused=True).step(), same sizes (needs a CUDA build of torch)
Adam float32 moves 28 bytes per parameter (reads p, g, m, v; writes p, m, v): GB/s = 28 N / time.

    python bench/bench_cuda.py --linear             # linear models: epoch time, GPU vs dlopt CPU

--linear times one training epoch of LinearRegression (Adam) on 1,000,000 x 100 float32 rows, with
mini-batches of 256 (shuffled) and full batch, device="cuda" (X already on the device, so the
per-fit host-to-device copy is not counted) against device="cpu" on this machine's cores, side by
side: wall-clock time of fit(epochs=E) / E, median over rounds.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys

import numpy as np

import dlopt
from dlopt import _core


def torch_cuda():
    try:
        import torch
    except Exception:  # noqa: BLE001
        return None
    return torch if torch.cuda.is_available() else None


def split_sizes(n: int, tensors: int) -> list[int]:
    """n elements in `tensors` tensors of varied sizes (a model's mix of large and small)."""
    if tensors == 1:
        return [n]
    rng = np.random.default_rng(0)
    w = rng.pareto(1.5, tensors) + 0.01
    sizes = np.maximum(1, np.floor(w / w.sum() * n)).astype(np.int64)
    sizes[0] += n - sizes.sum()
    return [int(s) for s in sizes]


def timed(timer, fn, reps: int) -> float:
    """Milliseconds per call of fn, GPU time over `reps` back-to-back calls."""
    timer.start()
    for _ in range(reps):
        fn()
    return timer.stop_ms() / reps


def bench_linear(args) -> int:
    import time

    from dlopt.linear_model import LinearRegression

    n, d = int(args.linear_rows), 100
    rng = np.random.default_rng(0)
    X = rng.standard_normal((n, d), dtype=np.float32)
    y = (X @ rng.standard_normal(d).astype(np.float32) + 0.1).astype(np.float32)
    X_dev, y_dev = dlopt.cuda.DeviceArray.from_numpy(X), dlopt.cuda.DeviceArray.from_numpy(y)
    device = dlopt.cuda.get_device_name(0)
    print(f"device: {device}; CPU threads: {dlopt.get_num_threads()}")
    print(f"LinearRegression (Adam) float32, {n:,} x {d}: ms per epoch (median of {args.rounds} fits)")
    results = {}
    for batch, epochs in ((256, 2), (None, 10)):
        row = {}
        for where, Xa, ya in (("cuda", X_dev, y_dev), ("cpu", X, y)):
            model = LinearRegression(lr=1e-3, epochs=epochs, batch_size=batch, random_state=0, device=where)
            model.fit(Xa, ya)  # warm-up
            times = []
            for _ in range(args.rounds):
                t0 = time.perf_counter()
                model.fit(Xa, ya)
                times.append((time.perf_counter() - t0) / epochs * 1e3)
            row[where] = statistics.median(times)
        label = f"batch {batch}" if batch else "full batch"
        print(f"  {label:11s} GPU {row['cuda']:9.2f} ms   CPU {row['cpu']:9.2f} ms   "
              f"GPU speed-up {row['cpu'] / row['cuda']:.1f}x")
        results[label] = row
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"device": device, "rows": n, "features": d, "ms_per_epoch": results}, f, indent=1)
    return 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=float, default=100e6, help="parameters (default 1e8)")
    ap.add_argument("--tensors", type=int, default=1, help="split the parameters into this many tensors")
    ap.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    ap.add_argument("--reps", type=int, default=20, help="steps per timed round")
    ap.add_argument("--rounds", type=int, default=5, help="interleaved rounds (median reported)")
    ap.add_argument("--json", help="also write the results to this file")
    ap.add_argument("--linear", action="store_true", help="time linear-model epochs instead (GPU vs CPU)")
    ap.add_argument("--linear-rows", type=float, default=1e6, help="rows of the --linear data (default 1e6)")
    args = ap.parse_args(argv)

    if not dlopt.cuda.is_available():
        print("dlopt.cuda.is_available() is False: no CUDA device, or dlopt built without CUDA", file=sys.stderr)
        return 2
    if args.linear:
        args.rounds = min(args.rounds, 3)
        return bench_linear(args)
    n = int(args.n)
    dtype = np.dtype(args.dtype)
    item = dtype.itemsize
    torch = torch_cuda()
    sizes = split_sizes(n, args.tensors)
    device = dlopt.cuda.get_device_name(0)
    rng = np.random.default_rng(0)

    # Parameters and gradients: torch CUDA tensors if torch has CUDA (shared with torch's Adam
    # runs, separate copies), else dlopt DeviceArrays.
    if torch is not None:
        tdt = torch.float32 if dtype == np.float32 else torch.float64
        make = lambda s: torch.randn(s, device="cuda", dtype=tdt)  # noqa: E731
    else:
        make = lambda s: dlopt.cuda.DeviceArray.from_numpy(rng.standard_normal(s).astype(dtype))  # noqa: E731
    params = [make(s) for s in sizes]
    grads = [make(s) for s in sizes]
    opt = dlopt.optim.Adam(params, lr=1e-3)
    # Copy roof: one buffer of the bytes a step reads, copied into another (read + write).
    src = dlopt.cuda.DeviceArray.from_numpy(np.zeros(n * 2, dtype))
    dst = dlopt.cuda.DeviceArray.from_numpy(np.zeros(n * 2, dtype))

    runs = {
        "copy": lambda: _core.cuda_copy_async(dst, src),
        "dlopt": lambda: opt.step(grads),
    }
    if torch is not None:
        tparams = [torch.randn(s, device="cuda", dtype=tdt) for s in sizes]
        for p, g in zip(tparams, grads):
            p.grad = g.clone()
        topt = torch.optim.Adam(tparams, lr=1e-3, fused=True)
        runs["torch fused"] = topt.step

    timer = _core.CudaEventTimer()
    for fn in runs.values():  # warm-up: state allocation, caches, clocks
        for _ in range(3):
            fn()
    dlopt.cuda.synchronize()
    samples = {k: [] for k in runs}
    for _ in range(args.rounds):
        for name, fn in runs.items():
            samples[name].append(timed(timer, fn, args.reps))
    ms = {k: statistics.median(v) for k, v in samples.items()}

    step_bytes = 7 * item * n  # p, g, m, v read; p, m, v written
    copy_bytes = 2 * (2 * n * item)  # 2n elements read and written
    gbs = {"copy": copy_bytes / ms["copy"] / 1e6}
    for k in runs:
        if k != "copy":
            gbs[k] = step_bytes / ms[k] / 1e6
    print(f"device: {device}")
    print(f"Adam {args.dtype}, {n:,} parameters in {len(sizes)} tensor(s); "
          f"median of {args.rounds} rounds x {args.reps} steps (GPU time, CUDA events)")
    for k in runs:
        print(f"  {k:12s} {ms[k]:9.3f} ms   {gbs[k]:8.1f} GB/s")
    print(f"dlopt / copy bandwidth:  {gbs['dlopt'] / gbs['copy']:.3f}   (target >= 0.90)")
    if "torch fused" in ms:
        print(f"dlopt speed vs torch fused Adam: {ms['torch fused'] / ms['dlopt']:.3f}x   (target >= 1.0)")
    else:
        print("torch fused Adam: skipped (no CUDA build of torch here)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"device": device, "n": n, "tensors": len(sizes), "dtype": args.dtype,
                       "ms": ms, "gbs": gbs, "samples_ms": samples}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
