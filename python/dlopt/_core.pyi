"""
dlopt's compiled core; use the dlopt package, not this module.
"""
from __future__ import annotations
import collections.abc
import numpy
import numpy.typing
import typing
__all__: list[str] = ['CheckpointError', 'CudaEventTimer', 'CudaLinearModel', 'DeviceArray', 'LBFGS', 'LinearModel', 'NonFiniteNorm', 'SHARD_ALIGN', 'StepPlan', 'accumulate', 'accuracy_score', 'bf16_matmul_library', 'check_sample_weight', 'check_storage_options', 'check_train_config', 'checkpoint_itemsize', 'clip_grad_norm', 'clip_grad_value', 'clip_grads_with_norm', 'config_fields', 'confusion_matrix', 'cpu_kernels', 'cuda_array_info', 'cuda_array_spec', 'cuda_copy_async', 'cuda_device_count', 'cuda_device_name', 'cuda_is_available', 'cuda_synchronize', 'cuda_to_numpy', 'defaults', 'dequantize', 'ema_update', 'get_num_threads', 'has_cuda', 'is_device_array', 'log_loss', 'lookahead_update', 'mean_absolute_error', 'mean_squared_error', 'one_cycle_anneal', 'one_cycle_locate', 'one_cycle_phases', 'optimizers', 'precision_recall_f1', 'r2_score', 'read_checkpoint', 'require_distinct', 'require_finite_norm', 'runs_on_device', 'scalar_names', 'scale', 'schedule_free_move', 'schedule_lr', 'schedule_lrs', 'set_num_threads', 'shard_bounds', 'slot_names', 'slot_shapes', 'solve_least_squares', 'splits_elementwise', 'state_layout', 'storage_keys', 'total_norm', 'validate_config', 'write_checkpoint']
class StepPlan:
    """
    An optimizer's bound step: caches its checked arguments between steps.
    """
    def __init__(self, name: str) -> None:
        ...
    def check(self, param_groups: typing.Any, state: typing.Any) -> None:
        """
        The checks of a step on param_groups and state (dtypes, shapes, storage, aliasing), changing nothing.
        """
    def step(self, param_groups: typing.Any, state: typing.Any, grads: typing.Any) -> None:
        """
        One fused step over param_groups with `grads`, updating `state` in place.
        """
class CheckpointError(ValueError):
    """
    Raised for a checkpoint that cannot be read back as written.
    
    A truncated, corrupted (checksum), wrong-version or mismatched checkpoint (an optimizer or schedule
    of another kind or shape than the one it is loaded into). A subclass of ValueError. A failed system
    call (a missing file, no permission) raises the OSError of its errno instead.
    
    Examples
    --------
    >>> import os, tempfile
    >>> import dlopt
    >>> path = os.path.join(tempfile.mkdtemp(), "broken.dlopt")
    >>> with open(path, "wb") as f:
    ...     _ = f.write(b"not a checkpoint")
    >>> try:
    ...     dlopt.load(path)
    ... except dlopt.CheckpointError as e:
    ...     print("CheckpointError")
    CheckpointError
    """
class NonFiniteNorm(RuntimeError):
    pass
class CudaEventTimer:
    """
    GPU time of the work enqueued on the legacy default stream (benchmarks).
    """
    def __init__(self) -> None:
        ...
    def start(self) -> None:
        ...
    def stop_ms(self) -> float:
        """
        Waits for the work enqueued since start(); returns its GPU time in milliseconds.
        """
