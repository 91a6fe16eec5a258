"""dlopt: fast deep-learning optimizers with a C++/Eigen core and a zero-copy NumPy API.

>>> import numpy as np, dlopt
>>> w = np.zeros(3, dtype=np.float32)
>>> opt = dlopt.optim.SGD([w], lr=0.1, momentum=0.9)
>>> opt.step([np.ones(3, dtype=np.float32)])   # updates w in place
>>> w
array([-0.1, -0.1, -0.1], dtype=float32)
"""

from . import cuda, linear_model, lr_scheduler, metrics, optim
from .averaging import EMA, GradientAccumulator, Lookahead
from .checkpoint import CheckpointError, load, save
from .clip import clip_grad_norm_, clip_grad_value_, clip_grads_with_norm_, get_total_norm
from ._core import bf16_matmul_library, cpu_kernels, get_num_threads, set_num_threads
from ._version import __version__
from .optim import Optimizer
from .optim.algorithms import *  # noqa: F401,F403 - the optimizer classes at the top level too
from .optim import algorithms as _algorithms
from .linear_model import LinearRegression, LogisticRegression, SoftmaxRegression
from ._docstrings import fill_methods as _fill_methods
from ._linear_docs import document as _document

_document(LinearRegression, LogisticRegression, SoftmaxRegression)
_fill_methods(GradientAccumulator, EMA, Lookahead)

__all__ = [
    "__version__",
    "get_num_threads",
    "set_num_threads",
    "cpu_kernels",
    "bf16_matmul_library",
    "optim",
    "lr_scheduler",
    "cuda",
    "Optimizer",
    *_algorithms.__all__,
    "clip_grad_norm_",
    "clip_grad_value_",
    "clip_grads_with_norm_",
    "get_total_norm",
    "GradientAccumulator",
    "EMA",
    "Lookahead",
    "save",
    "load",
    "CheckpointError",
    "linear_model",
    "metrics",
    "LinearRegression",
    "LogisticRegression",
    "SoftmaxRegression",
]


def __getattr__(name: str):
    # dlopt.torch imports torch, so it is loaded only when asked for (torch stays optional).
    if name == "torch":
        import importlib

        return importlib.import_module(".torch", __name__)
    raise AttributeError(f"module 'dlopt' has no attribute {name!r}")
