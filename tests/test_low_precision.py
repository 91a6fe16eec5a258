"""16-bit parameters, stochastic rounding and low-precision state (docs/formats.md).

The formats are checked bit for bit against tests/formats_reference.py, a NumPy transcription of
their documented definitions; training quality against float32 on problems where it matters.
"""

from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest

import dlopt
from dlopt import _core
from formats_reference import (BF16, bf16_stochastic, dequantize, dither_of_byte, f16_stochastic,
                               quantize, random_bits, rounding_key, slot_byte)


def sgd_update(p: np.ndarray, g: np.ndarray, lr: float) -> np.ndarray:
    """SGD without momentum in float32, as the rule computes it: p - lr·g."""
    return p.astype(np.float32) - np.float32(lr) * g.astype(np.float32)


# -- 16-bit parameters ------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype, rounder", [(BF16, bf16_stochastic), (np.float16, f16_stochastic)])
def test_stochastic_rounding_matches_the_reference_bit_for_bit(dtype, rounder):
    rng = np.random.default_rng(0)
    sizes = [70_001, 1000]  # > 16K elements: the parallel path; several blocks and a tail
    params = [rng.normal(size=n).astype(dtype) for n in sizes]
    params[1][:3] = [np.inf, -np.inf, np.nan]  # stay inf, -inf and a NaN
    expected = [p.copy() for p in params]
    opt = dlopt.optim.SGD(params, lr=0.01, seed=1234)
    for step in range(1, 4):
        grads = [rng.normal(size=n).astype(dtype) for n in sizes]
        opt.step(grads)
        for t, (e, g) in enumerate(zip(expected, grads)):
            bits = random_bits(rounding_key(1234, step, t), np.arange(e.size))
            e[:] = rounder(sgd_update(e, g, 0.01), bits & np.uint32(0xFFFF))
        for p, e in zip(params, expected):
            np.testing.assert_array_equal(p.view(np.uint16), e.view(np.uint16))
    assert np.isposinf(params[1][0]) and np.isneginf(params[1][1]) and np.isnan(params[1][2])


@pytest.mark.parametrize("dtype", [BF16, np.float16])
def test_round_to_nearest_when_asked(dtype):
    rng = np.random.default_rng(1)
    p = rng.normal(size=5000).astype(dtype)
    g = rng.normal(size=5000).astype(dtype)
    expected = sgd_update(p, g, 0.003).astype(dtype)
    dlopt.optim.SGD([p], lr=0.003, stochastic_rounding=False).step([g])
    np.testing.assert_array_equal(p.view(np.uint16), expected.view(np.uint16))


def test_seed_changes_the_rounding_and_results_repeat():
    def run(seed):
        p = np.ones(4096, BF16)
        dlopt.optim.SGD([p], lr=1e-3, seed=seed).step([np.ones(4096, BF16)])
        return p.view(np.uint16).copy()
    assert np.array_equal(run(7), run(7))
    assert not np.array_equal(run(7), run(8))


def test_stochastic_rounding_trains_where_round_to_nearest_stalls():
    """Gradient descent on f(w) = w²/2 from w = 1 with lr 1e-3: every update (1e-3·w) is below half
    a bfloat16 ulp at 1 (2⁻⁹), so round-to-nearest never moves, while stochastic rounding is unbiased
    and follows float32 (w = 0.999³⁰⁰⁰ ≈ 0.0497 after 3000 steps)."""
    n, steps = 4096, 3000
    w32 = np.ones(n, np.float32)
    sr, rne = np.ones(n, BF16), np.ones(n, BF16)
    opts = [dlopt.optim.SGD([w32], lr=1e-3), dlopt.optim.SGD([sr], lr=1e-3),
            dlopt.optim.SGD([rne], lr=1e-3, stochastic_rounding=False)]
    for _ in range(steps):
        for opt, w in zip(opts, (w32, sr, rne)):
            opt.step([w.copy()])  # the gradient of w²/2 is w
    assert np.all(rne.astype(np.float32) == 1.0)
    assert w32[0] == pytest.approx(0.999 ** steps, rel=1e-4)
    assert sr.astype(np.float32).mean() == pytest.approx(w32[0], rel=0.01)


