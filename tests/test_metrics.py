"""dlopt.metrics equals scikit-learn's metrics on random inputs."""

import numpy as np
import pytest

from dlopt import metrics

sk = pytest.importorskip("sklearn.metrics")
rng = np.random.default_rng(0)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("name", ["mean_squared_error", "root_mean_squared_error", "mean_absolute_error",
                                  "r2_score"])
def test_regression_metrics_match_sklearn(name, dtype, weighted):
    for trial in range(5):
        n = int(rng.integers(1, 300))
        t = rng.normal(size=n).astype(dtype)
        p = (t + rng.normal(size=n)).astype(dtype)
        w = rng.uniform(0.1, 3, size=n) if weighted else None
        if n == 1 and name == "r2_score":
            continue  # sklearn warns and returns nan for one sample; dlopt follows force_finite
        ours = getattr(metrics, name)(t, p, sample_weight=None if w is None else w.astype(dtype))
        theirs = getattr(sk, name)(t.astype(np.float64), p.astype(np.float64), sample_weight=w)
        assert ours == pytest.approx(theirs, rel=1e-5 if dtype == np.float32 else 1e-12)


def test_r2_of_a_constant_target():
    assert metrics.r2_score([3.0, 3.0], [3.0, 3.0]) == sk.r2_score([3.0, 3.0], [3.0, 3.0]) == 1.0
    assert metrics.r2_score([3.0, 3.0], [2.0, 3.0]) == sk.r2_score([3.0, 3.0], [2.0, 3.0]) == 0.0


def random_labels(n, k, kind):
    codes = rng.integers(0, k, size=n)
    return np.array(["cat", "dog", "eel", "fox", "gnu"])[codes] if kind == "str" else codes


@pytest.mark.parametrize("kind", ["int", "str"])
@pytest.mark.parametrize("weighted", [False, True])
def test_classification_metrics_match_sklearn(kind, weighted):
    for trial in range(10):
        n, k = int(rng.integers(1, 200)), int(rng.integers(2, 6))
        t, p = random_labels(n, k, kind), random_labels(n, k, kind)
        w = rng.uniform(0.1, 3, size=n) if weighted else None
        assert metrics.accuracy_score(t, p, sample_weight=w) == pytest.approx(
            sk.accuracy_score(t, p, sample_weight=w), rel=1e-12)
        np.testing.assert_allclose(metrics.confusion_matrix(t, p, sample_weight=w),
                                   sk.confusion_matrix(t, p, sample_weight=w), rtol=1e-12)
        for name in ("precision_score", "recall_score", "f1_score"):
            for average in ("micro", "macro", "weighted", None):
                ours = getattr(metrics, name)(t, p, average=average, sample_weight=w, zero_division=0)
                theirs = getattr(sk, name)(t, p, average=average, sample_weight=w, zero_division=0)
                np.testing.assert_allclose(ours, theirs, rtol=1e-12, err_msg=f"{name} {average}")


@pytest.mark.parametrize("zero_division", [0, 1, np.nan])
def test_binary_scores_and_zero_division_match_sklearn(zero_division):
    for trial in range(20):
        n = int(rng.integers(1, 50))
        t, p = rng.integers(0, 2, size=n), rng.integers(0, 2, size=n)
        if trial % 5 == 0:
            p = np.zeros(n, dtype=np.int64)  # nothing predicted positive: precision is 0/0
        for name in ("precision_score", "recall_score", "f1_score"):
            ours = getattr(metrics, name)(t, p, zero_division=zero_division)
            theirs = getattr(sk, name)(t, p, zero_division=zero_division)
            np.testing.assert_allclose(ours, theirs, rtol=1e-12, err_msg=name)
    assert metrics.f1_score(["a", "b", "b"], ["a", "b", "a"], pos_label="b") == sk.f1_score(
        ["a", "b", "b"], ["a", "b", "a"], pos_label="b")


