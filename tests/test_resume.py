"""Resume: 2N steps straight == N steps, save, load into fresh objects, N more -- bitwise.

For every optimizer, every scheduler of dlopt.lr_scheduler, and Lookahead / EMA / gradient
accumulation together.
"""

import numpy as np
import pytest

import dlopt
from optim_cases import FULL_STATE_CONFIGS, make_optimizer

S = pytest.importorskip("dlopt.lr_scheduler")

N = 12
SHAPES = {"layer.weight": (6, 5), "layer.bias": (6,), "big": (20000,)}


def fresh_params(seed, dtype=np.float32):
    rng = np.random.default_rng(seed)
    return {k: rng.standard_normal(s).astype(dtype) for k, s in SHAPES.items()}


def grads_at(t, params):
    """Deterministic gradients for step t that depend on the parameters (so state matters)."""
    rng = np.random.default_rng(1000 + t)
    return [(rng.standard_normal(p.shape) + 0.1 * p).astype(p.dtype) for p in params.values()]


def metric_at(t):
    return [5.0, 4.0, 4.0, 4.0, 3.5, 3.5, 3.5, 3.5, 3.0][t % 9]


SCHEDULERS = {
    "LambdaLR": lambda o: S.LambdaLR(o, lambda t: 0.95 ** t),
    "MultiplicativeLR": lambda o: S.MultiplicativeLR(o, lambda t: 0.97),
    "StepLR": lambda o: S.StepLR(o, 3, 0.5),
    "MultiStepLR": lambda o: S.MultiStepLR(o, [2, 5, 9, 15], 0.5),
    "ConstantLR": lambda o: S.ConstantLR(o, 0.5, 4),
    "LinearLR": lambda o: S.LinearLR(o, 0.2, 1.0, 6),
    "ExponentialLR": lambda o: S.ExponentialLR(o, 0.9),
    "PolynomialLR": lambda o: S.PolynomialLR(o, 16, 2.0),
    "CosineAnnealingLR": lambda o: S.CosineAnnealingLR(o, 7, 0.001),
    "CosineAnnealingWarmRestarts": lambda o: S.CosineAnnealingWarmRestarts(o, 3, 2, 0.001),
    "CyclicLR": lambda o: S.CyclicLR(o, 0.01, 0.1, step_size_up=3),
    "OneCycleLR": lambda o: S.OneCycleLR(o, 0.1, total_steps=2 * N + 2),
    "SequentialLR": lambda o: S.SequentialLR(
        o, [S.LinearLR(o, 0.1, 1.0, 5), S.ExponentialLR(o, 0.9)], milestones=[5]),
    "ChainedScheduler": lambda o: S.ChainedScheduler([S.StepLR(o, 3, 0.5), S.ExponentialLR(o, 0.95)]),
    "ReduceLROnPlateau": lambda o: S.ReduceLROnPlateau(o, patience=1, factor=0.5),
    "WarmupStableDecayLR": lambda o: S.WarmupStableDecayLR(o, 4, 6, 10, final_lr_factor=0.1),
}


def test_every_scheduler_is_covered():
    assert set(SCHEDULERS) == set(S.__all__) - {"LRScheduler"}


class Run:
    """Parameters, an optimizer, optionally a scheduler / Lookahead / EMA / accumulator."""

    def __init__(self, seed, opt_name, sched=None, extras=False):
        self.params = fresh_params(seed)
        overrides = {"momentum": 0.9} if sched in ("CyclicLR", "OneCycleLR") else {}
        self.opt = make_optimizer(opt_name, list(self.params.values()), **overrides)
        self.sched = SCHEDULERS[sched](self.opt) if sched else None
        self.extras = extras
        if extras:
            self.opt = dlopt.Lookahead(self.opt, k=4, alpha=0.5)
            self.ema = dlopt.EMA(self.params, decay=0.9)
            self.acc = dlopt.GradientAccumulator(self.opt, steps=3)

    def train(self, start, stop):
        for t in range(start, stop):
            grads = grads_at(t, self.params)
            if self.extras:
                self.acc.add(grads)
                if not self.acc.ready:
                    continue
                dlopt.clip_grad_norm_(self.acc.mean(), 5.0)
                self.acc.step()
                self.ema.update()
            else:
                dlopt.clip_grad_norm_(grads, 50.0)
                self.opt.step(grads)
            if isinstance(self.sched, S.ReduceLROnPlateau):
                self.sched.step(metric_at(t))
            elif self.sched is not None:
                self.sched.step()

    def save(self, path):
        extra = {"ema": self.ema.state_dict(), "acc": self.acc.state_dict()} if self.extras else None
        dlopt.save(path, optimizer=self.opt, scheduler=self.sched, params=self.params, extra=extra)

    def load(self, path):
        ckpt = dlopt.load(path, optimizer=self.opt, scheduler=self.sched, params=self.params)
        if self.extras:
            self.ema.load_state_dict(ckpt["extra"]["ema"])
            self.acc.load_state_dict(ckpt["extra"]["acc"])


def assert_same(a, b):
    for k in a.params:
        np.testing.assert_array_equal(a.params[k], b.params[k], err_msg=k)
    assert [g["lr"] for g in a.opt.param_groups] == [g["lr"] for g in b.opt.param_groups]
    if a.sched is not None:
        assert a.sched.get_last_lr() == b.sched.get_last_lr()
    if a.extras:
        for x, y in zip(a.ema.shadow, b.ema.shadow):
            np.testing.assert_array_equal(x, y)


def resume_check(tmp_path, opt_name, sched=None, extras=False, split=N):
    straight = Run(0, opt_name, sched, extras)
    straight.train(0, 2 * N)
    first = Run(0, opt_name, sched, extras)
    first.train(0, split)
    path = tmp_path / "ckpt.dlopt"
    first.save(path)
    resumed = Run(12345, opt_name, sched, extras)  # different initial values: all must be loaded
    resumed.load(path)
    resumed.train(split, 2 * N)
    assert_same(straight, resumed)


@pytest.mark.parametrize("opt_name", sorted(FULL_STATE_CONFIGS))
def test_resume_every_optimizer(tmp_path, opt_name):
    resume_check(tmp_path, opt_name, sched="StepLR")


@pytest.mark.parametrize("sched", sorted(SCHEDULERS))
@pytest.mark.parametrize("split", [N, N + 1])  # N + 1: not a multiple of any period
def test_resume_every_scheduler(tmp_path, sched, split):
    resume_check(tmp_path, "SGD", sched=sched, split=split)


@pytest.mark.parametrize("opt_name", ["Adam", "SGD"])
@pytest.mark.parametrize("split", [N, N + 1])  # at an accumulation boundary and in the middle
def test_resume_with_lookahead_ema_and_accumulation(tmp_path, opt_name, split):
    resume_check(tmp_path, opt_name, sched="CosineAnnealingLR", extras=True, split=split)
