r"""Learning-rate schedulers with ``torch.optim.lr_scheduler``'s names, arguments and values.

A scheduler drives any optimizer-like object that has ``param_groups`` (a list of dicts, each
with an ``"lr"``); the cyclic schedulers also read ``defaults`` and drive ``"momentum"`` or
``"betas"[0]``.
Call ``scheduler.step()`` once after each ``optimizer.step(...)``. The values, the bookkeeping
(``last_epoch``, ``base_lrs``, the ``"initial_lr"`` key added to each group, ``get_last_lr()``)
and the order of the floating-point operations follow PyTorch 2.13, so a schedule gives the same
learning rates here as in torch, to the last bit.

Two kinds of rule, as in torch:

* *chainable* (recursive) rules multiply or shift the group's current ``"lr"``, so several of
  them can act on one optimizer (see :class:`ChainedScheduler`);
* *closed-form* rules compute the lr from ``base_lrs`` and ``last_epoch`` alone.

The package is split by family: ``_base`` (``LRScheduler`` and the shared helpers), ``lambdas``,
``chainable``, ``cyclic``, ``combinations``, ``plateau`` and ``wsd`` (beyond torch). Every closed
form (``step(epoch)``, warmup-stable-decay, one-cycle's phases and anneal) is the C++ struct of
``dlopt/schedule.hpp``, called through ``_core``, so the linear models' ``lr_schedule`` and these
schedulers share one formula.

``state_dict()`` holds plain Python values (numbers, strings, lists, tuples, dicts, ``None``);
functions and lambdas are not saved (callable objects save their ``__dict__``), as in torch.

>>> import numpy as np
>>> from dlopt.optim import SGD
>>> from dlopt.lr_scheduler import StepLR
>>> opt = SGD([np.zeros(3, np.float32)], lr=0.1)
>>> sched = StepLR(opt, step_size=2, gamma=0.5)
>>> lrs = []
>>> for _ in range(6):
...     # opt.step(grads) goes here
...     lrs.append(sched.get_last_lr()[0])
...     sched.step()
>>> lrs
[0.1, 0.1, 0.05, 0.05, 0.025, 0.025]
"""

from __future__ import annotations

from .._docstrings import fill
from ._base import LRScheduler
from .chainable import (ConstantLR, CosineAnnealingLR, CosineAnnealingWarmRestarts, ExponentialLR,
                        LinearLR, MultiStepLR, PolynomialLR, StepLR)
from .combinations import ChainedScheduler, SequentialLR
from .cyclic import CyclicLR, OneCycleLR
from .lambdas import LambdaLR, MultiplicativeLR
from .plateau import ReduceLROnPlateau
from .wsd import WarmupStableDecayLR

__all__ = [
    "LRScheduler",
    "LambdaLR",
    "MultiplicativeLR",
    "StepLR",
    "MultiStepLR",
    "ConstantLR",
    "LinearLR",
    "ExponentialLR",
    "PolynomialLR",
    "CosineAnnealingLR",
    "CosineAnnealingWarmRestarts",
    "CyclicLR",
    "OneCycleLR",
    "SequentialLR",
    "ChainedScheduler",
    "ReduceLROnPlateau",
    "WarmupStableDecayLR",
]

_OPTIMIZER = """optimizer : Optimizer
    The optimizer (any object with ``param_groups``, a list of dicts each with an ``"lr"``)
    whose lrs the scheduler sets in place."""
_LAST_EPOCH = """last_epoch : int, default -1
    The epoch of the last step: -1 starts the schedule; ``>= 0`` resumes it (every param group
    must then have its ``"initial_lr"``)."""
_RAISES = """TypeError
    ``optimizer`` has no list ``param_groups``, or an argument of the wrong type (a count must be an
    int or a whole float, a bool is not a number, ``last_epoch`` an int).
ValueError
    An argument outside its domain (docs/reliability.md, "Scheduler arguments"); a failed
    constructor leaves the param groups as they were.
KeyError
    ``last_epoch >= 0`` and a param group has no ``"initial_lr"``."""

# The public classes belong to dlopt.lr_scheduler (their documented path; doctest and pickle find
# them here), whichever module of the package defines them; their docstrings share the entries above.
for _name in __all__:
    _cls = globals()[_name]
    _cls.__module__ = __name__
    _shared = {"optimizer": _OPTIMIZER, "last_epoch": _LAST_EPOCH, "raises": _RAISES}
    fill(_cls, **{k: v for k, v in _shared.items() if "{" + k + "}" in (_cls.__doc__ or "")})
del _name, _cls, _shared
