r"""Gradient accumulation, parameter averaging (EMA) and Lookahead over NumPy arrays.

Every update is one fused multi-tensor C++ pass over the caller's arrays, in place; buffers are
allocated once, at construction.
"""

from __future__ import annotations

import contextlib
from typing import Any, Iterable, Iterator, Sequence

import numpy as np

from . import _core
from ._checks import count, real

__all__ = ["GradientAccumulator", "EMA", "Lookahead"]


def _params_of(obj: Any, what: str) -> list[np.ndarray]:
    """The parameter arrays of an optimizer (in param-group order) or of a list of arrays."""
    groups = getattr(obj, "param_groups", None)
    if groups is not None:
        return [p for g in groups for p in g["params"]]
    if isinstance(obj, np.ndarray):
        return [obj]
    if isinstance(obj, dict):
        return list(obj.values())
    try:
        params = list(obj)
    except TypeError:
        raise TypeError(f"{what}: expected an optimizer or a list of arrays, got "
                        f"{type(obj).__name__}") from None
    for i, p in enumerate(params):
        if not isinstance(p, np.ndarray):
            raise TypeError(f"{what}[{i}]: expected a numpy.ndarray, got {type(p).__name__}")
    return params


def _load_arrays(saved: Any, like: Sequence[np.ndarray], what: str) -> list[np.ndarray]:
    """Checks a list of saved arrays against `like` (count, shape, dtype); returns copies."""
    if not isinstance(saved, (list, tuple)) or len(saved) != len(like):
        n = len(saved) if isinstance(saved, (list, tuple)) else type(saved).__name__
        raise ValueError(f"state_dict: {what}: expected {len(like)} arrays, got {n}")
    out = []
    for i, (s, p) in enumerate(zip(saved, like)):
        s = np.asarray(s)
        if s.shape != p.shape or s.dtype != p.dtype:
            raise ValueError(f"state_dict: {what}[{i}] is {s.dtype}{list(s.shape)}, "
                             f"expected {p.dtype}{list(p.shape)}")
        out.append(np.array(s, order="C", copy=True))
    return out


