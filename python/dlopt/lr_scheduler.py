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

import copy
import math
import types
import warnings
from bisect import bisect_right
from collections import Counter
from typing import Any, Callable, Iterable, Sequence

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

_EPOCH_DEPRECATION = (
    "step(epoch) is deprecated, as in torch: call step() without an argument. Given an epoch, "
    "the scheduler jumps to it and uses its closed-form rule where it has one."
)


# -- helpers ---------------------------------------------------------------------------------


def _param_groups(optimizer: Any) -> list[dict[str, Any]]:
    groups = getattr(optimizer, "param_groups", None)
    if not isinstance(groups, (list, tuple)):
        raise TypeError(
            f"{type(optimizer).__name__} is not an optimizer: it has no list 'param_groups'"
        )
    return groups


def _per_group(name: str, optimizer: Any, value: Any) -> list[Any]:
    """``value`` once per param group: a list/tuple must have one entry per group."""
    n = len(_param_groups(optimizer))
    if isinstance(value, (list, tuple)):
        if len(value) != n:
            raise ValueError(
                f"{name}: expected one value per param group ({n}), got {len(value)}"
            )
        return list(value)
    return [value] * n


def _callable_state(fn: Any) -> dict[str, Any] | None:
    """What is saved of a user callable: nothing for a function or lambda, else its ``__dict__``."""
    if fn is None or isinstance(fn, types.FunctionType):
        return None
    return copy.deepcopy(getattr(fn, "__dict__", {}))


def _load_callable_state(fn: Any, saved: dict[str, Any] | None) -> None:
    if saved is not None:
        fn.__dict__.update(copy.deepcopy(saved))


# -- base classes ----------------------------------------------------------------------------


class LRScheduler:
    r"""Base class of the learning-rate schedulers.

    On construction with ``last_epoch=-1`` it records each group's lr as ``group["initial_lr"]``
    (unless already there) and ``base_lrs``, then takes the initial step to ``last_epoch = 0``.
    With ``last_epoch >= 0`` (resuming) every group must already have ``"initial_lr"``.

    A subclass writes :meth:`get_lr`: the lrs at ``last_epoch``, computed from the groups'
    current lrs (chainable rules) or from ``base_lrs`` (closed-form rules). A chainable rule may
    also write :meth:`_get_closed_form_lr`, used by the deprecated ``step(epoch)``.

    .. math::
        \eta^{(g)}_t = \mathrm{get\_lr}(t)_g, \qquad t = \texttt{last\_epoch}

    >>> import numpy as np
    >>> from dlopt.optim import SGD
    >>> from dlopt.lr_scheduler import LRScheduler
    >>> class Halving(LRScheduler):
    ...     def get_lr(self):
    ...         return [base / 2 ** self.last_epoch for base in self.base_lrs]
    >>> opt = SGD([np.zeros(3, np.float32)], lr=1.0)
    >>> sched = Halving(opt)
    >>> sched.step(); sched.step()
    >>> sched.last_epoch, sched.get_last_lr(), opt.param_groups[0]["lr"]
    (2, [0.25], 0.25)
    """

    #: Attributes never saved by :meth:`state_dict`.
    _unsaved: tuple[str, ...] = ("optimizer", "_is_initial")
    #: Attributes holding a user callable (or a list of them): only callable objects' ``__dict__``
    #: is saved, and loading updates the callables already there.
    _callables: tuple[str, ...] = ()
    #: True during the step taken by the constructor.
    _is_initial: bool = False

    def __init__(self, optimizer: Any, last_epoch: int = -1) -> None:
        groups = _param_groups(optimizer)
        self.optimizer = optimizer
        if last_epoch == -1:
            for group in groups:
                group.setdefault("initial_lr", group["lr"])
        else:
            missing = [i for i, group in enumerate(groups) if "initial_lr" not in group]
            if missing:
                raise KeyError(
                    f"param 'initial_lr' is not specified in param_groups{missing} when resuming "
                    f"with last_epoch={last_epoch}: create the scheduler with last_epoch=-1, or "
                    "restore the optimizer's param groups first"
                )
        self.base_lrs: list[float] = self._group_values("initial_lr")
        self.last_epoch = last_epoch
        self._initial_step()

    # -- the rule ---------------------------------------------------------------------------

    def get_lr(self) -> list[float]:
        """The lr of each param group at ``last_epoch``; called by :meth:`step`.

        Use :meth:`get_last_lr` to read the current lrs: a chainable ``get_lr`` applies one
        more step to them, and the cyclic ones set the momentum as a side effect.
        """
        raise NotImplementedError

    def _get_closed_form_lr(self) -> list[float]:
        """The lrs at ``last_epoch`` from ``base_lrs`` alone (``step(epoch)``); default: get_lr."""
        return self.get_lr()

    # -- stepping ---------------------------------------------------------------------------

    def step(self, epoch: int | None = None) -> None:
        """Advances the schedule one step and writes the new lrs into the param groups.

        ``epoch`` (deprecated, as in torch) jumps to that ``last_epoch`` instead, using the
        closed-form rule where the scheduler has one.
        """
        self._step_count += 1
        if epoch is not None:
            warnings.warn(_EPOCH_DEPRECATION, UserWarning, stacklevel=2)
        self._update_lr(epoch)

    def _initial_step(self) -> None:
        self._step_count = 0
        self._is_initial = True
        try:
            self.step()
        finally:
            self._is_initial = False

    def _update_lr(self, epoch: int | None = None) -> None:
        if epoch is None:
            self.last_epoch += 1
            lrs = self.get_lr()
        else:
            self.last_epoch = epoch
            lrs = self._get_closed_form_lr()
        self._set_lrs(lrs)

    def _set_lrs(self, lrs: Sequence[float]) -> None:
        groups = _param_groups(self.optimizer)
        if len(lrs) != len(groups):
            raise RuntimeError(
                f"{type(self).__name__}: computed {len(lrs)} lrs for {len(groups)} param groups "
                "(was a param group added after the scheduler was created?)"
            )
        for group, lr in zip(groups, lrs):
            group["lr"] = lr
        self._last_lr = self._group_values("lr")

    def get_last_lr(self) -> list[float]:
        """The lrs the scheduler last set, one per param group."""
        return list(self._last_lr)

    # -- helpers for get_lr -----------------------------------------------------------------

    def _group_values(self, key: str) -> list[Any]:
        return [group[key] for group in _param_groups(self.optimizer)]

    def _current_lrs(self) -> list[float]:
        return self._group_values("lr")

    def _scaled_lrs(self, factor: float) -> list[float]:
        """The groups' current lrs times ``factor`` (a chainable step)."""
        return [group["lr"] * factor for group in _param_groups(self.optimizer)]

    def _scaled_base_lrs(self, factor: float) -> list[float]:
        """``base_lrs`` times ``factor`` (a closed-form value)."""
        return [base_lr * factor for base_lr in self.base_lrs]

    # -- serialisation ----------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """A snapshot of the scheduler's state (every attribute but the optimizer), as plain values.

        Functions and lambdas are saved as ``None``, callable objects as their ``__dict__``.
        Save and restore the optimizer's state along with it.
        """
        state = {}
        for key, value in self.__dict__.items():
            if key in self._unsaved:
                continue
            if key in self._callables:
                value = (
                    [_callable_state(fn) for fn in value]
                    if isinstance(value, list)
                    else _callable_state(value)
                )
            else:
                value = copy.deepcopy(value)
            state[key] = value
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restores a :meth:`state_dict`; user callables stay those given at construction."""
        for key, value in state_dict.items():
            if key in self._unsaved:
                continue
            if key in self._callables:
                current = getattr(self, key)
                if isinstance(current, list):
                    for fn, saved in zip(current, value):
                        _load_callable_state(fn, saved)
                else:
                    _load_callable_state(current, value)
            else:
                setattr(self, key, copy.deepcopy(value))