def test_master_weights_follow_float32_and_round_to_nearest():
    rng = np.random.default_rng(2)
    p16 = rng.normal(size=3000).astype(BF16)
    p32 = p16.astype(np.float32)
    opt16 = dlopt.optim.AdamW([p16], lr=1e-2, master_weights=True)
    opt32 = dlopt.optim.AdamW([p32], lr=1e-2)
    for _ in range(5):
        g = rng.normal(size=3000).astype(np.float32)
        opt16.step([g.astype(BF16)])
        opt32.step([g.astype(BF16).astype(np.float32)])
    master = opt16.state[0]["master_param"]
    np.testing.assert_array_equal(master, p32)
    np.testing.assert_array_equal(p16.view(np.uint16), p32.astype(BF16).view(np.uint16))


# -- 8-bit and bfloat16 state -----------------------------------------------------------------------

@pytest.mark.parametrize("stochastic", [True, False])
def test_int8_momentum_matches_the_reference_quantizer_bit_for_bit(stochastic):
    rng = np.random.default_rng(3)
    n, lr, mu, seed = 20_000, 0.05, 0.9, 99  # several blocks and a partial last one
    p = rng.normal(size=n).astype(np.float32)
    ref_p = p.copy()
    opt = dlopt.optim.SGD([p], lr=lr, momentum=mu, state_dtype="int8", stochastic_rounding=stochastic,
                          seed=seed)
    ref_codes = ref_scales = None
    for step in range(4):
        g = rng.normal(size=n).astype(np.float32)
        opt.step([g])
        if step == 0:
            buf = g
        else:
            buf = np.float32(mu) * dequantize(ref_codes, ref_scales) + np.float32(1.0) * g
        dithers = dither_of_byte(slot_byte(random_bits(rounding_key(seed, step + 1, 0), np.arange(n)), 0))
        ref_codes, ref_scales = quantize(buf, signed=True, dithers=dithers if stochastic else None)
        ref_p = ref_p - np.float32(lr) * buf
        np.testing.assert_array_equal(opt.state[0]["momentum_buffer"], ref_codes)
        np.testing.assert_array_equal(opt.state[0]["momentum_buffer_scale"], ref_scales)
        np.testing.assert_array_equal(p, ref_p)


def test_uint8_second_moment_matches_the_reference_quantizer():
    rng = np.random.default_rng(4)
    g = (rng.normal(size=1000) * np.logspace(-4, 2, 1000)).astype(np.float32)
    p = np.zeros(1000, np.float32)
    opt = dlopt.optim.Adam([p], state_dtype="int8", stochastic_rounding=False)
    opt.step([g])
    v = np.float32(0.999) * np.float32(0) + (np.float32(1 - 0.999) * g) * g
    codes, scales = quantize(v, signed=False)
    assert opt.state[0]["exp_avg_sq"].dtype == np.uint8
    np.testing.assert_array_equal(opt.state[0]["exp_avg_sq"], codes)
    np.testing.assert_array_equal(opt.state[0]["exp_avg_sq_scale"], scales)
    m_codes, m_scales = quantize(np.float32(0) + np.float32(1 - 0.9) * (g - np.float32(0)), signed=True)
    np.testing.assert_array_equal(opt.state[0]["exp_avg"], m_codes)
    np.testing.assert_array_equal(opt.state[0]["exp_avg_scale"], m_scales)


def test_dequantize_matches_the_reference():
    rng = np.random.default_rng(5)
    x = (rng.normal(size=1300) * 10).astype(np.float32)
    for signed in (True, False):
        codes, scales = quantize(x if signed else np.abs(x), signed)
        np.testing.assert_array_equal(_core.dequantize(codes, scales), dequantize(codes, scales))


def test_nan_in_state_is_kept_not_quantized_away():
    p = np.zeros(600, np.float32)
    g = np.ones(600, np.float32)
    g[300] = np.nan
    opt = dlopt.optim.SGD([p], lr=0.1, momentum=0.9, state_dtype="int8")
    opt.step([g])
    scales = opt.state[0]["momentum_buffer_scale"]
    assert np.isnan(scales[1]) and not np.isnan(scales[0]) and not np.isnan(scales[2])
    assert np.all(np.isnan(opt.dequantized_state(0)["momentum_buffer"][256:512]))


