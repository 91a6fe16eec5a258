"""dlopt's optimizers as ``torch.optim`` optimizers: change one import, keep the training script.

>>> import torch, dlopt.torch
>>> model = torch.nn.Linear(4, 2)
>>> opt = dlopt.torch.AdamW(model.parameters(), lr=1e-3, weight_decay=0.01)
>>> model(torch.ones(3, 4)).sum().backward()
>>> opt.step(); opt.zero_grad()
>>> isinstance(opt, torch.optim.Optimizer)
True

For every optimizer of :mod:`dlopt.optim` there is a class of the same name here, with the same
keywords plus torch's ``foreach``, ``fused``, ``capturable`` and ``differentiable`` (accepted and ignored:
the step is always dlopt's one fused multi-tensor pass; ``differentiable=True`` is refused). Each *is* a
``torch.optim.Optimizer``: param groups, ``add_param_group``, named parameters, step hooks, the
``lr_scheduler`` and ``swa_utils`` classes, ``zero_grad`` and ``step(closure)`` are torch's own.

How it maps onto the core: ``param_groups`` are torch's (so schedulers write into them); at each step
the parameters and their ``.grad`` are viewed as NumPy arrays sharing the tensors' memory (CPU;
float32, float64, bfloat16, float16) or passed through ``__cuda_array_interface__`` (CUDA), and the
same C++ step as :class:`dlopt.optim.Optimizer`'s runs on them in place. Nothing is copied; a sparse
gradient, a non-contiguous parameter, tensors on several devices are refused before anything changes.
A parameter whose storage moved (``p.data = ...``) is seen again at the next step.

``opt.state[p]`` is the core's state of parameter ``p``: NumPy arrays (CPU) and the step count as an
int; ``state_dict()`` is torch's format (buffers as tensors sharing that memory, ``"step"`` as a
tensor), loadable by the ``torch.optim`` class of the same name where the state means the same (the
default ``state_dtype``), and ``load_state_dict`` takes one saved by either.

torch is imported by this module only: ``import dlopt`` never imports it.
"""

from __future__ import annotations

import copy
import inspect
from collections import defaultdict
from typing import Any, Callable

import ml_dtypes
import numpy as np
import torch

from . import _core, _interop
from ._docstrings import fill_methods
from .optim import algorithms as _algorithms
from .optim.optimizer import TORCH_SWITCHES, _stored_copy, check_torch_switches
from .optim.optimizer import Optimizer as _NumpyOptimizer

# Every optimizer built on the fused step; LBFGS (a closure returning NumPy gradients) is not here:
# with torch tensors, torch.optim.LBFGS is the one to use.
_FUSED = [name for name in _algorithms.__all__ if issubclass(getattr(_algorithms, name), _NumpyOptimizer)]
__all__ = ["Optimizer", *_FUSED]

_BFLOAT16 = np.dtype(ml_dtypes.bfloat16)


def _scalar_dtype() -> torch.dtype:
    # torch keeps step counts (and NAdam's mu_product) in float64 when that is the default dtype.
    return torch.float64 if torch.get_default_dtype() == torch.float64 else torch.float32


def _tensor_of(value: Any, param: torch.Tensor) -> Any:
    """A state buffer as a tensor sharing its memory."""
    if isinstance(value, np.ndarray):
        if value.dtype == _BFLOAT16:
            return torch.from_numpy(value.view(np.int16)).view(torch.bfloat16)
        return torch.from_numpy(value)
    if _core.is_device_array(value) and not isinstance(value, torch.Tensor):
        return torch.as_tensor(value, device=param.device)
    return value


def _numpy_of(value: Any) -> np.ndarray:
    """A saved state entry as a NumPy array (a copy is made later, in the stored dtype)."""
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu()
        if value.dtype == torch.bfloat16:
            return value.view(torch.int16).numpy().view(_BFLOAT16)
        return value.numpy()
    return np.asarray(value)


def _count(value: Any, what: str) -> int:
    number = value.item() if isinstance(value, torch.Tensor) else value
    if isinstance(number, bool) or not float(number).is_integer():
        raise ValueError(f"{what}: expected a whole step count, got {value!r}")
    return int(number)


