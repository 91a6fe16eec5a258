"""Linear models trained in dlopt's C++ core, with scikit-learn's estimator conventions.

The forward pass, the loss and its gradient run in C++ (Eigen) directly on ``X`` (a C-contiguous
float32/float64 array is used in place, never copied), and every update is a step of one of
:mod:`dlopt.optim`'s optimizers (the same C++ rules). Losses are means, so learning rates mean what they
mean in PyTorch and TensorFlow:

- :class:`LinearRegression`: ``mean((X @ w + b - y) ** 2)`` (or the closed form, ``solver="closed_form"``);
- :class:`LogisticRegression`: mean binary cross-entropy;
- :class:`SoftmaxRegression`: mean multiclass cross-entropy.

``optimizer="lbfgs"`` trains by full-batch L-BFGS instead (torch.optim.LBFGS's algorithm with its
strong-Wolfe line search, :class:`dlopt.optim.LBFGS`; not a registry rule), as scikit-learn's
``solver="lbfgs"``: with ``penalty="l2"`` and ``alpha = 1/(C·n_samples)`` the objective is scikit-learn's
``LogisticRegression(C=C)``'s. One epoch is one iteration (``epochs`` caps them; ``loss_curve_`` holds the
objective after each); ``lr`` is the first trial step of each line search (use 1, torch's default;
``LinearRegression``'s ``lr=None`` means 1 here); ``tol`` is torch's ``tolerance_change``;
``optimizer_params`` may set ``history_size`` (100), ``max_eval`` (epochs * 5 // 4), ``tolerance_grad``
(1e-7) and ``tolerance_change`` (1e-9). It is full-batch and smooth only: ``batch_size``,
``early_stopping``, ``lr_schedule``, penalty "l1"/"elasticnet", ``partial_fit`` and ``device="cuda"``
are refused.

The seed example, gradient descent on ``y = 2x + 1 + noise``:

>>> import numpy as np
>>> from dlopt.linear_model import LinearRegression
>>> x = np.linspace(-1, 1, 100)
>>> y = 2 * x + 1 + np.random.default_rng(0).normal(0, 0.1, 100)
>>> model = LinearRegression(optimizer="sgd", lr=0.1, epochs=1000, batch_size=None)
>>> model.fit(x[:, None], y).coef_.round(2), round(model.intercept_, 2)
(array([2.01]), 1.01)
"""

from __future__ import annotations

import functools
import inspect
import numbers
import sys
import warnings
from typing import Any

import numpy as np

from . import _core
from .optim.optimizer import STORAGE_KEYS

__all__ = ["LinearRegression", "LogisticRegression", "SoftmaxRegression", "NotFittedError", "ConvergenceWarning"]

try:  # scikit-learn's class when it is installed, so `warnings.filterwarnings(..., ConvergenceWarning)`
    # written for scikit-learn also catches dlopt's; scikit-learn is not a dependency of dlopt
    from sklearn.exceptions import ConvergenceWarning
except ImportError:
    class ConvergenceWarning(UserWarning):
        """Warned when a fit stops on its epoch limit before the loss stopped improving.

        scikit-learn's ``sklearn.exceptions.ConvergenceWarning`` is used instead when scikit-learn is
        installed, so filters written for scikit-learn also apply to dlopt's estimators.

        Examples
        --------
        >>> import warnings
        >>> from dlopt.linear_model import ConvergenceWarning
        >>> issubclass(ConvergenceWarning, UserWarning)
        True
        >>> with warnings.catch_warnings():  # silence it for a block of fits
        ...     warnings.simplefilter("ignore", ConvergenceWarning)
        """

#: What gradient training uses when ``optimizer`` / ``lr`` are None (LinearRegression's defaults).
DEFAULT_OPTIMIZER = "adam"
DEFAULT_LR = 0.01

#: The tolerance a fit with ``tol=None`` is judged by: it trains all ``epochs`` and then warns if the
#: loss still improved by more than this (absolute, per epoch) within the last ``n_iter_no_change`` epochs.
CONVERGENCE_TOL = 1e-4


class NotFittedError(ValueError, AttributeError):
    """Raised when a model is used before ``fit``.

    A subclass of ValueError and AttributeError, as scikit-learn's; when scikit-learn is loaded its
    ``sklearn.exceptions.NotFittedError`` is raised instead, so either is caught by ``except
    ValueError``.

    Examples
    --------
    >>> import numpy as np
    >>> from dlopt.linear_model import LinearRegression
    >>> try:
    ...     LinearRegression().predict(np.zeros((1, 2)))
    ... except ValueError as e:
    ...     print(type(e).__name__)
    NotFittedError
    """


def _not_fitted(estimator) -> Exception:
    msg = (f"This {type(estimator).__name__} instance is not fitted yet. Call 'fit' with appropriate "
           "arguments before using this estimator.")
    sk = sys.modules.get("sklearn.exceptions")  # sklearn's own class when sklearn is in use
    return (sk.NotFittedError if sk is not None else NotFittedError)(msg)


def _warn_column_vector() -> None:
    sk = sys.modules.get("sklearn.exceptions")
    category = sk.DataConversionWarning if sk is not None else UserWarning
    warnings.warn("A column-vector y was passed when a 1d array was expected. Please change the shape "
                  "of y to (n_samples,), for example using ravel().", category, stacklevel=3)


# ---- input checks -------------------------------------------------------------------------------

def _as_2d_float(X, what="X", dtype=None) -> np.ndarray:
    """X as a C-contiguous float32/float64 array: no copy when it already is one."""
    if X is None:
        raise ValueError(f"{what} is None: this estimator requires X and y to be passed")
    if hasattr(X, "tocsr") or hasattr(X, "toarray"):
        raise TypeError(f"Sparse data was passed for {what}, but dense data is required; dlopt does not "
                        "support sparse input. Use '.toarray()' to convert to a dense numpy array.")
    if hasattr(X, "iloc") or hasattr(X, "to_numpy"):
        X = X.to_numpy()
    if not isinstance(X, np.ndarray):
        X = np.asarray(X)
    if np.iscomplexobj(X):
        raise ValueError(f"Complex data not supported: {what} has dtype {X.dtype}")
    if X.ndim != 2:
        raise ValueError(f"Expected a 2D array for {what}, got {X.ndim}D array instead. Reshape your data "
                         "either using array.reshape(-1, 1) if your data has a single feature or "
                         "array.reshape(1, -1) if it contains a single sample.")
    if X.shape[0] == 0:
        raise ValueError(f"Found array with 0 sample(s) (shape={X.shape}) while a minimum of 1 is required.")
    if X.shape[1] == 0:
        raise ValueError(f"Found array with 0 feature(s) (shape={X.shape}) while a minimum of 1 is required.")
    if dtype is None:
        dtype = X.dtype if X.dtype in (np.float32, np.float64) else np.float64
    if X.dtype == object:
        X = X.astype(np.float64)  # raises TypeError naming a non-numeric cell type
    return np.ascontiguousarray(X, dtype=dtype)


