"""Optimizers with torch.optim's names, over NumPy arrays updated in place.

>>> import numpy as np
>>> from dlopt.optim import SGD
>>> w = np.ones(4, dtype=np.float32)
>>> opt = SGD([w], lr=0.1, momentum=0.9)
>>> opt.step([np.full(4, 2.0, dtype=np.float32)])
>>> w
array([0.8, 0.8, 0.8, 0.8], dtype=float32)
"""

from .algorithms import (
    SGD,
    Adadelta,
    Adagrad,
    Adam,
    Adamax,
    AdamW,
    DynamicLR,
    Lion,
    NAdam,
    RAdam,
    RMSprop,
)
from .optimizer import Optimizer
from . import lr_scheduler

__all__ = ["Optimizer", "lr_scheduler", "SGD", "Adam", "AdamW", "Adagrad", "RMSprop", "Adadelta", "Adamax",
           "NAdam", "RAdam", "Lion", "DynamicLR"]
