"""dlopt.cuda: device arrays in the optimizers.

The tests marked ``gpu`` need a CUDA device and dlopt built with CUDA; they make device arrays with
CuPy if it is importable, else with PyTorch CUDA tensors, and skip otherwise. The others run
everywhere: without a GPU, a device array (here a fake object exposing
``__cuda_array_interface__``) is rejected with a clear error, before anything changes.
"""

import numpy as np
import pytest

import dlopt
from dlopt import _core
from optim_cases import FULL_STATE_CONFIGS, make_optimizer

GPU = dlopt.cuda.is_available()
gpu = pytest.mark.skipif(not GPU, reason="needs a CUDA device and dlopt built with CUDA")


# -- a stand-in for a device array: the interface over a NumPy buffer's memory -------------------

class FakeDeviceArray:
    """Exposes __cuda_array_interface__ over a host buffer: looks like a device array to the
    checks, and lets a test see that nothing was written through its pointer."""

    def __init__(self, host, **overrides):
        self.host = host
        self.iface = {
            "shape": host.shape,
            "typestr": host.dtype.str,
            "data": (host.ctypes.data, False),
            "strides": None,
            "version": 3,
            "stream": 1,
            **overrides,
        }

    @property
    def __cuda_array_interface__(self):
        return self.iface


def _fake(shape=(4, 3), dtype=np.float32, seed=0, **overrides):
    host = np.random.default_rng(seed).standard_normal(shape).astype(dtype)
    return FakeDeviceArray(host, **overrides)


# -- everywhere -------------------------------------------------------------------------------------

def test_availability_is_consistent():
    assert isinstance(dlopt.cuda.is_available(), bool)
    assert dlopt.cuda.is_available() == (dlopt.cuda.is_built() and dlopt.cuda.device_count() > 0)
    if not dlopt.cuda.is_built():
        assert dlopt.cuda.device_count() == 0


@pytest.mark.skipif(GPU, reason="checks the behaviour without a GPU")
def test_gpu_calls_without_a_gpu_raise_runtime_error():
    for call in (dlopt.cuda.get_device_name, dlopt.cuda.synchronize,
                 lambda: dlopt.cuda.to_numpy(_fake()),
                 lambda: dlopt.cuda.DeviceArray.from_numpy(np.zeros(3, np.float32))):
        with pytest.raises(RuntimeError, match="CUDA"):
            call()


def test_device_array_detection():
    assert dlopt.cuda.is_device_array(_fake())
    assert not dlopt.cuda.is_device_array(np.zeros(3))
    assert not dlopt.cuda.is_device_array([1.0])


@pytest.mark.parametrize("name", sorted(FULL_STATE_CONFIGS))
def test_fake_device_params_raise_and_change_nothing(name):
    """Without a GPU: RuntimeError naming CUDA. With one: the pointer is host memory (ValueError)."""
    fakes = [_fake((5,), seed=1), _fake((3, 4), seed=2)]
    grads = [_fake((5,), seed=3), _fake((3, 4), seed=4)]
    before = [f.host.copy() for f in fakes + grads]
    opt = make_optimizer(name, fakes)
    if not _core.runs_on_device(name):  # e.g. Muon: refused before anything, GPU or not
        with pytest.raises(ValueError, match="CPU only"):
            opt.step(grads)
    else:
        with pytest.raises(ValueError if GPU else RuntimeError, match="CUDA"):
            opt.step(grads)
    for f, b in zip(fakes + grads, before):
        np.testing.assert_array_equal(f.host, b)
    assert opt.state == {}
    assert opt.state_dict()["state"] == {}


def test_mixing_host_and_device_params_raises():
    host = np.zeros(3, np.float32)
    with pytest.raises(ValueError, match=r"params\[1\] is a CUDA device array but params\[0\] is a NumPy"):
        dlopt.optim.Adam([host, _fake()])
    opt = dlopt.optim.Adam([host])
    with pytest.raises(ValueError, match="CUDA device array"):
        opt.add_param_group({"params": [_fake()]})
    assert len(opt.param_groups) == 1
    dev = dlopt.optim.SGD([_fake()])
    with pytest.raises(ValueError, match="CUDA device array"):
        dev.add_param_group({"params": [np.zeros(2)]})


