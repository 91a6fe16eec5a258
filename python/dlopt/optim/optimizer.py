"""The Optimizer base class: PyTorch's surface over dlopt's fused C++ step."""

from __future__ import annotations

import functools
from typing import Any, Callable, Iterable, Sequence

import ml_dtypes
import numpy as np

from .. import _core, _interop

_BFLOAT16 = np.dtype(ml_dtypes.bfloat16)

__all__ = ["Optimizer"]

#: Param-group keys that choose how parameters are rounded and state is stored (docs/formats.md),
#: not hyperparameters of the update.
STORAGE_KEYS = tuple(_core.storage_keys())

#: torch.optim's implementation switches. Every optimizer accepts them and ignores them: dlopt always
#: takes its one fused multi-tensor step (``differentiable=True`` is refused: the step is not recorded
#: by autograd).
TORCH_SWITCHES = ("foreach", "fused", "capturable", "differentiable")


def check_torch_switches(foreach: Any = None, fused: Any = None, capturable: Any = False,
                         differentiable: Any = False) -> None:
    """Raises unless the switches have values torch accepts (and dlopt can honour)."""
    for name, value, allowed in (("foreach", foreach, (None, True, False)), ("fused", fused, (None, True, False)),
                                 ("capturable", capturable, (True, False)),
                                 ("differentiable", differentiable, (True, False))):
        if not any(value is a or (a is not None and isinstance(value, (bool, np.bool_)) and value == a)
                   for a in allowed):
            raise TypeError(f"{name}: expected {' or '.join(map(str, allowed))}, got {value!r}")
    if differentiable:
        raise ValueError("differentiable=True: dlopt's step runs outside autograd, so it cannot be "
                         "differentiated through (use torch.optim for that)")


def _taking_torch_switches(init: Callable[..., None]) -> Callable[..., None]:
    """A subclass's __init__ that also takes (and ignores) torch's switches; its signature is kept."""

    @functools.wraps(init)
    def wrapper(self: Any, *args: Any, foreach: Any = None, fused: Any = None, capturable: Any = False,
                differentiable: Any = False, **kwargs: Any) -> None:
        check_torch_switches(foreach, fused, capturable, differentiable)
        init(self, *args, **kwargs)

    wrapper._takes_torch_switches = True  # type: ignore[attr-defined]
    return wrapper


def _host_copy(value: Any) -> Any:
    """A NumPy copy of a state array (host or device); scalars as they are."""
    if isinstance(value, np.ndarray):
        return value.copy()
    if _core.is_device_array(value):
        return _core.cuda_to_numpy(value)
    return value


def _stored_copy(value: np.ndarray, dtype: np.dtype | None, what: str) -> np.ndarray:
    """A C-contiguous copy of a saved state array in the dtype this optimizer stores it in.

    Floating-point state is converted, as torch does when loading, if its values fit; 8-bit codes and
    their scales are never converted (that would need their scales, and silently change the state's
    format); anything but real numbers is refused.
    """
    if value.dtype.kind not in "fiu" and value.dtype != _BFLOAT16:
        raise TypeError(f"{what}: expected an array of real numbers, got dtype {value.dtype}")
    if dtype is None or value.dtype == dtype:
        return np.array(value, order="C", copy=True)
    if value.dtype.kind in "iu" or np.dtype(dtype).kind in "iu":
        raise TypeError(
            f"{what} is stored as {value.dtype}, but this optimizer stores it as {np.dtype(dtype)}: "
            "load state saved with the same state_dtype"
        )
    with np.errstate(over="raise", invalid="raise"):
        try:
            return np.array(value, dtype=dtype, order="C", copy=True)
        except FloatingPointError as e:
            raise ValueError(f"{what}: its values do not fit {np.dtype(dtype)}") from e


