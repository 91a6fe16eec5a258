"""Data-parallel linear models: each rank holds its own rows; ``fit(X, y, comm=comm)`` trains one model.

Every optimizer step combines the ranks' batch sums (the gradient summed over the batch's rows, the
loss and the weight) into their global sums, added in rank order in float64 (_comm.allreduce_sum_),
then divides by the global weight: every rank takes the same step and ends with the same
coefficients, bit for bit. The C++ trainer calls the reducer (LinearModel::set_batch_reducer) and
runs everything else as in a single-process fit.

Batches: an epoch cuts every rank's rows (in its own shuffled order) into the same number of
batches, ``ceil(n_total / batch_size)`` (1 for full-batch training); global batch j is the union of
every rank's j-th slice, about ``batch_size`` rows. Full-batch gradient descent therefore equals the
single-process fit on all rows up to the order of the sums (float64: ~1e-12 relative).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ._comm import agree, allreduce_sum_, get_comm


def _reducer(comm: Any):
    def reduce(grad: np.ndarray, sums: np.ndarray) -> None:
        packed = np.empty(grad.size + 2, np.float64)
        packed[: grad.size] = grad
        packed[grad.size:] = sums
        allreduce_sum_(comm, packed)
        grad[...] = packed[: grad.size]
        sums[...] = packed[grad.size:]
    return reduce


def _labels(y) -> np.ndarray:
    y = np.asarray(y).ravel()
    if y.dtype == object:
        y = y.astype(str) if any(isinstance(v, str) for v in y) else y.astype(np.float64)
    return np.unique(y)


def fit(model: Any, X, y, sample_weight, partial: bool, comm: Any, classes=None):
    """fit / partial_fit of a dlopt.linear_model estimator over every rank's rows (the estimator's
    ``comm=`` keyword lands here)."""
    from ..linear_model import _Classifier

    comm = get_comm(comm)
    error, sig = None, None
    try:
        if model._device() != "cpu":
            raise ValueError("comm: data-parallel training runs on the CPU (device='cpu')")
        if model.early_stopping:
            raise ValueError("comm: early_stopping is not supported with comm (every rank would hold out "
                             "its own validation rows); use tol for plateau stopping")
        fitted = hasattr(model, "_coef")
        first = not fitted or not (partial or model.warm_start)
        X = model._validate_X(X, reset=first)
        config = model._config()
        labels = _labels(y) if isinstance(model, _Classifier) else None
    except Exception as e:  # noqa: BLE001 - agree() raises it on every rank
        error = e
    agree(comm, error, None, "fit(comm=...)")
    if labels is not None:  # the classes of every rank's rows (a rank may miss some)
        found = comm.allgather(labels)
        error = None
        try:
            if first:
                every = np.unique(np.asarray(classes)) if classes is not None else np.unique(np.concatenate(found))
                model._check_classes(every)
                model.classes_ = every
        except Exception as e:  # noqa: BLE001 - agree() raises it on every rank
            error = e
        agree(comm, error, None, "fit(comm=...)")
    n_total = sum(comm.allgather(int(X.shape[0])))
    error = None
    try:
        dtype = X.dtype
        y = model._targets(y, X.shape[0], dtype, reset=False) if labels is not None else \
            model._targets(y, X.shape[0], dtype, reset=first)
        sw = model._weights(y, sample_weight, X.shape[0], dtype)
        sig = (X.shape[1], dtype.str, repr(sorted(config.items(), key=lambda kv: kv[0])),
               None if labels is None else repr(model.classes_.tolist()))
    except Exception as e:  # noqa: BLE001 - agree() raises it on every rank
        error = e
    agree(comm, error, sig, "fit(comm=...): features, dtype, classes and hyperparameters")
    if first:
        model._new_parameters(X.shape[1], dtype)
    model._ready_trainer(cuda=False)
    batch = config["batch_size"]
    config["batches"] = 1 if batch is None else max(1, math.ceil(n_total / batch))
    config["batch_size"] = None
    config["seed"] = model._seed_state + len(model._trainer.loss_curve)
    trainer = model._trainer
    trainer.set_config(config)
    trainer.set_batch_reducer(_reducer(comm))
    try:
        if partial:
            trainer.partial_fit(X, y, sw)
            model.n_iter_ = getattr(model, "n_iter_", 0) + 1 if not first else 1
        else:
            model.n_iter_ = int(trainer.fit(X, y, sw, model._callback()))
    finally:
        trainer.set_batch_reducer(None)
    model.loss_curve_ = list(trainer.loss_curve)
    model.lr_curve_ = list(trainer.lr_curve)
    model.validation_scores_ = None
    model.t_ = int(trainer.steps)
    if not partial:
        model._warn_if_not_converged()
    return model


def score(model: Any, X, y, sample_weight, comm: Any) -> float:
    """R² (regressors) or accuracy (classifiers) over every rank's rows (scikit-learn's definitions),
    from sums added in rank order."""
    from ..linear_model import _Classifier, _sample_weight

    comm = get_comm(comm)
    error = None
    try:
        pred = model.predict(X)
        y = np.asarray(y).ravel()
        if y.shape[0] != pred.shape[0]:
            raise ValueError(f"y: {y.shape[0]} labels for {pred.shape[0]} rows")
        w = _sample_weight(sample_weight, pred.shape[0], np.float64)
        w = np.ones(pred.shape[0]) if w is None else w.astype(np.float64)
    except Exception as e:  # noqa: BLE001 - agree() raises it on every rank
        error = e
    agree(comm, error, None, "score(comm=...)")
    if isinstance(model, _Classifier):
        sums = np.array([np.sum(w * (pred == y)), np.sum(w)], np.float64)
        allreduce_sum_(comm, sums)
        return float(sums[0] / sums[1])
    y = y.astype(np.float64)
    first = np.array([np.sum(w * y), np.sum(w)], np.float64)
    allreduce_sum_(comm, first)
    mean = first[0] / first[1]
    second = np.array([np.sum(w * (y - pred) ** 2), np.sum(w * (y - mean) ** 2)], np.float64)
    allreduce_sum_(comm, second)
    if second[1] == 0:  # constant y: scikit-learn's convention
        return 1.0 if second[0] == 0 else 0.0
    return float(1.0 - second[0] / second[1])
