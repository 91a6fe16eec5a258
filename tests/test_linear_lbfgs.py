"""The linear models with optimizer="lbfgs" (full-batch L-BFGS, strong-Wolfe line search): the
objective they reach against scikit-learn's LogisticRegression(solver="lbfgs") on its bundled
breast_cancer (binary) and digits (10 classes) data, and against Ridge for LinearRegression; the
settings L-BFGS refuses; errors leave the model as it was.

scikit-learn minimises mean(log-loss) + 1/(2·C·n)·‖W‖²; dlopt's objective with penalty="l2" is
mean(loss) + alpha·½‖W‖², so alpha = 1/(C·n) is the same function. Both are evaluated by the same
NumPy code below on the fitted coefficients. scikit-learn is run to a tight tolerance so that its
objective is the minimum.
"""

from __future__ import annotations

import numpy as np
import pytest

import dlopt
from dlopt.linear_model import LinearRegression, LogisticRegression, SoftmaxRegression

sklearn = pytest.importorskip("sklearn")
from sklearn.datasets import load_breast_cancer, load_diabetes, load_digits  # noqa: E402
from sklearn.linear_model import LogisticRegression as SkLogisticRegression  # noqa: E402
from sklearn.linear_model import Ridge  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402


def standardized(load):
    X, y = load(return_X_y=True)
    return StandardScaler().fit_transform(X), y


def cross_entropy_objective(X, codes, coef, intercept, alpha):
    """mean cross-entropy (one logit: binary; K logits: softmax) + alpha·½‖coef‖², in float64."""
    X, coef, intercept = (np.asarray(a, dtype=np.float64) for a in (X, coef, intercept))
    Z = X @ coef.T + intercept
    if Z.shape[1] == 1:
        z = Z[:, 0]
        loss = np.mean(np.logaddexp(0, z) - codes * z)
    else:
        m = Z.max(axis=1, keepdims=True)
        lse = m[:, 0] + np.log(np.exp(Z - m).sum(axis=1))
        loss = np.mean(lse - Z[np.arange(len(codes)), codes])
    return loss + 0.5 * alpha * (coef ** 2).sum()


def sklearn_minimum(X, y, C):
    # Single-threaded: on a shared machine scikit-learn's OpenMP threads would be oversubscribed.
    with threadpool_limits(1):
        return SkLogisticRegression(C=C, tol=1e-10, max_iter=100_000).fit(X, y)


@pytest.mark.parametrize("C", [1.0, 0.05])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_logistic_regression_reaches_sklearn_objective_on_breast_cancer(C, dtype):
    X, y = standardized(load_breast_cancer)
    n = len(y)
    sk = sklearn_minimum(X, y, C)
    model = LogisticRegression(optimizer="lbfgs", lr=1.0, penalty="l2", alpha=1 / (C * n))
    model.fit(X.astype(dtype), y)
    assert model.coef_.dtype == dtype
    ours = cross_entropy_objective(X, y, model.coef_, model.intercept_, 1 / (C * n))
    best = cross_entropy_objective(X, y, sk.coef_, sk.intercept_, 1 / (C * n))
    # float32: the objective itself is only known to ~1e-7 relative, its minimiser to ~1e-4
    assert abs(ours - best) / best <= (1e-6 if dtype == np.float64 else 1e-5)
    assert model.n_iter_ < 1000 and model.t_ == model.n_iter_
    # every iteration decreases the objective (the line search enforces the Armijo condition)
    assert all(b <= a for a, b in zip(model.loss_curve_, model.loss_curve_[1:]))
    assert model.loss_curve_[-1] == pytest.approx(ours, rel=1e-6 if dtype == np.float64 else 1e-5)


