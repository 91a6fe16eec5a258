"""Beyond torch: WarmupStableDecayLR (closed form: ``dlopt::WarmupStableDecay``)."""

from __future__ import annotations

import sys
from typing import Any

from .. import _core
from .._checks import count, real
from ._base import LRScheduler

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

    Parameters
    ----------
    {optimizer}
    warmup_steps : int
        :math:`W`, steps of linear warmup.
    stable_steps : int
        :math:`S`, steps at the initial lr.
    decay_steps : int
        :math:`D`, steps of decay.
    final_lr_factor : float, default 0.0
        :math:`f`, the final lr as a fraction of the initial lr.
    warmup_start_factor : float, default 0.0
        :math:`s`, the first lr as a fraction of the initial lr.
    decay : {'linear', 'cosine', 'sqrt'}, default 'linear'
        :math:`g`, the shape of the decay.
    {last_epoch}

    Raises
    ------
    ValueError
        A negative or non-integer step count, a negative ``final_lr_factor``, a ``warmup_start_factor``
        outside [0, 1] or an unknown ``decay``.
    {raises}

    Examples
    --------
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
        # Step counts below 2**53 (every one exact as a float); factors finite: an infinite
        # final_lr_factor or a NaN would reach every lr.
        warmup_steps, stable_steps, decay_steps = (
            count(name, value) for name, value in (("warmup_steps", warmup_steps),
                                                   ("stable_steps", stable_steps),
                                                   ("decay_steps", decay_steps)))
        if warmup_steps + stable_steps + decay_steps > 2**53 - 1:
            raise ValueError("warmup_steps + stable_steps + decay_steps: expected at most 2**53 - 1")
        final_lr_factor = real("final_lr_factor", final_lr_factor, 0.0, sys.float_info.max)
        warmup_start_factor = real("warmup_start_factor", warmup_start_factor, 0.0, 1.0)
        if not isinstance(decay, str) or decay not in self._DECAYS:
            raise ValueError(f"decay: expected one of {self._DECAYS}, got {decay!r}")
        self.warmup_steps = warmup_steps
        self.stable_steps = stable_steps
        self.decay_steps = decay_steps
        self.final_lr_factor = final_lr_factor
        self.warmup_start_factor = warmup_start_factor
        self.decay = decay
        super().__init__(optimizer, last_epoch)

    def lr_factor(self, t: int) -> float:
        """The multiplier of the initial lr at step ``t`` (``dlopt::WarmupStableDecay``).

        Parameters
        ----------
        t : int
            The step (``last_epoch``).

        Returns
        -------
        float
            :math:`\\eta_t / \\eta_0`.
        """
        return _core.schedule_lr("wsd", 1.0, t, warmup_steps=self.warmup_steps,
                                 stable_steps=self.stable_steps, decay_steps=self.decay_steps,
                                 final_lr_factor=self.final_lr_factor,
                                 warmup_start_factor=self.warmup_start_factor, decay=self.decay)

    def get_lr(self) -> list[float]:
        return self._scaled_base_lrs(self.lr_factor(self.last_epoch))
