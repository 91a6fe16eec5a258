"""The NumPy API takes what users hand it: torch CPU tensors, ``__array_interface__`` and ``__dlpack__``
objects, in place and without a copy; torch's implementation switches; param-group keys it does not
read (kept, as torch keeps them)."""

import inspect

import ml_dtypes
import numpy as np
import pytest

import dlopt
from optim_cases import make_optimizer, random_grads, random_params


class ArrayInterface:
    """Exports a NumPy array's memory through __array_interface__ only."""

    def __init__(self, a):
        self.a = a
        self.__array_interface__ = a.__array_interface__


class DLPackOnly:
    """Exports a NumPy array's memory through __dlpack__ only."""

    def __init__(self, a):
        self.a = a

    def __dlpack__(self, **kwargs):
        return self.a.__dlpack__(**kwargs)

    def __dlpack_device__(self):
        return self.a.__dlpack_device__()


def _wrap(kind, a):
    if kind == "array_interface":
        return ArrayInterface(a)
    if kind == "dlpack":
        return DLPackOnly(a)
    torch = pytest.importorskip("torch")
    return torch.from_numpy(a).requires_grad_(True) if kind == "torch_param" else torch.from_numpy(a)


@pytest.mark.parametrize("kind", ["torch", "torch_param", "array_interface", "dlpack"])
def test_foreign_parameters_are_stepped_in_place(optimizer_name, kind):
    rng = np.random.default_rng(0)
    params = random_params(rng)
    mine = [p.copy() for p in params]  # the memory the foreign objects export
    wrapped = [_wrap(kind, a) for a in mine]
    ref = make_optimizer(optimizer_name, params)
    opt = make_optimizer(optimizer_name, wrapped)
    assert opt.param_groups[0]["params"][0] is wrapped[0]
    for _ in range(3):
        grads = random_grads(rng, params)
        ref.step(grads)
        foreign_grads = [_wrap(kind.replace("_param", ""), g) for g in grads]
        opt.step(foreign_grads)
    for a, b in zip(mine, params):
        np.testing.assert_array_equal(a, b)


def test_torch_tensor_16bit_and_float64_in_place():
    torch = pytest.importorskip("torch")
    for dtype, np_dtype in [(torch.bfloat16, ml_dtypes.bfloat16), (torch.float16, np.float16),
                            (torch.float64, np.float64)]:
        t = torch.ones(300, dtype=dtype)
        ref = np.ones(300, dtype=np_dtype)
        g = torch.full((300,), 0.5, dtype=dtype)
        opt = dlopt.optim.Adam([t], lr=0.01, stochastic_rounding=False)
        ref_opt = dlopt.optim.Adam([ref], lr=0.01, stochastic_rounding=False)
        ptr = t.data_ptr()
        for _ in range(2):
            opt.step([g])
            ref_opt.step([np.full(300, 0.5, dtype=np_dtype)])
        assert t.data_ptr() == ptr
        np.testing.assert_array_equal(t.float().numpy(), ref.astype(np.float32))


def test_storage_moved_between_steps_is_followed():
    torch = pytest.importorskip("torch")
    p = torch.nn.Parameter(torch.ones(4))
    opt = dlopt.optim.SGD([p], lr=0.5)
    opt.step([torch.ones(4)])
    p.data = torch.zeros(4)  # new storage, same Parameter object
    opt.step([torch.ones(4)])
    np.testing.assert_array_equal(p.detach().numpy(), [-0.5] * 4)


@pytest.mark.parametrize("bad,error,words", [
    ("noncontiguous", ValueError, "not contiguous"),
    ("sparse", TypeError, "sparse"),
    ("int", TypeError, "dtype"),
    ("meta", TypeError, "device"),
])
def test_bad_torch_parameters_are_refused(bad, error, words):
    torch = pytest.importorskip("torch")
    t = {"noncontiguous": lambda: torch.ones(4, 4).t(), "sparse": lambda: torch.ones(4).to_sparse(),
         "int": lambda: torch.ones(4, dtype=torch.int32), "meta": lambda: torch.ones(4, device="meta")}[bad]()
    with pytest.raises(error, match=words):
        dlopt.optim.SGD([t], lr=0.1)


