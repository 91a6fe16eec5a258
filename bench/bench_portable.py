#!/usr/bin/env python
"""A portable build (the default: kernels for several x86-64 levels, picked when the library loads)
against a native one (``-DDLOPT_NATIVE=ON``: everything compiled for this machine), side by side.

Runs the two builds' ``dlopt-bench`` alternately, ``--rounds`` times each, keeps every case's best time
and prints portable / native (1.00: as fast; < 1.05 is issue 17's target). Build both first:

    cmake -S . -B build/native -DDLOPT_NATIVE=ON -DDLOPT_BUILD_PYTHON=OFF && cmake --build build/native
    cmake -S . -B build/portable -DDLOPT_BUILD_PYTHON=OFF && cmake --build build/portable
    python bench/bench_portable.py --native build/native/bench/dlopt-bench \\
        --portable build/portable/bench/dlopt-bench
"""

from __future__ import annotations

import argparse
import json
import subprocess

DEFAULT_OPTIMIZERS = "adam,adamw,sgd:momentum=0.9,adagrad,rmsprop,nadam,lion,lamb,rprop,adopt,ademamix,adafactor"


def run(binary: str, args: list[str]) -> dict[tuple[str, str, str, int], float]:
    """Best seconds per (kind, name, dtype, size) of one dlopt-bench run."""
    out = subprocess.run([binary, *args, "--json", "-"], check=True, capture_output=True, text=True).stdout
    records = json.loads(out[out.index("{"):])["records"]
    return {(r["kind"], r["name"], r["dtype"], r["size"]): r["seconds"] for r in records if r["kind"] != "roofline"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--native", required=True, help="dlopt-bench of a DLOPT_NATIVE=ON build")
    parser.add_argument("--portable", required=True, help="dlopt-bench of a portable build")
    parser.add_argument("--optimizers", default=DEFAULT_OPTIMIZERS)
    parser.add_argument("--sizes", default="1e5,5e7")
    parser.add_argument("--linear-rows", default="200000")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--cpu-time", action="store_true",
                        help="time the linear model in CPU time (with OMP_NUM_THREADS=1: a loaded machine "
                             "slows it less)")
    args = parser.parse_args()
    bench_args = ["--optimizers", args.optimizers, "--sizes", args.sizes, "--dtypes", "float32",
                  "--linear-rows", args.linear_rows, "--min-time", "0.3"] + (["--cpu-time"] if args.cpu_time else [])
    best: dict[str, dict] = {"native": {}, "portable": {}}
    for _ in range(args.rounds):
        for which in ("native", "portable"):  # alternating: a noisy neighbour slows both alike
            for key, seconds in run(getattr(args, which), bench_args).items():
                best[which][key] = min(seconds, best[which].get(key, float("inf")))
    print(f"{'case':<34}{'native ms':>11}{'portable ms':>13}{'portable/native':>17}")
    for key in sorted(best["native"], key=lambda k: (k[0], k[1], k[3])):
        if key not in best["portable"]:
            continue
        kind, name, dtype, size = key
        n, p = best["native"][key] * 1e3, best["portable"][key] * 1e3
        print(f"{f'{kind} {name} {dtype} {size:g}':<34}{n:>11.3f}{p:>13.3f}{p / n:>17.2f}")


if __name__ == "__main__":
    main()
