"""Bad input raises TypeError/ValueError naming the argument, and changes nothing."""

import numpy as np
import pytest

import dlopt
from optim_cases import (
    assert_same_snapshot,
    make_optimizer,
    random_grads,
    random_params,
    snapshot,
)


def trained(name, rng, dtype=np.float32, steps=3):
    """An optimizer whose state already exists, so 'nothing changed' is a real check."""
    params = random_params(rng, dtype)
    opt = make_optimizer(name, params)
    for _ in range(steps):
        opt.step(random_grads(rng, params))
    return opt, params


# -- bad gradients, always in the LAST position so earlier tensors would be updated first --------

def _wrong_dtype(g):
    return g.astype(np.float64 if g.dtype == np.float32 else np.float32)


def _non_contiguous(g):
    return np.repeat(g, 2, axis=-1)[..., ::2]


BAD_GRADS = {
    "dtype": (_wrong_dtype, TypeError, "dtype"),
    "int dtype": (lambda g: g.astype(np.int32), TypeError, "dtype"),
    "shape": (lambda g: g.reshape(-1)[:-1], ValueError, "shape"),
    "transposed shape": (lambda g: np.ascontiguousarray(g.T), ValueError, "shape"),
    "list": (lambda g: g.tolist(), TypeError, "numpy.ndarray"),
    "non-contiguous": (_non_contiguous, ValueError, "C-contiguous"),
}


@pytest.mark.parametrize("case", sorted(BAD_GRADS))
def test_bad_last_gradient_changes_nothing(optimizer_name, case):
    rng = np.random.default_rng(0)
    opt, params = trained(optimizer_name, rng)
    make_bad, error, words = BAD_GRADS[case]
    grads = random_grads(rng, params)
    grads[-1] = make_bad(grads[-1])
    before = snapshot(opt)
    with pytest.raises(error, match=rf"grads\[2\].*{words}|grads\[2\]: expected a {words}"):
        opt.step(grads)
    assert_same_snapshot(before, snapshot(opt))


def test_wrong_number_of_gradients(optimizer_name):
    rng = np.random.default_rng(1)
    opt, params = trained(optimizer_name, rng)
    before = snapshot(opt)
    with pytest.raises(ValueError, match=r"grads: expected 3 gradients.*got 2"):
        opt.step(random_grads(rng, params)[:2])
    with pytest.raises(TypeError, match="grads: expected a list"):
        opt.step(random_grads(rng, params)[0])
    assert_same_snapshot(before, snapshot(opt))


def test_first_step_failure_creates_no_state(optimizer_name):
    rng = np.random.default_rng(2)
    params = random_params(rng)
    opt = make_optimizer(optimizer_name, params)
    grads = random_grads(rng, params)
    grads[-1] = grads[-1].astype(np.float64)
    with pytest.raises(TypeError):
        opt.step(grads)
    assert opt.state == {}


# -- bad parameters ---------------------------------------------------------------------------------

BAD_PARAMS = {
    "list": (lambda: [1.0, 2.0], TypeError, "numpy.ndarray"),
    "int dtype": (lambda: np.zeros(3, np.int64), TypeError, "one of float32, float64, bfloat16, float16"),
    "int8 codes": (lambda: np.zeros(3, np.int8), TypeError, "one of float32, float64, bfloat16, float16"),
    "complex": (lambda: np.zeros(3, np.complex64), TypeError, "one of float32, float64, bfloat16, float16"),
    "non-contiguous": (lambda: np.zeros((4, 4), np.float32)[:, 1], ValueError, "C-contiguous"),
    "Fortran order": (lambda: np.zeros((3, 4), np.float32, order="F"), ValueError, "C-contiguous"),
}


