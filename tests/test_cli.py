"""The dlopt command: demo, fit, predict, and one-line errors with exit status 2 for bad files."""

import os
import re
import subprocess
import sys

import numpy as np
import pytest

from dlopt import cli
from dlopt.datasets import DATASETS, load_dataset


def run(*args):
    """Runs `python -m dlopt ARGS` in a fresh process (so no traceback can hide)."""
    env = dict(os.environ)
    return subprocess.run([sys.executable, "-m", "dlopt", *map(str, args)], capture_output=True, text=True,
                          env=env, timeout=120)


def test_demo_runs_the_seed_example():
    r = run("demo")
    assert r.returncode == 0, r.stderr
    loss = float(re.search(r"loss \(MSE\): ([\d.]+)", r.stdout).group(1))
    w = float(re.search(r"^w: ([-\d.]+)", r.stdout, re.M).group(1))
    b = float(re.search(r"^b: ([-\d.]+)", r.stdout, re.M).group(1))
    assert abs(w - 2) < 0.05 and abs(b - 1) < 0.05 and 0.005 < loss < 0.015
    assert re.search(r"fit time: [\d.]+ ms", r.stdout)


@pytest.mark.parametrize("name", DATASETS)
def test_demo_on_bundled_datasets(name, capsys):
    assert cli.main(["demo", "--dataset", name]) == 0
    out = capsys.readouterr().out
    if name == "diabetes":
        r2 = float(re.search(r"^R2\s+\S+\s+(\S+)", out, re.M).group(1))
        assert r2 > 0.4
    else:
        acc = float(re.search(r"^accuracy\s+\S+\s+(\S+)", out, re.M).group(1))
        assert acc > 0.93


def test_bundled_data_is_real_and_documented():
    d = load_dataset("diabetes")
    assert d.X.shape == (442, 10) and d.task == "regression"
    b = load_dataset("breast_cancer")
    assert b.X.shape == (569, 30) and set(np.unique(b.y)) == {0, 1} and b.y.sum() == 212
    with open(os.path.join(os.path.dirname(cli.__file__), "datasets", "README.md")) as f:
        readme = f.read()
    assert "Licence" in readme and "CC BY 4.0" in readme


def test_fit_save_predict_roundtrip(tmp_path, capsys):
    d = load_dataset("breast_cancer")
    model = tmp_path / "m.npz"
    with d.csv_path() as path:
        assert cli.main(["fit", path, "--target", "malignant", "--epochs", "300", "--lr", "0.05",
                         "--save", model, "--quiet"]) == 0
        out = capsys.readouterr().out
        assert "held-out" in out and "accuracy" in out and "F1" in out
        # A plain .npz, loadable without pickle.
        with np.load(model, allow_pickle=False) as z:
            assert z["coef"].shape == (1, 30)
        preds = tmp_path / "p.csv"
        assert cli.main(["predict", model, path, "--out", preds]) == 0
    lines = preds.read_text().splitlines()
    assert lines[0] == "prediction" and len(lines) == 570
    acc = np.mean(np.array(lines[1:], dtype=int) == d.y)
    assert acc > 0.95


def test_fit_reads_npy_and_npz(tmp_path, capsys):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 3))
    y = X @ [1.0, 2.0, 3.0] + 4
    np.save(tmp_path / "a.npy", np.c_[X, y])
    np.savez(tmp_path / "b.npz", X=X, y=y)
    assert cli.main(["fit", tmp_path / "a.npy", "--target", "-1", "--epochs", "500", "--lr", "0.05", "--quiet"]) == 0
    assert cli.main(["fit", tmp_path / "b.npz", "--task", "regression", "--epochs", "500", "--lr", "0.05",
                     "--quiet"]) == 0
    out = capsys.readouterr().out
    assert all(float(v) > 0.99 for v in re.findall(r"^R2\s+\S+\s+(\S+)", out, re.M))


def test_plot_writes_an_image(tmp_path):
    pytest.importorskip("matplotlib")
    d = load_dataset("diabetes")
    with d.csv_path() as path:
        assert cli.main(["fit", path, "--target", "progression", "--plot", tmp_path / "loss.png", "--quiet"]) == 0
    assert (tmp_path / "loss.png").stat().st_size > 1000


def test_plot_without_matplotlib_says_how_to_install_it(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib -> ImportError
    d = load_dataset("diabetes")
    with d.csv_path() as path:
        assert cli.main(["fit", path, "--target", "progression", "--plot", tmp_path / "l.png", "--quiet"]) == 2
    assert "pip install matplotlib" in capsys.readouterr().err


BAD_FILES = {
    "nonnumeric.csv": ("a,b,y\n1,2,3\n4,x,6\n", r"nonnumeric\.csv: line 3, column 'b'"),
    "nan.csv": ("a,b,y\n1,2,3\n4,nan,6\n", r"nan\.csv: line 3, column 'b'.*NaN"),
    "empty_cell.csv": ("a,b,y\n1,,3\n4,5,6\n", r"empty_cell\.csv: line 2, column 'b': missing value"),
    "ragged.csv": ("a,b,y\n1,2,3\n4,5\n", r"ragged\.csv: line 3: 2 fields, expected 3"),
    "notarget.csv": ("a,b,z\n1,2,3\n4,5,6\n", r"notarget\.csv: line 1: no column 'y'"),
}


@pytest.mark.parametrize("name", sorted(BAD_FILES))
def test_bad_files_give_one_line_and_exit_2(tmp_path, name):
    text, pattern = BAD_FILES[name]
    path = tmp_path / name
    path.write_text(text)
    r = run("fit", path, "--target", "y")
    assert r.returncode == 2
    assert "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert re.search(pattern, r.stderr), r.stderr


def test_missing_file_and_bad_arrays(tmp_path):
    r = run("fit", tmp_path / "missing.csv", "--target", "y")
    assert r.returncode == 2 and "missing.csv: no such file" in r.stderr and "Traceback" not in r.stderr
    a = np.ones((5, 3))
    a[2, 1] = np.nan
    np.save(tmp_path / "nan.npy", a)
    r = run("fit", tmp_path / "nan.npy", "--target", "0")
    assert r.returncode == 2 and "row 2, column 1" in r.stderr
    (tmp_path / "bad.npz").write_bytes(b"not a zip file")
    r = run("predict", tmp_path / "bad.npz", tmp_path / "nan.npy")
    assert r.returncode == 2 and "bad.npz" in r.stderr and "Traceback" not in r.stderr
