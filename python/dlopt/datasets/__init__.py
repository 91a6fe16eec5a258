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
    """A bundled data set: features ``X`` (float64, C-contiguous), target ``y`` and their names."""

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
    """Loads the bundled data set ``name`` ("diabetes" or "breast_cancer")."""
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
    """The diabetes regression data set (442 × 10, target "progression")."""
    return load_dataset("diabetes")


def load_breast_cancer() -> Dataset:
    """The Wisconsin diagnostic breast cancer classification data set (569 × 30, target "malignant")."""
    return load_dataset("breast_cancer")
