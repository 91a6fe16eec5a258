"""Arrays from other libraries, seen by the C++ step as NumPy arrays without a copy.

The step (``_core.StepPlan``) works on NumPy arrays (host) and ``__cuda_array_interface__`` objects
(device). Everything else a user may hand over is turned here into one of those, sharing memory:

- a torch tensor: on the CPU a NumPy view of its storage (bfloat16 through ``ml_dtypes``); on a GPU
  the tensor itself, detached (torch refuses ``__cuda_array_interface__`` on tensors that require grad);
- an object with ``__array_interface__`` (NumPy's protocol) or ``__dlpack__``: a NumPy view.

Nothing is ever copied: what cannot be viewed in place (a sparse or non-contiguous tensor, a tensor on
another device, memory NumPy cannot address) raises, naming the argument. torch is never imported here:
a tensor is recognised through ``sys.modules``, so only a program that imported torch has tensors.

:class:`Shadow` keeps the param groups as the step sees them (the same dicts' values, foreign
parameters replaced by their views) and re-checks, at each step, that each parameter's storage has not
moved (``p.data = ...`` in torch) — cheaply, from the tensor's pointer, shape, dtype and strides.
"""

from __future__ import annotations

import sys
from typing import Any

import ml_dtypes
import numpy as np

from . import _core

__all__ = ["is_foreign", "host_view", "Shadow"]


def _torch_tensor_type() -> type | None:
    torch = sys.modules.get("torch")
    return getattr(torch, "Tensor", None) if torch is not None else None


def is_torch_tensor(obj: Any) -> bool:
    tensor = _torch_tensor_type()
    return tensor is not None and isinstance(obj, tensor)


def is_foreign(obj: Any) -> bool:
    """True for what the step cannot take as it is: not a NumPy array, not a plain device array."""
    if isinstance(obj, np.ndarray):
        return False
    return is_torch_tensor(obj) or not _core.is_device_array(obj)


def is_array_like(obj: Any) -> bool:
    """One array (not a list of them): a parameter passed where an iterable of them is expected."""
    return (isinstance(obj, np.ndarray) or is_torch_tensor(obj) or _core.is_device_array(obj)
            or hasattr(obj, "__array_interface__") or hasattr(obj, "__dlpack__"))


_NUMPY_2_1 = np.lib.NumpyVersion(np.__version__) >= "2.1.0"
_TORCH_16BIT = {"torch.bfloat16": np.dtype(ml_dtypes.bfloat16), "torch.float16": np.dtype(np.float16)}


def _torch_view(t: Any, what: str) -> Any:
    import torch  # already imported: t is a tensor

    if t.layout != torch.strided:
        raise TypeError(f"{what}: {t.layout} tensors are not supported (dlopt steps dense tensors only)")
    if t.is_cuda:
        return t.detach()  # its __cuda_array_interface__: the device step
    if t.device.type != "cpu":
        raise TypeError(f"{what}: tensor on device {t.device}; dlopt steps CPU and CUDA tensors")
    if not t.is_contiguous():
        raise ValueError(f"{what}: tensor is not contiguous (dlopt works in place and never makes a hidden "
                         "copy; pass a contiguous tensor)")
    if t.is_conj() or t.is_neg():
        raise ValueError(f"{what}: tensor has a lazy conjugate/negative bit; resolve it first")
    t = t.detach()
    if str(t.dtype) in _TORCH_16BIT:  # NumPy has no bfloat16: view the bits, then retype them
        return t.view(torch.int16).numpy().view(_TORCH_16BIT[str(t.dtype)])
    try:
        return t.numpy()
    except TypeError as e:
        raise TypeError(f"{what}: unsupported tensor dtype {t.dtype}") from e


