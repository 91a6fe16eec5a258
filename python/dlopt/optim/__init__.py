"""Optimizers with torch.optim's names, over NumPy arrays updated in place.

>>> import numpy as np
>>> from dlopt.optim import SGD
>>> w = np.ones(4, dtype=np.float32)
>>> opt = SGD([w], lr=0.1, momentum=0.9)
>>> opt.step([np.full(4, 2.0, dtype=np.float32)])
>>> w
array([0.8, 0.8, 0.8, 0.8], dtype=float32)
"""

from . import algorithms
from .algorithms import *  # noqa: F401,F403 - every optimizer class, listed once in algorithms.__all__
from .optimizer import Optimizer
from . import lr_scheduler

__all__ = ["Optimizer", "lr_scheduler", *algorithms.__all__]