class _LambdaScheduler(LRScheduler):
    """Shared by LambdaLR and MultiplicativeLR: one user function of the epoch per param group."""

    _callables = ("lr_lambdas",)

    def __init__(
        self,
        optimizer: Any,
        lr_lambda: Callable[[int], float] | Sequence[Callable[[int], float]],
        last_epoch: int = -1,
    ) -> None:
        self.optimizer = optimizer
        self.lr_lambdas = _per_group("lr_lambda", optimizer, lr_lambda)
        for fn in self.lr_lambdas:
            if not callable(fn):
                raise TypeError(f"lr_lambda should be a function, but got {type(fn).__name__}")
        super().__init__(optimizer, last_epoch)


class _MomentumCycler(LRScheduler):
    """Shared by CyclicLR and OneCycleLR: moves ``"momentum"`` or ``"betas"[0]`` against the lr."""

    def _init_momentum(
        self, cycle_momentum: bool, base_momentum: Any, max_momentum: Any, last_epoch: int
    ) -> None:
        self.cycle_momentum = cycle_momentum
        if not cycle_momentum:
            return
        defaults = getattr(self.optimizer, "defaults", {})
        if "momentum" not in defaults and "betas" not in defaults:
            raise ValueError(
                "optimizer must support momentum or beta1 with `cycle_momentum` option enabled"
            )
        self.use_beta1 = "betas" in defaults
        self.base_momentums = _per_group("base_momentum", self.optimizer, base_momentum)
        self.max_momentums = _per_group("max_momentum", self.optimizer, max_momentum)
        if last_epoch == -1:
            groups = _param_groups(self.optimizer)
            for group, low, high in zip(groups, self.base_momentums, self.max_momentums):
                self._set_momentum(group, high)
                group["max_momentum"] = high
                group["base_momentum"] = low

    def _set_momentum(self, group: dict[str, Any], momentum: float) -> None:
        if self.use_beta1:
            group["betas"] = (momentum, *group["betas"][1:])
        else:
            group["momentum"] = momentum


class _SchedulerList(LRScheduler):
    """Shared by SequentialLR and ChainedScheduler: a list of schedulers of one optimizer."""

    _unsaved = LRScheduler._unsaved + ("_schedulers",)

    def _attach(self, optimizer: Any, schedulers: Sequence[LRScheduler]) -> None:
        name = type(self).__name__
        if len(schedulers) < 1:
            raise ValueError(f"{name} expects at least one scheduler, but got none")
        for i, scheduler in enumerate(schedulers):
            if not hasattr(scheduler, "optimizer"):
                raise TypeError(f"{name}: the scheduler at index {i} has no `optimizer` attribute")
            if isinstance(scheduler, ReduceLROnPlateau):
                raise ValueError(
                    f"{name} does not support ReduceLROnPlateau (index {i}): its step() needs "
                    "the metric"
                )
            if scheduler.optimizer is not optimizer:
                raise ValueError(
                    f"{name} expects all schedulers to belong to the same optimizer, but the "
                    f"{type(scheduler).__name__} at index {i} has another one"
                )
        self.optimizer = optimizer
        self._schedulers = list(schedulers)

    def state_dict(self) -> dict[str, Any]:
        """The list's own state plus each scheduler's, under ``"_schedulers"``."""
        state = super().state_dict()
        state["_schedulers"] = [scheduler.state_dict() for scheduler in self._schedulers]
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        super().load_state_dict(state_dict)
        for scheduler, saved in zip(self._schedulers, state_dict["_schedulers"]):
            scheduler.load_state_dict(saved)


# -- user functions of the epoch --------------------------------------------------------------


class LambdaLR(_LambdaScheduler):
    r"""Sets each group's lr to its initial lr times a user function of the epoch.

    .. math::
        \eta_t = \eta_0 \cdot \lambda(t)

    ``lr_lambda`` is one function or a list of one per param group. Closed form (not chainable).

    >>> import numpy as np
    >>> from dlopt.optim import SGD
    >>> from dlopt.lr_scheduler import LambdaLR
    >>> opt = SGD([np.zeros(3, np.float32)], lr=1.0)
    >>> sched = LambdaLR(opt, lr_lambda=lambda epoch: 1 / (epoch + 1))
    >>> for _ in range(3):
    ...     sched.step()
    >>> sched.get_last_lr()
    [0.25]
    """

    def get_lr(self) -> list[float]:
        return [
            base_lr * fn(self.last_epoch) for fn, base_lr in zip(self.lr_lambdas, self.base_lrs)
        ]


class MultiplicativeLR(_LambdaScheduler):
    r"""Multiplies each group's lr by a user function of the epoch at every step.

    .. math::
        \eta_t = \eta_{t-1} \cdot \lambda(t) \quad (t \ge 1)

    ``lr_lambda`` is one function or a list of one per param group. Chainable.

    >>> import numpy as np
    >>> from dlopt.optim import SGD
    >>> from dlopt.lr_scheduler import MultiplicativeLR
    >>> opt = SGD([np.zeros(3, np.float32)], lr=1.0)
    >>> sched = MultiplicativeLR(opt, lr_lambda=lambda epoch: 0.5)
    >>> for _ in range(3):
    ...     sched.step()
    >>> sched.get_last_lr()
    [0.125]
    """

    def get_lr(self) -> list[float]:
        if self._is_initial:
            return self._current_lrs()
        groups = _param_groups(self.optimizer)
        return [group["lr"] * fn(self.last_epoch) for fn, group in zip(self.lr_lambdas, groups)]


# -- chainable schedules ---------------------------------------------------------------------