def _check_finite(X: np.ndarray, what: str = "X") -> None:
    bad = ~np.isfinite(X)
    if bad.any():
        row, col = np.argwhere(bad)[0] if X.ndim == 2 else (np.flatnonzero(bad)[0], None)
        kind = "NaN" if np.isnan(X[(row, col) if col is not None else row]) else "infinity"
        where = f"row {row}" + (f", column {col}" if col is not None else "")
        raise ValueError(f"Input {what} contains {kind} ({where})")


def _as_1d(y, n: int, what: str = "y") -> np.ndarray:
    if y is None:
        raise ValueError("This estimator requires y to be passed, but the target y is None.")
    if hasattr(y, "to_numpy"):
        y = y.to_numpy()
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] == 1:
        _warn_column_vector()
        y = y.ravel()
    if y.ndim != 1:
        raise ValueError(f"{what}: expected a 1-D array of shape ({n},), got shape {y.shape}")
    if y.shape[0] != n:
        raise ValueError(f"Found input variables with inconsistent numbers of samples: X has {n}, "
                         f"{what} has {y.shape[0]}")
    return y


def _plateau_reached(values, tol: float, patience: int, maximize: bool) -> bool:
    """Whether the C++ trainer's plateau rule (``tol``, ``n_iter_no_change``) holds after the last value:
    none of the last ``patience`` values improved on the best before it by more than ``tol``."""
    best = -np.inf if maximize else np.inf
    no_improvement = 0
    for v in values:
        worse = v < best + tol if maximize else v > best - tol
        no_improvement = no_improvement + 1 if worse else 0
        best = max(best, v) if maximize else min(best, v)
    return no_improvement >= patience


def _sample_weight(sample_weight, n: int, dtype) -> np.ndarray | None:
    if sample_weight is None:
        return None
    if isinstance(sample_weight, numbers.Number):
        return np.full(n, sample_weight, dtype=dtype)
    sw = np.asarray(sample_weight.to_numpy() if hasattr(sample_weight, "to_numpy") else sample_weight)
    if sw.ndim != 1 or sw.shape[0] != n:
        raise ValueError(f"sample_weight.shape == {sw.shape}, expected ({n},)!")
    sw = np.ascontiguousarray(sw, dtype=dtype)
    _core.check_sample_weight(sw)  # the trainers' check and message, before anything changes
    return sw


def _seed(random_state) -> int:
    if random_state is None:
        return int(np.random.randint(0, 2**31 - 1))
    if isinstance(random_state, (numbers.Integral, np.integer)) and not isinstance(random_state, bool):
        return int(random_state) & 0xFFFFFFFFFFFFFFFF
    if isinstance(random_state, np.random.RandomState):
        return int(random_state.randint(0, 2**31 - 1))
    if isinstance(random_state, np.random.Generator):
        return int(random_state.integers(0, 2**63 - 1))
    raise ValueError(f"random_state: expected None, an int, a RandomState or a Generator, got {random_state!r}")


def _optimizer_params(params: dict | None) -> dict:
    """optimizer_params in the C++ Config's field names (``betas`` -> ``beta1``, ``beta2``, ... as the
    optimizers' param groups: one conversion, in C++), storage keys kept as they are."""
    out = dict(params or {})
    storage = {k: out[k] for k in STORAGE_KEYS if k in out}
    return {**_core.config_fields(out, "optimizer_params: "), **storage}


def _all_or_nothing(method):
    """A fit that raises leaves the estimator exactly as it was: attributes (coef_, classes_,
    feature_names_in_, the trainer, ...) and the contents of the coefficient arrays."""
    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        saved = dict(self.__dict__)
        arrays = {k: saved[k].copy() for k in ("_coef", "_intercept") if isinstance(saved.get(k), np.ndarray)}
        try:
            return method(self, *args, **kwargs)
        except BaseException:
            self.__dict__.clear()
            self.__dict__.update(saved)
            for k, values in arrays.items():
                np.copyto(saved[k], values)
            raise
    return wrapper


# ---- the estimators -----------------------------------------------------------------------------

