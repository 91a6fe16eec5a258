"""A hyperparameter changed in place between steps takes effect (torch's schedulers ``fill_`` tensor lrs).

The step caches each group's parsed hyperparameters and re-parses a group when a value object is
replaced; a 0-d array, a 0-d tensor or a list changed in place keeps its identity, so the step must
read such values again every time. Each case steps one optimizer whose value is changed in place and
one given the same number as a plain float, and asks for bitwise equal parameters.
"""

import numpy as np
import pytest

import dlopt
from dlopt import _core
from optim_cases import FULL_STATE_CONFIGS, make_optimizer, random_grads, random_params

KINDS = ["ndarray0d", "numpy_scalar", "tensor0d"]


def _holder(kind, value):
    """(the value as `kind`, a function setting it to a new number in place, or None: replace it)."""
    if kind == "ndarray0d":
        a = np.array(value, dtype=np.float64)
        return a, lambda new: a.__setitem__((), new)
    if kind == "tensor0d":
        torch = pytest.importorskip("torch")
        t = torch.tensor(value, dtype=torch.float64)
        return t, lambda new: t.fill_(new)
    if kind == "numpy_scalar":  # immutable: the group entry is replaced, which must work too
        return np.float64(value), None
    raise AssertionError(kind)


def _candidates(value):
    return [value * 0.5, value * 1.5, 0.05, 0.5] if value else [0.05, 0.5]


def _valid(name, group):
    try:
        _core.validate_config(name, _core.config_fields(group))
        return True
    except (TypeError, ValueError):
        return False


def _float_keys(name):
    defaults = make_optimizer(name, [np.zeros(1)]).param_groups[0]
    return sorted(k for k, v in defaults.items() if isinstance(v, float))


def _cases():
    for name in sorted(FULL_STATE_CONFIGS):
        for key in _float_keys(name):
            for kind in KINDS:
                yield name, key, kind


@pytest.mark.parametrize("name,key,kind", list(_cases()))
def test_scalar_hyperparameter_changed_in_place(name, key, kind):
    rng = np.random.default_rng(0)
    params = random_params(rng)
    ours, plain = [p.copy() for p in params], [p.copy() for p in params]
    old = make_optimizer(name, ours).param_groups[0][key]
    new = next((c for c in _candidates(old)
                if _valid(name, {**make_optimizer(name, [np.zeros(1)]).param_groups[0], key: c})), None)
    if new is None:
        pytest.skip(f"no valid second value for {key}")
    value, set_in_place = _holder(kind, old)
    a = make_optimizer(name, ours, **{key: value})
    b = make_optimizer(name, plain)
    grads = [random_grads(rng, params) for _ in range(3)]
    a.step(grads[0])
    b.step(grads[0])
    if set_in_place is None:
        a.param_groups[0][key] = np.float64(new)
    else:
        set_in_place(new)
        assert a.param_groups[0][key] is value
    b.param_groups[0][key] = new
    for g in grads[1:]:
        a.step(g)
        b.step(g)
    for x, y in zip(ours, plain):
        np.testing.assert_array_equal(x, y)


def _tuple_cases():
    for name in sorted(FULL_STATE_CONFIGS):
        group = make_optimizer(name, [np.zeros(1)]).param_groups[0]
        for key, value in sorted(group.items()):
            if isinstance(value, tuple) and value and all(isinstance(v, float) for v in value):
                for kind in ("ndarray0d", "tensor0d", "list"):
                    yield name, key, kind


@pytest.mark.parametrize("name,key,kind", list(_tuple_cases()))
def test_tuple_hyperparameter_changed_in_place(name, key, kind):
    # betas, etas, step_sizes: the first element held in a 0-d array or tensor, or the tuple as a list
    rng = np.random.default_rng(1)
    params = random_params(rng)
    ours, plain = [p.copy() for p in params], [p.copy() for p in params]
    old = make_optimizer(name, [np.zeros(1)]).param_groups[0][key]
    base = make_optimizer(name, [np.zeros(1)]).param_groups[0]
    first = next((c for c in _candidates(old[0]) if _valid(name, {**base, key: (c, *old[1:])})), None)
    if first is None:
        pytest.skip(f"no valid second value for {key}[0]")
    if kind == "list":
        value = list(old)

        def change():
            value[0] = first
    else:
        holder, set_first = _holder(kind, old[0])
        value = (holder, *old[1:])

        def change():
            set_first(first)
    a = make_optimizer(name, ours, **{key: value})
    b = make_optimizer(name, plain)
    grads = [random_grads(rng, params) for _ in range(3)]
    a.step(grads[0])
    b.step(grads[0])
    change()
    b.param_groups[0][key] = (first, *old[1:])
    for g in grads[1:]:
        a.step(g)
        b.step(g)
    for x, y in zip(ours, plain):
        np.testing.assert_array_equal(x, y)


def test_value_made_invalid_in_place_is_refused_and_changes_nothing():
    w = np.ones(3, dtype=np.float32)
    lr = np.array(0.1)
    opt = dlopt.optim.SGD([w], lr=lr, momentum=0.9)
    opt.step([np.ones(3, dtype=np.float32)])
    before, state = w.copy(), opt.state[0]["momentum_buffer"].copy()
    lr[()] = -1.0
    with pytest.raises(ValueError, match=r"param_groups\[0\].*lr"):
        opt.step([np.ones(3, dtype=np.float32)])
    np.testing.assert_array_equal(w, before)
    np.testing.assert_array_equal(opt.state[0]["momentum_buffer"], state)
    assert opt.state[0]["step"] == 1
    lr[()] = 0.1  # valid again: steps again
    opt.step([np.ones(3, dtype=np.float32)])
    assert opt.state[0]["step"] == 2


def test_other_keys_holding_arrays_do_not_matter():
    # A key the step never reads (torch's "name", a scheduler's "initial_lr") may hold anything.
    w = np.zeros(2)
    opt = dlopt.optim.SGD([{"params": [w], "name": "w", "extra": np.zeros(3)}], lr=0.5)
    opt.step([np.ones(2)])
    opt.param_groups[0]["extra"][:] = 7
    opt.step([np.ones(2)])
    np.testing.assert_array_equal(w, [-1.0, -1.0])
    assert opt.param_groups[0]["name"] == "w" and opt.state_dict()["param_groups"][0]["name"] == "w"