class Optimizer(torch.optim.Optimizer):
    """Base of the ``dlopt.torch`` classes: a ``torch.optim.Optimizer`` stepping through dlopt's core.

    Parameters
    ----------
    params : iterable of tensors, or iterable of dicts
        The parameters (CPU or CUDA tensors, updated in place through their ``.grad``), or param
        groups.
    defaults : dict
        Every hyperparameter with its default (each subclass passes its signature's).

    Raises
    ------
    TypeError
        ``params`` is a single tensor or array (wrap it in a list).

    Examples
    --------
    >>> import torch, dlopt.torch
    >>> w = torch.nn.Parameter(torch.ones(2))
    >>> opt = dlopt.torch.SGD([w], lr=0.5)
    >>> isinstance(opt, dlopt.torch.Optimizer) and isinstance(opt, torch.optim.Optimizer)
    True
    """

    _rule: str = ""
    _numpy_class: type = _NumpyOptimizer  # the dlopt.optim class whose step and extra methods run here
    _core_state: dict[int, dict[str, Any]]  # global parameter index -> the core's state entry

    def __init__(self, params: Any, defaults: dict[str, Any]):
        if _interop.is_array_like(params) and not isinstance(params, torch.Tensor):
            raise TypeError(f"params: expected an iterable of tensors or of dicts, got {type(params).__name__}")
        self._core_state = {}
        super().__init__(params, defaults)

    # -- groups --------------------------------------------------------------------------------

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """torch's ``add_param_group``, then dlopt's checks of the hyperparameters and parameters.

        Parameters
        ----------
        param_group : dict
            ``"params"`` (tensors) and any hyperparameters; missing ones take the defaults.

        Raises
        ------
        ValueError, TypeError
            An invalid hyperparameter or parameter (the group is not added).
        """
        super().add_param_group(param_group)
        group, index = self.param_groups[-1], len(self.param_groups) - 1
        try:
            _core.validate_config(self._rule, _core.config_fields(group, f"param_groups[{index}]: "))
            _core.check_storage_options(group)
            check_torch_switches(*(group.get(k) for k in ("foreach", "fused")),
                                 *(group.get(k, False) for k in ("capturable", "differentiable")))
            every = [p for g in self.param_groups for p in g["params"]]
            _core.require_distinct([_interop.host_view(p, f"params[{i}]") for i, p in enumerate(every)])
        except Exception:
            self.param_groups.pop()
            raise

    def _params(self) -> list[torch.Tensor]:
        return [p for g in self.param_groups for p in g["params"]]

    # -- the step ------------------------------------------------------------------------------

    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """One fused step of every parameter with a ``.grad`` (``None`` skips it, as in torch).

        Parameters
        ----------
        closure : callable, optional
            Re-evaluates the model and returns the loss (called with gradients enabled).

        Returns
        -------
        object
            The closure's loss, or ``None`` without a closure.
        """
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        params = self._params()
        grads = [_grad_view(p.grad, i) for i, p in enumerate(params)]
        # dlopt.optim's step (the optimizer's own, e.g. Schedule-Free's mode check) on the views
        self._numpy_class.step(self._numpy_view(), grads)
        if len(self.state) != len(self._core_state):  # state made at this step: torch's view of it
            for i, entry in self._core_state.items():
                self.state[params[i]] = entry
        return loss

    def _numpy_view(self) -> Any:
        """This optimizer as its dlopt.optim class sees itself: the views of the parameters (synced
        now), the core's state, the bound step. Methods of that class run on it unchanged."""
        view = getattr(self, "_view", None)
        if view is None:
            view = self._view = _NumpyView.of(self._numpy_class)
            view._plan = _core.StepPlan(self._rule)
            view._shadow_of = _interop.Shadow()
            view.defaults = self.defaults
        view.param_groups = view._shadow_of.sync(self.param_groups)
        view.state = self._core_state
        return view

    # -- state_dict in torch's format ------------------------------------------------------------

    def _torch_state(self) -> defaultdict:
        params, scalars = self._params(), set(_core.scalar_names(self._rule))
        state: defaultdict = defaultdict(dict)
        for i, entry in self._core_state.items():
            p = params[i]
            state[p] = {k: (torch.tensor(float(v), dtype=_scalar_dtype()) if k == "step" or k in scalars
                            else _tensor_of(v, p)) for k, v in entry.items()}
        return state

    def state_dict(self) -> dict[str, Any]:
        """torch's ``state_dict``: buffers as tensors (sharing the live state's memory), steps as tensors."""
        # torch's own method packs groups and runs the hooks; it reads self.state, which it sees here
        # in torch's format for the time of the call.
        live = self.state
        self.state = self._torch_state()
        try:
            return super().state_dict()
        finally:
            self.state = live

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Loads a state_dict of this class or of the ``torch.optim`` class of the same name.

        Everything is converted and checked (as a step checks it) before anything changes.

        {load_state_dict}
        """
        state_dict = state_dict.copy()
        for hook in self._optimizer_load_state_dict_pre_hooks.values():
            result = hook(self, state_dict)
            if result is not None:
                state_dict = result
        try:
            saved_groups = copy.deepcopy(state_dict["param_groups"])
            saved_state = state_dict["state"]
        except (TypeError, KeyError) as e:
            raise ValueError("state_dict: expected keys 'state' and 'param_groups'") from e
        if len(saved_groups) != len(self.param_groups):
            raise ValueError("loaded state dict has a different number of parameter groups")
        index_of, new_groups, flat = {}, [], 0
        for gi, (saved, group) in enumerate(zip(saved_groups, self.param_groups)):
            if len(saved["params"]) != len(group["params"]):
                raise ValueError("loaded state dict contains a parameter group that doesn't match the size "
                                 f"of optimizer's group (param_groups[{gi}])")
            for saved_id in saved["params"]:
                index_of[saved_id] = flat
                flat += 1
            new = {**saved, "params": group["params"]}
            if "param_names" in group and "param_names" not in saved:
                new["param_names"] = group["param_names"]
            for key, default in self.defaults.items():  # torch's groups lack dlopt's keys, and the reverse
                new.setdefault(key, default)
            _core.validate_config(self._rule, _core.config_fields(new, f"param_groups[{gi}]: "))
            _core.check_storage_options(new)
            new_groups.append(new)
        params = self._params()
        views = [_interop.host_view(p, f"params[{i}]") for i, p in enumerate(params)]
        group_of = [g for g in new_groups for _ in g["params"]]
        new_state = {key: self._entry(saved_state[key], index_of, key, params, views, group_of)
                     for key in saved_state}
        new_state = {index_of[key]: entry for key, entry in new_state.items()}
        if views and not _core.is_device_array(views[0]):  # every check a step makes, changing nothing
            shadow = [{**g, "params": [views[index_of[k]] for k in s["params"]]}
                      for g, s in zip(new_groups, saved_groups)]
            _core.StepPlan(self._rule).check(shadow, new_state)
        self.param_groups[:] = new_groups
        self._core_state = new_state
        self.state = defaultdict(dict)
        for i, entry in new_state.items():
            self.state[params[i]] = entry
        for hook in self._optimizer_load_state_dict_post_hooks.values():
            hook(self)

    def _entry(self, saved: dict[str, Any], index_of: dict[Any, int], key: Any, params: list[torch.Tensor],
               views: list[Any], group_of: list[dict[str, Any]]) -> dict[str, Any]:
        """One parameter's saved state as the core stores it."""
        if key not in index_of:
            raise ValueError(f"state_dict: state for parameter {key!r}, which the param groups do not list")
        i = index_of[key]
        where = f"state_dict: state[{key!r}]"
        slots, scalars = _core.slot_names(self._rule), set(_core.scalar_names(self._rule))
        on_device = _core.is_device_array(views[i])
        layout = {} if on_device else _core.state_layout(self._rule, group_of[i], views[i])
        entry: dict[str, Any] = {}
        for name, value in saved.items():
            what = f"{where}[{name!r}]"
            if value is None:  # torch's way of saying "not made yet"
                continue
            if name == "step":
                entry[name] = _count(value, what)
            elif name in scalars:
                entry[name] = float(value)
            elif name in layout or (on_device and name in slots):
                own = _core.slot_shapes(self._rule, list(params[i].shape)).get(name)  # Adafactor's row_var, ...
                expected = tuple(own) if own is not None else tuple(params[i].shape)
                if tuple(value.shape) != expected and not name.endswith("_scale"):
                    whose = "the slot's" if own is not None else "the parameter's"
                    raise ValueError(f"{what}: shape {tuple(value.shape)} does not match {whose} {expected}")
                if on_device:
                    entry[name] = value.detach().to(params[i].device, params[i].dtype).contiguous().clone()
                else:
                    entry[name] = _stored_copy(_numpy_of(value), layout[name], what)
            else:
                raise ValueError(f"{what}: not a state entry of {self._rule} with these options")
        if "step" not in entry and any(k in entry for k in slots):
            # torch keeps no step count for SGD or Muon: a buffer means at least one step was made.
            entry["step"] = 1
        return entry

    def __getstate__(self) -> dict[str, Any]:
        state = super().__getstate__()
        state["_core_state"] = self._core_state  # the view (plan, shadow) is a cache, rebuilt on use
        return state


