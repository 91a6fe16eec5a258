"""GradientAccumulator, EMA and Lookahead: reference values, zero-copy, state_dict, bad input."""

import numpy as np
import pytest

import dlopt
from optim_cases import make_optimizer, random_grads, random_params


# -- GradientAccumulator ---------------------------------------------------------------------------


def test_accumulator_steps_with_the_mean_of_micro_batches():
    rng = np.random.default_rng(0)
    params = random_params(rng)
    ref_params = [p.copy() for p in params]
    opt = dlopt.optim.Adam(params, lr=0.01)
    ref_opt = dlopt.optim.Adam(ref_params, lr=0.01)
    acc = dlopt.GradientAccumulator(opt, steps=3)
    buffers = [b.__array_interface__["data"][0] for b in acc.buffers]
    for _ in range(4):
        micro = [random_grads(rng, params) for _ in range(3)]
        for j, g in enumerate(micro):
            assert not acc.ready
            acc.add(g)
        assert acc.ready
        acc.step()
        mean = [m[0].copy() for m in zip(*micro)]
        for k in range(len(mean)):
            mean[k] += micro[1][k]
            mean[k] += micro[2][k]
            mean[k] *= np.float32(1 / 3)
        ref_opt.step(mean)
        for p, r in zip(params, ref_params):
            np.testing.assert_array_equal(p, r)
    # the same buffers all along: no allocation per step
    assert [b.__array_interface__["data"][0] for b in acc.buffers] == buffers


def test_accumulator_partial_mean_and_clipping():
    w = np.zeros(2, np.float32)
    acc = dlopt.GradientAccumulator([w], steps=4)
    acc.add([np.array([1.0, 3.0], np.float32)])
    acc.add([np.array([3.0, 5.0], np.float32)])
    mean = acc.mean()
    np.testing.assert_array_equal(mean[0], [2.0, 4.0])
    assert dlopt.clip_grad_norm_(mean, 1.0) == pytest.approx(np.hypot(2, 4), rel=1e-6)
    with pytest.raises(RuntimeError, match="averaged"):
        acc.add([np.ones(2, np.float32)])
    with pytest.raises(RuntimeError, match="not an optimizer"):
        acc.step()
    acc.reset()
    acc.add([np.ones(2, np.float32)])
    np.testing.assert_array_equal(acc.mean()[0], [1.0, 1.0])


def test_accumulator_bad_input_changes_nothing():
    w = np.zeros(3, np.float32)
    acc = dlopt.GradientAccumulator(dlopt.optim.SGD([w], lr=0.1), steps=2)
    acc.add([np.ones(3, np.float32)])
    snapshot = acc.state_dict()
    for grads, exc in [([np.ones(4, np.float32)], ValueError), ([np.ones(3)], TypeError),
                       ([], ValueError), (np.ones(3, np.float32), TypeError)]:
        with pytest.raises(exc):
            acc.add(grads)
    assert acc.count == snapshot["count"]
    np.testing.assert_array_equal(acc.buffers[0], snapshot["buffers"][0])
    with pytest.raises(ValueError, match="steps"):
        dlopt.GradientAccumulator([w], steps=0)


# -- EMA -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("use_num_updates", [False, True])
def test_ema_matches_reference(use_num_updates):
    rng = np.random.default_rng(1)
    params = random_params(rng, dtype=np.float64, shapes=((5,), (30000,)))
    ema = dlopt.EMA(params, decay=0.9, use_num_updates=use_num_updates)
    ref = [p.copy() for p in params]
    for t in range(1, 20):
        for p in params:
            p += rng.standard_normal(p.shape)
        ema.update()
        d = min(0.9, (1 + t) / (10 + t)) if use_num_updates else 0.9
        ref = [d * r + (1 - d) * p for r, p in zip(ref, params)]
    for s, r in zip(ema.shadow, ref):
        np.testing.assert_allclose(s, r, rtol=1e-13, atol=1e-14)


