"""The ``dlopt`` command: the seed demo, training on a data file, and predictions from a saved model.

Usage::

    dlopt demo [--dataset diabetes|breast_cancer]
    dlopt fit DATA --target COL [--task ...] [--model ...] [--optimizer adam] [--lr ...] [--epochs N]
              [--batch-size B] [--test-size 0.2] [--save model.npz] [--plot loss.png] [--distributed]
    dlopt predict MODEL DATA [--out predictions.csv]
    dlopt --version;  dlopt COMMAND --help  (every option with its default)

Without ``--task`` the task is inferred from the target (see :func:`infer_task`) and printed; a target
that could be either (3 to 20 distinct integers) stops with a request for ``--task``. Output paths are
checked before training; user errors print one ``dlopt: error:`` line, never a traceback.

DATA is a CSV file with a header row, a ``.npy`` 2-D array (``--target`` is then a column index) or a
``.npz`` file holding ``X`` and ``y`` (or one 2-D array). A bad file stops with a one-line message naming
the file, line and column, and exit status 2. Models are saved as plain ``.npz`` arrays, never pickles.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import math
import os
import sys
import warnings
import zipfile
import zlib
import time
from pathlib import Path

import numpy as np

__all__ = ["main"]

EXIT_BAD_INPUT = 2


class DataError(Exception):
    """A problem with an input file or argument: reported in one line, exit status 2."""


# ---- reading data -------------------------------------------------------------------------------

class Table:
    """Columns read from a file: numeric matrix of features, target column (numbers or labels)."""

    def __init__(self, X, y, feature_names, target_name):
        self.X, self.y, self.feature_names, self.target_name = X, y, feature_names, target_name


def _number(text: str, path, line: int, column: str):
    try:
        value = float(text)
    except ValueError:
        raise DataError(f"{path}: line {line}, column '{column}': cannot read {text!r} as a number") from None
    if not math.isfinite(value):
        raise DataError(f"{path}: line {line}, column '{column}': {text!r} is not a finite number "
                        "(NaN and infinities are not allowed)")
    return value


def _read_csv(path: Path, target: str | None, need_target: bool) -> Table:
    # utf-8-sig: a byte-order mark (Excel writes one) is not part of the first column's name.
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            reader = csv.reader(f)
            try:
                rows = list(reader)
            except csv.Error as e:  # e.g. a field over csv.field_size_limit() (131,072) characters
                raise DataError(f"{path}: line {reader.line_num}: {e}") from None
    except UnicodeDecodeError:
        raise DataError(f"{path}: not a text CSV file") from None
    header, tcol = csv_header(rows[0] if rows else [], path, target, need_target)
    X, labels, lines = csv_body(((i + 2, r) for i, r in enumerate(rows[1:])), header, tcol, path)
    if not lines:
        raise DataError(f"{path}: no data rows after the header")
    y = None
    if tcol is not None:
        y = numeric_target(labels)
        if y is None:
            y = np.array(labels)  # class labels
        else:
            check_finite_target(y, lines, path, target)
    return Table(X, y, [h for c, h in enumerate(header) if c != tcol], target)


def csv_header(row: list[str], path, target: str | None, need_target: bool) -> tuple[list[str], int | None]:
    """The column names of a CSV header row and the target's column (None without a target)."""
    if not any(cell.strip() for cell in row):
        raise DataError(f"{path}: line 1: empty file, expected a header row")
    header = [h.strip() for h in row]
    if target is not None and target not in header:
        raise DataError(f"{path}: line 1: no column '{target}' (columns: {', '.join(header)})")
    if need_target and target is None:
        raise DataError(f"{path}: --target is required")
    return header, header.index(target) if target is not None else None


def csv_body(records, header: list[str], tcol: int | None, path) -> tuple[np.ndarray, list[str], list[int]]:
    """(features, target cells, line numbers) of CSV records given as (line number, fields) pairs;
    blank lines are skipped."""
    body = [(line, r) for line, r in records if any(c.strip() for c in r)]
    X = np.empty((len(body), len(header) - (tcol is not None)), dtype=np.float64)
    labels = []
    for k, (line, r) in enumerate(body):
        if len(r) != len(header):
            raise DataError(f"{path}: line {line}: {len(r)} fields, expected {len(header)} (ragged row)")
        j = 0
        for c, cell in enumerate(r):
            cell = cell.strip()
            if c == tcol:
                if cell == "" or cell.lower() in ("nan", "na", "null"):
                    raise DataError(f"{path}: line {line}, column '{header[c]}': missing target value")
                labels.append(cell)
                continue
            if cell == "":
                raise DataError(f"{path}: line {line}, column '{header[c]}': missing value")
            X[k, j] = _number(cell, path, line, header[c])
            j += 1
    return X, labels, [line for line, _ in body]


