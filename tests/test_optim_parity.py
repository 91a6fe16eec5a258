"""Numerical parity of dlopt's optimizers with an independent NumPy reference and with torch.optim.

Every case of ``CASES`` (an optimizer and a set of options) runs ``STEPS`` steps on several
parameters of different shapes held by one optimizer, with fresh seeded random gradients each
step and a learning-rate change at step ``LR_CHANGE_STEP``. After every step, dlopt's parameters
must match the other side's (``tests/reference.py``, or torch.optim 2.13 where torch has the
optimizer); at the end, so must its state (buffers, step counters, NAdam's ``mu_product``).

Run: ``python -m pytest tests/test_optim_parity.py -q``. The torch comparisons skip when torch is
not installed.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest

import dlopt.optim
from reference import DEFAULTS, REFERENCES

STEPS = 30
LR_CHANGE_STEP = 15  # before this (0-based) step, group 0's lr is set to LR_CHANGE_FACTOR * lr
LR_CHANGE_FACTOR = 0.3
SHAPES = [(7,), (3, 5), (2, 3, 4), (1,)]
TORCH_HAS = {"SGD", "Adam", "AdamW", "Adagrad", "RMSprop", "Adadelta", "Adamax", "NAdam", "RAdam", "Rprop", "ASGD", "Adafactor"}

# float32: rtol 1e-5 as required. Elements that pass near zero have no meaningful relative
# error, so a small atol is added: 1e-6 is ~8 float32 ulps at magnitude 1 (our parameters are
# O(1) standard-normal draws), the size of rounding differences that 30 steps of differently
# ordered (vectorised, FMA-contracted) float32 arithmetic can accumulate; a genuine formula
# error moves values by far more.
# float64: rtol 1e-10, with atol 1e-12 for the same near-zero elements (~4500 double ulps at 1).
TOLERANCES = {
    np.float32: dict(rtol=1e-5, atol=1e-6),
    np.float64: dict(rtol=1e-10, atol=1e-12),
}

# The case table: (optimizer, constructor keywords). Every boolean flag appears on and off, every
# numeric option at a non-default value, and the interacting options together.
CASES = [
    ("SGD", {}),
    ("SGD", {"lr": 0.05}),
    ("SGD", {"lr": 0.05, "weight_decay": 0.1}),
    ("SGD", {"lr": 0.05, "maximize": True}),
    ("SGD", {"lr": 0.05, "momentum": 0.9}),
    ("SGD", {"lr": 0.05, "momentum": 0.9, "dampening": 0.3}),
    ("SGD", {"lr": 0.05, "momentum": 0.9, "nesterov": True}),
    ("SGD", {"lr": 0.05, "momentum": 0.8, "dampening": 0.2, "weight_decay": 0.05, "maximize": True}),
    ("SGD", {"lr": 0.05, "momentum": 0.9, "nesterov": True, "weight_decay": 0.1, "maximize": True}),
    ("Adam", {}),
    ("Adam", {"lr": 0.01, "betas": (0.8, 0.95), "eps": 1e-6}),
    ("Adam", {"lr": 0.01, "amsgrad": True}),
    ("Adam", {"lr": 0.01, "weight_decay": 0.1}),
    ("Adam", {"lr": 0.01, "weight_decay": 0.1, "decoupled_weight_decay": True}),
    ("Adam", {"lr": 0.01, "maximize": True}),
    ("Adam", {"lr": 0.01, "amsgrad": True, "weight_decay": 0.1, "decoupled_weight_decay": True,
              "maximize": True}),
    ("Adam", {"lr": 0.01, "amsgrad": True, "weight_decay": 0.1, "maximize": True}),
    ("AdamW", {}),
    ("AdamW", {"lr": 0.01, "weight_decay": 0.1}),
    ("AdamW", {"lr": 0.01, "weight_decay": 0.0}),
    ("AdamW", {"lr": 0.01, "amsgrad": True, "maximize": True, "betas": (0.85, 0.99)}),
    ("Adagrad", {}),
    ("Adagrad", {"lr": 0.05, "lr_decay": 0.05}),
    ("Adagrad", {"lr": 0.05, "weight_decay": 0.1}),
    ("Adagrad", {"lr": 0.05, "initial_accumulator_value": 0.5}),
    ("Adagrad", {"lr": 0.05, "eps": 1e-3}),
    ("Adagrad", {"lr": 0.05, "maximize": True}),
    ("Adagrad", {"lr": 0.05, "lr_decay": 0.02, "weight_decay": 0.1,
                 "initial_accumulator_value": 0.1, "maximize": True}),
    ("RMSprop", {}),
    ("RMSprop", {"lr": 0.01, "alpha": 0.9, "eps": 1e-4}),
    ("RMSprop", {"lr": 0.01, "weight_decay": 0.1}),
    ("RMSprop", {"lr": 0.01, "momentum": 0.9}),
    ("RMSprop", {"lr": 0.01, "centered": True}),
    ("RMSprop", {"lr": 0.01, "centered": True, "momentum": 0.9}),
    ("RMSprop", {"lr": 0.01, "maximize": True}),
    ("RMSprop", {"lr": 0.01, "centered": True, "momentum": 0.5, "weight_decay": 0.1,
                 "maximize": True}),
    ("Adadelta", {}),
    ("Adadelta", {"lr": 0.5, "rho": 0.8, "eps": 1e-4}),
    ("Adadelta", {"weight_decay": 0.1}),
    ("Adadelta", {"maximize": True}),
    ("Adadelta", {"lr": 0.5, "weight_decay": 0.1, "maximize": True}),
    ("Adamax", {}),
    ("Adamax", {"lr": 0.01, "betas": (0.8, 0.95), "eps": 1e-4}),
    ("Adamax", {"lr": 0.01, "weight_decay": 0.1}),
    ("Adamax", {"lr": 0.01, "maximize": True}),
    ("Adamax", {"lr": 0.01, "weight_decay": 0.1, "maximize": True}),
    ("NAdam", {}),
    ("NAdam", {"lr": 0.01, "betas": (0.8, 0.95), "eps": 1e-6, "momentum_decay": 0.01}),
    ("NAdam", {"lr": 0.01, "weight_decay": 0.1}),
    ("NAdam", {"lr": 0.01, "weight_decay": 0.1, "decoupled_weight_decay": True}),
    ("NAdam", {"lr": 0.01, "maximize": True}),
    ("NAdam", {"lr": 0.01, "weight_decay": 0.1, "decoupled_weight_decay": True, "maximize": True}),
    ("RAdam", {}),
    ("RAdam", {"lr": 0.01, "betas": (0.8, 0.95), "eps": 1e-6}),
    ("RAdam", {"lr": 0.01, "weight_decay": 0.1}),
    ("RAdam", {"lr": 0.01, "weight_decay": 0.1, "decoupled_weight_decay": True}),
    ("RAdam", {"lr": 0.01, "maximize": True}),
    ("RAdam", {"lr": 0.01, "weight_decay": 0.1, "decoupled_weight_decay": True, "maximize": True}),
    ("Lion", {}),
    ("Lion", {"lr": 0.01, "betas": (0.95, 0.98)}),
    ("Lion", {"lr": 0.01, "weight_decay": 0.5}),
    ("Lion", {"lr": 0.01, "maximize": True}),
    ("Lion", {"lr": 0.01, "weight_decay": 0.5, "maximize": True}),
    ("LAMB", {}),
    ("LAMB", {"lr": 0.01, "betas": (0.8, 0.95), "eps": 1e-8}),
    ("LAMB", {"lr": 0.01, "weight_decay": 0.1}),
    ("LAMB", {"lr": 0.01, "weight_decay": 0.1, "maximize": True}),
    ("DynamicLR", {}),
    ("DynamicLR", {"lr": 0.1}),
    ("DynamicLR", {"lr": 0.1, "beta": 0.25}),
    ("DynamicLR", {"lr": 0.1, "beta": 0.0}),
    ("Rprop", {}),
    ("Rprop", {"lr": 0.05, "etas": (0.3, 1.5)}),
    ("Rprop", {"lr": 0.05, "step_sizes": (1e-3, 0.2)}),
    ("Rprop", {"lr": 0.05, "etas": (0.4, 1.1), "step_sizes": (1e-4, 1.0), "maximize": True}),
    ("ASGD", {}),
    ("ASGD", {"lr": 0.05, "lambd": 0.01, "alpha": 0.5}),
    ("ASGD", {"lr": 0.05, "t0": 10}),              # averaging starts mid-run (mu < 1)
    ("ASGD", {"lr": 0.05, "weight_decay": 0.1}),
    ("ASGD", {"lr": 0.05, "lambd": 0.01, "t0": 5, "weight_decay": 0.1, "maximize": True}),
    ("LARS", {}),
    ("LARS", {"lr": 0.1, "momentum": 0.0, "trust_coefficient": 0.02}),
    ("LARS", {"lr": 0.1, "weight_decay": 0.1, "dampening": 0.2}),
    ("LARS", {"lr": 0.1, "nesterov": True, "exclude_1d": True}),
    ("LARS", {"lr": 0.1, "weight_decay": 0.05, "nesterov": True, "exclude_1d": True, "maximize": True}),
    ("ADOPT", {}),
    ("ADOPT", {"lr": 0.01, "betas": (0.8, 0.99), "eps": 1e-4}),
    ("ADOPT", {"lr": 0.01, "clip_exponent": None}),
    ("ADOPT", {"lr": 0.01, "weight_decay": 0.1}),
    ("ADOPT", {"lr": 0.01, "weight_decay": 0.1, "decouple": True, "clip_exponent": 0.5, "maximize": True}),
    ("AdEMAMix", {}),
    ("AdEMAMix", {"lr": 0.01, "betas": (0.8, 0.95, 0.999), "alpha": 5.0}),
    ("AdEMAMix", {"lr": 0.01, "betas": (0.0, 0.99, 0.999)}),   # beta1 = 0: no fast EMA state
    ("AdEMAMix", {"lr": 0.01, "alpha_warmup": 20, "beta3_warmup": 12}),
    ("AdEMAMix", {"lr": 0.01, "weight_decay": 0.1, "alpha_warmup": 10, "beta3_warmup": 40, "maximize": True}),
    ("ScheduleFreeSGD", {}),
    ("ScheduleFreeSGD", {"lr": 0.1, "momentum": 0.5, "weight_decay": 0.1}),
    ("ScheduleFreeSGD", {"lr": 0.1, "warmup_steps": 10, "r": 0.5, "weight_lr_power": 1.0}),
    ("ScheduleFreeAdamW", {}),
    ("ScheduleFreeAdamW", {"lr": 0.01, "betas": (0.8, 0.95), "eps": 1e-6, "weight_decay": 0.1}),
    ("ScheduleFreeAdamW", {"lr": 0.01, "warmup_steps": 20, "r": 1.0, "weight_lr_power": 0.0}),
    ("Adafactor", {}),
    ("Adafactor", {"lr": 0.05, "beta2_decay": -0.5, "eps": (1e-20, 1e-2)}),
    ("Adafactor", {"lr": 0.05, "d": 2.0}),
    ("Adafactor", {"lr": 0.05, "weight_decay": 0.1}),
    ("Adafactor", {"lr": 0.05, "eps": (None, 1e-4), "weight_decay": 0.1, "maximize": True}),
]

# The None-gradient and param-group tests use, per optimizer, its case with the most options
# (every state buffer in use).
RICHEST = {}
for _name, _kwargs in CASES:
    if len(_kwargs) >= len(RICHEST.get(_name, {})):
        RICHEST[_name] = _kwargs
OPTIMIZERS = list(RICHEST)


def _case_id(name, kwargs):
    return "-".join([name] + [f"{k}={v}" for k, v in kwargs.items()]).replace(" ", "")


def _against(cases):
    """(name, kwargs) cases x comparison targets: the reference always, torch where it has the
    optimizer. Parameters: name, kwargs, against."""
    return [pytest.param(n, k, a, id=f"{_case_id(n, k)}-{a}") for n, k in cases
            for a in ("reference", "torch") if a == "reference" or n in TORCH_HAS]


DTYPES = [pytest.param(np.float32, id="float32"), pytest.param(np.float64, id="float64")]


# ---- the three implementations behind one interface --------------------------------------------
#
# `groups` is torch's param-group list, with parameter *indices* in "params" (listed in order:
# 0, 1, ... across the groups, which is dlopt's global index and gradient order); `kwargs` are
# the constructor keywords. Each side owns copies of the initial parameters.

class DloptSide:
    def __init__(self, name, groups, kwargs, init):
        self.params = [p.copy() for p in init]
        groups = [{**g, "params": [self.params[i] for i in g["params"]]} for g in groups]
        self.opt = getattr(dlopt.optim, name)(groups, **kwargs)

    def set_lr(self, group, lr):
        self.opt.param_groups[group]["lr"] = lr

    def step(self, grads):
        self.opt.step([None if g is None else g.copy() for g in grads])

    def state(self, i):
        return self.opt.state.get(i, {})


class ReferenceSide:
    def __init__(self, name, groups, kwargs, init):
        self.fn = REFERENCES[name]
        self.params = [p.copy() for p in init]
        self.groups = [{**DEFAULTS[name], **kwargs, **{k: v for k, v in g.items() if k != "params"}}
                       for g in groups]
        self.members = [list(g["params"]) for g in groups]
        self.states = {}

    def set_lr(self, group, lr):
        self.groups[group]["lr"] = lr

    def step(self, grads):
        for hyper, members in zip(self.groups, self.members):
            for i in members:
                if grads[i] is not None:
                    self.fn(self.params[i], grads[i].copy(), self.states.setdefault(i, {}), **hyper)

    def state(self, i):
        return self.states.get(i, {})


class TorchSide:
    def __init__(self, name, groups, kwargs, init):
        import torch

        self.torch = torch
        self.tensors = [torch.from_numpy(p.copy()) for p in init]
        self.params = [t.numpy() for t in self.tensors]  # views: they follow the updates
        groups = [{**g, "params": [self.tensors[i] for i in g["params"]]} for g in groups]
        self.opt = getattr(torch.optim, name)(groups, foreach=False, **kwargs)

    def set_lr(self, group, lr):
        self.opt.param_groups[group]["lr"] = lr

    def step(self, grads):
        for t, g in zip(self.tensors, grads):
            t.grad = None if g is None else self.torch.from_numpy(g.copy())
        self.opt.step()

    def state(self, i):
        out = {}
        for key, value in self.opt.state.get(self.tensors[i], {}).items():
            if key == "step":
                out[key] = int(value.item())
            elif value is not None and value.ndim == 0:  # NAdam's mu_product, ASGD's eta and mu
                out[key] = float(value.item())
            elif value is not None:
                out[key] = value.numpy()
        return out


SIDES = {"reference": ReferenceSide, "torch": TorchSide}


@pytest.fixture
def torch_scalars_in_double():
    """torch keeps "step", NAdam's "mu_product" and ASGD's "eta" and "mu" as 0-d tensors of the
    *default* dtype, so with the stock float32 default its mu_product is a float32 running product. dlopt (and the
    reference) keep it as a Python float; a float64 default dtype makes torch do the same."""
    torch = pytest.importorskip("torch")
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(previous)


def _make_other(against, request, *args):
    if against == "torch":
        pytest.importorskip("torch")
        request.getfixturevalue("torch_scalars_in_double")
    return SIDES[against](*args)


def _data(dtype, seed):
    rng = np.random.default_rng(seed)
    init = [rng.standard_normal(s).astype(dtype) for s in SHAPES]
    grads = [[rng.standard_normal(s).astype(dtype) for s in SHAPES] for _ in range(STEPS)]
    return init, grads


def _assert_params_close(mine, other, dtype, step, against):
    for i, (a, b) in enumerate(zip(mine.params, other.params)):
        assert a.dtype == dtype, f"param {i} changed dtype to {a.dtype}"
        np.testing.assert_allclose(a, b, **TOLERANCES[dtype],
                                   err_msg=f"param {i} {a.shape} after step {step + 1} vs {against}")


def _assert_state_close(mine, other, n, dtype, against):
    for i in range(n):
        got, want = mine.state(i), other.state(i)
        if against == "reference":  # torch-like: exactly the reference's entries (torch's names)
            assert set(got) == set(want), f"state[{i}] keys {sorted(got)}, expected {sorted(want)}"
        for key, value in want.items():
            if key == "step" and against == "torch" and "step" not in got:
                continue
            assert key in got, f"state[{i}] lacks {key!r}"
            if key == "step":
                assert got[key] == value and isinstance(got[key], int), f"state[{i}]['step']"
            elif isinstance(value, float):  # a rule's host scalar (NAdam's mu_product, ASGD's eta)
                assert isinstance(got[key], float)
                np.testing.assert_allclose(got[key], value, rtol=1e-12, err_msg=f"state[{i}][{key!r}]")
            else:
                assert got[key].dtype == dtype and got[key].shape == value.shape, f"state[{i}][{key!r}]"
                np.testing.assert_allclose(got[key], value, **TOLERANCES[dtype],
                                           err_msg=f"state[{i}][{key!r}] vs {against}")


def _run(name, groups, kwargs, dtype, against, request, seed, grad_mask=None, check_step=None):
    """Runs dlopt and `against` side by side, comparing parameters after every step and states at
    the end. grad_mask(step, i) -> False replaces that gradient by None; check_step(step, before,
    mine) runs after each step with a snapshot of dlopt's parameters and state taken before it."""
    init, grads = _data(dtype, seed)
    mine = DloptSide(name, groups, kwargs, init)
    other = _make_other(against, request, name, groups, kwargs, init)
    lr0 = mine.opt.param_groups[0]["lr"]
    for step, g in enumerate(grads):
        if step == LR_CHANGE_STEP:
            for side in (mine, other):
                side.set_lr(0, lr0 * LR_CHANGE_FACTOR)
        if grad_mask is not None:
            g = [gi if grad_mask(step, i) else None for i, gi in enumerate(g)]
        before = ([p.copy() for p in mine.params], copy.deepcopy(mine.opt.state))
        mine.step(g)
        other.step(g)
        if check_step is not None:
            check_step(step, g, before, mine)
        _assert_params_close(mine, other, dtype, step, against)
    _assert_state_close(mine, other, len(init), dtype, against)


