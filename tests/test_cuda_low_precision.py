"""16-bit device parameters and stored (bfloat16, 8-bit) state in the device step.

The device plan stores state as the host plan does (one description, ``slot_storage``: the same
slots, ``<slot>_scale`` block scales beside 8-bit codes, ``master_param`` for 16-bit parameters with
master_weights). Everywhere: the checks of arguments and state, ``state_layout`` of device
parameters and ``load_state_dict`` (which run before anything reaches a GPU), on stand-ins exposing
``__cuda_array_interface__`` over host memory. On a GPU (tests marked ``gpu``): the device results
equal the CPU optimizer's bit for bit, parameters and every stored state array.
"""

import ml_dtypes
import numpy as np
import pytest

import dlopt
from dlopt import _core
from optim_cases import FULL_STATE_CONFIGS, make_optimizer
from test_cuda import GPU, FakeDeviceArray, _fake, gpu

BF16 = np.dtype(ml_dtypes.bfloat16)
DEVICE_RULES = sorted(n for n in FULL_STATE_CONFIGS if _core.runs_on_device(n))


def _state_of(opt):
    return {i: dict(s) for i, s in opt.state.items()}


# -- everywhere -------------------------------------------------------------------------------------

def test_device_array_interface_dtypes():
    """float16 and 8-bit codes are read from the interface; bfloat16 has no typestr there."""
    for dtype in (np.float16, np.int8, np.uint8, np.float32, np.float64):
        f = FakeDeviceArray(np.zeros((2, 3), dtype))
        shape, got = _core.cuda_array_spec(f)
        assert tuple(shape) == (2, 3) and got == np.dtype(dtype)
    with pytest.raises(TypeError, match="bfloat16 device arrays are dlopt.cuda.DeviceArray only"):
        _core.cuda_array_spec(FakeDeviceArray(np.zeros(3, BF16)))
    with pytest.raises(TypeError, match="dtype must be"):
        _core.cuda_array_spec(FakeDeviceArray(np.zeros(3, np.int32)))


@pytest.mark.skipif(GPU, reason="checks the behaviour without a GPU")
def test_device_array_from_numpy_dtypes_without_a_gpu():
    """Every stored format passes the dtype check (then: no GPU); other dtypes are a TypeError first."""
    for dtype in (np.float16, BF16, np.int8, np.uint8):
        with pytest.raises(RuntimeError, match="CUDA"):
            dlopt.cuda.DeviceArray.from_numpy(np.zeros(3, dtype))
    with pytest.raises(TypeError, match="dtype must be one of"):
        dlopt.cuda.DeviceArray.from_numpy(np.zeros(3, np.int32))


@pytest.mark.parametrize("dtype", [np.float16, np.float32])
@pytest.mark.parametrize("state_dtype", [None, "float32", "bfloat16", "int8"])
@pytest.mark.parametrize("name", DEVICE_RULES)
def test_device_state_layout_is_the_hosts(name, dtype, state_dtype):
    """The device step allocates and accepts what state_layout says; for a device parameter that is
    what the host plan stores for a NumPy parameter of the same dtype."""
    group = {**FULL_STATE_CONFIGS[name], "state_dtype": state_dtype, "master_weights": True}
    host = np.zeros((3, 4), dtype)
    device = _core.state_layout(name, group, FakeDeviceArray(host))
    assert device == _core.state_layout(name, group, host)
    if state_dtype == "int8" and name == "Adam":
        assert device["exp_avg"] == np.int8 and device["exp_avg_sq"] == np.uint8
        assert device["exp_avg_scale"] == device["exp_avg_sq_scale"] == np.float32
    assert ("master_param" in device) == (dtype == np.float16)


def test_16bit_device_params_are_taken():
    opt = dlopt.optim.Adam([_fake((5,), np.float16)], lr=0.1, state_dtype="int8", master_weights=True)
    assert opt.param_groups[0]["state_dtype"] == "int8"


@pytest.mark.parametrize("param_dtype, grad_dtype", [(np.float32, np.float16), (np.float16, np.float32),
                                                     (np.float16, np.float64)])
def test_gradient_of_another_dtype_raises_and_changes_nothing(param_dtype, grad_dtype):
    p = _fake((4, 3), param_dtype)
    before = p.host.copy()
    opt = dlopt.optim.Adam([p], lr=0.1, state_dtype="bfloat16")
    with pytest.raises(TypeError, match=rf"grads\[0\]: dtype {np.dtype(grad_dtype).name} does not match "
                                        rf"params\[0\]'s {np.dtype(param_dtype).name}"):
        opt.step([_fake((4, 3), grad_dtype, seed=1)])
    np.testing.assert_array_equal(p.host, before)
    assert opt.state == {}


