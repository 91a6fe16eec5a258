"""dlopt.optim.LBFGS against torch.optim.LBFGS (2.13, CPU): iterates, returned losses and the whole
state over several steps, both line searches, float32 and float64, parameters of several shapes, an
lr change mid-run; state_dict round trips (bit for bit, and from torch's own state); the closure's
and the keywords' error rules (nothing changes).

Both optimizers get the same NumPy objective: torch's closure hands its parameters to the NumPy
function and puts the returned gradient into p.grad, so the two see identical losses and gradients
at identical points and any difference is the optimizer's own arithmetic (dot products are summed in
another order; torch's float32 sqrt is not correctly rounded).
"""

from __future__ import annotations

import copy
import doctest
import pickle

import numpy as np
import pytest

import dlopt
from dlopt.optim import LBFGS

torch = pytest.importorskip("torch")

SHAPES = [(3,), (2, 2), (1,)]  # several parameters: one flat vector of 8


def rosenbrock(x):
    """Σ 100 (x[i+1] − x[i]²)² + (1 − x[i])² and its gradient, in x's dtype."""
    a = x[1:] - x[:-1] ** 2
    b = 1 - x[:-1]
    g = np.zeros_like(x)
    g[:-1] = -400 * a * x[:-1] - 2 * b
    g[1:] += 200 * a
    return (100 * a * a + b * b).sum(), g


