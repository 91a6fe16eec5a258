"""Muon, the first matrix rule: against torch.optim.Muon (2.13) and a NumPy transcription of its
code; its 2-D-only and CPU-only limits; state, checkpoints and param groups as every optimizer."""

from __future__ import annotations

import inspect

import numpy as np
import pytest

import dlopt
from dlopt import _core
from optim_cases import MATRIX_CONFIGS

SHAPES = [(6, 4), (3, 8), (5, 5)]  # tall (transposed inside), wide, square


def numpy_muon_step(p, g, state, *, lr, weight_decay=0.1, momentum=0.95, nesterov=True,
                    ns_coefficients=(3.4445, -4.775, 2.0315), eps=1e-7, ns_steps=5, adjust_lr_fn=None):
    """torch.optim.Muon's _single_tensor_muon in NumPy (float64), with the Newton-Schulz iteration
    in the parameter's precision."""
    buf = state.setdefault("momentum_buffer", np.zeros_like(p))
    buf += (1 - momentum) * (g - buf)
    u = g + momentum * (buf - g) if nesterov else buf.copy()
    a, b, c = ns_coefficients
    x = u.T if p.shape[0] > p.shape[1] else u
    x = x / max(np.linalg.norm(x), eps)
    for _ in range(ns_steps):
        gram = x @ x.T
        x = a * x + (b * gram + c * gram @ gram) @ x
    if p.shape[0] > p.shape[1]:
        x = x.T
    rows, cols = p.shape
    ratio = np.sqrt(max(1, rows / cols)) if adjust_lr_fn in (None, "original") else 0.2 * np.sqrt(max(rows, cols))
    p *= 1 - lr * weight_decay
    p -= lr * ratio * x


def _data(dtype, seed=0, steps=6, shapes=SHAPES):
    rng = np.random.default_rng(seed)
    init = [rng.standard_normal(s).astype(dtype) for s in shapes]
    grads = [[rng.standard_normal(s).astype(dtype) for s in shapes] for _ in range(steps)]
    return init, grads