def test_mixing_after_construction_raises_and_changes_nothing():
    host = np.ones(3, np.float32)
    opt = dlopt.optim.Adam([host], lr=0.1)
    opt.step([np.ones(3, np.float32)])
    state = {k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in opt.state[0].items()}
    p = host.copy()
    opt.param_groups[0]["params"].append(_fake((3,)))
    with pytest.raises(ValueError, match="CUDA device array"):
        opt.step([np.ones(3, np.float32), np.ones(3, np.float32)])
    np.testing.assert_array_equal(host, p)
    assert opt.state[0]["step"] == state["step"]
    np.testing.assert_array_equal(opt.state[0]["exp_avg"], state["exp_avg"])


def test_device_grad_for_host_param_raises():
    w = np.ones(3, np.float32)
    opt = dlopt.optim.SGD([w], lr=0.1)
    with pytest.raises(TypeError, match=r"grads\[0\].*CUDA device array"):
        opt.step([_fake((3,))])
    np.testing.assert_array_equal(w, 1)
    assert opt.state == {}


def test_host_grad_for_device_param_raises():
    f = _fake((3,))
    before = f.host.copy()
    opt = dlopt.optim.SGD([f], lr=0.1)
    with pytest.raises(TypeError, match=r"grads\[0\].*numpy.ndarray"):
        opt.step([np.ones(3, np.float32)])
    np.testing.assert_array_equal(f.host, before)


BAD_INTERFACES = {
    "int8": (dict(typestr="|i1"), TypeError, "dtype must be one of float32, float64, bfloat16, float16"),
    "int32": (dict(typestr="<i4"), TypeError, "dtype must be one of float32, float64, bfloat16, float16"),
    "read-only": (dict(data=None), ValueError, "read-only"),  # data filled in below
    "non-contiguous": (dict(strides=(4, 32)), ValueError, "C-contiguous"),
    "masked": (dict(mask=object()), ValueError, "mask"),
    "version": (dict(version=99), ValueError, "version"),
}


@pytest.mark.parametrize("case", sorted(BAD_INTERFACES))
def test_bad_device_params_raise_before_the_device(case):
    """Interface checks run before anything touches the driver: same errors with or without a GPU."""
    overrides, error, words = BAD_INTERFACES[case]
    f = _fake((4, 3))
    if case == "read-only":
        overrides = dict(data=(f.host.ctypes.data, True))
    f.iface.update(overrides)
    with pytest.raises(error, match=words):
        dlopt.optim.Adam([f])


def test_bad_device_grad_raises_before_the_device():
    f = _fake((4, 3))
    opt = dlopt.optim.Adam([f])
    before = f.host.copy()
    for bad, error in [(_fake((4, 3), dtype=np.float64), TypeError), (_fake((3, 4)), ValueError),
                       (_fake((4, 3), strides=(4, 32)), ValueError)]:
        with pytest.raises(error, match=r"grads\[0\]"):
            opt.step([bad])
    np.testing.assert_array_equal(f.host, before)
    assert opt.state == {}


def test_aliased_device_params_raise():
    f = _fake((4,))
    with pytest.raises(ValueError, match="shares memory"):
        dlopt.optim.SGD([f, FakeDeviceArray(f.host)])


def test_single_device_array_is_not_iterated():
    with pytest.raises(TypeError, match="wrap a single array in a list"):
        dlopt.optim.SGD(_fake())


# -- on a GPU ---------------------------------------------------------------------------------------

def _backend():
    """The library that makes device arrays: CuPy, else a CUDA build of PyTorch, else dlopt's own
    DeviceArray (always there with a GPU: the GPU tests never skip for want of a library)."""
    try:
        import cupy

        return "cupy", cupy
    except Exception:  # noqa: BLE001 (any import failure: no CuPy here)
        pass
    try:
        import torch

        if torch.cuda.is_available():
            return "torch", torch
    except Exception:  # noqa: BLE001
        pass
    return "dlopt", None


def to_device(a):
    kind, mod = _backend()
    if kind == "cupy":
        return mod.asarray(a)
    if kind == "torch":
        return mod.from_numpy(np.ascontiguousarray(a)).cuda()
    return dlopt.cuda.DeviceArray.from_numpy(np.ascontiguousarray(a))