def test_bfloat16_state_is_round_to_nearest_of_the_float32_update():
    rng = np.random.default_rng(6)
    g = rng.normal(size=777).astype(np.float32)
    p = np.zeros(777, np.float32)
    opt = dlopt.optim.SGD([p], lr=0.1, momentum=0.5, state_dtype="bfloat16", stochastic_rounding=False)
    opt.step([g])
    assert opt.state[0]["momentum_buffer"].dtype == BF16
    np.testing.assert_array_equal(opt.state[0]["momentum_buffer"].view(np.uint16), g.astype(BF16).view(np.uint16))
    q = np.zeros(777, np.float32)
    opt = dlopt.optim.SGD([q], lr=0.1, momentum=0.5, state_dtype="bfloat16", seed=5)
    opt.step([g])
    byte = slot_byte(random_bits(rounding_key(5, 1, 0), np.arange(777)), 0)
    np.testing.assert_array_equal(opt.state[0]["momentum_buffer"].view(np.uint16),
                                  bf16_stochastic(g, (byte << np.uint32(8)) | np.uint32(0x80)).view(np.uint16))
    np.testing.assert_array_equal(p, np.float32(0) - np.float32(0.1) * g)


@pytest.mark.parametrize("state_dtype", ["bfloat16", "int8"])
def test_results_do_not_depend_on_the_thread_count(optimizer_name, state_dtype):
    if optimizer_name in FULL_PRECISION_PARAMS:
        pytest.skip(f"{optimizer_name} takes float32/float64 parameters (tests/test_adafactor.py: threads)")

    def run(threads):
        dlopt.set_num_threads(threads)
        rng = np.random.default_rng(7)
        params = [rng.normal(size=n).astype(BF16) for n in (50_000, 999)]
        opt = dlopt.optim.__dict__[optimizer_name](params, state_dtype=state_dtype)
        for _ in range(3):
            opt.step([rng.normal(size=p.size).astype(BF16) for p in params])
        return [p.view(np.uint16).copy() for p in params], opt.state_dict()["state"]
    before = dlopt.get_num_threads()
    try:
        (p1, s1), (p2, s2) = run(1), run(2)
    finally:
        dlopt.set_num_threads(before)
    for a, b in zip(p1, p2):
        np.testing.assert_array_equal(a, b)
    for i in s1:
        for k in s1[i]:
            a, b = np.asarray(s1[i][k]), np.asarray(s2[i][k])
            np.testing.assert_array_equal(a.reshape(-1).view(np.uint8), b.reshape(-1).view(np.uint8))


# Whole-tensor rules that take float32/float64 parameters only, for now (docs/ARCHITECTURE.md).
FULL_PRECISION_PARAMS = {"Adafactor"}

# The slots docs/formats.md says stay in the compute type under every state_dtype.
WIDE_SLOTS = {"Adagrad": {"sum"}, "Rprop": {"step_size"}, "ScheduleFreeSGD": {"z"}, "ScheduleFreeAdamW": {"z"},
              "Adafactor": {"row_var", "col_var", "variance"}}


@pytest.mark.parametrize("state_dtype", ["bfloat16", "int8"])
def test_every_optimizer_stores_state_as_documented(optimizer_name, state_dtype):
    p = np.zeros(300, np.float32)
    opt = dlopt.optim.__dict__[optimizer_name]([p], state_dtype=state_dtype)
    opt.step([np.linspace(-1, 1, 300, dtype=np.float32)])
    for name in _core.slot_names(optimizer_name):
        if name not in opt.state[0]:
            continue
        dtype = opt.state[0][name].dtype
        if name in WIDE_SLOTS.get(optimizer_name, ()):  # kept in the compute type (docs/formats.md)
            assert dtype == np.float32
        elif state_dtype == "bfloat16":
            assert dtype == BF16
        else:
            assert dtype in (np.int8, np.uint8)
            assert opt.state[0][f"{name}_scale"].shape == (2,)


