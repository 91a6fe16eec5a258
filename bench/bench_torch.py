#!/usr/bin/env python
"""dlopt.torch against torch's fused CPU AdamW and DeepSpeed's CPU Adam, side by side in one run.

1. Offload step: a torch model's parameters (float32, 2048x2048 layers) with their gradients on the
   CPU, as ZeRO-Offload keeps them; one AdamW step of each contender: dlopt.torch.AdamW with float32,
   bfloat16 and int8 state, torch.optim.AdamW(fused=True), deepspeed.ops.adam.DeepSpeedCPUAdam (when it
   imports and builds). Each contender runs in its own process, so only its tensors are resident and its
   peak resident memory is its own; contenders alternate over --rounds rounds, best step kept.
   GB/s counts the bytes a step must move (parameter read + write, gradient read, each state buffer
   read + write; int8: + its scales).
2. The whole training step (zero_grad, forward, backward, step) of the digits MLP (64-128-10, batches of
   64) with dlopt.torch.AdamW and torch.optim.AdamW(fused=True), interleaved in one process: both on one
   thread (the model is far too small for threads), then with each library's default threads (what a
   user gets; on a busy machine torch's pool then waits for descheduled workers at every operation).

Ratios are peer time / dlopt time (> 1: dlopt is faster).

    python bench/bench_torch.py                    # 5e7 and 2e8 parameters, then the MLP
    python bench/bench_torch.py --sizes 1e7 --rounds 1
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

CONTENDERS = ["dlopt float32", "dlopt bfloat16", "dlopt int8", "torch fused", "deepspeed"]
# bytes moved per parameter: p read+write (8), g read (4), exp_avg and exp_avg_sq read+write
STEP_BYTES = {"dlopt float32": 28, "dlopt bfloat16": 20, "dlopt int8": 16 + 4 * 4 / 256,
              "torch fused": 28, "deepspeed": 28}
LAYER = 2048 * 2048


def import_contender(name):
    """Imports what a contender needs, so that the memory it adds is not counted as its state."""
    if name.startswith("dlopt"):
        import dlopt.torch  # noqa: F401
    elif name == "deepspeed":
        try:
            from deepspeed.ops.adam import DeepSpeedCPUAdam  # noqa: F401
        except Exception:  # reported by make_optimizer
            pass


def make_optimizer(name, params):
    import torch

    if name.startswith("dlopt"):
        import dlopt.torch

        state = name.split()[1]
        return dlopt.torch.AdamW(params, lr=1e-3, state_dtype=None if state == "float32" else state)
    if name == "torch fused":
        return torch.optim.AdamW(params, lr=1e-3, fused=True)
    from deepspeed.ops.adam import DeepSpeedCPUAdam  # noqa: PLC0415 - a peer, imported only here

    return DeepSpeedCPUAdam(params, lr=1e-3, adamw_mode=True, weight_decay=0.01)


def worker(name, size, steps):
    """One contender in this process: prints {"seconds": best step, "rss_mb": peak resident}."""
    import torch

    torch.manual_seed(0)
    n_layers = max(1, round(size / LAYER))
    # filled in place: a freed temporary would be reused by the optimizer and hide part of its memory
    params = [torch.nn.Parameter(torch.empty(2048, 2048).normal_(0, 0.02)) for _ in range(n_layers)]
    for p in params:
        p.grad = torch.empty_like(p).normal_(0, 1e-3)
    import_contender(name)
    before = _rss_mb()  # parameters, gradients and modules resident: what the optimizer adds is measured
    try:
        opt = make_optimizer(name, params)
        opt.step()  # state allocated, kernels built
    except Exception as e:  # reported, not fatal: a peer that cannot run here
        print(json.dumps({"error": f"{type(e).__name__}: {e}"[:300]}))
        return
    best = float("inf")
    for _ in range(steps):
        t0 = time.perf_counter()
        opt.step()
        best = min(best, time.perf_counter() - t0)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"seconds": best, "rss_mb": peak, "added_mb": _rss_mb() - before, "params": n_layers * LAYER}))


def _rss_mb():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 2**20


def offload(sizes, rounds, steps):
    print(f"== Offload AdamW step on the CPU ({rounds} rounds, best of {steps} steps each)")
    for size in sizes:
        results = {}
        for _ in range(rounds):
            for name in CONTENDERS:
                out = subprocess.run([sys.executable, __file__, "--worker", name, str(size), str(steps)],
                                     capture_output=True, text=True)
                lines = [ln for ln in out.stdout.splitlines() if ln.startswith("{")]
                r = json.loads(lines[-1]) if lines else {"error": (out.stderr.strip().splitlines() or ["?"])[-1]}
                old = results.get(name)
                if old is None or ("seconds" in r and r["seconds"] < old.get("seconds", float("inf"))):
                    results[name] = r
        n = next((r["params"] for r in results.values() if "params" in r), 0)
        print(f"\n{n / 1e6:.0f}M parameters")
        print(f"{'contender':16} {'ms/step':>9} {'GB/s':>7} {'peak RSS MB':>12} {'optimizer MB':>13} "
              f"{'vs torch fused':>15} {'vs deepspeed':>13}")
        for name in CONTENDERS:
            r = results[name]
            if "error" in r:
                print(f"{name:16} unavailable: {r['error']}")  # e.g. deepspeed not installed
                continue
            gbs = STEP_BYTES[name] * n / r["seconds"] / 1e9
            ratios = [f"{results[p]['seconds'] / r['seconds']:.2f}x" if "seconds" in results[p] else "-"
                      for p in ("torch fused", "deepspeed")]
            print(f"{name:16} {r['seconds'] * 1e3:9.1f} {gbs:7.1f} {r['rss_mb']:12.0f} {r['added_mb']:13.0f} "
                  f"{ratios[0]:>15} {ratios[1]:>13}")


def mlp(min_time, threads):
    """The digits MLP's training step, both optimizers on `threads` threads (0: each library's default)."""
    import torch
    from sklearn.datasets import load_digits

    import dlopt.torch

    sys.path.insert(0, __file__.rsplit("/", 1)[0])
    from compare import interleaved  # noqa: PLC0415

    if threads:
        torch.set_num_threads(threads)
        dlopt.set_num_threads(threads)
    x, y = load_digits(return_X_y=True)
    x, y = torch.tensor(x / 16, dtype=torch.float32), torch.tensor(y)
    runs = {}
    for name, make in [("dlopt.torch", lambda p: dlopt.torch.AdamW(p, lr=1e-3)),
                       ("torch fused", lambda p: torch.optim.AdamW(p, lr=1e-3, fused=True))]:
        torch.manual_seed(0)
        model = torch.nn.Sequential(torch.nn.Linear(64, 128), torch.nn.ReLU(), torch.nn.Linear(128, 10))
        opt = make(model.parameters())
        state = {"i": 0}

        def train_step(model=model, opt=opt, state=state):
            i = state["i"] = (state["i"] + 64) % (len(x) - 64)
            opt.zero_grad()
            torch.nn.functional.cross_entropy(model(x[i:i + 64]), y[i:i + 64]).backward()
            opt.step()

        runs[name] = (train_step, opt.step)
    whole = interleaved({k: v[0] for k, v in runs.items()}, min_time)
    step = interleaved({k: v[1] for k, v in runs.items()}, min_time)
    label = f"{threads} thread(s)" if threads else f"default threads (torch {torch.get_num_threads()}, " \
        f"dlopt {dlopt.get_num_threads()})"
    print(f"\n== Digits MLP (64-128-10, batch 64), {label}")
    print(f"{'':14} {'train step us':>14} {'opt.step us':>12}")
    for k in runs:
        print(f"{k:14} {whole[k] * 1e6:14.1f} {step[k] * 1e6:12.1f}")
    print(f"torch fused / dlopt.torch: train step {whole['torch fused'] / whole['dlopt.torch']:.2f}x, "
          f"opt.step {step['torch fused'] / step['dlopt.torch']:.2f}x")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", nargs="*", type=float, default=[5e7, 2e8])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--min-time", type=float, default=2.0, help="seconds per MLP measurement")
    parser.add_argument("--mlp-threads", nargs="*", type=int, default=[1, 0],
                        help="thread counts for the MLP (0: each library's default)")
    parser.add_argument("--worker", nargs=3, help=argparse.SUPPRESS)
    parser.add_argument("--mlp-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker[0], float(args.worker[1]), int(args.worker[2]))
        return
    if args.mlp_only:
        mlp(args.min_time, args.mlp_threads[0])
        return
    if args.sizes:
        offload(args.sizes, args.rounds, args.steps)
    for threads in args.mlp_threads:  # each in a fresh process: thread pools keep their first size
        subprocess.run([sys.executable, __file__, "--sizes", "--mlp-threads", str(threads), "--min-time",
                        str(args.min_time), "--mlp-only"], check=True)


if __name__ == "__main__":
    main()
