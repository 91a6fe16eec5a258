"""The optimizers torch.optim lacks, against the packages people use them from.

tests/test_optim_parity.py checks every optimizer against tests/reference.py, a NumPy
transcription of each algorithm's reference code. Here the same optimizers run side by side with
the third-party implementations (test references only, never runtime dependencies):

- ``schedulefree`` 1.4 (Defazio et al.'s own package): ScheduleFreeSGD / ScheduleFreeAdamW, every
  option, through train() / eval() switches. Every parameter steps every time, so the package's
  per-group weighting equals dlopt's per-tensor weighting.
- ``pytorch-optimizer``: its LARS (vectors excluded, as it always does: ``exclude_1d=True``), its
  ADOPT and its AdEMAMix, where their formulas are the reference code's. Where they differ, the
  case maps the option or is left to the NumPy reference, and says why: pytorch-optimizer's ADOPT
  clips at ``step**0.25`` one step later than the reference code (``(step-1)**0.25``, passed as its
  ``clip_lambda`` here) and applies decoupled decay on the first step too (so decoupled decay is
  not compared); its AdEMAMix warms β3 up with the paper's formula rather than the reference
  code's half-life interpolation (warmups are not compared) and writes decoupled decay as
  p·(1 − γλ) rather than γλp inside the update (compared within rounding).
"""

from __future__ import annotations

import numpy as np
import pytest

import dlopt

torch = pytest.importorskip("torch")

STEPS = 30
LR_CHANGE_STEP = 15
SHAPES = [(7,), (3, 5), (2, 3, 4), (1,)]
TOLERANCES = {np.float32: dict(rtol=1e-5, atol=1e-6), np.float64: dict(rtol=1e-10, atol=1e-12)}
DTYPES = [pytest.param(np.float32, id="float32"), pytest.param(np.float64, id="float64")]


@pytest.fixture(autouse=True)
def torch_default_dtype_float64():
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(previous)


def _run(dtype, make_mine, make_theirs, state_keys, switch_modes=False, seed=0):
    """Steps both sides with the same gradients; parameters compared after every step (and after
    each eval()/train() switch), states at the end."""
    rng = np.random.default_rng(seed)
    init = [rng.standard_normal(s).astype(dtype) for s in SHAPES]
    mine_params = [p.copy() for p in init]
    tensors = [torch.from_numpy(p.copy()) for p in init]
    mine, theirs = make_mine(mine_params), make_theirs(tensors)
    tol = TOLERANCES[dtype]
    for step in range(STEPS):
        if step == LR_CHANGE_STEP:
            for opt in (mine, theirs):
                opt.param_groups[0]["lr"] *= 0.3
        grads = [rng.standard_normal(s).astype(dtype) for s in SHAPES]
        mine.step([g.copy() for g in grads])
        for t, g in zip(tensors, grads):
            t.grad = torch.from_numpy(g.copy())
        theirs.step()
        for i, (a, t) in enumerate(zip(mine_params, tensors)):
            np.testing.assert_allclose(a, t.numpy(), **tol, err_msg=f"param {i} after step {step + 1}")
        if switch_modes and step % 10 == 9:
            for opt in (mine, theirs):
                opt.eval()
            for i, (a, t) in enumerate(zip(mine_params, tensors)):
                np.testing.assert_allclose(a, t.numpy(), **tol, err_msg=f"param {i} in eval mode")
            for opt in (mine, theirs):
                opt.train()
    for i, t in enumerate(tensors):
        for key in state_keys:
            np.testing.assert_allclose(mine.state[i][key], theirs.state[t][key].numpy(), **tol,
                                       err_msg=f"state[{i}][{key!r}]")


# ---- schedulefree ----------------------------------------------------------------------------