def test_bad_state_dtype_raises_and_changes_nothing():
    with pytest.raises(ValueError, match="state_dtype"):
        dlopt.optim.Adam([_fake((3,), np.float16)], state_dtype="int4")
    p = _fake((3,), np.float16)
    before = p.host.copy()
    opt = dlopt.optim.Adam([p])
    opt.param_groups[0]["state_dtype"] = "int4"
    with pytest.raises(ValueError, match="int4"):
        opt.step([_fake((3,), np.float16, seed=1)])
    np.testing.assert_array_equal(p.host, before)
    assert opt.state == {}


@pytest.mark.skipif(GPU, reason="checks the behaviour without a GPU")
@pytest.mark.parametrize("state_dtype", [None, "bfloat16", "int8"])
def test_valid_16bit_step_gets_past_every_check_without_a_gpu(state_dtype):
    """Only the driver is missing: RuntimeError naming CUDA, nothing allocated or written."""
    p = _fake((4, 3), np.float16)
    before = p.host.copy()
    opt = dlopt.optim.Adam([p], state_dtype=state_dtype, master_weights=True, stochastic_rounding=False)
    with pytest.raises(RuntimeError, match="CUDA"):
        opt.step([_fake((4, 3), np.float16, seed=1)])
    np.testing.assert_array_equal(p.host, before)
    assert opt.state == {}


def _int8_state(n=300, **overrides):
    """Device-looking Adam state of a float32 parameter of n elements, stored as int8 asks."""
    scales = (n + 255) // 256
    entry = {"step": 1,
             "exp_avg": FakeDeviceArray(np.zeros(n, np.int8)),
             "exp_avg_scale": FakeDeviceArray(np.zeros(scales, np.float32)),
             "exp_avg_sq": FakeDeviceArray(np.zeros(n, np.uint8)),
             "exp_avg_sq_scale": FakeDeviceArray(np.zeros(scales, np.float32))}
    entry.update(overrides)
    return {k: v for k, v in entry.items() if v is not None}


BAD_DEVICE_STATE = {
    # (optimizer options, state entry overrides, error, words)
    "int8 codes, float32 state": (dict(), {}, TypeError, r"stored as int8, but this optimizer \(state_dtype=None"),
    "float32 state, int8 asked": (dict(state_dtype="int8"),
                                  {"exp_avg": FakeDeviceArray(np.zeros(300, np.float32)), "exp_avg_scale": None},
                                  TypeError, "stored as float32"),
    "missing scales": (dict(state_dtype="int8"), {"exp_avg_scale": None}, ValueError, "8-bit state needs its scales"),
    "scales without codes": (dict(state_dtype="int8"), {"exp_avg": None}, ValueError, "without its codes"),
    "scales of the wrong shape": (dict(state_dtype="int8"), {"exp_avg_scale": FakeDeviceArray(np.zeros(1, np.float32))},
                                  ValueError, r"expected shape \(2,\)"),
    "float16 state, bfloat16 asked": (dict(state_dtype="bfloat16"),
                                      {"exp_avg": FakeDeviceArray(np.zeros(300, np.float16))},
                                      TypeError, "stored as float16, but this optimizer .* stores it as bfloat16"),
    "scales of float32 state": (dict(), {"exp_avg": FakeDeviceArray(np.zeros(300, np.float32)),
                                         "exp_avg_sq": FakeDeviceArray(np.zeros(300, np.float32))},
                                ValueError, "scales of a float32 slot"),
    "master of a float32 parameter": (dict(state_dtype="int8"),
                                      {"master_param": FakeDeviceArray(np.zeros(300, np.float32))},
                                      ValueError, "master_weights is off or params"),
    "codes of the wrong shape": (dict(state_dtype="int8"), {"exp_avg": FakeDeviceArray(np.zeros((3, 100), np.int8))},
                                 ValueError, "does not match the parameter's"),
}


@pytest.mark.parametrize("case", sorted(BAD_DEVICE_STATE))
def test_bad_device_state_raises_before_the_device(case):
    """Existing device state is checked against the storage the options give, as on the host."""
    options, overrides, error, words = BAD_DEVICE_STATE[case]
    p = _fake((300,))
    before = p.host.copy()
    opt = dlopt.optim.Adam([p], **options)
    entry = _int8_state(**overrides)
    opt.state[0] = entry
    with pytest.raises(error, match=words):
        opt.step([_fake((300,), seed=1)])
    np.testing.assert_array_equal(p.host, before)
    assert opt.state[0] is entry and opt.state[0]["step"] == 1


