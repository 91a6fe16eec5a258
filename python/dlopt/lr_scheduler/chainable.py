"""torch's chainable decays and warmups: StepLR, MultiStepLR, ConstantLR, LinearLR, ExponentialLR,
PolynomialLR, CosineAnnealingLR, CosineAnnealingWarmRestarts. Each one's closed form
(``step(epoch)``) is the C++ struct of ``dlopt/schedule.hpp``, called through ``_core``."""

from __future__ import annotations

import math
import sys
from collections import Counter
from typing import Any, Iterable

from .._checks import real, whole
from ._base import LRScheduler, _check_last_epoch, _param_groups

_MAX = sys.float_info.max


def _gamma(gamma: Any) -> Any:
    """A decay factor: finite and >= 0 (a negative one flips the lr's sign, NaN or inf poison it);
    above 1 is allowed (a growing lr, as in torch)."""
    real("gamma", gamma, 0.0, _MAX)
    return gamma

# -- chainable schedules ---------------------------------------------------------------------


class StepLR(LRScheduler):
    r"""Decays each group's lr by ``gamma`` every ``step_size`` epochs.

    .. math::
        \eta_t = \eta_0 \cdot \gamma^{\lfloor t / \texttt{step\_size} \rfloor}

    Chainable: at each non-zero multiple of ``step_size`` the current lr is multiplied by
    ``gamma``.

    Parameters
    ----------
    {optimizer}
    step_size : int
        Period of the decay, in epochs (>= 1).
    gamma : float, default 0.1
        Multiplicative factor of the decay (finite, >= 0).
    {last_epoch}

    Raises
    ------
    {raises}

    Examples
    --------
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
        self.step_size = whole("step_size", step_size, 1)
        self.gamma = _gamma(gamma)
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        if self.last_epoch == 0 or self.last_epoch % self.step_size != 0:
            return self._current_lrs()
        return self._scaled_lrs(self.gamma)

    def _get_closed_form_lr(self) -> list[float]:
        return self._closed_form("step", step_size=self.step_size, gamma=self.gamma)


def _milestones(milestones: Any) -> list[Any]:
    """The milestones as a list of whole numbers >= 0 (a negative one is never reached by the
    recursion but counts in the closed form)."""
    if isinstance(milestones, (str, bytes)) or not hasattr(milestones, "__iter__"):
        raise TypeError(f"milestones: expected an iterable of ints, got {type(milestones).__name__}")
    values = list(milestones)
    for i, m in enumerate(values):
        whole(f"milestones[{i}]", m, 0)
    return values


class MultiStepLR(LRScheduler):
    r"""Decays each group's lr by ``gamma`` at each milestone epoch.

    .. math::
        \eta_t = \eta_0 \cdot \gamma^{\#\{m \in \texttt{milestones} : m \le t\}}

    A milestone listed ``k`` times decays by ``gamma**k``. Chainable. ``milestones`` is kept as
    a dict {epoch: count} (torch keeps a ``Counter``).

    Parameters
    ----------
    {optimizer}
    milestones : iterable of int
        Epochs at which the lr decays (>= 0; a repeated epoch decays once per listing).
    gamma : float, default 0.1
        Multiplicative factor of the decay (finite, >= 0).
    {last_epoch}

    Raises
    ------
    {raises}

    Examples
    --------
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
        self.milestones = dict(Counter(_milestones(milestones)))
        self.gamma = _gamma(gamma)
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        if self.last_epoch not in self.milestones:
            return self._current_lrs()
        return self._scaled_lrs(self.gamma ** self.milestones[self.last_epoch])

    def _get_closed_form_lr(self) -> list[float]:
        milestones = sorted(m for m, n in self.milestones.items() for _ in range(n))
        return self._closed_form("multistep", milestones=milestones, gamma=self.gamma)


class ConstantLR(LRScheduler):
    r"""Multiplies each group's lr by a constant ``factor`` for the first ``total_iters`` epochs.

    .. math::
        \eta_t = \eta_0 \cdot \begin{cases} \texttt{factor} & t < \texttt{total\_iters} \\
                                            1 & t \ge \texttt{total\_iters} \end{cases}

    Chainable: multiplies by ``factor`` at epoch 0 and by ``1 / factor`` at ``total_iters``.

    Parameters
    ----------
    {optimizer}
    factor : float, default 1.0 / 3
        Factor applied until ``total_iters``, in (0, 1] (the lr is divided by it at ``total_iters``).
    total_iters : int, default 5
        Number of epochs the factor applies to (>= 0).
    {last_epoch}

    Raises
    ------
    ValueError
        ``factor`` outside [0, 1].
    {raises}

    Examples
    --------
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
        # 0 is refused too: the step at total_iters divides by it (torch: ZeroDivisionError)
        if real("factor", factor, 0.0, 1.0) == 0.0:
            raise ValueError("Constant multiplicative factor expected to be between 0 and 1.")
        self.factor = factor
        self.total_iters = whole("total_iters", total_iters, 0)
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        if self.last_epoch == 0:
            return self._scaled_lrs(self.factor)
        if self.last_epoch != self.total_iters:
            return self._current_lrs()
        return self._scaled_lrs(1.0 / self.factor)

    def _get_closed_form_lr(self) -> list[float]:
        return self._closed_form("constant_factor", factor=self.factor, total_iters=self.total_iters)


class LinearLR(LRScheduler):
    r"""Scales each group's lr by a factor going linearly from ``start_factor`` to ``end_factor``.

    .. math::
        \eta_t = \eta_0 \left(s + (e - s) \frac{\min(t, T)}{T}\right),
        \qquad s = \texttt{start\_factor},\ e = \texttt{end\_factor},\ T = \texttt{total\_iters}

    Chainable: step ``t`` multiplies the current lr by
    :math:`1 + (e - s) / (T s + (t - 1)(e - s))`.

    Parameters
    ----------
    {optimizer}
    start_factor : float, default 1.0 / 3
        Factor at epoch 0, in (0, 1].
    end_factor : float, default 1.0
        Factor from epoch ``total_iters`` on, in [0, 1].
    total_iters : int, default 5
        Number of epochs of the linear change (>= 1).
    {last_epoch}

    Raises
    ------
    ValueError
        A factor outside its range.
    {raises}

    Examples
    --------
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
        if real("start_factor", start_factor, 0.0, 1.0) == 0.0:
            raise ValueError(
                "Starting multiplicative factor expected to be greater than 0 and less or equal "
                "to 1."
            )
        real("end_factor", end_factor, 0.0, 1.0)
        self.start_factor = start_factor
        self.end_factor = end_factor
        # >= 1: the closed form (step(epoch)) divides by it
        self.total_iters = whole("total_iters", total_iters, 1)
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        if self.last_epoch == 0:
            return self._scaled_lrs(self.start_factor)
        if self._is_initial or self.last_epoch > self.total_iters:
            return self._current_lrs()
        change = self.end_factor - self.start_factor
        # torch's chainable factor; with end_factor 0 its last step can round to -1e-16 instead of 0, a
        # negative lr the optimizer refuses: the factor is never below 0, so clamp the rounding away.
        return self._scaled_lrs(
            max(0.0, 1.0 + change / (self.total_iters * self.start_factor + (self.last_epoch - 1) * change))
        )

    def _get_closed_form_lr(self) -> list[float]:
        return self._closed_form("linear", start_factor=self.start_factor,
                                 end_factor=self.end_factor, total_iters=self.total_iters)


class ExponentialLR(LRScheduler):
    r"""Decays each group's lr by ``gamma`` every epoch.

    .. math::
        \eta_t = \eta_0 \cdot \gamma^t

    Chainable.

    Parameters
    ----------
    {optimizer}
    gamma : float
        Multiplicative factor applied every epoch (finite, >= 0).
    {last_epoch}

    Raises
    ------
    {raises}

    Examples
    --------
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
        self.gamma = _gamma(gamma)
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        if self._is_initial:
            return self._current_lrs()
        return self._scaled_lrs(self.gamma)

    def _get_closed_form_lr(self) -> list[float]:
        return self._closed_form("exponential", gamma=self.gamma)


class PolynomialLR(LRScheduler):
    r"""Decays each group's lr polynomially to zero over ``total_iters`` epochs.

    .. math::
        \eta_t = \eta_0 \left(1 - \frac{\min(t, T)}{T}\right)^{p},
        \qquad T = \texttt{total\_iters},\ p = \texttt{power}

    Chainable: step ``t <= T`` multiplies the current lr by
    :math:`\big((1 - t/T) / (1 - (t-1)/T)\big)^p`.

    Parameters
    ----------
    {optimizer}
    total_iters : int, default 5
        Number of epochs of the decay (>= 1); the lr is 0 from then on.
    power : float, default 1.0
        Power of the polynomial (finite, >= 0).
    {last_epoch}

    Raises
    ------
    {raises}

    Examples
    --------
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
        # total_iters >= 1: the closed form divides by it; power >= 0: a negative one divides by zero
        # at total_iters (torch: ZeroDivisionError)
        self.total_iters = whole("total_iters", total_iters, 1)
        real("power", power, 0.0, _MAX)
        self.power = power
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        if self._is_initial or self.last_epoch > self.total_iters:
            return self._current_lrs()
        t, total = self.last_epoch, self.total_iters
        return self._scaled_lrs(((1.0 - t / total) / (1.0 - (t - 1) / total)) ** self.power)

    def _get_closed_form_lr(self) -> list[float]:
        return self._closed_form("polynomial", total_iters=self.total_iters, power=self.power)


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

    Parameters
    ----------
    {optimizer}
    T_max : int
        Number of epochs of the half cosine (a half period, >= 1).
    eta_min : float, default 0.0
        The lowest lr (finite, >= 0).
    {last_epoch}

    Raises
    ------
    {raises}

    Examples
    --------
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
        # T_max >= 1: every step divides by it; eta_min >= 0: the lowest lr of the cosine
        self.T_max = whole("T_max", T_max, 1)
        real("eta_min", eta_min, 0.0, _MAX)
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
        return self._closed_form("cosine", T_max=self.T_max, eta_min=self.eta_min)


class CosineAnnealingWarmRestarts(LRScheduler):
    r"""Cosine annealing with warm restarts (SGDR, Loshchilov & Hutter, 2017).

    .. math::
        \eta_t = \eta_{\min} + \tfrac12 (\eta_0 - \eta_{\min})
                 \left(1 + \cos\frac{\pi T_{cur}}{T_i}\right)

    :math:`T_{cur}` counts the epochs since the last restart; the first period is
    :math:`T_0` and each restart multiplies the period by ``T_mult``. Closed form;
    ``step(epoch)`` accepts fractional epochs (e.g. ``epoch + i / iters_per_epoch``).

    Parameters
    ----------
    {optimizer}
    T_0 : int
        Number of epochs until the first restart.
    T_mult : int, default 1
        Factor by which each period is longer than the previous one.
    eta_min : float, default 0.0
        The lowest lr.
    {last_epoch}

    Raises
    ------
    ValueError
        ``T_0`` not a positive integer, ``T_mult`` not an integer >= 1, ``eta_min`` negative or not
        finite, or (in ``step``) a negative epoch.
    {raises}

    Examples
    --------
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
        # torch's checks (T_0, T_mult: ints; eta_min: a float or an int), with a TypeError for what is
        # not a number at all and bounds: counts below 2**53, eta_min finite and >= 0
        for name, value, lo in (("T_0", T_0, 1), ("T_mult", T_mult, 1)):
            if isinstance(value, bool) or not isinstance(value, int):
                whole(name, value, lo)  # TypeError for a non-number
                raise ValueError(f"Expected integer {name} >= {lo}, but got {value}")
            whole(name, value, lo)
        if isinstance(eta_min, bool) or not isinstance(eta_min, (float, int)):
            real("eta_min", eta_min)  # TypeError for a non-number
            raise ValueError(
                f"Expected float or int eta_min, but got {eta_min} of type {type(eta_min)}"
            )
        real("eta_min", eta_min, 0.0, _MAX)
        _check_last_epoch(last_epoch)
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
        """Advances one epoch, or jumps to ``epoch`` (which may be fractional), and sets the lrs.

        Parameters
        ----------
        epoch : float, optional
            The epoch to jump to (within-cycle position included); ``None``: the next epoch.

        Raises
        ------
        ValueError
            A negative ``epoch``.
        """
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
