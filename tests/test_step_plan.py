"""The bound step (_core.StepPlan) caches checked arguments between steps; whatever the caller
changes between steps must still be seen, checked, and take effect."""

import copy
import pickle

import numpy as np
import pytest

import dlopt
from optim_cases import make_optimizer, random_grads, random_params


def reference_run(name, params_init, grads_seq, **kw):
    """The same steps on a fresh optimizer per step (so nothing is cached between steps)."""
    params = [p.copy() for p in params_init]
    opt = make_optimizer(name, params, **kw)
    for grads in grads_seq:
        state = opt.state_dict()
        opt = make_optimizer(name, params, **kw)
        opt.load_state_dict(state)
        opt.step(grads)
    return params


def test_cached_steps_equal_uncached_steps(optimizer_name):
    rng = np.random.default_rng(0)
    init = random_params(rng)
    grads_seq = [random_grads(rng, init) for _ in range(4)]
    params = [p.copy() for p in init]
    opt = make_optimizer(optimizer_name, params)
    for grads in grads_seq:
        opt.step(grads)
    expected = reference_run(optimizer_name, init, grads_seq)
    for a, b in zip(params, expected):
        assert a.tobytes() == b.tobytes()


def test_add_param_group_after_steps():
    rng = np.random.default_rng(1)
    a, b = np.ones(3, np.float32), np.ones(2, np.float32)
    opt = dlopt.optim.SGD([a], lr=0.1)
    opt.step([np.ones(3, np.float32)])
    opt.add_param_group({"params": [b], "lr": 1.0})
    opt.step([np.ones(3, np.float32), np.ones(2, np.float32)])
    np.testing.assert_allclose(a, 0.8)
    np.testing.assert_allclose(b, 0.0)
    with pytest.raises(ValueError, match="expected 2 gradients"):
        opt.step([np.ones(3, np.float32)])


def test_load_state_dict_after_steps_takes_effect():
    p = np.zeros(4)
    opt = dlopt.optim.Adam([p], lr=0.1)
    opt.step([np.ones(4)])
    saved = opt.state_dict()
    opt.step([np.ones(4)])
    opt.load_state_dict(saved)
    assert opt.state[0]["step"] == 1
    opt.step([np.ones(4)])
    assert opt.state[0]["step"] == 2


def test_step_count_edited_by_hand_is_used():
    p = np.zeros(2)
    opt = dlopt.optim.Adam([p], lr=0.1)
    opt.step([np.ones(2)])
    opt.state[0]["step"] = 10
    opt.step([np.ones(2)])
    assert opt.state[0]["step"] == 11


def test_state_array_replaced_by_good_one_is_used():
    p = np.zeros(2, np.float32)
    opt = dlopt.optim.SGD([p], lr=1.0, momentum=0.5)
    opt.step([np.ones(2, np.float32)])
    buf = np.full(2, 4.0, np.float32)
    opt.state[0]["momentum_buffer"] = buf
    opt.step([np.ones(2, np.float32)])
    np.testing.assert_allclose(buf, 3.0)  # 0.5 * 4 + 1
    np.testing.assert_allclose(p, -4.0)


def test_gradient_aliasing_a_state_buffer_is_rejected():
    p = np.zeros(3)
    opt = dlopt.optim.Adam([p])
    opt.step([np.ones(3)])
    with pytest.raises(ValueError, match=r"grads\[0\] shares memory with state\[0\]\['exp_avg'\]"):
        opt.step([opt.state[0]["exp_avg"]])


def test_option_switched_on_later_creates_its_state():
    p = np.zeros(3)
    opt = dlopt.optim.Adam([p], lr=0.1)
    opt.step([np.ones(3)])
    opt.param_groups[0]["amsgrad"] = True
    opt.step([np.ones(3)])
    assert "max_exp_avg_sq" in opt.state[0]
    opt.step([np.ones(3)])


def test_parameter_replaced_in_group_is_checked():
    p = np.zeros(3, np.float32)
    opt = dlopt.optim.SGD([p], lr=1.0)
    opt.step([np.ones(3, np.float32)])
    opt.param_groups[0]["params"][0] = np.zeros(3)  # float64 now: the gradient no longer matches
    with pytest.raises(TypeError, match=r"grads\[0\]: dtype"):
        opt.step([np.ones(3, np.float32)])


@pytest.mark.parametrize("clone", [copy.copy, copy.deepcopy, lambda o: pickle.loads(pickle.dumps(o))],
                         ids=["copy", "deepcopy", "pickle"])
def test_optimizer_can_be_copied_after_steps(clone):
    p = np.zeros(3)
    opt = dlopt.optim.Adam([p], lr=0.1)
    opt.step([np.ones(3)])
    other = clone(opt)
    other.step([np.ones(3)])
    opt.step([np.ones(3)])
    ref = np.zeros(3)
    ref_opt = dlopt.optim.Adam([ref], lr=0.1)
    q = other.param_groups[0]["params"][0]
    if clone is copy.copy:  # shares the parameters and the state: p took all three steps
        assert q is p and opt.state[0]["step"] == 3
        steps = 3
    else:  # its own parameters and state: each took two steps from the same point
        assert not np.shares_memory(q, p) and opt.state[0]["step"] == other.state[0]["step"] == 2
        steps = 2
    for _ in range(steps):
        ref_opt.step([np.ones(3)])
    np.testing.assert_array_equal(p, ref)
    np.testing.assert_array_equal(q, ref)