class _LinearModel:
    """Shared machinery: parameters, the C++ trainer, fit / partial_fit / decision values."""

    _objective = "squared_error"

    def __init__(self, *, optimizer="adam", lr=0.01, lr_schedule=None, optimizer_params=None, epochs=1000,
                 batch_size=None, shuffle=True, shuffle_block=1, random_state=None, fit_intercept=True,
                 penalty=None, alpha=1e-4,
                 l1_ratio=0.15, tol=None, n_iter_no_change=5, early_stopping=False,
                 validation_fraction=0.1, verbose=0, warm_start=False, device="cpu"):
        self.optimizer = optimizer
        self.lr = lr
        self.lr_schedule = lr_schedule
        self.optimizer_params = optimizer_params
        self.epochs = epochs
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.shuffle_block = shuffle_block
        self.random_state = random_state
        self.fit_intercept = fit_intercept
        self.penalty = penalty
        self.alpha = alpha
        self.l1_ratio = l1_ratio
        self.tol = tol
        self.n_iter_no_change = n_iter_no_change
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.verbose = verbose
        self.warm_start = warm_start
        self.device = device

    # -- scikit-learn's parameter protocol ----------------------------------------------------------

    @classmethod
    def _param_names(cls) -> list[str]:
        sig = inspect.signature(cls.__init__)
        return sorted(p.name for p in sig.parameters.values() if p.name != "self" and p.kind == p.KEYWORD_ONLY)

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """The constructor's keyword arguments, as scikit-learn's ``get_params``.

        Parameters
        ----------
        deep : bool, default True
            Accepted for scikit-learn (the models hold no sub-estimators).

        Returns
        -------
        dict
            Keyword name -> current value.
        """
        return {name: getattr(self, name) for name in self._param_names()}

    def set_params(self, **params):
        """Sets constructor keywords; unknown names raise ValueError. Returns self."""
        valid = self._param_names()
        for key, value in params.items():
            if key not in valid:
                raise ValueError(f"Invalid parameter {key!r} for estimator {type(self).__name__}. "
                                 f"Valid parameters are: {valid!r}.")
            setattr(self, key, value)
        return self

    def __repr__(self) -> str:
        defaults = inspect.signature(type(self).__init__).parameters
        changed = []
        for k, v in self.get_params().items():
            d = defaults[k].default
            same = v is d or (type(v) is type(d) and not isinstance(v, np.ndarray) and v == d)
            if not same:
                changed.append(f"{k}={v!r}")
        return f"{type(self).__name__}({', '.join(changed)})"

    def __getstate__(self):
        state = dict(self.__dict__)
        for key in ("_trainer", "_coef_dev", "_intercept_dev"):  # C++ / device state is not pickled
            state.pop(key, None)
        return state

    def __setstate__(self, state):
        for key in ("_coef", "_intercept"):  # unpickled buffers may be read-only; dlopt writes them
            if key in state:
                state[key] = np.array(state[key], copy=True, order="C")
        self.__dict__.update(state)

    def __sklearn_tags__(self):
        from sklearn.utils import ClassifierTags, RegressorTags, Tags, TargetTags

        classifier = self._objective != "squared_error"
        tags = Tags(estimator_type="classifier" if classifier else "regressor",
                    target_tags=TargetTags(required=True), transformer_tags=None,
                    regressor_tags=None if classifier else RegressorTags(),
                    classifier_tags=ClassifierTags(multi_class=self._objective == "softmax")
                    if classifier else None)
        return tags

    # -- training ----------------------------------------------------------------------------------

    def _config(self, device: str = "cpu", dtype=np.float64) -> dict[str, Any]:
        """The trainer's config dict, checked by the trainers' own validator (C++: types, ranges and,
        for ``device="cuda"``, what the GPU trainer cannot run; one message per bad value, raised here
        before anything changes)."""
        optimizer = DEFAULT_OPTIMIZER if self.optimizer is None else self.optimizer
        # full-batch L-BFGS: lr is its first trial step, torch's 1
        lbfgs = isinstance(optimizer, str) and optimizer.lower() == "lbfgs"
        lr = (1.0 if lbfgs else DEFAULT_LR) if self.lr is None else self.lr
        optimizer_params = _optimizer_params(self.optimizer_params)
        config = dict(optimizer=optimizer, lr=lr, lr_schedule=self.lr_schedule, optimizer_params=optimizer_params,
                      epochs=self.epochs, batch_size=self.batch_size, shuffle=bool(self.shuffle),
                      shuffle_block=self.shuffle_block, fit_intercept=bool(self.fit_intercept),
                      penalty=self.penalty, alpha=self.alpha, l1_ratio=self.l1_ratio, tol=self.tol,
                      n_iter_no_change=self.n_iter_no_change, early_stopping=bool(self.early_stopping),
                      validation_fraction=self.validation_fraction)
        _core.check_train_config(config, device, np.dtype(dtype).name)
        known = {name.lower(): name for name in _core.optimizers()}.get(optimizer.lower())
        if known is not None:  # (an unknown name is reported by the trainer)
            _core.validate_config(known, {k: v for k, v in optimizer_params.items() if k not in STORAGE_KEYS})
        return config

    def _validate_X(self, X, reset: bool) -> np.ndarray:
        names = None
        if hasattr(X, "columns"):
            cols = list(X.columns)
            if cols and all(isinstance(c, str) for c in cols):
                names = np.asarray(cols, dtype=object)
        if reset:
            X = _as_2d_float(X)
            if names is not None:
                self.feature_names_in_ = names
            elif hasattr(self, "feature_names_in_"):
                del self.feature_names_in_
            return X
        fitted = getattr(self, "feature_names_in_", None)
        if names is not None and fitted is None:
            warnings.warn(f"X has feature names, but {type(self).__name__} was fitted without feature names",
                          UserWarning, stacklevel=3)
        elif names is None and fitted is not None:
            warnings.warn(f"X does not have valid feature names, but {type(self).__name__} was fitted with "
                          "feature names", UserWarning, stacklevel=3)
        elif names is not None and (len(names) != len(fitted) or np.any(names != fitted)):
            raise ValueError("The feature names should match those that were passed during fit.\n"
                             f"Fitted with: {list(fitted)}\nGot: {list(names)}")
        X = _as_2d_float(X, dtype=self.coef_.dtype)
        if X.shape[1] != self.n_features_in_:
            raise ValueError(f"X has {X.shape[1]} features, but {type(self).__name__} is expecting "
                             f"{self.n_features_in_} features as input.")
        return X

    def _targets(self, y, n: int, dtype, reset: bool) -> np.ndarray:
        """Targets as the C++ objective wants them (values, or class codes); sets classes_."""
        y = _as_1d(y, n)
        return np.ascontiguousarray(y, dtype=dtype)

    def _n_outputs(self) -> int:
        return 1

    def _new_parameters(self, n_features: int, dtype) -> None:
        """A first fit's zero coefficients (host arrays), its seed, and no trainer yet."""
        self.n_features_in_ = n_features
        k = self._n_outputs()
        self._coef = np.zeros((k, n_features), dtype=dtype)
        self._intercept = np.zeros(k, dtype=dtype)
        self._trainer = None
        self._seed_state = _seed(self.random_state)

    def _device(self) -> str:
        """The checked ``device`` keyword: ValueError for an unknown one, RuntimeError for "cuda"
        without a usable GPU (both before anything changes)."""
        device = self.device
        if not isinstance(device, str) or device.lower() not in ("cpu", "cuda"):
            raise ValueError(f"device: expected 'cpu' or 'cuda', got {device!r}")
        device = device.lower()
        if device == "cuda":
            if not _core.has_cuda:
                raise RuntimeError("device='cuda': dlopt was built without CUDA (no nvcc at build time)")
            if not _core.cuda_is_available():
                raise RuntimeError("device='cuda': no CUDA device is available "
                                   "(dlopt.cuda.is_available() is False); use device='cpu'")
        return device

    def _callback(self):
        progress = self.__dict__.get("_epoch_callback")  # set by the dlopt command's progress bar
        if not self.verbose and progress is None:
            return None

        def callback(epoch, loss, val):
            if progress is not None:
                progress(epoch, loss)
            if self.verbose:
                extra = "" if val != val else f", validation score: {val:.6g}"
                print(f"Epoch {epoch}, loss: {loss:.6g}{extra}", flush=True)
            return False
        return callback

    def _ready_trainer(self, cuda: bool) -> None:
        """The C++ trainer of this fit on its device: the current one, or a new one over the current
        parameters when there is none (first fit, unpickled) or it trained on the other device."""
        kind = _core.CudaLinearModel if cuda else _core.LinearModel
        if isinstance(getattr(self, "_trainer", None), kind):
            return
        if cuda:  # the parameters go to the device
            self._coef_dev = _core.DeviceArray.from_numpy(self._coef)
            self._intercept_dev = _core.DeviceArray.from_numpy(self._intercept)
            self._trainer = kind(self._objective, self._coef_dev, self._intercept_dev, self._config())
        else:
            self._coef_dev = self._intercept_dev = None
            self._trainer = kind(self._objective, self._coef, self._intercept, self._config())

    def _fit_X(self, X, first: bool, cuda: bool):
        """(X, n_samples, n_features, dtype): a device X (device="cuda", __cuda_array_interface__),
        checked and read in place, or a host X as _validate_X makes it."""
        if cuda and _core.is_device_array(X):
            shape, dtype, _ = _core.cuda_array_info(X)  # TypeError for a dtype other than float32/64
            if len(shape) != 2 or shape[0] == 0 or shape[1] == 0:
                raise ValueError(f"X: expected a non-empty 2-D device array, got shape {tuple(shape)}")
            if not first and (shape[1] != self.n_features_in_ or dtype != self._coef.dtype):
                raise ValueError(f"X has {shape[1]} features of dtype {dtype}, but {type(self).__name__} is "
                                 f"expecting {self.n_features_in_} of dtype {self._coef.dtype}")
            if first and hasattr(self, "feature_names_in_"):
                del self.feature_names_in_
            return X, int(shape[0]), int(shape[1]), dtype
        X = self._validate_X(X, reset=first)
        return X, X.shape[0], X.shape[1], X.dtype

    def _fit(self, X, y, sample_weight, partial: bool):
        """fit / partial_fit on either device. With device="cuda", NumPy X is copied to the device
        once per call and a device X is read in place; y and sample_weight are checked (and labels
        encoded) on the host, then copied; coef_ / intercept_ come back as NumPy."""
        cuda = self._device() == "cuda"
        first = not hasattr(self, "_coef") or not (partial or self.warm_start)
        X, n, d, dtype = self._fit_X(X, first, cuda)
        if cuda:  # what the GPU trainer cannot run (C++'s one check), before anything goes to the device
            self._config("cuda", dtype)
        if cuda:
            y, sample_weight = (_core.cuda_to_numpy(v) if v is not None and _core.is_device_array(v) else v
                                for v in (y, sample_weight))
        y = self._targets(y, n, dtype, reset=first)
        sw = self._weights(y, sample_weight, n, dtype)
        if cuda:
            if not _core.is_device_array(X):
                X = _core.DeviceArray.from_numpy(X)  # the one copy device="cuda" asks for
            y = _core.DeviceArray.from_numpy(y)
            sw = None if sw is None else _core.DeviceArray.from_numpy(sw)
        if first:
            self._new_parameters(d, dtype)
        self._ready_trainer(cuda)
        config = self._config()
        config["seed"] = self._seed_state + len(self._trainer.loss_curve)  # a fresh order per call
        self._trainer.set_config(config)
        try:
            if partial:
                self._trainer.partial_fit(X, y, sw)
                self.n_iter_ = getattr(self, "n_iter_", 0) + 1 if not first else 1
            else:
                self.n_iter_ = int(self._trainer.fit(X, y, sw, self._callback()))
        finally:
            if cuda:  # the device parameters are the truth (restored by the trainer after a divergence)
                self._coef = np.ascontiguousarray(self._coef_dev.to_numpy())
                self._intercept = np.ascontiguousarray(self._intercept_dev.to_numpy())
        self.loss_curve_ = list(self._trainer.loss_curve)
        self.lr_curve_ = list(self._trainer.lr_curve)
        self.validation_scores_ = list(self._trainer.validation_scores) if self.early_stopping else None
        self.t_ = int(self._trainer.steps)
        if not partial:
            self._warn_if_not_converged()
        return self

    def _warn_if_not_converged(self) -> None:
        """ConvergenceWarning when the fit ran all ``epochs`` and the plateau rule (``tol``, or
        CONVERGENCE_TOL when tol is None; the validation score with early_stopping) was not met."""
        epochs = int(self.epochs)
        if self.n_iter_ < epochs:
            return  # stopped by the plateau rule, early stopping or a callback
        patience = int(self.n_iter_no_change)
        if self.early_stopping and self.validation_scores_ is not None:
            tol = 0.0 if self.tol is None else float(self.tol)
            if _plateau_reached(self.validation_scores_, tol, patience, maximize=True):
                return
            what = f"the validation score was still improving (tol={tol:g})"
        else:
            tol = CONVERGENCE_TOL if self.tol is None else float(self.tol)
            if _plateau_reached(self.loss_curve_[-self.n_iter_:], tol, patience, maximize=False):
                return
            what = (f"the training loss was still improving by more than tol={tol:g} per epoch "
                    f"within the last n_iter_no_change={patience} epochs")
        warnings.warn(f"{type(self).__name__} stopped at the epoch limit (epochs={epochs}) but {what}; "
                      "the model may not have converged. Increase epochs, adjust lr, standardize X "
                      "(and y for regression), or set tol.", ConvergenceWarning, stacklevel=4)

    def _weights(self, y, sample_weight, n, dtype):
        return _sample_weight(sample_weight, n, dtype)

    @_all_or_nothing
    def fit(self, X, y, sample_weight=None, comm=None):
        """Trains on ``X`` (n_samples × n_features) and ``y``; returns self.

        With ``comm`` (an mpi4py communicator), data-parallel: each rank passes its own rows and every
        batch's gradient is summed across ranks, so all ranks end with the same coefficients
        (docs/distributed.md).

        With ``warm_start=True`` a second ``fit`` continues from the current coefficients and optimizer
        state; otherwise it starts from zeros. If the loss becomes inf or NaN (NaN/inf in ``X``, or a
        learning rate too large), fit raises ValueError and the coefficients are left as they were before
        the call (the optimizer's moments are reset).

        Parameters
        ----------
        {X}
        y : array-like of shape (n_samples,)
            The targets: values (regression) or class labels (classification).
        {fit_options}

        Returns
        -------
        self
            The fitted model.

        Raises
        ------
        ValueError
            Inputs of mismatched shapes, non-finite values, an invalid keyword, or a loss that became
            inf or NaN.
        """
        if comm is not None:
            from .distributed import _linear
            return _linear.fit(self, X, y, sample_weight, False, comm)
        return self._fit(X, y, sample_weight, partial=False)

    def _decision(self, X) -> np.ndarray:
        if not hasattr(self, "_coef"):
            raise _not_fitted(self)
        X = self._validate_X(X, reset=False)
        trainer = getattr(self, "_trainer", None)
        if not isinstance(trainer, _core.LinearModel):  # closed form, unpickled or GPU-trained: a
            # throw-away CPU model over the (host) coefficients
            trainer = _core.LinearModel(self._objective, self._coef, self._intercept, {})
        out = trainer.decision_function(X)
        if not np.all(np.isfinite(out)):
            _check_finite(X)  # names the bad cell
        return out

    @property
    def coef_(self):
        if not hasattr(self, "_coef"):
            raise AttributeError(f"{type(self).__name__} has no attribute 'coef_' before fit")
        return self._coef[0] if self._objective != "softmax" and self._coef_1d else self._coef

    _coef_1d = True

    @property
    def intercept_(self):
        if not hasattr(self, "_intercept"):
            raise AttributeError(f"{type(self).__name__} has no attribute 'intercept_' before fit")
        return self._intercept


