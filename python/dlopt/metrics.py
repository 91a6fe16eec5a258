"""Regression and classification metrics computed in dlopt's C++ core, with scikit-learn's definitions.

The sums run in C++ in double precision; this module only validates arguments and maps class labels
(any sortable values: ints, strings, ...) to class codes.

>>> from dlopt.metrics import accuracy_score, f1_score, mean_squared_error
>>> mean_squared_error([1.0, 2.0, 3.0], [1.0, 2.0, 5.0])
1.3333333333333333
>>> accuracy_score(["a", "b", "b"], ["a", "b", "a"])
0.6666666666666666
>>> round(f1_score([0, 1, 1, 1], [0, 1, 0, 1]), 4)
0.8
"""

from __future__ import annotations

import math
import warnings

import numpy as np

from . import _core
from ._docstrings import fill

__all__ = ["mean_squared_error", "root_mean_squared_error", "mean_absolute_error", "r2_score",
           "accuracy_score", "precision_score", "recall_score", "f1_score", "confusion_matrix", "log_loss"]


def _values(a, what: str) -> np.ndarray:
    a = np.asarray(a)
    if a.ndim == 2 and a.shape[1] == 1:
        a = a[:, 0]
    if a.ndim != 1:
        raise ValueError(f"{what}: expected a 1-D array, got shape {a.shape}")
    return a


def _regression(y_true, y_pred, sample_weight):
    t, p = _values(y_true, "y_true"), _values(y_pred, "y_pred")
    if t.shape != p.shape:
        raise ValueError(f"y_true and y_pred have different lengths: {t.shape[0]} and {p.shape[0]}")
    if t.shape[0] == 0:
        raise ValueError("y_true: needs at least 1 sample, got 0")
    dtype = np.float32 if t.dtype == np.float32 and p.dtype == np.float32 else np.float64
    t = np.ascontiguousarray(t, dtype=dtype)
    p = np.ascontiguousarray(p, dtype=dtype)
    for a, name in ((t, "y_true"), (p, "y_pred")):
        if not np.all(np.isfinite(a)):
            raise ValueError(f"Input {name} contains NaN or infinity")
    w = None
    if sample_weight is not None:
        w = np.ascontiguousarray(_values(sample_weight, "sample_weight"), dtype=dtype)
        if w.shape != t.shape:
            raise ValueError(f"sample_weight: expected shape {t.shape}, got {w.shape}")
    return t, p, w


def mean_squared_error(y_true, y_pred, *, sample_weight=None) -> float:
    """Mean of ``(y_true - y_pred) ** 2`` (weighted by ``sample_weight``).

    {sections}

    Examples
    --------
    >>> from dlopt.metrics import mean_squared_error
    >>> mean_squared_error([1.0, 2.0], [1.0, 4.0])
    2.0
    >>> mean_squared_error([1.0, 2.0], [1.0, 4.0], sample_weight=[3, 1])
    1.0
    """
    return _core.mean_squared_error(*_regression(y_true, y_pred, sample_weight))


def root_mean_squared_error(y_true, y_pred, *, sample_weight=None) -> float:
    """Square root of :func:`mean_squared_error`.

    {sections}

    Examples
    --------
    >>> from dlopt.metrics import root_mean_squared_error
    >>> root_mean_squared_error([0.0, 0.0, 0.0], [3.0, 3.0, 3.0])
    3.0
    """
    return math.sqrt(mean_squared_error(y_true, y_pred, sample_weight=sample_weight))


def mean_absolute_error(y_true, y_pred, *, sample_weight=None) -> float:
    """Mean of ``|y_true - y_pred|`` (weighted by ``sample_weight``).

    {sections}

    Examples
    --------
    >>> from dlopt.metrics import mean_absolute_error
    >>> mean_absolute_error([1.0, 2.0, 3.0], [2.0, 2.0, 1.0])
    1.0
    """
    return _core.mean_absolute_error(*_regression(y_true, y_pred, sample_weight))


def r2_score(y_true, y_pred, *, sample_weight=None) -> float:
    """Coefficient of determination ``1 - SS_res / SS_tot``; for a constant ``y_true``, 1.0 if the
    predictions are perfect, else 0.0 (scikit-learn's ``force_finite=True``).

    {sections}

    Examples
    --------
    >>> from dlopt.metrics import r2_score
    >>> r2_score([1.0, 2.0, 3.0], [1.0, 2.0, 3.0]), r2_score([1.0, 2.0, 3.0], [2.0, 2.0, 2.0])
    (1.0, 0.0)
    """
    return _core.r2_score(*_regression(y_true, y_pred, sample_weight))


# ---- classification ------------------------------------------------------------------------------

