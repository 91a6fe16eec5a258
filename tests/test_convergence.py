"""Defaults that work: LinearRegression() reaches ordinary least squares without tuning, the seed
example's explicit settings are unchanged, and a fit that stops on its epoch limit before converging warns."""

import warnings

import numpy as np
import pytest

from dlopt import linear_model
from dlopt.linear_model import ConvergenceWarning, LinearRegression, LogisticRegression, SoftmaxRegression


def ols_r2(X, y):
    """R² of numpy's least-squares solution (with an intercept) on the data it was fitted to."""
    A = np.c_[X, np.ones(len(X))]
    pred = A @ np.linalg.lstsq(A, y, rcond=None)[0]
    return 1 - np.sum((y - pred) ** 2) / np.sum((y - y.mean()) ** 2)


def test_default_linear_regression_matches_ols_on_diabetes_cross_validation():
    datasets = pytest.importorskip("sklearn.datasets")
    from sklearn.linear_model import LinearRegression as OLS
    from sklearn.model_selection import cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    X, y = datasets.load_diabetes(return_X_y=True)
    ours = cross_val_score(make_pipeline(StandardScaler(), LinearRegression()), X, y).mean()
    ols = cross_val_score(make_pipeline(StandardScaler(), OLS()), X, y).mean()
    assert ols == pytest.approx(0.482, abs=0.01)  # the reference itself
    assert abs(ours - ols) <= 0.01 * abs(ols)


@pytest.mark.parametrize("scale", [1.0, 1e3], ids=["unit", "large-target"])
def test_default_linear_regression_matches_ols_on_synthetic_data(scale):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(500, 8)) * rng.uniform(0.1, 10, size=8) + rng.normal(size=8) * 5
    y = (X @ rng.normal(size=8) + 150 + rng.normal(size=500)) * scale
    model = LinearRegression().fit(X, y)
    assert model.solver_ == "closed_form"
    assert abs(model.score(X, y) - ols_r2(X, y)) <= 0.01 * ols_r2(X, y)


def test_auto_solver_trains_by_gradient_when_an_optimizer_setting_is_given():
    x = np.linspace(-1, 1, 100)
    y = 2 * x + 1
    assert LinearRegression(lr=0.1).fit(x[:, None], y).solver_ == "gradient"
    assert LinearRegression(optimizer="sgd", lr=0.1).fit(x[:, None], y).solver_ == "gradient"
    assert LinearRegression(penalty="l1", alpha=0.0, lr=0.1).fit(x[:, None], y).solver_ == "gradient"
    assert LinearRegression(solver="closed_form", lr=0.1).fit(x[:, None], y).solver_ == "closed_form"
    with pytest.raises(ValueError, match="solver: expected 'auto', 'gradient' or 'closed_form'"):
        LinearRegression(solver="newton").fit(x[:, None], y)


def test_seed_example_explicit_settings_are_unchanged():
    x = np.linspace(-1, 1, 100)
    y = 2 * x + 1 + np.random.default_rng(0).normal(0, 0.1, 100)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # converged: no ConvergenceWarning
        model = LinearRegression(optimizer="sgd", lr=0.1, epochs=1000, batch_size=None).fit(x[:, None], y)
    assert model.solver_ == "gradient" and model.n_iter_ == 1000 and len(model.loss_curve_) == 1000
    assert model.coef_[0] == pytest.approx(2.0, abs=0.02) and model.intercept_ == pytest.approx(1.0, abs=0.02)
    # The same numbers as full-batch gradient descent written out in NumPy.
    w = b = 0.0
    for _ in range(1000):
        r = w * x + b - y
        w, b = w - 0.1 * np.mean(2 * r * x), b - 0.1 * np.mean(2 * r)
    assert model.coef_[0] == pytest.approx(w, rel=1e-9) and model.intercept_ == pytest.approx(b, rel=1e-9)


def test_the_issue_case_warns_instead_of_failing_silently():
    """Full-batch Adam at lr 0.01 on an unstandardized target (mean 152) is far from converged after
    1000 epochs: the fit says so."""
    datasets = pytest.importorskip("sklearn.datasets")
    X, y = datasets.load_diabetes(return_X_y=True)
    with pytest.warns(ConvergenceWarning, match=r"epoch limit \(epochs=1000\)"):
        LinearRegression(optimizer="adam", lr=0.01).fit(X, y)


def targets(kind, X):
    rng = np.random.default_rng(1)
    y = X @ [1.0, -1.0, 0.5, 2.0] + rng.normal(scale=0.5, size=len(X))
    return {"values": y, "binary": (y > 0).astype(int), "three classes": np.digitize(y, [-1, 1])}[kind]


@pytest.mark.parametrize("make, kind", [(lambda **kw: LinearRegression(optimizer="sgd", **kw), "values"),
                                        (LogisticRegression, "binary"),
                                        (SoftmaxRegression, "three classes")],
                         ids=["linear", "logistic", "softmax"])
def test_every_estimator_warns_on_the_epoch_limit_and_not_when_tol_is_met(make, kind):
    X = np.random.default_rng(0).normal(size=(300, 4))
    y = targets(kind, X)
    with pytest.warns(ConvergenceWarning, match="stopped at the epoch limit"):
        make(lr=1e-3, epochs=20, tol=1e-6).fit(X, y)
    with pytest.warns(ConvergenceWarning):  # tol=None: judged by CONVERGENCE_TOL
        make(lr=1e-3, epochs=20).fit(X, y)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        stopped = make(lr=0.05, epochs=5000, tol=1e-3).fit(X, y)  # meets tol, stops early: no warning
    assert stopped.n_iter_ < 5000


def test_no_warning_from_partial_fit_or_early_stopping_that_stopped():
    rng = np.random.default_rng(2)
    X = rng.normal(size=(400, 3))
    y = X @ [1.0, 2.0, 3.0] + rng.normal(scale=0.1, size=400)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        LinearRegression(optimizer="sgd", lr=0.05).partial_fit(X, y)  # one epoch by definition
        m = LinearRegression(optimizer="sgd", lr=0.1, early_stopping=True, epochs=5000, random_state=0).fit(X, y)
    assert m.n_iter_ < 5000
    with pytest.warns(ConvergenceWarning, match="validation score"):
        LinearRegression(optimizer="sgd", lr=1e-4, early_stopping=True, epochs=10, random_state=0).fit(X, y)


def test_convergence_warning_class():
    sklearn = pytest.importorskip("sklearn.exceptions")
    assert ConvergenceWarning is sklearn.ConvergenceWarning
    assert issubclass(linear_model.ConvergenceWarning, UserWarning)


def test_without_scikit_learn_the_warning_is_dlopts_own_user_warning():
    import subprocess
    import sys
    import textwrap

    code = textwrap.dedent("""
        import sys, warnings
        sys.modules["sklearn"] = None  # as if scikit-learn were not installed
        import numpy as np
        from dlopt.linear_model import ConvergenceWarning, LinearRegression
        assert ConvergenceWarning.__module__ == "dlopt.linear_model", ConvergenceWarning.__module__
        assert issubclass(ConvergenceWarning, UserWarning)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            LinearRegression(optimizer="sgd", lr=1e-3, epochs=3).fit(np.ones((4, 1)), np.arange(4.0))
        assert [w.category for w in caught] == [ConvergenceWarning], caught
        print("ok")
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr
