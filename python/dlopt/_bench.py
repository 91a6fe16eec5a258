"""The ``dlopt-bench`` console command: runs the C++ benchmark binary shipped inside the wheel."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path


def executable() -> str | None:
    """Path of the dlopt-bench binary: the wheel's copy, else one on PATH (a CMake install)."""
    here = Path(__file__).resolve().parent / "bin" / ("dlopt-bench.exe" if os.name == "nt" else "dlopt-bench")
    if here.is_file():
        return str(here)
    found = shutil.which("dlopt-bench")
    # On PATH may be this very entry point; only a compiled binary will do.
    if found and Path(found).resolve() != Path(sys.argv[0]).resolve():
        with open(found, "rb") as f:
            if f.read(2) != b"#!":
                return found
    return None


def main() -> None:
    exe = executable()
    if exe is None:
        sys.exit("dlopt-bench: the benchmark binary is not installed "
                 "(build with -DDLOPT_BUILD_BENCH=ON)")
    os.execv(exe, [exe, *sys.argv[1:]])


if __name__ == "__main__":
    main()