def logistic(dtype, n=64, d=7, seed=3):
    """Mean binary cross-entropy of sigmoid(X w + b) plus 0.01·½‖w‖² over parameters (w, b),
    flattened as (d - 1) + 1 weights, then b."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d)).astype(dtype)
    y = (rng.random(n) < 0.5).astype(dtype)

    def f(theta):
        w, b = theta[:-1], theta[-1]
        z = X[:, : d - 1] @ w + b + X[:, d - 1]
        loss = np.logaddexp(0, z).mean() - (y * z).mean() + 0.005 * (w @ w)
        r = (1 / (1 + np.exp(-z)) - y) / n
        g = np.empty_like(theta)
        g[:-1] = X[:, : d - 1].T @ r + 0.01 * w
        g[-1] = r.sum()
        return dtype(loss), g.astype(dtype)
    return f


OBJECTIVES = {"rosenbrock": lambda dtype: rosenbrock, "logistic": logistic}


def start(shapes, dtype, seed=0):
    rng = np.random.default_rng(seed)
    return [(rng.normal(size=s) * 0.5 - 0.5).astype(dtype) for s in shapes]


def numpy_closure(params, objective):
    def closure():
        flat = np.concatenate([p.ravel() for p in params])
        f, g = objective(flat)
        out, off = [], 0
        for p in params:
            out.append(g[off: off + p.size].reshape(p.shape))
            off += p.size
        return f, out
    return closure


def torch_closure(tparams, objective):
    def closure():
        flat = np.concatenate([p.detach().numpy().ravel() for p in tparams])
        f, g = objective(flat)
        off = 0
        for p in tparams:
            p.grad = torch.from_numpy(np.ascontiguousarray(g[off: off + p.numel()]).reshape(p.shape))
            off += p.numel()
        return torch.tensor(f)
    return closure


def as_numpy(v):
    if isinstance(v, torch.Tensor):
        return v.detach().numpy()
    if isinstance(v, list):
        return [as_numpy(x) for x in v]
    return v


# Rounding differences grow while L-BFGS follows Rosenbrock's curved valley (to ~2e-8 relative in
# float64 mid-run, ~1e-6 in a difference of gradients, back to ~1e-13 at the minimum) without changing a single branch: the counts of
# iterations and evaluations are compared exactly, the numbers to these tolerances.
TOL = {("rosenbrock", np.float64): dict(rtol=1e-5, atol=1e-9),
       ("logistic", np.float64): dict(rtol=1e-9, atol=1e-12),
       ("rosenbrock", np.float32): dict(rtol=1e-3, atol=1e-4),
       ("logistic", np.float32): dict(rtol=1e-4, atol=1e-5)}


def assert_close(ours, theirs, tol, what=""):
    """Equal to tol["rtol"] relative to the largest magnitude of the vector (gradient differences
    such as old_dirs lose relative precision in their small entries by cancellation)."""
    ours, theirs = np.asarray(ours, dtype=np.float64), np.asarray(as_numpy(theirs), dtype=np.float64)
    scale = np.abs(theirs).max() if theirs.size else 0.0
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=tol["rtol"] * scale + tol["atol"], err_msg=what)


def assert_state_close(ours, theirs, tol, dtype):
    assert set(ours) == set(theirs)
    assert ours["func_evals"] == theirs["func_evals"] and ours["n_iter"] == theirs["n_iter"]
    for key in ("d", "prev_flat_grad"):
        assert ours[key].dtype == dtype
        assert_close(ours[key], theirs[key], tol, key)
    for key in ("old_dirs", "old_stps"):
        assert len(ours[key]) == len(theirs[key])
        for a, b in zip(ours[key], theirs[key]):
            assert_close(a, b, tol, key)
    for key in ("t", "H_diag"):
        # a tensor in torch <-> a NumPy scalar of the dtype here; a Python number <-> a Python number
        assert isinstance(theirs[key], torch.Tensor) == isinstance(ours[key], np.generic), key
        if isinstance(ours[key], np.generic):
            assert ours[key].dtype == dtype
        assert_close(float(ours[key]), float(theirs[key]), tol, key)
    assert all(isinstance(v, np.generic) and v.dtype == dtype for v in ours["ro"])
    assert_close([float(v) for v in ours["ro"]], [float(v) for v in theirs["ro"]], tol, "ro")
    assert_close(ours["prev_loss"], theirs["prev_loss"], tol, "prev_loss")
    if "al" in theirs:
        assert [v is None for v in ours["al"]] == [v is None for v in theirs["al"]]
        assert_close([float(v) for v in ours["al"] if v is not None],
                     [float(v) for v in theirs["al"] if v is not None], tol, "al")


CASES = [
    ("rosenbrock", {"lr": 0.5, "max_iter": 10}),
    ("rosenbrock", {"line_search_fn": "strong_wolfe"}),
    ("rosenbrock", {"line_search_fn": "strong_wolfe", "history_size": 3, "max_iter": 7}),
    ("rosenbrock", {"lr": 0.5, "history_size": 2, "max_iter": 5, "max_eval": 4}),
    ("logistic", {}),
    ("logistic", {"line_search_fn": "strong_wolfe", "max_iter": 4, "tolerance_change": 1e-12}),
    ("logistic", {"lr": 0.7, "history_size": 4, "tolerance_grad": 1e-5}),
]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("name,kwargs", CASES)
def test_matches_torch(name, kwargs, dtype):
    objective = OBJECTIVES[name](dtype)
    shapes = SHAPES if name == "rosenbrock" else [(6,), (1,)]
    ours = start(shapes, dtype)
    theirs = [torch.tensor(p.copy(), requires_grad=True) for p in ours]
    if dtype == np.float32:
        # Few iterations: stay clear of float32's rounding floor, where a stopping test
        # (|f - f_prev| < tolerance_change, ...) can go either way.
        kwargs = {**kwargs, "max_iter": min(kwargs.get("max_iter", 20), 3)}
    opt = LBFGS(ours, **kwargs)
    ref = torch.optim.LBFGS(theirs, **kwargs)
    tol = TOL[name, dtype]
    steps = 6 if dtype == np.float64 else 3
    for k in range(steps):
        if k == 2:  # an lr change between steps, as a scheduler would make
            opt.param_groups[0]["lr"] *= 0.5
            ref.param_groups[0]["lr"] *= 0.5
        loss = opt.step(numpy_closure(ours, objective))
        ref_loss = ref.step(torch_closure(theirs, objective))
        assert_close(float(loss), float(ref_loss), tol, "loss")
        for p, q in zip(ours, theirs):
            assert_close(p, q, tol, "parameters")
        assert_state_close(opt.state[0], ref.state[theirs[0]], tol, dtype)


@pytest.mark.parametrize("line_search_fn", [None, "strong_wolfe"])
def test_float64_run_to_the_minimum_agrees_to_rounding(line_search_fn):
    # Whole runs on 8-D Rosenbrock: the same iterations and evaluations, and at the minimum the
    # same point to rounding.
    ours = start(SHAPES, np.float64, seed=1)
    theirs = [torch.tensor(p.copy(), requires_grad=True) for p in ours]
    kwargs = dict(line_search_fn=line_search_fn, lr=1 if line_search_fn else 0.5, max_iter=10)
    opt, ref = LBFGS(ours, **kwargs), torch.optim.LBFGS(theirs, **kwargs)
    for _ in range(15):
        opt.step(numpy_closure(ours, rosenbrock))
        ref.step(torch_closure(theirs, rosenbrock))
    for p, q in zip(ours, theirs):
        np.testing.assert_allclose(p, q.detach().numpy(), rtol=0, atol=1e-11)
        np.testing.assert_allclose(p, 1.0, atol=1e-4)
    assert opt.state[0]["func_evals"] == ref.state[theirs[0]]["func_evals"]
    assert opt.state[0]["n_iter"] == ref.state[theirs[0]]["n_iter"]


def test_converges_and_returns_the_first_loss_object():
    x = np.array([-1.5, 2.0])
    seen = []

    def closure():
        f, g = rosenbrock(x)
        seen.append(f)
        return f, [g]
    opt = LBFGS([x], line_search_fn="strong_wolfe")
    first = opt.step(closure)
    assert first is seen[0] and first == 12.5
    for _ in range(4):
        opt.step(closure)
    # torch stops when the loss changes by less than tolerance_change = 1e-9: x within ~1e-5
    np.testing.assert_allclose(x, [1.0, 1.0], atol=1e-5)
    # at the optimum a step evaluates once and stops (max |g| <= tolerance_grad), as torch
    evals = opt.state[0]["func_evals"]
    opt.step(closure)
    assert opt.state[0]["func_evals"] == evals + 1


def test_single_array_gradient_and_none_gradient():
    x, y = np.array([3.0]), np.array([2.0])

    def closure():  # f = x² ; y has no gradient (None: zeros, y stays)
        return float(x[0] ** 2), [2 * x, None]
    LBFGS([x, y], line_search_fn="strong_wolfe").step(closure)
    assert abs(x[0]) < 1e-6 and y[0] == 2.0
    z = np.array([3.0])
    LBFGS([z]).step(lambda: (z[0] ** 2, 2 * z))  # one parameter: a bare array is accepted
    assert abs(z[0]) < 1e-6


# ---- state_dict ---------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("kwargs", [{"history_size": 3, "max_iter": 4},
                                    {"line_search_fn": "strong_wolfe", "history_size": 2, "max_iter": 3}])
def test_state_dict_round_trip_resumes_bit_for_bit(kwargs, dtype):
    objective = logistic(dtype)
    a = start([(6,), (1,)], dtype)
    opt_a = LBFGS(a, **kwargs)
    for _ in range(3):
        opt_a.step(numpy_closure(a, objective))
    saved = pickle.loads(pickle.dumps(opt_a.state_dict()))  # as a checkpoint file would
    b = [p.copy() for p in a]
    opt_b = LBFGS(b, **kwargs)
    opt_b.load_state_dict(saved)
    for _ in range(4):
        loss_a = opt_a.step(numpy_closure(a, objective))
        loss_b = opt_b.step(numpy_closure(b, objective))
        assert loss_a == loss_b
        for p, q in zip(a, b):
            np.testing.assert_array_equal(p, q)
    sa, sb = opt_a.state[0], opt_b.state[0]
    assert sa["n_iter"] == sb["n_iter"] and sa["func_evals"] == sb["func_evals"]
    np.testing.assert_array_equal(sa["d"], sb["d"])
    assert type(sa["t"]) is type(sb["t"]) and sa["t"] == sb["t"]


def test_deepcopy_continues_like_the_original():
    x = start([(4,)], np.float64)[0]
    opt = LBFGS([x], line_search_fn="strong_wolfe", max_iter=3)
    opt.step(numpy_closure([x], rosenbrock))
    twin = copy.deepcopy(opt)
    y = twin.param_groups[0]["params"][0]
    assert y is not x
    opt.step(numpy_closure([x], rosenbrock))
    twin.step(numpy_closure([y], rosenbrock))
    np.testing.assert_array_equal(x, y)


def test_loads_torch_state_and_continues_like_torch():
    objective = logistic(np.float64)
    theirs = [torch.tensor(p, requires_grad=True) for p in start([(6,), (1,)], np.float64)]
    ref = torch.optim.LBFGS(theirs, line_search_fn="strong_wolfe", max_iter=3)
    for _ in range(2):
        ref.step(torch_closure(theirs, objective))
    ours = [p.detach().numpy().copy() for p in theirs]
    opt = LBFGS(ours, line_search_fn="strong_wolfe", max_iter=3)
    opt.load_state_dict(ref.state_dict())
    for _ in range(2):
        opt.step(numpy_closure(ours, objective))
        ref.step(torch_closure(theirs, objective))
    for p, q in zip(ours, theirs):
        np.testing.assert_allclose(p, q.detach().numpy(), rtol=1e-9, atol=1e-12)
    assert_state_close(opt.state[0], ref.state[theirs[0]], TOL["logistic", np.float64], np.float64)


def test_state_dict_format():
    x = np.array([-1.5, 2.0])
    opt = LBFGS([x], lr=0.5)
    assert opt.state_dict() == {"state": {}, "param_groups": [{
        "lr": 0.5, "max_iter": 20, "max_eval": 25, "tolerance_grad": 1e-7, "tolerance_change": 1e-9,
        "history_size": 100, "line_search_fn": None, "params": [0]}]}
    opt.step(numpy_closure([x], rosenbrock))
    state = opt.state_dict()["state"][0]
    assert set(state) == {"func_evals", "n_iter", "d", "t", "old_dirs", "old_stps", "ro", "H_diag",
                          "prev_flat_grad", "prev_loss", "al"}
    assert len(state["al"]) == 100 and state["al"][-1] is None


@pytest.mark.parametrize("edit,error", [
    (lambda s: s["state"][0].pop("d"), ValueError),
    (lambda s: s["state"][0].update(d=np.zeros(3)), ValueError),
    (lambda s: s["state"][0].update(d=np.zeros(2, dtype=np.int64)), TypeError),
    (lambda s: s["state"][0].update(old_dirs=s["state"][0]["old_dirs"][:1]), ValueError),
    (lambda s: s["state"][0].update(al=[None] * 7), ValueError),
    (lambda s: s["state"][0].update(n_iter=-1), ValueError),
    (lambda s: s["state"][0].update(extra=1), ValueError),
    (lambda s: s["state"].update({1: {}}), ValueError),
    (lambda s: s["param_groups"][0].update(history_size=0), ValueError),
    (lambda s: s["param_groups"][0].update(line_search_fn="armijo"), ValueError),
    (lambda s: s["param_groups"].append(dict(s["param_groups"][0])), ValueError),
])
def test_bad_state_dict_changes_nothing(edit, error):
    x = np.array([-1.5, 2.0])
    opt = LBFGS([x], max_iter=3)
    for _ in range(2):
        opt.step(numpy_closure([x], rosenbrock))
    before = pickle.dumps(opt.state_dict())
    bad = opt.state_dict()
    edit(bad)
    with pytest.raises(error):
        opt.load_state_dict(bad)
    assert pickle.dumps(opt.state_dict()) == before


# ---- errors -------------------------------------------------------------------------------------

def _trained(dtype=np.float64):
    x = start([(3,), (2,)], dtype)
    opt = LBFGS(x, line_search_fn="strong_wolfe", max_iter=3)
    opt.step(numpy_closure(x, rosenbrock))
    return x, opt


def _failing_closure(x, dtype, call, result):
    good = numpy_closure(x, rosenbrock)
    count = [0]

    def closure():
        count[0] += 1
        f, g = good()
        if count[0] < call:
            return f, g
        if isinstance(result, Exception):
            raise result
        return result(f, g)
    return closure


BAD_RETURNS = [
    (lambda f, g: f, TypeError, "must return \\(loss, grads\\)"),
    (lambda f, g: (f, g, None), TypeError, "must return"),
    (lambda f, g: (np.nan, g), ValueError, "non-finite loss"),
    (lambda f, g: (np.inf, g), ValueError, "non-finite loss"),
    (lambda f, g: ("1.0", g), TypeError, "real number"),
    (lambda f, g: (True, g), TypeError, "real number"),
    (lambda f, g: (np.array([f, f]), g), TypeError, "shape"),
    (lambda f, g: (1j, g), TypeError, "real number"),
    (lambda f, g: (f, g[:1]), ValueError, "1 gradients for 2 parameters"),
    (lambda f, g: (f, [g[0].astype(np.float32), g[1]]), TypeError, "dtype float32"),
    (lambda f, g: (f, [g[0][:2], g[1]]), ValueError, "shape"),
    (lambda f, g: (f, [list(g[0]), g[1]]), TypeError, "numpy.ndarray"),
    (lambda f, g: (f, [g[0], np.full_like(g[1], np.nan)]), ValueError, "params\\[1\\], element 0"),
    (lambda f, g: (f, g[0]), TypeError, "list of arrays"),
]


@pytest.mark.parametrize("call", [1, 3])  # the step's first evaluation, or inside the line search
@pytest.mark.parametrize("result,error,match", BAD_RETURNS)
def test_bad_closure_result_changes_nothing(result, error, match, call):
    x, opt = _trained()
    params_before = [p.copy() for p in x]
    state_before = pickle.dumps(opt.state_dict())
    with pytest.raises(error, match=match):
        opt.step(_failing_closure(x, np.float64, call, result))
    for p, q in zip(x, params_before):
        np.testing.assert_array_equal(p, q)
    assert pickle.dumps(opt.state_dict()) == state_before


def test_closure_exception_propagates_and_changes_nothing():
    x, opt = _trained()
    params_before = [p.copy() for p in x]
    state_before = pickle.dumps(opt.state_dict())
    with pytest.raises(KeyError, match="boom"):
        opt.step(_failing_closure(x, np.float64, 2, KeyError("boom")))
    for p, q in zip(x, params_before):
        np.testing.assert_array_equal(p, q)
    assert pickle.dumps(opt.state_dict()) == state_before
    # and the optimizer still works afterwards, as if the failed step never happened
    y = [p.copy() for p in x]
    twin = LBFGS(y, line_search_fn="strong_wolfe", max_iter=3)
    twin.load_state_dict(opt.state_dict())
    opt.step(numpy_closure(x, rosenbrock))
    twin.step(numpy_closure(y, rosenbrock))
    for p, q in zip(x, y):
        np.testing.assert_array_equal(p, q)


def test_non_contiguous_gradient_is_accepted():
    x = np.zeros((2, 3))
    target = np.arange(6.0).reshape(3, 2)

    def closure():  # f = ½‖x − targetᵀ‖², its gradient handed over as a transposed view
        r = (x.T - target)
        return 0.5 * float((r * r).sum()), [r.T]
    LBFGS([x], line_search_fn="strong_wolfe").step(closure)
    np.testing.assert_allclose(x, target.T, atol=1e-8)


@pytest.mark.parametrize("kwargs,error", [
    ({"lr": -1.0}, ValueError), ({"lr": "1"}, TypeError), ({"lr": np.nan}, ValueError),
    ({"max_iter": 0}, ValueError), ({"max_iter": 1.5}, TypeError), ({"max_eval": 0}, ValueError),
    ({"max_eval": -1}, ValueError), ({"history_size": 0}, ValueError), ({"history_size": True}, TypeError),
    ({"tolerance_grad": np.nan}, ValueError), ({"tolerance_change": None}, TypeError),
    ({"line_search_fn": "armijo"}, ValueError), ({"line_search_fn": 1}, TypeError),
])
def test_bad_keywords(kwargs, error):
    with pytest.raises(error):
        LBFGS([np.zeros(2)], **kwargs)


def test_bad_params():
    with pytest.raises(ValueError, match="parameter groups"):
        LBFGS([{"params": [np.zeros(2)]}, {"params": [np.zeros(2)]}])
    with pytest.raises(TypeError, match="dtype"):
        LBFGS([np.zeros(2), np.zeros(2, dtype=np.float32)])
    with pytest.raises(TypeError):
        LBFGS([np.zeros(2, dtype=np.int64)])
    with pytest.raises(TypeError, match="wrap a single array"):
        LBFGS(np.zeros(2))
    with pytest.raises(ValueError, match="empty"):
        LBFGS([])
    a = np.zeros(4)
    with pytest.raises(ValueError):
        LBFGS([a[:3], a[1:]])  # overlapping
    with pytest.raises(ValueError, match="read-only"):
        b = np.zeros(2)
        b.flags.writeable = False
        LBFGS([b])
    opt = LBFGS([{"params": [np.zeros(2)], "lr": 0.5}])
    assert opt.param_groups[0]["lr"] == 0.5 and opt.param_groups[0]["max_eval"] == 25
    with pytest.raises(ValueError, match="parameter groups"):
        opt.add_param_group({"params": [np.zeros(1)]})


def test_bad_group_value_at_step_changes_nothing():
    x, opt = _trained()
    params_before = [p.copy() for p in x]
    state_before = pickle.dumps(opt.state_dict())
    for key, value, error in [("lr", -0.1, ValueError), ("history_size", 5, ValueError),
                              ("max_iter", "3", TypeError)]:
        good = opt.param_groups[0][key]
        opt.param_groups[0][key] = value
        with pytest.raises(error):
            opt.step(numpy_closure(x, rosenbrock))
        opt.param_groups[0][key] = good
    with pytest.raises(TypeError, match="callable"):
        opt.step(None)
    for p, q in zip(x, params_before):
        np.testing.assert_array_equal(p, q)
    assert pickle.dumps(opt.state_dict()) == state_before


def test_exported_from_dlopt_optim():
    assert "LBFGS" in dlopt.optim.__all__ and dlopt.optim.LBFGS is LBFGS
    assert "LBFGS" in dlopt.optim.algorithms.__all__


def test_docstring_example():
    result = doctest.testmod(dlopt.optim.lbfgs, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0


def test_a_dlopt_checkpoint_resumes_bit_for_bit(tmp_path):
    """dlopt.save / dlopt.load carry L-BFGS's history (old_dirs, ..., the tensors and numbers) exactly."""
    def make(w):
        return dlopt.optim.LBFGS([w], line_search_fn="strong_wolfe", max_iter=2, history_size=3)

    def closure_for(w):
        target = np.array([3.0, -1.0, 0.5])
        return lambda: (float(np.sum((w - target) ** 4)), [4 * (w - target) ** 3])

    w = np.array([1.5, -0.5, 2.0])
    opt = make(w)
    for _ in range(2):
        opt.step(closure_for(w))
    path = str(tmp_path / "lbfgs.dlopt")
    dlopt.save(path, optimizer=opt, params={"w": w})
    for _ in range(2):
        opt.step(closure_for(w))

    w2 = np.zeros(3)
    resumed = make(w2)
    dlopt.load(path, optimizer=resumed, params={"w": w2})
    for _ in range(2):
        resumed.step(closure_for(w2))
    np.testing.assert_array_equal(w2, w)
