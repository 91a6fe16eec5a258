"""The base classes and helpers every scheduler shares."""

from __future__ import annotations

import contextlib
import copy
import sys
import types
import warnings
from typing import Any, Callable, Sequence

import numpy as np

from .. import _core
from .._checks import count, real

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


def _reals_per_group(name: str, optimizer: Any, value: Any, lo: float = 0.0) -> list[Any]:
    """``_per_group`` of finite reals in ``[lo, max float]`` (lrs, momenta): each checked, kept as given."""
    values = _per_group(name, optimizer, value)
    for i, v in enumerate(values):
        real(name if len(values) == 1 or not isinstance(value, (list, tuple)) else f"{name}[{i}]",
             v, lo, sys.float_info.max)
    return values


def _check_last_epoch(last_epoch: Any) -> None:
    """An int >= -1 (-1: a fresh schedule); not a whole float: the closed forms take an int step."""
    count("last_epoch", last_epoch, -1)


@contextlib.contextmanager
def _groups_restored_on_error(optimizer: Any):
    """Undoes a failed constructor's writes into the param groups. The arguments are checked before
    anything is written; this covers what only running can reveal (a user's ``lr_lambda`` or
    ``scale_fn`` raising in the constructor's step). Shallow copies: the values are replaced in the
    groups, never changed in place."""
    groups = _param_groups(optimizer)
    saved = [dict(group) for group in groups]
    try:
        yield
    except BaseException:
        for group, before in zip(groups, saved):
            group.clear()
            group.update(before)
        raise


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

    Parameters
    ----------
    {optimizer}
    {last_epoch}

    Raises
    ------
    {raises}

    Examples
    --------
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
        _check_last_epoch(last_epoch)
        self.optimizer = optimizer
        if last_epoch != -1:
            missing = [i for i, group in enumerate(groups) if "initial_lr" not in group]
            if missing:
                raise KeyError(
                    f"param 'initial_lr' is not specified in param_groups{missing} when resuming "
                    f"with last_epoch={last_epoch}: create the scheduler with last_epoch=-1, or "
                    "restore the optimizer's param groups first"
                )
        with _groups_restored_on_error(optimizer):
            if last_epoch == -1:
                for group in groups:
                    group.setdefault("initial_lr", group["lr"])
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

        Parameters
        ----------
        epoch : int, optional
            Deprecated: the epoch to jump to (warns with ``UserWarning``); ``None``: the next one.

        Raises
        ------
        RuntimeError
            The optimizer's number of param groups changed since the scheduler was made.

        Examples
        --------
        >>> import numpy as np
        >>> from dlopt.optim import SGD
        >>> from dlopt.lr_scheduler import ExponentialLR
        >>> opt = SGD([np.zeros(1)], lr=1.0)
        >>> sched = ExponentialLR(opt, gamma=0.5)
        >>> sched.step(); opt.param_groups[0]["lr"]
        0.5
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
        """The lrs the scheduler last set, one per param group.

        Returns
        -------
        list of float
            One lr per param group, as :meth:`step` (or the constructor) last wrote them.
        """
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

    def _closed_form(self, kind: str, **fields: Any) -> list[float]:
        """Each group's lr at ``last_epoch`` by the C++ closed form ``kind`` (dlopt/schedule.hpp)."""
        return [_core.schedule_lr(kind, base_lr, self.last_epoch, **fields)
                for base_lr in self.base_lrs]

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
        """Restores a :meth:`state_dict`; user callables stay those given at construction.

        Parameters
        ----------
        state_dict : dict
            What :meth:`state_dict` returned (callable objects get their saved ``__dict__`` back).
        """
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

    def _check_momentum(self, cycle_momentum: Any, base_momentum: Any, max_momentum: Any) -> None:
        """Checks the momentum arguments and records them; writes nothing into the groups."""
        if not isinstance(cycle_momentum, (bool, np.bool_)):
            raise TypeError(f"cycle_momentum: expected a bool, got {type(cycle_momentum).__name__}")
        self.cycle_momentum = bool(cycle_momentum)
        if not self.cycle_momentum:
            return
        defaults = getattr(self.optimizer, "defaults", {})
        if "momentum" not in defaults and "betas" not in defaults:
            raise ValueError(
                "optimizer must support momentum or beta1 with `cycle_momentum` option enabled"
            )
        self.use_beta1 = "betas" in defaults
        self.base_momentums = _reals_per_group("base_momentum", self.optimizer, base_momentum)
        self.max_momentums = _reals_per_group("max_momentum", self.optimizer, max_momentum)

    def _init_momentum(self, last_epoch: int) -> None:
        """Starts each group's momentum at its maximum (a fresh schedule only)."""
        if not self.cycle_momentum or last_epoch != -1:
            return
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