def host_view(obj: Any, what: str) -> Any:
    """``obj`` as the step takes it, sharing its memory: a NumPy array or a device array.

    Raises TypeError / ValueError naming ``what`` where that needs a copy.
    """
    if isinstance(obj, np.ndarray):
        return obj
    if is_torch_tensor(obj):
        return _torch_view(obj, what)
    if _core.is_device_array(obj):
        return obj
    if hasattr(obj, "__array_interface__"):
        view = np.asarray(obj)
        if view.__array_interface__["data"][0] != obj.__array_interface__["data"][0]:
            raise ValueError(f"{what}: its __array_interface__ could not be viewed in place")
        return view
    if hasattr(obj, "__dlpack__"):
        try:  # NumPy < 2.1 has no copy= and never copies
            return np.from_dlpack(obj, copy=False) if _NUMPY_2_1 else np.from_dlpack(obj)
        except (BufferError, TypeError, ValueError, RuntimeError) as e:
            raise TypeError(f"{what}: cannot view its __dlpack__ memory in place: {e}") from e
    raise TypeError(f"{what}: expected a numpy.ndarray, a torch tensor, or an array exporting "
                    f"__array_interface__, __dlpack__ or __cuda_array_interface__, got {type(obj).__name__}")


def _fingerprint(obj: Any) -> Any:
    """What identifies a foreign parameter's memory now, cheaply; None: view it again to know."""
    if is_torch_tensor(obj):
        return obj.data_ptr(), obj.shape, obj.dtype, obj.stride(), obj.is_cuda
    return None


class _Mirror(dict):
    """A shadow group: what the step reads. A write by dlopt's own Python (Schedule-Free's train/eval
    setting ``"train_mode"``) also goes to the user's group, the one that counts."""

    __slots__ = ("source",)

    def __setitem__(self, key: Any, value: Any) -> None:
        dict.__setitem__(self, key, value)
        if key != "params" and self.source is not None:
            self.source[key] = value


class Shadow:
    """The param groups with every foreign parameter replaced by its view (what the step takes).

    One shadow dict per group, kept across steps so that the C++ plan's identity checks keep holding:
    each step copies changed hyperparameter values (the same objects) into it and replaces the view of
    a parameter whose memory moved, which makes the plan check everything again.
    """

    def __init__(self) -> None:
        self.groups: list[dict[str, Any]] = []
        self._keys: list[list[tuple[Any, Any]]] = []  # per parameter: (object, fingerprint)

    def sync(self, param_groups: list[dict[str, Any]]) -> list[dict[str, Any]]:
        if len(self.groups) != len(param_groups):
            self.groups, self._keys = [], []
        index = 0
        for gi, group in enumerate(param_groups):
            if gi == len(self.groups):
                mirror = _Mirror(params=[])
                self.groups.append(mirror)
                self._keys.append([])
            shadow, keys = self.groups[gi], self._keys[gi]
            shadow.source = group
            if len(shadow) != len(group) or any(k not in group for k in shadow):
                params = shadow["params"]
                shadow.clear()
                dict.__setitem__(shadow, "params", params)
            for key, value in group.items():
                if key != "params" and shadow.get(key, shadow) is not value:
                    dict.__setitem__(shadow, key, value)
            params, views = group["params"], shadow["params"]
            if len(views) != len(params):
                del views[len(params):], keys[len(params):]
            for j, p in enumerate(params):
                fp = _fingerprint(p)
                if j < len(views):
                    obj, old = keys[j]
                    if obj is p and fp is not None and fp == old:
                        continue
                view = host_view(p, f"params[{index + j}]")
                if j < len(views):
                    # Same object, same memory: keep the old view so the plan's cache holds.
                    if not (keys[j][0] is p and _same_memory(views[j], view)):
                        views[j] = view
                    keys[j] = (p, fp)
                else:
                    views.append(view)
                    keys.append((p, fp))
            index += len(params)
        return self.groups


def _same_memory(a: Any, b: Any) -> bool:
    if not (isinstance(a, np.ndarray) and isinstance(b, np.ndarray)):
        return a is b
    return (a.__array_interface__["data"] == b.__array_interface__["data"] and a.shape == b.shape
            and a.dtype == b.dtype and a.strides == b.strides)


def grad_views(grads: Any) -> Any:
    """The gradients as the step takes them (foreign ones viewed, the others as they are)."""
    if not isinstance(grads, (list, tuple)):
        return grads  # the step's own check names the mistake
    return [g if g is None or type(g) is np.ndarray else host_view(g, f"grads[{i}]")
            for i, g in enumerate(grads)]