@pytest.mark.parametrize("dtype", [np.float32, np.float16])
def test_device_state_as_stored_gets_past_every_check(dtype):
    """The counterpart of the cases above: state laid out as state_layout says (int8 codes, their scales,
    a master copy for 16-bit parameters) is taken; only the device is missing (RuntimeError here; on a
    GPU the stand-ins' host pointers are a ValueError), and nothing changed."""
    p = _fake((300,), dtype)
    before = p.host.copy()
    opt = dlopt.optim.Adam([p], state_dtype="int8", master_weights=True)
    layout = _core.state_layout("Adam", opt.param_groups[0], p)
    entry = _int8_state(master_param=FakeDeviceArray(np.zeros(300, np.float32)) if dtype == np.float16 else None)
    unused = {"max_exp_avg_sq", "max_exp_avg_sq_scale"}  # amsgrad is off
    assert {k: v.host.dtype for k, v in entry.items() if k != "step"} == {k: v for k, v in layout.items()
                                                                           if k not in unused}
    opt.state[0] = entry
    with pytest.raises(RuntimeError if not GPU else ValueError, match="CUDA"):
        opt.step([_fake((300,), dtype, seed=1)])
    np.testing.assert_array_equal(p.host, before)
    assert opt.state[0] is entry and opt.state[0]["step"] == 1 and "max_exp_avg_sq" not in entry


def _cpu_int8_state_dict():
    w = np.random.default_rng(0).standard_normal(300).astype(np.float32)
    cpu = dlopt.optim.Adam([w], lr=0.01, state_dtype="int8")
    cpu.step([np.ones(300, np.float32)])
    return cpu.state_dict()


def test_loading_int8_state_into_float32_state_device_optimizer_raises_and_changes_nothing():
    sd = _cpu_int8_state_dict()
    sd["param_groups"][0]["state_dtype"] = None  # a state_dict brings its state_dtype along: disagree
    opt = dlopt.optim.Adam([_fake((300,))], lr=0.01)
    groups = [dict(g) for g in opt.param_groups]
    with pytest.raises(TypeError, match="stored as int8, but this optimizer stores it as float32"):
        opt.load_state_dict(sd)
    assert opt.state == {} and opt.param_groups == groups


@pytest.mark.parametrize("case", ["shape", "missing scales", "unknown state_dtype"])
def test_bad_device_load_raises_and_changes_nothing(case):
    sd = _cpu_int8_state_dict()
    opt = dlopt.optim.Adam([_fake((300,))], lr=0.01, state_dtype="int8")
    if case == "shape":
        opt = dlopt.optim.Adam([_fake((30, 10))], lr=0.01, state_dtype="int8")
        error, words = ValueError, "does not match the parameter's"
    elif case == "missing scales":
        del sd["state"][0]["exp_avg_sq_scale"]
        error, words = ValueError, "exp_avg_sq_scale'] is missing"
    else:
        sd["param_groups"][0]["state_dtype"] = "int4"
        error, words = ValueError, "int4"
    groups = [dict(g) for g in opt.param_groups]
    with pytest.raises(error, match=words):
        opt.load_state_dict(sd)
    assert opt.state == {} and opt.param_groups == groups


def test_valid_device_load_gets_past_every_check():
    """A matching int8 state passes the checks; only the copy to the device is left, which needs a
    GPU (RuntimeError in a build without CUDA) and device memory (the stand-in's host pointer: a
    ValueError where the CUDA runtime is there to look at it)."""
    sd = _cpu_int8_state_dict()
    opt = dlopt.optim.Adam([_fake((300,))], lr=0.01, state_dtype="int8")
    with pytest.raises((RuntimeError, ValueError), match="CUDA"):
        opt.load_state_dict(sd)
    assert opt.state == {}