class DeviceArray:
    """
    CUDA device memory owned by dlopt.
    
    The optimizer state of device parameters is kept in these (``state_dict()`` returns NumPy copies).
    A DeviceArray exposes ``__cuda_array_interface__`` (version 3, the legacy default stream), so
    ``cupy.asarray(a)`` or ``torch.as_tensor(a, device="cuda")`` wrap it without a copy. There is no
    public constructor: make one with :meth:`from_numpy`.
    
    It holds float32, float64, float16, bfloat16 (``ml_dtypes.bfloat16``; the interface has no typestr
    for it and says ``"<V2"``, two opaque bytes, so other libraries see only raw 16-bit elements), int8
    or uint8 (the codes of 8-bit state, whose block scales are a float32 DeviceArray of their own).
    
    Attributes
    ----------
    shape : tuple of int
        The array's shape (C-contiguous).
    dtype : numpy.dtype
        float32, float64, float16, bfloat16, int8 or uint8.
    size : int
        Number of elements.
    nbytes : int
        Bytes of device memory.
    ndim : int
        Number of dimensions.
    device : int
        The CUDA device index.
    
    Examples
    --------
    >>> import numpy as np
    >>> import dlopt
    >>> def round_trip(x):
    ...     if not dlopt.cuda.is_available():
    ...         return x.copy()  # no GPU here: what the round trip gives
    ...     return dlopt.cuda.DeviceArray.from_numpy(x).to_numpy()
    >>> round_trip(np.arange(3, dtype=np.float32))
    array([0., 1., 2.], dtype=float32)
    """
    @staticmethod
    def from_numpy(array: typing.Any, device: typing.SupportsInt | typing.SupportsIndex = 0) -> DeviceArray:
        """
        A device copy of a NumPy array.
        
        Parameters
        ----------
        array : numpy.ndarray
            A C-contiguous array of one of the formats above.
        device : int, default 0
            The CUDA device to copy it to.
        
        Returns
        -------
        DeviceArray
            The copy, in memory owned by dlopt.
        
        Raises
        ------
        TypeError
            If `array` is not an array of one of those dtypes.
        ValueError
            If it is not C-contiguous or not aligned.
        RuntimeError
            If dlopt was built without CUDA or no GPU is present.
        """
    def __len__(self) -> int:
        ...
    def __repr__(self) -> str:
        ...
    def to_numpy(self) -> numpy.ndarray[typing.Any, numpy.dtype[typing.Any]]:
        """
        A NumPy copy (waits for the steps enqueued before it).
        """
    @property
    def __cuda_array_interface__(self) -> dict:
        ...
    @property
    def device(self) -> int:
        ...
    @property
    def dtype(self) -> numpy.dtype[typing.Any]:
        ...
    @property
    def nbytes(self) -> int:
        ...
    @property
    def ndim(self) -> int:
        ...
    @property
    def shape(self) -> tuple:
        ...
    @property
    def size(self) -> int:
        ...
class LinearModel:
    """
    A linear model trained in C++ over caller-owned coef (K, d) and intercept (K,) arrays, updated in place. Use dlopt.linear_model instead.
    """
    def __init__(self, objective: str, coef: typing.Any, intercept: typing.Any, config: dict) -> None:
        ...
    def decision_function(self, X: typing.Any) -> numpy.ndarray[typing.Any, numpy.dtype[typing.Any]]:
        ...
    def fit(self, X: typing.Any, y: typing.Any, sample_weight: typing.Any = None, callback: typing.Any = None) -> int:
        """
        Trains for up to config['epochs'] epochs; callback(epoch, loss, val_score) -> bool stops when it returns True. Returns the epochs run.
        """
    def loss(self, X: typing.Any, y: typing.Any, sample_weight: typing.Any = None) -> float:
        ...
    def partial_fit(self, X: typing.Any, y: typing.Any, sample_weight: typing.Any = None) -> None:
        """
        One epoch with the current optimizer state.
        """
    def reset_optimizer(self) -> None:
        ...
    def set_batch_reducer(self, fn: typing.Any) -> None:
        """
        Data-parallel training: fn(grad, sums) replaces a batch's summed gradient and [loss, weight] by their sums over every worker, in place (dlopt.distributed); None removes it.
        """
    def set_config(self, config: dict) -> None:
        ...
    @property
    def loss_curve(self) -> list[float]:
        ...
    @property
    def lr_curve(self) -> list[float]:
        ...
    @property
    def steps(self) -> int:
        ...
    @property
    def validation_scores(self) -> list[float]:
        ...
