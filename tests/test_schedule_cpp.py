"""The C++ closed-form schedules (dlopt/schedule.hpp) against torch.optim.lr_scheduler, 500 steps."""

import math

import numpy as np
import pytest

from dlopt import _core

torch = pytest.importorskip("torch")
S = torch.optim.lr_scheduler
N = 500
BASE = 0.3


def torch_lrs(make, n=N, base=BASE):
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=base)
    sched = make(opt)
    out = []
    for _ in range(n):
        out.append(sched.get_last_lr()[0])
        opt.step()
        sched.step()
    return out


CASES = [
    ("constant", {}, lambda o: S.LambdaLR(o, lambda t: 1.0)),
    ("constant_factor", dict(factor=0.25, total_iters=40), lambda o: S.ConstantLR(o, 0.25, 40)),
    ("step", dict(step_size=30, gamma=0.7), lambda o: S.StepLR(o, 30, 0.7)),
    ("multistep", dict(milestones=[10, 50, 50, 200], gamma=0.5),
     lambda o: S.MultiStepLR(o, [10, 50, 50, 200], 0.5)),
    ("exponential", dict(gamma=0.99), lambda o: S.ExponentialLR(o, 0.99)),
    ("linear", dict(start_factor=0.1, end_factor=1.0, total_iters=100),
     lambda o: S.LinearLR(o, 0.1, 1.0, 100)),
    ("linear", dict(start_factor=1.0, end_factor=0.05, total_iters=321),
     lambda o: S.LinearLR(o, 1.0, 0.05, 321)),
    ("polynomial", dict(total_iters=300, power=2.0), lambda o: S.PolynomialLR(o, 300, 2.0)),
    ("cosine", dict(T_max=200, eta_min=0.01), lambda o: S.CosineAnnealingLR(o, 200, 0.01)),
    ("warmup_cosine", dict(warmup_steps=50, start_factor=0.01, T_max=450, eta_min=0.0),
     lambda o: S.SequentialLR(o, [S.LinearLR(o, 0.01, 1.0, 50), S.CosineAnnealingLR(o, 450)], [50])),
    ("one_cycle", dict(max_lr=BASE, total_steps=N), lambda o: S.OneCycleLR(o, BASE, total_steps=N)),
    ("one_cycle", dict(max_lr=BASE, total_steps=N, pct_start=0.25, anneal_strategy="linear",
                       div_factor=10.0, final_div_factor=100.0, three_phase=True),
     lambda o: S.OneCycleLR(o, BASE, total_steps=N, pct_start=0.25, anneal_strategy="linear",
                            div_factor=10.0, final_div_factor=100.0, three_phase=True)),
]


@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.parametrize("kind,args,make", CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_cpp_schedule_equals_torch(kind, args, make):
    expected = torch_lrs(make)
    got = _core.schedule_lrs({"name": kind, **args}, BASE, N)
    # torch computes several of these recursively (lr *= factor each step); the closed forms
    # agree with the recursion to rounding.
    np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-15)


@pytest.mark.parametrize("decay", ["linear", "cosine", "sqrt"])
def test_cpp_warmup_stable_decay(decay):
    args = dict(name="wsd", warmup_steps=40, stable_steps=200, decay_steps=160,
                final_lr_factor=0.1, warmup_start_factor=0.05, decay=decay)
    got = _core.schedule_lrs(args, BASE, N)
    remaining = {"linear": lambda p: 1 - p, "cosine": lambda p: (1 + math.cos(math.pi * p)) / 2,
                 "sqrt": lambda p: 1 - math.sqrt(p)}[decay]

    def factor(t):
        if t < 40:
            return 0.05 + 0.95 * t / 40
        if t < 240:
            return 1.0
        if t >= 400:
            return 0.1
        return 0.1 + 0.9 * remaining((t - 240) / 160)

    np.testing.assert_allclose(got, [BASE * factor(t) for t in range(N)], rtol=1e-14)
    try:
        from dlopt.lr_scheduler import WarmupStableDecayLR
    except ImportError:
        return
    import dlopt
    opt = dlopt.optim.SGD([np.zeros(1, np.float32)], lr=BASE)
    sched = WarmupStableDecayLR(opt, 40, 200, 160, final_lr_factor=0.1, warmup_start_factor=0.05,
                                decay=decay)
    lrs = []
    for _ in range(N):
        lrs.append(sched.get_last_lr()[0])
        sched.step()
    np.testing.assert_allclose(got, lrs, rtol=1e-14)


def test_cpp_schedule_errors():
    with pytest.raises(ValueError, match="total steps"):
        _core.schedule_lrs(dict(name="one_cycle", max_lr=1.0, total_steps=10), 1.0, 12)
    with pytest.raises(ValueError, match="unknown schedule"):
        _core.schedule_lrs("nope", 1.0, 1)
    with pytest.raises(ValueError, match="T_max"):
        _core.schedule_lrs(dict(name="cosine", T_max=0), 1.0, 1)
    with pytest.raises(ValueError, match="T_min"):  # an unknown key
        _core.schedule_lrs(dict(name="cosine", T_min=3), 1.0, 1)