@pytest.mark.parametrize("C", [1.0, 0.1])
def test_softmax_regression_reaches_sklearn_objective_on_digits(C):
    X, y = standardized(load_digits)
    n = len(y)
    sk = sklearn_minimum(X, y, C)
    model = SoftmaxRegression(optimizer="lbfgs", lr=1.0, penalty="l2", alpha=1 / (C * n)).fit(X, y)
    ours = cross_entropy_objective(X, y, model.coef_, model.intercept_, 1 / (C * n))
    best = cross_entropy_objective(X, y, sk.coef_, sk.intercept_, 1 / (C * n))
    assert abs(ours - best) / best <= 1e-6
    assert model.loss_curve_[-1] == pytest.approx(ours, rel=1e-12)  # the C++ objective is this one
    assert model.score(X, y) == pytest.approx(sk.score(X, y), abs=2 / n)


def test_softmax_sample_weight_is_the_weighted_objective():
    # The weighted mean Σ sᵢ lᵢ / Σ sᵢ + penalty: at the fit, its NumPy gradient vanishes.
    X, y = standardized(load_digits)
    s = np.random.default_rng(0).uniform(0.2, 3.0, len(y))
    alpha = 1e-3
    model = SoftmaxRegression(optimizer="lbfgs", lr=1.0, penalty="l2", alpha=alpha,
                              optimizer_params={"tolerance_change": 1e-14}).fit(X, y, sample_weight=s)
    W, b = model.coef_, model.intercept_
    Z = X @ W.T + b
    P = np.exp(Z - Z.max(axis=1, keepdims=True))
    P /= P.sum(axis=1, keepdims=True)
    lse = np.log(np.exp(Z - Z.max(axis=1, keepdims=True)).sum(axis=1)) + Z.max(axis=1)
    objective = (s * (lse - Z[np.arange(len(y)), y])).sum() / s.sum() + 0.5 * alpha * (W ** 2).sum()
    assert model.loss_curve_[-1] == pytest.approx(objective, rel=1e-12)
    R = (P - np.eye(10)[y]) * (s / s.sum())[:, None]
    assert np.abs(R.T @ X + alpha * W).max() < 1e-5 and np.abs(R.sum(axis=0)).max() < 1e-5


def test_no_penalty_fits_the_separable_data_less_and_less():
    # Without a penalty the digits data are separable: the loss only approaches 0, and L-BFGS keeps
    # lowering it until its tolerances stop it; at any rate below the penalised minimum.
    X, y = standardized(load_digits)
    model = SoftmaxRegression(optimizer="lbfgs", lr=1.0, epochs=300).fit(X, y)
    assert model.loss_curve_[-1] < 0.01 and model.score(X, y) == 1.0


def test_linear_regression_reaches_ridge_objective():
    X, y = standardized(load_diabetes)
    y = (y - y.mean()) / y.std()
    n, alpha = len(y), 0.01
    model = LinearRegression(optimizer="lbfgs", penalty="l2", alpha=alpha).fit(X, y)
    assert model.solver_ == "gradient"
    # mean((Xw + b − y)²) + alpha·½‖w‖²  =  (‖Xw + b − y‖² + (n·alpha/2)·‖w‖²) / n: Ridge's objective
    ridge = Ridge(alpha=n * alpha / 2, solver="cholesky").fit(X, y)

    def objective(w, b):
        r = X @ w + b - y
        return np.mean(r * r) + 0.5 * alpha * w @ w
    ours, best = objective(model.coef_, model.intercept_), objective(ridge.coef_, ridge.intercept_)
    assert abs(ours - best) / best <= 1e-6


def test_lr_none_means_one_for_linear_regression():
    X, y = standardized(load_diabetes)
    model = LinearRegression(optimizer="lbfgs", epochs=3).fit(X, y / 100)
    assert model.lr_curve_ == [1.0] * model.n_iter_


def test_seed_example():
    x = np.linspace(-1, 1, 100)
    y = 2 * x + 1
    model = LinearRegression(optimizer="lbfgs").fit(x[:, None], y)
    # stopped by torch's tolerance_change = 1e-9 on the loss (0 at the solution)
    np.testing.assert_allclose([model.coef_[0], model.intercept_], [2.0, 1.0], atol=1e-5)