def numeric_target(labels: list[str]) -> np.ndarray | None:
    """The target cells as float64 numbers, or None when one of them is not a number (class labels)."""
    try:
        return np.array([float(v) for v in labels], dtype=np.float64)
    except ValueError:
        return None


def check_finite_target(y: np.ndarray, lines: list[int], path, target: str | None) -> None:
    bad = np.flatnonzero(~np.isfinite(y))
    if bad.size:
        raise DataError(f"{path}: line {lines[bad[0]]}, column '{target}': not a finite number")


def _matrix_table(path: Path, A: np.ndarray, target: str | None, need_target: bool, y=None,
                  first_row: int = 0) -> Table:
    """A Table of a 2-D array's rows (``first_row``: the first one's row number in the file)."""
    if A.ndim != 2 or A.dtype.kind not in "biuf":
        raise DataError(f"{path}: expected a 2-D numeric array, got shape {A.shape} and dtype {A.dtype}")
    A = A.astype(np.float64)
    bad = np.argwhere(~np.isfinite(A))
    if bad.size:
        raise DataError(f"{path}: row {first_row + bad[0][0]}, column {bad[0][1]}: NaN or infinity")
    if y is not None:
        return Table(np.ascontiguousarray(A), y, [f"x{j}" for j in range(A.shape[1])], "y")
    if target is None:
        if need_target:
            raise DataError(f"{path}: --target is required (a column index for .npy data)")
        return Table(np.ascontiguousarray(A), None, [f"x{j}" for j in range(A.shape[1])], None)
    try:
        col = int(target)
        col = range(A.shape[1])[col]
    except (ValueError, IndexError):
        raise DataError(f"{path}: --target {target!r} is not a column index of an array with "
                        f"{A.shape[1]} columns") from None
    X = np.ascontiguousarray(np.delete(A, col, axis=1))
    return Table(X, A[:, col].copy(), [f"x{j}" for j in range(A.shape[1]) if j != col], f"x{col}")


