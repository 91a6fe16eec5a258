"""Parameters and state are the caller's buffers, updated in place; threads never change results."""

import numpy as np
import pytest

import dlopt
from optim_cases import make_optimizer, random_grads


def test_parameters_are_updated_in_place(optimizer_name):
    rng = np.random.default_rng(0)
    backing = rng.standard_normal(64).astype(np.float32)
    views = [backing[:40], backing[40:].reshape(4, 6)]  # parameters may be views into one buffer
    addresses = [v.__array_interface__["data"][0] for v in views]
    before = backing.copy()
    opt = make_optimizer(optimizer_name, views)
    for _ in range(2):  # (ADOPT's first step only initializes its second moment)
        opt.step(random_grads(rng, views))
    assert [v.__array_interface__["data"][0] for v in views] == addresses
    assert not np.array_equal(backing, before), "the caller's buffer itself must change"
    assert opt.param_groups[0]["params"][0] is views[0]


def test_state_buffers_are_updated_in_place(optimizer_name):
    rng = np.random.default_rng(1)
    params = [rng.standard_normal(10)]
    opt = make_optimizer(optimizer_name, params)
    opt.step(random_grads(rng, params))
    buffers = {k: v for k, v in opt.state[0].items() if isinstance(v, np.ndarray)}
    copies = {k: v.copy() for k, v in buffers.items()}
    opt.step(random_grads(rng, params))
    for k, v in buffers.items():
        assert opt.state[0][k] is v, f"state buffer {k} was replaced instead of updated"
        assert not np.array_equal(v, copies[k]), f"state buffer {k} did not change"


def test_read_only_gradients_are_fine():
    g = np.ones(3, np.float32)
    g.flags.writeable = False
    w = np.zeros(3, np.float32)
    dlopt.optim.SGD([w], lr=0.5).step([g])
    np.testing.assert_array_equal(w, -0.5)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_one_and_two_threads_are_bitwise_equal(optimizer_name, dtype):
    # Large enough to be split across threads (several 16K-element blocks), with odd sizes so the
    # last block of each tensor is partial, plus tiny tensors batched into the same pass.
    shapes = [(100_003,), (300, 251), (1,), (7, 3)]
    results = []
    previous = dlopt.get_num_threads()
    try:
        for threads in (1, 2):
            dlopt.set_num_threads(threads)
            rng = np.random.default_rng(2)
            params = [rng.standard_normal(s).astype(dtype) for s in shapes]
            opt = make_optimizer(optimizer_name, params)
            for _ in range(5):
                opt.step(random_grads(rng, params))
            results.append((params, opt.state))
    finally:
        dlopt.set_num_threads(previous)
    (p1, s1), (p2, s2) = results
    for a, b in zip(p1, p2):
        assert a.tobytes() == b.tobytes()
    for i in s1:
        for k, v in s1[i].items():
            assert np.asarray(v).tobytes() == np.asarray(s2[i][k]).tobytes(), k


def test_set_num_threads_validates():
    with pytest.raises(ValueError, match="num_threads"):
        dlopt.set_num_threads(0)