def test_bad_torch_gradient_is_refused_and_changes_nothing():
    torch = pytest.importorskip("torch")
    p = torch.ones(4)
    opt = dlopt.optim.SGD([p], lr=0.1, momentum=0.9)
    opt.step([torch.ones(4)])
    before, buf = p.clone(), opt.state[0]["momentum_buffer"].copy()
    for g, error, words in [(torch.ones(4).to_sparse(), TypeError, "sparse"),
                            (torch.ones(8)[::2], ValueError, "contiguous"),
                            (torch.ones(4, dtype=torch.float64), TypeError, "dtype")]:
        with pytest.raises(error, match=words):
            opt.step([g])
        assert torch.equal(p, before)
        np.testing.assert_array_equal(opt.state[0]["momentum_buffer"], buf)
        assert opt.state[0]["step"] == 1


def test_read_only_array_interface_is_refused():
    a = np.ones(3)
    a.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        dlopt.optim.SGD([ArrayInterface(a)], lr=0.1)


def test_unknown_objects_are_refused_with_a_clear_message():
    with pytest.raises(TypeError, match=r"params\[0\].*__dlpack__"):
        dlopt.optim.SGD([[1.0, 2.0]], lr=0.1)


def test_a_single_foreign_array_is_not_taken_for_a_list():
    with pytest.raises(TypeError, match="wrap a single array in a list"):
        dlopt.optim.SGD(ArrayInterface(np.ones(3)), lr=0.1)


# -- torch's switches ---------------------------------------------------------------------------------

def test_torch_switches_are_accepted_and_ignored(optimizer_name):
    rng = np.random.default_rng(2)
    params = random_params(rng)
    a, b = [p.copy() for p in params], [p.copy() for p in params]
    opt_a = make_optimizer(optimizer_name, a, foreach=True, fused=True, capturable=True, differentiable=False)
    opt_b = make_optimizer(optimizer_name, b)
    for _ in range(2):
        grads = random_grads(rng, params)
        opt_a.step(grads)
        opt_b.step(grads)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
    assert not set(opt_a.param_groups[0]) & {"foreach", "fused", "capturable", "differentiable"}
    # the documented signature is still the class's own
    assert "fused" not in inspect.signature(type(opt_a)).parameters


def test_bad_switch_values_are_refused():
    with pytest.raises(TypeError, match="fused"):
        dlopt.optim.Adam([np.zeros(2)], fused="yes")
    with pytest.raises(ValueError, match="differentiable=True"):
        dlopt.optim.Adam([np.zeros(2)], differentiable=True)


# -- keys the step does not read ----------------------------------------------------------------------

def test_unknown_group_keys_are_kept(optimizer_name):
    rng = np.random.default_rng(3)
    params = random_params(rng)
    a, b = [p.copy() for p in params], [p.copy() for p in params]
    opt_a = make_optimizer(optimizer_name, [{"params": a, "name": "layer", "note": [1, 2]}])
    opt_b = make_optimizer(optimizer_name, b)
    grads = random_grads(rng, params)
    opt_a.step(grads)
    opt_b.step(grads)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
    saved = opt_a.state_dict()
    assert saved["param_groups"][0]["name"] == "layer"
    fresh = make_optimizer(optimizer_name, [p.copy() for p in a])
    fresh.load_state_dict(saved)
    assert fresh.param_groups[0]["name"] == "layer"


def test_state_dict_round_trip_with_torch_parameters():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(4)
    init = random_params(rng)
    a = [torch.from_numpy(p.copy()) for p in init]
    b = [torch.from_numpy(p.copy()) for p in init]
    opt_a = dlopt.optim.AdamW(a, lr=0.01)
    grads = [random_grads(rng, init) for _ in range(4)]
    for g in grads[:2]:
        opt_a.step([torch.from_numpy(x) for x in g])
    for x, y in zip(a, b):
        y.copy_(x)
    opt_b = dlopt.optim.AdamW(b, lr=0.01)
    opt_b.load_state_dict(opt_a.state_dict())
    for g in grads[2:]:
        opt_a.step([torch.from_numpy(x) for x in g])
        opt_b.step([torch.from_numpy(x) for x in g])
    for x, y in zip(a, b):
        assert torch.equal(x, y)