def read_table(path: str | Path, target: str | None, need_target: bool = True) -> Table:
    """Reads CSV / .npy / .npz data, raising DataError with file, line/row and column on any problem."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: no such file")
    if path.is_dir():
        raise DataError(f"{path}: is a directory, expected a data file")
    suffix = path.suffix.lower()
    try:
        if suffix == ".npy":
            return _matrix_table(path, np.load(path, allow_pickle=False), target, need_target)
        if suffix == ".npz":
            with np.load(path, allow_pickle=False) as z:
                keys = list(z.keys())
                if "X" in keys:
                    X = z["X"]
                    y = z["y"] if "y" in keys else None
                    if X.ndim != 2:
                        raise DataError(f"{path}: X has shape {X.shape}, expected a 2-D array (rows, features)")
                    if y is not None and (y.ndim != 1 or y.shape[0] != X.shape[0]):
                        raise DataError(f"{path}: y has shape {y.shape}, expected ({X.shape[0]},)")
                    if y is not None and y.dtype.kind == "f" and not np.all(np.isfinite(y)):
                        raise DataError(f"{path}: row {int(np.flatnonzero(~np.isfinite(y))[0])}, y: NaN or infinity")
                    if need_target and y is None:
                        raise DataError(f"{path}: no array 'y' (the target) in the .npz file")
                    return _matrix_table(path, X, None, False, y=y)
                if len(keys) == 1:
                    return _matrix_table(path, z[keys[0]], target, need_target)
                raise DataError(f"{path}: expected arrays 'X' and 'y' (or a single 2-D array), found {keys}")
        return _read_csv(path, target, need_target)
    except DataError:
        raise
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error) as e:  # a truncated .npz, ...
        raise DataError(f"{path}: cannot read: {str(e).splitlines()[0] if str(e) else type(e).__name__}") from None


# ---- training -------------------------------------------------------------------------------------

def _progress(total: int, quiet: bool, stream=None):
    """A per-epoch callback showing (epoch, loss) on ``stream`` (standard error).

    On a terminal: a tqdm bar when tqdm is installed, else one status line rewritten in place (``\\r``).
    Otherwise (a log file, a pipe): a plain line about every 10% of the epochs, so logs stay readable.
    """
    stream = sys.stderr if stream is None else stream
    if quiet:
        return (lambda *a: None), (lambda: None)
    if not _is_terminal(stream):
        every = max(1, total // 10)

        def update_plain(epoch, loss):
            if epoch % every == 0 or epoch == total:
                stream.write(f"epoch {epoch}/{total}  loss {loss:.5g}\n")
                stream.flush()

        return update_plain, lambda: None
    try:
        from tqdm import tqdm

        bar = tqdm(total=total, desc="training", unit="epoch", file=stream, leave=False)

        def update(epoch, loss):
            bar.update(1)
            bar.set_postfix(loss=f"{loss:.5g}", refresh=False)

        return update, bar.close
    except ImportError:
        last = [0.0]

        def update_line(epoch, loss):
            now = time.perf_counter()
            if now - last[0] > 0.1 or epoch == total:
                last[0] = now
                stream.write(f"\rEpoch {epoch}/{total}  loss {loss:.5g}")
                stream.flush()

        return update_line, lambda: stream.write("\n")


def _is_terminal(stream) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False


def _metric_rows(task, classes, y, pred, proba=None):
    """(name, value) of the metrics of predictions ``pred`` (and class probabilities ``proba``) of ``y``."""
    from . import metrics

    if task == "regression":
        return [("MSE", metrics.mean_squared_error(y, pred)),
                ("RMSE", metrics.root_mean_squared_error(y, pred)),
                ("MAE", metrics.mean_absolute_error(y, pred)),
                ("R2", metrics.r2_score(y, pred))]
    binary = len(classes) == 2
    avg = "binary" if binary else "macro"
    pos = classes[1] if binary else 1
    return [("accuracy", metrics.accuracy_score(y, pred)),
            (f"precision ({avg})", metrics.precision_score(y, pred, average=avg, pos_label=pos)),
            (f"recall ({avg})", metrics.recall_score(y, pred, average=avg, pos_label=pos)),
            (f"F1 ({avg})", metrics.f1_score(y, pred, average=avg, pos_label=pos)),
            ("log loss", metrics.log_loss(y, proba, labels=classes))]


def _print_table(columns, rows):
    widths = [max(len(str(c)), 12) for c in columns]
    widths[0] = max(len(r[0]) for r in rows + [(columns[0],)])
    print("  ".join(str(c).ljust(w) if i == 0 else str(c).rjust(w) for i, (c, w) in enumerate(zip(columns, widths))))
    for r in rows:
        cells = [r[0].ljust(widths[0])] + [f"{v:.6g}".rjust(w) for v, w in zip(r[1:], widths[1:])]
        print("  ".join(cells))


class _Scaled:
    """A model applied to standardized features (and, for regression, a standardized target)."""

    def __init__(self, model, x_mean, x_scale, y_mean=0.0, y_scale=1.0):
        self.model, self.x_mean, self.x_scale, self.y_mean, self.y_scale = model, x_mean, x_scale, y_mean, y_scale
        self.classes_ = getattr(model, "classes_", None)

    def _x(self, X):
        return (X - self.x_mean) / self.x_scale

    def predict(self, X):
        p = self.model.predict(self._x(X))
        return p * self.y_scale + self.y_mean if self.classes_ is None else p

    def predict_proba(self, X):
        return self.model.predict_proba(self._x(X))


#: Integer targets with at most this many distinct values (and more than two) are ambiguous: class
#: labels or counts? ``dlopt fit`` then asks for ``--task`` instead of guessing.
MAX_AMBIGUOUS_CLASSES = 20


def infer_task(y: np.ndarray, target_name, model: str | None) -> tuple[str, str]:
    """The task for ``dlopt fit`` without ``--task``, and why; DataError when it cannot be told.

    - ``--model logistic|softmax`` means classification, ``--model linear`` regression;
    - a non-numeric target (labels) is classification;
    - a numeric target with a non-integer value is regression;
    - an integer target with two distinct values is classification;
    - an integer target with more than MAX_AMBIGUOUS_CLASSES distinct values is regression;
    - otherwise (3 to MAX_AMBIGUOUS_CLASSES distinct integers) it is ambiguous: pass ``--task``.
    """
    name = f"'{target_name}'" if target_name else "the target"
    if model in ("logistic", "softmax"):
        return "classification", f"--model {model}"
    if model == "linear":
        return "regression", "--model linear"
    if y.dtype.kind not in "biuf":
        return "classification", f"inferred: {name} holds labels; pass --task to choose"
    if np.any(y != np.round(y)):
        return "regression", f"inferred: {name} holds non-integer numbers; pass --task to choose"
    distinct = len(np.unique(y))
    if distinct <= 2:
        return "classification", f"inferred: {name} holds {distinct} distinct values; pass --task to choose"
    if distinct > MAX_AMBIGUOUS_CLASSES:
        return "regression", (f"inferred: {name} holds {distinct} distinct integers; "
                              "pass --task classification to treat them as classes")
    raise DataError(f"{name} holds {distinct} distinct integer values: class labels or numbers to predict? "
                    "Pass --task classification or --task regression")


def split_rows(labels, n: int, test_size: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train, test) row indices, a ``test_size`` fraction held out at random.

    With class ``labels`` the split is stratified: every class keeps the same share in both parts and at
    least one row in the training part, so no class is unknown to the model.
    """
    rng = np.random.default_rng(seed)
    if labels is None:
        order = rng.permutation(n)
        n_test = int(round(test_size * n))
        return np.sort(order[n_test:]), np.sort(order[:n_test])
    train, test = [], []
    for label in np.unique(labels):
        rows = rng.permutation(np.flatnonzero(labels == label))
        n_test = min(int(round(test_size * len(rows))), len(rows) - 1)
        test.append(rows[:n_test])
        train.append(rows[n_test:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(test))


def check_writable(path, option: str) -> None:
    """DataError unless ``path`` can be written as a file (checked before any work is done)."""
    path = Path(path)
    if path.is_dir():
        raise DataError(f"{option} {path}: is a directory, expected a file name")
    parent = path.parent
    if not parent.is_dir():
        raise DataError(f"{option} {path}: directory {parent} does not exist")
    if path.exists() and not os.access(path, os.W_OK):
        raise DataError(f"{option} {path}: file is not writable")
    if not path.exists() and not os.access(parent, os.W_OK):
        raise DataError(f"{option} {path}: directory {parent} is not writable")


def cmd_fit(args) -> int:
    if not getattr(args, "distributed", False):  # dlopt demo calls this with its own arguments
        return _fit(args, None)
    # mpirun -n N dlopt fit ... --distributed: every rank reads its share of the rows and trains on
    # its training rows (dlopt.distributed); only rank 0 prints, saves and plots.
    from .distributed import get_comm

    comm = get_comm(None)
    if comm.Get_rank() == 0:
        return _fit(args, comm)
    with open(os.devnull, "w") as devnull, contextlib.redirect_stdout(devnull):
        return _fit(args, comm)


def _fit(args, comm) -> int:
    """``dlopt fit``; with ``comm``, this rank's part of a data-parallel run (_cli_distributed)."""
    from . import linear_model as lm

    root = comm is None or comm.Get_rank() == 0
    for option, path in (("--save", args.save), ("--plot", args.plot)):
        if path:  # before training, so a bad path loses no work
            if comm is None:
                check_writable(path, option)
            else:
                from ._cli_distributed import agreed
                agreed(comm, lambda: check_writable(path, option), root_only=True)
    if comm is None:
        table = read_table(args.data, args.target)
        first, y = 0, table.y
    else:
        from ._cli_distributed import read_share
        table, first, y = read_share(args.data, args.target, comm)
    X = table.X  # this rank's rows (all of them without comm); y holds every row's target
    if X.shape[1] == 0:
        raise DataError(f"{args.data}: no feature columns besides the target '{table.target_name}'")
    task, reason = args.task, "--task"
    if task is None:
        task, reason = infer_task(y, table.target_name, args.model)
    if task == "regression" and y.dtype.kind != "f":
        raise DataError(f"{args.data}: column '{table.target_name}' is not numeric; use --task classification")
    model_name = args.model or ("linear" if task == "regression" else
                                "logistic" if len(np.unique(y)) == 2 else "softmax")
    if (task == "regression") != (model_name == "linear"):
        raise DataError(f"--model {model_name} does not fit --task {task}")
    if not 0 < args.test_size < 1:
        raise DataError(f"--test-size: expected a fraction in (0, 1), got {args.test_size}")
    n = len(y)
    train, test = split_rows(y if task == "classification" else None, n, args.test_size, args.seed)
    if len(test) < 1 or len(train) < 2:
        raise DataError(f"{args.data}: {n} rows are too few for --test-size {args.test_size}")
    own = train[(train >= first) & (train < first + len(X))]  # this rank's training rows
    if comm is not None:
        per_rank = comm.allgather(len(own))
        if min(per_rank) == 0:
            raise DataError(f"{args.data}: {len(train)} training rows are too few for {comm.Get_size()} MPI "
                            f"ranks (rank {per_rank.index(0)} has none)")
    Xtr = X[own - first]

    x_mean, x_scale = np.zeros(X.shape[1]), np.ones(X.shape[1])
    y_mean, y_scale = 0.0, 1.0
    if not args.no_standardize:
        if comm is None:
            x_mean, x_scale = Xtr.mean(axis=0), Xtr.std(axis=0)
        else:
            from ._cli_distributed import column_mean_std
            x_mean, x_scale = column_mean_std(Xtr, len(train), comm)
        x_scale[x_scale == 0] = 1.0
        if task == "regression":
            y_mean, y_scale = float(y[train].mean()), float(y[train].std() or 1.0)
    cls = {"linear": lm.LinearRegression, "logistic": lm.LogisticRegression, "softmax": lm.SoftmaxRegression}[model_name]
    params = dict(optimizer=args.optimizer, lr=args.lr, epochs=args.epochs, batch_size=args.batch_size,
                  random_state=args.seed)
    model = cls(**params)
    Xs = np.ascontiguousarray((Xtr - x_mean) / x_scale)
    ys = (y[own] - y_mean) / y_scale if task == "regression" else y[own]
    update, close = _progress(args.epochs, args.quiet or not root)
    start = time.perf_counter()
    try:
        model._epoch_callback = update
        model.fit(Xs, ys) if comm is None else model.fit(Xs, ys, comm=comm)
    finally:
        close()
        model.__dict__.pop("_epoch_callback", None)
    seconds = time.perf_counter() - start
    scaled = _Scaled(model, x_mean, x_scale, y_mean, y_scale)
    pred = scaled.predict(X)
    proba = scaled.predict_proba(X) if task == "classification" else None
    if comm is not None:  # the ranks' predictions, in the file's row order, on rank 0
        from ._cli_distributed import gather_rows
        pred, proba = gather_rows(comm, pred), gather_rows(comm, proba) if proba is not None else None
    if not root:
        return 0
    print(f"task: {task} ({reason})")
    print(f"{cls.__name__}(optimizer={args.optimizer!r}, lr={args.lr}, epochs={args.epochs}, "
          f"batch_size={args.batch_size}) on {Path(args.data).name}: {len(train)} training rows, "
          f"{len(test)} held-out rows, {X.shape[1]} features; trained {model.n_iter_} epochs in {seconds:.3f} s"
          + (f" on {comm.Get_size()} MPI ranks" if comm is not None else ""))
    classes = getattr(model, "classes_", None)
    rows = [_metric_rows(task, classes, y[part], pred[part], None if proba is None else proba[part])
            for part in (train, test)]
    _print_table(["metric", "train", "held-out"], [(a[0], a[1], b[1]) for a, b in zip(*rows)])
    if args.save:
        np.savez(args.save, format=np.array("dlopt-linear-model-1"), model=np.array(model_name),
                 task=np.array(task), coef=np.atleast_2d(model.coef_), intercept=np.atleast_1d(model.intercept_),
                 classes=np.array([]) if classes is None else classes, x_mean=x_mean, x_scale=x_scale, y_mean=np.array(y_mean), y_scale=np.array(y_scale),
                 feature_names=np.array(table.feature_names), target=np.array(table.target_name or ""))
        print(f"saved the model to {args.save}")
    if args.plot:
        try:
            import matplotlib

            matplotlib.use("Agg")
            import matplotlib.pyplot as plt
        except ImportError:
            raise DataError("--plot needs matplotlib, which is not installed: pip install matplotlib "
                            "(or pip install 'dlopt[plot]')") from None
        fig, ax = plt.subplots(figsize=(6, 4))
        ax.plot(np.arange(1, len(model.loss_curve_) + 1), model.loss_curve_)
        ax.set_xlabel("epoch")
        ax.set_ylabel("training loss" + (" (standardized target)" if task == "regression" and not args.no_standardize else ""))
        ax.set_yscale("log" if min(model.loss_curve_) > 0 else "linear")
        ax.set_title(f"{cls.__name__} ({args.optimizer}, lr={args.lr}) on {Path(args.data).name}")
        fig.tight_layout()
        fig.savefig(args.plot)
        print(f"saved the loss curve to {args.plot}")
    return 0


def _load_model(path):
    from . import linear_model as lm

    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: no such file")
    if path.is_dir():
        raise DataError(f"{path}: is a directory, expected a model file saved by 'dlopt fit --save'")
    not_a_model = f"{path}: not a dlopt model file (expected a .npz file saved by 'dlopt fit --save')"
    if not zipfile.is_zipfile(path):  # a CSV, a .npy, ...: np.load would talk about pickles
        raise DataError(not_a_model)
    try:
        with np.load(path, allow_pickle=False) as z:
            m = {k: z[k] for k in z.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error):  # truncated, bad CRC, ...
        raise DataError(not_a_model) from None
    required = {"format", "model", "coef", "intercept", "classes", "x_mean", "x_scale", "y_mean", "y_scale",
                "feature_names"}
    if not required <= set(m) or str(m["format"]) != "dlopt-linear-model-1":
        raise DataError(not_a_model)
    name = str(m["model"])
    if name not in ("linear", "logistic", "softmax"):
        raise DataError(f"{path}: unknown model kind {name[:40]!r} (expected linear, logistic or softmax)")
    coef, intercept, x_mean, x_scale = _model_arrays(path, name, m)
    cls = {"linear": lm.LinearRegression, "logistic": lm.LogisticRegression, "softmax": lm.SoftmaxRegression}[name]
    model = cls()
    model._coef = coef
    model._intercept = intercept
    model.n_features_in_ = coef.shape[1]
    model._trainer = None
    if name != "linear":
        model.classes_ = m["classes"]
    return _Scaled(model, x_mean, x_scale, float(m["y_mean"]), float(m["y_scale"])), m


def _model_arrays(path: Path, name: str, m: dict) -> tuple[np.ndarray, ...]:
    """coef (K, d), intercept (K,), x_mean and x_scale (d,) of a model file, checked: shapes that fit
    together and finite numbers, so a damaged file is an error, never NaN predictions."""
    def numeric(key, ndim):
        a = m[key]
        if a.dtype.kind not in "biuf" or a.ndim != ndim:
            raise DataError(f"{path}: '{key}' has dtype {a.dtype} and shape {a.shape}, expected a "
                            f"{ndim}-D array of numbers")
        a = np.ascontiguousarray(a, dtype=np.float64)
        if not np.all(np.isfinite(a)):
            raise DataError(f"{path}: '{key}' holds NaN or infinite values")
        return a

    coef, intercept = numeric("coef", 2), numeric("intercept", 1)
    x_mean, x_scale = numeric("x_mean", 1), numeric("x_scale", 1)
    y_mean, y_scale = numeric("y_mean", 0), numeric("y_scale", 0)
    k, d = coef.shape
    classes = m["classes"]
    want_k = 1 if name != "softmax" else len(classes)
    if d == 0 or k != want_k or intercept.shape != (k,) or x_mean.shape != (d,) or x_scale.shape != (d,) or \
            m["feature_names"].shape != (d,) or (name != "linear" and classes.ndim != 1) or \
            (name == "logistic" and len(classes) != 2) or (name == "softmax" and k < 2):
        raise DataError(f"{path}: the arrays of this {name} model do not fit together (coef {coef.shape}, "
                        f"intercept {intercept.shape}, x_mean {x_mean.shape}, x_scale {x_scale.shape}, "
                        f"feature_names {m['feature_names'].shape}, classes {classes.shape})")
    if np.any(x_scale == 0) or y_scale == 0:
        raise DataError(f"{path}: 'x_scale' or 'y_scale' holds zeros")
    return coef, intercept, x_mean, x_scale


def cmd_predict(args) -> int:
    if args.out:
        check_writable(args.out, "--out")
    scaled, m = _load_model(args.model)
    names = [str(s) for s in m["feature_names"]]
    target = str(m.get("target", "")) or None
    path = Path(args.data)
    if path.suffix.lower() == ".csv" or path.suffix.lower() not in (".npy", ".npz"):
        table = read_table(path, target if target and _has_column(path, target) else None, need_target=False)
        missing = [c for c in names if c not in table.feature_names]
        if missing and not all(c.startswith("x") for c in names):
            raise DataError(f"{path}: line 1: missing feature column(s) {', '.join(missing)}")
        X = table.X if missing else table.X[:, [table.feature_names.index(c) for c in names]]
    else:
        X = read_table(path, None, need_target=False).X
    if X.shape[1] != len(names):
        raise DataError(f"{path}: {X.shape[1]} feature columns, the model expects {len(names)}")
    pred = scaled.predict(X)
    out = open(args.out, "w", newline="") if args.out else sys.stdout
    try:
        w = csv.writer(out)
        w.writerow(["prediction"])
        for p in pred:
            w.writerow([f"{p:.10g}" if isinstance(p, (float, np.floating)) else p])
    finally:
        if args.out:
            out.close()
    if args.out:
        print(f"wrote {len(pred)} predictions to {args.out}", file=sys.stderr)
    return 0


def _has_column(path: Path, name: str) -> bool:
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            header = next(csv.reader(f), [])
    except (OSError, UnicodeDecodeError, csv.Error):
        return False
    return name in [h.strip() for h in header]


def cmd_demo(args) -> int:
    from . import linear_model as lm

    if args.dataset:
        from .datasets import DATASETS, load_dataset

        if args.dataset not in DATASETS:
            raise DataError(f"--dataset: unknown dataset {args.dataset!r}; bundled: {', '.join(DATASETS)}")
        d = load_dataset(args.dataset)
        print(d.description)
        with d.csv_path() as path:
            ns = argparse.Namespace(data=str(path), target=d.target_name, task=d.task, model=None,
                                    optimizer=args.optimizer or "adam", lr=args.lr or 0.05, epochs=args.epochs or 500,
                                    batch_size=None, test_size=0.2, seed=0, save=None, plot=None,
                                    no_standardize=False, quiet=True)
            return cmd_fit(ns)
    x = np.linspace(-1, 1, 100)
    y = 2 * x + 1 + np.random.default_rng(args.seed).normal(0, 0.1, 100)
    X = x[:, None]
    model = lm.LinearRegression(optimizer=args.optimizer or "sgd", lr=args.lr or 0.1, epochs=args.epochs or 1000,
                                batch_size=None)
    model.fit(X, y)  # warm-up: first-call costs (thread pool, allocations) are not the fit's
    start = time.perf_counter()
    model.fit(X, y)
    seconds = time.perf_counter() - start
    from .metrics import mean_squared_error

    print("seed example: y = 2x + 1 + N(0, 0.1), 100 points in [-1, 1]")
    print(f"LinearRegression(optimizer={model.optimizer!r}, lr={model.lr}, epochs={model.epochs}, batch_size=None)")
    print(f"loss (MSE): {mean_squared_error(y, model.predict(X)):.6f}")
    print(f"w: {model.coef_[0]:.6f}")
    print(f"b: {model.intercept_:.6f}")
    print(f"fit time: {seconds * 1e3:.3f} ms")
    return 0


class _HelpFormatter(argparse.HelpFormatter):
    """Appends "(default: X)" to every option that has a default (None and off switches have none)."""

    def _get_help_string(self, action):
        text = action.help or ""
        if ("%(default)" not in text and action.option_strings
                and not any(action.default is v for v in (None, False, argparse.SUPPRESS))):
            text += " (default: %(default)s)"
        return text


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    fmt = _HelpFormatter
    p = argparse.ArgumentParser(prog="dlopt", formatter_class=fmt,
                                description="dlopt: linear models trained by dlopt's optimizers.")
    p.add_argument("--version", action="version", version=f"dlopt {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    d = sub.add_parser("demo", formatter_class=fmt, help="train the seed example y = 2x + 1 (or a bundled dataset)",
                       description="Train the seed example y = 2x + 1 + N(0, 0.1) by full-batch SGD, or a "
                                   "bundled dataset with --dataset.")
    d.add_argument("--dataset", help="train on a bundled dataset instead: diabetes, breast_cancer")
    d.add_argument("--optimizer", default=None,
                   help="optimizer name (any dlopt.optim name); default: sgd, or adam with --dataset")
    d.add_argument("--lr", type=float, default=None, help="learning rate; default: 0.1, or 0.05 with --dataset")
    d.add_argument("--epochs", type=int, default=None, help="passes over the data; default: 1000, or 500 with --dataset")
    d.add_argument("--seed", type=int, default=0, help="seed of the example's noise")
    d.set_defaults(func=cmd_demo)

    f = sub.add_parser("fit", formatter_class=fmt,
                       help="train on a CSV / .npy / .npz file and report held-out metrics",
                       description="Train a linear model on DATA and report training and held-out metrics. "
                                   "Without --task the task is inferred from the target: labels or an integer "
                                   "target with 2 values mean classification; non-integer numbers, or more "
                                   f"than {MAX_AMBIGUOUS_CLASSES} distinct integers, mean regression; 3 to "
                                   f"{MAX_AMBIGUOUS_CLASSES} distinct integers are ambiguous and need --task. "
                                   "--model logistic/softmax implies classification, --model linear "
                                   "regression. The chosen task and why are printed.")
    f.add_argument("data", help="a CSV file with a header row, a 2-D .npy array, or a .npz with X and y")
    f.add_argument("--target", help="target column: a name (CSV) or an index (.npy); not needed for .npz")
    f.add_argument("--task", choices=["regression", "classification"],
                   help="what to predict; default: inferred from the target (see above)")
    f.add_argument("--model", choices=["linear", "logistic", "softmax"],
                   help="default: linear for regression, logistic for 2 classes, softmax for more")
    f.add_argument("--optimizer", default="adam", help="optimizer name (any dlopt.optim name, e.g. sgd, adam)")
    f.add_argument("--lr", type=float, default=0.01, help="learning rate")
    f.add_argument("--epochs", type=int, default=200, help="passes over the training rows")
    f.add_argument("--batch-size", type=int, default=None,
                   help="rows per optimizer step (mini-batch SGD); default: all rows (full-batch)")
    f.add_argument("--test-size", type=float, default=0.2,
                   help="fraction of rows held out for the reported metrics (stratified for classification)")
    f.add_argument("--seed", type=int, default=0, help="seed of the train/held-out split and the shuffling")
    f.add_argument("--no-standardize", action="store_true",
                   help="train on the raw features (default: standardize features and regression targets)")
    f.add_argument("--save", help="save the model as .npz (the path is checked before training)")
    f.add_argument("--plot", help="save the loss curve as an image (needs matplotlib)")
    f.add_argument("--distributed", action="store_true",
                   help="data-parallel over MPI: run as 'mpirun -n N dlopt fit ... --distributed'; each rank "
                        "reads and trains on its share of the rows, rank 0 prints and saves (needs mpi4py)")
    f.add_argument("--quiet", action="store_true",
                   help="no progress (a progress bar on a terminal, a line every 10%% of the epochs otherwise)")
    f.set_defaults(func=cmd_fit)

    r = sub.add_parser("predict", formatter_class=fmt, help="predict with a model saved by 'dlopt fit --save'",
                       description="Predict with a model saved by 'dlopt fit --save': one 'prediction' "
                                   "column, in the order of DATA's rows.")
    r.add_argument("model", help="a .npz model file saved by 'dlopt fit --save'")
    r.add_argument("data", help="rows to predict: a CSV with the training feature columns, a .npy or a .npz")
    r.add_argument("--out", help="write predictions to this CSV file; default: standard output")
    r.set_defaults(func=cmd_predict)
    return p


def _print_warning(message, category, filename, lineno, file=None, line=None):
    """Warnings (ConvergenceWarning, ...) as one 'dlopt: warning:' line, without a source location."""
    print(f"dlopt: warning: {message}", file=sys.stderr)


def main(argv=None) -> int:
    """Runs the ``dlopt`` command; returns its exit status (user errors never show a traceback).

    Parameters
    ----------
    argv : list of str, default None
        The arguments after ``dlopt`` (``["fit", "data.csv", "--target", "y"]``); None reads
        ``sys.argv[1:]``, as the installed ``dlopt`` script does.

    Returns
    -------
    int
        0 on success, 2 for a usage error or a bad data file, 1 for any other error (one
        ``dlopt: error:`` line on stderr), 130 when interrupted.

    Examples
    --------
    >>> from dlopt.cli import main
    >>> main(["--version"])  # prints the version, then exits as argparse does
    Traceback (most recent call last):
    ...
    SystemExit: 0
    """
    args = build_parser().parse_args(None if argv is None else [str(a) for a in argv])
    try:
        with warnings.catch_warnings():
            warnings.showwarning = _print_warning
            warnings.simplefilter("always", UserWarning)  # e.g. ConvergenceWarning: shown, never fatal
            status = args.func(args)
            sys.stdout.flush()  # a closed pipe shows here, inside the handler below
            return status
    except DataError as e:
        print(f"dlopt: error: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except BrokenPipeError:
        # The reader went away (`dlopt predict ... | head`): not an error. Point stdout at devnull so
        # the interpreter's final flush cannot fail again (the recipe in Python's signal docs).
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    except (ValueError, TypeError) as e:  # invalid hyperparameters, a diverging fit, ...
        print(f"dlopt: error: {str(e).splitlines()[0] if str(e) else type(e).__name__}", file=sys.stderr)
        return 1
    except OSError as e:  # a disk full or a file that vanished mid-run
        print(f"dlopt: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("dlopt: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