def test_labels_subset_and_order():
    t, p = random_labels(200, 5, "int"), random_labels(200, 5, "int")
    labels = [3, 0, 1]
    np.testing.assert_array_equal(metrics.confusion_matrix(t, p, labels=labels),
                                  sk.confusion_matrix(t, p, labels=labels))
    for average in ("micro", "macro", "weighted", None):
        np.testing.assert_allclose(metrics.f1_score(t, p, labels=labels, average=average),
                                   sk.f1_score(t, p, labels=labels, average=average, zero_division=0),
                                   rtol=1e-12)


@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("zero_division", [0, 1])
def test_precision_and_recall_with_a_labels_subset_in_every_averaging_mode(weighted, zero_division):
    """With every label, micro precision = micro recall = accuracy; with a subset they differ, so
    this is where swapping them (or mixing up the per-label counts) shows."""
    labels = [4, 0, 2]
    told_apart = set()
    for trial in range(8):
        n = int(rng.integers(20, 200))
        t, p = random_labels(n, 5, "int"), random_labels(n, 5, "int")
        w = rng.uniform(0.1, 3, size=n) if weighted else None
        kw = dict(labels=labels, sample_weight=w, zero_division=zero_division)
        for average in ("micro", "macro", "weighted", None):
            precision = metrics.precision_score(t, p, average=average, **kw)
            recall = metrics.recall_score(t, p, average=average, **kw)
            np.testing.assert_allclose(precision, sk.precision_score(t, p, average=average, **kw), rtol=1e-12,
                                       err_msg=f"precision {average}")
            np.testing.assert_allclose(recall, sk.recall_score(t, p, average=average, **kw), rtol=1e-12,
                                       err_msg=f"recall {average}")
            if not np.allclose(precision, recall):
                told_apart.add(str(average))
    assert told_apart == {"micro", "macro", "weighted", "None"}  # so a swap of the two would fail above
    # one label never predicted, one never true: the zero_division cases of the subset
    t, p = np.array([0, 0, 1, 2, 2]), np.array([0, 1, 1, 1, 2])
    for average in ("micro", "macro", "weighted", None):
        for name in ("precision_score", "recall_score"):
            np.testing.assert_allclose(
                getattr(metrics, name)(t, p, labels=[3, 2, 0], average=average, zero_division=zero_division),
                getattr(sk, name)(t, p, labels=[3, 2, 0], average=average, zero_division=zero_division),
                rtol=1e-12, err_msg=f"{name} {average}")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_log_loss_matches_sklearn(dtype):
    for k in (2, 3, 5):
        n = 100
        t = rng.integers(0, k, size=n)
        proba = rng.dirichlet(np.ones(k), size=n).astype(dtype)
        proba[0] = 0
        proba[0, (t[0] + 1) % k] = 1  # a confident wrong answer: exercises the clipping
        w = rng.uniform(0.5, 2, size=n)
        ours = metrics.log_loss(t, proba, sample_weight=w, labels=list(range(k)))
        theirs = sk.log_loss(t, proba, sample_weight=w, labels=list(range(k)))
        assert ours == pytest.approx(theirs, rel=1e-5 if dtype == np.float32 else 1e-12)
    p1 = rng.uniform(size=50)
    t1 = rng.integers(0, 2, size=50)
    assert metrics.log_loss(t1, p1) == pytest.approx(sk.log_loss(t1, p1), rel=1e-12)


def test_bad_inputs():
    with pytest.raises(ValueError, match="different lengths"):
        metrics.mean_squared_error([1.0, 2.0], [1.0])
    with pytest.raises(ValueError, match="multiclass"):
        metrics.f1_score([0, 1, 2], [0, 1, 2])
    with pytest.raises(ValueError, match="continuous"):
        metrics.accuracy_score([0.5, 1.0], [0, 1])
    with pytest.raises(ValueError, match="NaN"):
        metrics.r2_score([np.nan, 1.0], [1.0, 1.0])
