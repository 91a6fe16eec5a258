"""Adafactor's factored state: torch's shapes, batches of matrices that straddle the row blocks of
its sums, and results independent of the thread count. (Parity over the usual shapes, every option,
is in tests/test_optim_parity.py.)"""

import numpy as np
import pytest

import dlopt

SHAPES = [(3, 50, 20), (130, 7), (1, 9), (5,), ()]


def _grads(rng, params, steps):
    return [[rng.standard_normal(p.shape).astype(p.dtype) for p in params] for _ in range(steps)]


def test_state_has_torchs_shapes():
    params = [np.ones(s) for s in SHAPES]
    opt = dlopt.optim.Adafactor(params)
    opt.step([np.ones(s) for s in SHAPES])
    assert opt.state[0]["row_var"].shape == (3, 50, 1) and opt.state[0]["col_var"].shape == (3, 1, 20)
    assert opt.state[1]["row_var"].shape == (130, 1) and opt.state[1]["col_var"].shape == (1, 7)
    assert set(opt.state[3]) == {"step", "variance"} and opt.state[3]["variance"].shape == (5,)
    assert opt.state[4]["variance"].shape == ()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_matches_torch_on_batches_of_matrices(dtype):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    init = [rng.standard_normal(s).astype(dtype) for s in SHAPES]
    mine = [p.copy() for p in init]
    tensors = [torch.from_numpy(p.copy()) for p in init]
    opt = dlopt.optim.Adafactor(mine, lr=0.05, weight_decay=0.01)
    theirs = torch.optim.Adafactor(tensors, lr=0.05, weight_decay=0.01, foreach=False)
    tol = dict(rtol=2e-5, atol=2e-6) if dtype == np.float32 else dict(rtol=1e-10, atol=1e-12)
    for step, grads in enumerate(_grads(rng, init, 12)):
        opt.step(grads)
        for t, g in zip(tensors, grads):
            t.grad = torch.from_numpy(g.copy())
        theirs.step()
        for i, (a, t) in enumerate(zip(mine, tensors)):
            np.testing.assert_allclose(a, t.numpy(), **tol, err_msg=f"param {i} {a.shape}, step {step + 1}")
    for i, t in enumerate(tensors):
        for key, value in theirs.state[t].items():
            if key != "step":
                np.testing.assert_allclose(opt.state[i][key], value.numpy(), **tol, err_msg=f"state[{i}][{key}]")


def test_results_do_not_depend_on_the_thread_count():
    rng = np.random.default_rng(1)
    init = [rng.standard_normal(s).astype(np.float32) for s in [(4, 300, 33), (700, 64)]]
    grads = _grads(rng, init, 3)
    results = []
    previous = dlopt.get_num_threads()
    try:
        for threads in (1, 2, 3):
            dlopt.set_num_threads(threads)
            params = [p.copy() for p in init]
            opt = dlopt.optim.Adafactor(params)
            for g in grads:
                opt.step(g)
            results.append(params)
    finally:
        dlopt.set_num_threads(previous)
    for other in results[1:]:
        for a, b in zip(results[0], other):
            np.testing.assert_array_equal(a, b)


def test_a_scalar_eps_is_refused_and_changes_nothing():
    w = np.ones((2, 2))
    with pytest.raises(TypeError, match="eps: expected a pair"):
        dlopt.optim.Adafactor([w], eps=1e-3)
    with pytest.raises(TypeError, match="eps: expected a float"):
        dlopt.optim.Adam([w], eps=(None, 1e-3))
    opt = dlopt.optim.Adafactor([w])
    opt.param_groups[0]["eps"] = 0.5
    with pytest.raises(TypeError, match="eps"):
        opt.step([np.ones((2, 2))])
    np.testing.assert_array_equal(w, np.ones((2, 2)))
    assert not opt.state.get(0)


def test_16bit_parameters_are_refused_and_nothing_changes():
    bf16 = pytest.importorskip("ml_dtypes").bfloat16
    w = np.ones((4, 4), dtype=bf16)
    opt = dlopt.optim.Adafactor([w])
    with pytest.raises(TypeError, match="float32 or float64"):
        opt.step([np.ones((4, 4), dtype=bf16)])
    np.testing.assert_array_equal(w.astype(np.float32), np.ones((4, 4), np.float32))
    assert not opt.state.get(0)