# -- it must still train ----------------------------------------------------------------------------

def _digits_mlp(optimizer_name, state_dtype, **kwargs):
    """A 64-32-10 MLP on scikit-learn's digits, full-batch, gradients by NumPy."""
    datasets = pytest.importorskip("sklearn.datasets")
    X, y = datasets.load_digits(return_X_y=True)
    X = (X / 16.0).astype(np.float32)
    train, test = slice(0, 1400), slice(1400, None)
    rng = np.random.default_rng(0)
    W1 = (rng.normal(size=(64, 32)) / 8).astype(np.float32)
    b1 = np.zeros(32, np.float32)
    W2 = (rng.normal(size=(32, 10)) / np.sqrt(32)).astype(np.float32)
    b2 = np.zeros(10, np.float32)
    params = [W1, b1, W2, b2]
    opt = dlopt.optim.__dict__[optimizer_name](params, state_dtype=state_dtype, **kwargs)
    Y = np.eye(10, dtype=np.float32)[y[train]]

    def forward(Xb):
        h = np.maximum(Xb @ W1 + b1, 0)
        z = h @ W2 + b2
        z = z - z.max(axis=1, keepdims=True)
        prob = np.exp(z)
        return h, prob / prob.sum(axis=1, keepdims=True)

    for _ in range(300):
        h, prob = forward(X[train])
        dz = (prob - Y) / len(Y)
        dh = (dz @ W2.T) * (h > 0)
        opt.step([X[train].T @ dh, dh.sum(0), h.T @ dz, dz.sum(0)])
    _, prob = forward(X[train])
    loss = float(-np.log(prob[np.arange(len(Y)), y[train]] + 1e-12).mean())
    accuracy = float((forward(X[test])[1].argmax(1) == y[test]).mean())
    return loss, accuracy


@pytest.mark.parametrize("optimizer_name, kwargs", [
    ("Adam", {"lr": 3e-3}), ("AdamW", {"lr": 3e-3}), ("SGD", {"lr": 0.3, "momentum": 0.9}),
    ("Lion", {"lr": 1e-3}),
])
@pytest.mark.parametrize("state_dtype", ["bfloat16", "int8"])
def test_low_precision_state_trains_like_float32(optimizer_name, kwargs, state_dtype):
    loss32, acc32 = _digits_mlp(optimizer_name, None, **kwargs)
    loss, acc = _digits_mlp(optimizer_name, state_dtype, **kwargs)
    assert loss == pytest.approx(loss32, rel=0.02)
    assert acc >= acc32 - 0.005


# -- checkpoints and bad input ----------------------------------------------------------------------

def test_int8_state_round_trips_through_a_checkpoint_and_resumes_bit_for_bit(tmp_path):
    rng = np.random.default_rng(8)
    grads = [rng.normal(size=(64, 1000)).astype(np.float32) for _ in range(4)]

    def fresh(state_dtype):
        w = np.asarray(np.random.default_rng(9).normal(size=(64, 1000)), np.float32)
        return w, dlopt.optim.Adam([w], lr=1e-3, state_dtype=state_dtype)

    w, opt = fresh("int8")
    for g in grads:
        opt.step([g])
    w_ref = w.copy()

    w, opt = fresh("int8")
    for g in grads[:2]:
        opt.step([g])
    dlopt.save(tmp_path / "int8.dlopt", optimizer=opt, params={"w": w})
    w2, opt2 = fresh("int8")
    dlopt.load(tmp_path / "int8.dlopt", optimizer=opt2, params={"w": w2})
    assert opt2.state[0]["exp_avg"].dtype == np.int8 and opt2.state[0]["exp_avg_sq"].dtype == np.uint8
    for g in grads[2:]:
        opt2.step([g])
    np.testing.assert_array_equal(w2, w_ref)

    w32, opt32 = fresh(None)
    opt32.step([grads[0]])
    dlopt.save(tmp_path / "f32.dlopt", optimizer=opt32)
    dlopt.save(tmp_path / "int8-only.dlopt", optimizer=opt)
    ratio = (tmp_path / "int8-only.dlopt").stat().st_size / (tmp_path / "f32.dlopt").stat().st_size
    assert 0.24 < ratio < 0.27