def _labels(a, what: str) -> np.ndarray:
    """Class labels as scikit-learn takes them (its ``type_of_target`` checks, found by experiment):
    numbers (ints, bools, floats without a fraction), strings or dates; not complex numbers, bytes, an
    object array holding anything but strings (None, big ints, lists, numbers), NaN, infinities or
    fractions."""
    a = _values(a, what)
    kind = a.dtype.kind
    if kind == "c":
        raise ValueError(f"{what}: complex labels are not supported")
    if kind == "S" or (kind == "O" and any(isinstance(v, bytes) for v in a.flat)):
        raise TypeError(f"{what}: labels represented as bytes are not supported; decode them to str")
    if kind == "O" and not all(isinstance(v, str) for v in a.flat):
        odd = next(v for v in a.flat if not isinstance(v, str))
        raise ValueError(f"{what}: an object array of labels must hold only strings, got "
                         f"{type(odd).__name__} {odd!r:.40}; pass a numeric or a string array")
    if kind == "f" and not np.all(np.isfinite(a)):
        raise ValueError(f"Input {what} contains NaN or infinity")
    if kind == "f" and np.any(a != np.round(a)):
        raise ValueError(f"Classification metrics can't handle continuous targets ({what}); "
                         "pass class labels, not probabilities or scores")
    return a


def _is_text(a: np.ndarray) -> bool:
    return a.dtype.kind in "UO"  # an object array reaching here holds only strings


def _encode(y_true, y_pred, labels=None):
    """(codes_true, codes_pred, classes); labels outside ``classes`` get code -1."""
    t, p = _labels(y_true, "y_true"), _labels(y_pred, "y_pred")
    if t.shape[0] != p.shape[0]:
        raise ValueError(f"y_true and y_pred have different lengths: {t.shape[0]} and {p.shape[0]}")
    if t.shape[0] == 0:
        raise ValueError("y_true: needs at least 1 sample, got 0")
    if _is_text(t) != _is_text(p):
        raise ValueError(f"Mix of label input types (string and number): y_true is {t.dtype}, y_pred is "
                         f"{p.dtype}; the predictions must be labels of the same kind as the true ones")
    classes = np.unique(np.concatenate([t, p])) if labels is None else np.asarray(labels)
    if classes.size == 0:
        raise ValueError("labels: must contain at least one label")

    def codes(a):
        order = np.argsort(classes, kind="stable")
        s = classes[order]
        pos = np.clip(np.searchsorted(s, a), 0, len(s) - 1)
        return np.where(s[pos] == a, order[pos], -1).astype(np.int64)

    return codes(t), codes(p), classes


def _weights(sample_weight, n):
    if sample_weight is None:
        return None
    w = np.ascontiguousarray(_values(sample_weight, "sample_weight"), dtype=np.float64)
    if w.shape[0] != n:
        raise ValueError(f"sample_weight: expected {n} weights, got {w.shape[0]}")
    return w


def accuracy_score(y_true, y_pred, *, normalize=True, sample_weight=None) -> float:
    """Fraction (``normalize=True``) or weighted count of rows where ``y_pred == y_true``.

    Parameters
    ----------
    {labels_true_pred}
    normalize : bool, default True
        Return the fraction of correct rows; ``False``: their (weighted) count.
    {sample_weight}

    Returns
    -------
    float
        The accuracy, or the count of correct rows.

    {raises}

    Examples
    --------
    >>> from dlopt.metrics import accuracy_score
    >>> accuracy_score([0, 1, 1, 0], [0, 1, 0, 0])
    0.75
    >>> accuracy_score([0, 1, 1, 0], [0, 1, 0, 0], normalize=False)
    3.0
    """
    t, p, _ = _encode(y_true, y_pred)
    w = _weights(sample_weight, t.shape[0])
    acc = _core.accuracy_score(t, p, w)
    if normalize:
        return acc
    return acc * (t.shape[0] if w is None else float(w.sum()))


def confusion_matrix(y_true, y_pred, *, labels=None, sample_weight=None) -> np.ndarray:
    """``C[i, j]``: rows of true class ``labels[i]`` predicted as ``labels[j]`` (labels sorted by default).

    Integer counts without weights (as scikit-learn), float sums with them.

    Parameters
    ----------
    {labels_true_pred}
    labels : array-like, optional
        The classes, in the order of the rows and columns; ``None``: every label present, sorted.
    {sample_weight}

    Returns
    -------
    numpy.ndarray of shape (n_classes, n_classes)
        The counts: int64 without weights, float64 with them.

    {raises}

    Examples
    --------
    >>> from dlopt.metrics import confusion_matrix
    >>> confusion_matrix(["cat", "dog", "dog"], ["cat", "cat", "dog"])
    array([[1, 0],
           [1, 1]])
    """
    t, p, classes = _encode(y_true, y_pred, labels)
    w = _weights(sample_weight, t.shape[0])
    cm = _core.confusion_matrix(t, p, len(classes), w)
    return cm.astype(np.int64) if w is None else cm


