"""``dlopt fit --distributed``: every rank reads only its share of the data file's rows.

A rank holds the header, its own rows (features and target) and the target column of every row (one
value per row, all-gathered). From the targets every rank computes the task, the classes and the
train / held-out split exactly as a single-process run does, so both hold out the same rows. The
features never leave their rank: the standardization's means and deviations are sums over the
ranks' training rows added in rank order, and rank 0 computes the metrics from the ranks' predictions.

How a file is cut between N ranks:

- CSV: the bytes after the header, into N equal ranges; a line belongs to the rank whose range holds
  its first byte (the rule of Hadoop's and Dask's text readers), so no rank parses another's lines
  and error messages give the file's line numbers. A quoted field holding a line break cannot be cut
  this way and is refused, with its line number.
- .npy: memory-mapped; rank r reads rows [n*r/N, n*(r+1)/N).
- .npz: a compressed member cannot be read in part: every rank reads the arrays, then keeps its rows.

Every error is agreed: found on one rank, it stops every rank with the same message, never leaving a
rank waiting in a collective the others skipped.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any, Callable

import numpy as np

from .cli import (DataError, Table, _matrix_table, check_finite_target, csv_body, csv_header,
                  numeric_target, read_table)
from .distributed._comm import allreduce_sum_


def agreed(comm: Any, fn: Callable[[], Any], root_only: bool = False) -> Any:
    """``fn()`` on every rank (on rank 0 alone with ``root_only``); a DataError raised on any rank is
    raised on all of them (the lowest rank's message)."""
    result, error = None, None
    if not root_only or comm.Get_rank() == 0:
        try:
            result = fn()
        except DataError as e:
            error = str(e)
    errors = [e for e in comm.allgather(error) if e is not None]
    if errors:
        raise DataError(errors[0])
    return result


def read_share(path: str | Path, target: str | None, comm: Any) -> tuple[Table, int, np.ndarray]:
    """(this rank's rows, the index of its first row among the file's rows, every row's target)."""
    path = Path(path)
    size, rank = comm.Get_size(), comm.Get_rank()

    def whole_rows(n: int) -> slice:
        return slice(n * rank // size, n * (rank + 1) // size)

    def exists() -> None:
        if not path.exists():
            raise DataError(f"{path}: no such file")
        if path.is_dir():
            raise DataError(f"{path}: is a directory, expected a data file")

    agreed(comm, exists)
    suffix = path.suffix.lower()
    if suffix == ".npy":
        table = agreed(comm, lambda: _npy_share(path, target, whole_rows))
    elif suffix == ".npz":
        def npz_share() -> Table:
            t = read_table(path, target)
            rows = whole_rows(t.X.shape[0])
            return Table(np.ascontiguousarray(t.X[rows]), t.y[rows], t.feature_names, t.target_name)
        table = agreed(comm, npz_share)
    else:
        table = _csv_share(path, target, comm)
    counts = comm.allgather(table.X.shape[0])
    if sum(counts) == 0:
        raise DataError(f"{path}: no data rows after the header")
    y = np.concatenate(comm.allgather(table.y))
    return table, sum(counts[:rank]), y


def _npy_share(path: Path, target: str | None, whole_rows: Callable[[int], slice]) -> Table:
    try:
        A = np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError, EOFError) as e:
        raise DataError(f"{path}: cannot read: {str(e).splitlines()[0] if str(e) else type(e).__name__}") from None
    rows = whole_rows(A.shape[0]) if A.ndim == 2 else slice(None)
    return _matrix_table(path, np.asarray(A[rows]), target, True, first_row=rows.start or 0)


def _csv_share(path: Path, target: str | None, comm: Any) -> Table:
    size, rank = comm.Get_size(), comm.Get_rank()

    def read() -> tuple[list[str], int | None, list[str]]:
        with open(path, "rb") as f:
            first = f.readline()
            body = f.tell()
            end_of_file = f.seek(0, 2)
            begin = body + (end_of_file - body) * rank // size
            end = body + (end_of_file - body) * (rank + 1) // size
            f.seek(max(begin - 1, body))
            if begin > body:
                f.readline()  # the rest of a line that starts before this rank's range
            start = f.tell()
            data = f.read(end - start) if start < end else b""
            if data and not data.endswith(b"\n"):
                data += f.readline()  # the end of the last line starting in the range
        try:
            header_text, text = first.decode("utf-8-sig"), data.decode("utf-8")
        except UnicodeDecodeError:
            raise DataError(f"{path}: not a text CSV file") from None
        header_rows = list(csv.reader(io.StringIO(header_text, newline="")))
        if len(header_rows) > 1:
            raise DataError(f"{path}: lines end in a lone carriage return (\\r); --distributed splits the "
                            "file at line feeds (\\n or \\r\\n)")
        header, tcol = csv_header(header_rows[0] if header_rows else [], path, target, True)
        return header, tcol, io.StringIO(text, newline="").readlines()  # lines as csv.reader sees them

    header, tcol, lines = agreed(comm, read)
    first_line = 2 + sum(comm.allgather(len(lines))[:rank])
    X, labels, line_numbers = agreed(comm, lambda: csv_body(_records(lines, first_line, path), header, tcol, path))
    y = numeric_target(labels)
    if all(comm.allgather(y is not None)):  # numbers on every rank, as a single reader would decide
        agreed(comm, lambda: check_finite_target(y, line_numbers, path, target))
    else:
        y = np.array(labels, dtype=str)  # class labels
    return Table(X, y, [h for c, h in enumerate(header) if c != tcol], target)


def _records(lines: list[str], first_line: int, path: Path):
    """(line number, fields) of each line; a record that spans lines (a quoted line break) is an error."""
    reader = csv.reader(lines)
    done = 0
    try:
        for fields in reader:
            line = first_line + done
            # A quoted field that does not close on its line either takes the next line (line_num
            # jumps) or, on the rank's last line, ends in the line break it swallowed.
            if reader.line_num != done + 1 or (fields and fields[-1].endswith(("\n", "\r"))):
                raise DataError(f"{path}: line {line}: a quoted field holds a line break, which --distributed "
                                "cannot split between ranks; remove it, or run without --distributed")
            done = reader.line_num
            yield line, fields
    except csv.Error as e:
        raise DataError(f"{path}: line {first_line + reader.line_num - 1}: {e}") from None


def column_mean_std(X: np.ndarray, n: int, comm: Any) -> tuple[np.ndarray, np.ndarray]:
    """Mean and (population) standard deviation of each column over every rank's rows of X (n rows
    in all): two passes, each a sum added in rank order, so every rank gets the same bits."""
    mean = X.sum(axis=0)
    allreduce_sum_(comm, mean)
    mean /= n
    var = ((X - mean) ** 2).sum(axis=0)
    allreduce_sum_(comm, var)
    return mean, np.sqrt(var / n)


def gather_rows(comm: Any, a: np.ndarray | None) -> np.ndarray | None:
    """Every rank's rows of ``a`` on rank 0, in rank order (the file's row order); None elsewhere."""
    parts = comm.gather(a, root=0)
    return None if parts is None else np.concatenate(parts)
