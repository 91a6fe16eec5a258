"""Issue 16: each idea in one place. The Python faces call the C++ definitions, so they agree with
the C++ users of the same idea to the bit and the message."""

import math
import warnings

import numpy as np
import pytest

import dlopt
from dlopt import _core
from dlopt import lr_scheduler as S
from test_cuda import FakeDeviceArray  # __cuda_array_interface__ over host memory: the checks before any device


class Groups:
    def __init__(self, lr):
        self.param_groups = [{"lr": lr, "momentum": 0.9}]
        self.defaults = {"momentum": 0.9}


def trace(sched, steps):
    out = []
    for _ in range(steps):
        out.append(sched.get_last_lr()[0])
        sched.step()
    return out


@pytest.mark.parametrize("decay", ["linear", "cosine", "sqrt"])
def test_wsd_scheduler_equals_the_linear_models_schedule(decay):
    spec = {"name": "wsd", "warmup_steps": 3, "stable_steps": 4, "decay_steps": 5,
            "final_lr_factor": 0.1, "warmup_start_factor": 0.2, "decay": decay}
    sched = S.WarmupStableDecayLR(Groups(0.3), 3, 4, 5, final_lr_factor=0.1,
                                  warmup_start_factor=0.2, decay=decay)
    assert trace(sched, 15) == _core.schedule_lrs(spec, 0.3, 15)


@pytest.mark.parametrize("three_phase", [False, True])
@pytest.mark.parametrize("anneal", ["cos", "linear"])
def test_one_cycle_scheduler_equals_the_linear_models_schedule(three_phase, anneal):
    spec = {"name": "one_cycle", "max_lr": 0.5, "total_steps": 17, "pct_start": 0.35,
            "anneal_strategy": anneal, "div_factor": 10.0, "final_div_factor": 100.0,
            "three_phase": three_phase}
    sched = S.OneCycleLR(Groups(0.1), 0.5, total_steps=17, pct_start=0.35, anneal_strategy=anneal,
                         div_factor=10.0, final_div_factor=100.0, three_phase=three_phase)
    assert trace(sched, 17) == _core.schedule_lrs(spec, 0.1, 17)


def test_closed_forms_are_the_cpp_structs():
    sched = S.CosineAnnealingLR(Groups(0.2), T_max=9, eta_min=0.01)
    with pytest.warns(UserWarning, match="deprecated"):
        sched.step(4)
    assert sched.get_last_lr() == [_core.schedule_lr("cosine", 0.2, 4, T_max=9, eta_min=0.01)]
    assert sched.get_last_lr() == _core.schedule_lrs({"name": "cosine", "T_max": 9, "eta_min": 0.01},
                                                     0.2, 5)[4:]


def test_betas_split_in_one_place():
    w = np.zeros(3, np.float32)
    with pytest.raises(TypeError, match=r"param_groups\[0\]: betas: expected a pair of floats"):
        dlopt.optim.Adam([w], betas=(0.9,))
    X, y = np.ones((8, 2), np.float32), np.ones(8, np.float32)
    with pytest.raises(TypeError, match=r"optimizer_params: betas: expected a pair of floats"):
        dlopt.LinearRegression(optimizer="adam", optimizer_params={"betas": (0.9,)}).fit(X, y)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # two epochs do not converge
        model = dlopt.LinearRegression(optimizer="adam", optimizer_params={"betas": (0.8, 0.99)},
                                       epochs=2).fit(X, y)
    assert np.all(np.isfinite(model.coef_))


@pytest.mark.parametrize("norm_type", [2.0, 1, math.inf, 0.5, 1e-5, 3e20])
def test_nonfinite_norm_message_is_torchs_from_cpp(norm_type):
    g = [np.array([np.inf, 1.0])]
    expected = f"The total norm of order {float(norm_type)} for gradients"
    with pytest.raises(RuntimeError) as a:
        dlopt.get_total_norm(g, norm_type, error_if_nonfinite=True)
    with pytest.raises(RuntimeError) as b:
        dlopt.clip_grad_norm_(g, 1.0, norm_type, error_if_nonfinite=True)
    assert str(a.value) == str(b.value) and str(a.value).startswith(expected)
    np.testing.assert_array_equal(g[0], [np.inf, 1.0])


