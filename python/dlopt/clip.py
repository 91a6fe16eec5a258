r"""Gradient clipping over lists of NumPy arrays, in place, as ``torch.nn.utils``.

Each function is one fused multi-tensor C++ pass (two for ``clip_grad_norm_``: the norm, then the
scaling). Gradients must be writeable, C-contiguous float32/float64 arrays: dlopt clips them in
place and never makes a hidden copy (anything else raises).

The norm is accumulated in float64 (as torch does on the CPU) in fixed blocks combined in a fixed
order, so it is bitwise identical for any thread count; for float32 gradients it matches torch's
to about 1e-7 relative.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from . import _core
from ._checks import real

__all__ = ["clip_grad_norm_", "clip_grad_value_", "get_total_norm", "clip_grads_with_norm_"]

Grads = "np.ndarray | Sequence[np.ndarray]"


def _grads(grads) -> list[np.ndarray]:
    if isinstance(grads, np.ndarray):
        return [grads]
    if grads is None or isinstance(grads, (str, bytes, dict)):
        raise TypeError(f"grads: expected an array or a list of arrays, got {type(grads).__name__}")
    return [g for g in grads if g is not None]  # torch skips parameters without a gradient


def _result(total: float, f32: bool):
    return np.float32(total) if f32 else np.float64(total)


def _check_foreach(foreach) -> None:
    if foreach not in (None, True, False):
        raise TypeError(f"foreach: expected None or a bool, got {foreach!r}")


# torch converts these with float(): strings such as 'inf' work, and every value torch takes gives its
# result here. Refused: what float() cannot hold (10**400) and a NaN, which torch spreads silently
# into every gradient.
def _max_norm(value) -> float:
    return real("max_norm", value, strings=True)  # inf: no clipping, as torch


def _norm_type(value) -> float:
    return real("norm_type", value, strings=True)  # any p, inf (max) and -inf (min) as torch


def get_total_norm(grads, norm_type: float = 2.0, error_if_nonfinite: bool = False,
                   foreach: bool | None = None):
    r"""The norm of all arrays viewed as one vector, as ``torch.nn.utils.get_total_norm``.

    .. math:: \|g\|_p = \Big(\sum_i \|g_i\|_p^p\Big)^{1/p}

    ``norm_type`` may be any real (``inf``: max ``|g|``; ``-inf``: min; ``0``: as torch, the
    number of non-zero norms).

    Parameters
    ----------
    grads : array or sequence of arrays
        The gradients, as in :func:`clip_grad_norm_`.
    norm_type : float, default 2.0
        The order :math:`p` of the norm.
    error_if_nonfinite : bool, default False
        Raise if the norm is NaN or infinite.
    foreach : bool or None, default None
        Ignored, as in :func:`clip_grad_norm_`.

    Returns
    -------
    numpy.float32 or numpy.float64
        The norm: float32 when every array is float32.

    Raises
    ------
    RuntimeError
        ``error_if_nonfinite=True`` and the norm is NaN or infinite.
    TypeError
        ``grads`` is not an array or a sequence of arrays, or an array of an unsupported dtype.

    Examples
    --------
    >>> import numpy as np, dlopt
    >>> dlopt.get_total_norm([np.array([3.0]), np.array([4.0])])
    np.float64(5.0)
    """
    _check_foreach(foreach)
    norm_type = _norm_type(norm_type)
    total, f32 = _core.total_norm(_grads(grads), norm_type)
    if error_if_nonfinite:
        _core.require_finite_norm(total, norm_type)  # torch's message, written in C++
    return _result(total, f32)


def clip_grads_with_norm_(grads, max_norm: float, total_norm, foreach: bool | None = None) -> None:
    r"""Scales ``grads`` in place by :math:`\min(\text{max\_norm} / (\text{total\_norm} + 10^{-6}), 1)`.

    As ``torch.nn.utils.clip_grads_with_norm_``: the norm is given (from :func:`get_total_norm`).

    Parameters
    ----------
    grads : array or sequence of arrays
        The gradients, as in :func:`clip_grad_norm_`.
    max_norm : float
        The largest total norm allowed.
    total_norm : float
        The total norm of ``grads``, computed beforehand.
    foreach : bool or None, default None
        Ignored, as in :func:`clip_grad_norm_`.

    Raises
    ------
    TypeError
        Gradients that :func:`clip_grad_norm_` refuses.

    Examples
    --------
    >>> import numpy as np, dlopt
    >>> g = [np.array([3.0, 4.0])]
    >>> dlopt.clip_grads_with_norm_(g, max_norm=1.0, total_norm=dlopt.get_total_norm(g))
    >>> g[0].round(6)
    array([0.6, 0.8])
    """
    _check_foreach(foreach)
    # The norm is data (NaN or inf when the gradients hold them): used as torch uses it.
    total = real("total_norm", total_norm, strings=True, nan=True)
    _core.clip_grads_with_norm(_grads(grads), _max_norm(max_norm), total)


def clip_grad_norm_(grads, max_norm: float, norm_type: float = 2.0,
                    error_if_nonfinite: bool = False, foreach: bool | None = None):
    r"""Clips the total norm of a list of gradients in place; returns the norm before clipping.

    As ``torch.nn.utils.clip_grad_norm_``, with the gradient arrays passed directly:

    .. math::
        n = \|[g_1, \dots, g_k]\|_p, \qquad
        g_i \leftarrow g_i \cdot \min\Big(\frac{\text{max\_norm}}{n + 10^{-6}}, 1\Big)

    The gradients are always multiplied (by 1 when ``n <= max_norm``), as in torch. With
    ``error_if_nonfinite=True`` a NaN or infinite norm raises ``RuntimeError`` and the gradients
    are left untouched.

    Parameters
    ----------
    grads : array or sequence of arrays
        The gradients: writeable, C-contiguous float32 or float64 arrays (``None`` entries are
        skipped, as torch skips parameters without a gradient).
    max_norm : float
        The largest total norm allowed.
    norm_type : float, default 2.0
        The order :math:`p` of the norm (``inf`` for the largest absolute value).
    error_if_nonfinite : bool, default False
        Raise, leaving the gradients untouched, if the norm is NaN or infinite.
    foreach : bool or None, default None
        Accepted for torch compatibility and ignored: dlopt always runs one fused pass.

    Returns
    -------
    numpy.float32 or numpy.float64
        The total norm before clipping: float32 when every gradient is float32.

    Raises
    ------
    RuntimeError
        ``error_if_nonfinite=True`` and the norm is NaN or infinite.
    TypeError
        ``grads`` is not an array or a sequence of arrays, or an array is not writeable,
        C-contiguous float32 or float64.

    Examples
    --------
    >>> import numpy as np, dlopt
    >>> g = [np.array([3.0, 0.0]), np.array([4.0])]
    >>> float(dlopt.clip_grad_norm_(g, max_norm=1.0))
    5.0
    >>> [x.round(6) for x in g]
    [array([0.6, 0. ]), array([0.8])]
    """
    _check_foreach(foreach)
    total, f32 = _core.clip_grad_norm(_grads(grads), _max_norm(max_norm), _norm_type(norm_type),
                                      bool(error_if_nonfinite))  # NonFiniteNorm: a RuntimeError
    return _result(total, f32)


def clip_grad_value_(grads, clip_value: float, foreach: bool | None = None) -> None:
    r"""Clamps every gradient element to ``[-clip_value, clip_value]`` in place.

    As ``torch.nn.utils.clip_grad_value_`` (``g.clamp_(-c, c)``; NaN stays NaN).

    Parameters
    ----------
    grads : array or sequence of arrays
        The gradients, as in :func:`clip_grad_norm_`.
    clip_value : float
        The largest absolute value allowed.
    foreach : bool or None, default None
        Ignored, as in :func:`clip_grad_norm_`.

    Raises
    ------
    TypeError
        Gradients that :func:`clip_grad_norm_` refuses.

    Examples
    --------
    >>> import numpy as np, dlopt
    >>> g = np.array([-3.0, 0.5, 2.0])
    >>> dlopt.clip_grad_value_([g], 1.0); g
    array([-1. ,  0.5,  1. ])
    """
    _check_foreach(foreach)
    _core.clip_grad_value(_grads(grads), real("clip_value", clip_value, strings=True))
