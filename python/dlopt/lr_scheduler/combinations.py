"""Schedulers made of other schedulers: SequentialLR, ChainedScheduler."""

from __future__ import annotations

from bisect import bisect_right
from typing import Any, Sequence

from .._checks import whole
from ._base import LRScheduler, _check_last_epoch, _groups_restored_on_error, _param_groups
from .plateau import ReduceLROnPlateau

# -- combinations ----------------------------------------------------------------------------


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


class SequentialLR(_SchedulerList):
    r"""Runs a list of schedulers one after another, switching at the ``milestones``.

    .. math::
        \eta_t = \text{scheduler}_k \text{ at its own epoch } t - m_{k-1},
        \qquad m_{k-1} \le t < m_k

    Each scheduler starts from its epoch 0 (its closed form at 0) when its milestone is reached.
    The lrs are reset to ``"initial_lr"`` and the schedulers' own construction steps are undone,
    so only the first one's epoch 0 applies at construction.

    Parameters
    ----------
    {optimizer}
    schedulers : list of LRScheduler
        The schedulers, in the order they run; each must drive ``optimizer``.
    milestones : list of int
        Epochs at which the next scheduler takes over (one fewer than ``schedulers``).
    {last_epoch}

    Raises
    ------
    ValueError
        No scheduler, a ``ReduceLROnPlateau``, a scheduler of another optimizer, or a wrong number of
        milestones.
    {raises}

    Examples
    --------
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
        _check_last_epoch(last_epoch)
        self._attach(optimizer, schedulers)
        if isinstance(milestones, (str, bytes)) or not hasattr(milestones, "__len__"):
            raise TypeError(f"milestones: expected a list of ints, got {type(milestones).__name__}")
        for i, m in enumerate(milestones):
            whole(f"milestones[{i}]", m, 0)
        if len(milestones) != len(schedulers) - 1:
            raise ValueError(
                "Sequential Schedulers expects number of schedulers provided to be one more than "
                f"the number of milestone points, but got number of schedulers {len(schedulers)} "
                f"and the number of milestones to be equal to {len(milestones)}"
            )
        self._milestones = list(milestones)
        self.last_epoch = last_epoch + 1

        groups = _param_groups(optimizer)
        missing = [i for i, group in enumerate(groups) if "initial_lr" not in group]
        if missing:
            raise KeyError(f"param 'initial_lr' is not specified in param_groups{missing}")
        with _groups_restored_on_error(optimizer):
            for group in groups:
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

    Parameters
    ----------
    schedulers : sequence of LRScheduler
        Chainable schedulers of one optimizer, stepped in this order.
    optimizer : optimizer or None, default None
        The optimizer they drive; ``None``: the first scheduler's.

    Raises
    ------
    ValueError
        No scheduler, a ``ReduceLROnPlateau``, or schedulers of different optimizers.

    Examples
    --------
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
