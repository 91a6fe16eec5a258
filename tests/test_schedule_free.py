"""Schedule-Free's train/eval modes: refused steps, round trips, checkpoints, 16-bit parameters.

Its numerics are checked in tests/test_optim_parity.py (NumPy reference) and
tests/test_third_party_references.py (the schedulefree package, through eval/train switches).
"""

import os

import numpy as np
import pytest

import dlopt
from optim_cases import assert_same_snapshot, snapshot

BF16 = pytest.importorskip("ml_dtypes").bfloat16
NAMES = ["ScheduleFreeSGD", "ScheduleFreeAdamW"]


def _trained(name, steps=5, dtype=np.float64, **kwargs):
    rng = np.random.default_rng(0)
    params = [rng.standard_normal(s).astype(dtype) for s in ((6,), (2, 3))]
    opt = getattr(dlopt.optim, name)(params, lr=0.05, **kwargs)
    for _ in range(steps):
        opt.step([rng.standard_normal(p.shape).astype(dtype) for p in params])
    return params, opt, rng


@pytest.mark.parametrize("name", NAMES)
def test_a_step_in_eval_mode_is_refused_and_changes_nothing(name):
    params, opt, rng = _trained(name)
    opt.eval()
    before = snapshot(opt)
    with pytest.raises(RuntimeError, match="not in train mode"):
        opt.step([rng.standard_normal(p.shape) for p in params])
    assert_same_snapshot(before, snapshot(opt))
    opt.param_groups[0]["train_mode"] = "yes"
    with pytest.raises(TypeError, match="train_mode"):
        opt.step([rng.standard_normal(p.shape) for p in params])


@pytest.mark.parametrize("name", NAMES)
def test_eval_moves_to_the_average_and_train_moves_back(name):
    params, opt, _ = _trained(name)
    y = [p.copy() for p in params]
    opt.eval()
    beta = opt.param_groups[0]["betas"][0] if name.endswith("AdamW") else opt.param_groups[0]["momentum"]
    for p, y0, i in zip(params, y, range(2)):
        z = opt.state[i]["z"]
        np.testing.assert_allclose(p, y0 + (1 - 1 / beta) * (z - y0), rtol=1e-12)  # x = (y − (1−β)z)/β
        assert not np.allclose(p, y0)
    opt.eval()  # already in eval mode: nothing moves
    x = [p.copy() for p in params]
    opt.eval()
    for p, x0 in zip(params, x):
        np.testing.assert_array_equal(p, x0)
    opt.train()
    for p, y0 in zip(params, y):
        np.testing.assert_allclose(p, y0, rtol=1e-12, atol=1e-14)
    assert opt.param_groups[0]["train_mode"] is True


@pytest.mark.parametrize("name", NAMES)
def test_a_new_optimizer_is_in_train_mode_and_switches_without_state(name):
    w = np.ones(3)
    opt = getattr(dlopt.optim, name)([w])
    assert opt.param_groups[0]["train_mode"] is True
    opt.eval()
    np.testing.assert_array_equal(w, np.ones(3))  # no z yet: nothing to move
    opt.train()
    opt.step([np.ones(3)])


@pytest.mark.parametrize("name", NAMES)
def test_a_checkpoint_saved_in_eval_mode_resumes_bit_for_bit(name, tmp_path):
    params, opt, rng = _trained(name, dtype=np.float32)
    grads = [[rng.standard_normal(p.shape).astype(np.float32) for p in params] for _ in range(4)]
    opt.eval()
    path = os.fspath(tmp_path / "sf.dlopt")
    dlopt.save(path, optimizer=opt, params={f"p{i}": p for i, p in enumerate(params)})

    opt.train()
    for g in grads:
        opt.step(g)
    opt.eval()

    fresh = [np.zeros_like(p) for p in params]
    resumed = getattr(dlopt.optim, name)(fresh, lr=0.05)
    dlopt.load(path, optimizer=resumed, params={f"p{i}": p for i, p in enumerate(fresh)})
    assert resumed.param_groups[0]["train_mode"] is False  # the saved mode
    resumed.train()
    for g in grads:
        resumed.step(g)
    resumed.eval()
    for a, b in zip(params, fresh):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("name", NAMES)
def test_16bit_parameters_with_master_weights_switch_the_master(name):
    rng = np.random.default_rng(3)
    w = rng.standard_normal(64).astype(BF16)
    opt = getattr(dlopt.optim, name)([w], lr=0.05, master_weights=True)
    for _ in range(3):
        opt.step([rng.standard_normal(64).astype(BF16)])
    master = opt.state[0]["master_param"]
    assert opt.state[0]["z"].dtype == np.float32  # z stays in the compute type
    y = master.copy()
    opt.eval()
    assert not np.array_equal(master, y)
    np.testing.assert_array_equal(w, master.astype(BF16))  # the parameter is the master, rounded
    opt.train()
    np.testing.assert_allclose(master, y, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(w, master.astype(BF16))