class StepLR(LRScheduler):
    r"""Decays each group's lr by ``gamma`` every ``step_size`` epochs.

    .. math::
        \eta_t = \eta_0 \cdot \gamma^{\lfloor t / \texttt{step\_size} \rfloor}

    Chainable: at each non-zero multiple of ``step_size`` the current lr is multiplied by
    ``gamma``.

    >>> import numpy as np
    >>> from dlopt.optim import SGD
    >>> from dlopt.lr_scheduler import StepLR
    >>> opt = SGD([np.zeros(3, np.float32)], lr=0.1)
    >>> sched = StepLR(opt, step_size=30, gamma=0.1)
    >>> lrs = []
    >>> for _ in range(90):
    ...     lrs.append(sched.get_last_lr()[0])
    ...     sched.step()
    >>> lrs[0], lrs[29], round(lrs[30], 12), round(lrs[60], 12)
    (0.1, 0.1, 0.01, 0.001)
    """

    def __init__(self, optimizer: Any, step_size: int, gamma: float = 0.1, last_epoch: int = -1):
        self.step_size = step_size
        self.gamma = gamma
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        if self.last_epoch == 0 or self.last_epoch % self.step_size != 0:
            return self._current_lrs()
        return self._scaled_lrs(self.gamma)

    def _get_closed_form_lr(self) -> list[float]:
        return self._scaled_base_lrs(self.gamma ** (self.last_epoch // self.step_size))


class MultiStepLR(LRScheduler):
    r"""Decays each group's lr by ``gamma`` at each milestone epoch.

    .. math::
        \eta_t = \eta_0 \cdot \gamma^{\#\{m \in \texttt{milestones} : m \le t\}}

    A milestone listed ``k`` times decays by ``gamma**k``. Chainable. ``milestones`` is kept as
    a dict {epoch: count} (torch keeps a ``Counter``).

    >>> import numpy as np
    >>> from dlopt.optim import SGD
    >>> from dlopt.lr_scheduler import MultiStepLR
    >>> opt = SGD([np.zeros(3, np.float32)], lr=1.0)
    >>> sched = MultiStepLR(opt, milestones=[2, 4], gamma=0.5)
    >>> lrs = []
    >>> for _ in range(6):
    ...     lrs.append(sched.get_last_lr()[0])
    ...     sched.step()
    >>> lrs
    [1.0, 1.0, 0.5, 0.5, 0.25, 0.25]
    """

    def __init__(
        self, optimizer: Any, milestones: Iterable[int], gamma: float = 0.1, last_epoch: int = -1
    ):
        self.milestones = dict(Counter(milestones))
        self.gamma = gamma
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        if self.last_epoch not in self.milestones:
            return self._current_lrs()
        return self._scaled_lrs(self.gamma ** self.milestones[self.last_epoch])

    def _get_closed_form_lr(self) -> list[float]:
        passed = sum(n for m, n in self.milestones.items() if m <= self.last_epoch)
        return self._scaled_base_lrs(self.gamma**passed)


class ConstantLR(LRScheduler):
    r"""Multiplies each group's lr by a constant ``factor`` for the first ``total_iters`` epochs.

    .. math::
        \eta_t = \eta_0 \cdot \begin{cases} \texttt{factor} & t < \texttt{total\_iters} \\
                                            1 & t \ge \texttt{total\_iters} \end{cases}

    Chainable: multiplies by ``factor`` at epoch 0 and by ``1 / factor`` at ``total_iters``.

    >>> import numpy as np
    >>> from dlopt.optim import SGD
    >>> from dlopt.lr_scheduler import ConstantLR
    >>> opt = SGD([np.zeros(3, np.float32)], lr=1.0)
    >>> sched = ConstantLR(opt, factor=0.5, total_iters=2)
    >>> lrs = []
    >>> for _ in range(4):
    ...     lrs.append(sched.get_last_lr()[0])
    ...     sched.step()
    >>> lrs
    [0.5, 0.5, 1.0, 1.0]
    """

    def __init__(
        self, optimizer: Any, factor: float = 1.0 / 3, total_iters: int = 5, last_epoch: int = -1
    ):
        if factor > 1.0 or factor < 0:
            raise ValueError("Constant multiplicative factor expected to be between 0 and 1.")
        self.factor = factor
        self.total_iters = total_iters
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        if self.last_epoch == 0:
            return self._scaled_lrs(self.factor)
        if self.last_epoch != self.total_iters:
            return self._current_lrs()
        return self._scaled_lrs(1.0 / self.factor)

    def _get_closed_form_lr(self) -> list[float]:
        done = self.last_epoch >= self.total_iters
        return self._scaled_base_lrs(self.factor + done * (1 - self.factor))


class LinearLR(LRScheduler):
    r"""Scales each group's lr by a factor going linearly from ``start_factor`` to ``end_factor``.

    .. math::
        \eta_t = \eta_0 \left(s + (e - s) \frac{\min(t, T)}{T}\right),
        \qquad s = \texttt{start\_factor},\ e = \texttt{end\_factor},\ T = \texttt{total\_iters}

    Chainable: step ``t`` multiplies the current lr by
    :math:`1 + (e - s) / (T s + (t - 1)(e - s))`.

    >>> import numpy as np
    >>> from dlopt.optim import SGD
    >>> from dlopt.lr_scheduler import LinearLR
    >>> opt = SGD([np.zeros(3, np.float32)], lr=1.0)
    >>> sched = LinearLR(opt, start_factor=0.25, total_iters=3)
    >>> lrs = []
    >>> for _ in range(5):
    ...     lrs.append(sched.get_last_lr()[0])
    ...     sched.step()
    >>> lrs
    [0.25, 0.5, 0.75, 1.0, 1.0]
    """

    def __init__(
        self,
        optimizer: Any,
        start_factor: float = 1.0 / 3,
        end_factor: float = 1.0,
        total_iters: int = 5,
        last_epoch: int = -1,
    ):
        if start_factor > 1.0 or start_factor <= 0:
            raise ValueError(
                "Starting multiplicative factor expected to be greater than 0 and less or equal "
                "to 1."
            )
        if end_factor > 1.0 or end_factor < 0:
            raise ValueError("Ending multiplicative factor expected to be between 0 and 1.")
        self.start_factor = start_factor
        self.end_factor = end_factor
        self.total_iters = total_iters
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        if self.last_epoch == 0:
            return self._scaled_lrs(self.start_factor)
        if self._is_initial or self.last_epoch > self.total_iters:
            return self._current_lrs()
        change = self.end_factor - self.start_factor
        return self._scaled_lrs(
            1.0 + change / (self.total_iters * self.start_factor + (self.last_epoch - 1) * change)
        )

    def _get_closed_form_lr(self) -> list[float]:
        change = self.end_factor - self.start_factor
        progress = min(self.total_iters, self.last_epoch)
        return self._scaled_base_lrs(self.start_factor + change * progress / self.total_iters)


class ExponentialLR(LRScheduler):
    r"""Decays each group's lr by ``gamma`` every epoch.

    .. math::
        \eta_t = \eta_0 \cdot \gamma^t

    Chainable.

    >>> import numpy as np
    >>> from dlopt.optim import SGD
    >>> from dlopt.lr_scheduler import ExponentialLR
    >>> opt = SGD([np.zeros(3, np.float32)], lr=1.0)
    >>> sched = ExponentialLR(opt, gamma=0.5)
    >>> sched.step(); sched.step()
    >>> sched.get_last_lr()
    [0.25]
    """

    def __init__(self, optimizer: Any, gamma: float, last_epoch: int = -1):
        self.gamma = gamma
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        if self._is_initial:
            return self._current_lrs()
        return self._scaled_lrs(self.gamma)

    def _get_closed_form_lr(self) -> list[float]:
        return self._scaled_base_lrs(self.gamma**self.last_epoch)


class PolynomialLR(LRScheduler):
    r"""Decays each group's lr polynomially to zero over ``total_iters`` epochs.

    .. math::
        \eta_t = \eta_0 \left(1 - \frac{\min(t, T)}{T}\right)^{p},
        \qquad T = \texttt{total\_iters},\ p = \texttt{power}

    Chainable: step ``t <= T`` multiplies the current lr by
    :math:`\big((1 - t/T) / (1 - (t-1)/T)\big)^p`.

    >>> import numpy as np
    >>> from dlopt.optim import SGD
    >>> from dlopt.lr_scheduler import PolynomialLR
    >>> opt = SGD([np.zeros(3, np.float32)], lr=1.0)
    >>> sched = PolynomialLR(opt, total_iters=4, power=1.0)
    >>> lrs = []
    >>> for _ in range(6):
    ...     lrs.append(sched.get_last_lr()[0])
    ...     sched.step()
    >>> lrs
    [1.0, 0.75, 0.5, 0.25, 0.0, 0.0]
    """

    def __init__(
        self, optimizer: Any, total_iters: int = 5, power: float = 1.0, last_epoch: int = -1
    ):
        self.total_iters = total_iters
        self.power = power
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        if self._is_initial or self.last_epoch > self.total_iters:
            return self._current_lrs()
        t, total = self.last_epoch, self.total_iters
        return self._scaled_lrs(((1.0 - t / total) / (1.0 - (t - 1) / total)) ** self.power)

    def _get_closed_form_lr(self) -> list[float]:
        remaining = 1.0 - min(self.total_iters, self.last_epoch) / self.total_iters
        return self._scaled_base_lrs(remaining**self.power)


class CosineAnnealingLR(LRScheduler):
    r"""Anneals each group's lr from its initial value to ``eta_min`` along a half cosine.

    .. math::
        \eta_t = \eta_{\min} + \tfrac12 (\eta_0 - \eta_{\min})
                 \left(1 + \cos\frac{\pi t}{T_{\max}}\right)

    Chainable, as in torch: computed recursively,
    :math:`\eta_t = \eta_{\min} + (\eta_{t-1} - \eta_{\min})
    \frac{1 + \cos(\pi t / T_{\max})}{1 + \cos(\pi (t-1) / T_{\max})}`. Past ``T_max`` it
    keeps following the cosine (back up to :math:`\eta_0` at ``2 T_max``); there are no
    restarts (see :class:`CosineAnnealingWarmRestarts`).

    >>> import numpy as np
    >>> from dlopt.optim import SGD
    >>> from dlopt.lr_scheduler import CosineAnnealingLR
    >>> opt = SGD([np.zeros(3, np.float32)], lr=1.0)
    >>> sched = CosineAnnealingLR(opt, T_max=4, eta_min=0.0)
    >>> lrs = []
    >>> for _ in range(5):
    ...     lrs.append(round(sched.get_last_lr()[0], 6))
    ...     sched.step()
    >>> lrs
    [1.0, 0.853553, 0.5, 0.146447, 0.0]
    """

    def __init__(self, optimizer: Any, T_max: int, eta_min: float = 0.0, last_epoch: int = -1):
        self.T_max = T_max
        self.eta_min = eta_min
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        t, period, eta_min = self.last_epoch, self.T_max, self.eta_min
        if self._is_initial:
            return self._current_lrs()
        if self._step_count == 1 and t > 0:
            return self._get_closed_form_lr()
        groups = _param_groups(self.optimizer)
        if (t - 1 - period) % (2 * period) == 0:
            # leaving the minimum: the ratio below would be 0/0
            return [
                group["lr"] + (base_lr - eta_min) * (1 - math.cos(math.pi / period)) / 2
                for base_lr, group in zip(self.base_lrs, groups)
            ]
        ratio = (1 + math.cos(math.pi * t / period)) / (1 + math.cos(math.pi * (t - 1) / period))
        return [ratio * (group["lr"] - eta_min) + eta_min for group in groups]

    def _get_closed_form_lr(self) -> list[float]:
        cosine = 1 + math.cos(math.pi * self.last_epoch / self.T_max)
        return [self.eta_min + (base_lr - self.eta_min) * cosine / 2 for base_lr in self.base_lrs]


class CosineAnnealingWarmRestarts(LRScheduler):
    r"""Cosine annealing with warm restarts (SGDR, Loshchilov & Hutter, 2017).

    .. math::
        \eta_t = \eta_{\min} + \tfrac12 (\eta_0 - \eta_{\min})
                 \left(1 + \cos\frac{\pi T_{cur}}{T_i}\right)

    :math:`T_{cur}` counts the epochs since the last restart; the first period is
    :math:`T_0` and each restart multiplies the period by ``T_mult``. Closed form;
    ``step(epoch)`` accepts fractional epochs (e.g. ``epoch + i / iters_per_epoch``).

    >>> import numpy as np
    >>> from dlopt.optim import SGD
    >>> from dlopt.lr_scheduler import CosineAnnealingWarmRestarts
    >>> opt = SGD([np.zeros(3, np.float32)], lr=1.0)
    >>> sched = CosineAnnealingWarmRestarts(opt, T_0=2, T_mult=2)
    >>> lrs = []
    >>> for _ in range(7):
    ...     lrs.append(round(sched.get_last_lr()[0], 6))
    ...     sched.step()
    >>> lrs
    [1.0, 0.5, 1.0, 0.853553, 0.5, 0.146447, 1.0]
    """

    def __init__(
        self,
        optimizer: Any,
        T_0: int,
        T_mult: int = 1,
        eta_min: float = 0.0,
        last_epoch: int = -1,
    ):
        if not isinstance(T_0, int) or T_0 <= 0:
            raise ValueError(f"Expected positive integer T_0, but got {T_0}")
        if not isinstance(T_mult, int) or T_mult < 1:
            raise ValueError(f"Expected integer T_mult >= 1, but got {T_mult}")
        if not isinstance(eta_min, (float, int)):
            raise ValueError(
                f"Expected float or int eta_min, but got {eta_min} of type {type(eta_min)}"
            )
        self.T_0 = T_0
        self.T_i = T_0
        self.T_mult = T_mult
        self.eta_min = eta_min
        self.T_cur = last_epoch
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        cosine = 1 + math.cos(math.pi * self.T_cur / self.T_i)
        return [self.eta_min + (base_lr - self.eta_min) * cosine / 2 for base_lr in self.base_lrs]

    def step(self, epoch: float | None = None) -> None:
        """Advances one epoch, or jumps to ``epoch`` (which may be fractional), and sets the lrs."""
        if epoch is None and self.last_epoch < 0:
            epoch = 0
        if epoch is None:
            epoch = self.last_epoch + 1
            self.T_cur = self.T_cur + 1
            if self.T_cur >= self.T_i:
                self.T_cur = self.T_cur % self.T_i
                self.T_i = self.T_i * self.T_mult
        elif epoch < 0:
            raise ValueError(f"Expected non-negative epoch, but got {epoch}")
        elif epoch < self.T_0:
            self.T_i = self.T_0
            self.T_cur = epoch
        elif self.T_mult == 1:
            self.T_cur = epoch % self.T_0
        else:
            # restarts so far: the largest n with T_0 (T_mult^n - 1) / (T_mult - 1) <= epoch
            n = int(math.log(epoch / self.T_0 * (self.T_mult - 1) + 1, self.T_mult))
            self.T_cur = epoch - self.T_0 * (self.T_mult**n - 1) / (self.T_mult - 1)
            self.T_i = self.T_0 * self.T_mult**n
        self.last_epoch = math.floor(epoch)
        self._set_lrs(self.get_lr())


# -- cyclic schedules ------------------------------------------------------------------------


class CyclicLR(_MomentumCycler):
    r"""Cycles each group's lr between ``base_lr`` and ``max_lr`` (Smith, 2017).

    With :math:`L = \texttt{step\_size\_up} + \texttt{step\_size\_down}`,
    :math:`r = \texttt{step\_size\_up} / L`, cycle :math:`c = \lfloor 1 + t / L \rfloor`
    and position :math:`x = 1 + t/L - c \in [0, 1)`:

    .. math::
        h = \begin{cases} x / r & x \le r \\ (x - 1) / (r - 1) & x > r \end{cases}, \qquad
        \eta_t = \eta_{base} + (\eta_{max} - \eta_{base})\, h\, s, \qquad
        m_t = m_{max} - (m_{max} - m_{base})\, h\, s

    where :math:`s` is ``scale_fn(c)`` (``scale_mode="cycle"``) or ``scale_fn(t)``
    (``"iterations"``): 1 for ``"triangular"``, :math:`2^{1-c}` for ``"triangular2"``,
    :math:`\gamma^t` for ``"exp_range"``. With ``cycle_momentum`` the momentum
    (``"momentum"``, or ``"betas"[0]`` for Adam-like optimizers) cycles inversely. The
    optimizer's lrs are overwritten with ``base_lr`` at construction. Call :meth:`step`
    after every batch.

    >>> import numpy as np
    >>> from dlopt.optim import SGD
    >>> from dlopt.lr_scheduler import CyclicLR
    >>> opt = SGD([np.zeros(3, np.float32)], lr=0.1, momentum=0.9)
    >>> sched = CyclicLR(opt, base_lr=0.1, max_lr=0.5, step_size_up=2)
    >>> lrs, momenta = [], []
    >>> for _ in range(5):
    ...     lrs.append(round(sched.get_last_lr()[0], 6))
    ...     momenta.append(round(opt.param_groups[0]["momentum"], 6))
    ...     sched.step()
    >>> lrs, momenta
    ([0.1, 0.3, 0.5, 0.3, 0.1], [0.9, 0.85, 0.8, 0.85, 0.9])
    """

    _callables = ("_scale_fn_custom",)

    def __init__(
        self,
        optimizer: Any,
        base_lr: float | list[float],
        max_lr: float | list[float],
        step_size_up: int = 2000,
        step_size_down: int | None = None,
        mode: str = "triangular",
        gamma: float = 1.0,
        scale_fn: Callable[[float], float] | None = None,
        scale_mode: str = "cycle",
        cycle_momentum: bool = True,
        base_momentum: float | list[float] = 0.8,
        max_momentum: float | list[float] = 0.9,
        last_epoch: int = -1,
    ):
        self.optimizer = optimizer
        base_lrs = _per_group("base_lr", optimizer, base_lr)
        if last_epoch == -1:
            for group, lr in zip(_param_groups(optimizer), base_lrs):
                group["lr"] = lr
        self.max_lrs = _per_group("max_lr", optimizer, max_lr)

        up = float(step_size_up)
        down = float(step_size_down) if step_size_down is not None else up
        self.total_size = up + down
        self.step_ratio = up / self.total_size

        if mode not in ("triangular", "triangular2", "exp_range") and scale_fn is None:
            raise ValueError("mode is invalid and scale_fn is None")
        self.mode = mode
        self.gamma = gamma
        self._scale_fn_custom = scale_fn
        self.scale_mode = scale_mode
        if scale_fn is None:
            self.scale_mode = "iterations" if mode == "exp_range" else "cycle"

        self._init_momentum(cycle_momentum, base_momentum, max_momentum, last_epoch)
        super().__init__(optimizer, last_epoch)
        # as in torch, the constructor's step used the groups' "initial_lr"; from now on, base_lr
        self.base_lrs = base_lrs

    def scale_fn(self, x: float) -> float:
        """The amplitude scale at ``x`` (the cycle number or the iteration, by ``scale_mode``)."""
        if self._scale_fn_custom is not None:
            return self._scale_fn_custom(x)
        if self.mode == "triangular":
            return 1.0
        if self.mode == "triangular2":
            return 1 / (2.0 ** (x - 1))
        return self.gamma**x

    def get_lr(self) -> list[float]:
        """The lrs at ``last_epoch``; with ``cycle_momentum``, also sets the groups' momentum."""
        cycle = math.floor(1 + self.last_epoch / self.total_size)
        x = 1.0 + self.last_epoch / self.total_size - cycle
        if x <= self.step_ratio:
            height = x / self.step_ratio
        else:
            height = (x - 1) / (self.step_ratio - 1)
        scale = self.scale_fn(cycle if self.scale_mode == "cycle" else self.last_epoch)

        lrs = [
            base_lr + (max_lr - base_lr) * height * scale
            for base_lr, max_lr in zip(self.base_lrs, self.max_lrs)
        ]
        if self.cycle_momentum:
            groups = _param_groups(self.optimizer)
            for group, low, high in zip(groups, self.base_momentums, self.max_momentums):
                self._set_momentum(group, high - (high - low) * height * scale)
        return lrs


class OneCycleLR(_MomentumCycler):
    r"""The 1cycle policy (Smith & Topin, 2017): warm up to ``max_lr``, then anneal far below.

    With :math:`\eta_0 = \texttt{max\_lr} / \texttt{div\_factor}`,
    :math:`\eta_{\min} = \eta_0 / \texttt{final\_div\_factor}`, :math:`N` = ``total_steps``
    (or ``epochs * steps_per_epoch``), :math:`p` = ``pct_start`` and ``anneal`` the cosine
    :math:`a(u, v, q) = v + (u - v)(1 + \cos \pi q)/2` or the line :math:`u + (v - u) q`:

    .. math::
        \eta_t = \begin{cases}
            a(\eta_0, \eta_{max}, \tfrac{t}{pN - 1}) & t \le pN - 1 \\
            a(\eta_{max}, \eta_{\min}, \tfrac{t - (pN - 1)}{N - pN}) & \text{otherwise}
        \end{cases}

    ``three_phase=True`` goes up over :math:`[0, pN-1]`, back down to :math:`\eta_0` over
    :math:`[pN-1, 2pN-2]` and then to :math:`\eta_{\min}` at :math:`N-1`. With
    ``cycle_momentum`` the momentum (``"momentum"`` or ``"betas"[0]``) moves inversely between
    ``max_momentum`` and ``base_momentum``. Stepping past ``total_steps`` raises ValueError.
    The group keys ``initial_lr``, ``max_lr``, ``min_lr`` (and ``max_momentum``,
    ``base_momentum``) are set at construction. Call :meth:`step` after every batch.

    >>> import numpy as np
    >>> from dlopt.optim import SGD
    >>> from dlopt.lr_scheduler import OneCycleLR
    >>> opt = SGD([np.zeros(3, np.float32)], lr=0.1, momentum=0.9)
    >>> sched = OneCycleLR(opt, max_lr=1.0, total_steps=5, pct_start=0.4,
    ...                    anneal_strategy="linear", div_factor=10.0, final_div_factor=100.0)
    >>> lrs = []
    >>> for _ in range(5):
    ...     lrs.append(round(sched.get_last_lr()[0], 6))
    ...     sched.step()
    >>> lrs
    [0.1, 1.0, 0.667, 0.334, 0.001]
    """

    def __init__(
        self,
        optimizer: Any,
        max_lr: float | list[float],
        total_steps: int | None = None,
        epochs: int | None = None,
        steps_per_epoch: int | None = None,
        pct_start: float = 0.3,
        anneal_strategy: str = "cos",
        cycle_momentum: bool = True,
        base_momentum: float | list[float] = 0.85,
        max_momentum: float | list[float] = 0.95,
        div_factor: float = 25.0,
        final_div_factor: float = 1e4,
        three_phase: bool = False,
        last_epoch: int = -1,
    ):
        self.optimizer = optimizer
        _param_groups(optimizer)
        if total_steps is not None:
            if not isinstance(total_steps, int) or total_steps <= 0:
                raise ValueError(f"Expected positive integer total_steps, but got {total_steps}")
            self.total_steps = total_steps
        elif epochs is not None and steps_per_epoch is not None:
            if not isinstance(epochs, int) or epochs <= 0:
                raise ValueError(f"Expected positive integer epochs, but got {epochs}")
            if not isinstance(steps_per_epoch, int) or steps_per_epoch <= 0:
                raise ValueError(
                    f"Expected positive integer steps_per_epoch, but got {steps_per_epoch}"
                )
            self.total_steps = epochs * steps_per_epoch
        else:
            raise ValueError("You must define either total_steps OR (epochs AND steps_per_epoch)")
        if not isinstance(pct_start, float) or pct_start < 0 or pct_start > 1:
            raise ValueError(f"Expected float between 0 and 1 pct_start, but got {pct_start}")
        if anneal_strategy not in ("cos", "linear"):
            raise ValueError(
                f"anneal_strategy must be one of 'cos' or 'linear', instead got {anneal_strategy}"
            )
        self._anneal_func_type = anneal_strategy

        # (end step, lr key at start, lr key at end, momentum key at start, at end)
        peak = float(pct_start * self.total_steps) - 1
        last = self.total_steps - 1
        if three_phase:
            self._schedule_phases = [
                (peak, "initial_lr", "max_lr", "max_momentum", "base_momentum"),
                (float(2 * pct_start * self.total_steps) - 2,
                 "max_lr", "initial_lr", "base_momentum", "max_momentum"),
                (last, "initial_lr", "min_lr", "max_momentum", "max_momentum"),
            ]
        else:
            self._schedule_phases = [
                (peak, "initial_lr", "max_lr", "max_momentum", "base_momentum"),
                (last, "max_lr", "min_lr", "base_momentum", "max_momentum"),
            ]

        max_lrs = _per_group("max_lr", optimizer, max_lr)
        if last_epoch == -1:
            for group, top in zip(_param_groups(optimizer), max_lrs):
                group["initial_lr"] = top / div_factor
                group["max_lr"] = top
                group["min_lr"] = group["initial_lr"] / final_div_factor
        self._init_momentum(cycle_momentum, base_momentum, max_momentum, last_epoch)
        super().__init__(optimizer, last_epoch)

    def _anneal(self, start: float, end: float, pct: float) -> float:
        if self._anneal_func_type == "cos":
            return end + (start - end) / 2.0 * (math.cos(math.pi * pct) + 1)
        return (end - start) * pct + start

    def get_lr(self) -> list[float]:
        """The lrs at ``last_epoch``; with ``cycle_momentum``, also sets the groups' momentum."""
        step = self.last_epoch
        if step > self.total_steps:
            raise ValueError(
                f"Tried to step {step} times. The specified number of total steps is "
                f"{self.total_steps}"
            )
        # the phase holding this step: the first that ends at or after it (else the last one)
        start = 0.0
        for i, phase in enumerate(self._schedule_phases):
            if step <= phase[0] or i == len(self._schedule_phases) - 1:
                break
            start = phase[0]
        end, lr_from, lr_to, momentum_from, momentum_to = phase
        pct = (step - start) / (end - start)

        lrs = []
        for group in _param_groups(self.optimizer):
            lrs.append(self._anneal(group[lr_from], group[lr_to], pct))
            if self.cycle_momentum:
                self._set_momentum(
                    group, self._anneal(group[momentum_from], group[momentum_to], pct)
                )
        return lrs


# -- combinations ----------------------------------------------------------------------------


class SequentialLR(_SchedulerList):
    r"""Runs a list of schedulers one after another, switching at the ``milestones``.

    .. math::
        \eta_t = \text{scheduler}_k \text{ at its own epoch } t - m_{k-1},
        \qquad m_{k-1} \le t < m_k

    Each scheduler starts from its epoch 0 (its closed form at 0) when its milestone is reached.
    The lrs are reset to ``"initial_lr"`` and the schedulers' own construction steps are undone,
    so only the first one's epoch 0 applies at construction.

    >>> import numpy as np
    >>> from dlopt.optim import SGD
    >>> from dlopt.lr_scheduler import SequentialLR, LinearLR, ExponentialLR
    >>> opt = SGD([np.zeros(3, np.float32)], lr=1.0)
    >>> warmup = LinearLR(opt, start_factor=0.5, total_iters=2)
    >>> decay = ExponentialLR(opt, gamma=0.5)
    >>> sched = SequentialLR(opt, schedulers=[warmup, decay], milestones=[2])
    >>> lrs = []
    >>> for _ in range(5):
    ...     lrs.append(sched.get_last_lr()[0])
    ...     sched.step()
    >>> lrs
    [0.5, 0.75, 1.0, 0.5, 0.25]
    """

    def __init__(
        self,
        optimizer: Any,
        schedulers: list[LRScheduler],
        milestones: list[int],
        last_epoch: int = -1,
    ):
        self._attach(optimizer, schedulers)
        if len(milestones) != len(schedulers) - 1:
            raise ValueError(
                "Sequential Schedulers expects number of schedulers provided to be one more than "
                f"the number of milestone points, but got number of schedulers {len(schedulers)} "
                f"and the number of milestones to be equal to {len(milestones)}"
            )
        self._milestones = list(milestones)
        self.last_epoch = last_epoch + 1

        for group in _param_groups(optimizer):
            group["lr"] = group["initial_lr"]
        self._undo_initial_steps(self)
        first = self._schedulers[bisect_right(self._milestones, 0)]
        first._initial_step()
        self._last_lr = first.get_last_lr()

    @staticmethod
    def _undo_initial_steps(scheduler: LRScheduler) -> None:
        """Steps every (nested) scheduler's ``last_epoch`` back by the one its constructor took."""
        children = getattr(scheduler, "_schedulers", None)
        if children is not None:
            for child in children:
                SequentialLR._undo_initial_steps(child)
        elif hasattr(scheduler, "last_epoch"):
            scheduler.last_epoch -= 1

    def step(self) -> None:  # type: ignore[override]
        """Steps the scheduler in charge of the new epoch (restarting it at its milestone)."""
        self.last_epoch += 1
        idx = bisect_right(self._milestones, self.last_epoch)
        scheduler = self._schedulers[idx]
        if idx > 0 and self._milestones[idx - 1] == self.last_epoch:
            scheduler._update_lr(0)
        else:
            scheduler.step()
        self._last_lr = scheduler.get_last_lr()


class ChainedScheduler(_SchedulerList):
    r"""Steps several chainable schedulers together, each acting on the lr the previous one set.

    .. math::
        \eta_t = f_K \circ \dots \circ f_1 (\eta_{t-1})

    ``optimizer`` defaults to the first scheduler's.

    >>> import numpy as np
    >>> from dlopt.optim import SGD
    >>> from dlopt.lr_scheduler import ChainedScheduler, ConstantLR, ExponentialLR
    >>> opt = SGD([np.zeros(3, np.float32)], lr=1.0)
    >>> sched = ChainedScheduler([ConstantLR(opt, factor=0.5, total_iters=2),
    ...                           ExponentialLR(opt, gamma=0.5)])
    >>> lrs = []
    >>> for _ in range(4):
    ...     lrs.append(sched.get_last_lr()[0])
    ...     sched.step()
    >>> lrs
    [0.5, 0.25, 0.25, 0.125]
    """

    def __init__(self, schedulers: Sequence[LRScheduler], optimizer: Any | None = None):
        if len(schedulers) < 1:
            raise ValueError("ChainedScheduler expects at least one scheduler, but got none")
        self._attach(schedulers[0].optimizer if optimizer is None else optimizer, schedulers)
        self._last_lr = self._current_lrs()

    def step(self) -> None:  # type: ignore[override]
        """Steps every scheduler, in order."""
        for scheduler in self._schedulers:
            scheduler.step()
        self._last_lr = self._current_lrs()


# -- metric-driven ---------------------------------------------------------------------------


class ReduceLROnPlateau(LRScheduler):
    r"""Reduces each group's lr by ``factor`` when a metric has stopped improving.

    A value is an improvement over the best so far when (``mode``/``threshold_mode``)

    .. math::
        \text{min/rel: } v < b(1 - \epsilon) \quad \text{min/abs: } v < b - \epsilon \quad
        \text{max/rel: } v > b(1 + \epsilon) \quad \text{max/abs: } v > b + \epsilon

    After more than ``patience`` steps without improvement,
    :math:`\eta \leftarrow \max(\eta \cdot \texttt{factor}, \texttt{min\_lr})` (skipped when
    the change is at most ``eps``), then ``cooldown`` steps ignore bad epochs. Call
    ``step(metric)`` after each evaluation.

    >>> import numpy as np
    >>> from dlopt.optim import SGD
    >>> from dlopt.lr_scheduler import ReduceLROnPlateau
    >>> opt = SGD([np.zeros(3, np.float32)], lr=1.0)
    >>> sched = ReduceLROnPlateau(opt, factor=0.5, patience=1)
    >>> lrs = []
    >>> for loss in [3.0, 2.0, 2.0, 2.0, 2.0, 1.0]:
    ...     sched.step(loss)
    ...     lrs.append(sched.get_last_lr()[0])
    >>> lrs
    [1.0, 1.0, 1.0, 0.5, 0.5, 0.5]
    """

    def __init__(
        self,
        optimizer: Any,
        mode: str = "min",
        factor: float = 0.1,
        patience: int = 10,
        threshold: float = 1e-4,
        threshold_mode: str = "rel",
        cooldown: int = 0,
        min_lr: float | list[float] = 0,
        eps: float = 1e-8,
    ):
        if factor >= 1.0:
            raise ValueError("Factor should be < 1.0.")
        if mode not in ("min", "max"):
            raise ValueError(f"mode {mode} is unknown!")
        if threshold_mode not in ("rel", "abs"):
            raise ValueError(f"threshold mode {threshold_mode} is unknown!")
        self.optimizer = optimizer
        self.factor = factor
        self.min_lrs = _per_group("min_lr", optimizer, min_lr)
        self.default_min_lr = None if isinstance(min_lr, (list, tuple)) else min_lr
        self.patience = patience
        self.cooldown = cooldown
        self.eps = eps
        self.mode = mode
        self.threshold = threshold
        self.threshold_mode = threshold_mode
        self.mode_worse = math.inf if mode == "min" else -math.inf
        self.last_epoch = 0
        self._last_lr = self._current_lrs()
        self._reset()

    def _reset(self) -> None:
        self.best = self.mode_worse
        self.cooldown_counter = 0
        self.num_bad_epochs = 0

    @property
    def in_cooldown(self) -> bool:
        return self.cooldown_counter > 0

    def _is_better(self, value: float, best: float) -> bool:
        if self.mode == "min":
            if self.threshold_mode == "rel":
                return value < best * (1.0 - self.threshold)
            return value < best - self.threshold
        if self.threshold_mode == "rel":
            return value > best * (self.threshold + 1.0)
        return value > best + self.threshold

    def step(self, metrics: Any, epoch: int | None = None) -> None:  # type: ignore[override]
        """Records the metric (any number, or a 0-d array) and reduces the lrs if it plateaued."""
        current = float(metrics)
        if epoch is None:
            epoch = self.last_epoch + 1
        else:
            warnings.warn(_EPOCH_DEPRECATION, UserWarning, stacklevel=2)
        self.last_epoch = epoch

        if self._is_better(current, self.best):
            self.best = current
            self.num_bad_epochs = 0
        else:
            self.num_bad_epochs += 1
        if self.in_cooldown:
            self.cooldown_counter -= 1
            self.num_bad_epochs = 0
        if self.num_bad_epochs > self.patience:
            self._reduce_lr()
            self.cooldown_counter = self.cooldown
            self.num_bad_epochs = 0
        self._last_lr = self._current_lrs()

    def _reduce_lr(self) -> None:
        groups = _param_groups(self.optimizer)
        if len(groups) != len(self.min_lrs):
            if self.default_min_lr is None:
                raise RuntimeError(
                    f"The number of param groups in the optimizer ({len(groups)}) differs from "
                    f"when ReduceLROnPlateau was created ({len(self.min_lrs)}): set `min_lrs` "
                    "to one value per param group"
                )
            self.min_lrs = [self.default_min_lr] * len(groups)
        for group, min_lr in zip(groups, self.min_lrs):
            old_lr = float(group["lr"])
            new_lr = max(old_lr * self.factor, min_lr)
            if old_lr - new_lr > self.eps:
                group["lr"] = new_lr


# -- beyond torch ----------------------------------------------------------------------------


class WarmupStableDecayLR(LRScheduler):
    r"""Warmup-stable-decay ("trapezoidal") schedule: linear warmup, a constant plateau, a decay.

    Popularised by MiniCPM (Hu et al., 2024, arXiv:2404.06395) and analysed by Wen et al.
    (2024, arXiv:2410.05192); the ``"sqrt"`` cooldown is from Hägele et al. (2024,
    arXiv:2405.18392). With :math:`W, S, D` = ``warmup_steps``, ``stable_steps``,
    ``decay_steps``, :math:`s` = ``warmup_start_factor``, :math:`f` = ``final_lr_factor``:

    .. math::
        \eta_t = \eta_0 \cdot \begin{cases}
            s + (1 - s)\, t / W & 0 \le t < W \\
            1 & W \le t < W + S \\
            f + (1 - f)\, g\big((t - W - S) / D\big) & W + S \le t < W + S + D \\
            f & t \ge W + S + D
        \end{cases}

    with :math:`g(p) = 1 - p` (``"linear"``), :math:`(1 + \cos \pi p)/2` (``"cosine"``) or
    :math:`1 - \sqrt{p}` (``"sqrt"``). The lr reaches :math:`\eta_0` at ``t = W`` and
    :math:`f \eta_0` at ``t = W + S + D``, the last of the ``W + S + D + 1`` values of
    ``t = 0..W+S+D``. ``final_lr_factor`` multiplies each group's initial lr (it is not an
    absolute lr). Closed form (computed from ``base_lrs``; not chainable).

    >>> import numpy as np
    >>> from dlopt.optim import SGD
    >>> from dlopt.lr_scheduler import WarmupStableDecayLR
    >>> opt = SGD([np.zeros(3, np.float32)], lr=1.0)
    >>> sched = WarmupStableDecayLR(opt, warmup_steps=2, stable_steps=2, decay_steps=4,
    ...                             final_lr_factor=0.2)
    >>> lrs = []
    >>> for _ in range(10):
    ...     lrs.append(round(sched.get_last_lr()[0], 6))
    ...     sched.step()
    >>> lrs
    [0.0, 0.5, 1.0, 1.0, 1.0, 0.8, 0.6, 0.4, 0.2, 0.2]
    """

    _DECAYS = ("linear", "cosine", "sqrt")

    def __init__(
        self,
        optimizer: Any,
        warmup_steps: int,
        stable_steps: int,
        decay_steps: int,
        final_lr_factor: float = 0.0,
        warmup_start_factor: float = 0.0,
        decay: str = "linear",
        last_epoch: int = -1,
    ):
        for name, value in (("warmup_steps", warmup_steps), ("stable_steps", stable_steps),
                            ("decay_steps", decay_steps)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"{name}: expected a non-negative integer, got {value!r}")
        if final_lr_factor < 0.0:
            raise ValueError(f"final_lr_factor: expected a value >= 0, got {final_lr_factor}")
        if not 0.0 <= warmup_start_factor <= 1.0:
            raise ValueError(
                f"warmup_start_factor: expected a value in [0, 1], got {warmup_start_factor}"
            )
        if decay not in self._DECAYS:
            raise ValueError(f"decay: expected one of {self._DECAYS}, got {decay!r}")
        self.warmup_steps = warmup_steps
        self.stable_steps = stable_steps
        self.decay_steps = decay_steps
        self.final_lr_factor = final_lr_factor
        self.warmup_start_factor = warmup_start_factor
        self.decay = decay
        super().__init__(optimizer, last_epoch)

    def lr_factor(self, t: int) -> float:
        """The multiplier of the initial lr at step ``t``."""
        decay_start = self.warmup_steps + self.stable_steps
        if t < self.warmup_steps:
            start = self.warmup_start_factor
            return start + (1.0 - start) * t / self.warmup_steps
        if t < decay_start:
            return 1.0
        final = self.final_lr_factor
        if t >= decay_start + self.decay_steps:
            return final
        progress = (t - decay_start) / self.decay_steps
        if self.decay == "linear":
            remaining = 1.0 - progress
        elif self.decay == "cosine":
            remaining = (1.0 + math.cos(math.pi * progress)) / 2.0
        else:
            remaining = 1.0 - math.sqrt(progress)
        return final + (1.0 - final) * remaining

    def get_lr(self) -> list[float]:
        return self._scaled_base_lrs(self.lr_factor(self.last_epoch))