def test_schedule_free_switch_of_16bit_device_params_passes_the_checks():
    """train() / eval() of 16-bit device parameters (and their master copies) passes every check and
    reaches the device: without one, RuntimeError and nothing changed."""
    p32, p16 = _fake((4,)), _fake((4,), np.float16, seed=1)
    opt = dlopt.optim.ScheduleFreeAdamW([p16, p32], lr=0.01, master_weights=True)
    opt.state = {0: {"step": 1, "z": FakeDeviceArray(np.ones(4, np.float32)),
                     "master_param": FakeDeviceArray(np.zeros(4, np.float32))},
                 1: {"step": 1, "z": FakeDeviceArray(np.ones(4, np.float32))}}
    before = [p16.host.copy(), p32.host.copy()]
    if not GPU:
        with pytest.raises(RuntimeError, match="CUDA"):
            opt.eval()
        assert opt.param_groups[0]["train_mode"] is True
        np.testing.assert_array_equal(p16.host, before[0])
        np.testing.assert_array_equal(p32.host, before[1])


def test_schedule_free_move_of_a_16bit_param_checks_z_and_master():
    p16, z32, m32 = _fake((5,), np.float16), _fake((5,), seed=1), _fake((5,), seed=2)
    before = p16.host.copy(), m32.host.copy()
    bad = [  # (z, master, message)
        (_fake((5,), np.float16, seed=3), None, "z must be a float32 array"),  # z in the compute type
        (_fake((4,), seed=3), None, "z must be a float32 array of param's size"),
        (z32, _fake((4,), seed=3), "master must be a float32 array of param's size"),
        (z32, _fake((5,), np.float64, seed=3), "master"),
    ]
    for z, master, message in bad:
        with pytest.raises((TypeError, ValueError), match=message):
            _core.schedule_free_move(p16, z, 0.1, master)
    with pytest.raises(ValueError, match="z shares memory with master"):
        _core.schedule_free_move(p16, z32, 0.1, z32)
    with pytest.raises(ValueError, match="master: array is read-only"):
        _core.schedule_free_move(p16, z32, 0.1, _fake((5,), data=(m32.host.ctypes.data, True)))
    with pytest.raises(ValueError, match="a master copy belongs to a 16-bit parameter only"):
        _core.schedule_free_move(_fake((5,), seed=4), z32, 0.1, m32)
    np.testing.assert_array_equal(p16.host, before[0])
    np.testing.assert_array_equal(m32.host, before[1])


# -- on a GPU: the device equals the CPU bit for bit ------------------------------------------------

STEPS = 20
SHAPES = [(1,), (5, 7), (300,), (3, 1000)]  # tails of a 256-element scale block, several blocks


def _dev(a):
    return dlopt.cuda.DeviceArray.from_numpy(np.ascontiguousarray(a))


def _assert_bits(actual, expected, what):
    assert actual.dtype == expected.dtype and actual.shape == expected.shape, what
    np.testing.assert_array_equal(actual.view(np.uint8), expected.view(np.uint8), err_msg=what)


def _run_both(name, dtype, steps=STEPS, **options):
    rng = np.random.default_rng(7)
    host = [rng.standard_normal(s).astype(np.float32).astype(dtype) for s in SHAPES]
    dev = [_dev(p) for p in host]
    cpu_opt = make_optimizer(name, host, **options)
    gpu_opt = make_optimizer(name, dev, **options)
    for _ in range(steps):
        grads = [rng.standard_normal(s).astype(np.float32).astype(dtype) for s in SHAPES]
        cpu_opt.step(grads)
        gpu_opt.step([_dev(g) for g in grads])
    return host, dev, cpu_opt, gpu_opt


def _assert_equal_runs(host, dev, cpu_opt, gpu_opt, what):
    for i, (p, d) in enumerate(zip(host, dev)):
        _assert_bits(d.to_numpy(), p, f"{what} params[{i}]")
    assert gpu_opt.state.keys() == cpu_opt.state.keys()
    for i, s in cpu_opt.state.items():
        assert gpu_opt.state[i].keys() == s.keys(), what
        for k, v in s.items():
            if isinstance(v, np.ndarray):
                assert isinstance(gpu_opt.state[i][k], dlopt.cuda.DeviceArray)
                _assert_bits(gpu_opt.state[i][k].to_numpy(), v, f"{what} state[{i}][{k!r}]")
            else:
                assert gpu_opt.state[i][k] == v, f"{what} state[{i}][{k!r}]"


@gpu
@pytest.mark.parametrize("state_dtype", [None, "bfloat16", "int8"])
@pytest.mark.parametrize("dtype", [BF16, np.dtype(np.float16), np.dtype(np.float32)])
@pytest.mark.parametrize("name", DEVICE_RULES)
def test_gpu_stored_formats_equal_cpu_bit_for_bit(name, dtype, state_dtype):
    what = f"{name} {dtype.name} state_dtype={state_dtype}"
    if name == "Adafactor" and dtype != np.float32:  # float32/float64 parameters only, on either device
        with pytest.raises(TypeError, match="takes float32 or float64 parameters"):
            _run_both(name, dtype, state_dtype=state_dtype, seed=3)
        return
    _assert_equal_runs(*_run_both(name, dtype, state_dtype=state_dtype, seed=3), what)