class DeviceView:
    """A view of another device array's memory through __cuda_array_interface__ (offset in
    elements, shape, strides in bytes, read-only flag); keeps the base alive."""

    def __init__(self, base, shape, offset=0, strides=None, readonly=False):
        iface = base.__cuda_array_interface__
        itemsize = np.dtype(iface["typestr"]).itemsize
        self.base = base
        self.__cuda_array_interface__ = {
            "shape": tuple(shape), "typestr": iface["typestr"],
            "data": (iface["data"][0] + offset * itemsize, readonly),
            "strides": strides, "version": 3, "stream": 1,
        }


def to_host(x):
    return dlopt.cuda.to_numpy(x)


STEPS = 50
# Sizes: tiny, odd (tails of the 16-byte packs), several chunks of 4096, one unaligned view.
SHAPES = [(1,), (3,), (5, 7), (4097,), (3, 5000)]


def _case(name, dtype, seed=0):
    rng = np.random.default_rng(seed)
    host = [rng.standard_normal(s).astype(dtype) for s in SHAPES]
    grads = [[rng.standard_normal(s).astype(dtype) for s in SHAPES] for _ in range(STEPS)]
    return host, grads


def _assert_close(actual, expected, dtype, name=""):
    """GPU and CPU results agree within issue 5's rtol 1e-6. They should in fact be bitwise equal:
    both sides compile the rule without multiply-add contraction (--fmad=false, -ffp-contract=off)
    and round sqrt and division correctly, and tests/cpp/test_cuda.cpp checks the kernel body
    against the CPU step bitwise on the host."""
    np.testing.assert_allclose(np.asarray(actual), np.asarray(expected), rtol=1e-6, atol=0,
                               err_msg=f"{name} {np.dtype(dtype).name}")


@gpu
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", sorted(FULL_STATE_CONFIGS))
def test_gpu_equals_cpu(name, dtype):
    if not _core.runs_on_device(name):
        pytest.skip(f"{name} has no CUDA step yet")
    host, grads = _case(name, dtype)
    dev = [to_device(p) for p in host]
    # One parameter as an unaligned view (offset by one element): the element-wise path.
    buf = to_device(np.concatenate([np.zeros(1, dtype), host[2].ravel()]))
    dev[2] = DeviceView(buf, host[2].shape, offset=1)
    cpu_opt = make_optimizer(name, host)
    gpu_opt = make_optimizer(name, dev)
    for step in range(STEPS):
        cpu_opt.step(grads[step])
        gpu_opt.step([to_device(g) for g in grads[step]])
    for p, d in zip(host, dev):
        _assert_close(to_host(d), p, dtype, name)
    for i, s in cpu_opt.state.items():
        assert gpu_opt.state[i].keys() == s.keys()
        assert gpu_opt.state[i]["step"] == s["step"] == STEPS
        for k, v in s.items():
            if isinstance(v, np.ndarray):
                assert isinstance(gpu_opt.state[i][k], dlopt.cuda.DeviceArray)
                _assert_close(gpu_opt.state[i][k].to_numpy(), v, dtype, name)
            else:
                assert gpu_opt.state[i][k] == pytest.approx(v)


@gpu
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_gpu_lars_exclude_1d_sees_the_shapes(dtype):
    """The device plan gives the reduction's finish each tensor's rows, as the host plan does:
    with exclude_1d, vectors keep τ = 1 and matrices get their trust ratio on both devices."""
    host, grads = _case("LARS", dtype)
    dev = [to_device(p) for p in host]
    cpu_opt = make_optimizer("LARS", host, exclude_1d=True)
    gpu_opt = make_optimizer("LARS", dev, exclude_1d=True)
    for step in range(5):
        cpu_opt.step(grads[step])
        gpu_opt.step([to_device(g) for g in grads[step]])
    for p, d in zip(host, dev):
        _assert_close(to_host(d), p, dtype, "LARS exclude_1d")


@gpu
def test_gpu_in_place_groups_and_none_grads():
    rng = np.random.default_rng(3)
    host = [rng.standard_normal(s).astype(np.float32) for s in [(10,), (20,), (30,)]]
    dev = [to_device(p) for p in host]
    ptrs = [d.__cuda_array_interface__["data"][0] for d in dev]
    groups = lambda ps: [{"params": ps[:2], "lr": 0.1}, {"params": ps[2:], "lr": 0.01}]  # noqa: E731
    cpu_opt = dlopt.optim.Adam(groups(host))
    gpu_opt = dlopt.optim.Adam(groups(dev))
    for step in range(5):
        g = [rng.standard_normal(p.shape).astype(np.float32) for p in host]
        if step % 2:
            g[1] = None
        cpu_opt.step(g)
        gpu_opt.step([None if x is None else to_device(x) for x in g])
    assert [d.__cuda_array_interface__["data"][0] for d in dev] == ptrs
    for p, d in zip(host, dev):
        _assert_close(to_host(d), p, np.float32)
    assert gpu_opt.state[1]["step"] == cpu_opt.state[1]["step"] == 3


