"""Checks of scalar arguments shared by the Python-side classes (averaging, clipping, schedules).

A value Python's ``float()`` turns into an OverflowError (``10**400``) or into NaN would otherwise
fail deep inside a call or poison every number it touches; these raise a ValueError naming it.
"""

from __future__ import annotations

import math
import numbers
from typing import Any


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def real(name: str, value: Any, lo: float = -math.inf, hi: float = math.inf, *,
         strings: bool = False, nan: bool = False) -> float:
    """``value`` as a float in ``[lo, hi]`` (NaN only where ``nan``).

    TypeError: not a number (bool and str too, unless ``strings``: torch's clipping takes
    ``norm_type='inf'``). ValueError: beyond a float's range, NaN, or outside ``[lo, hi]``.
    """
    text = isinstance(value, (str, bytes))
    # a complex number (NumPy's converts to float with only a warning) would lose its imaginary part
    complex_ = (isinstance(value, numbers.Complex) and not isinstance(value, numbers.Real)
                or getattr(getattr(value, "dtype", None), "kind", "") == "c")
    if (isinstance(value, bool) or complex_ or (text and not strings)
            or not (text or hasattr(type(value), "__float__"))):
        raise TypeError(f"{name}: expected a real number, got {type(value).__name__} {_shown(value)}")
    try:
        x = float(value)
    except OverflowError:
        raise ValueError(f"{name}: {_shown(value)} is beyond the range of a float") from None
    except (TypeError, ValueError) as e:
        raise type(e)(f"{name}: expected a real number, got {_shown(value)} ({e})") from None
    if math.isnan(x) and not nan or not (math.isnan(x) or lo <= x <= hi):
        raise ValueError(f"{name}: expected a value in [{lo}, {hi}], got {_shown(value)}")
    return x


def count(name: str, value: Any, lo: int = 0, hi: int = 2**53 - 1) -> int:
    """``value`` as an int in ``[lo, hi]``: TypeError unless an int (bool is not), else ValueError."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name}: expected an integer, got {type(value).__name__} {_shown(value)}")
    if not lo <= int(value) <= hi:
        raise ValueError(f"{name}: expected an integer in [{lo}, {hi}], got {_shown(value)}")
    return int(value)


def whole(name: str, value: Any, lo: int = 0, hi: int = 2**53 - 1) -> Any:
    """``value`` if it is a whole number in ``[lo, hi]``: an int or a float without a fraction (torch's
    schedulers take ``T_max=10.0`` where they document an int), returned unchanged.

    TypeError: not a real number (bool is not). ValueError: a fraction, NaN, infinite or outside ``[lo, hi]``.
    """
    if isinstance(value, bool) or not isinstance(value, (numbers.Integral, numbers.Real)):
        raise TypeError(f"{name}: expected an integer, got {type(value).__name__} {_shown(value)}")
    if not isinstance(value, numbers.Integral):
        x = float(value)
        if not math.isfinite(x) or x != math.floor(x):
            raise ValueError(f"{name}: expected a whole number, got {_shown(value)}")
    if not lo <= value <= hi:
        raise ValueError(f"{name}: expected an integer in [{lo}, {hi}], got {_shown(value)}")
    return value