class LinearRegression(_LinearModel):
    """Least-squares linear regression trained by a dlopt optimizer, or solved in closed form.

    Minimises ``mean((X @ coef_ + intercept_ - y) ** 2) + alpha * R(coef_)``.

    ``solver`` chooses how:

    - ``"auto"`` (the default): the closed form, unless gradient training is asked for (any of
      ``optimizer``, ``lr``, ``lr_schedule``, ``optimizer_params``, ``batch_size`` is given) or needed
      (``penalty`` "l1" or "elasticnet", ``early_stopping=True``, ``device="cuda"``). So
      ``LinearRegression()`` gives ordinary least squares with no tuning, and
      ``LinearRegression(optimizer="sgd", lr=0.1)`` trains by SGD. The fitted ``solver_`` says which ran.
    - ``"closed_form"``: solves the normal equations (Cholesky of XᵀX in double precision, minimum-norm
      solution for rank-deficient X; penalty None or "l2" only; ``epochs`` and the optimizer keywords
      are not used).
    - ``"gradient"``: the optimizer named by ``optimizer`` (any :mod:`dlopt.optim` name,
      case-insensitive; None means "adam") at learning rate ``lr`` (None means 0.01) for ``epochs``
      passes over the data: full-batch gradient descent when ``batch_size`` is None, mini-batch SGD with
      the rows reshuffled every epoch otherwise. Gradient training is sensitive to the scale of X and y:
      standardize both (e.g. ``StandardScaler`` for X). A fit that runs all ``epochs`` while the loss is
      still improving warns with ``ConvergenceWarning`` (see ``tol``).

    Parameters follow scikit-learn's SGD estimators: ``penalty`` (None, "l2", "l1", "elasticnet"),
    ``alpha``, ``l1_ratio``, ``tol`` and ``n_iter_no_change`` (stop when the epoch loss has not improved
    by ``tol`` for that many epochs; ``tol=None``, the default, trains all ``epochs``; either way a fit
    that ends on the epoch limit while the loss still improves by more than ``tol`` (or
    ``CONVERGENCE_TOL`` = 1e-4 when tol is None) warns with ``ConvergenceWarning``),
    ``shuffle_block`` (1: shuffle single rows; t > 1: shuffle blocks of t consecutive rows, which reads
    memory sequentially and is faster on large data, at the price of rows of a block always sharing a batch),
    ``early_stopping`` with ``validation_fraction`` (stop on the validation R², keep the best
    coefficients), ``warm_start``, ``random_state`` (the shuffling and the validation split).

    ``lr_schedule`` varies the learning rate by epoch with one of the closed-form schedules of
    ``dlopt/schedule.hpp`` (the same values as torch.optim.lr_scheduler): None (constant ``lr``), a name
    (``"cosine"``, with defaults) or a dict ``{"name": "cosine", "T_max": 100, "eta_min": 1e-4}`` with
    torch's keyword names. The schedule counts epochs, not optimizer steps: epoch ``e`` (0-based) runs
    with ``schedule.lr(e)``, as a torch loop calling ``scheduler.step()`` once per epoch, whatever the
    batch size. ``lr`` is the schedule's base lr. Names and defaults (L = ``epochs``): "constant";
    "constant_factor" (factor=1/3, total_iters=5); "step" (step_size=max(1, L//3), gamma=0.1);
    "multistep" (milestones=[L//2, 3L//4], gamma=0.1); "exponential" (gamma=0.01**(1/L));
    "linear" or "linear_warmup" (torch LinearLR: start_factor=1/3, end_factor=1, total_iters=5);
    "polynomial" (total_iters=L, power=1); "cosine" (T_max=L, eta_min=0); "warmup_cosine"
    (warmup_steps=L//10, start_factor=0, T_max=L-warmup_steps, eta_min=0); "wsd" (warmup_steps=L//10,
    decay_steps=L//5, stable_steps=the rest, final_lr_factor=0, warmup_start_factor=0, decay="linear");
    "one_cycle" or "onecycle" (max_lr=lr, total_steps=L, pct_start=0.3, anneal_strategy="cos",
    div_factor=25, final_div_factor=1e4, three_phase=False). ``warm_start`` fits and ``partial_fit``
    continue the schedule from the epochs already trained. An unknown name or key, or an invalid value,
    raises ValueError naming it.

    Attributes: ``coef_`` (n_features,), ``intercept_`` (float), ``n_iter_`` (epochs run by the last fit),
    ``loss_curve_`` (training loss of every epoch), ``lr_curve_`` (the lr of every epoch), ``t_``
    (optimizer steps), ``n_features_in_``, ``solver_`` ("closed_form" or "gradient").

    .. warning:: With ``penalty="l1"`` or ``"elasticnet"`` the L1 term is followed by its subgradient
       (sign(w)), not by scikit-learn's truncated-gradient update, so coefficients get small but not
       exactly zero.

    Parameters
    ----------
    {parameters}

    Examples
    --------
    >>> import numpy as np
    >>> X = np.random.default_rng(0).normal(size=(200, 3))
    >>> y = X @ np.array([1.0, -2.0, 0.5]) + 3.0
    >>> LinearRegression(solver="closed_form").fit(X, y).coef_.round(6)
    array([ 1. , -2. ,  0.5])
    """

    _objective = "squared_error"

    def __init__(self, *, solver="auto", optimizer=None, lr=None, lr_schedule=None, optimizer_params=None,
                 epochs=1000,
                 batch_size=None, shuffle=True, shuffle_block=1, random_state=None, fit_intercept=True, penalty=None,
                 alpha=1e-4, l1_ratio=0.15, tol=None, n_iter_no_change=5, early_stopping=False,
                 validation_fraction=0.1, verbose=0, warm_start=False, device="cpu"):
        super().__init__(optimizer=optimizer, lr=lr, lr_schedule=lr_schedule,
                         optimizer_params=optimizer_params, epochs=epochs,
                         batch_size=batch_size, shuffle=shuffle, shuffle_block=shuffle_block,
                         random_state=random_state,
                         fit_intercept=fit_intercept, penalty=penalty, alpha=alpha, l1_ratio=l1_ratio, tol=tol,
                         n_iter_no_change=n_iter_no_change, early_stopping=early_stopping,
                         validation_fraction=validation_fraction, verbose=verbose, warm_start=warm_start,
                         device=device)
        self.solver = solver

    def _resolved_solver(self) -> str:
        """The solver ``fit`` uses: ``solver``, or for "auto" the closed form unless gradient training
        is asked for (optimizer, lr, lr_schedule, optimizer_params or batch_size given) or needed
        (penalty "l1"/"elasticnet", early_stopping, device="cuda")."""
        if self.solver in ("gradient", "closed_form"):
            return self.solver
        if self.solver != "auto":
            raise ValueError(f"solver: expected 'auto', 'gradient' or 'closed_form', got {self.solver!r}")
        asked = any(v is not None for v in (self.optimizer, self.lr, self.lr_schedule, self.optimizer_params,
                                            self.batch_size))
        needed = (self.penalty not in (None, "l2") or self.early_stopping
                  or (isinstance(self.device, str) and self.device.lower() == "cuda"))
        return "gradient" if asked or needed else "closed_form"

    @_all_or_nothing
    def fit(self, X, y, sample_weight=None, comm=None):
        """Fits the model to ``X`` (n_samples × n_features) and ``y``; returns self.

        The solver is ``solver`` ("auto": the closed form unless an optimizer setting is given, see the
        class docstring); ``solver_`` says which one ran. Gradient training warns with ConvergenceWarning
        when it stops on the epoch limit before the loss stopped improving.

        Parameters
        ----------
        {X}
        y : array-like of shape (n_samples,)
            The targets.
        {fit_options}

        Returns
        -------
        self
            The fitted model.

        Raises
        ------
        ValueError
            Inputs of mismatched shapes or non-finite values, an invalid keyword, or the closed form
            asked for with an L1 penalty, a GPU or ``comm``.
        """
        if comm is not None:  # data-parallel: gradient training ("auto" included)
            if self.solver == "closed_form":
                raise ValueError("comm: data-parallel training uses solver='gradient' (or 'auto')")
            self.solver_ = "gradient"
            return super().fit(X, y, sample_weight, comm=comm)
        self.solver_ = self._resolved_solver()
        if self.solver_ == "gradient":
            return super().fit(X, y, sample_weight)
        if self._device() != "cpu":
            raise ValueError("solver='closed_form' runs on the CPU: use device='cpu' (or solver='gradient')")
        if self.penalty not in (None, "l2"):
            raise ValueError(f"solver='closed_form' supports penalty None or 'l2', got {self.penalty!r}")
        X = self._validate_X(X, reset=True)
        y = self._targets(y, X.shape[0], X.dtype, reset=True)
        _check_finite(y, "y")
        sw = _sample_weight(sample_weight, X.shape[0], X.dtype)
        coef = np.zeros(X.shape[1], dtype=X.dtype)
        intercept = np.zeros(1, dtype=X.dtype)
        # Every keyword is checked, whichever solver runs: a bad value is an error, not silently unused.
        _core.LinearModel(self._objective, coef[None, :], intercept, self._config())
        alpha = float(self.alpha) if self.penalty == "l2" else 0.0
        self.rank_deficient_ = bool(_core.solve_least_squares(X, y, sw, bool(self.fit_intercept), alpha,
                                                              coef, intercept))
        self.n_features_in_ = X.shape[1]
        self._coef, self._intercept = coef[None, :], intercept
        self._trainer = None
        self._seed_state = _seed(self.random_state)
        self.n_iter_, self.t_, self.loss_curve_, self.validation_scores_ = 1, 0, [], None
        self.lr_curve_ = []
        return self

    @_all_or_nothing
    def partial_fit(self, X, y, sample_weight=None, comm=None):
        """One epoch of gradient training over (X, y), continuing from the current coefficients and
        optimizer state (``optimizer``/``lr`` None mean "adam" at 0.01); ``comm``: as in ``fit``.

        Parameters
        ----------
        {X}
        y : array-like of shape (n_samples,)
            The targets.
        {fit_options}

        Returns
        -------
        self
            The model, trained one more epoch.
        """
        if comm is not None:
            from .distributed import _linear
            _linear.fit(self, X, y, sample_weight, True, comm)
        else:
            self._fit(X, y, sample_weight, partial=True)
        self.solver_ = "gradient"
        return self

    @property
    def intercept_(self):
        if not hasattr(self, "_intercept"):
            raise AttributeError("LinearRegression has no attribute 'intercept_' before fit")
        return float(self._intercept[0])

    def predict(self, X) -> np.ndarray:
        """``X @ coef_ + intercept_``.

        Parameters
        ----------
        {X}

        Returns
        -------
        numpy.ndarray of shape (n_samples,)
            The predictions.

        Raises
        ------
        NotFittedError
            The model has not been fitted.
        """
        return self._decision(X)[:, 0]

    def score(self, X, y, sample_weight=None, comm=None) -> float:
        """R² of the predictions (scikit-learn's RegressorMixin.score); with ``comm``, over every rank's rows.

        Parameters
        ----------
        {X}
        y : array-like of shape (n_samples,)
            The true targets.
        {score_options}

        Returns
        -------
        float
            The coefficient of determination of ``predict(X)``.
        """
        from .metrics import r2_score

        if comm is not None:
            from .distributed import _linear
            return _linear.score(self, X, y, sample_weight, comm)

        return r2_score(y, self.predict(X), sample_weight=sample_weight)


