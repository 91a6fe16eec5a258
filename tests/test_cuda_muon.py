"""Muon on the GPU (cuda/muon.cu): the device plan takes Muon's device parameters.

Everywhere: Muon says it has a CUDA step, and fake device arrays (``__cuda_array_interface__`` over
host memory) are checked like the CPU's arguments and then refused for want of a device, before
anything changes. With a CUDA device (tests marked ``gpu``): the device step equals the CPU step at
tolerance (its products sum in another order than Eigen's / oneDNN's GEMM; the kernels' own orders
are checked bit for bit on the host by tests/cpp/test_cuda_muon.cpp), and its momentum buffer, made
without any product, bit for bit.
"""

import numpy as np
import pytest

import dlopt
from dlopt import _core
from test_cuda import GPU, FakeDeviceArray, gpu, to_device, to_host


def _fake(shape, dtype=np.float32, seed=0):
    return FakeDeviceArray(np.random.default_rng(seed).standard_normal(shape).astype(dtype))


def test_muon_has_a_cuda_step():
    assert _core.runs_on_device("Muon")
    _core.check_train_config({"optimizer": "muon"}, "cuda", "float32")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_fake_device_params_raise_and_change_nothing(dtype):
    """Without a GPU: RuntimeError naming CUDA. With one: the pointer is host memory (ValueError)."""
    fakes = [_fake((3, 4), dtype, 1), _fake((6, 2), dtype, 2)]
    grads = [_fake((3, 4), dtype, 3), _fake((6, 2), dtype, 4)]
    before = [f.host.copy() for f in fakes + grads]
    opt = dlopt.optim.Muon(fakes, lr=0.02)
    with pytest.raises(ValueError if GPU else RuntimeError, match="CUDA") as err:
        opt.step(grads)
    assert "CPU only" not in str(err.value)
    for f, b in zip(fakes + grads, before):
        np.testing.assert_array_equal(f.host, b)
    assert opt.state == {}


@pytest.mark.parametrize("shape, options, error, message", [
    ((4,), {}, ValueError, r"params\[0\]: Muon updates 2-D parameters only, got 1-D"),
    ((2, 3, 4), {}, ValueError, r"params\[0\]: Muon updates 2-D parameters only, got 3-D"),
    ((3, 4), {"state_dtype": "int8"}, ValueError, r"state_dtype='int8' is not supported"),
    ((3, 4), {"state_dtype": "bfloat16"}, ValueError, r"state_dtype='bfloat16' is not supported"),
])
def test_fake_device_bad_input_is_refused_as_on_the_cpu(shape, options, error, message):
    """The host plan's checks (the same function, step_plan.hpp's check_matrix_param), before the
    device is asked for anything and before any state is made: the words of the CPU step."""
    fake = _fake(shape)
    before = fake.host.copy()
    opt = dlopt.optim.Muon([fake], **options)
    with pytest.raises(error, match=message):
        opt.step([_fake(shape, seed=5)])
    assert opt.state == {}
    np.testing.assert_array_equal(fake.host, before)
    host = dlopt.optim.Muon([np.zeros((3, 4), np.float32)], **options)  # the CPU's words, for a 2-D one
    if shape == (3, 4):
        with pytest.raises(error, match=message):
            host.step([np.ones((3, 4), np.float32)])


def test_fake_device_grad_of_another_shape_changes_nothing():
    fake = _fake((3, 4))
    before = fake.host.copy()
    opt = dlopt.optim.Muon([fake], ns_steps=3)
    with pytest.raises(ValueError, match="shape"):
        opt.step([_fake((4, 3))])
    assert opt.state == {}
    np.testing.assert_array_equal(fake.host, before)


# -- with a GPU ---------------------------------------------------------------------------------------

CASES = [  # shape, options
    ((24, 70), {}),
    ((70, 24), {"nesterov": False}),
    ((33, 33), {"adjust_lr_fn": "match_rms_adamw"}),
    ((40, 8), {"nesterov": False, "adjust_lr_fn": "match_rms_adamw"}),
    ((24, 70), {"ns_dtype": "bfloat16"}),
    ((70, 24), {"ns_dtype": "bfloat16", "nesterov": False, "adjust_lr_fn": "match_rms_adamw"}),
]


def _tolerance(dtype, options):
    """Relative to how far the CPU moved the parameter: 1e-5 for the float32 iteration (issue 12),
    1e-12 for float64, a few bfloat16 ulps (2**-8 each) for the bfloat16 iteration."""
    if options.get("ns_dtype") == "bfloat16":
        return 4 / 256
    return 1e-5 if dtype == np.float32 else 1e-12


@gpu
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape, options", CASES)
def test_gpu_muon_equals_cpu_at_tolerance(shape, options, dtype):
    rng = np.random.default_rng(7)
    start = [rng.standard_normal(shape).astype(dtype), rng.standard_normal((5, 7)).astype(dtype)]
    host = [p.copy() for p in start]
    dev = [to_device(p) for p in start]
    cpu_opt = dlopt.optim.Muon(host, lr=0.02, **options)
    gpu_opt = dlopt.optim.Muon(dev, lr=0.02, **options)
    for _ in range(5):
        grads = [rng.standard_normal(p.shape).astype(dtype) for p in start]
        cpu_opt.step(grads)
        gpu_opt.step([to_device(g) for g in grads])
    for i, (p, d, p0) in enumerate(zip(host, dev, start)):
        moved = np.max(np.abs(p - p0))
        err = np.max(np.abs(to_host(d) - p)) / moved
        assert err <= _tolerance(dtype, options), (i, err)
        np.testing.assert_array_equal(gpu_opt.state[i]["momentum_buffer"].to_numpy(),
                                      cpu_opt.state[i]["momentum_buffer"])
        assert gpu_opt.state[i]["step"] == cpu_opt.state[i]["step"] == 5
