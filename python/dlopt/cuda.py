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

# Device memory owned by dlopt (the state of device parameters); documented by its binding
# (python/bindings/device.cpp).
DeviceArray = _core.DeviceArray


def is_built() -> bool:
    """True if this dlopt was built with its CUDA kernels (nvcc was found at build time).

    Returns
    -------
    bool
        Whether the CUDA kernels are compiled in (a GPU may still be missing: see
        :func:`is_available`).

    Examples
    --------
    >>> import dlopt
    >>> dlopt.cuda.is_built() or not dlopt.cuda.is_available()
    True
    """
    return bool(_core.has_cuda)


def is_available() -> bool:
    """True if dlopt was built with CUDA and a CUDA device is visible.

    Returns
    -------
    bool
        Whether optimizers and linear models can run on a GPU here.

    Examples
    --------
    >>> import dlopt
    >>> dlopt.cuda.is_available() == (dlopt.cuda.device_count() > 0)
    True
    """
    return bool(_core.cuda_is_available())


def device_count() -> int:
    """Number of visible CUDA devices (0 without CUDA).

    Returns
    -------
    int
        The device count; 0 when dlopt was built without CUDA or no device is visible.

    Examples
    --------
    >>> import dlopt
    >>> dlopt.cuda.device_count() >= 0
    True
    """
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
    """The name of CUDA device ``device``, e.g. ``"NVIDIA H100 80GB HBM3"``.

    Parameters
    ----------
    device : int, default 0
        The device index.

    Returns
    -------
    str
        The device's name.

    Raises
    ------
    RuntimeError
        dlopt was built without CUDA kernels, or no CUDA device is visible.

    Examples
    --------
    >>> import dlopt
    >>> names = [dlopt.cuda.get_device_name(i) for i in range(dlopt.cuda.device_count())]
    >>> all(isinstance(n, str) for n in names)
    True
    """
    _require()
    return str(_core.cuda_device_name(int(device)))


def synchronize() -> None:
    """Waits until every step enqueued on the current CUDA device has finished.

    Raises
    ------
    RuntimeError
        dlopt was built without CUDA kernels, or no CUDA device is visible.

    Examples
    --------
    >>> import dlopt
    >>> if dlopt.cuda.is_available():
    ...     dlopt.cuda.synchronize()
    """
    _require()
    _core.cuda_synchronize()


def is_device_array(obj: Any) -> bool:
    """True if ``obj`` is a CUDA device array (not a NumPy array, exposes ``__cuda_array_interface__``).

    Parameters
    ----------
    obj : object
        Any object.

    Returns
    -------
    bool
        Whether dlopt's steps treat ``obj`` as device memory.

    Examples
    --------
    >>> import numpy as np, dlopt
    >>> dlopt.cuda.is_device_array(np.zeros(3))
    False
    """
    return bool(_core.is_device_array(obj))


def to_numpy(array: Any) -> np.ndarray:
    """A NumPy copy of a CUDA device array (:class:`DeviceArray`, CuPy, PyTorch CUDA tensor, ...).

    The copy waits for every step enqueued on the legacy default stream before it.

    Parameters
    ----------
    array : device array
        Any object with ``__cuda_array_interface__``.

    Returns
    -------
    numpy.ndarray
        A host copy with the same shape and dtype.

    Raises
    ------
    RuntimeError
        dlopt was built without CUDA kernels, or no CUDA device is visible.

    Examples
    --------
    >>> import cupy, dlopt                              # doctest: +SKIP
    >>> dlopt.cuda.to_numpy(cupy.arange(3.0))           # doctest: +SKIP
    array([0., 1., 2.])
    """
    _require()
    return _core.cuda_to_numpy(array)
