"""The torch.optim surface: names, defaults, param groups, None gradients, state_dict."""

import doctest
import inspect

import numpy as np
import pytest

import dlopt
from dlopt import _core
from dlopt.optim.optimizer import STORAGE_KEYS
from optim_cases import FULL_STATE_CONFIGS, MATRIX_CONFIGS, make_optimizer, random_grads, random_params

TORCH_ONLY_KEYWORDS = {"foreach", "fused", "capturable", "differentiable"}


def test_every_registered_optimizer_has_a_python_class():
    assert sorted(_core.optimizers()) == sorted([*FULL_STATE_CONFIGS, *MATRIX_CONFIGS])
    for name in _core.optimizers():
        assert getattr(dlopt.optim, name)._rule == name
        assert getattr(dlopt, name) is getattr(dlopt.optim, name)


def test_python_defaults_equal_the_cpp_config_defaults(optimizer_name):
    opt = getattr(dlopt.optim, optimizer_name)([np.zeros(1)])
    config = opt._config(opt.param_groups[0], 0)
    config.pop("train_mode", None)  # Schedule-Free's mode belongs to the Python front end (train/eval)
    cpp = _core.defaults(optimizer_name)
    assert {k: cpp[k] for k in config} == config
    # AdamW is Adam with decoupled weight decay fixed on, so Python does not expose the switch;
    # ADOPT's clip switch is Python's clip_exponent=None.
    hidden = {"AdamW": {"decoupled_weight_decay"}, "ADOPT": {"clip"}}.get(optimizer_name, set())
    assert set(cpp) - set(config) == hidden


def test_signatures_match_torch(optimizer_name):
    torch = pytest.importorskip("torch")
    if not hasattr(torch.optim, optimizer_name):
        pytest.skip(f"torch.optim has no {optimizer_name}")
    ours = inspect.signature(getattr(dlopt.optim, optimizer_name)).parameters
    # dlopt's storage keywords (16-bit parameters, low-precision state) have no torch counterpart.
    ours = {k: v for k, v in ours.items() if k not in STORAGE_KEYS}
    theirs = inspect.signature(getattr(torch.optim, optimizer_name)).parameters
    theirs = {k: v for k, v in theirs.items() if k not in TORCH_ONLY_KEYWORDS}
    assert list(ours) == [k for k in theirs if k in ours] and set(ours) == set(theirs)
    for name, p in ours.items():
        if name != "params":
            assert p.default == theirs[name].default, name
            assert p.kind == theirs[name].kind or name in ("maximize",), name


def test_none_gradient_skips_parameter_and_state(optimizer_name):
    rng = np.random.default_rng(0)
    params = random_params(rng)
    opt = make_optimizer(optimizer_name, params)
    opt.step(random_grads(rng, params))
    frozen = params[1].copy()
    state = {k: np.copy(v) for k, v in opt.state[1].items()}
    grads = random_grads(rng, params)
    grads[1] = None
    opt.step(grads)
    np.testing.assert_array_equal(params[1], frozen)
    for k, v in state.items():
        np.testing.assert_array_equal(opt.state[1][k], v)
    assert opt.state[1]["step"] == 1 and opt.state[0]["step"] == 2


def test_none_on_first_step_creates_no_state():
    p, q = np.zeros(2), np.zeros(2)
    opt = dlopt.optim.Adam([p, q])
    opt.step([np.ones(2), None])
    assert set(opt.state) == {0}


def test_lr_change_takes_effect_at_next_step():
    w = np.zeros(1)
    opt = dlopt.optim.SGD([w], lr=1.0)
    opt.step([np.ones(1)])
    opt.param_groups[0]["lr"] = 0.25
    opt.step([np.ones(1)])
    np.testing.assert_array_equal(w, [-1.25])


def test_param_groups_have_their_own_hyperparameters():
    a, b = np.zeros(1), np.zeros(1)
    opt = dlopt.optim.SGD([{"params": [a], "lr": 2.0}, {"params": b}], lr=0.5)
    opt.step([np.ones(1), np.ones(1)])
    assert a[0] == -2.0 and b[0] == -0.5
    assert opt.param_groups[1]["lr"] == 0.5 and opt.param_groups[1]["momentum"] == 0.0
    c = np.zeros(1)
    opt.add_param_group({"params": [c], "lr": 3.0})
    opt.step([None, None, np.ones(1)])
    assert c[0] == -3.0 and a[0] == -2.0


def test_state_dict_round_trip_is_bitwise(optimizer_name):
    rng = np.random.default_rng(1)
    params = random_params(rng, np.float64)
    extra = [np.ones(4)]
    opt = make_optimizer(optimizer_name, [{"params": params}, {"params": extra, "lr": 0.05}])
    for _ in range(4):
        opt.step(random_grads(rng, params + extra))
    saved = opt.state_dict()
    saved_params = [p.copy() for p in params + extra]
    assert all(saved["state"][0][k] is not v for k, v in opt.state[0].items() if isinstance(v, np.ndarray))

    more = [random_grads(rng, params + extra) for _ in range(5)]
    for g in more:
        opt.step(g)

    fresh = [p.copy() for p in saved_params]
    restored = make_optimizer(optimizer_name, [{"params": fresh[:3]}, {"params": fresh[3:]}])
    restored.load_state_dict(saved)
    assert restored.param_groups[1]["lr"] == 0.05
    for g in more:
        restored.step(g)
    for a, b in zip(params + extra, fresh):
        assert a.tobytes() == b.tobytes()


def test_state_dict_has_plain_values():
    rng = np.random.default_rng(2)
    params = random_params(rng)
    opt = make_optimizer("NAdam", params)
    opt.step(random_grads(rng, params))
    sd = opt.state_dict()
    assert sd["param_groups"][0]["params"] == [0, 1, 2]
    entry = sd["state"][0]
    assert type(entry["step"]) is int and type(entry["mu_product"]) is float
    assert set(entry) == {"step", "mu_product", "exp_avg", "exp_avg_sq"}


@pytest.mark.parametrize("module", ["dlopt", "dlopt.optim", "dlopt.optim.algorithms"])
def test_docstring_examples(module):
    mod = __import__(module, fromlist=["_"])
    result = doctest.testmod(mod, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0
