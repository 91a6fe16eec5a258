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


def _shared_folder(w):
    return w.bcast(tempfile.mkdtemp() if w.Get_rank() == 0 else None)


def _write(w, path, text: bytes):
    if w.Get_rank() == 0:
        with open(path, "wb") as f:
            f.write(text)
    w.Barrier()


@pytest.mark.parametrize("newline", [b"\n", b"\r\n"])
def test_read_share_parses_only_its_lines_and_together_the_whole_file(newline):
    """Each rank's rows are the lines starting in its byte range (blank lines skipped), in file order;
    together they are the single-process read, for every communicator size."""
    from dlopt._cli_distributed import read_share
    from dlopt.cli import read_table

    from mpi_helpers import sub_comms

    w = world()
    path = os.path.join(_shared_folder(w), "data.csv")
    rng = np.random.default_rng(1)
    lines = [b"\xef\xbb\xbfa, b ,y"]  # a byte-order mark and padded names, as Excel writes them
    for i in range(61):
        lines.append(b"" if i % 17 == 5 else b"%.*g,%d,%s" % (int(rng.integers(1, 17)), rng.standard_normal(),
                                                            i, [b"cat", b"dog", b"7"][i % 3]))
    text = newline.join(lines)  # no line break after the last line
    _write(w, path, text)
    whole = read_table(path, "y")
    body = len(lines[0]) + len(newline)
    for size, comm in sub_comms():
        if comm is None:
            continue
        table, first, y = read_share(path, "y", comm)
        rank, rows = comm.Get_rank(), table.X.shape[0]
        ok = (np.array_equal(table.X, whole.X[first:first + rows]) and np.array_equal(y, whole.y)
              and y.dtype.kind == "U" and table.feature_names == ["a", "b"])
        assert_all(comm, ok, f"size {size}: rank {rank}'s rows are not the file's rows {first}..{first + rows}")
        # Its rows are the non-blank lines whose first byte lies in its byte range, an independent count.
        span = len(text) - body
        starts = [s for s in range(body, len(text)) if text[s - 1:s] == b"\n"]
        mine = [s for s in starts if span * rank // size <= s - body < span * (rank + 1) // size]
        nonblank = [s for s in mine if text[s:s + 1] not in (b"\n", b"\r")]
        assert_all(comm, rows == len(nonblank), f"size {size}: rank {rank} parsed {rows} rows, "
                   f"{len(nonblank)} non-blank lines start in its range")
        assert_all(comm, sum(comm.allgather(rows)) == whole.X.shape[0], "the ranks' rows add up to the file's")


def test_errors_name_the_files_line_and_stop_every_rank(capsys):
    """A bad cell on the last rank's share, a quoted line break, too few rows: every rank exits 2 with
    the same one-line message (no rank left waiting)."""
    from dlopt import cli

    w = world()
    folder = _shared_folder(w)
    n = 40
    good = [b"a,b,y"] + [b"%d,%d,%d" % (i, i * i % 7, i % 2) for i in range(n)]
    cases = {
        "bad_cell": (good[:n] + [b"1,oops,0"], b"line %d, column 'b': cannot read 'oops'" % (n + 1)),
        "quoted_break": (good[:n // 2] + [b'1,2,"0', b'"'] + good[n // 2 + 2:],
                         b"a quoted field holds a line break"),
        "too_few": (good[:3], b"too few"),
    }
    for name, (lines, message) in cases.items():
        path = os.path.join(folder, f"{name}.csv")
        _write(w, path, b"\n".join(lines) + b"\n")
        capsys.readouterr()
        status = cli.main(["fit", path, "--target", "y", "--epochs", "2", "--quiet", "--distributed"])
        err = capsys.readouterr().err
        assert_all(w, status == 2 and message.decode() in err and err.count("\n") == 1,
                   f"{name}: status {status}, stderr {err!r}")


def test_fit_distributed_classification_and_npy(capsys):
    """Labels that look numeric on one rank's share stay labels; a .npy file is split by rows; both
    runs equal the single-process run: the same held-out rows, the same metrics table."""
    from dlopt import cli

    w = world()
    folder = _shared_folder(w)
    rng = np.random.default_rng(2)
    X = rng.standard_normal((150, 2))
    labels = np.where(X[:, 0] + 0.5 * X[:, 1] > 0, "yes", "1")
    csv_path, npy_path = os.path.join(folder, "labels.csv"), os.path.join(folder, "data.npy")
    order = np.argsort(labels == "yes", kind="stable")  # the "1" rows first: rank 0 sees only numbers
    text = "x0,x1,label\n" + "".join(f"{a:.17g},{b:.17g},{t}\n" for (a, b), t in zip(X[order], labels[order]))
    _write(w, csv_path, text.encode())
    if w.Get_rank() == 0:
        np.save(npy_path, np.column_stack([X, X @ np.array([2.0, -1.0]) + 0.5 + rng.standard_normal(150)]))
    w.Barrier()
    # Plain gradient descent: Adam would turn the rounding of a near-zero gradient (the intercept of
    # centered data) into steps of up to lr * |g| / (|g| + eps), different for each summation order.
    for args in (["fit", csv_path, "--target", "label", "--epochs", "30", "--lr", "0.5", "--optimizer", "sgd"],
                 ["fit", npy_path, "--target", "2", "--epochs", "30", "--lr", "0.5", "--optimizer", "sgd"]):
        capsys.readouterr()
        status = cli.main(args + ["--quiet", "--distributed"])
        dist, err = capsys.readouterr()
        single_status = cli.main(args + ["--quiet"])
        single = capsys.readouterr().out

        def table(out):  # (metric names, train and held-out values)
            rows = [r.split() for r in out.splitlines()[3:]]
            return [" ".join(r[:-2]) for r in rows], np.array([[float(v) for v in r[-2:]] for r in rows])

        if w.Get_rank() == 0:
            (names, values), (single_names, single_values) = table(dist), table(single)
            ok = (names == single_names and np.allclose(values, single_values, rtol=1e-9, atol=0)
                  and dist.splitlines()[0] == single.splitlines()[0])
        else:
            ok = dist == ""
        assert_all(w, status == single_status == 0 and ok, f"{args[1]}: {dist!r} ({err!r}) vs {single!r}")
