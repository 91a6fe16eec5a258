"""Schedule-Free in the linear models: trained at y, coefficients (and predictions) at the average x.

The reference is the ``schedulefree`` package (a test reference only) driving a plain training loop
over torch tensors: ``opt.train()``, the same batches (full batch, or unshuffled mini-batches in row
order) and exact mean-squared-error gradients, ``opt.step()``, then ``opt.eval()`` at the end of every
fit / partial_fit, as LinearModel does (cpp/src/models/fit_loop.cpp).
"""

import numpy as np
import pytest

import dlopt
from dlopt.linear_model import LinearRegression, LogisticRegression

torch = pytest.importorskip("torch")
schedulefree = pytest.importorskip("schedulefree")
pytestmark = pytest.mark.filterwarnings("ignore:.*stopped at the epoch limit")  # short fits on purpose

CASES = {
    "ScheduleFreeSGD": (schedulefree.SGDScheduleFree, 0.05, dict(momentum=0.8, warmup_steps=5)),
    "ScheduleFreeAdamW": (schedulefree.AdamWScheduleFree, 0.05,
                          dict(betas=(0.85, 0.99), warmup_steps=3, r=0.5, weight_lr_power=1.0)),
}


def data(n=150, d=6, seed=3):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    y = X @ rng.normal(size=d) + 0.7 + 0.05 * rng.normal(size=n)
    return X, y


class Reference:
    """The package's optimizer over w (d) and b (1), float64, MSE gradients on given batches."""

    def __init__(self, name, d):
        cls, self.lr, self.params = CASES[name]
        self.w = torch.zeros(d, dtype=torch.float64)
        self.b = torch.zeros(1, dtype=torch.float64)
        self.opt = cls([self.w, self.b], lr=self.lr, foreach=False, **self.params)

    def epochs(self, X, y, epochs, batch_size):
        self.opt.train()
        X, y = torch.from_numpy(X), torch.from_numpy(y)
        for _ in range(epochs):
            for start in range(0, len(y), batch_size or len(y)):
                xb, yb = X[start:start + (batch_size or len(y))], y[start:start + (batch_size or len(y))]
                r = xb @ self.w + self.b - yb
                self.w.grad = 2 * (xb.T @ r) / len(yb)
                self.b.grad = (2 * r.mean()).reshape(1)
                self.opt.step()
        self.opt.eval()
        return self.w.numpy().copy(), float(self.b[0])


def model(name, epochs, batch_size, **kwargs):
    _, lr, params = CASES[name]
    return LinearRegression(optimizer=name.lower(), lr=lr, optimizer_params=params, epochs=epochs,
                            batch_size=batch_size, shuffle=False, **kwargs)


def fitted_against_the_package(name, batch_size, device):
    """(the package's run, the estimator fitted on `device`, the package's coef and intercept) after
    40 epochs of the same batches."""
    X, y = data()
    ref = Reference(name, X.shape[1])
    w, b = ref.epochs(X, y, 40, batch_size)
    return ref, model(name, 40, batch_size, device=device).fit(X, y), w, b


@pytest.mark.parametrize("batch_size", [None, 32], ids=["full-batch", "minibatch"])
@pytest.mark.parametrize("name", sorted(CASES))
def test_fit_matches_the_package_at_the_average(name, batch_size):
    X, y = data()
    ref, est, w, b = fitted_against_the_package(name, batch_size, "cpu")
    np.testing.assert_allclose(est.coef_, w, rtol=1e-9, atol=1e-12)
    assert est.intercept_ == pytest.approx(b, rel=1e-9, abs=1e-12)
    # the coefficients are x, not the last y: the package's train() point differs
    ref.opt.train()
    assert np.max(np.abs(ref.w.numpy() - est.coef_)) > 1e-6
    np.testing.assert_allclose(est.predict(X), X @ w + b, rtol=1e-9, atol=1e-9)
    assert est.t_ == 40 * (1 if batch_size is None else 5)


@pytest.mark.parametrize("name", sorted(CASES))
def test_partial_fit_continues_from_the_average(name):
    X, y = data()
    ref = Reference(name, X.shape[1])
    est = model(name, 1, 32)
    for _ in range(4):  # each call: train() → one epoch → eval()
        w, b = ref.epochs(X, y, 1, 32)
        est.partial_fit(X, y)
        np.testing.assert_allclose(est.coef_, w, rtol=1e-9, atol=1e-12)
        assert est.intercept_ == pytest.approx(b, rel=1e-9, abs=1e-12)
    # warm start: a second fit continues the optimizer state the same way
    ref2 = Reference(name, X.shape[1])
    ref2.epochs(X, y, 3, 32)
    w, b = ref2.epochs(X, y, 2, 32)
    warm = model(name, 3, 32, warm_start=True).fit(X, y)
    warm.set_params(epochs=2).fit(X, y)
    np.testing.assert_allclose(warm.coef_, w, rtol=1e-9, atol=1e-12)


def test_float32_and_logistic_train():
    X, y = data()
    est32 = model("ScheduleFreeSGD", 40, None).fit(X.astype(np.float32), y.astype(np.float32))
    est64 = model("ScheduleFreeSGD", 40, None).fit(X, y)
    np.testing.assert_allclose(est32.coef_, est64.coef_, rtol=1e-4, atol=1e-5)
    labels = (y > np.median(y)).astype(int)
    clf = LogisticRegression(optimizer="schedulefreeadamw", lr=0.05, epochs=200, batch_size=32,
                             random_state=0).fit(X, labels)
    assert clf.score(X, labels) > 0.9


def test_early_stopping_scores_and_keeps_the_average():
    X, y = data(n=400)
    est = LinearRegression(optimizer="schedulefreesgd", lr=0.05, epochs=30, batch_size=32, early_stopping=True,
                           n_iter_no_change=30, random_state=0).fit(X, y)
    assert len(est.validation_scores_) == 30 and max(est.validation_scores_) > 0.99
    assert est.score(X, y) > 0.99


def test_the_gpu_linear_model_takes_schedule_free():
    """Its train / eval switch runs on the device (make_device_optimizer); it used to be refused."""
    config = model("ScheduleFreeSGD", 1, None)._config()
    dlopt._core.check_train_config(config, "cuda", "float64")
    dlopt._core.check_train_config(config, "cpu", "float64")


@pytest.mark.skipif(not dlopt.cuda.is_available(), reason="needs a CUDA device and dlopt built with CUDA")
@pytest.mark.parametrize("batch_size", [None, 32], ids=["full-batch", "minibatch"])
@pytest.mark.parametrize("name", sorted(CASES))
def test_gpu_fit_and_partial_fit_match_the_package(name, batch_size):
    X, y = data()
    _, est, w, b = fitted_against_the_package(name, batch_size, "cuda")
    # the GPU sums each batch's gradient in another order: tests/test_cuda_linear.py's float64 bound
    np.testing.assert_allclose(est.coef_, w, rtol=1e-6, atol=1e-9)
    assert est.intercept_ == pytest.approx(b, rel=1e-6, abs=1e-9)
    cpu = model(name, 40, batch_size).fit(X, y)
    est.partial_fit(X, y)  # train() → one epoch → eval() on the device
    cpu.partial_fit(X, y)
    np.testing.assert_allclose(est.coef_, cpu.coef_, rtol=1e-6, atol=1e-9)
    assert est.intercept_ == pytest.approx(cpu.intercept_, rel=1e-6, abs=1e-9)