# ---- the tests -----------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name, kwargs, against", _against(CASES))
def test_parity(name, kwargs, against, dtype, request):
    """Every case, all SHAPES in one optimizer, 30 steps, lr changed at step 15."""
    _run(name, [{"params": list(range(len(SHAPES)))}], kwargs, dtype, against, request, seed=0)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name, kwargs, against", _against(RICHEST.items()))
def test_none_gradient_skips_parameter(name, kwargs, against, dtype, request):
    """A None gradient leaves that parameter and its state untouched (no state is created for a
    parameter that never had a gradient, and its step count does not advance)."""
    skipped = {(s, 1) for s in (0, 1, 2, 10, 11)} | {(20, 3), (21, 0), (21, 3)}

    def check(step, grads, before, mine):
        params, state = before
        for i, g in enumerate(grads):
            if g is None:
                np.testing.assert_array_equal(mine.params[i], params[i], err_msg=f"param {i}, step {step}")
                if i not in state:
                    assert not mine.opt.state.get(i), f"state created for param {i} at step {step}"
                    continue
                now = mine.opt.state[i]
                assert set(now) == set(state[i]), f"state[{i}] keys changed at step {step}"
                for key, value in state[i].items():
                    np.testing.assert_array_equal(now[key], value, err_msg=f"state[{i}][{key!r}]")
        if step == 2:
            assert 1 not in mine.opt.state or not mine.opt.state[1]
            assert mine.opt.state[0]["step"] == 3

    _run(name, [{"params": list(range(len(SHAPES)))}], kwargs, dtype, against, request, seed=1, grad_mask=lambda s, i: (s, i) not in skipped, check_step=check)