@pytest.mark.parametrize("case", sorted(BAD_PARAMS))
def test_bad_parameter_is_rejected_at_construction(optimizer_name, case):
    make_bad, error, words = BAD_PARAMS[case]
    good = np.zeros(3, np.float32)
    with pytest.raises(error, match=rf"params\[1\].*{words}|params\[1\]: expected a {words}"):
        make_optimizer(optimizer_name, [good, make_bad()])


def test_read_only_parameter_is_rejected():
    p = np.zeros(3, np.float32)
    p.flags.writeable = False
    with pytest.raises(ValueError, match=r"params\[0\].*read-only"):
        dlopt.optim.SGD([p], lr=0.1)


def test_parameter_made_read_only_later_changes_nothing(optimizer_name):
    rng = np.random.default_rng(3)
    opt, params = trained(optimizer_name, rng)
    params[2].flags.writeable = False
    before = snapshot(opt)
    with pytest.raises(ValueError, match=r"params\[2\].*read-only"):
        opt.step(random_grads(rng, params))
    assert_same_snapshot(before, snapshot(opt))


def test_parameter_given_twice():
    p = np.zeros(4, np.float32)
    with pytest.raises(ValueError, match=r"params\[1\] shares memory with params\[0\]"):
        dlopt.optim.Adam([p, p])
    with pytest.raises(ValueError, match="shares memory"):
        dlopt.optim.Adam([p[:3], p[2:]])  # overlapping views
    with pytest.raises(ValueError, match="shares memory"):  # an empty view between them hides nothing
        dlopt.optim.Adam([p[:3], p[1:1], p[2:]])
    with pytest.raises(ValueError, match="shares memory"):
        dlopt.optim.Adam([{"params": [p]}, {"params": [p]}])
    opt = dlopt.optim.Adam([p])
    with pytest.raises(ValueError, match="shares memory"):
        opt.add_param_group({"params": [p]})
    assert len(opt.param_groups) == 1


def test_gradient_aliasing_a_parameter_is_rejected():
    rng = np.random.default_rng(4)
    a, b = random_params(rng, shapes=((4,), (4,)))
    opt = dlopt.optim.SGD([a, b], lr=0.1)
    before = (a.copy(), b.copy())
    with pytest.raises(ValueError, match=r"grads\[0\] shares memory with params\[1\]"):
        opt.step([b, a.copy()])
    np.testing.assert_array_equal(a, before[0])
    np.testing.assert_array_equal(b, before[1])


def test_params_must_be_a_list():
    with pytest.raises(TypeError, match="params: expected an iterable"):
        dlopt.optim.SGD(np.zeros(3, np.float32))
    with pytest.raises(ValueError, match="empty parameter list"):
        dlopt.optim.SGD([])


# -- bad hyperparameters ----------------------------------------------------------------------------

BAD_HYPERPARAMETERS = [
    ("SGD", dict(lr=-0.1), ValueError, "Invalid lr"),
    ("SGD", dict(lr=float("nan")), ValueError, "Invalid lr"),
    ("SGD", dict(momentum=-1.0), ValueError, "Invalid momentum"),
    ("SGD", dict(nesterov=True, momentum=0.0), ValueError, "Invalid nesterov"),
    ("SGD", dict(lr="0.1"), TypeError, "lr: expected a number"),
    ("SGD", dict(nesterov=1), TypeError, "nesterov: expected a bool"),
    ("Adam", dict(betas=(1.0, 0.999)), ValueError, r"Invalid betas\[0\]"),
    ("Adam", dict(betas=(0.9, -0.1)), ValueError, r"Invalid betas\[1\]"),
    ("Adam", dict(betas=(0.9, float("nan"))), ValueError, r"Invalid betas\[1\]"),
    ("Adam", dict(betas=0.9), TypeError, "betas: expected a pair"),
    ("Adam", dict(eps=-1e-8), ValueError, "Invalid eps"),
    ("AdamW", dict(weight_decay=-0.1), ValueError, "Invalid weight_decay"),
    ("Adagrad", dict(lr_decay=-1.0), ValueError, "Invalid lr_decay"),
    ("RMSprop", dict(alpha=-0.5), ValueError, "Invalid alpha"),
    ("Adadelta", dict(rho=1.5), ValueError, "Invalid rho"),
    ("Adamax", dict(betas=(0.9, 1.0)), ValueError, r"Invalid betas\[1\]"),
    ("NAdam", dict(momentum_decay=-1.0), ValueError, "Invalid momentum_decay"),
    ("RAdam", dict(lr=float("nan")), ValueError, "Invalid lr"),
    ("Lion", dict(betas=(-0.1, 0.99)), ValueError, r"Invalid betas\[0\]"),
    ("DynamicLR", dict(beta=-1.0), ValueError, "Invalid beta"),
]