def test_optimizer_params_and_tol_reach_lbfgs():
    X, y = standardized(load_breast_cancer)
    alpha = 1 / len(y)
    loose = LogisticRegression(optimizer="lbfgs", lr=1.0, penalty="l2", alpha=alpha, tol=1e-3).fit(X, y)
    tight = LogisticRegression(optimizer="lbfgs", lr=1.0, penalty="l2", alpha=alpha,
                               optimizer_params={"history_size": 5, "tolerance_grad": 1e-12,
                                                 "tolerance_change": 1e-14}).fit(X, y)
    assert loose.n_iter_ < tight.n_iter_
    assert tight.loss_curve_[-1] <= loose.loss_curve_[-1]
    capped = LogisticRegression(optimizer="lbfgs", lr=1.0, penalty="l2", alpha=alpha,
                                optimizer_params={"max_eval": 4}).fit(X, y)
    assert capped.n_iter_ <= 4


def test_verbose_prints_every_iteration(capsys):
    X, y = standardized(load_breast_cancer)
    # epochs caps the iterations; max_eval (torch's default: epochs * 5 // 4 = 3) the evaluations
    model = LogisticRegression(optimizer="LBFGS", lr=1.0, epochs=3, verbose=1, optimizer_params={"max_eval": 10})
    with pytest.warns(dlopt.linear_model.ConvergenceWarning):
        model.fit(X, y)
    assert capsys.readouterr().out.count("Epoch") == 3 == model.n_iter_


def test_warm_start_continues_from_the_coefficients():
    X, y = standardized(load_breast_cancer)
    model = LogisticRegression(optimizer="lbfgs", lr=1.0, penalty="l2", alpha=1e-3, epochs=5, warm_start=True)
    with pytest.warns(dlopt.linear_model.ConvergenceWarning):
        model.fit(X, y)
    first = model.loss_curve_[-1]
    model.set_params(epochs=200).fit(X, y)
    assert model.loss_curve_[-1] < first and len(model.loss_curve_) == 5 + model.n_iter_


@pytest.mark.parametrize("kwargs,match", [
    ({"batch_size": 32}, "batch_size must be None"),
    ({"penalty": "l1"}, "penalty must be None or 'l2'"),
    ({"penalty": "elasticnet"}, "penalty must be None or 'l2'"),
    ({"early_stopping": True}, "early_stopping"),
    ({"lr_schedule": "cosine"}, "lr_schedule"),
    ({"optimizer_params": {"momentum": 0.9}}, "unknown optimizer_params key 'momentum'"),
    ({"optimizer_params": {"history_size": 2.5}}, "history_size must be an integer"),
    ({"optimizer_params": {"history_size": 0}}, "history_size"),
    ({"optimizer_params": {"state_dtype": "bfloat16"}}, "storage options"),
    ({"tol": 1e-3, "optimizer_params": {"tolerance_change": 1e-3}}, "not both"),
])
def test_refused_settings_change_nothing(kwargs, match):
    X, y = standardized(load_breast_cancer)
    model = LogisticRegression(optimizer="lbfgs", lr=1.0, penalty="l2", alpha=1e-3).fit(X, y)
    coef, curve = model.coef_.copy(), list(model.loss_curve_)
    with pytest.raises(ValueError, match=match):
        model.set_params(**kwargs).fit(X, y)
    np.testing.assert_array_equal(model.coef_, coef)
    assert model.loss_curve_ == curve


def test_partial_fit_is_refused():
    X, y = standardized(load_breast_cancer)
    model = LogisticRegression(optimizer="lbfgs")
    with pytest.raises(ValueError, match="full-batch"):
        model.partial_fit(X, y, classes=[0, 1])
    assert not hasattr(model, "coef_")


def test_nan_in_X_names_the_cell_and_restores_the_coefficients():
    X, y = standardized(load_breast_cancer)
    model = LogisticRegression(optimizer="lbfgs", lr=1.0, epochs=10, warm_start=True)
    with pytest.warns(dlopt.linear_model.ConvergenceWarning):
        model.fit(X, y)
    coef = model.coef_.copy()
    bad = X.copy()
    bad[7, 3] = np.nan
    with pytest.raises(ValueError, match=r"Input X contains NaN \(row 7, column 3\)"):
        model.fit(bad, y)
    np.testing.assert_array_equal(model.coef_, coef)