# Per-group overrides for the param-group test: lr plus one option that changes the algorithm.
GROUP_OVERRIDES = {
    "SGD": {"lr": 0.2, "momentum": 0.5, "nesterov": False, "weight_decay": 0.0},
    "Adam": {"lr": 0.05, "betas": (0.7, 0.9), "amsgrad": False},
    "AdamW": {"lr": 0.05, "weight_decay": 0.3, "amsgrad": False},
    # not initial_accumulator_value: torch 2.13's Adagrad fills every group's "sum" from the
    # constructor's value, ignoring a per-group override
    "Adagrad": {"lr": 0.2, "lr_decay": 0.1, "eps": 1e-3},
    "RMSprop": {"lr": 0.03, "centered": False, "momentum": 0.0},
    "Adadelta": {"lr": 2.0, "rho": 0.5},
    "Adamax": {"lr": 0.05, "betas": (0.5, 0.9), "weight_decay": 0.0},
    "NAdam": {"lr": 0.05, "decoupled_weight_decay": False, "momentum_decay": 0.02},
    "RAdam": {"lr": 0.05, "decoupled_weight_decay": False, "betas": (0.9, 0.9)},
    "Rprop": {"lr": 0.2, "etas": (0.6, 1.3)},
    "ASGD": {"lr": 0.2, "t0": 3.0},
    "LARS": {"lr": 0.5, "nesterov": False, "trust_coefficient": 0.01},
    "ADOPT": {"lr": 0.05, "decouple": False, "clip_exponent": None},
    "AdEMAMix": {"lr": 0.05, "betas": (0.5, 0.9, 0.99), "alpha_warmup": None},
    "ScheduleFreeSGD": {"lr": 0.5, "momentum": 0.8, "warmup_steps": 0},
    "ScheduleFreeAdamW": {"lr": 0.05, "betas": (0.7, 0.9), "warmup_steps": 3},
    "Adafactor": {"lr": 0.05, "d": 1.5},
    "Lion": {"lr": 0.03, "betas": (0.5, 0.9), "maximize": False},
    "LAMB": {"lr": 0.05, "betas": (0.5, 0.9), "weight_decay": 0.0},
    "DynamicLR": {"lr": 0.5, "beta": 3.0},
}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name, kwargs, against", _against(RICHEST.items()))
def test_param_groups(name, kwargs, against, dtype, request):
    """Two groups built from a list of dicts: group 0 overrides some hyperparameters, group 1 takes
    the constructor's; only group 0's lr changes mid-run. Groups list every hyperparameter."""
    groups = [{"params": [0, 1], **GROUP_OVERRIDES[name]}, {"params": [2, 3]}]
    _run(name, groups, kwargs, dtype, against, request, seed=2)

    init, _ = _data(dtype, 2)
    opt = DloptSide(name, groups, kwargs, init).opt
    for group, expected in zip(opt.param_groups, ({**kwargs, **GROUP_OVERRIDES[name]}, kwargs)):
        for key, default in DEFAULTS[name].items():
            assert group[key] == expected.get(key, default), (key, group[key])
        assert not isinstance(group.get("betas", ()), list), "betas should be a tuple"


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_defaults_match_torch(name):
    """dlopt's constructor defaults are the reference's, and torch's where torch has the optimizer."""
    w = np.zeros(3)
    group = getattr(dlopt.optim, name)([w]).param_groups[0]
    assert {k: group[k] for k in DEFAULTS[name]} == DEFAULTS[name]
    if name in TORCH_HAS:
        torch = pytest.importorskip("torch")
        theirs = getattr(torch.optim, name)([torch.zeros(3)]).defaults
        assert {k: theirs[k] for k in DEFAULTS[name]} == DEFAULTS[name]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", OPTIMIZERS)
def test_tensors_over_several_blocks_match_the_reference(name, dtype):
    """Tensors of 4097 and 10001 elements (and a 70 x 150 matrix) cross the CPU loop's 4096-element
    blocks and the 16K-element threshold of the parallel pass: every block and every tail must be
    updated as the reference says (the small SHAPES above fit in one block)."""
    rng = np.random.default_rng(11)
    shapes = [(4097,), (10001,), (70, 150)]
    init = [rng.standard_normal(s).astype(dtype) for s in shapes]
    groups = [{"params": [0, 1, 2]}]
    mine = DloptSide(name, groups, RICHEST[name], init)
    other = ReferenceSide(name, groups, RICHEST[name], init)
    for step in range(5):
        grads = [rng.standard_normal(s).astype(dtype) for s in shapes]
        mine.step(grads)
        other.step(grads)
        _assert_params_close(mine, other, dtype, step, "reference")
    _assert_state_close(mine, other, len(shapes), dtype, "reference")
