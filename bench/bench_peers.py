#!/usr/bin/env python
"""The optimizers torch.optim's fused path does not cover, side by side with the packages people
use them from, in one run: torch.optim's Rprop and ASGD (foreach), the schedulefree package, and
pytorch-optimizer's Lamb, LARS, ADOPT and AdEMAMix (foreach where they have it).

Each implementation steps its own copy of the same float32 parameters with the same gradients;
they are timed interleaved (bench/compare.py), best batch kept. Ratio = peer time / dlopt time
(> 1: dlopt is faster). GB/s counts the bytes a step must move (parameter read + write, gradient
read, each state buffer read + write, and the reduction pass's reads for LAMB and LARS); %roof
compares it with dlopt-bench's in-place-update bandwidth measured in the same run.

    python bench/bench_peers.py                    # 5e7 parameters (two tensors), every pair
    python bench/bench_peers.py --size 1e7 --only ADOPT,LARS
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

import dlopt

sys.path.insert(0, str(Path(__file__).resolve().parent))
from compare import interleaved, roofline_from_bench  # noqa: E402

try:
    import torch
except ImportError:
    sys.exit("bench_peers.py compares with torch-based packages: pip install torch schedulefree pytorch-optimizer")


def _peer(module, cls):
    def make(params, **kw):
        mod = __import__(module)
        return getattr(mod, cls)(params, **kw)
    return make


# dlopt name -> (peer label, peer constructor, peer keywords, dlopt keywords, extra bytes per element
# of a reduction pass, the issue's target ratio)
PAIRS = {
    "Rprop": ("torch.optim.Rprop", lambda ps, **kw: torch.optim.Rprop(ps, **kw), dict(foreach=True), {}, 0, 10.0),
    "ASGD": ("torch.optim.ASGD", lambda ps, **kw: torch.optim.ASGD(ps, **kw), dict(foreach=True), {}, 0, 1.0),
    "ScheduleFreeAdamW": ("schedulefree.AdamWScheduleFree", _peer("schedulefree", "AdamWScheduleFree"),
                          dict(foreach=True), {}, 0, 5.0),
    "ScheduleFreeSGD": ("schedulefree.SGDScheduleFree", _peer("schedulefree", "SGDScheduleFree"),
                        dict(foreach=True), {}, 0, None),
    "LAMB": ("pytorch_optimizer.Lamb", _peer("pytorch_optimizer", "Lamb"), dict(foreach=True), {}, 16, 3.0),
    "LARS": ("pytorch_optimizer.LARS", _peer("pytorch_optimizer", "LARS"), dict(foreach=True),
             dict(exclude_1d=True), 8, None),
    "ADOPT": ("pytorch_optimizer.ADOPT", _peer("pytorch_optimizer", "ADOPT"), dict(foreach=True), {}, 0, 4.0),
    "AdEMAMix": ("pytorch_optimizer.AdEMAMix", _peer("pytorch_optimizer", "AdEMAMix"), dict(foreach=True),
                 dict(alpha=5.0), 0, 4.0),
    # whole-tensor rule: the issue's case is one 4096 x 4096 matrix (--adafactor-shape); bytes are
    # its three passes' (read p and g; read g; read g and p, write p)
    "Adafactor": ("torch.optim.Adafactor", lambda ps, **kw: torch.optim.Adafactor(ps, **kw), {}, {}, 8, 10.0),
}
PASSES_BYTES = {"Adafactor": 4 + 4 + 4 + 4 + 8}  # instead of 12 + 8 * slots: its state is per row/column


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=float, default=5e7, help="parameters in total (default 5e7)")
    ap.add_argument("--only", default="", help="comma-separated dlopt names (default: all)")
    ap.add_argument("--min-time", type=float, default=1.0, help="seconds of timing per pair")
    ap.add_argument("--threads", type=int, default=0, help="threads for both sides (default: all)")
    ap.add_argument("--adafactor-shape", default="4096x4096", help="Adafactor's matrix (default 4096x4096)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
        dlopt.set_num_threads(args.threads)
    rng = np.random.default_rng(0)

    def case(shapes):
        init = [rng.standard_normal(s).astype(np.float32) for s in shapes]
        return init, [(1e-2 * rng.standard_normal(s)).astype(np.float32) for s in shapes], sum(p.size for p in init)

    n = int(args.size)
    init0, grads0, n0 = case([(n // 2 // 1000, 1000), (n - n // 2 // 1000 * 1000,)])  # a matrix and a vector
    names = [x for x in args.only.split(",") if x] or list(PAIRS)
    cases = {}
    if "Adafactor" in names:
        cases["Adafactor"] = case([tuple(int(x) for x in args.adafactor_shape.split("x"))])
    roof = roofline_from_bench([n], args.threads)
    roof_gbps = roof.get(n) if roof else None
    print(f"{n:.0e} float32 parameters, {torch.get_num_threads()} threads; ratio = peer / dlopt"
          + (f"; roof {roof_gbps:.1f} GB/s (dlopt-bench update)" if roof_gbps else ""))
    print(f"{'optimizer':<18} {'dlopt ms':>9} {'GB/s':>6} {'%roof':>6}  {'peer':<32} {'peer ms':>9} {'ratio':>6} {'target':>6}")
    for name in names:
        label, make_peer, peer_kw, mine_kw, reduce_bytes, target = PAIRS[name]
        init, grads, n = cases.get(name, (init0, grads0, n0))
        params = [p.copy() for p in init]
        opt = getattr(dlopt.optim, name)(params, **mine_kw)
        opt.step(grads)
        slots = sum(1 for k, v in opt.state[0].items() if isinstance(v, np.ndarray))
        per_element = PASSES_BYTES.get(name, 12 + 8 * slots + reduce_bytes)
        funcs = {"dlopt": lambda: opt.step(grads)}
        try:
            tensors = [torch.from_numpy(p.copy()) for p in init]
            for t, g in zip(tensors, grads):
                t.grad = torch.from_numpy(g)
            peer = make_peer(tensors, **peer_kw)
            if hasattr(peer, "train"):
                peer.train()
            funcs["peer"] = peer.step
        except ImportError as e:
            print(f"{name:<18} peer unavailable: {e}")
            continue
        best = interleaved(funcs, args.min_time)
        gbps = per_element * n / best["dlopt"] / 1e9
        pct = f"{100 * gbps / roof_gbps:5.0f}%" if roof_gbps else "   n/a"
        ratio = best["peer"] / best["dlopt"]
        print(f"{name:<18} {1e3 * best['dlopt']:9.1f} {gbps:6.1f} {pct:>6}  {label:<32} {1e3 * best['peer']:9.1f} "
              f"{ratio:6.2f} {('≥' + format(target, 'g')) if target else '':>6}")
        if name in cases:
            print(f"{'':<18} ({n:.3g} parameters: {args.adafactor_shape})")
        del opt, params, funcs, peer, tensors


if __name__ == "__main__":
    main()