class _Classifier(_LinearModel):
    def __init__(self, *, optimizer="adam", lr=0.01, lr_schedule=None, optimizer_params=None, epochs=1000,
                 batch_size=None, shuffle=True, shuffle_block=1, random_state=None, fit_intercept=True,
                 penalty=None, alpha=1e-4,
                 l1_ratio=0.15, tol=None, n_iter_no_change=5, early_stopping=False,
                 validation_fraction=0.1, verbose=0, warm_start=False, class_weight=None, device="cpu"):
        super().__init__(optimizer=optimizer, lr=lr, lr_schedule=lr_schedule,
                         optimizer_params=optimizer_params, epochs=epochs,
                         batch_size=batch_size, shuffle=shuffle, shuffle_block=shuffle_block,
                         random_state=random_state,
                         fit_intercept=fit_intercept, penalty=penalty, alpha=alpha, l1_ratio=l1_ratio, tol=tol,
                         n_iter_no_change=n_iter_no_change, early_stopping=early_stopping,
                         validation_fraction=validation_fraction, verbose=verbose, warm_start=warm_start,
                         device=device)
        self.class_weight = class_weight

    def _targets(self, y, n, dtype, reset):
        y = _as_1d(y, n)
        if y.dtype.kind == "f":
            if not np.all(np.isfinite(y)):
                _check_finite(y, "y")
            if np.any(y != np.round(y)):
                raise ValueError("Unknown label type: continuous. A classifier needs class labels; use "
                                 "LinearRegression for a continuous target.")
        if y.dtype == object:
            try:
                y = y.astype(str) if any(isinstance(v, str) for v in y) else y.astype(np.float64)
            except (TypeError, ValueError) as e:
                raise ValueError(f"Unknown label type: {e}") from None
        if reset:
            classes = np.unique(y)
            self._check_classes(classes)
            self.classes_ = classes
        codes = np.searchsorted(self.classes_, y)
        codes = np.clip(codes, 0, len(self.classes_) - 1)
        if np.any(self.classes_[codes] != y):
            unseen = np.unique(y[self.classes_[codes] != y])
            raise ValueError(f"y contains labels not seen in the first fit: {unseen.tolist()}")
        return np.ascontiguousarray(codes, dtype=dtype)

    def _weights(self, codes, sample_weight, n, dtype):
        sw = _sample_weight(sample_weight, n, dtype)
        cw = self.class_weight
        if cw is None:
            return sw
        k = len(self.classes_)
        if cw == "balanced":
            counts = np.bincount(codes.astype(np.int64), minlength=k)
            per_class = np.where(counts > 0, n / (k * np.maximum(counts, 1)), 0.0)
        elif isinstance(cw, dict):
            per_class = np.ones(k)
            for label, weight in cw.items():
                hits = np.flatnonzero(self.classes_ == label)
                if hits.size == 0:
                    raise ValueError(f"class_weight: label {label!r} is not in classes_ {self.classes_.tolist()}")
                per_class[hits[0]] = weight
        else:
            raise ValueError(f"class_weight: expected None, 'balanced' or a dict, got {cw!r}")
        w = per_class[codes.astype(np.int64)].astype(dtype)
        return np.ascontiguousarray(w if sw is None else w * sw)

    def predict(self, X) -> np.ndarray:
        """The most probable class of every row.

        Parameters
        ----------
        {X}

        Returns
        -------
        numpy.ndarray of shape (n_samples,)
            Labels from ``classes_``.

        Raises
        ------
        NotFittedError
            The model has not been fitted.
        """
        scores = self._decision(X)
        idx = (scores[:, 0] > 0).astype(np.int64) if scores.shape[1] == 1 else scores.argmax(axis=1)
        return self.classes_[idx]

    def score(self, X, y, sample_weight=None, comm=None) -> float:
        """Accuracy of the predictions (scikit-learn's ClassifierMixin.score); with ``comm``, over every rank's rows.

        Parameters
        ----------
        {X}
        y : array-like of shape (n_samples,)
            The true labels.
        {score_options}

        Returns
        -------
        float
            The fraction of rows whose predicted class is the true one.
        """
        from .metrics import accuracy_score

        if comm is not None:
            from .distributed import _linear
            return _linear.score(self, X, y, sample_weight, comm)

        return accuracy_score(y, self.predict(X), sample_weight=sample_weight)