@gpu
def test_gpu_state_dict_round_trip():
    rng = np.random.default_rng(4)
    host = [rng.standard_normal(100).astype(np.float32)]
    dev = [to_device(host[0])]
    cpu_opt = dlopt.optim.Adam(host, lr=0.01, amsgrad=True)
    gpu_opt = dlopt.optim.Adam(dev, lr=0.01, amsgrad=True)
    grads = [rng.standard_normal(100).astype(np.float32) for _ in range(10)]
    for g in grads[:5]:
        cpu_opt.step([g])
        gpu_opt.step([to_device(g)])
    sd = gpu_opt.state_dict()
    assert isinstance(sd["state"][0]["exp_avg"], np.ndarray)
    fresh = dlopt.optim.Adam(dev, lr=0.01, amsgrad=True)
    fresh.load_state_dict(sd)
    assert isinstance(fresh.state[0]["exp_avg"], dlopt.cuda.DeviceArray)
    for g in grads[5:]:
        cpu_opt.step([g])
        fresh.step([to_device(g)])
    _assert_close(to_host(dev[0]), host[0], np.float32)
    # The state is usable from the array library without a copy.
    kind, mod = _backend()
    state = fresh.state[0]["exp_avg"]
    if kind == "cupy":
        wrapped = mod.asarray(state)
    elif kind == "torch":
        wrapped = mod.as_tensor(state, device="cuda")
    else:
        wrapped = DeviceView(state, state.shape)
    assert wrapped.__cuda_array_interface__["data"][0] == state.__cuda_array_interface__["data"][0]
    _assert_close(to_host(wrapped), cpu_opt.state[0]["exp_avg"], np.float32)


def _gpu_snapshot(opt, params):
    return ([to_host(p) for p in params],
            {i: {k: (v.to_numpy() if isinstance(v, dlopt.cuda.DeviceArray) else v) for k, v in s.items()}
             for i, s in opt.state.items()})


def _assert_same(a, b):
    for x, y in zip(a[0], b[0]):
        np.testing.assert_array_equal(x, y)
    assert a[1].keys() == b[1].keys()
    for i in a[1]:
        for k in a[1][i]:
            np.testing.assert_array_equal(a[1][i][k], b[1][i][k])


@gpu
@pytest.mark.parametrize("case", ["host grad", "non-contiguous", "dtype", "shape", "read-only", "mixed"])
def test_gpu_bad_inputs_change_nothing(case):
    rng = np.random.default_rng(5)
    host = [rng.standard_normal((8, 6)).astype(np.float32) for _ in range(2)]
    dev = [to_device(p) for p in host]
    opt = dlopt.optim.Adam(dev, lr=0.1)
    opt.step([to_device(rng.standard_normal((8, 6)).astype(np.float32)) for _ in dev])
    grads = [to_device(rng.standard_normal((8, 6)).astype(np.float32)) for _ in dev]
    if case == "host grad":
        grads[1] = rng.standard_normal((8, 6)).astype(np.float32)
    elif case == "non-contiguous":
        grads[1] = DeviceView(to_device(rng.standard_normal((8, 12)).astype(np.float32)), (8, 6),
                              strides=(48, 8))
    elif case == "dtype":
        grads[1] = to_device(rng.standard_normal((8, 6)))
    elif case == "shape":
        grads[1] = to_device(rng.standard_normal((6, 8)).astype(np.float32))
    before = _gpu_snapshot(opt, dev)
    if case == "read-only":
        opt.param_groups[0]["params"][1] = DeviceView(dev[1], (8, 6), readonly=True)
        with pytest.raises(ValueError, match="read-only"):
            opt.step(grads)
    elif case == "mixed":
        opt.param_groups[0]["params"][1] = host[1]
        with pytest.raises(ValueError, match="CUDA device array"):
            opt.step(grads)
    else:
        with pytest.raises((TypeError, ValueError), match=r"grads\[1\]"):
            opt.step(grads)
    _assert_same(before, _gpu_snapshot(opt, dev))


