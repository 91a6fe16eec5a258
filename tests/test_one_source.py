"""Issue 16: each idea in one place. The Python faces call the C++ definitions, so they agree with
the C++ users of the same idea to the bit and the message."""

import math
import warnings

import numpy as np
import pytest

import dlopt
from dlopt import _core
from dlopt import lr_scheduler as S


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
