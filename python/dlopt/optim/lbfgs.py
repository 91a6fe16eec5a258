r"""L-BFGS with torch.optim.LBFGS's name, keywords, defaults, algorithm and state.

The algorithm runs in C++ (``cpp/include/dlopt/optim/lbfgs.hpp``, ``cpp/src/optim/lbfgs.cpp``); this
module names its arguments and state. It is not a rule of the optimizer registry (see
docs/ARCHITECTURE.md): a step calls the closure several times and needs dot products over all
parameters, so ``make_optimizer`` does not build it.
"""

from __future__ import annotations

import numbers
from typing import Any, Callable, Iterable

import numpy as np

from .. import _core
from .._docstrings import fill_methods

__all__ = ["LBFGS"]

#: torch's param-group keys of LBFGS, in torch's order.
OPTION_KEYS = ("lr", "max_iter", "max_eval", "tolerance_grad", "tolerance_change", "history_size",
               "line_search_fn")
_HISTORY_KEYS = ("d", "t", "old_dirs", "old_stps", "ro", "H_diag", "prev_flat_grad", "prev_loss")
_STATE_KEYS = ("func_evals", "n_iter", *_HISTORY_KEYS, "al")


class LBFGS:
    r"""L-BFGS (Liu & Nocedal, 1989) as ``torch.optim.LBFGS`` 2.13, with a closure that returns the
    gradients (NumPy has no autograd).

    ``opt.step(closure)``: ``closure()`` evaluates the objective at the current parameters and returns
    ``(loss, grads)``: ``loss`` a real number (Python, NumPy or a 0-d array), ``grads`` a list with
    one array per parameter, of its dtype and shape (``None`` means zeros, as torch's ``None``
    grad; with one parameter a bare array is accepted). ``step`` returns the first loss, as the
    closure returned it. Parameters (float32 or float64, all of one dtype, C-contiguous,
    writeable) are updated in place.

    One step, with ``g`` the gradient gathered into one flat vector (see below):

    1. Evaluate ``f, g``; stop if ``max|g| <= tolerance_grad``.
    2. Up to ``max_iter`` iterations (and ``max_eval`` closure calls in this step; ``max_eval=None``
       means ``max_iter * 5 // 4``, fixed at construction as in torch):

       - Direction: on the very first iteration ``d = -g``. Later, with ``y = g - g_prev`` and
         ``s = t·d``: if ``yᵀs > 1e-10`` the pair is stored (the oldest dropped beyond
         ``history_size``), ``ρ = 1/yᵀs`` and ``H_diag = yᵀs / yᵀy``; then the two-loop recursion
         ``q = -g``; for the pairs newest first ``α_i = ρ_i s_iᵀq``, ``q -= α_i y_i``;
         ``d = H_diag·q``; for the pairs oldest first ``β_i = ρ_i y_iᵀd``, ``d += (α_i − β_i) s_i``.
       - Step length: ``t = min(1, 1/‖g‖₁)·lr`` on the very first iteration, else ``t = lr``.
         Stop if ``gᵀd > -tolerance_change``.
       - ``line_search_fn=None``: ``x += t·d``, then (except after the last iteration) evaluate
         ``f, g`` again. ``"strong_wolfe"``: torch's ``_strong_wolfe`` from ``t`` with
         ``c1 = 1e-4``, ``c2 = 0.9``, its own ``tolerance_change = 1e-9`` and at most
         ``max_eval`` minus the calls so far: bracketing by cubic extrapolation within
         ``[t + 0.01 (t − t_prev), 10 t]``, then zoom by cubic interpolation (moved
         ``0.1·|bracket|`` inside when it lands near an end twice), until the strong Wolfe
         conditions ``f(x + t d) <= f + c1 t gᵀd`` and ``|g(x + t d)ᵀd| <= -c2 gᵀd`` hold; then
         ``x += t·d``.
       - Stop after ``max_iter`` iterations or ``max_eval`` calls, or if ``max|g| <= tolerance_grad``,
         ``max|t·d| <= tolerance_change`` or ``|f - f_prev| < tolerance_change``.

    Numbers follow torch's rounding as well as its branches: torch mixes Python floats with 0-dim
    tensors of the parameters' dtype, and in float32 a Python float is rounded to float32 before an
    operation with a tensor; dlopt does the same, so float32 runs take torch's branches. Iterates
    agree with torch's to rounding (dot products are summed in another order, and torch's float32
    ``sqrt`` is not correctly rounded); torch's updates ``x += t·d`` are fused multiply-adds, as here.

    **Parameters are one flat vector**: L-BFGS takes dot products over all parameters, so, as torch
    (``torch.cat`` of the gradients), dlopt gathers the closure's gradients into one flat buffer
    (a copy per evaluation) and keeps its history as flat vectors; the parameters themselves are
    updated in place. Memory: ``2·history_size + 5`` vectors of the parameters' total size.

    **State** (``opt.state[0]``, and ``state_dict()``), as torch keeps it (torch: under the first
    parameter): ``func_evals``, ``n_iter`` (counts over all steps), ``d``, ``t``, ``old_dirs`` (the
    ``y``'s), ``old_stps`` (the ``s``'s), ``ro``, ``H_diag``, ``prev_flat_grad``, ``prev_loss``, and
    ``al`` (``history_size`` two-loop coefficients, ``None`` where unused). Where torch holds a
    0-dim tensor dlopt holds a NumPy scalar of the parameters' dtype (``t`` after the first
    iteration's guess or a line search, ``ro``, ``H_diag`` after the first update, ``al``), where torch
    holds a Python number so does dlopt (``t = lr``, ``H_diag = 1``). ``load_state_dict`` of a saved
    state continues bit for bit; it also takes torch's own ``LBFGS.state_dict()`` (CPU tensors).

    **Errors**: invalid keywords raise at construction (and at ``step`` if a param-group value was
    changed to one); a closure that raises, returns a non-finite loss or gradient, or gradients of
    the wrong number, dtype or shape makes ``step`` raise with the parameters and the state exactly as
    before the step. Unlike torch: ``history_size`` cannot change once there is a state (torch fails
    later with an IndexError), and ``max_iter``/``max_eval``/``history_size`` must be >= 1.

    One param group only, as torch. Not in ``make_optimizer`` or the rule registry (it is not an
    elementwise rule); the linear models use it with ``optimizer="lbfgs"``. CPU only.

    Parameters
    ----------
    params : iterable of arrays, or a list of one dict
        The parameters (float32 or float64, all of one dtype, C-contiguous, writeable), or one
        param group.
    lr : float, default 1
        The step length of each iteration (the first iteration of all scales it by
        ``min(1, 1/‖g‖₁)``); the starting length of the line search.
    max_iter : int, default 20
        Iterations per :meth:`step`.
    max_eval : int or None, default None
        Closure calls per :meth:`step`; ``None``: ``max_iter * 5 // 4``.
    tolerance_grad : float, default 1e-7
        Stop when ``max|g|`` is at most this.
    tolerance_change : float, default 1e-9
        Stop when the step or the change of the loss is smaller than this.
    history_size : int, default 100
        The number of ``(s, y)`` pairs kept.
    line_search_fn : {None, 'strong_wolfe'}, default None
        The line search; ``None``: fixed steps of length ``lr``.

    Raises
    ------
    ValueError
        An empty parameter list, more than one param group, or a keyword out of its range.
    TypeError
        ``params`` is a single array or dict, an unknown param-group key, or parameters of an
        unsupported or mixed dtype.

    Examples
    --------
    >>> import numpy as np, dlopt
    >>> x = np.array([-1.5, 2.0])
    >>> def closure():   # Rosenbrock
    ...     f = 100 * (x[1] - x[0] ** 2) ** 2 + (1 - x[0]) ** 2
    ...     g = np.array([-400 * (x[1] - x[0] ** 2) * x[0] - 2 * (1 - x[0]), 200 * (x[1] - x[0] ** 2)])
    ...     return f, [g]
    >>> opt = dlopt.optim.LBFGS([x], line_search_fn="strong_wolfe")
    >>> for _ in range(5):
    ...     loss = opt.step(closure)
    >>> x.round(4)   # stopped when the loss changed by less than tolerance_change
    array([1., 1.])
    """

    def __init__(self, params: Iterable[Any], lr: float = 1, max_iter: int = 20, max_eval: int | None = None,
                 tolerance_grad: float = 1e-7, tolerance_change: float = 1e-9, history_size: int = 100,
                 line_search_fn: str | None = None):
        if max_eval is None and isinstance(max_iter, numbers.Integral) and not isinstance(max_iter, bool):
            max_eval = max_iter * 5 // 4  # torch resolves it here, once
        self.defaults = dict(lr=lr, max_iter=max_iter, max_eval=max_eval, tolerance_grad=tolerance_grad,
                             tolerance_change=tolerance_change, history_size=history_size,
                             line_search_fn=line_search_fn)
        if isinstance(params, (np.ndarray, dict)) or _core.is_device_array(params):
            raise TypeError(f"params: expected an iterable of arrays or of dicts, got {type(params).__name__} "
                            "(wrap a single array in a list)")
        groups = list(params)  # (empty: _core.LBFGS refuses it below)
        if groups and isinstance(groups[0], dict):
            if len(groups) != 1:
                raise ValueError("LBFGS doesn't support per-parameter options (parameter groups)")
            group = dict(groups[0])
            if "params" not in group:
                raise ValueError("param_group: missing the 'params' key")
            unknown = set(group) - set(OPTION_KEYS) - {"params"}
            if unknown:
                raise TypeError(f"param_group: unexpected hyperparameter(s) {sorted(unknown)}")
            p = group["params"]
            group["params"] = [p] if isinstance(p, np.ndarray) else list(p)
        else:
            group = {"params": groups}
        for key, default in self.defaults.items():
            group.setdefault(key, default)
        _core.LBFGS.check_options(_options(group))
        self._core = _core.LBFGS(group["params"])  # checks the arrays (dtype, layout, overlap)
        self._param_ids = [id(p) for p in group["params"]]
        self.param_groups: list[dict[str, Any]] = [group]

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """Refused, as in torch: L-BFGS has one param group.

        Parameters
        ----------
        param_group : dict
            Not used.

        Raises
        ------
        ValueError
            Always.
        """
        raise ValueError("LBFGS doesn't support per-parameter options (parameter groups)")

    # -- the step --------------------------------------------------------------------------------

    def step(self, closure: Callable[[], Any]) -> Any:
        """One L-BFGS step (up to ``max_iter`` iterations); returns the closure's first loss.

        Parameters
        ----------
        closure : callable
            ``closure()`` returns ``(loss, grads)`` at the current parameters (see the class).

        Returns
        -------
        object
            The loss of the first evaluation, as the closure returned it.

        Raises
        ------
        ValueError
            The closure returned a non-finite loss or gradient, or gradients of the wrong number,
            dtype or shape; parameters and state are as before the step.
        """
        group = self.param_groups[0]
        if [id(p) for p in group["params"]] != self._param_ids:
            raise ValueError("param_groups[0]['params'] changed: LBFGS stays bound to the arrays it was made with")
        return self._core.step(closure, _options(group))

    # -- state -------------------------------------------------------------------------------------

    @property
    def state(self) -> dict[int, dict[str, Any]]:
        """torch's state under index 0 (empty before the first step); a snapshot of copies."""
        func_evals, n_iter, history, al = self._core.state()
        if func_evals == 0:
            return {}
        dtype = self.param_groups[0]["params"][0].dtype.type
        entry: dict[str, Any] = {"func_evals": int(func_evals), "n_iter": int(n_iter)}
        if history is not None:
            d, t, t_tensor, dirs, stps, ro, h, h_tensor, prev_grad, prev_loss = history
            entry.update(d=d, t=dtype(t) if t_tensor else float(t), old_dirs=list(dirs), old_stps=list(stps),
                         ro=[dtype(v) for v in ro],
                         H_diag=dtype(h) if h_tensor else (int(h) if h == int(h) else float(h)),
                         prev_flat_grad=prev_grad, prev_loss=float(prev_loss))
        if al is not None:
            entry["al"] = [None if np.isnan(v) else dtype(v) for v in al]
        return {0: entry}

    def state_dict(self) -> dict[str, Any]:
        """``{"state": {0: {...}}, "param_groups": [{..., "params": [0, 1, ...]}]}``, as torch's."""
        group = {k: v for k, v in self.param_groups[0].items() if k != "params"}
        group["params"] = list(range(len(self.param_groups[0]["params"])))
        return {"state": self.state, "param_groups": [group]}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restores a ``state_dict()`` (dlopt's or torch's LBFGS's); checks it completely first.

        {load_state_dict}
        """
        try:
            saved_groups, saved_state = state_dict["param_groups"], state_dict["state"]
        except (TypeError, KeyError) as e:
            raise ValueError("state_dict: expected keys 'state' and 'param_groups'") from e
        if len(saved_groups) != 1:
            raise ValueError(f"state_dict: has {len(saved_groups)} param groups, LBFGS has 1")
        params = self.param_groups[0]["params"]
        if len(saved_groups[0]["params"]) != len(params):
            raise ValueError(f"state_dict: param_groups[0] has {len(saved_groups[0]['params'])} parameters, "
                             f"optimizer's has {len(params)}")
        unknown = set(saved_groups[0]) - set(OPTION_KEYS) - {"params"}
        if unknown:
            raise ValueError(f"state_dict: param_groups[0] has unknown key(s) {sorted(unknown)}")
        group = {**self.param_groups[0], **{k: v for k, v in saved_groups[0].items() if k != "params"}}
        group["params"] = params
        if len(saved_state) > 1 or any(_index(k) != 0 for k in saved_state):
            raise ValueError(f"state_dict: LBFGS keeps its state under index 0, got keys {list(saved_state)}")
        entry = next(iter(saved_state.values())) if saved_state else {}
        dtype = params[0].dtype
        self._core.load_state(_options(group), *_core_state(entry, dtype))
        self.param_groups[0] = group

    # -- copies ------------------------------------------------------------------------------------

    def __getstate__(self) -> dict[str, Any]:
        # copy / deepcopy / pickle: the compiled optimizer is rebuilt from the parameters and the state
        return {"param_groups": self.param_groups, "defaults": self.defaults, "saved": self.state_dict()}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.defaults = state["defaults"]
        self.param_groups = state["param_groups"]
        self._core = _core.LBFGS(self.param_groups[0]["params"])
        self._param_ids = [id(p) for p in self.param_groups[0]["params"]]
        self.load_state_dict(state["saved"])

    def __repr__(self) -> str:
        lines = [f"{type(self).__name__} (", "Parameter Group 0"]
        lines += [f"    {k}: {v}" for k, v in sorted(self.param_groups[0].items()) if k != "params"]
        return "\n".join(lines + [")"])


def _options(group: dict[str, Any]) -> dict[str, Any]:
    return {key: group[key] for key in OPTION_KEYS}


def _index(key: Any) -> int | None:
    try:
        return int(key)
    except (TypeError, ValueError):
        return None


def _vector(value: Any, name: str, dtype: np.dtype) -> np.ndarray:
    """A saved flat vector (NumPy array or CPU tensor) in the parameters' dtype."""
    a = np.asarray(value)
    if a.dtype.kind != "f":
        raise TypeError(f"state_dict: state[0][{name!r}]: expected a floating-point array, got dtype {a.dtype}")
    if a.ndim != 1:
        raise ValueError(f"state_dict: state[0][{name!r}]: expected a 1-D array, got shape {a.shape}")
    return np.ascontiguousarray(a, dtype=dtype)


def _scalar(value: Any, name: str) -> tuple[float, bool]:
    """A saved number: (value, whether torch holds it as a tensor). Python numbers are Python floats
    in torch's code; NumPy scalars, 0-d arrays and 0-dim tensors are tensors."""
    if isinstance(value, bool) or value is None:
        raise TypeError(f"state_dict: state[0][{name!r}]: expected a number, got {value!r}")
    if isinstance(value, (int, float)) and not isinstance(value, np.generic):
        return float(value), False
    a = np.asarray(value)
    if a.ndim != 0 or a.dtype.kind not in "fiu":
        raise TypeError(f"state_dict: state[0][{name!r}]: expected a number, got {value!r}")
    return float(a), True


def _count(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (numbers.Integral, np.integer)) or value < 0:
        raise ValueError(f"state_dict: state[0][{name!r}]: expected an int >= 0, got {value!r}")
    return int(value)


def _core_state(entry: dict[str, Any], dtype: np.dtype) -> tuple:
    """A state entry with torch's names as the tuple _core.LBFGS.load_state takes."""
    unknown = set(entry) - set(_STATE_KEYS)
    if unknown:
        raise ValueError(f"state_dict: state[0] has unknown entries {sorted(unknown)}")
    if not entry:
        return 0, 0, None, None
    func_evals = _count(entry.get("func_evals"), "func_evals")
    n_iter = _count(entry.get("n_iter"), "n_iter")
    present = [k for k in _HISTORY_KEYS if k in entry]
    if present and len(present) != len(_HISTORY_KEYS):
        missing = sorted(set(_HISTORY_KEYS) - set(present))
        raise ValueError(f"state_dict: state[0] has {present} but not {missing}")
    history = None
    if present:
        dirs, stps, ro = entry["old_dirs"], entry["old_stps"], entry["ro"]
        for name, seq in (("old_dirs", dirs), ("old_stps", stps), ("ro", ro)):
            if not isinstance(seq, (list, tuple)):
                raise TypeError(f"state_dict: state[0][{name!r}]: expected a list, got {type(seq).__name__}")
        history = (
            _vector(entry["d"], "d", dtype), *_scalar(entry["t"], "t"),
            [_vector(v, f"old_dirs[{i}]", dtype) for i, v in enumerate(dirs)],
            [_vector(v, f"old_stps[{i}]", dtype) for i, v in enumerate(stps)],
            np.array([_scalar(v, f"ro[{i}]")[0] for i, v in enumerate(ro)], dtype=dtype),
            *_scalar(entry["H_diag"], "H_diag"), _vector(entry["prev_flat_grad"], "prev_flat_grad", dtype),
            _scalar(entry["prev_loss"], "prev_loss")[0])
    al = None
    if "al" in entry:
        if not isinstance(entry["al"], (list, tuple)):
            raise TypeError(f"state_dict: state[0]['al']: expected a list, got {type(entry['al']).__name__}")
        al = np.array([np.nan if v is None else _scalar(v, f"al[{i}]")[0] for i, v in enumerate(entry["al"])],
                      dtype=dtype)
    return func_evals, n_iter, history, al


fill_methods(LBFGS)
