"""The Parameters entries that recur in every optimizer's docstring, written once.

An optimizer's docstring starts its Parameters section with a ``{params}`` line and ends it with a
``{common}`` line; :func:`common_parameters` replaces them by the entries below, for the keywords
the class's signature has, each with the signature's default (so it cannot drift from the code),
followed by the Raises section every optimizer shares.
"""

from __future__ import annotations

import inspect
import textwrap
from typing import Any

from .._docstrings import fill

# name -> (type, description). The default is taken from the signature.
_ENTRIES: dict[str, tuple[str, str]] = {
    "maximize": ("bool", "Maximize the objective: the step follows :math:`+g` instead of :math:`-g`."),
    "state_dtype": (
        "{None, 'float32', 'bfloat16', 'int8'}",
        "Storage of the state slots. ``None``: the compute type (float32 for float32, bfloat16 and "
        "float16 parameters, float64 for float64 ones); ``'int8'``: 8-bit blockwise codes with one "
        "float32 scale per 256 elements (``state[i]['<slot>_scale']``). Slots that only grow (Adagrad's "
        "``sum``) stay in the compute type. See :doc:`/formats`."),
    "stochastic_rounding": (
        "bool",
        "Round every write to 16 or 8 bits (16-bit parameters, bfloat16 state, 8-bit codes) "
        "stochastically, from a counter-based hash of (seed, step, tensor, element); ``False`` "
        "rounds to nearest."),
    "master_weights": (
        "bool",
        "Keep a float32 copy of 16-bit parameters in ``state[i]['master_param']``; the rule updates "
        "it and the parameter receives it rounded to nearest."),
    "seed": ("int", "Seed of the stochastic rounding."),
}

_PARAMS = (
    "params : iterable of arrays, or iterable of dicts\n"
    "    The parameters, updated in place: C-contiguous, writeable float32, float64, bfloat16\n"
    "    (``ml_dtypes.bfloat16``) or float16 arrays, NumPy or device arrays (any library with\n"
    "    ``__cuda_array_interface__``), or torch tensors; or param groups, dicts with ``'params'``\n"
    "    and any hyperparameter of the signature, which then overrides the default for that group."
)

_SWITCHES = (
    "foreach, fused, capturable, differentiable : optional\n"
    "    torch.optim's implementation switches, accepted for compatibility and ignored (dlopt always\n"
    "    takes one fused multi-tensor step); ``differentiable=True`` raises ``ValueError``.\n"
    "\n"
    "Raises\n"
    "------\n"
    "ValueError\n"
    "    A hyperparameter out of its range (the message names it), an empty parameter list, or\n"
    "    one array given twice.\n"
    "TypeError\n"
    "    A parameter that is not a contiguous, writeable array of a supported dtype (never copied),\n"
    "    or a hyperparameter of the wrong type."
)


def _literal(value: Any) -> str:
    return repr(value)


def _entries(cls: type) -> list[str]:
    signature = inspect.signature(cls.__init__)
    lines = []
    for name, (kind, text) in _ENTRIES.items():
        if name in signature.parameters:
            lines.append(f"{name} : {kind}, default {_literal(signature.parameters[name].default)}")
            lines += textwrap.wrap(text, width=96, initial_indent="    ", subsequent_indent="    ",
                                   break_long_words=False, break_on_hyphens=False)
    return lines + _SWITCHES.splitlines()


def common_parameters(cls: type) -> type:
    """Class decorator: fills the ``{params}`` and ``{common}`` lines of ``cls.__doc__``."""
    fill(cls, params=_PARAMS, common="\n".join(_entries(cls)))
    return cls
