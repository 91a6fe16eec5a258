"""The dlopt command on damaged and unusual files (issue 15, family 6): one `dlopt: error:` line, exit
status 2, never a traceback, and never NaN predictions from a damaged model."""

import os
import re
import subprocess
import sys

import numpy as np
import pytest

from dlopt import cli


def run(*args):
    """`python -m dlopt ARGS` in a fresh process, so a traceback would show in its stderr."""
    return subprocess.run([sys.executable, "-m", "dlopt", *map(str, args)], capture_output=True, text=True,
                          env=dict(os.environ), timeout=120)


def assert_clean_error(r, pattern):
    assert r.returncode == 2, (r.returncode, r.stderr)
    assert "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert re.search(pattern, r.stderr), r.stderr


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    """A small regression model saved by `dlopt fit --save`, its data and its saved arrays."""
    d = tmp_path_factory.mktemp("fitted")
    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 2))
    data = d / "d.csv"
    data.write_text("a,b,y\n" + "".join(f"{x0:.6g},{x1:.6g},{x0 + 2 * x1:.6g}\n" for x0, x1 in X))
    model = d / "m.npz"
    assert cli.main(["fit", data, "--target", "y", "--epochs", "5", "--quiet", "--save", model]) == 0
    with np.load(model) as z:
        arrays = dict(z)
    return data, model, arrays


def test_a_csv_cell_over_the_csv_field_limit(tmp_path):
    path = tmp_path / "huge.csv"
    path.write_text("a,y\n1," + "9" * 131_073 + "\n")
    assert_clean_error(run("fit", path, "--target", "y"), r"huge\.csv: line 2: field larger than field limit")


def test_a_truncated_npz(tmp_path):
    good = tmp_path / "good.npz"
    np.savez(good, X=np.ones((50, 3)), y=np.arange(50.0))
    raw = good.read_bytes()
    for cut in (len(raw) // 2, len(raw) - 30):
        bad = tmp_path / "cut.npz"
        bad.write_bytes(raw[:cut])
        assert_clean_error(run("fit", bad, "--target", "y"), r"cut\.npz: ")


def test_a_zero_dimensional_x_in_an_npz(tmp_path):
    path = tmp_path / "scalar.npz"
    np.savez(path, X=np.array(3.0), y=np.arange(3.0))
    assert_clean_error(run("fit", path, "--target", "y"), r"scalar\.npz: X has shape \(\), expected a 2-D")


def test_a_csv_holding_only_the_target(tmp_path):
    path = tmp_path / "only.csv"
    path.write_text("y\n1\n2\n3\n4\n")
    assert_clean_error(run("fit", path, "--target", "y"), r"only\.csv: no feature columns besides the target 'y'")


def test_a_byte_order_mark_is_not_part_of_a_column_name(tmp_path, capsys):
    path = tmp_path / "bom.csv"
    rng = np.random.default_rng(1)
    rows = rng.normal(size=(30, 2))
    path.write_text("\ufeffa,y\n" + "".join(f"{a:.6g},{3 * a + 0.1 * e:.6g}\n" for a, e in rows), encoding="utf-8")
    table = cli.read_table(path, "a", need_target=True)
    assert table.target_name == "a" and table.feature_names == ["y"]
    model = tmp_path / "m.npz"
    assert cli.main(["fit", path, "--target", "a", "--epochs", "3", "--quiet", "--save", model]) == 0
    with np.load(model) as z:
        assert [str(s) for s in z["feature_names"]] == ["y"] and str(z["target"]) == "a"
    assert "\ufeff" not in capsys.readouterr().out


def test_predict_writes_to_a_directory_given_as_out(fitted, tmp_path):
    data, model, _ = fitted
    assert_clean_error(run("predict", model, data, "--out", tmp_path), r"--out .*: is a directory")


def _damaged(tmp_path, arrays, **changes):
    path = tmp_path / "damaged.npz"
    np.savez(path, **{**arrays, **changes})
    return path


@pytest.mark.parametrize("changes, pattern", [
    (dict(model=np.array("ridge")), r"unknown model kind 'ridge'"),
    (dict(coef=np.array([1.0, 2.0])), r"'coef' .* shape \(2,\), expected a 2-D array"),
    (dict(coef=np.array([[np.nan, 1.0]])), r"'coef' holds NaN"),
    (dict(intercept=np.array([np.inf])), r"'intercept' holds NaN or infinite"),
    (dict(x_scale=np.array([1.0, np.nan])), r"'x_scale' holds NaN"),
    (dict(x_scale=np.array([1.0, 0.0])), r"'x_scale' or 'y_scale' holds zeros"),
    (dict(y_mean=np.array(np.nan)), r"'y_mean' holds NaN"),
    (dict(coef=np.ones((1, 3))), r"do not fit together"),
    (dict(intercept=np.ones(2)), r"do not fit together"),
    (dict(coef=np.array([["a", "b"]])), r"'coef' has dtype <U1"),
])
def test_a_damaged_model_is_an_error_not_nan_predictions(fitted, tmp_path, changes, pattern):
    data, _, arrays = fitted
    assert_clean_error(run("predict", _damaged(tmp_path, arrays, **changes), data), pattern)


def test_a_corrupt_model_file_exits_2(fitted, tmp_path):
    data, model, _ = fitted
    raw = model.read_bytes()
    bad = tmp_path / "corrupt.npz"
    for damaged in (raw[: len(raw) // 2], raw[:-10], b"PK\x03\x04" + raw[4:300]):
        bad.write_bytes(damaged)
        assert_clean_error(run("predict", bad, data), r"corrupt\.npz: ")


def test_the_good_model_still_predicts(fitted):
    data, model, _ = fitted
    r = run("predict", model, data)
    assert r.returncode == 0, r.stderr
    values = np.array([float(v) for v in r.stdout.split()[1:]])
    assert values.shape == (40,) and np.all(np.isfinite(values))
