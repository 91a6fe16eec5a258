"""dlopt.lr_scheduler: step-by-step equality with torch.optim.lr_scheduler, state_dict round trips,
and the warmup-stable-decay schedule against its formula.

The torch comparisons skip without torch; the rest needs only NumPy and dlopt. A scheduler drives
any object with ``param_groups``, so most tests use a stand-in optimizer; the ``dlopt`` backend
drives the real dlopt optimizers (SGD, Adam) and steps them along.
"""

from __future__ import annotations

import copy
import doctest
import math
import pickle
import random
import warnings
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import pytest

from dlopt import lr_scheduler as dls
from dlopt import optim as dlopt_optim

STEPS = 500
LRS = (0.1, 0.03)  # two param groups with their own lr


# -- optimizers --------------------------------------------------------------------------------


class StandIn:
    """The surface a scheduler needs: ``param_groups`` and ``defaults``, over NumPy arrays."""

    def __init__(self, kind: str):
        extra = {"momentum": {"momentum": 0.9}, "betas": {"betas": (0.9, 0.999)}, "plain": {}}[kind]
        self.defaults = {"lr": LRS[0], **extra}
        self.param_groups = [
            {"params": [np.zeros(3, np.float32)], "lr": lr, **copy.deepcopy(extra)} for lr in LRS
        ]

    def step(self, grads=None) -> None:
        pass


def _dlopt_optimizer(kind: str):
    groups = [{"params": [np.zeros(3, np.float32)], "lr": lr} for lr in LRS]
    if kind == "betas":
        return dlopt_optim.Adam(groups, lr=LRS[0], betas=(0.9, 0.999))
    return dlopt_optim.SGD(groups, lr=LRS[0], momentum=0.9)


def _torch_optimizer(torch, kind: str):
    groups = [{"params": [torch.nn.Parameter(torch.zeros(3))], "lr": lr} for lr in LRS]
    if kind == "betas":
        return torch.optim.Adam(groups, lr=LRS[0], betas=(0.9, 0.999))
    return torch.optim.SGD(groups, lr=LRS[0], momentum=0.9)


def _make_optimizer(backend: str, kind: str):
    return StandIn(kind) if backend == "standin" else _dlopt_optimizer(kind)


def _step_optimizer(opt) -> None:
    if isinstance(opt, StandIn):
        return
    if type(opt).__module__.startswith("torch"):
        opt.step()  # no gradients: a no-op, but torch warns if the scheduler steps first
    else:
        opt.step([np.zeros(3, np.float32) for g in opt.param_groups for _ in g["params"]])


# -- the cases: one factory per scheduler configuration, called with torch's module or dlopt's --


def _warmup(epoch):
    return min(1.0, (epoch + 1) / 50)


def _inverse(epoch):
    return 1.0 / (1 + epoch)


def _decay99(epoch):
    return 0.99**epoch


def _halve_every_10(epoch):
    return 0.5 if epoch % 10 == 0 else 1.0


@dataclass
class Case:
    id: str
    make: Callable[[Any, Any], Any]  # (scheduler module, optimizer) -> scheduler
    kind: str = "momentum"  # optimizer: "momentum" (SGD) or "betas" (Adam)
    cycled: bool = False  # drives the momentum / beta1 too
    metrics: list[float] | None = None  # for ReduceLROnPlateau