class CudaLinearModel:
    """
    A linear model trained on the GPU over device coef (K, d) and intercept (K,) arrays, updated in place. Use dlopt.linear_model with device='cuda' instead.
    """
    def __init__(self, objective: str, coef: typing.Any, intercept: typing.Any, config: dict) -> None:
        ...
    def fit(self, X: typing.Any, y: typing.Any, sample_weight: typing.Any = None, callback: typing.Any = None) -> int:
        ...
    def loss(self, X: typing.Any, y: typing.Any, sample_weight: typing.Any = None) -> float:
        ...
    def partial_fit(self, X: typing.Any, y: typing.Any, sample_weight: typing.Any = None) -> None:
        ...
    def reset_optimizer(self) -> None:
        ...
    def set_config(self, config: dict) -> None:
        ...
    @property
    def loss_curve(self) -> list[float]:
        ...
    @property
    def lr_curve(self) -> list[float]:
        ...
    @property
    def steps(self) -> int:
        ...
    @property
    def validation_scores(self) -> list[float]:
        ...
class LBFGS:
    """
    dlopt::LBFGS over NumPy parameter arrays (float32 or float64, updated in place). Use dlopt.optim.LBFGS instead.
    """
    @staticmethod
    def check_options(options: dict) -> None:
        """
        Raises TypeError / ValueError for invalid LBFGS options.
        """
    def __init__(self, params: list) -> None:
        ...
    def load_state(self, options: dict, func_evals: typing.SupportsInt | typing.SupportsIndex, n_iter: typing.SupportsInt | typing.SupportsIndex, history: typing.Any, al: typing.Any) -> None:
        """
        Replaces the state (the tuple state() returns); checked first.
        """
    def state(self) -> tuple:
        """
        (func_evals, n_iter, history | None, al | None) with history = (d, t, t_is_tensor, old_dirs, old_stps, ro, H_diag, H_diag_is_tensor, prev_flat_grad, prev_loss); copies.
        """
    def step(self, closure: typing.Any, options: dict) -> typing.Any:
        """
        One torch LBFGS step; closure() returns (loss, grads). Returns the first loss object.
        """
def accumulate(buffers: typing.Any, grads: typing.Any, overwrite: bool) -> None:
    """
    buffers[k] = grads[k] (overwrite) or buffers[k] += grads[k], in one fused pass.
    """
def accuracy_score(y_true: typing.Annotated[numpy.typing.ArrayLike, numpy.int64], y_pred: typing.Annotated[numpy.typing.ArrayLike, numpy.int64], sample_weight: typing.Annotated[numpy.typing.ArrayLike, numpy.float64] | None = None) -> float:
    ...
def bf16_matmul_library() -> str:
    """
    The library Muon's bfloat16 Newton–Schulz products (``ns_dtype='bfloat16'``) run with.
    
    Found at build time (CMake's DLOPT_ONEDNN, AUTO by default: Debian/Ubuntu's libdnnl-dev).
    
    Returns
    -------
    str
        ``'oneDNN X.Y.Z'``, or ``'none'`` (a build without it: Eigen's float32 GEMM, each product
        rounded to bfloat16; the same roundings, slower).
    
    Examples
    --------
    >>> import dlopt
    >>> dlopt.bf16_matmul_library().startswith(('oneDNN', 'none'))
    True
    """
def check_sample_weight(sample_weight: typing.Any) -> None:
    """
    The linear models' sample_weight check (finite, >= 0, not all zero): ValueError naming the first bad row.
    """
def check_storage_options(arg0: dict) -> None:
    """
    Raises TypeError/ValueError unless the group's state_dtype, stochastic_rounding, master_weights and seed are valid.
    """
def check_train_config(config: dict, device: str = 'cpu', dtype: str = 'float64') -> None:
    """
    The linear models' hyperparameter checks (TrainConfig::validate and the conversion of each key; with device='cuda', also what the GPU trainer cannot run, cuda::check_config): ValueError / TypeError naming the key, as a trainer built with this config would raise.
    """
def checkpoint_itemsize(dtype: str) -> int:
    """
    Item size of a dtype token of the checkpoint array table ('<f4', '|b1', 'bfloat16', ...); 0 for a dtype the format does not store.
    """
def clip_grad_norm(grads: typing.Any, max_norm: typing.SupportsFloat | typing.SupportsIndex, norm_type: typing.SupportsFloat | typing.SupportsIndex, error_if_nonfinite: bool) -> tuple[float, bool]:
    ...
