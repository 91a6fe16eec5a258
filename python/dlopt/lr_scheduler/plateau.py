"""The metric-driven ReduceLROnPlateau."""

from __future__ import annotations

import math
import sys
import warnings
from typing import Any

from .._checks import real, whole
from ._base import _EPOCH_DEPRECATION, LRScheduler, _param_groups, _reals_per_group

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

    Parameters
    ----------
    {optimizer}
    mode : {'min', 'max'}, default 'min'
        Whether the metric should decrease or increase.
    factor : float, default 0.1
        Factor by which the lr is reduced (< 1).
    patience : int, default 10
        Number of steps without improvement tolerated before reducing.
    threshold : float, default 0.0001
        Threshold :math:`\epsilon` of a significant improvement.
    threshold_mode : {'rel', 'abs'}, default 'rel'
        Whether ``threshold`` is relative or absolute.
    cooldown : int, default 0
        Steps after a reduction during which bad epochs are not counted.
    min_lr : float or list of float, default 0
        Lower bound of the lr, per group or for all.
    eps : float, default 1e-8
        Reductions smaller than this are skipped.

    Raises
    ------
    ValueError
        ``factor >= 1``, or an unknown ``mode`` or ``threshold_mode``.
    TypeError
        ``optimizer`` has no list ``param_groups``.

    Examples
    --------
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
        # factor in [0, 1) (a negative one would flip the lr, below min_lr); counts whole and >= 0;
        # threshold, min_lr and eps finite and >= 0
        _param_groups(optimizer)
        if real("factor", factor, 0.0, math.inf) >= 1.0:
            raise ValueError("Factor should be < 1.0.")
        if mode not in ("min", "max"):
            raise ValueError(f"mode {mode} is unknown!")
        if threshold_mode not in ("rel", "abs"):
            raise ValueError(f"threshold mode {threshold_mode} is unknown!")
        whole("patience", patience, 0)
        whole("cooldown", cooldown, 0)
        real("threshold", threshold, 0.0, sys.float_info.max)
        real("eps", eps, 0.0, sys.float_info.max)
        self.optimizer = optimizer
        self.factor = factor
        self.min_lrs = _reals_per_group("min_lr", optimizer, min_lr)
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
        """Records the metric (any number, or a 0-d array) and reduces the lrs if it plateaued.

        Parameters
        ----------
        metrics : float
            The monitored value of this evaluation (the validation loss, say).
        epoch : int, optional
            Deprecated: the epoch number to record (warns with ``UserWarning``).
        """
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
