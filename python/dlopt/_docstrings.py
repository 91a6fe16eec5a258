"""Docstring entries that recur across classes, written once.

A docstring holds a line with only ``{name}`` where a shared entry goes; :func:`fill` replaces
that line by the entry's lines, at the marker's indentation. ``tests/test_docs.py`` checks that
every documented default equals the signature's.
"""

from __future__ import annotations

import re


def fill(obj: object, **entries: str) -> None:
    """Replaces each ``{name}`` line of ``obj.__doc__`` by ``entries[name]`` (a block of lines)."""
    doc = obj.__doc__ or ""
    for name, text in entries.items():
        match = re.search(rf"^([ \t]*)\{{{name}\}}[ \t]*$", doc, re.MULTILINE)
        if match is None:
            raise ValueError(f"{getattr(obj, '__qualname__', obj)}: docstring has no {{{name}}} line")
        indent = match.group(1)
        block = "\n".join(indent + line if line else "" for line in text.splitlines())
        doc = doc[:match.start()] + block + doc[match.end():]
    obj.__doc__ = doc


#: Sections that methods of several classes share; a method's docstring holds the ``{name}`` line.
METHOD_SECTIONS = {
    "load_state_dict": """Parameters
----------
state_dict : dict
    What :meth:`state_dict` returned (from an object made the same way).

Raises
------
ValueError
    A state dict of another kind, or arrays of other shapes or dtypes; nothing is changed then.""",
    "ema_params": """Parameters
----------
params : list of arrays, optional
    The arrays to act on, in the order of the tracked ones; ``None``: the tracked parameters.""",
}


def fill_methods(*classes: type) -> None:
    """Fills the :data:`METHOD_SECTIONS` markers in the docstrings of the classes' own methods."""
    for cls in classes:
        for attribute in vars(cls).values():
            doc = getattr(attribute, "__doc__", None) or ""
            used = {k: v for k, v in METHOD_SECTIONS.items() if "{" + k + "}" in doc}
            if used and callable(attribute):
                fill(attribute, **used)