def _prf(score, y_true, y_pred, labels, pos_label, average, sample_weight, zero_division):
    if zero_division == "warn":
        zero_division = 0.0
    zero_division = float(zero_division)
    if not (zero_division in (0.0, 1.0) or math.isnan(zero_division)):
        raise ValueError(f"zero_division: expected 0, 1, np.nan or 'warn', got {zero_division!r}")
    if average not in (None, "binary", "micro", "macro", "weighted"):
        raise ValueError(f"average: expected None, 'binary', 'micro', 'macro' or 'weighted', got {average!r}")
    t, p, classes = _encode(y_true, y_pred, labels)
    w = _weights(sample_weight, t.shape[0])
    pos = 0
    if average == "binary":
        present = np.unique(np.concatenate([_values(y_true, "y_true"), _values(y_pred, "y_pred")]))
        if len(present) > 2:
            raise ValueError("Target is multiclass but average='binary'. Please choose another average "
                             "setting, one of [None, 'micro', 'macro', 'weighted'].")
        hits = np.flatnonzero(classes == pos_label)
        if hits.size == 0:
            if len(present) == 2 or labels is not None:
                raise ValueError(f"pos_label={pos_label!r} is not a valid label. It should be one of "
                                 f"{present.tolist()}")
            # only one label present and it is not pos_label: nothing is positive
            t = np.full_like(t, -1)
            p = np.full_like(p, -1)
            classes = np.append(classes, pos_label)
            pos = len(classes) - 1
        else:
            pos = int(hits[0])
    out = _core.precision_recall_f1(score, t, p, len(classes), w, average, pos, zero_division)
    return np.asarray(out) if average is None else float(out[0])


def precision_score(y_true, y_pred, *, labels=None, pos_label=1, average="binary", sample_weight=None,
                    zero_division=0.0):
    """Precision ``tp / (tp + fp)``; ``average`` is "binary" (class ``pos_label``), "micro", "macro",
    "weighted" (by support) or None (one value per label). A zero denominator gives ``zero_division``.

    {sections}

    Examples
    --------
    >>> from dlopt.metrics import precision_score
    >>> precision_score([0, 1, 1, 0], [1, 1, 1, 0])
    0.6666666666666666
    >>> precision_score([0, 1, 2, 2], [0, 2, 2, 2], average=None)
    array([1.        , 0.        , 0.66666667])
    """
    return _prf("precision", y_true, y_pred, labels, pos_label, average, sample_weight, zero_division)


def recall_score(y_true, y_pred, *, labels=None, pos_label=1, average="binary", sample_weight=None,
                 zero_division=0.0):
    """Recall ``tp / (tp + fn)``, averaged as in :func:`precision_score`.

    {sections}

    Examples
    --------
    >>> from dlopt.metrics import recall_score
    >>> recall_score([0, 1, 1, 0], [0, 1, 0, 0])
    0.5
    """
    return _prf("recall", y_true, y_pred, labels, pos_label, average, sample_weight, zero_division)


def f1_score(y_true, y_pred, *, labels=None, pos_label=1, average="binary", sample_weight=None,
             zero_division=0.0):
    """F1 ``2 tp / (2 tp + fp + fn)``, averaged as in :func:`precision_score`.

    {sections}

    Examples
    --------
    >>> from dlopt.metrics import f1_score
    >>> f1_score(["a", "b", "b", "a"], ["a", "b", "a", "a"], average="macro")
    0.7333333333333334
    """
    return _prf("f1", y_true, y_pred, labels, pos_label, average, sample_weight, zero_division)