# -- Python's param-group keywords: one table (dlopt/param_group_keys.hpp) for live groups and checkpoints --

@pytest.mark.parametrize("group, fields", [
    ({"betas": (0.8, 0.9)}, {"beta1": 0.8, "beta2": 0.9}),
    ({"betas": [0.8, 0.9, 0.99]}, {"beta1": 0.8, "beta2": 0.9, "beta3": 0.99}),
    ({"eps": 1e-6}, {"eps": 1e-6}),
    ({"eps": (None, 1e-3)}, {"eps1": -1.0, "eps2": 1e-3}),
    ({"etas": (0.4, 1.3), "step_sizes": (1e-5, 10.0)},
     {"etaminus": 0.4, "etaplus": 1.3, "step_size_min": 1e-5, "step_size_max": 10.0}),
    ({"ns_coefficients": (3.0, -4.0, 2.0)}, {"ns_a": 3.0, "ns_b": -4.0, "ns_c": 2.0}),
    ({"alpha_warmup": None, "beta3_warmup": 7}, {"alpha_warmup": 0, "beta3_warmup": 7}),
    ({"clip_exponent": None}, {"clip": False}),
    ({"adjust_lr_fn": None, "ns_dtype": "bfloat16"}, {"adjust_lr": 0.0, "ns_bfloat16": True}),
    ({"adjust_lr_fn": "match_rms_adamw", "ns_dtype": "float32"}, {"adjust_lr": 1.0, "ns_bfloat16": False}),
    ({"lr": 0.1, "state_dtype": "bfloat16", "seed": 3}, {"lr": 0.1}),
])
def test_group_keywords_become_config_fields(group, fields):
    out = _core.config_fields(group)
    assert out == fields
    assert [type(v) for v in out.values()] == [type(v) for v in fields.values()]


@pytest.mark.parametrize("group, error, message", [
    ({"betas": (0.9,)}, TypeError, "betas: expected a pair of floats, got"),
    ({"betas": 0.9}, TypeError, "betas: expected a pair of floats, got"),
    ({"eps": (1e-30, 1e-3, 1.0)}, TypeError, r"eps: expected a pair \(eps1 or None, eps2\), got"),
    ({"etas": 0.5}, TypeError, r"etas: expected a pair of floats \(etaminus, etaplus\), got"),
    ({"ns_coefficients": (1.0, 2.0)}, TypeError, r"ns_coefficients: expected three floats \(a, b, c\), got"),
    ({"adjust_lr_fn": "other"}, ValueError, "adjust_lr_fn: expected None, 'original' or 'match_rms_adamw', got"),
    ({"ns_dtype": None}, ValueError, "ns_dtype: expected 'float32' or 'bfloat16', got None"),
])
def test_group_keywords_refused_with_the_tables_words(group, error, message):
    with pytest.raises(error, match="^where: " + message):
        _core.config_fields(group, "where: ")


# -- the linear models' config: C++'s checks, in C++'s words (no Python copy) -------------------------

@pytest.mark.parametrize("config, error, message", [
    ({"penalty": True}, TypeError, "penalty: expected None, 'l2', 'l1' or 'elasticnet', got True"),
    ({"penalty": 1}, TypeError, "penalty: expected None, 'l2', 'l1' or 'elasticnet', got 1"),
    ({"optimizer": 3}, TypeError, "optimizer: expected a name such as 'adam', got 3"),
    ({"alpha": 1j}, TypeError, "alpha: expected a number, got 1j"),
    ({"lr": 10**400}, ValueError, "lr: 1000.* is out of range"),
    ({"l1_ratio": np.array([0.1, 0.2])}, TypeError, "l1_ratio: expected a number"),
    ({"tol": math.nan}, ValueError, r"Invalid tol: nan \(must be >= 0, or None to disable\)"),
])
def test_linear_config_checks_are_cpps(config, error, message):
    with pytest.raises(error, match=message):
        _core.check_train_config(config)
    X, y = np.ones((8, 2)), np.arange(8.0)
    with pytest.raises(error, match=message):  # the estimators raise the same
        dlopt.LinearRegression(solver="gradient", **config).fit(X, y)


