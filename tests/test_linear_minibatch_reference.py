"""Shuffled mini-batch epochs against a NumPy transcription, step by step.

The reference redoes what docs/linear_models.md specifies: each epoch permutes the previous row
order with a Fisher–Yates shuffle driven by splitmix64 (seeded from random_state), cuts it into
batches, and takes one SGD step on each batch's weighted mean-loss gradient. Row lengths are chosen
to cover every way dlopt reads random rows: under 64 bytes, whole 64-byte chunks, chunks plus a
tail, and rows too long for the fused one-output pass; one and two threads.
"""

import numpy as np
import pytest

import dlopt
from dlopt.linear_model import LinearRegression, LogisticRegression

# These tests compare a few epochs with a reference trajectory; whether the fits converged is not
# their subject (tests/test_convergence.py is), so the ConvergenceWarning of these short fits is expected.
pytestmark = pytest.mark.filterwarnings("ignore::dlopt.linear_model.ConvergenceWarning")

MASK64 = (1 << 64) - 1


class SplitMix64:
    def __init__(self, state):
        self.s = state & MASK64

    def next(self):
        self.s = (self.s + 0x9E3779B97F4A7C15) & MASK64
        z = self.s
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
        return z ^ (z >> 31)

    def below(self, n):
        """Uniform in [0, n): Lemire's multiply-shift with rejection."""
        m = (self.next() >> 32) * n
        if (m & 0xFFFFFFFF) < n:
            threshold = ((1 << 32) - n) % n
            while (m & 0xFFFFFFFF) < threshold:
                m = (self.next() >> 32) * n
        return m >> 32

    def shuffle(self, a):
        for i in range(len(a) - 1, 0, -1):
            j = self.below(i + 1)
            a[i], a[j] = a[j], a[i]


def penalty_gradient(w, penalty, alpha, l1_ratio):
    """The (sub)gradient of scikit-learn's SGD penalty alpha * R(w), with R(w) = |w|^2 / 2 ("l2"),
    |w|_1 ("l1"), l1_ratio |w|_1 + (1 - l1_ratio) |w|^2 / 2 ("elasticnet"); sign(0) = 0."""
    if penalty is None:
        return np.zeros_like(w)
    rho = {"l2": 0.0, "l1": 1.0, "elasticnet": l1_ratio}[penalty]
    return alpha * (rho * np.sign(w) + (1 - rho) * w)


def reference_sgd(X, y, sw, logistic, lr, epochs, batch_size, seed, penalty=None, alpha=0.0, l1_ratio=0.15):
    X, y, sw = X.astype(np.float64), y.astype(np.float64), sw.astype(np.float64)
    n, d = X.shape
    rows = list(range(n))
    state = SplitMix64(seed * 0x2545F4914F6CDD1D + 0x1234567).next()
    w, b = np.zeros(d), 0.0
    for _ in range(epochs):
        rng = SplitMix64(state)
        rng.shuffle(rows)
        state = rng.s
        for start in range(0, n, batch_size):
            batch = np.array(rows[start:start + batch_size])
            z = X[batch] @ w + b
            dz = (1 / (1 + np.exp(-z)) - y[batch]) if logistic else 2 * (z - y[batch])
            dz *= sw[batch]
            gw = (X[batch].T @ dz) / sw[batch].sum() + penalty_gradient(w, penalty, alpha, l1_ratio)
            w = w - lr * gw
            b = b - lr * dz.sum() / sw[batch].sum()  # the intercept is not penalized
    return w, b


@pytest.fixture(params=[1, 2], ids=["1 thread", "2 threads"])
def threads(request):
    before = dlopt.get_num_threads()
    dlopt.set_num_threads(request.param)
    yield request.param
    dlopt.set_num_threads(before)


@pytest.mark.parametrize("d", [5, 13, 16, 100, 143])
@pytest.mark.parametrize("logistic", [False, True], ids=["squared error", "logistic"])
@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "sample_weight"])
def test_minibatch_epochs_match_a_numpy_transcription(d, logistic, weighted, threads):
    rng = np.random.default_rng(d)
    n = 1000
    X = rng.normal(size=(n, d))
    w_true = rng.normal(size=d) / np.sqrt(d)
    z = X @ w_true + 0.3
    y = (rng.random(n) < 1 / (1 + np.exp(-z))).astype(float) if logistic else z + 0.1 * rng.normal(size=n)
    sw = rng.uniform(0.5, 2.0, size=n) if weighted else np.ones(n)
    kw = dict(optimizer="sgd", lr=0.05, epochs=3, batch_size=256, random_state=7)
    model = (LogisticRegression if logistic else LinearRegression)(**kw)
    model.fit(X, y, sample_weight=sw if weighted else None)
    w, b = reference_sgd(X, y, sw, logistic, 0.05, 3, 256, seed=7)
    np.testing.assert_allclose(model.coef_.ravel(), w, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(np.ravel(model.intercept_)[0], b, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("d", [13, 100])
def test_float32_minibatch_epochs_match_the_transcription(d, threads):
    rng = np.random.default_rng(1)
    X = rng.normal(size=(1000, d)).astype(np.float32)
    y = (X @ (rng.normal(size=d) / np.sqrt(d)) + 0.3).astype(np.float32)
    model = LinearRegression(optimizer="sgd", lr=0.05, epochs=3, batch_size=256, random_state=3).fit(X, y)
    w, b = reference_sgd(X, y, np.ones(1000), False, 0.05, 3, 256, seed=3)
    np.testing.assert_allclose(model.coef_, w, rtol=2e-4, atol=2e-5)
    assert model.intercept_ == pytest.approx(b, rel=2e-4, abs=2e-5)


@pytest.mark.parametrize("penalty, l1_ratio", [("l1", 0.15), ("elasticnet", 0.3), ("elasticnet", 0.8), ("l2", 0.15)])
@pytest.mark.parametrize("logistic", [False, True], ids=["squared error", "logistic"])
def test_penalties_match_a_numpy_transcription_of_sklearns_definition(penalty, l1_ratio, logistic):
    """alpha is large enough that the L1 and L2 parts each move the coefficients: weighting them the
    other way round (l1_ratio for the L2 part) misses the trajectory by far more than the tolerance."""
    rng = np.random.default_rng(5)
    n, d = 400, 7
    X = rng.normal(size=(n, d))
    z = X @ rng.normal(size=d) + 0.2
    y = (rng.random(n) < 1 / (1 + np.exp(-z))).astype(float) if logistic else z + 0.1 * rng.normal(size=n)
    kw = dict(optimizer="sgd", lr=0.05, epochs=4, batch_size=64, random_state=11)
    model = (LogisticRegression if logistic else LinearRegression)(penalty=penalty, alpha=0.05, l1_ratio=l1_ratio,
                                                                   **kw).fit(X, y)
    w, b = reference_sgd(X, y, np.ones(n), logistic, 0.05, 4, 64, seed=11, penalty=penalty, alpha=0.05,
                         l1_ratio=l1_ratio)
    np.testing.assert_allclose(model.coef_.ravel(), w, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(np.ravel(model.intercept_)[0], b, rtol=1e-10, atol=1e-12)
    swapped, _ = reference_sgd(X, y, np.ones(n), logistic, 0.05, 4, 64, seed=11, penalty="elasticnet",
                               alpha=0.05, l1_ratio={"l1": 0.0, "l2": 1.0}.get(penalty, 1 - l1_ratio))
    assert np.max(np.abs(swapped - w)) > 1e-4
