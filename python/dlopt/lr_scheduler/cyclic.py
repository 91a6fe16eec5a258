"""Cyclic schedules that also drive the momentum: CyclicLR and OneCycleLR (whose phases and anneal
are ``dlopt::OneCycle``'s, called through ``_core``)."""

from __future__ import annotations

import math
import sys
from typing import Any, Callable

import numpy as np

from .. import _core
from .._checks import real, whole
from ._base import (_check_last_epoch, _groups_restored_on_error, _MomentumCycler, _param_groups,
                    _reals_per_group)

def _positive_int(name: str, value: Any) -> int:
    """torch's check of OneCycleLR's counts (an int, not a whole float), plus a TypeError for a bool or
    a non-number and an upper bound (2**53 - 1: every step exact as a float)."""
    if isinstance(value, bool) or not isinstance(value, int):
        if isinstance(value, (int, float)) and not isinstance(value, bool):  # torch: ValueError
            raise ValueError(f"Expected positive integer {name}, but got {value}")
        raise TypeError(f"{name}: expected a positive int, got {type(value).__name__}")
    if value <= 0:
        raise ValueError(f"Expected positive integer {name}, but got {value}")
    return whole(name, value, 1)


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

    Parameters
    ----------
    {optimizer}
    base_lr : float or list of float
        Lower bound of the cycle, per group or for all.
    max_lr : float or list of float
        Upper bound of the cycle (reached scaled by the amplitude scale).
    step_size_up : int, default 2000
        Epochs of the increasing half of a cycle.
    step_size_down : int or None, default None
        Epochs of the decreasing half; ``None``: ``step_size_up``.
    mode : {'triangular', 'triangular2', 'exp_range'}, default 'triangular'
        Amplitude scale: constant, halved each cycle, or ``gamma ** t``; ignored when ``scale_fn`` is given.
    gamma : float, default 1.0
        Base of the ``'exp_range'`` scale.
    scale_fn : callable or None, default None
        Custom amplitude scale of one argument, in [0, 1].
    scale_mode : {'cycle', 'iterations'}, default 'cycle'
        Whether ``scale_fn`` takes the cycle number or the epoch.
    cycle_momentum : bool, default True
        Cycle the momentum (``'momentum'`` or ``betas[0]``) inversely to the lr.
    base_momentum : float or list of float, default 0.8
        Lower bound of the momentum cycle.
    max_momentum : float or list of float, default 0.9
        Upper bound of the momentum cycle.
    {last_epoch}

    Raises
    ------
    ValueError
        An unknown ``mode`` without ``scale_fn``, or ``cycle_momentum`` with an optimizer that has neither
        momentum nor betas.
    {raises}

    Examples
    --------
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
        # every argument checked before the groups are written (lrs, momenta, initial_lr)
        _param_groups(optimizer)
        _check_last_epoch(last_epoch)
        self.optimizer = optimizer
        base_lrs = _reals_per_group("base_lr", optimizer, base_lr)
        self.max_lrs = _reals_per_group("max_lr", optimizer, max_lr)
        up = real("step_size_up", step_size_up, 0.0, sys.float_info.max)
        down = up if step_size_down is None else real("step_size_down", step_size_down, 0.0,
                                                      sys.float_info.max)
        if up == 0.0:  # a cycle of length 0 would divide by zero
            raise ValueError("step_size_up: expected a value > 0, got 0")
        if scale_fn is not None and not callable(scale_fn):
            raise TypeError(f"scale_fn: expected a callable or None, got {type(scale_fn).__name__}")
        if scale_fn is None and mode not in ("triangular", "triangular2", "exp_range"):
            raise ValueError("mode is invalid and scale_fn is None")
        if scale_fn is not None and scale_mode not in ("cycle", "iterations"):
            raise ValueError(f"scale_mode: expected 'cycle' or 'iterations', got {scale_mode!r}")
        if scale_fn is None and mode == "exp_range":  # the only mode that reads gamma
            real("gamma", gamma, 0.0, sys.float_info.max)
        self._check_momentum(cycle_momentum, base_momentum, max_momentum)

        self.total_size = up + down
        self.step_ratio = up / self.total_size
        self.mode = mode
        self.gamma = gamma
        self._scale_fn_custom = scale_fn
        self.scale_mode = scale_mode
        if scale_fn is None:
            self.scale_mode = "iterations" if mode == "exp_range" else "cycle"

        with _groups_restored_on_error(optimizer):
            if last_epoch == -1:
                for group, lr in zip(_param_groups(optimizer), base_lrs):
                    group["lr"] = lr
            self._init_momentum(last_epoch)
            super().__init__(optimizer, last_epoch)
        # as in torch, the constructor's step used the groups' "initial_lr"; from now on, base_lr
        self.base_lrs = base_lrs

    def scale_fn(self, x: float) -> float:
        """The amplitude scale at ``x`` (the cycle number or the iteration, by ``scale_mode``).

        Parameters
        ----------
        x : float
            The cycle number (``scale_mode='cycle'``) or the iteration.

        Returns
        -------
        float
            The factor applied to the cycle's amplitude ``max_lr - base_lr``.
        """
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

    Parameters
    ----------
    {optimizer}
    max_lr : float or list of float
        Peak lr, per group or for all.
    total_steps : int or None, default None
        Number of steps of the cycle; ``None``: ``epochs * steps_per_epoch``.
    epochs : int or None, default None
        Number of epochs (with ``steps_per_epoch``).
    steps_per_epoch : int or None, default None
        Steps per epoch (with ``epochs``).
    pct_start : float, default 0.3
        Fraction of the cycle spent increasing the lr.
    anneal_strategy : {'cos', 'linear'}, default 'cos'
        Shape of the annealing.
    cycle_momentum : bool, default True
        Cycle the momentum (``'momentum'`` or ``betas[0]``) inversely to the lr.
    base_momentum : float or list of float, default 0.85
        Lowest momentum (at the peak lr).
    max_momentum : float or list of float, default 0.95
        Highest momentum (at the start and end).
    div_factor : float, default 25.0
        The initial lr is ``max_lr / div_factor``.
    final_div_factor : float, default 10000.0
        The final lr is the initial lr divided by ``final_div_factor``.
    three_phase : bool, default False
        Add a third phase that anneals from the initial lr to the final lr.
    {last_epoch}

    Raises
    ------
    ValueError
        Neither ``total_steps`` nor ``epochs`` and ``steps_per_epoch``, a non-positive count, ``pct_start``
        outside [0, 1] or an unknown ``anneal_strategy``.
    {raises}

    Examples
    --------
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
        # every argument checked before the groups are written (initial_lr, max_lr, min_lr, momenta)
        _param_groups(optimizer)
        _check_last_epoch(last_epoch)
        self.optimizer = optimizer
        if total_steps is not None:
            self.total_steps = _positive_int("total_steps", total_steps)
        elif epochs is not None and steps_per_epoch is not None:
            self.total_steps = (_positive_int("epochs", epochs)
                                * _positive_int("steps_per_epoch", steps_per_epoch))
            whole("epochs * steps_per_epoch", self.total_steps, 1)
        else:
            raise ValueError("You must define either total_steps OR (epochs AND steps_per_epoch)")
        if isinstance(pct_start, bool) or not isinstance(pct_start, float):  # torch: a float
            real("pct_start", pct_start)  # TypeError for what is not a number at all
            raise ValueError(f"Expected float between 0 and 1 pct_start, but got {pct_start!r}")
        real("pct_start", pct_start, 0.0, 1.0)
        if anneal_strategy not in ("cos", "linear"):
            raise ValueError(
                f"anneal_strategy must be one of 'cos' or 'linear', instead got {anneal_strategy}"
            )
        if not isinstance(three_phase, (bool, np.bool_)):
            raise TypeError(f"three_phase: expected a bool, got {type(three_phase).__name__}")
        max_lrs = _reals_per_group("max_lr", optimizer, max_lr)
        # initial_lr = max_lr / div_factor, min_lr = initial_lr / final_div_factor: finite and > 0
        for name, value in (("div_factor", div_factor), ("final_div_factor", final_div_factor)):
            if real(name, value, 0.0, sys.float_info.max) == 0.0:
                raise ValueError(f"{name}: expected a value > 0, got {value!r}")
        self._check_momentum(cycle_momentum, base_momentum, max_momentum)
        self._anneal_func_type = anneal_strategy

        # (end step, lr key at start, lr key at end, momentum key at start, at end); the end
        # steps are dlopt::OneCycle's
        ends = _core.one_cycle_phases(self.total_steps, float(pct_start), bool(three_phase))
        keys = [("initial_lr", "max_lr", "max_momentum", "base_momentum"),
                ("max_lr", "initial_lr", "base_momentum", "max_momentum"),
                ("initial_lr", "min_lr", "max_momentum", "max_momentum")]
        if not three_phase:
            keys = [keys[0], ("max_lr", "min_lr", "base_momentum", "max_momentum")]
        self._schedule_phases = [(end, *k) for end, k in zip(ends, keys)]
        # a phase of no steps that a step reaches (the first, starting at 0, or the last, which takes
        # every step past the others) is a division by zero: torch raises ZeroDivisionError there
        if ends[0] == 0 or ends[-1] == ends[-2]:
            raise ValueError(
                f"pct_start={pct_start!r} with total_steps={self.total_steps} gives a phase of no "
                "steps (pct_start * total_steps must not be 1, and pct_start must be below 1 "
                "without three_phase, below (total_steps + 1) / (2 * total_steps) with it)"
            )

        with _groups_restored_on_error(optimizer):
            if last_epoch == -1:
                for group, top in zip(_param_groups(optimizer), max_lrs):
                    group["initial_lr"] = top / div_factor
                    group["max_lr"] = top
                    group["min_lr"] = group["initial_lr"] / final_div_factor
            self._init_momentum(last_epoch)
            super().__init__(optimizer, last_epoch)

    def _anneal(self, start: float, end: float, pct: float) -> float:
        return _core.one_cycle_anneal(self._anneal_func_type == "cos", start, end, pct)

    def get_lr(self) -> list[float]:
        """The lrs at ``last_epoch``; with ``cycle_momentum``, also sets the groups' momentum."""
        step = self.last_epoch
        if step > self.total_steps:
            raise ValueError(
                f"Tried to step {step} times. The specified number of total steps is "
                f"{self.total_steps}"
            )
        # the phase holding this step: the first that ends at or after it (else the last one)
        i, pct = _core.one_cycle_locate(step, [phase[0] for phase in self._schedule_phases])
        _, lr_from, lr_to, momentum_from, momentum_to = self._schedule_phases[i]

        lrs = []
        for group in _param_groups(self.optimizer):
            lrs.append(self._anneal(group[lr_from], group[lr_to], pct))
            if self.cycle_momentum:
                self._set_momentum(
                    group, self._anneal(group[momentum_from], group[momentum_to], pct)
                )
        return lrs
