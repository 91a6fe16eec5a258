"""Two small real data sets shipped with dlopt (sources and licences in this folder's README.md).

>>> from dlopt.datasets import load_diabetes, load_breast_cancer
>>> d = load_diabetes()
>>> d.X.shape, d.y.shape, d.task
((442, 10), (442,), 'regression')
>>> load_breast_cancer().X.shape
(569, 30)
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from importlib import resources

import numpy as np

__all__ = ["Dataset", "load_diabetes", "load_breast_cancer", "load_dataset", "DATASETS"]


@dataclass
class Dataset:
    """A bundled data set: features ``X`` (float64, C-contiguous), target ``y`` and their names.

    Returned by :func:`load_dataset`; the fields are its attributes.

    Parameters
    ----------
    name : str
        The data set's name, one of :data:`DATASETS`.
    X : numpy.ndarray of shape (n_samples, n_features)
        The features, float64.
    y : numpy.ndarray of shape (n_samples,)
        The target: float64 for regression, int64 class labels for classification.
    feature_names : list of str
        The name of each column of ``X``.
    target_name : str
        The name of ``y``'s column in the CSV file.
    task : {'regression', 'classification'}
        The kind of problem.
    description : str
        Where the data come from and what they hold.

    Examples
    --------
    >>> from dlopt.datasets import load_breast_cancer
    >>> d = load_breast_cancer()
    >>> d.task, d.target_name, d.feature_names[0], d.y[:5]
    ('classification', 'malignant', 'mean_radius', array([1, 1, 1, 1, 1]))
    """

    name: str
    X: np.ndarray
    y: np.ndarray
    feature_names: list[str]
    target_name: str
    task: str  # "regression" or "classification"
    description: str

    def csv_path(self):
        """A context manager giving the path of the bundled CSV file (for ``dlopt fit``)."""
        return resources.as_file(resources.files(__name__).joinpath(f"{self.name}.csv"))


_INFO = {
    "diabetes": ("regression", "progression",
                 "Diabetes (Efron, Hastie, Johnstone & Tibshirani, 2004): 442 patients, 10 baseline "
                 "variables (age, sex, BMI, blood pressure, six blood serum measurements, unscaled); target: "
                 "a quantitative measure of disease progression one year after baseline."),
    "breast_cancer": ("classification", "malignant",
                      "Breast Cancer Wisconsin (Diagnostic) (Wolberg, Street & Mangasarian, 1995, UCI): 569 "
                      "tumours, 30 features of cell nuclei from digitised fine-needle aspirate images; "
                      "target: 1 = malignant (212), 0 = benign (357)."),
}
DATASETS = tuple(_INFO)


def load_dataset(name: str) -> Dataset:
    """Loads the bundled data set ``name`` ("diabetes" or "breast_cancer").

    Parameters
    ----------
    name : {'diabetes', 'breast_cancer'}
        The data set (:data:`DATASETS` lists them).

    Returns
    -------
    Dataset
        The features, the target and their names.

    Raises
    ------
    ValueError
        An unknown ``name``.

    Examples
    --------
    >>> from dlopt.datasets import load_dataset
    >>> load_dataset("diabetes").X.shape
    (442, 10)
    """
    if name not in _INFO:
        raise ValueError(f"unknown dataset {name!r}; bundled: {', '.join(DATASETS)}")
    task, target, description = _INFO[name]
    with resources.files(__name__).joinpath(f"{name}.csv").open("r", newline="") as f:
        rows = list(csv.reader(f))
    header, body = rows[0], np.array(rows[1:], dtype=np.float64)
    col = header.index(target)
    X = np.ascontiguousarray(np.delete(body, col, axis=1))
    y = body[:, col].astype(np.int64) if task == "classification" else body[:, col].copy()
    names = [h for i, h in enumerate(header) if i != col]
    return Dataset(name, X, y, names, target, task, description)


def load_diabetes() -> Dataset:
    """The diabetes regression data set (442 × 10, target "progression").

    Returns
    -------
    Dataset
        The features, the target and their names.

    Examples
    --------
    >>> from dlopt.datasets import load_diabetes
    >>> d = load_diabetes()
    >>> d.task, d.y.dtype
    ('regression', dtype('float64'))
    """
    return load_dataset("diabetes")


def load_breast_cancer() -> Dataset:
    """The Wisconsin diagnostic breast cancer classification data set (569 × 30, target "malignant").

    Returns
    -------
    Dataset
        The features, the target and their names.

    Examples
    --------
    >>> from dlopt.datasets import load_breast_cancer
    >>> int(load_breast_cancer().y.sum())   # malignant tumours
    212
    """
    return load_dataset("breast_cancer")