def clip_grad_value(grads: typing.Any, clip_value: typing.SupportsFloat | typing.SupportsIndex) -> None:
    ...
def clip_grads_with_norm(grads: typing.Any, max_norm: typing.SupportsFloat | typing.SupportsIndex, total_norm: typing.SupportsFloat | typing.SupportsIndex) -> None:
    ...
def config_fields(group: dict, where: str = '') -> dict:
    """
    A param group's hyperparameters as the C++ Config's fields (betas -> beta1, beta2, ...), without 'params' and the storage keys.
    """
def confusion_matrix(y_true: typing.Annotated[numpy.typing.ArrayLike, numpy.int64], y_pred: typing.Annotated[numpy.typing.ArrayLike, numpy.int64], n_classes: typing.SupportsInt | typing.SupportsIndex, sample_weight: typing.Annotated[numpy.typing.ArrayLike, numpy.float64] | None = None) -> numpy.typing.NDArray[numpy.float64]:
    ...
def cpu_kernels() -> str:
    """
    The instruction set the CPU kernels run with.
    
    A portable build (the default) compiles the optimizer kernels for several x86-64 levels and the
    loader picks the best the CPU has; a build with DLOPT_NATIVE=ON is compiled for its build machine.
    
    Returns
    -------
    str
        ``'x86-64-v4'`` (AVX-512), ``'x86-64-v3'`` (AVX2) or ``'x86-64'`` (SSE2) in a portable
        x86-64 build; ``'native'`` with DLOPT_NATIVE=ON; ``'generic'`` in a portable build elsewhere.
    
    Examples
    --------
    >>> import dlopt
    >>> dlopt.cpu_kernels() in ('x86-64-v4', 'x86-64-v3', 'x86-64', 'native', 'generic')
    True
    """
def cuda_array_info(array: typing.Any, any_format: bool = False) -> tuple[tuple, numpy.dtype[typing.Any], int]:
    """
    (shape, dtype, device) of a CUDA device array; device is -1 when empty. A dtype other than float32/float64 is a TypeError unless any_format (16-bit, 8-bit codes).
    """
def cuda_array_spec(array: typing.Any) -> tuple[tuple, numpy.dtype[typing.Any]]:
    """
    (shape, dtype) of a CUDA device array in any stored format, read from its interface alone (no driver call: works without a GPU).
    """
def cuda_copy_async(dst: typing.Any, src: typing.Any) -> None:
    """
    Enqueues a device copy src -> dst (same byte size) on the legacy default stream (benchmarks).
    """
def cuda_device_count() -> int:
    """
    Number of visible CUDA devices (0 without CUDA).
    """
def cuda_device_name(device: typing.SupportsInt | typing.SupportsIndex) -> str:
    """
    The name of CUDA device `device`.
    """
def cuda_is_available() -> bool:
    """
    True when dlopt was built with CUDA and a CUDA device is visible.
    """
def cuda_synchronize() -> None:
    """
    Waits for all work on the current CUDA device.
    """
def cuda_to_numpy(array: typing.Any) -> numpy.ndarray[typing.Any, numpy.dtype[typing.Any]]:
    """
    A NumPy copy of any CUDA device array (__cuda_array_interface__), in its own dtype.
    """
def defaults(arg0: str) -> dict:
    """
    The C++ Config defaults of optimizer `name`, as a dict.
    """
def dequantize(codes: numpy.ndarray[typing.Any, numpy.dtype[typing.Any]], scales: typing.Any = None) -> numpy.typing.NDArray[numpy.float32]:
    """
    A float32 copy of a stored state buffer: 8-bit codes with their block scales, bfloat16, float16 or float32.
    """
def ema_update(shadow: typing.Any, params: typing.Any, decay: typing.SupportsFloat | typing.SupportsIndex) -> None:
    """
    shadow = decay * shadow + (1 - decay) * params, in one fused pass.
    """
def get_num_threads() -> int:
    """
    Threads used by the CPU kernels.
    
    Returns
    -------
    int
        OpenMP's maximum thread count (1 in a build without OpenMP).
    
    Examples
    --------
    >>> import dlopt
    >>> dlopt.get_num_threads() >= 1
    True
    """