fill_methods(Optimizer)


class _NumpyView:
    """Base of the objects :meth:`Optimizer._numpy_view` returns (one subclass per dlopt.optim class)."""

    _classes: dict[type, type] = {}

    @classmethod
    def of(cls, numpy_class: type) -> Any:
        sub = cls._classes.get(numpy_class)
        if sub is None:
            sub = cls._classes[numpy_class] = type(f"{numpy_class.__name__}View", (numpy_class,), {})
        view = object.__new__(sub)  # no __init__: its attributes are the torch optimizer's, viewed
        view._foreign = False
        return view


def _delegated(numpy_class: type, name: str) -> Callable[..., Any]:
    """A method of the dlopt.optim class (Schedule-Free's train/eval) run on the torch optimizer's view."""
    method = getattr(numpy_class, name)

    def call(self: Optimizer, *args: Any, **kwargs: Any) -> Any:
        return method(self._numpy_view(), *args, **kwargs)

    call.__name__, call.__doc__ = name, method.__doc__
    return call


def _extra_methods(numpy_class: type) -> list[str]:
    """Public methods a dlopt.optim class adds to its base (train, eval), which torch's class lacks."""
    base = set(dir(_NumpyOptimizer))
    return sorted(n for n in dir(numpy_class) if not n.startswith("_") and n not in base
                  and callable(getattr(numpy_class, n)) and not hasattr(torch.optim.Optimizer, n))


