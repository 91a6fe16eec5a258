"""The Parameters entries that recur in every optimizer's docstring, written once.

An optimizer's docstring starts its Parameters section with a ``{params}`` line and ends it with a
``{common}`` line; between them it documents only what is its own. :func:`common_parameters` puts
in every argument of the signature, in order: the class's own entry, or else the shared one below
with the signature's default (so it cannot drift from the code); then the Raises section every
optimizer shares.
"""

from __future__ import annotations

import inspect
import re
import textwrap

# name -> (type, description) of the arguments many optimizers share; the default is taken from the
# signature. A docstring entry of the same name overrides the shared one for that class.
_ENTRIES: dict[str, tuple[str, str]] = {
    "lr": ("float", r"Learning rate :math:`\gamma`."),
    "betas": ("tuple of 2 floats", r"Decay rates :math:`(\beta_1, \beta_2)` of the first and second moment."),
    "eps": ("float", r"Term :math:`\epsilon` added to the denominator for numerical stability."),
    "weight_decay": ("float", r"L2 penalty :math:`\lambda`, added to the gradient as :math:`\lambda p`."),
    "momentum": ("float", r"Momentum factor :math:`\mu`."),
    "nesterov": ("bool", "Use Nesterov momentum."),
    "amsgrad": ("bool", r"Use the maximum of the past second moments :math:`\hat v` (AMSGrad)."),
    "decoupled_weight_decay": ("bool", r"Apply the weight decay to the parameter as "
                               r":math:`p \leftarrow p(1 - \gamma\lambda)` instead of adding it to the gradient."),
    "warmup_steps": ("int", "Steps of linear learning-rate warmup."),
    "r": ("float", r"Power :math:`r` of :math:`t` in the averaging weights."),
    "weight_lr_power": ("float", r"Power :math:`p` of the learning rate in the averaging weights."),
    "train_mode": ("bool", "The mode the optimizer starts in (see :meth:`train`, :meth:`eval`)."),
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


def _own_entries(block: str) -> dict[str, list[str]]:
    """The entries written in the docstring (between the markers): name -> its lines, dedented."""
    entries: dict[str, list[str]] = {}
    current: list[str] = []
    for line in textwrap.dedent(block).splitlines():
        if line and not line[0].isspace():
            current = entries.setdefault(line.split(" : ")[0].strip(), [])
        if line.strip():
            current.append(line)
    return entries


def _entries(cls: type, own: dict[str, list[str]]) -> list[str]:
    """Every argument's entry in signature order: the class's own, else the shared one."""
    lines = _PARAMS.splitlines()
    for name, parameter in inspect.signature(cls.__init__).parameters.items():
        if name in own:
            lines += own[name]
        elif name in _ENTRIES:
            kind, text = _ENTRIES[name]
            default = re.sub(r"e-0(\d)", r"e-\1", repr(parameter.default))  # 1e-8, not 1e-08
            lines.append(f"{name} : {kind}, default {default}")
            lines += textwrap.wrap(text, width=96, initial_indent="    ", subsequent_indent="    ",
                                   break_long_words=False, break_on_hyphens=False)
    return lines + _SWITCHES.splitlines()


def common_parameters(cls: type) -> type:
    """Class decorator: replaces the lines from ``{params}`` to ``{common}`` of ``cls.__doc__`` by the
    whole Parameters list (and the shared Raises section)."""
    doc = cls.__doc__ or ""
    match = re.search(r"^([ \t]*)\{params\}[ \t]*\n(.*?)^[ \t]*\{common\}[ \t]*$", doc, re.MULTILINE | re.DOTALL)
    if match is None:
        raise ValueError(f"{cls.__name__}: docstring has no {{params}} ... {{common}} lines")
    indent = match.group(1)
    body = _entries(cls, _own_entries(match.group(2)))
    cls.__doc__ = doc[:match.start()] + "\n".join(indent + line if line else "" for line in body) + doc[match.end():]
    return cls
