"""The optimizer table and helpers shared by the optimizer tests."""

import copy

import numpy as np
import dlopt

# Every optimizer with a non-default configuration that exercises all of its state buffers.
FULL_STATE_CONFIGS = {
    "SGD": dict(lr=0.1, momentum=0.9, weight_decay=0.01),
    "Adam": dict(lr=0.01, amsgrad=True, weight_decay=0.01),
    "AdamW": dict(lr=0.01, amsgrad=True),
    "Adagrad": dict(lr=0.1, initial_accumulator_value=0.1),
    "RMSprop": dict(lr=0.01, momentum=0.9, centered=True),
    "Adadelta": dict(lr=1.0),
    "Adamax": dict(lr=0.01),
    "NAdam": dict(lr=0.01),
    "RAdam": dict(lr=0.01),
    "Lion": dict(lr=0.001, weight_decay=0.1),
    "LAMB": dict(lr=0.01, weight_decay=0.01),
    "DynamicLR": dict(lr=0.1, beta=0.5),
    "Rprop": dict(lr=0.01),
    "ASGD": dict(lr=0.01, t0=1),
    "LARS": dict(lr=0.1, weight_decay=0.01),
    "ADOPT": dict(lr=0.01, weight_decay=0.01),
    "AdEMAMix": dict(lr=0.01, alpha_warmup=5, beta3_warmup=5),
    "ScheduleFreeSGD": dict(lr=0.1),
    "ScheduleFreeAdamW": dict(lr=0.01, weight_decay=0.01),
    "Adafactor": dict(lr=0.01, weight_decay=0.01),
}

# Matrix rules: their parameters must be 2-D, so the elementwise table above leaves them out;
# tests/test_muon.py covers them.
MATRIX_CONFIGS = {
    "Muon": dict(lr=0.02, weight_decay=0.01),
}


def make_optimizer(name, params, **overrides):
    cls = getattr(dlopt.optim, name)
    return cls(params, **{**FULL_STATE_CONFIGS[name], **overrides})


def random_params(rng, dtype=np.float32, shapes=((5,), (3, 4), (2, 3, 4))):
    return [rng.standard_normal(s).astype(dtype) for s in shapes]


def random_grads(rng, params):
    return [rng.standard_normal(p.shape).astype(p.dtype) for p in params]


def snapshot(opt):
    """A deep copy of everything an optimizer step may change."""
    return (
        [p.copy() for g in opt.param_groups for p in g["params"]],
        copy.deepcopy(opt.state),
        copy.deepcopy([{k: v for k, v in g.items() if k != "params"} for g in opt.param_groups]),
    )


def assert_same_snapshot(a, b):
    params_a, state_a, groups_a = a
    params_b, state_b, groups_b = b
    for x, y in zip(params_a, params_b):
        np.testing.assert_array_equal(x, y)
    assert state_a.keys() == state_b.keys()
    for i in state_a:
        assert state_a[i].keys() == state_b[i].keys()
        for k in state_a[i]:
            np.testing.assert_array_equal(state_a[i][k], state_b[i][k])
    assert groups_a == groups_b