class Optimizer:
    """Base class of every dlopt optimizer.

    Holds ``param_groups`` (a list of dicts: ``"params"`` plus hyperparameters, as in
    ``torch.optim``) and ``state`` (global parameter index -> dict of NumPy buffers and the
    ``"step"`` count). The update itself is one fused, multi-tensor C++ pass; this class only
    organises arguments and state.

    Subclasses set ``_rule`` (the C++ registry name) and pass their defaults.

    Parameters
    ----------
    params : iterable of arrays, or iterable of dicts
        The parameters (updated in place), or param groups: dicts with ``"params"`` and
        hyperparameters that override ``defaults`` for that group.
    defaults : dict
        Every hyperparameter of the rule with its default value (a subclass passes its
        signature's arguments).

    Raises
    ------
    ValueError
        An empty parameter list, an array given twice, or a hyperparameter out of its range.
    TypeError
        ``params`` is a single array or a dict (wrap it in a list), or a parameter is not a
        contiguous, writeable array of a supported dtype.

    Notes
    -----
    Every optimizer also takes these keyword arguments (param-group keys, like its
    hyperparameters; docs/formats.md describes the formats):

    - ``state_dtype`` (``None``): how state is stored. ``None`` keeps it in the compute type
      (float32 for float32, bfloat16 and float16 parameters; float64 for float64 ones);
      ``"float32"``, ``"bfloat16"``, or ``"int8"``: 8-bit blockwise codes with one float32 scale per
      256 elements (``state[i]["<name>_scale"]``). Slots that only grow (Adagrad's ``sum``) stay in
      the compute type.
    - ``stochastic_rounding`` (``True``): 16-bit parameters (``ml_dtypes.bfloat16``,
      ``numpy.float16``) are written back with stochastic rounding, from a counter-based hash of
      (seed, step, parameter index, element index); ``False`` rounds to nearest even.
    - ``master_weights`` (``False``): keep a float32 copy of 16-bit parameters in the state
      (``state[i]["master_param"]``); the parameter receives it rounded to nearest each step.
    - ``seed`` (``0``): the seed of stochastic rounding.

    Examples
    --------
    >>> import numpy as np, ml_dtypes, dlopt
    >>> w = np.zeros(512, dtype=ml_dtypes.bfloat16)
    >>> opt = dlopt.optim.Adam([w], lr=1e-3, state_dtype="int8")
    >>> opt.step([np.ones(512, dtype=ml_dtypes.bfloat16)])
    >>> sorted(k for k in opt.state[0] if k != "step"), opt.state[0]["exp_avg"].dtype
    (['exp_avg', 'exp_avg_scale', 'exp_avg_sq', 'exp_avg_sq_scale'], dtype('int8'))
    """

    _rule: str = ""
    _plan: Any = None  # the bound C++ step, made at the first step; not part of the state
    _foreign = False  # some parameter is a torch tensor or another library's array (viewed per step)
    _shadow: Any = None  # _interop.Shadow: the groups with those parameters as views; a cache

    def __init_subclass__(cls, **kwargs: Any) -> None:
        # Every optimizer class takes torch's implementation switches, without listing them itself.
        super().__init_subclass__(**kwargs)
        init = cls.__dict__.get("__init__")
        if init is not None and not getattr(init, "_takes_torch_switches", False):
            cls.__init__ = _taking_torch_switches(init)  # type: ignore[method-assign]

    def __getstate__(self) -> dict[str, Any]:
        # copy / deepcopy / pickle: the bound step and the views are caches, rebuilt at the next step.
        state = dict(self.__dict__)
        state.pop("_plan", None)
        state.pop("_shadow", None)
        return state

    def __init__(self, params: Iterable[Any], defaults: dict[str, Any]):
        self.defaults = dict(defaults)
        self.param_groups: list[dict[str, Any]] = []
        self.state: dict[int, dict[str, Any]] = {}
        if isinstance(params, dict) or _interop.is_array_like(params):
            raise TypeError(
                "params: expected an iterable of arrays or of dicts, got "
                f"{type(params).__name__} (wrap a single array in a list)"
            )
        groups = list(params)
        if not groups:
            raise ValueError("params: optimizer got an empty parameter list")
        if not isinstance(groups[0], dict):
            groups = [{"params": groups}]
        for group in groups:
            self.add_param_group(group)
        # The bound step, made here rather than at the first step so that two threads cannot make
        # two; it refuses a second thread while a step runs.
        self._plan = _core.StepPlan(self._rule)

    # -- parameter groups -------------------------------------------------------------------

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """Adds a group of parameters with its own hyperparameters (missing ones take defaults).

        Parameters
        ----------
        param_group : dict
            ``"params"`` (an array or a list of arrays) and any hyperparameters.

        Raises
        ------
        ValueError
            No ``"params"`` key, a hyperparameter out of range, or an array already optimized.
        TypeError
            ``param_group`` is not a dict, or a parameter of an unsupported kind.

        Examples
        --------
        >>> import numpy as np, dlopt
        >>> w, b = np.zeros(2), np.zeros(1)
        >>> opt = dlopt.optim.SGD([w], lr=0.1)
        >>> opt.add_param_group({"params": [b], "lr": 0.01})
        >>> [g["lr"] for g in opt.param_groups]
        [0.1, 0.01]
        """
        if not isinstance(param_group, dict):
            raise TypeError(f"param_group: expected a dict, got {type(param_group).__name__}")
        group = dict(param_group)
        params = group.get("params")
        if params is None:
            raise ValueError("param_group: missing the 'params' key")
        group["params"] = [params] if _interop.is_array_like(params) else list(params)
        # Keys that are not hyperparameters (torch's "name", say) are kept and never read, as in torch.
        for key, default in self.defaults.items():
            group.setdefault(key, default)
        _core.validate_config(self._rule, self._config(group, len(self.param_groups)))
        _core.check_storage_options(group)
        every = [p for g in self.param_groups for p in g["params"]] + group["params"]
        _core.require_distinct([_interop.host_view(p, f"params[{i}]") for i, p in enumerate(every)])
        self.param_groups.append(group)
        self._foreign = self._foreign or any(_interop.is_foreign(p) for p in group["params"])

    def _config(self, group: dict[str, Any], index: int) -> dict[str, Any]:
        """The group's hyperparameters as the C++ Config's fields (betas -> beta1, beta2, ...)."""
        return dict(_core.config_fields(group, f"param_groups[{index}]: "))

    def _num_params(self) -> int:
        return sum(len(g["params"]) for g in self.param_groups)

    # -- the step ------------------------------------------------------------------------------

    def step(self, grads: Sequence[np.ndarray | None]) -> None:
        """Updates every parameter in place from its gradient.

        ``grads`` holds one array per parameter, in param-group order, with the parameter's dtype
        and shape; ``None`` skips that parameter for this step (its state is untouched). Every
        argument is checked before anything is modified: on error, parameters and state are
        exactly as before.

        Parameters
        ----------
        grads : sequence of arrays or None
            One gradient per parameter (param-group order), each of its parameter's shape and
            dtype; read only, never modified.

        Raises
        ------
        ValueError
            A wrong number of gradients, or a gradient whose shape does not match.
        TypeError
            A gradient of the wrong dtype or kind (a device array for a host parameter, ...).

        Examples
        --------
        >>> import numpy as np, dlopt
        >>> w, b = np.ones(2), np.ones(1)
        >>> opt = dlopt.optim.SGD([w, b], lr=0.5)
        >>> opt.step([np.array([1.0, 2.0]), None])   # b has no gradient this step
        >>> w, b
        (array([0.5, 0. ]), array([1.]))
        """
        # The bound C++ step (_core.StepPlan) caches the checked parameters, state arrays and
        # parsed hyperparameters, and re-checks per step only what can change cheaply (gradients,
        # group values, object identities); anything else makes it redo the full checks.
        plan = self._plan
        if plan is None:
            plan = self._plan = _core.StepPlan(self._rule)
        if not self._foreign:
            plan.step(self.param_groups, self.state, grads)
            return
        # torch tensors and other libraries' arrays: the step sees NumPy (or device) views of them.
        if self._shadow is None:
            self._shadow = _interop.Shadow()
        plan.step(self._shadow.sync(self.param_groups), self.state, _interop.grad_views(grads))

    # -- serialisation -------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """A snapshot of the whole state: ``{"state": {index: {...}}, "param_groups": [...]}``.

        Arrays are copies, so the snapshot does not change as training goes on (the state of
        device parameters is copied to NumPy arrays); groups list their parameters by global index,
        as in torch.

        Returns
        -------
        dict
            ``"state"`` (parameter index -> dict of arrays and the step count) and
            ``"param_groups"`` (the hyperparameters, ``"params"`` as indices).

        Examples
        --------
        >>> import numpy as np, dlopt
        >>> opt = dlopt.optim.Adam([np.zeros(2)], lr=0.1)
        >>> opt.step([np.ones(2)])
        >>> sd = opt.state_dict()
        >>> sorted(sd["state"][0]), sd["param_groups"][0]["params"]
        (['exp_avg', 'exp_avg_sq', 'step'], [0])
        """
        groups, index = [], 0
        for group in self.param_groups:
            saved = {k: v for k, v in group.items() if k != "params"}
            saved["params"] = list(range(index, index + len(group["params"])))
            index += len(group["params"])
            groups.append(saved)
        state = {i: {k: _host_copy(v) for k, v in s.items()} for i, s in self.state.items()}
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restores a ``state_dict()``; checks it completely before changing anything.

        For device parameters, state arrays are copied to the parameter's device.

        Parameters
        ----------
        state_dict : dict
            What :meth:`state_dict` returned (of an optimizer of the same class, with parameters
            of the same shapes).

        Raises
        ------
        ValueError
            A malformed state dict, or one whose groups, parameter counts or state shapes do not
            match this optimizer.
        TypeError
            State of a dtype that does not fit this optimizer's storage.

        Examples
        --------
        >>> import numpy as np, dlopt
        >>> w = np.zeros(2)
        >>> opt = dlopt.optim.Adam([w], lr=0.1)
        >>> opt.step([np.ones(2)])
        >>> fresh = dlopt.optim.Adam([w.copy()], lr=0.1)
        >>> fresh.load_state_dict(opt.state_dict())
        >>> fresh.state[0]["step"]
        1
        """
        try:
            saved_groups, saved_state = state_dict["param_groups"], state_dict["state"]
        except (TypeError, KeyError) as e:
            raise ValueError("state_dict: expected keys 'state' and 'param_groups'") from e
        if len(saved_groups) != len(self.param_groups):
            raise ValueError(
                f"state_dict: has {len(saved_groups)} param groups, optimizer has {len(self.param_groups)}"
            )
        params = [_interop.host_view(p, f"params[{i}]")
                  for i, p in enumerate(p for g in self.param_groups for p in g["params"])]
        on_device = bool(params) and _core.is_device_array(params[0])
        new_groups = []
        for gi, (saved, group) in enumerate(zip(saved_groups, self.param_groups)):
            if len(saved["params"]) != len(group["params"]):
                raise ValueError(
                    f"state_dict: param_groups[{gi}] has {len(saved['params'])} parameters, "
                    f"optimizer's has {len(group['params'])}"
                )
            new = {**{k: v for k, v in saved.items() if k != "params"}, "params": group["params"]}
            _core.validate_config(self._rule, self._config(new, gi))
            new_groups.append(new)
        slots = _core.slot_names(self._rule)
        scalars = set(_core.scalar_names(self._rule))
        allowed = set(slots) | {f"{n}_scale" for n in slots} | scalars | {"master_param", "step"}
        group_of = [g for g in new_groups for _ in g["params"]]
        new_state = {}
        for key, saved in saved_state.items():
            i = int(key)
            if not 0 <= i < len(params):
                raise ValueError(f"state_dict: state for parameter {key!r}, which does not exist")
            layout = _core.state_layout(self._rule, group_of[i], params[i])
            entry = {}
            for name, value in saved.items():
                if name not in allowed:
                    raise ValueError(f"state_dict: state[{i}] has unknown entry {name!r}")
                if name == "step" or name in scalars:
                    entry[name] = int(value) if name == "step" else float(value)
                    continue
                value = _core.cuda_to_numpy(value) if _core.is_device_array(value) else np.asarray(value)
                entry[name] = _stored_copy(value, layout.get(name), f"state_dict: state[{i}][{name!r}]")
            new_state[i] = entry
        # Every check a step makes (shapes, scales, storage), before anything changes: the host plan's,
        # on stand-ins of the device parameters' shape and dtype (the device step stores state alike).
        stand_ins = [np.empty(*_core.cuda_array_spec(p)) if on_device else p for p in params]
        it = iter(stand_ins)
        _core.StepPlan(self._rule).check([{**g, "params": [next(it) for _ in g["params"]]} for g in new_groups],
                                         new_state)
        if on_device:  # copied to each parameter's device, in the stored format (codes and scales as they are)
            for i, entry in new_state.items():
                device = max(_core.cuda_array_info(params[i], any_format=True)[2], 0)
                for name, value in entry.items():
                    if isinstance(value, np.ndarray):
                        entry[name] = _core.DeviceArray.from_numpy(value, device)
        self.param_groups[:] = new_groups
        self.state = new_state

    def dequantized_state(self, index: int) -> dict[str, np.ndarray]:
        """Parameter ``index``'s state buffers as float32 copies, whatever their storage.

        8-bit codes are decoded with their block scales, bfloat16 widened; the scales and the
        scalar entries are left out. For inspection: ``state`` holds what is stored.

        Parameters
        ----------
        index : int
            The parameter's global index (param-group order).

        Returns
        -------
        dict of str to numpy.ndarray
            Each state slot, decoded to float32.

        Raises
        ------
        KeyError
            Parameter ``index`` has no state yet (no step taken).

        Examples
        --------
        >>> import numpy as np, dlopt
        >>> w = np.zeros(300, dtype=np.float32)
        >>> opt = dlopt.optim.SGD([w], lr=0.1, momentum=0.9, state_dtype="int8")
        >>> opt.step([np.ones(300, dtype=np.float32)])
        >>> opt.dequantized_state(0)["momentum_buffer"][:3]
        array([1., 1., 1.], dtype=float32)
        """
        entry = self.state[index]
        out = {}
        for name in _core.slot_names(self._rule):
            if name in entry:
                scales = entry.get(f"{name}_scale")
                out[name] = _core.dequantize(_host_copy(entry[name]), None if scales is None else _host_copy(scales))
        return out

    def __repr__(self) -> str:
        lines = [f"{type(self).__name__} ("]
        for i, group in enumerate(self.param_groups):
            lines.append(f"Parameter Group {i}")
            lines += [f"    {k}: {v}" for k, v in sorted(group.items()) if k != "params"]
        return "\n".join(lines + [")"])
