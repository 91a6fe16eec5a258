"""Linear models with device="cuda".

Everywhere: ``device`` is a constructor keyword (default "cpu") seen by get_params / set_params /
clone; an unknown device is a ValueError and device="cuda" without a GPU a RuntimeError, both raised
at fit before anything changes. Marked ``gpu`` (skipped without a CUDA device): the three models
trained on the GPU equal the CPU models (coef_, intercept_, loss_curve_) for full batch and shuffled
mini-batches, with sample weights, penalties and early stopping, and with bfloat16 / int8 optimizer
state; device arrays are used in place; bad device inputs raise before anything changes.
"""

import numpy as np
import pytest

import dlopt
from dlopt.linear_model import LinearRegression, LogisticRegression, SoftmaxRegression

# These tests compare a few epochs on the GPU with the CPU; whether the fits converged is not their
# subject (tests/test_convergence.py is), so the ConvergenceWarning of these short fits is expected.
pytestmark = pytest.mark.filterwarnings("ignore::dlopt.linear_model.ConvergenceWarning")

GPU = dlopt.cuda.is_available()
gpu = pytest.mark.skipif(not GPU, reason="needs a CUDA device and dlopt built with CUDA")
MODELS = [LinearRegression, LogisticRegression, SoftmaxRegression]


def data(model, n=500, d=7, dtype=np.float64, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d)).astype(dtype)
    z = X @ rng.normal(size=d)
    if model is LinearRegression:
        y = (z + 0.1 * rng.normal(size=n)).astype(dtype)
    elif model is LogisticRegression:
        y = (z > 0).astype(np.int64)
    else:
        y = np.digitize(z, [-1.0, 1.0])  # three classes
    return X, y


# -- everywhere --------------------------------------------------------------------------------

@pytest.mark.parametrize("model", MODELS)
def test_device_is_a_parameter(model):
    from sklearn.base import clone

    m = model()
    assert m.get_params()["device"] == "cpu"
    m.set_params(device="cuda")
    assert m.get_params()["device"] == "cuda"
    assert clone(m).device == "cuda"
    assert "device='cuda'" in repr(m)


@pytest.mark.parametrize("model", MODELS)
def test_bogus_device_raises_before_anything(model):
    X, y = data(model)
    m = model(device="bogus", epochs=2)
    with pytest.raises(ValueError, match="device"):
        m.fit(X, y)
    assert not hasattr(m, "coef_") and not hasattr(m, "n_features_in_")
    m = model(epochs=2).fit(X, y)
    coef = m.coef_.copy()
    m.set_params(device=3, warm_start=True)
    with pytest.raises(ValueError, match="device"):
        m.fit(X, y)
    np.testing.assert_array_equal(m.coef_, coef)


@pytest.mark.skipif(GPU, reason="checks the error raised without a GPU")
@pytest.mark.parametrize("model", MODELS)
def test_cuda_without_gpu_raises_clearly(model):
    X, y = data(model)
    m = model(device="cuda", epochs=2)
    with pytest.raises(RuntimeError, match="device='cuda'"):
        m.fit(X, y)
    assert not hasattr(m, "coef_")
    m = model(epochs=2).fit(X, y)
    coef, curve = m.coef_.copy(), list(m.loss_curve_)
    m.set_params(device="cuda", warm_start=True)
    with pytest.raises(RuntimeError, match="device='cuda'"):
        m.fit(X, y)
    np.testing.assert_array_equal(m.coef_, coef)
    assert m.loss_curve_ == curve
    m.set_params(device="cpu")
    m.fit(X, y)  # still trains on the CPU


# -- on a GPU ----------------------------------------------------------------------------------

def rtol_of(dtype):
    return 1e-6 if dtype == np.float64 else 1e-4


@gpu
@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("batch_size", [None, 32])
@pytest.mark.parametrize("weighted", [False, True])
def test_gpu_equals_cpu(model, dtype, batch_size, weighted):
    X, y = data(model, dtype=dtype)
    sw = np.random.default_rng(1).uniform(0, 2, size=len(y)) if weighted else None
    kw = dict(optimizer="adam", lr=0.05, epochs=15, batch_size=batch_size, random_state=3,
              penalty="elasticnet" if weighted else "l2", alpha=1e-3)
    cpu = model(**kw).fit(X, y, sample_weight=sw)
    gpu_model = model(device="cuda", **kw).fit(X, y, sample_weight=sw)
    rtol = rtol_of(dtype)
    assert isinstance(gpu_model.coef_, np.ndarray) and gpu_model.coef_.dtype == dtype
    np.testing.assert_allclose(gpu_model.coef_, cpu.coef_, rtol=rtol, atol=rtol)
    np.testing.assert_allclose(gpu_model.intercept_, cpu.intercept_, rtol=rtol, atol=rtol)
    np.testing.assert_allclose(gpu_model.loss_curve_, cpu.loss_curve_, rtol=rtol)
    assert gpu_model.t_ == cpu.t_ and gpu_model.n_iter_ == cpu.n_iter_
    gpu_model.predict(X[:5])  # predicts on the CPU from the copied-back coefficients