# -- what the GPU cannot run: one decision, one message (dlopt/cuda/support.hpp), testable without a GPU --

@pytest.mark.parametrize("optimizer", ["schedulefreesgd", "ScheduleFreeAdamW"])
def test_schedule_free_linear_models_are_taken_on_both_devices(optimizer):
    # the GPU trainer's device optimizer has the train / eval switch (it used to be refused here)
    _core.check_train_config({"optimizer": optimizer}, "cuda", "float32")
    _core.check_train_config({"optimizer": optimizer}, "cpu")


def test_lbfgs_has_no_cuda_step_and_is_refused_in_one_message():
    # L-BFGS is not a rule (a host line search): the one optimizer without a CUDA step
    with pytest.raises(ValueError, match="^LBFGS runs on the CPU only for now"):
        _core.check_train_config({"optimizer": "lbfgs"}, "cuda", "float32")
    _core.check_train_config({"optimizer": "lbfgs"}, "cpu")


@pytest.mark.parametrize("name", ["LAMB", "LARS", "Muon", "Adafactor"])
def test_reduction_and_matrix_rules_have_a_cuda_step(name):
    """Their reduction phase (LAMB, LARS), matrix products (Muon, cuda/muon.cu) or factored statistics
    (Adafactor, cuda/adafactor.cu) run on the GPU:
    the linear models and the device plan take them (without a GPU a device step then fails for want
    of a device, not with the CPU-only refusal)."""
    assert _core.runs_on_device(name)
    _core.check_train_config({"optimizer": name.lower()}, "cuda", "float32")
    fake = FakeDeviceArray(np.zeros((2, 3), np.float32))
    opt = getattr(dlopt.optim, name)([fake])
    with pytest.raises((RuntimeError, ValueError)) as err:
        opt.step([FakeDeviceArray(np.zeros((2, 3), np.float32))])
    assert "CPU only" not in str(err.value)
    assert opt.state == {}


@pytest.mark.parametrize("state_dtype, dtype", [("bfloat16", np.float32), ("int8", np.float64),
                                                ("float32", np.float64)])
def test_every_state_dtype_is_taken_by_both_gpu_front_ends(state_dtype, dtype):
    """The GPU linear model (make_device_optimizer) and the Python device plan both keep state in the
    CPU's stored formats: the config check passes, and without a GPU a device step fails for want of
    a device, never with a CPU-only refusal (the bits: tests/test_cuda_low_precision.py, on a GPU)."""
    _core.check_train_config({"optimizer_params": {"state_dtype": state_dtype}}, "cuda", np.dtype(dtype).name)
    fake = FakeDeviceArray(np.zeros(3, dtype))
    opt = dlopt.optim.Adam([fake], state_dtype=state_dtype)
    with pytest.raises((RuntimeError, ValueError)) as plan:
        opt.step([FakeDeviceArray(np.zeros(3, dtype))])
    assert "CPU only" not in str(plan.value)
    assert opt.state == {}


@pytest.mark.parametrize("params", [{"state_dtype": "float32"}, {"state_dtype": None}, {"master_weights": True}])
def test_storage_options_the_gpu_keeps_as_the_cpu_pass(params):
    """float32 state for float32 parameters is their own dtype; master_weights concerns 16-bit
    parameters only, which the linear models never have: as on the CPU for float32, it changes nothing."""
    _core.check_train_config({"optimizer_params": params}, "cuda", "float32")
