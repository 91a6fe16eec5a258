#!/usr/bin/env python
"""dlopt side by side with torch.optim (for-loop, foreach, fused) and plain NumPy, for every optimizer.

Every implementation gets the same float32 parameters, gradients, hyperparameters and thread count,
and the implementations are timed *interleaved* (one batch of each in turn, best batch kept), so a
noisy neighbour slows them all alike. Ratios are peer time / dlopt time (> 1: dlopt is faster).

Cases: one tensor of each ``--sizes`` size; ``mlp``: the 24 tensors (~1.1M parameters) of a small
MLP; ``tiny``: 2 tensors of 1 element (per-call overhead).

    python bench/compare.py                                  # all optimizers, default cases
    python bench/compare.py --optimizers Adam,SGD --sizes 1e4,5e7 --cases mlp,tiny
    python bench/compare.py --plot gbps.png                  # GB/s vs size, roofline drawn in
    python bench/compare.py --cpp-check                      # C++ (dlopt-bench) vs Python at 5e7
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import time

import numpy as np

import dlopt
from dlopt import _bench

try:
    import torch
except ImportError:  # torch is a peer, not a dependency
    torch = None

# Hyperparameters used for every implementation (torch names); SGD is timed with momentum.
CONFIGS = {
    "SGD": dict(lr=1e-3, momentum=0.9),
    "Adam": dict(lr=1e-3),
    "AdamW": dict(lr=1e-3),
    "Adagrad": dict(lr=1e-2),
    "RMSprop": dict(lr=1e-2),
    "Adadelta": dict(lr=1.0),
    "Adamax": dict(lr=2e-3),
    "NAdam": dict(lr=2e-3),
    "RAdam": dict(lr=1e-3),
    "Lion": dict(lr=1e-4),
    "DynamicLR": dict(lr=1e-2, beta=1.0),
}
TORCH_FUSED = {"SGD", "Adam", "AdamW", "Adagrad"}  # torch 2.x has a fused CPU step for these
MLP_DIMS = [784, 640, 384, 256, 256, 256, 256, 128, 128, 128, 128, 64, 10]  # 24 tensors, ~1.13M


# ---- plain NumPy implementations (in place, one array op at a time) --------------------------------

def numpy_step(name, cfg):
    """A closure stepping lists of (p, g) the way a careful NumPy user would, with its own state."""
    state = {}

    def zeros(i, p, k, value=0.0):
        return state.setdefault((i, k), np.full_like(p, value))

    t = [0]

    def step(params, grads):
        t[0] += 1
        n = t[0]
        lr = cfg["lr"]
        for i, (p, g) in enumerate(zip(params, grads)):
            if name == "SGD":
                b = zeros(i, p, "b")
                if n == 1:
                    b[...] = g
                else:
                    b *= cfg["momentum"]; b += g
                p -= lr * b
            elif name in ("Adam", "AdamW", "NAdam", "RAdam"):
                b1, b2, eps = 0.9, 0.999, 1e-8
                if name == "AdamW":
                    p *= 1 - lr * 1e-2
                m, v = zeros(i, p, "m"), zeros(i, p, "v")
                m *= b1; m += (1 - b1) * g
                v *= b2; v += (1 - b2) * g * g
                bc1, bc2 = 1 - b1 ** n, 1 - b2 ** n
                if name == "NAdam":
                    mu = b1 * (1 - 0.5 * 0.96 ** (n * 4e-3))
                    mu1 = b1 * (1 - 0.5 * 0.96 ** ((n + 1) * 4e-3))
                    prod = state[(i, "mu")] = state.get((i, "mu"), 1.0) * mu
                    d = np.sqrt(v / bc2); d += eps
                    p -= lr * (1 - mu) / (1 - prod) * g / d
                    p -= lr * mu1 / (1 - prod * mu1) * m / d
                elif name == "RAdam":
                    rho_inf = 2 / (1 - b2) - 1
                    rho = rho_inf - 2 * n * b2 ** n / bc2
                    if rho > 5:
                        r = math.sqrt((rho - 4) * (rho - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho))
                        d = np.sqrt(v); d += eps
                        p -= (lr / bc1 * math.sqrt(bc2) * r) * m / d
                    else:
                        p -= lr / bc1 * m
                else:
                    d = np.sqrt(v); d /= math.sqrt(bc2); d += eps
                    p -= (lr / bc1) * m / d
            elif name == "Adagrad":
                s = zeros(i, p, "s")
                s += g * g
                d = np.sqrt(s); d += 1e-10
                p -= lr * g / d
            elif name == "RMSprop":
                v = zeros(i, p, "v")
                v *= 0.99; v += 0.01 * g * g
                d = np.sqrt(v); d += 1e-8
                p -= lr * g / d
            elif name == "Adadelta":
                v, u = zeros(i, p, "v"), zeros(i, p, "u")
                v *= 0.9; v += 0.1 * g * g
                delta = np.sqrt(u + 1e-6) / np.sqrt(v + 1e-6) * g
                u *= 0.9; u += 0.1 * delta * delta
                p -= lr * delta
            elif name == "Adamax":
                m, u = zeros(i, p, "m"), zeros(i, p, "u")
                m *= 0.9; m += 0.1 * g
                np.maximum(u * 0.999, np.abs(g) + 1e-8, out=u)
                p -= lr / (1 - 0.9 ** n) * m / u
            elif name == "Lion":
                m = zeros(i, p, "m")
                p -= lr * np.sign(0.9 * m + 0.1 * g)
                m *= 0.99; m += 0.01 * g
            elif name == "DynamicLR":
                p -= lr * g / (1 + cfg["beta"] * g * g)
    return step


# ---- timing -------------------------------------------------------------------------------------

def calibrate(f, target=2e-3):
    f()
    t0 = time.perf_counter(); f(); t = time.perf_counter() - t0
    iters = 1
    while t * iters < target and iters < 1 << 20:
        iters *= 2
    return iters


def interleaved(funcs, min_time):
    """Best seconds per call of each function, batches interleaved."""
    iters = {k: calibrate(f) for k, f in funcs.items()}
    best = {k: math.inf for k in funcs}
    start, rep = time.perf_counter(), 0
    while True:
        for k, f in funcs.items():
            n = iters[k]
            t0 = time.perf_counter()
            for _ in range(n):
                f()
            best[k] = min(best[k], (time.perf_counter() - t0) / n)
        rep += 1
        if (rep >= 3 and time.perf_counter() - start >= min_time) or rep >= 200:
            return best


# ---- one case -------------------------------------------------------------------------------------

def shapes_of(case):
    if case == "mlp":
        out = []
        for a, b in zip(MLP_DIMS[:-1], MLP_DIMS[1:]):
            out += [(b, a), (b,)]
        return out
    if case == "tiny":
        return [(1,), (1,)]
    return [(int(float(case)),)]


def run_case(name, case, min_time, impls):
    rng = np.random.default_rng(0)
    shapes = shapes_of(case)
    init = [rng.standard_normal(s).astype(np.float32) for s in shapes]
    grads = [(1e-2 * rng.standard_normal(s)).astype(np.float32) for s in shapes]
    cfg = CONFIGS[name]
    funcs = {}

    params = [p.copy() for p in init]
    opt = getattr(dlopt.optim, name)(params, **cfg)
    funcs["dlopt"] = lambda: opt.step(grads)

    if torch is not None and hasattr(torch.optim, name):
        for variant in ("fused", "foreach", "for-loop"):
            if variant not in impls or (variant == "fused" and name not in TORCH_FUSED):
                continue
            kw = {"fused": dict(fused=True), "foreach": dict(foreach=True),
                  "for-loop": dict(foreach=False)}[variant]
            tp = [torch.from_numpy(p.copy()) for p in init]
            for t, g in zip(tp, grads):
                t.grad = torch.from_numpy(g)
            topt = getattr(torch.optim, name)(tp, **cfg, **kw)
            funcs[f"torch {variant}"] = topt.step
    if "numpy" in impls:
        nparams = [p.copy() for p in init]
        nstep = numpy_step(name, cfg)
        funcs["numpy"] = lambda: nstep(nparams, grads)

    best = interleaved(funcs, min_time)
    n = sum(int(np.prod(s)) for s in shapes)
    slots = sum(isinstance(v, np.ndarray) for v in opt.state[0].values())
    bytes_per_step = 4 * n * (1 + 2 * (1 + slots))
    return n, bytes_per_step, best


def roofline_from_bench(sizes, threads):
    """In-place-update GB/s per size from dlopt-bench (None if the binary is not there)."""
    exe = _bench.executable()
    if exe is None:
        return None
    cmd = [exe, "--sizes", ",".join(str(s) for s in sizes), "--optimizers", "sgd",
           "--dtypes", "float32", "--json", "-", "--min-time", "0.2"]
    if threads:
        cmd += ["--threads", str(threads)]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    data = json.loads(out[out.index('{"version"'):])
    return {r["size"]: r["gbps"] for r in data["records"] if r["kind"] == "roofline" and r["name"] == "update"}


def cpp_check(threads, min_time, rounds=3):
    """Adam float32 at 5e7 from C++ (dlopt-bench) and from Python, alternating; best of each."""
    exe = _bench.executable()
    if exe is None:
        print("cpp-check: dlopt-bench not found")
        return
    n = 50_000_000
    cmd = [exe, "--sizes", str(n), "--optimizers", "adam", "--dtypes", "float32", "--json", "-",
           "--min-time", str(min_time)]
    if threads:
        cmd += ["--threads", str(threads)]
    rng = np.random.default_rng(0)
    p = rng.standard_normal(n).astype(np.float32)
    g = (1e-2 * rng.standard_normal(n)).astype(np.float32)
    opt = dlopt.optim.Adam([p])
    cpp, py = math.inf, math.inf
    for _ in range(rounds):
        out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
        data = json.loads(out[out.index('{"version"'):])
        cpp = min(cpp, next(r["seconds"] for r in data["records"] if r["kind"] == "step"))
        py = min(py, interleaved({"py": lambda: opt.step([g])}, min_time)["py"])
    print(f"\nAdam float32, 5e7 parameters: C++ {cpp * 1e3:.2f} ms, Python {py * 1e3:.2f} ms, "
          f"Python/C++ = {py / cpp:.3f}")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--optimizers", default=",".join(CONFIGS))
    ap.add_argument("--sizes", default="1e3,1e5,1e6,1e7,5e7")
    ap.add_argument("--cases", default="mlp,tiny", help="extra cases: mlp, tiny (comma list, or '')")
    ap.add_argument("--impls", default="fused,foreach,for-loop,numpy")
    ap.add_argument("--threads", type=int, default=0, help="threads for dlopt and torch (default: all)")
    ap.add_argument("--min-time", type=float, default=0.5, help="seconds per row, at least")
    ap.add_argument("--plot", metavar="PNG", help="write GB/s vs size (needs matplotlib)")
    ap.add_argument("--json", metavar="PATH", help="write every timing as JSON")
    ap.add_argument("--cpp-check", action="store_true", help="C++ vs Python step time at 5e7")
    args = ap.parse_args(argv)

    if args.threads:
        dlopt.set_num_threads(args.threads)
        if torch is not None:
            torch.set_num_threads(args.threads)
    names = [n for n in args.optimizers.split(",") if n]
    sizes = [int(float(s)) for s in args.sizes.split(",") if s]
    cases = [str(s) for s in sizes] + [c for c in args.cases.split(",") if c]
    impls = set(args.impls.split(","))
    print(f"dlopt {dlopt.__version__}, torch {torch.__version__ if torch else 'absent'}, "
          f"numpy {np.__version__}, threads: dlopt {dlopt.get_num_threads()}"
          f"{', torch %d' % torch.get_num_threads() if torch else ''}")
    print("times per step; ratio = peer time / dlopt time (> 1: dlopt faster); GB/s = ideal bytes / dlopt time\n")

    roof = roofline_from_bench(sizes, args.threads) if sizes else None
    cols = ["dlopt", "torch fused", "torch foreach", "torch for-loop", "numpy"]
    header = f"{'optimizer':<10} {'case':>9} {'params':>9} " + " ".join(f"{c:>16}" for c in cols) + f" {'GB/s':>7} {'%roof':>6}"
    print(header)
    print("-" * len(header))
    results = []
    for name in names:
        for case in cases:
            n, nbytes, best = run_case(name, case, args.min_time, impls)
            base = best["dlopt"]
            cells = []
            for c in cols:
                if c not in best:
                    cells.append(f"{'-':>16}")
                elif c == "dlopt":
                    cells.append(f"{fmt_time(base):>16}")
                else:
                    cells.append(f"{fmt_time(best[c]) + ' ' + format(best[c] / base, '.2f') + 'x':>16}")
            gbps = nbytes / base / 1e9
            pct = f"{100 * gbps / roof[n]:5.0f}%" if roof and case not in ("mlp", "tiny") and n in roof else "     -"
            print(f"{name:<10} {case:>9} {n:>9} " + " ".join(cells) + f" {gbps:7.1f} {pct}")
            sys.stdout.flush()
            results.append(dict(optimizer=name, case=case, params=n, bytes=nbytes, seconds=best))

    if args.cpp_check:
        cpp_check(args.threads, args.min_time)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(dict(roofline_update_gbps=roof, results=results), f, indent=1)
    if args.plot:
        plot(results, roof, sizes, args.plot)


def fmt_time(s):
    return f"{s * 1e6:.1f}us" if s < 1e-3 else f"{s * 1e3:.2f}ms"


def plot(results, roof, sizes, path):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("--plot needs matplotlib (pip install matplotlib)")
        return
    names = sorted({r["optimizer"] for r in results}, key=list(CONFIGS).index)
    cols = 3
    rows = math.ceil(len(names) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(5 * cols, 3.6 * rows), squeeze=False)
    for ax, name in zip(axes.flat, names):
        rs = [r for r in results if r["optimizer"] == name and r["case"] not in ("mlp", "tiny")]
        impls = sorted({k for r in rs for k in r["seconds"]})
        for impl in impls:
            pts = [(r["params"], r["bytes"] / r["seconds"][impl] / 1e9) for r in rs if impl in r["seconds"]]
            ax.plot(*zip(*pts), marker="o", label=impl, lw=2 if impl == "dlopt" else 1)
        if roof:
            ax.plot(sorted(roof), [roof[s] for s in sorted(roof)], "k--", label="roofline (in-place update)")
        ax.set_xscale("log")
        ax.set_title(name)
        ax.set_xlabel("parameters")
        ax.set_ylabel("GB/s (ideal bytes / time)")
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(names):]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