def _metrics(seed: int, sign: float = 1.0) -> list[float]:
    rng = random.Random(seed)
    return [sign * (1.0 / (1 + t // 40) + 0.02 * rng.random()) for t in range(STEPS + 1)]


SINGLE = [
    Case("LambdaLR", lambda m, o: m.LambdaLR(o, lr_lambda=_decay99)),
    Case("LambdaLR-list", lambda m, o: m.LambdaLR(o, lr_lambda=[_inverse, _warmup])),
    Case("MultiplicativeLR", lambda m, o: m.MultiplicativeLR(o, lr_lambda=lambda e: 0.99)),
    Case("MultiplicativeLR-list",
         lambda m, o: m.MultiplicativeLR(o, lr_lambda=[_halve_every_10, lambda e: 0.995])),
    Case("StepLR", lambda m, o: m.StepLR(o, step_size=30, gamma=0.5)),
    Case("StepLR-default-gamma", lambda m, o: m.StepLR(o, step_size=7)),
    Case("MultiStepLR", lambda m, o: m.MultiStepLR(o, milestones=[50, 120, 120, 300], gamma=0.3)),
    Case("ConstantLR", lambda m, o: m.ConstantLR(o)),
    Case("ConstantLR-long", lambda m, o: m.ConstantLR(o, factor=0.25, total_iters=100)),
    Case("LinearLR", lambda m, o: m.LinearLR(o)),
    Case("LinearLR-warmup", lambda m, o: m.LinearLR(o, start_factor=0.1, total_iters=200)),
    Case("LinearLR-decay",
         lambda m, o: m.LinearLR(o, start_factor=1.0, end_factor=0.05, total_iters=333)),
    Case("ExponentialLR", lambda m, o: m.ExponentialLR(o, gamma=0.99)),
    Case("PolynomialLR", lambda m, o: m.PolynomialLR(o)),
    Case("PolynomialLR-square", lambda m, o: m.PolynomialLR(o, total_iters=400, power=2.0)),
    Case("PolynomialLR-sqrt", lambda m, o: m.PolynomialLR(o, total_iters=100, power=0.5)),
    Case("CosineAnnealingLR", lambda m, o: m.CosineAnnealingLR(o, T_max=100, eta_min=0.001)),
    Case("CosineAnnealingLR-full", lambda m, o: m.CosineAnnealingLR(o, T_max=STEPS)),
    Case("CosineAnnealingLR-odd", lambda m, o: m.CosineAnnealingLR(o, T_max=37)),
    Case("CosineAnnealingWarmRestarts", lambda m, o: m.CosineAnnealingWarmRestarts(o, T_0=50)),
    Case("CosineAnnealingWarmRestarts-mult2",
         lambda m, o: m.CosineAnnealingWarmRestarts(o, T_0=10, T_mult=2, eta_min=1e-4)),
    Case("CosineAnnealingWarmRestarts-mult3",
         lambda m, o: m.CosineAnnealingWarmRestarts(o, T_0=7, T_mult=3)),
    Case("CyclicLR", lambda m, o: m.CyclicLR(o, base_lr=0.01, max_lr=0.1, step_size_up=20),
         cycled=True),
    Case("CyclicLR-triangular2",
         lambda m, o: m.CyclicLR(o, base_lr=[0.01, 0.001], max_lr=[0.1, 0.05], step_size_up=20,
                                 step_size_down=13, mode="triangular2",
                                 base_momentum=[0.8, 0.7], max_momentum=[0.9, 0.95]),
         cycled=True),
    Case("CyclicLR-exp_range",
         lambda m, o: m.CyclicLR(o, base_lr=0.01, max_lr=0.1, step_size_up=15,
                                 mode="exp_range", gamma=0.995),
         cycled=True),
    Case("CyclicLR-scale_fn",
         lambda m, o: m.CyclicLR(o, base_lr=0.01, max_lr=0.1, step_size_up=9, step_size_down=31,
                                 scale_fn=lambda x: 1.0 / x, scale_mode="cycle"),
         cycled=True),
    Case("CyclicLR-scale_fn-iterations",
         lambda m, o: m.CyclicLR(o, base_lr=0.01, max_lr=0.1, step_size_up=25,
                                 scale_fn=lambda x: 1.0 / (1.0 + x / 100), scale_mode="iterations"),
         cycled=True),
    Case("CyclicLR-betas",
         lambda m, o: m.CyclicLR(o, base_lr=0.001, max_lr=0.01, step_size_up=40,
                                 base_momentum=0.85, max_momentum=0.95),
         kind="betas", cycled=True),
    Case("CyclicLR-no-momentum",
         lambda m, o: m.CyclicLR(o, base_lr=0.01, max_lr=0.1, step_size_up=33,
                                 cycle_momentum=False)),
    Case("OneCycleLR", lambda m, o: m.OneCycleLR(o, max_lr=0.1, total_steps=STEPS), cycled=True),
    Case("OneCycleLR-three-phase-linear",
         lambda m, o: m.OneCycleLR(o, max_lr=[0.1, 0.05], total_steps=STEPS, pct_start=0.25,
                                   anneal_strategy="linear", three_phase=True, div_factor=10.0,
                                   final_div_factor=100.0),
         cycled=True),
    Case("OneCycleLR-epochs-betas",
         lambda m, o: m.OneCycleLR(o, max_lr=0.01, epochs=10, steps_per_epoch=50,
                                   base_momentum=[0.8, 0.85], max_momentum=0.95),
         kind="betas", cycled=True),
    Case("OneCycleLR-three-phase-cos",
         lambda m, o: m.OneCycleLR(o, max_lr=0.1, total_steps=STEPS, three_phase=True),
         cycled=True),
    Case("OneCycleLR-no-momentum",
         lambda m, o: m.OneCycleLR(o, max_lr=0.1, total_steps=STEPS, pct_start=0.1,
                                   cycle_momentum=False)),
]

COMBINED = [
    Case("SequentialLR-linear-cosine",
         lambda m, o: m.SequentialLR(o, [m.LinearLR(o, start_factor=0.01, total_iters=20),
                                         m.CosineAnnealingLR(o, T_max=480)], milestones=[20])),
    Case("SequentialLR-three",
         lambda m, o: m.SequentialLR(o, [m.ConstantLR(o, factor=0.5, total_iters=10),
                                         m.ExponentialLR(o, gamma=0.99),
                                         m.StepLR(o, step_size=25, gamma=0.5)],
                                     milestones=[30, 200])),
    Case("SequentialLR-linear-restarts",
         lambda m, o: m.SequentialLR(o, [m.LinearLR(o, start_factor=0.1, total_iters=25),
                                         m.CosineAnnealingWarmRestarts(o, T_0=50, T_mult=2)],
                                     milestones=[25])),
    Case("SequentialLR-lambda-polynomial",
         lambda m, o: m.SequentialLR(o, [m.LambdaLR(o, _warmup),
                                         m.PolynomialLR(o, total_iters=400, power=2.0)],
                                     milestones=[50])),
    Case("ChainedScheduler-constant-exponential",
         lambda m, o: m.ChainedScheduler([m.ConstantLR(o, factor=0.25, total_iters=40),
                                          m.ExponentialLR(o, gamma=0.995)])),
    Case("ChainedScheduler-three",
         lambda m, o: m.ChainedScheduler([m.LinearLR(o, start_factor=0.2, total_iters=30),
                                          m.MultiStepLR(o, milestones=[100, 250]),
                                          m.CosineAnnealingLR(o, T_max=60, eta_min=1e-3)],
                                         optimizer=o)),
    Case("SequentialLR-of-ChainedScheduler",
         lambda m, o: m.SequentialLR(
             o, [m.ChainedScheduler([m.LinearLR(o, start_factor=0.5, total_iters=10),
                                     m.ExponentialLR(o, gamma=0.98)], optimizer=o),
                 m.StepLR(o, step_size=40, gamma=0.5)],
             milestones=[100])),
]

PLATEAU = [
    Case("ReduceLROnPlateau", lambda m, o: m.ReduceLROnPlateau(o), metrics=_metrics(0)),
    Case("ReduceLROnPlateau-max-abs-cooldown",
         lambda m, o: m.ReduceLROnPlateau(o, mode="max", factor=0.5, patience=3,
                                          threshold=0.01, threshold_mode="abs", cooldown=5,
                                          min_lr=[0.01, 0.001]),
         metrics=_metrics(1, sign=-1.0)),
    Case("ReduceLROnPlateau-min-abs-eps",
         lambda m, o: m.ReduceLROnPlateau(o, factor=0.7, patience=0, threshold=1e-3,
                                          threshold_mode="abs", min_lr=1e-3, eps=1e-3),
         metrics=_metrics(2)),
    Case("ReduceLROnPlateau-max-rel",
         lambda m, o: m.ReduceLROnPlateau(o, mode="max", patience=5, cooldown=2),
         metrics=_metrics(3, sign=-1.0)),
]

WSD = [
    Case("WarmupStableDecayLR-linear",
         lambda m, o: m.WarmupStableDecayLR(o, warmup_steps=50, stable_steps=300, decay_steps=100)),
    Case("WarmupStableDecayLR-cosine",
         lambda m, o: m.WarmupStableDecayLR(o, 20, 200, 200, final_lr_factor=0.1,
                                            warmup_start_factor=0.01, decay="cosine")),
    Case("WarmupStableDecayLR-sqrt",
         lambda m, o: m.WarmupStableDecayLR(o, 0, 100, 333, final_lr_factor=0.05, decay="sqrt")),
]

TORCH_CASES = SINGLE + COMBINED + PLATEAU
ALL_CASES = TORCH_CASES + WSD
CASES = {case.id: case for case in ALL_CASES}


def _ids(cases):
    return [c.id for c in cases]


# -- running a schedule ------------------------------------------------------------------------


def _snapshot(opt, sched, case: Case) -> list[float]:
    """What a step is compared on: each group's lr, get_last_lr() and the cycled momentum."""
    values = [g["lr"] for g in opt.param_groups] + list(sched.get_last_lr())
    if case.cycled:
        key = "betas" if case.kind == "betas" else "momentum"
        values += [g[key][0] if key == "betas" else g[key] for g in opt.param_groups]
    return [float(v) for v in values]


def _advance(opt, sched, case: Case, t: int) -> None:
    """Step ``t`` (1-based): the optimizer, then the scheduler."""
    _step_optimizer(opt)
    if case.metrics is None:
        sched.step()
    else:
        sched.step(case.metrics[t])


def _run(opt, sched, case: Case, start: int = 1, stop: int = STEPS) -> list[list[float]]:
    trace = [_snapshot(opt, sched, case)] if start == 1 else []
    for t in range(start, stop + 1):
        _advance(opt, sched, case, t)
        trace.append(_snapshot(opt, sched, case))
    return trace


def _assert_traces_equal(ours, theirs) -> None:
    """Bit for bit: the same formulas, with the same floating-point operations in the same order."""
    ours, theirs = np.array(ours, dtype=np.float64), np.array(theirs, dtype=np.float64)
    assert ours.shape == theirs.shape
    bad = np.argwhere(ours != theirs)
    assert bad.size == 0, (
        f"first mismatch at step {bad[0][0]}, value {bad[0][1]}: "
        f"{ours[tuple(bad[0])]!r} vs {theirs[tuple(bad[0])]!r}"
    )


# -- side by side with torch -------------------------------------------------------------------


def _torch_scheduler(tls, case: Case, topt):
    with warnings.catch_warnings():
        # torch's SequentialLR steps a nested ChainedScheduler's schedulers at construction,
        # before any optimizer.step(), and warns about it; dlopt checks no call order
        warnings.filterwarnings("ignore", "Detected call of", UserWarning)
        return case.make(tls, topt)


@pytest.mark.parametrize("backend", ["standin", "dlopt"])
@pytest.mark.parametrize("case", TORCH_CASES, ids=_ids(TORCH_CASES))
def test_matches_torch(case: Case, backend: str):
    torch = pytest.importorskip("torch")
    from torch.optim import lr_scheduler as tls

    topt = _torch_optimizer(torch, case.kind)
    tsched = _torch_scheduler(tls, case, topt)
    opt = _make_optimizer(backend, case.kind)
    sched = case.make(dls, opt)
    _assert_traces_equal(_run(opt, sched, case), _run(topt, tsched, case))
    assert getattr(sched, "last_epoch", None) == getattr(tsched, "last_epoch", None)


def test_matches_torch_on_a_torch_optimizer():
    """The schedulers only need ``param_groups``: they drive a torch optimizer as well."""
    torch = pytest.importorskip("torch")
    from torch.optim import lr_scheduler as tls

    for name in ("LambdaLR", "CosineAnnealingLR", "CyclicLR", "OneCycleLR-epochs-betas",
                 "SequentialLR-linear-cosine", "ReduceLROnPlateau"):
        case = CASES[name]
        topt, mine = _torch_optimizer(torch, case.kind), _torch_optimizer(torch, case.kind)
        expected = _run(topt, _torch_scheduler(tls, case, topt), case)
        _assert_traces_equal(_run(mine, case.make(dls, mine), case), expected)


RESUMABLE = [
    lambda m, o, e: m.StepLR(o, step_size=13, gamma=0.5, last_epoch=e),
    lambda m, o, e: m.MultiStepLR(o, milestones=[40, 90], last_epoch=e),
    lambda m, o, e: m.ConstantLR(o, factor=0.5, total_iters=38, last_epoch=e),
    lambda m, o, e: m.LinearLR(o, start_factor=0.2, total_iters=80, last_epoch=e),
    lambda m, o, e: m.ExponentialLR(o, gamma=0.98, last_epoch=e),
    lambda m, o, e: m.PolynomialLR(o, total_iters=90, power=1.5, last_epoch=e),
    lambda m, o, e: m.CosineAnnealingLR(o, T_max=60, eta_min=0.002, last_epoch=e),
    lambda m, o, e: m.CosineAnnealingWarmRestarts(o, T_0=10, T_mult=2, last_epoch=e),
    lambda m, o, e: m.LambdaLR(o, _decay99, last_epoch=e),
    lambda m, o, e: m.MultiplicativeLR(o, _halve_every_10, last_epoch=e),
    lambda m, o, e: m.CyclicLR(o, 0.01, 0.1, step_size_up=10, last_epoch=e),
    lambda m, o, e: m.OneCycleLR(o, 0.1, total_steps=200, last_epoch=e),
]


@pytest.mark.parametrize("make", RESUMABLE, ids=range(len(RESUMABLE)))
def test_last_epoch_resume_matches_torch(make):
    """Constructed with ``last_epoch=37`` on groups that have ``initial_lr``, as torch."""
    torch = pytest.importorskip("torch")
    from torch.optim import lr_scheduler as tls

    topt, opt = _torch_optimizer(torch, "momentum"), StandIn("momentum")
    for o in (topt, opt):
        make(tls if o is topt else dls, o, -1)  # adds initial_lr (and the cyclic keys)
        for g, lr in zip(o.param_groups, (0.07, 0.02)):
            g["lr"] = lr
    case = Case("resume", None, cycled=True)
    _assert_traces_equal(_run(opt, make(dls, opt, 37), case, stop=150),
                         _run(topt, make(tls, topt, 37), case, stop=150))


CLOSED_FORM = [
    lambda m, o: m.StepLR(o, step_size=13, gamma=0.5),
    lambda m, o: m.MultiStepLR(o, milestones=[40, 40, 90]),
    lambda m, o: m.ConstantLR(o, factor=0.5, total_iters=38),
    lambda m, o: m.LinearLR(o, start_factor=0.2, total_iters=80),
    lambda m, o: m.ExponentialLR(o, gamma=0.98),
    lambda m, o: m.PolynomialLR(o, total_iters=90, power=1.5),
    lambda m, o: m.CosineAnnealingLR(o, T_max=60, eta_min=0.002),
    lambda m, o: m.LambdaLR(o, _decay99),
    lambda m, o: m.MultiplicativeLR(o, _halve_every_10),
]


@pytest.mark.parametrize("make", CLOSED_FORM, ids=range(len(CLOSED_FORM)))
def test_deprecated_step_epoch_matches_torch(make):
    torch = pytest.importorskip("torch")
    from torch.optim import lr_scheduler as tls

    topt, opt = _torch_optimizer(torch, "momentum"), StandIn("momentum")
    tsched, sched = make(tls, topt), make(dls, opt)
    ours, theirs = [], []
    for epoch in (3, 10, 38, 39, 40, 41, 57, 200, 7):
        topt.step()
        for s, trace in ((sched, ours), (tsched, theirs)):
            with pytest.warns(UserWarning, match="deprecated"):
                s.step(epoch)
            trace.append(list(s.get_last_lr()))
            s.step()
            trace.append(list(s.get_last_lr()))
    _assert_traces_equal(ours, theirs)


def test_warm_restarts_fractional_epochs_match_torch():
    torch = pytest.importorskip("torch")
    from torch.optim import lr_scheduler as tls

    for t_mult in (1, 2, 3):
        topt, opt = _torch_optimizer(torch, "momentum"), StandIn("momentum")
        tsched = tls.CosineAnnealingWarmRestarts(topt, T_0=5, T_mult=t_mult, eta_min=1e-3)
        sched = dls.CosineAnnealingWarmRestarts(opt, T_0=5, T_mult=t_mult, eta_min=1e-3)
        ours, theirs = [], []
        for epoch in range(40):
            for i in range(7):
                topt.step()
                tsched.step(epoch + i / 7)
                sched.step(epoch + i / 7)
                ours.append(sched.get_last_lr() + [sched.T_cur, sched.T_i, sched.last_epoch])
                theirs.append(tsched.get_last_lr() + [tsched.T_cur, tsched.T_i, tsched.last_epoch])
        topt.step()
        tsched.step()
        sched.step()
        ours.append(sched.get_last_lr() + [sched.T_cur, sched.T_i, sched.last_epoch])
        theirs.append(tsched.get_last_lr() + [tsched.T_cur, tsched.T_i, tsched.last_epoch])
        _assert_traces_equal(ours, theirs)


# -- state_dict --------------------------------------------------------------------------------


def _assert_plain(value, path="state_dict") -> None:
    if isinstance(value, dict):
        for k, v in value.items():
            assert isinstance(k, (str, int)), f"{path}: key {k!r}"
            _assert_plain(v, f"{path}[{k!r}]")
    elif isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            _assert_plain(v, f"{path}[{i}]")
    else:
        assert value is None or type(value) in (bool, int, float, str), (
            f"{path}: {type(value).__name__} is not a plain value"
        )


def _hyperparameters(opt) -> list[dict[str, Any]]:
    return [{k: copy.deepcopy(v) for k, v in g.items() if k != "params"} for g in opt.param_groups]


@pytest.mark.parametrize("case", ALL_CASES, ids=_ids(ALL_CASES))
def test_state_dict_round_trip(case: Case):
    """Save at step 250, load into a fresh scheduler (and optimizer), go on: as uninterrupted."""
    opt = StandIn(case.kind)
    expected = _run(opt, case.make(dls, opt), case)

    opt = StandIn(case.kind)
    sched = case.make(dls, opt)
    first_half = _run(opt, sched, case, stop=STEPS // 2)
    state, groups = sched.state_dict(), _hyperparameters(opt)
    _assert_plain(state)
    saved = pickle.loads(pickle.dumps(state))
    _run(opt, sched, case, start=STEPS // 2 + 1, stop=STEPS // 2 + 17)
    assert state == saved  # a snapshot: stepping on does not change it

    fresh_opt = StandIn(case.kind)
    fresh = case.make(dls, fresh_opt)  # as in torch: create the scheduler, then restore both
    for g, saved in zip(fresh_opt.param_groups, groups):
        g.update(saved)
    fresh.load_state_dict(state)
    second_half = _run(fresh_opt, fresh, case, start=STEPS // 2 + 1)
    _assert_traces_equal(first_half + second_half, expected)


@pytest.mark.parametrize(
    "name",
    ["CyclicLR", "OneCycleLR-epochs-betas", "SequentialLR-linear-cosine",
     "ReduceLROnPlateau-max-abs-cooldown", "WarmupStableDecayLR-cosine"],
)
def test_state_dict_round_trip_with_dlopt_optimizer(name: str):
    """The checkpoint recipe with a real dlopt optimizer: its state_dict carries the group keys
    the schedulers add (initial_lr, max_lr, max_momentum, ...) and its step accepts them."""
    case = CASES[name]
    opt = _dlopt_optimizer(case.kind)
    expected = _run(opt, case.make(dls, opt), case)

    opt = _dlopt_optimizer(case.kind)
    sched = case.make(dls, opt)
    first_half = _run(opt, sched, case, stop=STEPS // 2)
    checkpoint = {"optimizer": opt.state_dict(),
                  "scheduler": pickle.loads(pickle.dumps(sched.state_dict()))}

    fresh_opt = _dlopt_optimizer(case.kind)
    fresh = case.make(dls, fresh_opt)
    fresh_opt.load_state_dict(checkpoint["optimizer"])
    fresh.load_state_dict(checkpoint["scheduler"])
    _assert_traces_equal(first_half + _run(fresh_opt, fresh, case, start=STEPS // 2 + 1), expected)


def test_state_dict_saves_callable_objects_not_functions():
    class Decay:
        def __init__(self, rate):
            self.rate = rate

        def __call__(self, epoch):
            return self.rate**epoch

    opt = StandIn("plain")
    sched = dls.LambdaLR(opt, [Decay(0.5), lambda e: 1.0])
    state = sched.state_dict()
    assert state["lr_lambdas"] == [{"rate": 0.5}, None]
    fresh = dls.LambdaLR(StandIn("plain"), [Decay(0.9), lambda e: 1.0])
    fresh.load_state_dict(state)
    assert fresh.lr_lambdas[0].rate == 0.5
    assert "optimizer" not in state and "_is_initial" not in state


def test_state_dict_matches_torchs_keys():
    torch = pytest.importorskip("torch")
    from torch.optim import lr_scheduler as tls

    for case in TORCH_CASES:
        topt, opt = _torch_optimizer(torch, case.kind), StandIn(case.kind)
        theirs = _torch_scheduler(tls, case, topt).state_dict()
        ours = case.make(dls, opt).state_dict()
        # torch also saves two transient flags; OneCycleLR here keeps the momentum bounds
        # as attributes too, as CyclicLR does
        for key in ("_get_lr_called_within_step", "_is_initial"):
            theirs.pop(key, None)
        assert set(theirs) <= set(ours), case.id
        assert set(ours) - set(theirs) <= {"base_momentums", "max_momentums"}, case.id
        assert ours["_last_lr"] == theirs["_last_lr"], case.id


# -- warmup-stable-decay -----------------------------------------------------------------------


def _wsd_factor(t, warmup, stable, decay, final=0.0, start=0.0, shape="linear"):
    """The schedule written directly from its definition."""
    if t < warmup:
        return start + (1 - start) * t / warmup
    if t < warmup + stable:
        return 1.0
    if t >= warmup + stable + decay:
        return final
    p = (t - warmup - stable) / decay
    g = {"linear": 1 - p, "cosine": 0.5 * (1 + math.cos(math.pi * p)), "sqrt": 1 - math.sqrt(p)}
    return final + (1 - final) * g[shape]


@pytest.mark.parametrize("backend", ["standin", "dlopt"])
@pytest.mark.parametrize(
    "args",
    [
        dict(warmup=50, stable=300, decay=100),
        dict(warmup=20, stable=200, decay=200, final=0.1, start=0.01, shape="cosine"),
        dict(warmup=0, stable=100, decay=333, final=0.05, shape="sqrt"),
        dict(warmup=10, stable=0, decay=0, final=0.3, start=0.5),
        dict(warmup=1, stable=1, decay=1, shape="cosine"),
        dict(warmup=600, stable=0, decay=10),
    ],
)
def test_warmup_stable_decay_formula(args, backend):
    opt = _make_optimizer(backend, "momentum")
    sched = dls.WarmupStableDecayLR(
        opt, args["warmup"], args["stable"], args["decay"], final_lr_factor=args.get("final", 0.0),
        warmup_start_factor=args.get("start", 0.0), decay=args.get("shape", "linear"),
    )
    for t in range(STEPS + 1):
        if t:
            _step_optimizer(opt)
            sched.step()
        factor = _wsd_factor(t, **args)
        expected = [lr * factor for lr in LRS]
        assert sched.last_epoch == t
        np.testing.assert_allclose(sched.get_last_lr(), expected, rtol=1e-12, atol=0.0)
        assert [g["lr"] for g in opt.param_groups] == sched.get_last_lr()


def test_warmup_stable_decay_landmarks():
    opt = StandIn("plain")
    sched = dls.WarmupStableDecayLR(opt, 10, 20, 30, final_lr_factor=0.1, decay="cosine")
    lrs = [sched.get_last_lr()[0]]
    for _ in range(70):
        sched.step()
        lrs.append(sched.get_last_lr()[0])
    assert lrs[0] == 0.0 and lrs[10] == LRS[0] and lrs[30] == LRS[0]
    assert all(a <= b for a, b in zip(lrs[:10], lrs[1:11]))  # warms up
    assert all(a >= b for a, b in zip(lrs[30:60], lrs[31:61]))  # decays
    assert lrs[60] == pytest.approx(0.1 * LRS[0], rel=1e-15) and lrs[60:] == [lrs[60]] * 11


def test_warmup_stable_decay_in_sequential_lr():
    """In a SequentialLR it starts at its milestone, from its own epoch 0."""
    opt = StandIn("plain")
    sched = dls.SequentialLR(
        opt,
        [dls.ConstantLR(opt, factor=1.0, total_iters=5),
         dls.WarmupStableDecayLR(opt, 0, 0, 10, final_lr_factor=0.5)],
        milestones=[5],
    )
    lrs = []
    for _ in range(16):
        lrs.append(sched.get_last_lr()[0])
        sched.step()
    assert lrs[:6] == [LRS[0]] * 6
    np.testing.assert_allclose(lrs[5:16], [LRS[0] * (1 - 0.05 * k) for k in range(11)], rtol=1e-12)


@pytest.mark.parametrize(
    "kwargs, error",
    [(dict(warmup_steps=-1), ValueError), (dict(stable_steps=1.5), TypeError), (dict(decay="exp"), ValueError),
     (dict(final_lr_factor=-0.1), ValueError), (dict(warmup_start_factor=2.0), ValueError),
     (dict(final_lr_factor=math.inf), ValueError), (dict(final_lr_factor=math.nan), ValueError),
     (dict(warmup_start_factor=math.nan), ValueError), (dict(final_lr_factor=10**400), ValueError),
     (dict(decay_steps=10**400), ValueError), (dict(warmup_steps=2**52, stable_steps=2**52), ValueError),
     (dict(final_lr_factor="0.1"), TypeError), (dict(warmup_steps=True), TypeError), (dict(decay=None), ValueError)],
)
def test_warmup_stable_decay_rejects(kwargs, error):
    args = {**dict(warmup_steps=1, stable_steps=1, decay_steps=1), **kwargs}
    opt = StandIn("plain")
    with pytest.raises(error, match=next(iter(kwargs))):
        dls.WarmupStableDecayLR(opt, **args)
    assert "initial_lr" not in opt.param_groups[0]  # nothing changed


# -- behaviour and errors ----------------------------------------------------------------------


def test_initial_lr_and_base_lrs():
    opt = StandIn("plain")
    sched = dls.ExponentialLR(opt, gamma=0.5)
    assert [g["initial_lr"] for g in opt.param_groups] == list(LRS) == sched.base_lrs
    assert sched.last_epoch == 0 and sched.get_last_lr() == list(LRS)
    sched.get_last_lr()[0] = 123.0  # a copy
    assert sched.get_last_lr() == list(LRS)


def test_resume_without_initial_lr_raises():
    with pytest.raises(KeyError, match="initial_lr"):
        dls.StepLR(StandIn("plain"), step_size=3, last_epoch=5)


def test_needs_param_groups():
    with pytest.raises(TypeError, match="param_groups"):
        dls.StepLR(object(), step_size=3)


def test_cycle_momentum_needs_momentum_or_betas():
    for cls, kwargs in ((dls.CyclicLR, dict(base_lr=0.01, max_lr=0.1)),
                        (dls.OneCycleLR, dict(max_lr=0.1, total_steps=10))):
        with pytest.raises(ValueError, match="momentum"):
            cls(StandIn("plain"), **kwargs)
        cls(StandIn("plain"), cycle_momentum=False, **kwargs)


def test_one_cycle_stops_at_total_steps():
    sched = dls.OneCycleLR(StandIn("momentum"), max_lr=0.1, total_steps=10)
    for _ in range(10):
        sched.step()
    with pytest.raises(ValueError, match="total steps"):
        sched.step()


def test_per_group_lists_must_match():
    with pytest.raises(ValueError, match="per param group"):
        dls.LambdaLR(StandIn("plain"), [_warmup])
    with pytest.raises(ValueError, match="per param group"):
        dls.CyclicLR(StandIn("momentum"), base_lr=[0.1], max_lr=1.0)


def test_combinations_check_their_schedulers():
    opt, other = StandIn("plain"), StandIn("plain")
    with pytest.raises(ValueError, match="same optimizer"):
        dls.ChainedScheduler([dls.ExponentialLR(opt, 0.9), dls.ExponentialLR(other, 0.9)])
    with pytest.raises(ValueError, match="ReduceLROnPlateau"):
        dls.SequentialLR(opt, [dls.ExponentialLR(opt, 0.9), dls.ReduceLROnPlateau(opt)], [5])
    with pytest.raises(ValueError, match="milestone"):
        dls.SequentialLR(opt, [dls.ExponentialLR(opt, 0.9)], [5])
    with pytest.raises(ValueError):
        dls.ChainedScheduler([])


def test_reduce_on_plateau_takes_numpy_metrics():
    opt = StandIn("plain")
    sched = dls.ReduceLROnPlateau(opt, patience=0, factor=0.5)
    for metric in (np.float32(1.0), np.array(1.0), np.float64(2.0)):
        sched.step(metric)
    assert sched.get_last_lr() == [LRS[0] * 0.25, LRS[1] * 0.25]


def test_is_an_lr_scheduler():
    opt = StandIn("momentum")
    for sched in (dls.ReduceLROnPlateau(opt), dls.ChainedScheduler([dls.StepLR(opt, 2)]),
                  dls.WarmupStableDecayLR(opt, 1, 1, 1), dls.OneCycleLR(opt, 0.1, 10)):
        assert isinstance(sched, dls.LRScheduler)


def test_docstring_examples():
    result = doctest.testmod(dls, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0