class LogisticRegression(_Classifier):
    """Binary logistic regression trained by a dlopt optimizer on the mean binary cross-entropy.

    ``P(y = classes_[1] | x) = sigmoid(x @ coef_[0] + intercept_[0])``. Keywords as
    :class:`LinearRegression` plus ``class_weight`` (None, "balanced" or {label: weight}). Fitted
    ``classes_`` (the two labels), ``coef_`` (1, n_features), ``intercept_`` (1,).

    .. warning:: Binary only: use :class:`SoftmaxRegression` for three or more classes.

    Parameters
    ----------
    {parameters}

    Examples
    --------
    >>> import numpy as np
    >>> X = np.array([[-2.0], [-1.0], [1.0], [2.0]])
    >>> LogisticRegression(lr=0.1, epochs=200).fit(X, ["no", "no", "yes", "yes"]).predict([[-3.0], [3.0]])
    array(['no', 'yes'], dtype='<U3')
    """

    _objective = "logistic"
    _coef_1d = False

    def _check_classes(self, classes):
        if len(classes) < 2:
            raise ValueError("This model needs samples of at least 2 classes in the data, but the data "
                             f"contains only one class: {classes[0]!r}")
        if len(classes) > 2:
            raise ValueError("Only binary classification is supported. The type of the target is "
                             f"multiclass ({len(classes)} classes); use SoftmaxRegression.")

    def decision_function(self, X) -> np.ndarray:
        """``X @ coef_[0] + intercept_[0]``: positive means classes_[1].

        Parameters
        ----------
        {X}

        Returns
        -------
        numpy.ndarray of shape (n_samples,)
            The logit of every row.
        """
        return self._decision(X)[:, 0]

    def predict_proba(self, X) -> np.ndarray:
        """Probabilities of classes_[0] and classes_[1], shape (n_samples, 2).

        Parameters
        ----------
        {X}

        Returns
        -------
        numpy.ndarray of shape (n_samples, 2)
            Each row's probabilities, summing to 1.
        """
        z = self.decision_function(X)
        p = np.empty_like(z)
        pos = z >= 0
        p[pos] = 1 / (1 + np.exp(-z[pos]))
        e = np.exp(z[~pos])
        p[~pos] = e / (1 + e)
        return np.stack([1 - p, p], axis=1)

    @_all_or_nothing
    def partial_fit(self, X, y, sample_weight=None, classes=None, comm=None):
        """One epoch; the first call needs ``classes`` (all labels) unless the model was fitted (with
        ``comm``, data-parallel as in ``fit``: the ranks' labels make the classes by default).

        {partial_fit_classifier}
        """
        if comm is not None:
            from .distributed import _linear
            return _linear.fit(self, X, y, sample_weight, True, comm, classes)
        return _partial_fit_classifier(self, X, y, sample_weight, classes)


