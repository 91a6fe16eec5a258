"""dlopt on NVIDIA GPUs.

dlopt's optimizers accept CUDA device arrays from any library that exposes
``__cuda_array_interface__`` (CuPy, PyTorch CUDA tensors, Numba) and update them in place with one
fused multi-tensor kernel launch per step, on the legacy default CUDA stream. All parameters of one
optimizer live on one device; mixing host (NumPy) and device arrays is an error raised before
anything changes. Optimizer state for device parameters is device memory owned by dlopt
(:class:`DeviceArray`); ``state_dict()`` returns NumPy copies and ``load_state_dict()`` copies back.

>>> import dlopt
>>> isinstance(dlopt.cuda.is_available(), bool)
True
"""

from __future__ import annotations

from typing import Any

import numpy as np

from . import _core

__all__ = ["is_available", "device_count", "get_device_name", "synchronize", "to_numpy",
           "is_device_array", "DeviceArray", "is_built"]

#: Device memory owned by dlopt (the state of device parameters): ``__cuda_array_interface__``
#: (wrap it with ``cupy.asarray`` or ``torch.as_tensor``, no copy), ``to_numpy()``, ``shape``,
#: ``dtype``, ``device``.
DeviceArray = _core.DeviceArray


def is_built() -> bool:
    """True if this dlopt was built with its CUDA kernels (nvcc was found at build time)."""
    return bool(_core.has_cuda)


def is_available() -> bool:
    """True if dlopt was built with CUDA and a CUDA device is visible."""
    return bool(_core.cuda_is_available())


def device_count() -> int:
    """Number of visible CUDA devices (0 without CUDA)."""
    return int(_core.cuda_device_count())


def _require() -> None:
    if not is_built():
        raise RuntimeError(
            "dlopt was built without CUDA kernels (DLOPT_CUDA=OFF, or AUTO with no nvcc or no GPU at "
            "build time): rebuild with the CUDA toolkit installed and DLOPT_CUDA=ON, e.g. "
            "DLOPT_CUDA=ON pip install .")
    if not is_available():
        raise RuntimeError("dlopt: no CUDA device is available (dlopt.cuda.is_available() is False)")


def get_device_name(device: int = 0) -> str:
    """The name of CUDA device ``device``, e.g. ``"NVIDIA H100 80GB HBM3"``."""
    _require()
    return str(_core.cuda_device_name(int(device)))


def synchronize() -> None:
    """Waits until every step enqueued on the current CUDA device has finished."""
    _require()
    _core.cuda_synchronize()


def is_device_array(obj: Any) -> bool:
    """True if ``obj`` is a CUDA device array (not a NumPy array, exposes ``__cuda_array_interface__``)."""
    return bool(_core.is_device_array(obj))


def to_numpy(array: Any) -> np.ndarray:
    """A NumPy copy of a CUDA device array (:class:`DeviceArray`, CuPy, PyTorch CUDA tensor, ...).

    The copy waits for every step enqueued on the legacy default stream before it.
    """
    _require()
    return _core.cuda_to_numpy(array)