@pytest.mark.parametrize("kwargs", [
    {}, {"nesterov": False}, {"momentum": 0.3, "weight_decay": 0.0},
    {"adjust_lr_fn": "match_rms_adamw"}, {"ns_steps": 2, "ns_coefficients": (2.0, -1.5, 0.5), "eps": 1e-3},
])
def test_float64_equals_the_numpy_transcription(kwargs):
    init, grads = _data(np.float64)
    mine = [p.copy() for p in init]
    opt = dlopt.optim.Muon(mine, lr=0.02, **kwargs)
    ref, states = [p.copy() for p in init], [{} for _ in init]
    for gs in grads:
        opt.step(gs)
        for p, g, st in zip(ref, gs, states):
            numpy_muon_step(p, g, st, lr=0.02, **kwargs)
    for m, r, i in zip(mine, ref, range(3)):
        np.testing.assert_allclose(m, r, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(opt.state[i]["momentum_buffer"], states[i]["momentum_buffer"], rtol=1e-12)


def _torch_muon(torch, init, grads, ns_float32, **kwargs):
    import torch.optim._muon as torch_muon

    params = [torch.tensor(p, requires_grad=True) for p in init]
    opt = torch.optim.Muon(params, lr=0.02, **kwargs)
    original = torch_muon._zeropower_via_newtonschulz
    if ns_float32:  # torch's iteration, run in float32 instead of bfloat16
        def float32_ns(grad, ns_coefficients, ns_steps, eps):
            a, b, c = ns_coefficients
            x = grad.float()
            if grad.size(0) > grad.size(1):
                x = x.T
            x = x / x.norm().clamp(min=eps)
            for _ in range(ns_steps):
                gram = x @ x.T
                x = torch.addmm(x, torch.addmm(gram, gram, gram, beta=b, alpha=c), x, beta=a)
            return x.T if grad.size(0) > grad.size(1) else x
        torch_muon._zeropower_via_newtonschulz = float32_ns
    try:
        for gs in grads:
            for p, g in zip(params, gs):
                p.grad = torch.tensor(g)
            opt.step()
    finally:
        torch_muon._zeropower_via_newtonschulz = original
    return [p.detach().numpy() for p in params]


@pytest.mark.parametrize("kwargs", [{}, {"nesterov": False, "adjust_lr_fn": "match_rms_adamw"}])
def test_float32_equals_torch_with_a_float32_iteration(kwargs):
    torch = pytest.importorskip("torch")
    init, grads = _data(np.float32, seed=1)
    theirs = _torch_muon(torch, init, grads, ns_float32=True, **kwargs)
    mine = [p.copy() for p in init]
    opt = dlopt.optim.Muon(mine, lr=0.02, **kwargs)
    for gs in grads:
        opt.step(gs)
    for m, t in zip(mine, theirs):
        np.testing.assert_allclose(m, t, rtol=1e-5, atol=1e-6)


# Large shapes: several of bf16_matmul's 256 x 256 tiles, edge tiles and symmetric tiles mirrored.
@pytest.mark.parametrize("shapes", [SHAPES, [(520, 300), (300, 520)]], ids=["small", "tiled"])
def test_bfloat16_iteration_follows_torch(shapes):
    """torch runs Newton-Schulz in bfloat16; ns_dtype="bfloat16" rounds every product the same way
    (through oneDNN where the build has it, dlopt.bf16_matmul_library()). Its bfloat16 GEMMs accumulate
    in another order, so a bfloat16 ulp (0.4%) apart, not bit for bit: the updates agree to a few
    bfloat16 ulps, and much better than a float32 iteration would."""
    torch = pytest.importorskip("torch")
    init, grads = _data(np.float32, seed=2, steps=1, shapes=shapes)
    theirs = _torch_muon(torch, init, grads, ns_float32=False, weight_decay=0.0)
    worst, frobenius = {}, {}  # the largest element's error and the whole update's, relative
    for ns_dtype in ("bfloat16", "float32"):
        mine = [p.copy() for p in init]
        dlopt.optim.Muon(mine, lr=0.02, weight_decay=0.0, ns_dtype=ns_dtype).step(grads[0])
        worst[ns_dtype] = max(np.abs((m - p0) - (t - p0)).max() / np.abs(t - p0).max()
                              for m, t, p0 in zip(mine, theirs, init))
        frobenius[ns_dtype] = max(np.linalg.norm((m - p0) - (t - p0)) / np.linalg.norm(t - p0)
                                  for m, t, p0 in zip(mine, theirs, init))
    assert frobenius["bfloat16"] < 0.01
    assert frobenius["bfloat16"] < 0.7 * frobenius["float32"]
    if shapes is SHAPES:  # on large matrices a few elements stray further, with Eigen's products too
        assert worst["bfloat16"] < 0.02
        assert worst["bfloat16"] < worst["float32"]


def test_signature_and_defaults_match_torch_and_cpp():
    torch = pytest.importorskip("torch")
    ours = inspect.signature(dlopt.optim.Muon).parameters
    ours = {k: v for k, v in ours.items() if k not in (*dlopt.optim.optimizer.STORAGE_KEYS, "ns_dtype")}
    theirs = inspect.signature(torch.optim.Muon).parameters
    assert list(ours) == list(theirs)
    for name, p in ours.items():
        if name != "params":
            assert p.default == pytest.approx(theirs[name].default) if isinstance(p.default, tuple) \
                else p.default == theirs[name].default, name
    opt = dlopt.optim.Muon([np.zeros((2, 2))])
    config = opt._config(opt.param_groups[0], 0)
    cpp = _core.defaults("Muon")
    assert {k: cpp[k] for k in config} == pytest.approx(config)
    assert set(config) == set(cpp)


def test_2d_only_cpu_only_and_bad_input_change_nothing():
    with pytest.raises(ValueError, match="2D parameters"):
        dlopt.optim.Muon([np.zeros(4)])
    w = np.ones((3, 4), np.float32)
    opt = dlopt.optim.Muon([w], **MATRIX_CONFIGS["Muon"])
    with pytest.raises(ValueError, match="2D parameters"):
        opt.add_param_group({"params": [np.zeros((2, 2, 2), np.float32)]})
    assert len(opt.param_groups) == 1
    with pytest.raises(ValueError, match="adjust_lr_fn"):
        dlopt.optim.Muon([w], adjust_lr_fn="nope")
    with pytest.raises(ValueError, match="ns_steps"):
        dlopt.optim.Muon([w], ns_steps=2.5)
    with pytest.raises(TypeError, match="ns_coefficients"):
        dlopt.optim.Muon([w], ns_coefficients=(1.0, 2.0))
    with pytest.raises(ValueError, match="ns_dtype"):
        dlopt.optim.Muon([w], ns_dtype="float16")
    q = dlopt.optim.Muon([w], state_dtype="int8")
    with pytest.raises(ValueError, match="state_dtype='int8' is not supported"):
        q.step([np.ones((3, 4), np.float32)])
    assert np.all(w == 1) and not q.state


def test_state_dict_round_trip_resumes_bit_for_bit(tmp_path):
    init, grads = _data(np.float32, seed=3)
    a = [p.copy() for p in init]
    opt_a = dlopt.optim.Muon(a, **MATRIX_CONFIGS["Muon"])
    for gs in grads:
        opt_a.step(gs)
    b = [p.copy() for p in init]
    opt_b = dlopt.optim.Muon(b, **MATRIX_CONFIGS["Muon"])
    for gs in grads[:3]:
        opt_b.step(gs)
    dlopt.save(tmp_path / "muon.dlopt", optimizer=opt_b, params={str(i): p for i, p in enumerate(b)})
    c = [np.zeros_like(p) for p in init]
    opt_c = dlopt.optim.Muon(c, **MATRIX_CONFIGS["Muon"])
    dlopt.load(tmp_path / "muon.dlopt", optimizer=opt_c, params={str(i): p for i, p in enumerate(c)})
    for gs in grads[3:]:
        opt_c.step(gs)
    for x, y in zip(a, c):
        np.testing.assert_array_equal(x, y)


def test_none_gradient_and_param_groups():
    init, grads = _data(np.float64, seed=4, steps=2)
    params = [p.copy() for p in init]
    opt = dlopt.optim.Muon([{"params": params[:2]}, {"params": params[2:], "lr": 0.5, "adjust_lr_fn": "match_rms_adamw"}],
                           lr=0.02)
    opt.step([grads[0][0], None, grads[0][2]])
    np.testing.assert_array_equal(params[1], init[1])
    assert set(opt.state) == {0, 2}
    ref = init[2].copy()
    numpy_muon_step(ref, grads[0][2], {}, lr=0.5, adjust_lr_fn="match_rms_adamw")
    np.testing.assert_allclose(params[2], ref, rtol=1e-10)


@pytest.mark.parametrize("ns_dtype, shape", [("float32", (256, 192)), ("bfloat16", (600, 300))])
def test_results_do_not_depend_on_the_thread_count(ns_dtype, shape):
    big = [np.random.default_rng(6).standard_normal(shape).astype(np.float32)]
    big_grads = [[np.random.default_rng(7 + i).standard_normal(shape).astype(np.float32)] for i in range(3)]
    before = dlopt.get_num_threads()
    out = []
    try:
        for threads in (1, 2):
            dlopt.set_num_threads(threads)
            p = [x.copy() for x in big]
            opt = dlopt.optim.Muon(p, lr=0.02, ns_dtype=ns_dtype)
            for gs in big_grads:
                opt.step(gs)
            out.append(p[0])
    finally:
        dlopt.set_num_threads(before)
    np.testing.assert_array_equal(out[0], out[1])