@gpu
@pytest.mark.parametrize("state_dtype", ["bfloat16", "int8"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_gpu_low_precision_state_equals_cpu(state_dtype, dtype):
    """bfloat16 / int8 state kept on the device in the CPU's formats. The batch gradients are summed in
    another order on the GPU: a last-bit difference may round a state value the other way, hence 1e-3."""
    X, y = data(LogisticRegression, dtype=dtype)
    kw = dict(optimizer="adam", lr=0.05, epochs=10, batch_size=32, random_state=3,
              optimizer_params={"state_dtype": state_dtype})
    cpu = LogisticRegression(**kw).fit(X, y)
    gpu_model = LogisticRegression(device="cuda", **kw).fit(X, y)
    native = LogisticRegression(device="cuda", **{**kw, "optimizer_params": {}}).fit(X, y)
    np.testing.assert_allclose(gpu_model.coef_, cpu.coef_, rtol=1e-3, atol=1e-3)
    np.testing.assert_allclose(gpu_model.loss_curve_, cpu.loss_curve_, rtol=1e-3)
    assert not np.array_equal(gpu_model.coef_, native.coef_)  # the state format was used


@gpu
@pytest.mark.parametrize("model", MODELS)
def test_gpu_schedule_shuffle_block_partial_fit(model):
    X, y = data(model, n=300)
    kw = dict(optimizer="sgd", lr=0.1, lr_schedule="cosine", epochs=6, batch_size=20, shuffle_block=4,
              random_state=5, optimizer_params={"momentum": 0.9})
    cpu, dev = model(**kw), model(device="cuda", **kw)
    extra = {} if model is LinearRegression else {"classes": np.unique(y)}
    for _ in range(3):
        cpu.partial_fit(X, y, **extra)
        dev.partial_fit(X, y, **extra)
    np.testing.assert_allclose(dev.coef_, cpu.coef_, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(dev.loss_curve_, cpu.loss_curve_, rtol=1e-6)
    np.testing.assert_allclose(dev.lr_curve_, cpu.lr_curve_)


@gpu
@pytest.mark.parametrize("model", MODELS)
def test_gpu_device_arrays_in_place(model):
    X, y = data(model)
    kw = dict(lr=0.05, epochs=5, batch_size=64, random_state=0)
    host = model(device="cuda", **kw).fit(X, y)
    X_dev = dlopt.cuda.DeviceArray.from_numpy(X)
    y_dev = dlopt.cuda.DeviceArray.from_numpy(np.asarray(y, dtype=np.float64))
    dev = model(device="cuda", **kw).fit(X_dev, y_dev)
    np.testing.assert_array_equal(dev.coef_, host.coef_)
    np.testing.assert_array_equal(dev.loss_curve_, host.loss_curve_)


@gpu
@pytest.mark.parametrize("model", MODELS)
def test_gpu_bad_inputs_raise_before_anything(model):
    X, y = data(model)
    m = model(device="cuda", epochs=3, warm_start=True).fit(X, y)
    coef, curve = m.coef_.copy(), list(m.loss_curve_)
    bad = [
        (dlopt.cuda.DeviceArray.from_numpy(np.ascontiguousarray(X[:, :3])), y),                       # wrong feature count
        (dlopt.cuda.DeviceArray.from_numpy(X.astype(np.float32)), y),            # wrong dtype
        (dlopt.cuda.DeviceArray.from_numpy(X), y[:10]),                          # wrong length
        (dlopt.cuda.DeviceArray.from_numpy(X[0]), y[:1]),                        # 1-D X
    ]
    for Xb, yb in bad:
        with pytest.raises((ValueError, TypeError)):
            m.fit(Xb, yb)
        np.testing.assert_array_equal(m.coef_, coef)
        assert m.loss_curve_ == curve


@gpu
@pytest.mark.parametrize("model", MODELS)
def test_gpu_early_stopping_equals_cpu(model):
    """Both devices run the one fit loop: the same validation split, scores, stop and best epoch."""
    X, y = data(model)
    kw = dict(epochs=30, batch_size=64, early_stopping=True, n_iter_no_change=2, random_state=3)
    host = model(**kw).fit(X, y)
    dev = model(device="cuda", **kw).fit(X, y)
    assert dev.n_iter_ == host.n_iter_ and dev.validation_scores_ == host.validation_scores_
    np.testing.assert_array_equal(dev.coef_, host.coef_)
    np.testing.assert_array_equal(dev.loss_curve_, host.loss_curve_)


@gpu
def test_gpu_divergence_restores_parameters():
    X, y = data(LinearRegression)
    m = LinearRegression(device="cuda", optimizer="sgd", lr=0.01, epochs=3, warm_start=True).fit(X, y)
    coef = m.coef_.copy()
    m.set_params(lr=1e100, epochs=5)  # z² overflows float64 in the 3rd epoch (1e30 only reaches 1e243)
    with pytest.raises(ValueError, match="diverged"):
        m.fit(X, y)
    np.testing.assert_array_equal(m.coef_, coef)


@gpu
def test_gpu_then_cpu_warm_start():
    X, y = data(LogisticRegression)
    m = LogisticRegression(device="cuda", epochs=5, warm_start=True, random_state=0).fit(X, y)
    first = m.loss_curve_[0]
    m.set_params(device="cpu").fit(X, y)  # continues from the GPU's coefficients (a fresh optimizer)
    assert m.loss_curve_[0] < first