@pytest.mark.parametrize("name, kwargs, error, words", BAD_HYPERPARAMETERS)
def test_bad_hyperparameter_at_construction(name, kwargs, error, words):
    with pytest.raises(error, match=words):
        getattr(dlopt.optim, name)([np.zeros(2, np.float32)], **kwargs)


@pytest.mark.parametrize("name, kwargs, error, words", BAD_HYPERPARAMETERS)
def test_bad_hyperparameter_set_later_changes_nothing(name, kwargs, error, words):
    rng = np.random.default_rng(5)
    opt, params = trained(name, rng)
    opt.add_param_group({"params": [np.ones(3, np.float32)]})
    opt.param_groups[1].update(kwargs)  # only the second group is bad
    grads = random_grads(rng, params) + [np.ones(3, np.float32)]
    before = snapshot(opt)
    with pytest.raises(error, match=rf"param_groups\[1\].*{words}"):
        opt.step(grads)
    assert_same_snapshot(before, snapshot(opt))


def test_unknown_group_key_is_kept_not_read():
    # As torch.optim (issue 14): a key the optimizer does not read ("name", or a typo) is kept, unread.
    opt = dlopt.optim.SGD([{"params": [np.zeros(2)], "momentun": 0.9}], lr=0.1)
    assert opt.param_groups[0]["momentun"] == 0.9 and opt.param_groups[0]["momentum"] == 0.0


# -- bad state ----------------------------------------------------------------------------------------

def test_load_state_dict_checks_everything_first():
    rng = np.random.default_rng(6)
    opt, params = trained("Adam", rng)
    sd = opt.state_dict()
    sd["state"][2]["exp_avg"] = np.zeros(7, np.float32)  # wrong shape, last parameter
    sd["param_groups"][0]["lr"] = 123.0
    before = snapshot(opt)
    with pytest.raises(ValueError, match=r"state\[2\]\['exp_avg'\]: shape \(7,\) does not match"):
        opt.load_state_dict(sd)
    assert_same_snapshot(before, snapshot(opt))

    sd = opt.state_dict()
    sd["param_groups"][0]["betas"] = (2.0, 0.9)
    with pytest.raises(ValueError, match=r"Invalid betas\[0\]"):
        opt.load_state_dict(sd)
    assert_same_snapshot(before, snapshot(opt))

    sd = opt.state_dict()
    sd["state"][0]["bogus"] = np.zeros(5, np.float32)
    with pytest.raises(ValueError, match="unknown entry 'bogus'"):
        opt.load_state_dict(sd)
    assert_same_snapshot(before, snapshot(opt))


def test_state_array_replaced_by_bad_one_is_rejected():
    rng = np.random.default_rng(7)
    opt, params = trained("Adam", rng)
    opt.state[1]["exp_avg_sq"] = opt.state[1]["exp_avg_sq"].astype(np.float64)
    before = snapshot(opt)
    with pytest.raises(TypeError, match=r"state\[1\]\['exp_avg_sq'\]: stored as float64, .* stores it as float32"):
        opt.step(random_grads(rng, params))
    assert_same_snapshot(before, snapshot(opt))