@gpu
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_gpu_many_tensors_one_launch(dtype):
    """300 tensors (empty ones included) in one launch: the block table's search over tensors."""
    rng = np.random.default_rng(6)
    sizes = [int(s) for s in rng.integers(0, 3000, 300)]
    sizes[0] = sizes[17] = sizes[-1] = 0
    host = [rng.standard_normal(s).astype(dtype) for s in sizes]
    dev = [to_device(p) for p in host]
    cpu_opt = dlopt.optim.NAdam(host, lr=0.01)
    gpu_opt = dlopt.optim.NAdam(dev, lr=0.01)
    for _ in range(5):
        g = [rng.standard_normal(s).astype(dtype) for s in sizes]
        cpu_opt.step(g)
        gpu_opt.step([to_device(x) for x in g])
    for p, d in zip(host, dev):
        _assert_close(to_host(d), p, dtype)
    assert gpu_opt.state[0]["step"] == 5 and gpu_opt.state[0]["mu_product"] == pytest.approx(
        cpu_opt.state[0]["mu_product"])


# -- Adafactor on device arrays: factored state, float32/float64 only ---------------------------------

def _adafactor_state(shape, **overrides):
    """Device-looking Adafactor state of a float32 parameter of `shape` (rank >= 2): row_var (..., R, 1)
    and col_var (..., 1, C), torch's shapes."""
    entry = {"step": 1,
             "row_var": FakeDeviceArray(np.ones(shape[:-1] + (1,), np.float32)),
             "col_var": FakeDeviceArray(np.ones(shape[:-2] + (1, shape[-1]), np.float32))}
    entry.update(overrides)
    return {k: v for k, v in entry.items() if v is not None}


def test_adafactor_factored_device_state_gets_past_every_check():
    """The device plan takes Adafactor's row_var / col_var in the shapes the host plan stores them
    (it used to refuse Adafactor outright): only the device is missing (on a GPU the stand-ins' host
    pointers are a ValueError), and nothing changed."""
    p = _fake((2, 4, 3), seed=1)
    before = p.host.copy()
    opt = dlopt.optim.Adafactor([p])
    entry = _adafactor_state((2, 4, 3))
    opt.state[0] = entry
    with pytest.raises(ValueError if GPU else RuntimeError, match="CUDA"):
        opt.step([_fake((2, 4, 3), seed=2)])
    np.testing.assert_array_equal(p.host, before)
    assert opt.state[0] is entry and opt.state[0]["step"] == 1 and "variance" not in entry


@pytest.mark.parametrize("slot, shape, expected", [("row_var", (2, 4, 3), r"\(2, 4, 1\)"),
                                                   ("col_var", (2, 4, 1), r"\(2, 1, 3\)")])
def test_adafactor_device_state_of_the_wrong_shape_raises_before_the_device(slot, shape, expected):
    """A factored slot of another shape (e.g. the parameter's) is a ValueError naming its shape, with
    the host plan's words; nothing changes."""
    p = _fake((2, 4, 3), seed=1)
    before = p.host.copy()
    opt = dlopt.optim.Adafactor([p])
    entry = _adafactor_state((2, 4, 3), **{slot: FakeDeviceArray(np.ones(shape, np.float32))})
    opt.state[0] = entry
    with pytest.raises(ValueError, match=rf"state\[0\]\['{slot}'\]: shape .* does not match {expected}, its shape"):
        opt.step([_fake((2, 4, 3), seed=2)])
    np.testing.assert_array_equal(p.host, before)
    assert opt.state[0] is entry and opt.state[0]["step"] == 1
    host = np.ones((2, 4, 3), np.float32)  # the host plan says it the same way
    cpu = dlopt.optim.Adafactor([host])
    cpu.state[0] = {"step": 1, "row_var": np.ones((2, 4, 1), np.float32), "col_var": np.ones((2, 1, 3), np.float32),
                    slot: np.ones(shape, np.float32)}
    with pytest.raises(ValueError, match=rf"state\[0\]\['{slot}'\]: shape .* does not match {expected}, its shape"):
        cpu.step([np.ones((2, 4, 3), np.float32)])