SCHEDULE_FREE = [
    ("SGD", {}),
    ("SGD", {"lr": 0.1, "momentum": 0.5, "weight_decay": 0.1}),
    ("SGD", {"lr": 0.1, "warmup_steps": 10, "r": 0.5, "weight_lr_power": 1.0}),
    ("AdamW", {}),
    ("AdamW", {"lr": 0.01, "betas": (0.8, 0.95), "eps": 1e-6, "weight_decay": 0.1}),
    ("AdamW", {"lr": 0.01, "warmup_steps": 20, "r": 1.0, "weight_lr_power": 0.0}),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("variant, kwargs", SCHEDULE_FREE, ids=lambda v: str(v).replace(" ", ""))
def test_schedule_free_matches_the_schedulefree_package(variant, kwargs, dtype):
    schedulefree = pytest.importorskip("schedulefree")
    theirs_cls = getattr(schedulefree, f"{variant}ScheduleFree")

    def theirs(tensors):
        opt = theirs_cls(tensors, foreach=False, **kwargs)
        opt.train()
        return opt

    keys = ["z"] + (["exp_avg_sq"] if variant == "AdamW" else [])
    _run(dtype, lambda ps: getattr(dlopt.optim, f"ScheduleFree{variant}")(ps, **kwargs), theirs, keys,
         switch_modes=True)


# ---- pytorch-optimizer -----------------------------------------------------------------------

def _pytorch_optimizer():
    return pytest.importorskip("pytorch_optimizer")


LARS_CASES = [
    {},
    {"lr": 0.1, "momentum": 0.0, "trust_coefficient": 0.02},
    {"lr": 0.1, "weight_decay": 0.1, "dampening": 0.2},
    {"lr": 0.1, "weight_decay": 0.05, "nesterov": True, "maximize": True},
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kwargs", LARS_CASES, ids=str)
def test_lars_matches_pytorch_optimizer(kwargs, dtype):
    po = _pytorch_optimizer()
    keys = ["momentum_buffer"] if kwargs.get("momentum", 0.9) else []
    _run(dtype, lambda ps: dlopt.optim.LARS(ps, exclude_1d=True, **kwargs),
         lambda ts: po.LARS(ts, foreach=False, **kwargs), keys)


ADOPT_CASES = [
    ({}, {}),
    ({"lr": 0.01, "betas": (0.8, 0.99), "eps": 1e-4}, {}),
    ({"lr": 0.01, "clip_exponent": None}, {"clip_lambda": None}),
    ({"lr": 0.01, "weight_decay": 0.1, "maximize": True}, {}),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kwargs, theirs_only", ADOPT_CASES, ids=str)
def test_adopt_matches_pytorch_optimizer(kwargs, theirs_only, dtype):
    po = _pytorch_optimizer()
    exponent = kwargs.get("clip_exponent", 0.25)
    # the reference code's bound (step - 1)^c, in pytorch-optimizer's terms
    theirs_kwargs = {"clip_lambda": lambda step: (step - 1) ** exponent, **theirs_only,
                     **{k: v for k, v in kwargs.items() if k != "clip_exponent"}}
    _run(dtype, lambda ps: dlopt.optim.ADOPT(ps, **kwargs),
         lambda ts: po.ADOPT(ts, foreach=False, **theirs_kwargs), ["exp_avg", "exp_avg_sq"])


ADEMAMIX_CASES = [
    ({"alpha": 5.0}, {}),
    ({"lr": 0.01, "betas": (0.8, 0.95, 0.999), "alpha": 8.0}, {}),
    ({"lr": 0.01, "alpha": 2.0, "weight_decay": 0.1, "maximize": True}, {"weight_decouple": True}),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kwargs, theirs_only", ADEMAMIX_CASES, ids=str)
def test_ademamix_matches_pytorch_optimizer(kwargs, theirs_only, dtype):
    po = _pytorch_optimizer()
    mine = lambda ps: dlopt.optim.AdEMAMix(ps, **kwargs)
    theirs = lambda ts: po.AdEMAMix(ts, foreach=False, **kwargs, **theirs_only)
    _run(dtype, mine, theirs, ["exp_avg_slow", "exp_avg_sq"])
