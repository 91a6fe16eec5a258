"""`mpirun -n N dlopt fit data.csv --target y --distributed`: each rank trains on its share of the
rows, only rank 0 prints and saves, and the model equals the single-process fit (full batch)."""

import os
import tempfile

import numpy as np
import pytest

from mpi_helpers import assert_all, world

pytestmark = pytest.mark.filterwarnings("ignore:.*stopped at the epoch limit")


def test_fit_distributed_equals_single_process(capsys):
    from dlopt import cli

    w = world()
    rank = w.Get_rank()
    folder = w.bcast(tempfile.mkdtemp() if rank == 0 else None)
    data = os.path.join(folder, "data.csv")
    if rank == 0:
        rng = np.random.default_rng(0)
        X = rng.standard_normal((203, 3))
        y = X @ np.array([1.0, -2.0, 0.5]) + 1.0 + 0.1 * rng.standard_normal(203)
        with open(data, "w") as f:
            f.write("a,b,c,y\n")
            for row, t in zip(X, y):
                f.write(",".join(f"{v:.17g}" for v in row) + f",{t:.17g}\n")
    w.Barrier()
    args = ["fit", data, "--target", "y", "--epochs", "40", "--lr", "0.05", "--quiet"]
    dist_model = os.path.join(folder, "dist.npz")
    status = cli.main(args + ["--distributed", "--save", dist_model])
    out = capsys.readouterr().out
    assert_all(w, status == 0, "exit status 0 on every rank")
    if rank == 0:
        ok = f"on {w.Get_size()} MPI ranks" in out and "saved the model" in out
    else:
        ok = out == ""
    assert_all(w, ok, f"only rank 0 prints: {out!r}")
    single_model = os.path.join(folder, f"single{rank}.npz")
    assert cli.main(args + ["--save", single_model]) == 0
    capsys.readouterr()
    a, b = np.load(dist_model), np.load(single_model)
    err = np.max(np.abs(a["coef"] - b["coef"])) / np.max(np.abs(b["coef"]))
    assert_all(w, err <= 1e-12, f"distributed vs single-process coefficients: {err:.2e}")