def test_adafactor_16bit_device_params_raise_as_on_the_host():
    """Adafactor takes float32/float64 parameters for now, on either device: a float16 device parameter
    is the host plan's TypeError, before anything (no state made)."""
    p = _fake((4, 3), np.float16)
    before = p.host.copy()
    opt = dlopt.optim.Adafactor([p])
    with pytest.raises(TypeError, match=r"params\[0\]: Adafactor takes float32 or float64 parameters for now"):
        opt.step([_fake((4, 3), np.float16, seed=1)])
    np.testing.assert_array_equal(p.host, before)
    assert opt.state == {}
    cpu = dlopt.optim.Adafactor([p.host.copy()])
    with pytest.raises(TypeError, match=r"params\[0\]: Adafactor takes float32 or float64 parameters for now"):
        cpu.step([np.ones((4, 3), np.float16)])


@gpu
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("options", [dict(), dict(lr=0.05, eps=(1e-3, 1e-3), weight_decay=0.1, maximize=True)])
def test_gpu_adafactor_equals_cpu_bit_for_bit(dtype, options):
    """Matrices with rows off the 64-row blocks, batches of matrices straddling them, vectors, a zero
    gradient row (R = 0: the cap binds, Σ U² element by element): parameters and every state array
    equal the CPU's bit for bit."""
    shapes = [(130, 70), (3, 50, 33), (2, 64, 17), (1000,), (5,), (1, 300), (300, 1), (0,)]
    rng = np.random.default_rng(9)
    host = [rng.standard_normal(s).astype(dtype) for s in shapes]
    dev = [to_device(p) for p in host]
    cpu_opt = dlopt.optim.Adafactor(host, **options)
    gpu_opt = dlopt.optim.Adafactor(dev, **options)
    for step in range(8):
        grads = [rng.standard_normal(s).astype(dtype) for s in shapes]
        if step % 2 == 0:
            grads[0][0] = 0
        cpu_opt.step(grads)
        gpu_opt.step([to_device(g) for g in grads])
    for p, d in zip(host, dev):
        np.testing.assert_array_equal(to_host(d), p)
    for i, s in cpu_opt.state.items():
        assert gpu_opt.state[i].keys() == s.keys()
        for k, v in s.items():
            if isinstance(v, np.ndarray):
                assert gpu_opt.state[i][k].shape == v.shape
                np.testing.assert_array_equal(gpu_opt.state[i][k].to_numpy(), v)
            else:
                assert gpu_opt.state[i][k] == v


# -- Schedule-Free's train() / eval() on device arrays (_core.schedule_free_move) ----------------------

def test_schedule_free_move_checks_before_the_device():
    p, z = _fake((5,)), _fake((5,), seed=1)
    before = p.host.copy()
    with pytest.raises(ValueError, match="z must be a param-dtype array of param's size"):
        _core.schedule_free_move(p, _fake((4,)), 0.1)
    with pytest.raises(ValueError, match="z must be a param-dtype array of param's size"):
        _core.schedule_free_move(p, _fake((5,), np.float64), 0.1)
    with pytest.raises(ValueError, match="z shares memory with param"):
        _core.schedule_free_move(p, p, 0.1)
    with pytest.raises(ValueError, match="param: array is read-only"):
        _core.schedule_free_move(_fake((5,), data=(p.host.ctypes.data, True)), z, 0.1)  # read-only
    np.testing.assert_array_equal(p.host, before)
    if not GPU:  # the checks pass: the launch needs the device
        with pytest.raises(RuntimeError, match="CUDA"):
            _core.schedule_free_move(p, z, 0.1)
        np.testing.assert_array_equal(p.host, before)


@gpu
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", ["ScheduleFreeSGD", "ScheduleFreeAdamW"])
def test_gpu_schedule_free_train_eval_equal_the_host(name, dtype):
    host, grads = _case(name, dtype)
    dev = [to_device(p) for p in host]
    cpu_opt = getattr(dlopt.optim, name)(host, lr=0.05, warmup_steps=2)
    gpu_opt = getattr(dlopt.optim, name)(dev, lr=0.05, warmup_steps=2)
    for t, g in enumerate(grads[:10]):
        cpu_opt.step(g)
        gpu_opt.step([to_device(x) for x in g])
        if t % 4 == 3:  # a round trip mid-run, as an evaluation would
            cpu_opt.eval(), gpu_opt.eval()
            for a, b in zip(dev, host):
                np.testing.assert_array_equal(to_host(a), b)
            cpu_opt.train(), gpu_opt.train()
    cpu_opt.eval(), gpu_opt.eval()
    for a, b in zip(dev, host):
        np.testing.assert_array_equal(to_host(a), b)