def test_ema_copy_store_restore_and_state_dict():
    w = np.arange(4, dtype=np.float32)
    ema = dlopt.EMA([w], decay=0.5)
    w += 2.0
    ema.update()
    np.testing.assert_array_equal(ema.shadow[0], np.arange(4) + 1.0)
    ema.store()
    ema.copy_to()
    np.testing.assert_array_equal(w, np.arange(4) + 1.0)
    ema.restore()
    np.testing.assert_array_equal(w, np.arange(4) + 2.0)
    with pytest.raises(RuntimeError, match="store"):
        ema.restore()
    other = dlopt.EMA([np.zeros(4, np.float32)], decay=0.1)
    other.load_state_dict(ema.state_dict())
    assert other.decay == 0.5 and other.num_updates == 1
    np.testing.assert_array_equal(other.shadow[0], ema.shadow[0])
    bad = ema.state_dict()
    bad["shadow"] = [np.zeros(5, np.float32)]
    with pytest.raises(ValueError, match="shadow"):
        other.load_state_dict(bad)
    np.testing.assert_array_equal(other.shadow[0], ema.shadow[0])


def test_ema_rejects_bad_arguments():
    w = np.zeros(3, np.float32)
    with pytest.raises(ValueError, match="decay"):
        dlopt.EMA([w], decay=1.5)
    ema = dlopt.EMA([w])
    with pytest.raises(ValueError, match="shape"):
        ema.update([np.zeros(4, np.float32)])
    ro = np.zeros(3, np.float32)
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        ema.copy_to([ro])


# -- Lookahead -------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["SGD", "Adam", "RMSprop"])
def test_lookahead_matches_algorithm_1(name):
    rng = np.random.default_rng(2)
    params = random_params(rng, dtype=np.float64)
    fast = [p.copy() for p in params]
    slow = [p.copy() for p in params]
    opt = dlopt.Lookahead(make_optimizer(name, params), k=3, alpha=0.6)
    inner = make_optimizer(name, fast)
    for t in range(1, 11):
        grads = random_grads(rng, params)
        opt.step(grads)
        inner.step(grads)
        if t % 3 == 0:
            for s, f in zip(slow, fast):
                s += 0.6 * (f - s)
                f[...] = s
        for p, f in zip(params, fast):
            np.testing.assert_allclose(p, f, rtol=1e-13, atol=1e-15)
    for a, b in zip(opt.slow, slow):
        np.testing.assert_allclose(a, b, rtol=1e-13, atol=1e-15)


def test_lookahead_passes_param_groups_and_state_dict_through():
    rng = np.random.default_rng(3)
    params = random_params(rng)
    opt = dlopt.Lookahead(dlopt.optim.Adam(params, lr=0.1), k=2)
    assert opt.param_groups is opt.optimizer.param_groups
    opt.param_groups[0]["lr"] = 0.01
    assert opt.optimizer.param_groups[0]["lr"] == 0.01
    opt.step(random_grads(rng, params))
    sd = opt.state_dict()
    assert set(sd["state"][0]) == {"step", "exp_avg", "exp_avg_sq", "slow_param"}
    assert sd["lookahead"] == {"k": 2, "alpha": 0.5, "step_counter": 1}
    other_params = [p.copy() for p in params]
    other = dlopt.Lookahead(dlopt.optim.Adam(other_params, lr=0.1), k=5)
    other.load_state_dict(sd)
    assert other.k == 2 and other.step_counter == 1 and other.param_groups[0]["lr"] == 0.01
    bad = opt.state_dict()
    bad["state"][1]["slow_param"] = np.zeros(3, np.float32)
    with pytest.raises(ValueError, match="slow_param"):
        other.load_state_dict(bad)
    with pytest.raises(ValueError, match="k"):
        dlopt.Lookahead(dlopt.optim.SGD(params), k=0)