def is_device_array(obj: typing.Any) -> bool:
    """
    True if obj is not a NumPy array and exposes __cuda_array_interface__.
    """
def log_loss(y_true: typing.Annotated[numpy.typing.ArrayLike, numpy.int64], y_proba: typing.Any, sample_weight: typing.Annotated[numpy.typing.ArrayLike, numpy.float64] | None = None) -> float:
    ...
def lookahead_update(slow: typing.Any, fast: typing.Any, alpha: typing.SupportsFloat | typing.SupportsIndex) -> None:
    """
    slow += alpha * (fast - slow); fast = slow, in one fused pass.
    """
def mean_absolute_error(y_true: typing.Any, y_pred: typing.Any, sample_weight: typing.Any = None) -> float:
    ...
def mean_squared_error(y_true: typing.Any, y_pred: typing.Any, sample_weight: typing.Any = None) -> float:
    ...
def one_cycle_anneal(cosine: bool, start: typing.SupportsFloat | typing.SupportsIndex, end: typing.SupportsFloat | typing.SupportsIndex, pct: typing.SupportsFloat | typing.SupportsIndex) -> float:
    """
    OneCycle's anneal from start to end at fraction pct (cosine or linear).
    """
def one_cycle_locate(t: typing.SupportsInt | typing.SupportsIndex, ends: collections.abc.Sequence[typing.SupportsFloat | typing.SupportsIndex]) -> tuple[int, float]:
    """
    (phase, fraction of it done) at step t: the first phase ending at or after t, else the last.
    """
def one_cycle_phases(total_steps: typing.SupportsInt | typing.SupportsIndex, pct_start: typing.SupportsFloat | typing.SupportsIndex, three_phase: bool) -> list[float]:
    """
    The step at which each phase of OneCycle ends (2 phases, or 3 with three_phase).
    """
def optimizers() -> list[str]:
    """
    Names of the optimizers in the registry.
    """
def precision_recall_f1(score: str, y_true: typing.Annotated[numpy.typing.ArrayLike, numpy.int64], y_pred: typing.Annotated[numpy.typing.ArrayLike, numpy.int64], n_classes: typing.SupportsInt | typing.SupportsIndex, sample_weight: typing.Annotated[numpy.typing.ArrayLike, numpy.float64] | None, average: str | None, pos_label: typing.SupportsInt | typing.SupportsIndex, zero_division: typing.SupportsFloat | typing.SupportsIndex) -> list[float]:
    ...
def r2_score(y_true: typing.Any, y_pred: typing.Any, sample_weight: typing.Any = None) -> float:
    ...
def read_checkpoint(path: str) -> tuple[int, bytes, list]:
    """
    The checkpoint reader (every check of docs/checkpoint-format.md): (version, header JSON bytes, [(name, dtype, shape, uint8 array of the data)]).
    """
def require_distinct(arg0: list) -> None:
    """
    Checks that every entry is an in-place-updatable array (all NumPy, or all CUDA device arrays) and that no two share memory.
    """
def require_finite_norm(total: typing.SupportsFloat | typing.SupportsIndex, norm_type: typing.SupportsFloat | typing.SupportsIndex) -> None:
    """
    Raises NonFiniteNorm (a RuntimeError) with torch's message when total is NaN or infinite.
    """
def runs_on_device(arg0: str) -> bool:
    """
    Whether optimizer `name` has a CUDA step (Muon is CPU-only for now).
    """
def scalar_names(arg0: str) -> list[str]:
    """
    Names of the per-tensor float scalars of optimizer `name` (state keys besides 'step').
    """
def scale(tensors: typing.Any, factor: typing.SupportsFloat | typing.SupportsIndex) -> None:
    """
    x *= factor for every array, in one fused pass.
    """
def schedule_free_move(param: typing.Any, z: typing.Any, weight: typing.SupportsFloat | typing.SupportsIndex, master: typing.Any = None) -> None:
    """
    Schedule-Free's train() / eval() on device arrays: param <- lerp(param, z, weight) in z's dtype (dlopt/cuda/schedule_free.hpp), on the legacy default stream after the arrays' streams. A bfloat16 / float16 param has a float32 z and optionally its float32 master copy, which moves and is stored rounded to nearest in param, as on the host.
    """
