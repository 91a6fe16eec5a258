"""Data-parallel linear models: every rank holds its own rows. Full-batch training equals the
single-process fit on all rows (float64: 1e-12 relative, float32: 1e-6); every rank ends with the same
coefficients bit for bit; score(comm=) equals the score on all rows."""

import numpy as np
import pytest

import dlopt
from mpi_helpers import assert_all, same, sub_comms, world

# short fits on purpose: the ConvergenceWarning they give is beside the point here
pytestmark = pytest.mark.filterwarnings("ignore:.*stopped at the epoch limit")


def data(n=600, d=6, seed=0, dtype=np.float64):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d)).astype(dtype)
    w = rng.standard_normal(d)
    y = (X @ w + 0.3 + 0.1 * rng.standard_normal(n)).astype(dtype)
    return X, y


def my_rows(n, comm):
    r, size = comm.Get_rank(), comm.Get_size()
    return slice(n * r // size, n * (r + 1) // size)


def rel(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-300))


@pytest.mark.parametrize("dtype,tol,optimizer", [(np.float64, 1e-12, "sgd"), (np.float64, 1e-12, "adam"),
                                                 (np.float32, 1e-6, "sgd")])
def test_full_batch_equals_single_process(dtype, tol, optimizer):
    X, y = data(dtype=dtype)
    kwargs = dict(solver="gradient", optimizer=optimizer, lr=0.05, epochs=60)
    single = dlopt.LinearRegression(**kwargs).fit(X, y)
    for size, comm in sub_comms():
        if comm is None:
            continue
        rows = my_rows(len(X), comm)
        model = dlopt.LinearRegression(**kwargs).fit(X[rows], y[rows], comm=comm)
        coefs = comm.allgather(np.concatenate([model.coef_.ravel(), [model.intercept_]]))
        assert_all(comm, all(same(c, coefs[0]) for c in coefs), f"ranks agree bitwise on {size} ranks")
        err = rel(coefs[0], np.concatenate([single.coef_.ravel(), [single.intercept_]]))
        assert_all(comm, err <= tol, f"{dtype.__name__} {optimizer} on {size} ranks: relative error {err:.2e}")
        assert_all(comm, rel(model.loss_curve_, single.loss_curve_) <= 100 * tol, "the loss curve")
        s = model.score(X[rows], y[rows], comm=comm)
        assert_all(comm, abs(s - single.score(X, y)) <= 1e-9, f"score(comm=) {s} vs {single.score(X, y)}")


def test_classifiers_union_of_classes_and_accuracy():
    rng = np.random.default_rng(1)
    X = rng.standard_normal((300, 4))
    y = np.argmax(X[:, :3], axis=1)
    order = np.argsort(y, kind="stable")  # sorted by class: some ranks miss some classes
    X, y = X[order], y[order]
    single = dlopt.SoftmaxRegression(lr=0.1, epochs=40).fit(X, y)
    for size, comm in sub_comms():
        if comm is None:
            continue
        rows = my_rows(len(X), comm)
        model = dlopt.SoftmaxRegression(lr=0.1, epochs=40).fit(X[rows], y[rows], comm=comm)
        assert_all(comm, same(model.classes_, np.array([0, 1, 2])), "classes of every rank")
        assert_all(comm, rel(model.coef_, single.coef_) <= 1e-12, f"softmax on {size} ranks")
        acc = model.score(X[rows], y[rows], comm=comm)
        assert_all(comm, abs(acc - single.score(X, y)) <= 1e-12, "accuracy across ranks")
        yb = np.where(y > 0, "yes", "no")
        logit = dlopt.LogisticRegression(lr=0.1, epochs=30).fit(X[rows], yb[rows], comm=comm)
        ref = dlopt.LogisticRegression(lr=0.1, epochs=30).fit(X, yb)
        assert_all(comm, rel(logit.coef_, ref.coef_) <= 1e-12, f"logistic on {size} ranks")


def test_mini_batch_is_defined_and_agrees_across_ranks():
    X, y = data(n=1000)
    for size, comm in sub_comms():
        if comm is None:
            continue
        rows = my_rows(len(X), comm)
        model = dlopt.LinearRegression(optimizer="sgd", lr=0.05, batch_size=64, epochs=20, random_state=3)
        model.fit(X[rows], y[rows], comm=comm)
        coefs = comm.allgather(model.coef_.copy())
        assert_all(comm, all(same(c, coefs[0]) for c in coefs), "ranks agree after mini-batch SGD")
        # ceil(1000 / 64) = 16 global batches per epoch, each about 64 rows over all ranks
        assert_all(comm, model.t_ == 16 * 20, f"steps {model.t_}")
        assert_all(comm, model.score(X[rows], y[rows], comm=comm) > 0.99, "it learns")
        model.partial_fit(X[rows], y[rows], comm=comm)
        assert_all(comm, model.t_ == 16 * 21, "partial_fit: one more epoch")


def test_bad_input_raises_on_every_rank():
    w = world()
    X, y = data(n=60)
    rows = my_rows(len(X), w)
    with pytest.raises(ValueError, match="early_stopping"):
        dlopt.LinearRegression(optimizer="sgd", early_stopping=True).fit(X[rows], y[rows], comm=w)
    with pytest.raises(ValueError, match="solver"):
        dlopt.LinearRegression(solver="closed_form").fit(X[rows], y[rows], comm=w)
    with pytest.raises(TypeError, match="intra-communicator"):
        dlopt.LinearRegression(optimizer="sgd").fit(X[rows], y[rows], comm=3)
    if w.Get_size() > 1:
        Xr = X[rows] if w.Get_rank() else X[rows][:, :5]
        model = dlopt.LinearRegression(optimizer="sgd", epochs=2)
        with pytest.raises(ValueError, match="ranks disagree"):
            model.fit(Xr, y[rows], comm=w)
        assert_all(w, not hasattr(model, "_coef"), "nothing fitted")
