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


# ---- issue 17: no traceback for any user error, --task never silently wrong, help, version, progress ----

def write_csv(path, X, y, target="y"):
    names = [f"f{j}" for j in range(X.shape[1])]
    lines = [",".join(names + [target])] + [",".join(f"{v:.6g}" for v in row) + f",{t}" for row, t in zip(X, y)]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_broken_pipe_is_not_an_error(tmp_path):
    """`dlopt predict m.npz x.csv | head`: the reader leaves early; no BrokenPipeError traceback."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(20000, 3))
    data = write_csv(tmp_path / "big.csv", X, X @ [1.0, 2.0, 3.0] + 0.5)
    model = tmp_path / "m.npz"
    assert cli.main(["fit", data, "--target", "y", "--epochs", "5", "--quiet", "--save", model]) == 0
    with subprocess.Popen([sys.executable, "-m", "dlopt", "predict", model, data], stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE) as p:
        assert p.stdout.readline().strip() == b"prediction"
        p.stdout.close()  # as `head -1` does: 20000 predictions (> 64 KiB) cannot all fit in the pipe
        err = p.stderr.read().decode()
        assert p.wait(timeout=120) == 0, err
    assert "Traceback" not in err and "BrokenPipe" not in err and "Exception ignored" not in err


@pytest.mark.parametrize("where", ["missing-dir", "a-directory"])
def test_unwritable_save_path_fails_before_training(tmp_path, where):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(50, 2))
    data = write_csv(tmp_path / "d.csv", X, X @ [1.0, 2.0])
    save = tmp_path / "no" / "such" / "m.npz" if where == "missing-dir" else tmp_path
    r = run("fit", data, "--target", "y", "--save", save)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert r.stderr.startswith(f"dlopt: error: --save {save}")
    assert "trained" not in r.stdout and "epoch" not in r.stderr  # nothing was trained
    r = run("fit", data, "--target", "y", "--plot", save)
    assert r.returncode == 2 and f"--plot {save}" in r.stderr and r.stdout == ""


def test_unwritable_predict_output_fails_before_reading(tmp_path):
    r = run("predict", tmp_path / "model.npz", tmp_path / "x.csv", "--out", tmp_path / "missing" / "p.csv")
    assert r.returncode == 2 and "--out" in r.stderr and "does not exist" in r.stderr


def test_wrong_model_file_says_what_it_expects_without_pickle_advice(tmp_path):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(30, 2))
    csv_file = write_csv(tmp_path / "wine.csv", X, X @ [1.0, 2.0])
    np.save(tmp_path / "arr.npy", X)
    np.savez(tmp_path / "other.npz", a=X)
    for model in (csv_file, tmp_path / "arr.npy", tmp_path / "other.npz", tmp_path):
        r = run("predict", model, csv_file)
        assert r.returncode == 2, r.stderr
        assert f"{model}:" in r.stderr and "dlopt fit --save" in r.stderr
        assert "pickle" not in r.stderr and "Traceback" not in r.stderr


def test_task_inference_asks_when_ambiguous_and_says_what_it_chose(tmp_path, capsys):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 3))
    score = X @ [1.0, 2.0, -1.0]
    quality = write_csv(tmp_path / "q.csv", X, np.digitize(score, [-2, -1, 0, 1, 2]) + 3)  # 6 integers
    assert cli.main(["fit", quality, "--target", "y", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "6 distinct integer values" in err and "--task classification or --task regression" in err
    assert cli.main(["fit", quality, "--target", "y", "--task", "regression", "--quiet"]) == 0
    assert "task: regression (--task)" in capsys.readouterr().out
    binary = write_csv(tmp_path / "b.csv", X, (score > 0).astype(int))
    assert cli.main(["fit", binary, "--target", "y", "--quiet"]) == 0
    assert re.search(r"^task: classification \(inferred: 'y' holds 2 distinct values", capsys.readouterr().out, re.M)
    real = write_csv(tmp_path / "r.csv", X, score + 0.5)
    assert cli.main(["fit", real, "--target", "y", "--quiet"]) == 0
    assert "task: regression (inferred: 'y' holds non-integer numbers" in capsys.readouterr().out
    many = write_csv(tmp_path / "m.csv", X, np.round(score * 100).astype(int))
    assert cli.main(["fit", many, "--target", "y", "--quiet"]) == 0
    assert re.search(r"task: regression \(inferred: 'y' holds \d+ distinct integers", capsys.readouterr().out)
    assert cli.main(["fit", quality, "--target", "y", "--model", "softmax", "--quiet"]) == 0
    assert "task: classification (--model softmax)" in capsys.readouterr().out


def test_a_rare_class_stays_in_the_training_split(tmp_path, capsys):
    """Stratified split: a class with one row is trained on, never only held out (which used to crash)."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 2))
    y = np.array(["a"] * 30 + ["b"] * 29 + ["c"])
    for seed in range(5):
        assert cli.main(["fit", write_csv(tmp_path / "r.csv", X, y), "--target", "y", "--seed", seed,
                         "--quiet"]) == 0, capsys.readouterr().err
    capsys.readouterr()


def test_every_option_has_help_and_shows_its_default():
    parser = cli.build_parser()
    subparsers = next(a for a in parser._actions if isinstance(a, cli.argparse._SubParsersAction))
    for name, sub in subparsers.choices.items():
        text = sub.format_help()
        for action in sub._actions:
            assert action.help, f"dlopt {name} {action.dest}: no help text"
            if action.option_strings and not any(action.default is v for v in (None, False, cli.argparse.SUPPRESS)):
                flag = action.option_strings[-1]
                options = text[text.index("options:"):]
                block = options[options.index("\n  " + flag):].split("\n  -")[1]
                assert "default" in block, f"dlopt {name} {flag}: the help does not show the default"
    fit_help = subparsers.choices["fit"].format_help()
    assert "(default: adam)" in fit_help and "(default: 0.01)" in fit_help and "(default: 200)" in fit_help
    assert "--task" in fit_help and "ambiguous" in fit_help


def test_version():
    import dlopt

    r = run("--version")
    assert r.returncode == 0 and r.stdout.strip() == f"dlopt {dlopt.__version__}"


class FakeTerminal:
    def __init__(self, tty):
        self.tty, self.text = tty, ""

    def isatty(self):
        return self.tty

    def write(self, s):
        self.text += s

    def flush(self):
        pass


def test_progress_is_a_status_line_on_a_terminal_and_plain_lines_otherwise(monkeypatch):
    monkeypatch.setitem(sys.modules, "tqdm", None)  # the fallback status line
    log = FakeTerminal(tty=False)
    update, close = cli._progress(200, quiet=False, stream=log)
    for e in range(1, 201):
        update(e, 1.0 / e)
    close()
    assert "\r" not in log.text
    assert log.text.splitlines() == [f"epoch {e}/200  loss {1.0 / e:.5g}" for e in range(20, 201, 20)]
    term = FakeTerminal(tty=True)
    update, close = cli._progress(3, quiet=False, stream=term)
    for e in range(1, 4):
        update(e, 0.5)
    close()
    assert term.text.startswith("\rEpoch") and term.text.endswith("Epoch 3/3  loss 0.5\n")


def test_fit_logs_plain_progress_lines_when_stderr_is_not_a_terminal(tmp_path):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(50, 2))
    data = write_csv(tmp_path / "d.csv", X, X @ [1.0, 2.0] + 0.25)
    r = run("fit", data, "--target", "y", "--epochs", "30")
    assert r.returncode == 0, r.stderr
    assert "\r" not in r.stderr and "epoch 30/30" in r.stderr
