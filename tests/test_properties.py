"""Property-based tests of the optimizer entry points (hypothesis, derandomized: the same examples on
every run). Whatever the arguments, a call either works or raises TypeError / ValueError / KeyError and
changes nothing: parameters, state and param groups are exactly as before."""

from __future__ import annotations

import copy

import ml_dtypes
import numpy as np
import pytest

import dlopt
from optim_cases import FULL_STATE_CONFIGS

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import given  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from property_strategies import BAD, anything, derandomized  # noqa: E402

SETTINGS = derandomized(150)
state_dtypes = st.one_of(st.sampled_from([None, "float32", "bfloat16", "int8"]), anything)
param_dtypes = st.sampled_from([np.float32, np.float64, ml_dtypes.bfloat16, np.float16])


def _snapshot(opt, params):
    return [p.copy() for p in params], copy.deepcopy(opt.state), copy.deepcopy(
        [{k: v for k, v in g.items() if k != "params"} for g in opt.param_groups])


def _assert_unchanged(before, after):
    for a, b in zip(before[0], after[0]):
        np.testing.assert_array_equal(a.view(np.uint8), b.view(np.uint8))
    assert before[1].keys() == after[1].keys()
    for i in before[1]:
        assert before[1][i].keys() == after[1][i].keys()
        for k in before[1][i]:
            x, y = before[1][i][k], after[1][i][k]
            if isinstance(x, np.ndarray):
                np.testing.assert_array_equal(x.view(np.uint8), y.view(np.uint8))
            else:
                assert x == y or (x != x and y != y)
    assert len(before[2]) == len(after[2])


@SETTINGS
@given(name=st.sampled_from(sorted(FULL_STATE_CONFIGS)), dtype=param_dtypes, state_dtype=state_dtypes,
       stochastic=st.one_of(st.booleans(), anything), seed=st.one_of(st.integers(0, 2**64 - 1), anything))
def test_construction_works_or_raises_a_clear_error(name, dtype, state_dtype, stochastic, seed):
    w = np.ones(300, dtype)
    try:
        opt = getattr(dlopt.optim, name)([w], state_dtype=state_dtype, stochastic_rounding=stochastic, seed=seed)
    except BAD:
        return
    try:
        opt.step([np.ones(300, dtype)])
    except BAD:
        assert not opt.state and np.all(w.astype(np.float32) == 1)


MUTATIONS = ["step", "hyper", "delete_hyper", "slot_dtype", "slot_shape", "grad"]


@SETTINGS
@given(name=st.sampled_from(sorted(FULL_STATE_CONFIGS)), state_dtype=st.sampled_from([None, "bfloat16", "int8"]),
       mutation=st.sampled_from(MUTATIONS), value=anything)
def test_a_step_after_any_mutation_works_or_changes_nothing(name, state_dtype, mutation, value):
    params = [np.linspace(-1, 1, 300, dtype=np.float32), np.ones((3, 4), np.float32)]
    opt = getattr(dlopt.optim, name)(params, state_dtype=state_dtype, **FULL_STATE_CONFIGS[name])
    grads = [np.full_like(p, 0.1) for p in params]
    opt.step(grads)
    group = opt.param_groups[0]
    if mutation == "step":
        opt.state[0]["step"] = value
    elif mutation == "hyper":
        group["lr"] = value
    elif mutation == "delete_hyper":
        del group["lr"]
    elif mutation == "slot_dtype":
        key = next(k for k, v in opt.state[0].items() if isinstance(v, np.ndarray) and not k.endswith("_scale")) \
            if any(isinstance(v, np.ndarray) for v in opt.state[0].values()) else None
        if key is not None:
            opt.state[0][key] = opt.state[0][key].astype(np.float64)
    elif mutation == "slot_shape":
        key = next((k for k, v in opt.state[1].items() if isinstance(v, np.ndarray)), None)
        if key is not None:
            opt.state[1][key] = np.zeros(5, opt.state[1][key].dtype)
    elif mutation == "grad":
        grads = [value, grads[1]]
    before = _snapshot(opt, params)
    try:
        opt.step(grads)
    except BAD:
        _assert_unchanged(before, _snapshot(opt, params))


@SETTINGS
@given(name=st.sampled_from(sorted(FULL_STATE_CONFIGS)), key=st.sampled_from(["step", "lr", "slot", "scale", "extra"]),
       value=anything)
def test_load_state_dict_of_anything_works_or_changes_nothing(name, key, value):
    params = [np.linspace(-1, 1, 600, dtype=np.float32)]
    opt = getattr(dlopt.optim, name)(params, state_dtype="int8", **FULL_STATE_CONFIGS[name])
    opt.step([np.full_like(params[0], 0.1)])
    sd = opt.state_dict()
    entry = sd["state"][0]
    if key == "step":
        entry["step"] = value
    elif key == "lr":
        sd["param_groups"][0]["lr"] = value
    elif key == "slot":
        names = [k for k, v in entry.items() if isinstance(v, np.ndarray) and not k.endswith("_scale")]
        if names:
            entry[names[0]] = value
    elif key == "scale":
        names = [k for k in entry if k.endswith("_scale")]
        if names:
            entry[names[0]] = value
    else:
        entry["extra"] = value
    before = _snapshot(opt, params)
    try:
        opt.load_state_dict(sd)
    except BAD:
        _assert_unchanged(before, _snapshot(opt, params))