def _grad_view(g: Any, i: int) -> Any:
    if g is None:
        return None
    try:  # the common case, cheaply: a dense CPU tensor NumPy can view (errors: the full path says why)
        return g.numpy()
    except (TypeError, RuntimeError, ValueError):
        return _interop.host_view(g, f"grads[{i}]")


def _torch_doc(name: str, numpy_doc: str) -> str:
    """The dlopt.optim class's docstring under a torch summary, with an example on tensors."""
    body, _, _ = inspect.cleandoc(numpy_doc).partition("\nExamples\n--------\n")
    return (f"``torch.optim``-compatible :class:`dlopt.optim.{name}` over torch tensors "
            "(see :mod:`dlopt.torch`).\n\n"
            f"{body}\n"
            "Examples\n--------\n"
            ">>> import torch, dlopt.torch\n"
            ">>> w = torch.nn.Parameter(torch.ones(2, 3))\n"
            f">>> opt = dlopt.torch.{name}([w])\n"
            ">>> for _ in range(2):\n"
            "...     opt.zero_grad(); (w ** 2).sum().backward(); opt.step()\n"
            ">>> bool((w < 1).all())\n"
            "True\n")


def _torch_class(numpy_class: type) -> type:
    """The torch.optim class of one dlopt optimizer: its keywords plus torch's switches."""
    signature = inspect.signature(numpy_class.__init__)
    switches = [inspect.Parameter(k, inspect.Parameter.KEYWORD_ONLY,
                                  default=None if k in ("foreach", "fused") else False) for k in TORCH_SWITCHES]
    parameters = list(signature.parameters.values())
    variadic = [p for p in parameters if p.kind == inspect.Parameter.VAR_KEYWORD]
    full = signature.replace(parameters=[p for p in parameters if p not in variadic] + switches + variadic)

    def __init__(self: Optimizer, params: Any, *args: Any, **kwargs: Any) -> None:
        bound = full.bind(self, params, *args, **kwargs)
        bound.apply_defaults()
        defaults = {k: v for k, v in bound.arguments.items() if k not in ("self", "params")}
        Optimizer.__init__(self, params, defaults)

    __init__.__signature__ = full  # type: ignore[attr-defined]
    name = numpy_class.__name__
    doc = _torch_doc(name, numpy_class.__doc__ or "")
    namespace = {"__init__": __init__, "_rule": numpy_class._rule, "_numpy_class": numpy_class, "__doc__": doc,
                 "__module__": __name__, "__qualname__": name}
    namespace.update({m: _delegated(numpy_class, m) for m in _extra_methods(numpy_class)})
    return type(name, (Optimizer,), namespace)


for _name in _FUSED:
    globals()[_name] = _torch_class(getattr(_algorithms, _name))
del _name