def test_bad_storage_input_is_refused_and_changes_nothing():
    p32 = np.ones(300, np.float32)
    with pytest.raises(ValueError, match="state_dtype"):
        dlopt.optim.Adam([p32], state_dtype="int4")
    with pytest.raises(TypeError, match="seed"):
        dlopt.optim.Adam([p32], seed=1.5)
    with pytest.raises(TypeError, match="master_weights"):
        dlopt.optim.Adam([p32], master_weights="yes")

    opt = dlopt.optim.Adam([p32])
    with pytest.raises(TypeError, match=r"grads\[0\]: dtype bfloat16 does not match params\[0\]'s float32"):
        opt.step([np.ones(300, BF16)])
    assert np.all(p32 == 1) and not opt.state
    p16 = np.ones(300, BF16)
    with pytest.raises(TypeError, match=r"grads\[0\]: dtype float32 does not match params\[0\]'s bfloat16"):
        dlopt.optim.Adam([p16]).step([np.ones(300, np.float32)])

    # an 8-bit state into a float32-state optimizer, and the reverse
    q = dlopt.optim.Adam([np.ones(300, np.float32)], state_dtype="int8")
    q.step([np.ones(300, np.float32)])
    opt.step([np.ones(300, np.float32)])
    before = {k: np.copy(v) for k, v in opt.state[0].items()}
    # (a state_dict brings its groups' state_dtype along, as torch's brings lr: make them disagree)
    sd = q.state_dict()
    sd["param_groups"][0]["state_dtype"] = None
    with pytest.raises(TypeError, match="stored as int8, but this optimizer stores it as float32"):
        opt.load_state_dict(sd)
    for k, v in before.items():
        np.testing.assert_array_equal(opt.state[0][k], v)
    assert opt.param_groups[0]["state_dtype"] is None
    sd = opt.state_dict()
    sd["param_groups"][0]["state_dtype"] = "int8"
    with pytest.raises(TypeError, match="stored as float32, but this optimizer stores it as int8"):
        q.load_state_dict(sd)

    # missing or wrong scales
    sd = q.state_dict()
    del sd["state"][0]["exp_avg_scale"]
    with pytest.raises(ValueError, match=r"exp_avg_scale'\] is missing"):
        q.load_state_dict(sd)
    sd = q.state_dict()
    sd["state"][0]["exp_avg_scale"] = np.ones(5, np.float32)
    with pytest.raises(ValueError, match=r"exp_avg_scale'\]: expected shape \(2,\)"):
        q.load_state_dict(sd)

    # changing state_dtype once state exists is refused at the next step
    q.param_groups[0]["state_dtype"] = "bfloat16"
    codes = q.state[0]["exp_avg"].copy()
    with pytest.raises(TypeError, match="stored as int8"):
        q.step([np.ones(300, np.float32)])
    np.testing.assert_array_equal(q.state[0]["exp_avg"], codes)


@pytest.mark.parametrize("state_dtype", ["bfloat16", "int8"])
@pytest.mark.filterwarnings("ignore::dlopt.linear_model.ConvergenceWarning")  # 60 epochs on purpose
def test_linear_models_take_the_storage_options(state_dtype):
    datasets = pytest.importorskip("sklearn.datasets")
    X, y = datasets.load_diabetes(return_X_y=True)
    X = ((X - X.mean(0)) / X.std(0)).astype(np.float32)
    y = ((y - y.mean()) / y.std()).astype(np.float32)

    def fit(options):
        return dlopt.linear_model.LinearRegression(optimizer="adam", lr=0.01, epochs=60, batch_size=32,
                                                   optimizer_params=options).fit(X, y)
    ref, low = fit(None), fit({"state_dtype": state_dtype, "seed": 3})
    assert not np.array_equal(low.coef_, ref.coef_)  # the option reached the optimizer
    assert low.score(X, y) == pytest.approx(ref.score(X, y), rel=0.01)
    with pytest.raises(ValueError, match="master_weights"):
        fit({"master_weights": True})