def schedule_lr(kind: str, base_lr: typing.SupportsFloat | typing.SupportsIndex, t: typing.SupportsInt | typing.SupportsIndex, **kwargs) -> float:
    """
    lr at step t of a closed-form schedule of dlopt/schedule.hpp, its fields as keywords: 'constant_factor' (ConstantFactor), 'step', 'multistep', 'exponential', 'linear', 'polynomial', 'cosine', 'wsd' (WarmupStableDecay).
    """
def schedule_lrs(spec: typing.Any, base_lr: typing.SupportsFloat | typing.SupportsIndex, steps: typing.SupportsInt | typing.SupportsIndex) -> list[float]:
    """
    lr(t) for t = 0..steps-1 of the closed-form C++ schedule that lr_schedule=spec names (dlopt/schedule.hpp).
    """
def set_num_threads(n: typing.SupportsInt | typing.SupportsIndex) -> None:
    """
    Sets the threads used by the CPU kernels (OpenMP).
    
    Parameters
    ----------
    n : int
        The number of threads, at least 1.
    
    Raises
    ------
    ValueError
        ``n < 1``.
    
    Examples
    --------
    >>> import dlopt
    >>> n = dlopt.get_num_threads()
    >>> dlopt.set_num_threads(1); dlopt.get_num_threads()
    1
    >>> dlopt.set_num_threads(n)
    """
def shard_bounds(sizes: collections.abc.Sequence[typing.SupportsInt | typing.SupportsIndex], splittable: collections.abc.Sequence[bool], nranks: typing.SupportsInt | typing.SupportsIndex) -> list[int]:
    """
    The nranks + 1 boundaries of ZeRO's shards over tensors of `sizes` laid end to end.
    """
def slot_names(arg0: str) -> list[str]:
    """
    Names of the per-element state buffers of optimizer `name`.
    """
def slot_shapes(name: str, shape: collections.abc.Sequence[typing.SupportsInt | typing.SupportsIndex]) -> dict:
    """
    The shape of each state slot that is not shaped like a parameter of `shape` (Adafactor's row_var, col_var).
    """
def solve_least_squares(X: typing.Any, y: typing.Any, sample_weight: typing.Any, fit_intercept: bool, alpha: typing.SupportsFloat | typing.SupportsIndex, coef: typing.Any, intercept: typing.Any) -> bool:
    """
    Closed-form least squares (Cholesky of XᵀX in double, minimum-norm fallback) into coef, intercept. Returns True if X was rank deficient.
    """
def splits_elementwise(name: str) -> bool:
    """
    Whether optimizer `name`'s step may be cut inside a tensor (no reduction, no matrix rule).
    """
def state_layout(name: str, group: dict, param: typing.Any) -> dict:
    """
    The dtype of each state entry of a parameter like `param` (a NumPy or device array) under the group's storage options: what the host and the device step allocate, and accept.
    """
def storage_keys() -> list[str]:
    """
    The param-group keys that choose how parameters are rounded and state is stored.
    """
def total_norm(grads: typing.Any, norm_type: typing.SupportsFloat | typing.SupportsIndex) -> tuple[float, bool]:
    """
    (total norm, result is float32) of a list of arrays, as torch.nn.utils.get_total_norm.
    """
def validate_config(arg0: str, arg1: dict) -> None:
    """
    Raises TypeError/ValueError if `d` is not a valid config for optimizer `name`.
    """
@typing.overload
def write_checkpoint(path: str, params: dict) -> None:
    """
    The C++ writer of named float arrays.
    """
@typing.overload
def write_checkpoint(path: str, header: bytes, arrays: list) -> None:
    """
    The checkpoint writer: the JSON header and [(table name, dtype token, C-contiguous array)], written atomically (temporary file, os.fsync, rename, fsync of the directory).
    """
SHARD_ALIGN: int = 4096
__version__: str = '0.1.0'
has_cuda: bool = False