def log_loss(y_true, y_proba, *, labels=None, sample_weight=None) -> float:
    """Mean cross-entropy ``-log p(true class)``, probabilities clipped to [eps, 1 - eps].

    ``y_proba`` is (n_samples, n_classes) with columns in sorted label order, or 1-D with the
    probability of the larger of two labels.

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
        The true labels.
    y_proba : array-like of shape (n_samples, n_classes) or (n_samples,)
        The predicted probabilities (each row sums to 1; a warning says when not).
    labels : array-like, optional
        All the classes, when ``y_true`` does not contain every one.
    {sample_weight}

    Returns
    -------
    float
        The (weighted) mean negative log-likelihood.

    Raises
    ------
    ValueError
        ``y_proba`` of the wrong shape, not finite or outside [0, 1], or labels not in ``labels``.

    Examples
    --------
    >>> from dlopt.metrics import log_loss
    >>> round(log_loss([0, 1], [[0.8, 0.2], [0.4, 0.6]]), 6)
    0.366985
    """
    t = _labels(y_true, "y_true")
    classes = np.unique(t) if labels is None else np.unique(np.asarray(labels))
    proba = np.asarray(y_proba)
    if proba.dtype not in (np.float32, np.float64):
        proba = proba.astype(np.float64)
    if proba.ndim == 1:
        proba = np.stack([1 - proba, proba], axis=1)
    if proba.ndim != 2 or proba.shape[0] != t.shape[0]:
        raise ValueError(f"y_proba: expected shape ({t.shape[0]}, n_classes), got {np.shape(y_proba)}")
    if len(classes) == 1 and proba.shape[1] == 2:
        raise ValueError("y_true contains only one label; pass labels=[...] with all the classes")
    if proba.shape[1] != len(classes):
        raise ValueError(f"y_proba has {proba.shape[1]} columns but y_true has {len(classes)} labels "
                         f"{classes.tolist()}; pass labels=[...]")
    if not np.all(np.isfinite(proba)):
        raise ValueError("Input y_proba contains NaN or infinity")
    if proba.max() > 1 or proba.min() < 0:
        raise ValueError("y_proba: probabilities must be in [0, 1]")
    if not np.allclose(proba.sum(axis=1), 1, rtol=np.sqrt(np.finfo(proba.dtype).eps)):
        warnings.warn("The y_prob values do not sum to one. Make sure to pass probabilities.", UserWarning,
                      stacklevel=2)
    codes, _, _ = _encode(t, t, classes)
    if np.any(codes < 0):
        raise ValueError(f"y_true contains labels not in labels={classes.tolist()}")
    return _core.log_loss(codes, np.ascontiguousarray(proba), _weights(sample_weight, t.shape[0]))


_CLASSIFICATION_RAISES = """Raises
------
ValueError
    Inputs of different lengths or empty, continuous values (floats that are not integers), NaN or
    infinite labels, complex labels, an object array holding anything but strings, string labels
    mixed with numeric ones (``y_true`` against ``y_pred``), or an argument outside its choices.
TypeError
    Labels given as bytes (as scikit-learn), or labels that cannot be sorted together."""
_SAMPLE_WEIGHT = """sample_weight : array-like of shape (n_samples,), optional
    Weight of each row; ``None``: equal weights."""
_Y = """y_true : array-like of shape (n_samples,)
    {kind}
y_pred : array-like of shape (n_samples,)
    {pred}"""
_PRF = """labels : array-like, optional
    The labels to score with ``average=None``, ``"macro"`` or ``"weighted"``; ``None``: every
    label present, sorted.
pos_label : int, str, ..., default 1
    The positive class when ``average="binary"``.
average : {'binary', 'micro', 'macro', 'weighted'} or None, default 'binary'
    How the per-class scores are combined: the positive class only, global counts, their mean,
    their mean weighted by support, or none (one score per label).
sample_weight : array-like of shape (n_samples,), optional
    Weight of each row; ``None``: equal weights.
zero_division : {0.0, 1.0, nan, 'warn'}, default 0.0
    The score when its denominator is zero (``'warn'`` counts as 0, without a warning)."""
_REGRESSION = """Parameters
----------
""" + _Y.format(kind="The true values.", pred="The predicted values.") + "\n" + _SAMPLE_WEIGHT + """

Returns
-------
float
    {what}

Raises
------
ValueError
    Inputs of different lengths, empty, not 1-D (or one column), or non-finite."""
for _fn, _what in ((mean_squared_error, "The (weighted) mean squared error."),
                   (root_mean_squared_error, "The (weighted) root mean squared error."),
                   (mean_absolute_error, "The (weighted) mean absolute error."),
                   (r2_score, "The coefficient of determination (at most 1; 1 is a perfect fit).")):
    fill(_fn, sections=_REGRESSION.replace("{what}", _what))
for _fn in (accuracy_score, confusion_matrix):
    fill(_fn, labels_true_pred=_Y.format(kind="The true labels (any sortable values: ints, strings, ...).",
                                         pred="The predicted labels."), sample_weight=_SAMPLE_WEIGHT,
         raises=_CLASSIFICATION_RAISES)
_PRF_SECTIONS = "Parameters\n----------\n" + _Y.format(
    kind="The true labels (any sortable values: ints, strings, ...).", pred="The predicted labels.") + "\n" + _PRF + """

Returns
-------
float or numpy.ndarray
    The score; one per label (in ``labels`` order) with ``average=None``.

""" + _CLASSIFICATION_RAISES
for _fn in (precision_score, recall_score, f1_score):
    fill(_fn, sections=_PRF_SECTIONS)
fill(log_loss, sample_weight=_SAMPLE_WEIGHT)
del _fn, _what
