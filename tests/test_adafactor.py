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


def _clipped_gradients(rng, shape, steps, zero_rows):
    """Gradients whose update is clipped (RMS(U) > d = 1): large in a corner block of each matrix's
    rows x columns and its complement, small elsewhere, which the factored V̂ (rank one) cannot
    follow; optionally rows of zeros (V̂ = 0: their 1/√V̂ is capped at 1/ε₁)."""
    rows, cols = shape[-2], shape[-1]
    scale = np.where((np.arange(rows)[:, None] < rows // 5) == (np.arange(cols)[None, :] < cols // 5), 10.0, 0.1)
    out = []
    for _ in range(steps):
        g = rng.standard_normal(shape) * scale
        if zero_rows:
            g[..., ::7, :] = 0.0
        out.append(g)
    return out


@pytest.mark.parametrize("zero_rows", [False, True], ids=["sum-from-factors", "capped-rows-element-sums"])
def test_clipped_updates_match_the_numpy_transcription(zero_rows):
    """Σ U² of the update clipping: from the factors when no element reaches the cap on 1/√V̂,
    element by element when some do (zero rows); both equal the NumPy transcription of torch's
    algorithm in float64, over steps whose update is clipped (checked on the first)."""
    from reference import adafactor_step

    rng = np.random.default_rng(3)
    shape = (2, 70, 9)  # two matrices; the second starts inside a 64-row block
    init = rng.standard_normal(shape)
    grads = _clipped_gradients(rng, shape, 6, zero_rows)
    g2 = grads[0] ** 2  # step 1: R, C are the plain means (β̂₂ = 0)
    row, col = g2.mean(axis=-1, keepdims=True), g2.mean(axis=-2, keepdims=True)
    v = row * col / np.maximum(row.mean(axis=-2, keepdims=True), np.finfo(np.float64).eps)
    rms = np.sqrt(np.mean(grads[0] ** 2 / np.maximum(v, np.finfo(np.float64).eps ** 2)))
    assert rms > 1.1, f"the update must be clipped for this test to mean anything (RMS(U) = {rms})"
    mine, ref, state = init.copy(), init.copy(), {}
    opt = dlopt.optim.Adafactor([mine], lr=0.05)
    for g in grads:
        opt.step([g])
        adafactor_step(ref, g, state, lr=0.05)
        np.testing.assert_allclose(mine, ref, rtol=1e-12, atol=1e-14)
