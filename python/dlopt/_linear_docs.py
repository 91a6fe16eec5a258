"""The Parameters entries of the linear models, written once for the three classes.

Each model's docstring has a ``{parameters}`` line; :func:`document` replaces it by the entries of
the keywords its signature has, each with the signature's default. ``dlopt/__init__.py`` calls it
(importing ``dlopt.linear_model`` always runs the package's ``__init__`` first).
"""

from __future__ import annotations

import inspect
import textwrap

from ._docstrings import fill

# name -> (type, description); the default comes from the signature.
_ENTRIES: dict[str, tuple[str, str]] = {
    "solver": ("{'auto', 'closed_form', 'gradient'}",
               "How the model is fitted (above); the fitted ``solver_`` says which ran."),
    "optimizer": ("str or None",
                  "A :mod:`dlopt.optim` name (case-insensitive; ``'lbfgs'`` too) for gradient training; "
                  "``None``: ``'adam'``."),
    "lr": ("float or None", "The learning rate (the schedule's base lr); ``None``: 0.01."),
    "lr_schedule": ("None, str or dict",
                    "A per-epoch schedule of ``dlopt/schedule.hpp``: a name (``'cosine'``) or a dict "
                    "(``{'name': 'cosine', 'T_max': 100}``) with torch's keyword names (docs/linear_models.md); "
                    "``None``: a constant ``lr``."),
    "optimizer_params": ("dict or None",
                         "More keyword arguments of the optimizer (``betas``, ``momentum``, ``state_dtype``, ...)."),
    "epochs": ("int", "The largest number of passes over the data."),
    "batch_size": ("int or None", "Rows per mini-batch (SGD); ``None``: the whole data set (gradient descent)."),
    "shuffle": ("bool", "Reshuffle the rows every epoch (mini-batch training)."),
    "shuffle_block": ("int", "Shuffle blocks of this many consecutive rows (1: single rows); larger blocks "
                             "read memory sequentially."),
    "random_state": ("int or None", "Seed of the shuffling and of the validation split; ``None``: fresh entropy."),
    "fit_intercept": ("bool", "Fit an intercept (else it stays 0)."),
    "penalty": ("{None, 'l2', 'l1', 'elasticnet'}", "The regularization term :math:`R`."),
    "alpha": ("float", "Strength of the regularization."),
    "l1_ratio": ("float", "The share of L1 in ``'elasticnet'``, in [0, 1]."),
    "tol": ("float or None", "Stop when the epoch loss has not improved by ``tol`` for ``n_iter_no_change`` "
                             "epochs; ``None``: train all ``epochs``."),
    "n_iter_no_change": ("int", "Epochs without improvement before stopping (with ``tol`` or ``early_stopping``)."),
    "early_stopping": ("bool", "Hold out ``validation_fraction`` of the rows, stop on the validation score and "
                               "keep the best coefficients."),
    "validation_fraction": ("float", "The share of rows held out by ``early_stopping``."),
    "verbose": ("int", "Print the loss of every epoch when non-zero."),
    "warm_start": ("bool", "A new ``fit`` continues from the current coefficients and optimizer state."),
    "class_weight": ("None, 'balanced' or dict",
                     "Weights of the classes in the loss: equal, inversely proportional to their "
                     "frequencies, or ``{label: weight}``."),
    "device": ("{'cpu', 'cuda'}", "Where the model trains (``'cuda'`` needs :func:`dlopt.cuda.is_available`)."),
}


# The arguments of the methods (fit, partial_fit, predict, score, ...): marker -> entries.
_X = """X : array-like of shape (n_samples, n_features)
    The features (float32 or float64; a C-contiguous array is not copied)."""
_WEIGHT = """sample_weight : array-like of shape (n_samples,), optional
    Weight of each row in the loss; ``None``: equal weights."""
_COMM = """comm : mpi4py.MPI.Intracomm, optional
    Train data-parallel over this communicator, each rank passing its own rows."""
_METHOD_ENTRIES = {
    "X": _X,
    "fit_options": f"{_WEIGHT}\n{_COMM}",
    "score_options": """sample_weight : array-like of shape (n_samples,), optional
    Weight of each row; ``None``: equal weights.
comm : mpi4py.MPI.Intracomm, optional
    Score over every rank's rows (each rank passing its own).""",
    "partial_fit_classifier": f"""Parameters
----------
{_X}
y : array-like of shape (n_samples,)
    The labels.
{_WEIGHT}
classes : array-like, optional
    Every label the model will see (required by the first call of an unfitted model).
{_COMM}

Returns
-------
self
    The model, trained one more epoch.""",
}


def _document_methods(cls: type) -> None:
    for attribute in vars(cls).values():
        doc = getattr(attribute, "__doc__", None) or ""
        used = {k: v for k, v in _METHOD_ENTRIES.items() if "{" + k + "}" in doc}
        if used and callable(attribute):
            fill(attribute, **used)


def document(*classes: type) -> None:
    """Fills the ``{parameters}`` line of each class's docstring from its signature, and the method
    argument markers of the classes and their bases."""
    for base in {b for cls in classes for b in cls.__mro__ if b.__module__ == cls.__module__}:
        _document_methods(base)
    for cls in classes:
        signature = inspect.signature(cls.__init__)
        lines = []
        for name, p in signature.parameters.items():
            if name == "self":
                continue
            kind, text = _ENTRIES[name]
            lines.append(f"{name} : {kind}, default {p.default!r}")
            lines += textwrap.wrap(text, width=96, initial_indent="    ", subsequent_indent="    ",
                                   break_long_words=False, break_on_hyphens=False)
        fill(cls, parameters="\n".join(lines))