@gpu
@pytest.mark.parametrize("options", [dict(stochastic_rounding=False), dict(master_weights=True),
                                     dict(master_weights=True, state_dtype="int8", seed=11)])
@pytest.mark.parametrize("dtype", [BF16, np.dtype(np.float16)])
@pytest.mark.parametrize("name", ["Adam", "SGD", "LAMB", "Lion", "Adagrad"])
def test_gpu_rounding_and_master_weights_equal_cpu(name, dtype, options):
    _assert_equal_runs(*_run_both(name, dtype, steps=10, **options), f"{name} {dtype.name} {options}")


@gpu
@pytest.mark.parametrize("master_weights", [False, True])
@pytest.mark.parametrize("dtype", [BF16, np.dtype(np.float16)])
@pytest.mark.parametrize("name", ["ScheduleFreeSGD", "ScheduleFreeAdamW"])
def test_gpu_schedule_free_switch_of_16bit_params_equals_cpu(name, dtype, master_weights):
    host, dev, cpu_opt, gpu_opt = _run_both(name, dtype, steps=5, master_weights=master_weights)
    y = [p.copy() for p in host]
    for switch in ("eval", "train", "eval"):
        getattr(cpu_opt, switch)(), getattr(gpu_opt, switch)()
        _assert_equal_runs(host, dev, cpu_opt, gpu_opt, f"{name} {dtype.name} after {switch}()")
    assert any((a != b).any() for a, b in zip(host, y)), "eval() moved the parameters"


@gpu
@pytest.mark.parametrize("dtype", [BF16, np.dtype(np.float32)])
def test_gpu_stored_state_dict_round_trip(dtype):
    """state_dict() keeps codes and scales (and the master copy) as stored; a device optimizer
    loading it resumes exactly as the CPU one does."""
    options = dict(lr=0.01, state_dtype="int8", master_weights=True)
    host, dev, cpu_opt, gpu_opt = _run_both("Adam", dtype, steps=5, **options)
    sd = gpu_opt.state_dict()
    cpu_sd = cpu_opt.state_dict()
    for i, s in cpu_sd["state"].items():
        for k, v in s.items():
            if isinstance(v, np.ndarray):
                assert isinstance(sd["state"][i][k], np.ndarray)
                _assert_bits(sd["state"][i][k], v, f"state_dict()[{i}][{k!r}]")
    assert sd["state"][0]["exp_avg"].dtype == np.int8 and sd["state"][0]["exp_avg_scale"].dtype == np.float32
    fresh = dlopt.optim.Adam(dev, **options)
    fresh.load_state_dict(sd)
    assert fresh.state[0]["exp_avg_sq"].dtype == np.uint8
    rng = np.random.default_rng(9)
    for _ in range(3):
        grads = [rng.standard_normal(p.shape).astype(np.float32).astype(dtype) for p in host]
        cpu_opt.step(grads)
        fresh.step([_dev(g) for g in grads])
    _assert_equal_runs(host, dev, cpu_opt, fresh, f"resumed {np.dtype(dtype).name}")
    np.testing.assert_array_equal(fresh.dequantized_state(1)["exp_avg"], cpu_opt.dequantized_state(1)["exp_avg"])


@gpu
def test_gpu_bad_loads_change_nothing():
    host, dev, cpu_opt, gpu_opt = _run_both("Adam", np.dtype(np.float32), steps=2, lr=0.01)
    before = {i: {k: (v.to_numpy() if isinstance(v, dlopt.cuda.DeviceArray) else v) for k, v in s.items()}
              for i, s in gpu_opt.state.items()}
    int8 = make_optimizer("Adam", [p.copy() for p in host], state_dtype="int8")
    int8.step([np.ones_like(p) for p in host])
    sd = int8.state_dict()
    sd["param_groups"][0]["state_dtype"] = None  # a state_dict brings its state_dtype along: disagree
    with pytest.raises(TypeError, match="stored as int8"):
        gpu_opt.load_state_dict(sd)
    for i, s in before.items():
        for k, v in s.items():
            got = gpu_opt.state[i][k]
            np.testing.assert_array_equal(got.to_numpy() if isinstance(got, dlopt.cuda.DeviceArray) else got, v)