class GradientAccumulator:
    r"""Accumulates gradients over ``steps`` micro-batches, then steps the optimizer with their mean.

    .. math:: \bar g = \frac{1}{n} \sum_{j=1}^{n} g^{(j)}

    One buffer per parameter is allocated once, at construction; :meth:`add` writes the first
    micro-batch's gradients into it (a copy) and adds the next ones (a fused ``+=``), so no
    parameter-sized memory is allocated per step. :meth:`step` divides by the number ``n`` of
    micro-batches added (``n = steps`` normally; fewer at the end of an epoch), calls
    ``optimizer.step`` with the mean and starts a new accumulation. To clip the mean gradient,
    call :meth:`mean` first, clip the arrays it returns, then :meth:`step`.

    Averaging the gradients of equal-size micro-batches gives the gradient of the mean loss over
    their union, so ``steps`` micro-batches of size ``b`` behave like one batch of ``steps * b``.

    Parameters
    ----------
    optimizer_or_params : optimizer or list of arrays
        The optimizer that :meth:`step` calls (its parameters give the buffers' shapes and
        dtypes), or a list of float32/float64 arrays shaped like the gradients (then :meth:`step`
        is not available; use :meth:`mean`).
    steps : int
        The number of micro-batches per optimizer step (``ready`` turns true after that many).

    Raises
    ------
    ValueError
        ``steps`` is not a positive integer.
    TypeError
        A parameter is not float32 or float64, or ``optimizer_or_params`` is neither an optimizer
        nor a list of arrays.

    Examples
    --------
    >>> import numpy as np, dlopt
    >>> w = np.zeros(2, np.float32)
    >>> opt = dlopt.optim.SGD([w], lr=1.0)
    >>> acc = dlopt.GradientAccumulator(opt, steps=2)
    >>> acc.add([np.array([1.0, 2.0], np.float32)])
    >>> acc.ready
    False
    >>> acc.add([np.array([3.0, 4.0], np.float32)])
    >>> acc.ready, acc.step(), w
    (True, True, array([-2., -3.], dtype=float32))
    """

    def __init__(self, optimizer_or_params: Any, steps: int):
        if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 1:
            raise ValueError(f"steps: expected a positive integer, got {steps!r}")
        self.optimizer = optimizer_or_params if hasattr(optimizer_or_params, "step") else None
        self._like = _params_of(optimizer_or_params, "params")
        for i, p in enumerate(self._like):
            if p.dtype not in (np.float32, np.float64):
                raise TypeError(f"params[{i}]: dtype must be float32 or float64, got {p.dtype}")
        self.steps = int(steps)
        self.buffers = [np.zeros_like(p, order="C") for p in self._like]
        self.count = 0
        self._averaged = False

    @property
    def ready(self) -> bool:
        """True once ``steps`` micro-batches have been added."""
        return self.count >= self.steps

    def add(self, grads: Sequence[np.ndarray]) -> None:
        """Adds one micro-batch's gradients (one array per parameter, as ``optimizer.step``).

        Parameters
        ----------
        grads : list of arrays
            The micro-batch's gradients, one per parameter (shapes and dtypes of the buffers).

        Raises
        ------
        RuntimeError
            :meth:`mean` was called since the last :meth:`step` or :meth:`reset`.
        TypeError
            ``grads`` is not a list, or an array does not match its buffer.
        """
        if self._averaged:
            raise RuntimeError("add: the accumulated gradients were already averaged by mean(); "
                               "call step() or reset() first")
        if not isinstance(grads, (list, tuple)):
            raise TypeError(f"grads: expected a list with one array per parameter, got "
                            f"{type(grads).__name__}")
        _core.accumulate(self.buffers, list(grads), self.count == 0)
        self.count += 1

    def mean(self) -> list[np.ndarray]:
        """Divides the buffers in place by the number of micro-batches added and returns them."""
        if self.count == 0:
            raise RuntimeError("mean: no gradients were added")
        if not self._averaged:
            _core.scale(self.buffers, 1.0 / self.count)
            self._averaged = True
        return self.buffers

    def step(self) -> bool:
        """Steps the optimizer with the mean gradient and starts over; returns True.

        Call it when :attr:`ready` (or at the end of an epoch, with fewer micro-batches).
        """
        if self.optimizer is None:
            raise RuntimeError("step: this accumulator was built from arrays, not an optimizer; "
                               "use mean() and reset()")
        self.optimizer.step(self.mean())
        self.reset()
        return True

    def reset(self) -> None:
        """Forgets the accumulated gradients (the buffers are overwritten by the next add)."""
        self.count = 0
        self._averaged = False

    def state_dict(self) -> dict[str, Any]:
        """The count, the averaged flag and copies of the buffers (needed to resume mid-way)."""
        return {"steps": self.steps, "count": self.count, "averaged": self._averaged,
                "buffers": [b.copy() for b in self.buffers]}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restores a :meth:`state_dict`; checks everything before changing anything.

        {load_state_dict}
        """
        try:
            buffers = _load_arrays(state_dict["buffers"], self.buffers, "buffers")
            count, steps, averaged = int(state_dict["count"]), int(state_dict["steps"]), bool(state_dict["averaged"])
        except (TypeError, KeyError) as e:
            raise ValueError(f"state_dict: not a GradientAccumulator state_dict ({e!r})") from e
        if count < 0 or steps < 1:
            raise ValueError(f"state_dict: bad counters count={count}, steps={steps}")
        for dst, src in zip(self.buffers, buffers):
            np.copyto(dst, src)
        self.steps, self.count, self._averaged = steps, count, averaged


class EMA:
    r"""Exponential moving average of parameters (Polyak averaging with exponential weights).

    .. math::
        d_t = \min\Big(d, \frac{1 + t}{10 + t}\Big) \ \text{(use\_num\_updates)}, \quad
        \text{else } d_t = d; \qquad
        \bar\theta \leftarrow d_t\, \bar\theta + (1 - d_t)\, \theta

    The shadow copies are allocated once; :meth:`update` is one fused in-place C++ pass.
    :meth:`copy_to` writes the averages into the parameters; :meth:`store` / :meth:`restore`
    (or the :meth:`average_parameters` context manager) swap them in for evaluation and back,
    as the ``torch_ema`` / timm helpers do.

    Parameters
    ----------
    params : optimizer or list of arrays
        The parameters to average (an optimizer's, in param-group order, or a list of arrays);
        the methods that take ``params`` default to these.
    decay : float, default 0.999
        The decay :math:`d`, in [0, 1].
    use_num_updates : bool, default False
        Use the warmup :math:`\min(d, (1 + t) / (10 + t))` over the first updates.

    Raises
    ------
    ValueError
        ``decay`` outside [0, 1], or one array given twice.
    TypeError
        ``params`` is neither an optimizer nor a list of NumPy arrays.

    Examples
    --------
    >>> import numpy as np, dlopt
    >>> w = np.zeros(2, np.float32)
    >>> ema = dlopt.EMA([w], decay=0.5)
    >>> w += 1.0; ema.update()
    >>> ema.shadow[0]
    array([0.5, 0.5], dtype=float32)
    >>> with ema.average_parameters():
    ...     w.copy()
    array([0.5, 0.5], dtype=float32)
    >>> w
    array([1., 1.], dtype=float32)
    """

    def __init__(self, params: Any, decay: float = 0.999, use_num_updates: bool = False):
        decay = real("decay", decay, 0.0, 1.0)
        self.params = _params_of(params, "params")
        _core.require_distinct(self.params)
        self.decay = decay
        self.use_num_updates = bool(use_num_updates)
        self.num_updates = 0
        self.shadow = [np.array(p, order="C", copy=True) for p in self.params]
        self._stored: list[np.ndarray] | None = None

    def _params(self, params: Iterable[np.ndarray] | None) -> list[np.ndarray]:
        return self.params if params is None else _params_of(params, "params")

    def current_decay(self) -> float:
        """The decay the next :meth:`update` uses."""
        if self.use_num_updates:
            n = self.num_updates + 1
            return min(self.decay, (1.0 + n) / (10.0 + n))
        return self.decay

    def update(self, params: Iterable[np.ndarray] | None = None) -> None:
        """shadow = decay * shadow + (1 - decay) * params (the tracked ones by default).

        {ema_params}
        """
        decay = self.current_decay()
        _core.ema_update(self.shadow, self._params(params), decay)
        self.num_updates += 1

    def copy_to(self, params: Iterable[np.ndarray] | None = None) -> None:
        """Writes the averages into ``params`` (the tracked parameters by default), in place.

        {ema_params}
        """
        _core.accumulate(self._params(params), self.shadow, True)

    def store(self, params: Iterable[np.ndarray] | None = None) -> None:
        """Saves a copy of the current parameters, for :meth:`restore`.

        {ema_params}
        """
        self._stored = [np.array(p, copy=True) for p in self._params(params)]

    def restore(self, params: Iterable[np.ndarray] | None = None) -> None:
        """Puts back the parameters saved by :meth:`store`.

        {ema_params}

        Raises
        ------
        RuntimeError
            Nothing was stored.
        """
        if self._stored is None:
            raise RuntimeError("restore: nothing stored; call store() first")
        _core.accumulate(self._params(params), self._stored, True)
        self._stored = None

    @contextlib.contextmanager
    def average_parameters(self, params: Iterable[np.ndarray] | None = None) -> Iterator[None]:
        """Within the block the parameters hold their averages; afterwards, their own values.

        {ema_params}
        """
        self.store(params)
        self.copy_to(params)
        try:
            yield
        finally:
            self.restore(params)

    def state_dict(self) -> dict[str, Any]:
        """The decay settings, the update count and copies of the averages.

        Returns
        -------
        dict
            ``"decay"``, ``"use_num_updates"``, ``"num_updates"`` and ``"shadow"`` (a list of arrays).
        """
        return {"decay": self.decay, "use_num_updates": self.use_num_updates,
                "num_updates": self.num_updates, "shadow": [s.copy() for s in self.shadow]}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restores a :meth:`state_dict`; checks everything before changing anything.

        {load_state_dict}
        """
        try:
            shadow = _load_arrays(state_dict["shadow"], self.shadow, "shadow")
            decay = real("decay", state_dict["decay"], 0.0, 1.0)
            use_num_updates = bool(state_dict.get("use_num_updates", False))
            num_updates = count("num_updates", state_dict["num_updates"])
        except (TypeError, KeyError) as e:
            raise ValueError(f"state_dict: not an EMA state_dict ({e!r})") from e
        except ValueError as e:
            raise ValueError(f"state_dict: {e}") from e
        for dst, src in zip(self.shadow, shadow):
            np.copyto(dst, src)
        self.decay, self.use_num_updates, self.num_updates = decay, use_num_updates, num_updates


class Lookahead:
    r"""Lookahead (Zhang, Lucas, Hinton & Ba, 2019, Algorithm 1) around any dlopt optimizer.

    The wrapped ("fast") optimizer steps as usual; every ``k`` steps the slow weights move
    towards the fast ones and the fast ones restart from there:

    .. math::
        \phi \leftarrow \phi + \alpha\,(\theta - \phi), \qquad \theta \leftarrow \phi

    The slow weights start as a copy of the parameters (the paper's :math:`\phi_0 = \theta_0`);
    the synchronisation is one fused C++ pass. ``param_groups`` and ``state`` are the wrapped
    optimizer's, so schedulers and clipping work unchanged; :meth:`state_dict` has torch's layout
    (``{"state", "param_groups"}``) with the slow weights as ``state[i]["slow_param"]`` and the
    Lookahead counters under ``"lookahead"``.

    .. warning:: Fast-optimizer state (e.g. Adam's moments) is kept across synchronisations, as
       in the paper's experiments and in common implementations; it is not reset.

    Parameters
    ----------
    optimizer : Optimizer
        The fast optimizer, a dlopt optimizer (anything with ``param_groups`` and ``step``).
    k : int, default 5
        The number of fast steps between synchronisations.
    alpha : float, default 0.5
        The slow weights' step :math:`\alpha`, in [0, 1].

    Raises
    ------
    ValueError
        ``k`` is not a positive integer, or ``alpha`` is outside [0, 1].
    TypeError
        ``optimizer`` has no ``param_groups`` or ``step``.

    Examples
    --------
    >>> import numpy as np, dlopt
    >>> w = np.zeros(1)
    >>> opt = dlopt.Lookahead(dlopt.optim.SGD([w], lr=1.0), k=2, alpha=0.5)
    >>> opt.step([np.ones(1)]); w
    array([-1.])
    >>> opt.step([np.ones(1)]); w        # fast reached -2; slow: 0 + 0.5 * (-2 - 0)
    array([-1.])
    """

    def __init__(self, optimizer: Any, k: int = 5, alpha: float = 0.5):
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
            raise ValueError(f"k: expected a positive integer, got {k!r}")
        alpha = real("alpha", alpha, 0.0, 1.0)
        if not hasattr(optimizer, "param_groups") or not hasattr(optimizer, "step"):
            raise TypeError(f"optimizer: expected a dlopt optimizer, got {type(optimizer).__name__}")
        self.optimizer = optimizer
        self.k = int(k)
        self.alpha = alpha
        self.step_counter = 0
        self.slow = [np.array(p, order="C", copy=True) for p in self._params()]

    def _params(self) -> list[np.ndarray]:
        return [p for g in self.optimizer.param_groups for p in g["params"]]

    @property
    def param_groups(self) -> list[dict[str, Any]]:
        return self.optimizer.param_groups

    @property
    def state(self) -> dict:
        return self.optimizer.state

    @property
    def defaults(self) -> dict[str, Any]:
        return self.optimizer.defaults

    def step(self, grads: Sequence[np.ndarray | None]) -> None:
        """One fast step; every ``k``-th also synchronises the slow weights.

        Parameters
        ----------
        grads : sequence of arrays or None
            One gradient per parameter, as the wrapped optimizer's ``step`` takes them.
        """
        self.optimizer.step(grads)
        self.step_counter += 1
        if self.step_counter % self.k == 0:
            _core.lookahead_update(self.slow, self._params(), self.alpha)

    def state_dict(self) -> dict[str, Any]:
        """The wrapped optimizer's state dict plus the slow weights and the Lookahead counters.

        Returns
        -------
        dict
            torch's layout: ``"state"`` (with ``"slow_param"`` per parameter), ``"param_groups"``,
            and ``"lookahead"`` (``k``, ``alpha``, ``step_counter``).
        """
        inner = self.optimizer.state_dict()
        state = {i: dict(s) for i, s in inner["state"].items()}
        for i, slow in enumerate(self.slow):
            state.setdefault(i, {})["slow_param"] = slow.copy()
        return {"state": state, "param_groups": inner["param_groups"],
                "lookahead": {"k": self.k, "alpha": self.alpha, "step_counter": self.step_counter}}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restores a :meth:`state_dict`; checks everything before changing anything.

        {load_state_dict}
        """
        try:
            la, state = state_dict["lookahead"], state_dict["state"]
        except (TypeError, KeyError) as e:
            raise ValueError("state_dict: expected keys 'state', 'param_groups' and 'lookahead' "
                             "(a Lookahead state_dict)") from e
        params = self._params()
        inner_state, slow = {}, [None] * len(params)
        for key, entry in state.items():
            entry = dict(entry)
            i = int(key)
            if "slow_param" in entry and 0 <= i < len(params):
                slow[i] = entry.pop("slow_param")
            if entry:
                inner_state[key] = entry
        if any(s is None for s in slow):
            raise ValueError("state_dict: slow weights missing for parameter(s) "
                             f"{[i for i, s in enumerate(slow) if s is None]}")
        slow = _load_arrays(slow, params, "slow_param")
        try:
            k, alpha = count("k", la["k"], 1), real("alpha", la["alpha"], 0.0, 1.0)
            step_counter = count("step_counter", la["step_counter"])
            groups = state_dict["param_groups"]
        except (TypeError, KeyError, ValueError) as e:
            raise ValueError(f"state_dict: bad lookahead entry ({e})") from e
        # The wrapped optimizer checks its part completely before changing anything; it is the last
        # step that can fail.
        self.optimizer.load_state_dict({"state": inner_state, "param_groups": groups})
        for dst, src in zip(self.slow, slow):
            np.copyto(dst, src)
        self.k, self.alpha, self.step_counter = k, alpha, step_counter

    def __repr__(self) -> str:
        return f"Lookahead(k={self.k}, alpha={self.alpha}, optimizer={self.optimizer!r})"