class SoftmaxRegression(_Classifier):
    """Multinomial (softmax) logistic regression trained by a dlopt optimizer on the mean cross-entropy.

    ``P(y = classes_[k] | x) = softmax(coef_ @ x + intercept_)[k]``. Keywords as :class:`LinearRegression`
    plus ``class_weight``. Fitted ``classes_``, ``coef_`` (n_classes, n_features), ``intercept_`` (n_classes,).
    Two classes are handled too (two outputs, not the single logit of LogisticRegression).

    Parameters
    ----------
    {parameters}

    Examples
    --------
    >>> import numpy as np
    >>> X = np.array([[0.0, 0.0], [5.0, 0.0], [0.0, 5.0]]).repeat(5, axis=0)
    >>> SoftmaxRegression(lr=0.1, epochs=300).fit(X, [0] * 5 + [1] * 5 + [2] * 5).predict([[4.0, 0.0]])
    array([1])
    """

    _objective = "softmax"
    _coef_1d = False

    def _check_classes(self, classes):
        if len(classes) < 2:
            raise ValueError("This model needs samples of at least 2 classes in the data, but the data "
                             f"contains only one class: {classes[0]!r}")

    def _n_outputs(self):
        return len(self.classes_)

    def decision_function(self, X) -> np.ndarray:
        """Logits ``X @ coef_.T + intercept_``, shape (n_samples, n_classes); with two classes, as
        scikit-learn, the 1-D difference of the two logits (positive means classes_[1]).

        Parameters
        ----------
        {X}

        Returns
        -------
        numpy.ndarray of shape (n_samples, n_classes) or (n_samples,)
            The logits.
        """
        z = self._decision(X)
        return z[:, 1] - z[:, 0] if z.shape[1] == 2 else z

    def predict_proba(self, X) -> np.ndarray:
        """Class probabilities, shape (n_samples, n_classes).

        Parameters
        ----------
        {X}

        Returns
        -------
        numpy.ndarray of shape (n_samples, n_classes)
            Each row's probabilities (softmax of the logits), in ``classes_`` order.
        """
        z = self._decision(X)
        z = z - z.max(axis=1, keepdims=True)
        e = np.exp(z)
        return e / e.sum(axis=1, keepdims=True)

    @_all_or_nothing
    def partial_fit(self, X, y, sample_weight=None, classes=None, comm=None):
        """One epoch; the first call needs ``classes`` (all labels) unless the model was fitted (with
        ``comm``, data-parallel as in ``fit``: the ranks' labels make the classes by default).

        {partial_fit_classifier}
        """
        if comm is not None:
            from .distributed import _linear
            return _linear.fit(self, X, y, sample_weight, True, comm, classes)
        return _partial_fit_classifier(self, X, y, sample_weight, classes)


def _partial_fit_classifier(model, X, y, sample_weight, classes):
    """A classifier's partial_fit on either device: the first call takes ``classes`` and makes the
    parameters; every call is then one epoch of ``_fit``."""
    if not hasattr(model, "_coef"):
        if classes is None:
            raise ValueError("classes must be passed on the first call to partial_fit.")
        classes = np.unique(np.asarray(classes))
        model._check_classes(classes)
        _, _, d, dtype = model._fit_X(X, True, model._device() == "cuda")
        model.classes_ = classes
        model._new_parameters(d, dtype)
        model.n_iter_ = 0
    elif classes is not None and not np.array_equal(np.unique(np.asarray(classes)), model.classes_):
        raise ValueError(f"classes {np.unique(classes).tolist()} differ from the first call's "
                         f"{model.classes_.tolist()}")
    return model._fit(X, y, sample_weight, partial=True)
