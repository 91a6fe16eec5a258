#!/usr/bin/env python
"""Fewer bytes per step: dlopt's 16-bit parameters and bf16 / int8 state, side by side with
torch's fused CPU Adam (float32 and bfloat16) and bitsandbytes' 8-bit Adam on CPU, in one run.

Every implementation steps its own copy of the same parameters with the same gradients; they are
timed interleaved (one batch of each in turn, best batch kept), so a noisy neighbour slows them all
alike. Ratios are peer time / dlopt time (> 1: dlopt is faster). GB/s counts the bytes a step must
move: parameter read + write, gradient read, each state buffer read + write (8-bit: + its scales).
"%roof" compares that with dlopt-bench's in-place-update bandwidth measured in the same run.

    python bench/bench_lowbit.py                      # Adam at 5e7 parameters, every configuration
    python bench/bench_lowbit.py --size 1e7 --others  # also every optimizer with int8 state
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import ml_dtypes
import numpy as np

import dlopt

sys.path.insert(0, str(Path(__file__).resolve().parent))
from compare import CONFIGS, interleaved, roofline_from_bench  # noqa: E402

try:
    import torch
except ImportError:  # a peer, not a dependency
    torch = None
try:
    import bitsandbytes as bnb
except ImportError:
    bnb = None

BF16 = np.dtype(ml_dtypes.bfloat16)
STATE_BYTES = {None: 4, "float32": 4, "bfloat16": 2, "int8": 1 + 4 / 256}


def dlopt_case(name, n, param_dtype, state_dtype, rng_grad):
    p = np.full(n, 0.5, param_dtype)
    g = rng_grad.astype(param_dtype)
    opt = getattr(dlopt.optim, name)([p], state_dtype=state_dtype, **CONFIGS[name])
    opt.step([g])
    slots = sum(1 for k, v in opt.state[0].items() if isinstance(v, np.ndarray) and not k.endswith("_scale"))
    pb = np.dtype(param_dtype).itemsize
    state_bytes = STATE_BYTES[state_dtype] if state_dtype else pb if pb != 2 else 4
    if name == "Adagrad":
        state_bytes = 4  # its sum stays float32 (docs/formats.md)
    per_element = 2 * pb + pb + 2 * slots * state_bytes
    state_memory = sum(v.nbytes for v in opt.state[0].values() if isinstance(v, np.ndarray)) / n
    return (lambda: opt.step([g])), per_element, state_memory


def torch_adam(n, dtype, rng_grad):
    p = torch.full((n,), 0.5, dtype=dtype, requires_grad=True)
    p.grad = torch.from_numpy(rng_grad).to(dtype)
    opt = torch.optim.Adam([p], lr=1e-3, fused=True)
    opt.step()
    return lambda: opt.step()


def bnb_adam8bit(n, rng_grad):
    p = torch.nn.Parameter(torch.full((n,), 0.5))
    p.grad = torch.from_numpy(rng_grad)
    opt = bnb.optim.Adam8bit([p], lr=1e-3, min_8bit_size=0)
    opt.step()
    return lambda: opt.step()


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=float, default=5e7)
    ap.add_argument("--min-time", type=float, default=3.0, help="seconds of interleaved rounds")
    ap.add_argument("--others", action="store_true", help="every other optimizer with int8 state")
    args = ap.parse_args(argv)
    n = int(args.size)
    threads = dlopt.get_num_threads()
    if torch is not None:
        torch.set_num_threads(threads)
    grad = np.random.default_rng(0).normal(size=n).astype(np.float32)
    roof = (roofline_from_bench([n], threads) or {}).get(n)

    cases, bytes_of, memory_of = {}, {}, {}
    configs = [("f32 params, f32 state", np.float32, None), ("f32 params, bf16 state", np.float32, "bfloat16"),
               ("f32 params, int8 state", np.float32, "int8"), ("bf16 params, bf16 state", BF16, "bfloat16"),
               ("bf16 params (SR), int8 state", BF16, "int8")]
    for label, pdt, sdt in configs:
        cases[label], bytes_of[label], memory_of[label] = dlopt_case("Adam", n, pdt, sdt, grad)
    if torch is not None:
        cases["torch fused f32"], bytes_of["torch fused f32"] = torch_adam(n, torch.float32, grad), 28
        cases["torch fused bf16"], bytes_of["torch fused bf16"] = torch_adam(n, torch.bfloat16, grad), 14
    if bnb is not None:
        cases["bitsandbytes Adam8bit"], bytes_of["bitsandbytes Adam8bit"] = bnb_adam8bit(n, grad), 12 + 4 / 256 * 4
    best = interleaved(cases, args.min_time)

    print(f"Adam, {n:.0e} parameters, {threads} threads; in-place-update roof: "
          f"{roof:.1f} GB/s" if roof else f"Adam, {n:.0e} parameters, {threads} threads")
    print(f"{'configuration':<30} {'ms':>8} {'B/param':>8} {'GB/s':>6} {'%roof':>6} {'state B':>8} "
          f"{'vs torch f32':>13} {'vs torch bf16':>14} {'vs bnb 8bit':>12}")
    for label in cases:
        t = best[label]
        gbps = bytes_of[label] * n / t / 1e9
        ratio = lambda peer: f"{best[peer] / t:.2f}x" if peer in best and not label.startswith(("torch", "bits")) else "-"
        mem = f"{memory_of[label]:.2f}" if label in memory_of else "-"
        pct = f"{100 * gbps / roof:.0f}%" if roof else "-"
        print(f"{label:<30} {t * 1e3:8.2f} {bytes_of[label]:8.2f} {gbps:6.1f} {pct:>6} {mem:>8} "
              f"{ratio('torch fused f32'):>13} {ratio('torch fused bf16'):>14} {ratio('bitsandbytes Adam8bit'):>12}")

    if args.others:
        print(f"\nEvery optimizer, float32 parameters, int8 state ({n:.0e}): share of the matched-traffic roof")
        others = {}
        for name in CONFIGS:
            others[name], b, _ = dlopt_case(name, n, np.float32, "int8", grad)
            bytes_of[name] = b
        best = interleaved(others, args.min_time)
        for name in others:
            gbps = bytes_of[name] * n / best[name] / 1e9
            pct = f"{100 * gbps / roof:.0f}%" if roof else "-"
            print(f"{name:<10} {best[name] * 1e3:8.2f} ms {bytes_of[name]:6.2f} B/param {gbps:6.1f} GB/s {pct:>6}")


if __name__ == "__main__":
    main()
