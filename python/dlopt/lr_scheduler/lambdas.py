"""Schedulers driven by a user function of the epoch: LambdaLR, MultiplicativeLR."""

from __future__ import annotations

from ._base import _LambdaScheduler, _param_groups

# -- user functions of the epoch --------------------------------------------------------------


class LambdaLR(_LambdaScheduler):
    r"""Sets each group's lr to its initial lr times a user function of the epoch.

    .. math::
        \eta_t = \eta_0 \cdot \lambda(t)

    ``lr_lambda`` is one function or a list of one per param group. Closed form (not chainable).

    Parameters
    ----------
    {optimizer}
    lr_lambda : callable or list of callables
        Function :math:`\lambda` of the epoch (an int) giving the factor, or one per param group.
    {last_epoch}

    Raises
    ------
    ValueError
        A list of ``lr_lambda`` whose length is not the number of param groups.
    TypeError
        An ``lr_lambda`` that is not callable.
    {raises}

    Examples
    --------
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

    Parameters
    ----------
    {optimizer}
    lr_lambda : callable or list of callables
        Function :math:`\lambda` of the epoch (an int) giving the factor, or one per param group.
    {last_epoch}

    Raises
    ------
    ValueError
        A list of ``lr_lambda`` whose length is not the number of param groups.
    TypeError
        An ``lr_lambda`` that is not callable.
    {raises}

    Examples
    --------
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
