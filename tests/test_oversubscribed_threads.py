"""Mini-batch epochs with more threads than cores: threads lose their core mid-partition all the time,
so which thread sums which partition, and in what order they finish, varies from batch to batch
(the batch gate, cpp/src/models/linear.cpp). The fit must be bit for bit the one-thread fit."""

import os

import numpy as np
import pytest

import dlopt
from dlopt.linear_model import LinearRegression, LogisticRegression


def data(n, d, seed):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d)).astype(np.float32)
    w = rng.normal(size=d)
    return X, X @ w + 0.1 * rng.normal(size=n)


@pytest.mark.filterwarnings("ignore::dlopt.linear_model.ConvergenceWarning")  # 3 epochs on purpose
@pytest.mark.parametrize("model", ["regression", "logistic"])
def test_oversubscribed_epochs_match_one_thread(model):
    X, target = data(20_000, 67, seed=11)  # 67 features: 256-row batches are worth two threads
    y = target.astype(np.float32) if model == "regression" else (target > 0).astype(np.float32)
    cls = LinearRegression if model == "regression" else LogisticRegression
    before = dlopt.get_num_threads()
    threads = [1, 4 * (os.cpu_count() or 2)]
    fits = []
    try:
        for n in threads:
            dlopt.set_num_threads(n)
            m = cls(optimizer="adam", lr=0.01, epochs=3, batch_size=256, random_state=0).fit(X, y)
            fits.append((m.coef_.copy(), np.atleast_1d(m.intercept_).copy(), list(m.loss_curve_)))
    finally:
        dlopt.set_num_threads(before)
    np.testing.assert_array_equal(fits[0][0], fits[1][0])
    np.testing.assert_array_equal(fits[0][1], fits[1][1])
    assert fits[0][2] == fits[1][2]
