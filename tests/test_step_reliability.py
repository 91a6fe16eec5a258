"""Issue 15's optimizer-step findings: threads, scalar state and hyperparameter types. Each bad call
raises TypeError/ValueError (or a clear RuntimeError for a concurrent step), twice in a row, and
changes nothing."""

from __future__ import annotations

import threading

import numpy as np
import pytest

import dlopt


def _trained_adam():
    w = np.zeros(3)
    opt = dlopt.optim.NAdam([w])
    opt.step([np.ones(3)])
    return w, opt


@pytest.mark.parametrize("bad, error", [
    ("x", TypeError), (True, TypeError), (1.5, TypeError), (-1, ValueError), (2**63 - 1, ValueError),
    (2**53, ValueError),
])
def test_bad_step_count_is_refused_every_time_and_changes_nothing(bad, error):
    w, opt = _trained_adam()
    opt.state[0]["step"] = bad
    before = w.copy(), {k: np.copy(v) for k, v in opt.state[0].items() if k != "step"}
    for _ in range(2):  # the retry must fail too (the plan must not cache the bad value)
        with pytest.raises(error, match=r"state\[0\]\['step'\]"):
            opt.step([np.ones(3)])
    np.testing.assert_array_equal(w, before[0])
    assert opt.state[0]["step"] is bad
    for k, v in before[1].items():
        np.testing.assert_array_equal(opt.state[0][k], v)


@pytest.mark.parametrize("bad, error", [("x", TypeError), (float("nan"), ValueError), (float("inf"), ValueError)])
def test_bad_scalar_state_is_refused(bad, error):
    w, opt = _trained_adam()
    opt.state[0]["mu_product"] = bad
    for _ in range(2):
        with pytest.raises(error, match="mu_product"):
            opt.step([np.ones(3)])
    sd = opt.state_dict()
    fresh = dlopt.optim.NAdam([np.zeros(3)])
    with pytest.raises(error if error is ValueError else ValueError):
        fresh.load_state_dict(sd)
    assert not fresh.state


def test_load_state_dict_refuses_step_counts_out_of_range():
    w, opt = _trained_adam()
    sd = opt.state_dict()
    sd["state"][0]["step"] = -1
    with pytest.raises(ValueError, match="step"):
        opt.load_state_dict(sd)
    assert opt.state[0]["step"] == 1


@pytest.mark.parametrize("value, error", [
    (1j, TypeError), (np.ones(2), TypeError), (10**400, ValueError), ("0.1", TypeError), (None, TypeError),
])
def test_hyperparameters_of_the_wrong_kind_raise_type_or_value_errors(value, error):
    w = np.zeros(3)
    with pytest.raises(error, match="lr"):
        dlopt.optim.SGD([w], lr=value)
    opt = dlopt.optim.SGD([w], lr=0.1)
    opt.param_groups[0]["lr"] = value
    with pytest.raises(error, match="lr"):
        opt.step([np.ones(3)])
    assert np.all(w == 0)


def test_a_concurrent_step_raises_instead_of_racing():
    n = 1 << 22
    w = np.zeros(n, np.float32)
    g = np.ones(n, np.float32)
    opt = dlopt.optim.SGD([w], lr=1e-3, momentum=0.9)
    stop = threading.Event()
    errors, successes = [], [0]

    def other():
        while not stop.is_set():
            try:
                opt.step([g])
                successes[0] += 1
            except RuntimeError as e:
                errors.append(str(e))

    t = threading.Thread(target=other)
    t.start()
    try:
        for _ in range(40):
            try:
                opt.step([g])
            except RuntimeError as e:
                errors.append(str(e))
    finally:
        stop.set()
        t.join()
    assert errors, "two threads never overlapped in 40 steps of 4M elements"
    assert all("already stepping in another thread" in e for e in errors)
    assert np.all(np.isfinite(w))


def test_changing_the_gradient_list_during_a_step_is_safe():
    """The step reads the gradients without the GIL; another thread dropping them must not free them
    under it (before: a use-after-free segfault)."""
    n = 1 << 23
    for _ in range(5):
        w = np.zeros(n, np.float32)
        grads = [np.ones(n, np.float32)]
        opt = dlopt.optim.SGD([w], lr=0.5)
        started = threading.Event()

        def drop():
            started.wait()
            grads[0] = None  # the only other reference to the array

        t = threading.Thread(target=drop)
        t.start()
        started.set()
        opt.step(grads if grads[0] is not None else [np.ones(n, np.float32)])
        t.join()
        assert w[0] == -0.5 and w[-1] == -0.5


def _snapshot(obj):
    import copy
    return copy.deepcopy(obj.state_dict())


def _same(a, b):
    if isinstance(a, dict):
        assert a.keys() == b.keys()
        for k in a:
            _same(a[k], b[k])
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b)
        for x, y in zip(a, b):
            _same(x, y)
    elif isinstance(a, np.ndarray):
        np.testing.assert_array_equal(a, b)
    else:
        assert a == b


@pytest.mark.parametrize("drop", ["averaged", "count", "steps"])
def test_gradient_accumulator_load_is_all_or_nothing(drop):
    w = np.zeros(3)
    acc = dlopt.GradientAccumulator([w], steps=2)
    acc.add([np.ones(3)])
    sd, before = _snapshot(acc), _snapshot(acc)
    sd["buffers"] = [np.full(3, 7.0)]
    del sd[drop]
    with pytest.raises(ValueError, match="state_dict"):
        acc.load_state_dict(sd)
    _same(acc.state_dict(), before)


@pytest.mark.parametrize("drop", ["num_updates", "decay"])
def test_ema_load_is_all_or_nothing(drop):
    w = np.ones(3)
    ema = dlopt.EMA([w], decay=0.9)
    ema.update()
    sd, before = _snapshot(ema), _snapshot(ema)
    sd["shadow"] = [np.full(3, 7.0)]
    del sd[drop]
    with pytest.raises(ValueError, match="state_dict"):
        ema.load_state_dict(sd)
    _same(ema.state_dict(), before)


def test_lookahead_load_is_all_or_nothing():
    w = np.ones(3)
    la = dlopt.Lookahead(dlopt.optim.SGD([w], lr=0.1), k=2)
    la.step([np.ones(3)])
    sd, before = _snapshot(la), _snapshot(la)
    sd["state"][0]["slow_param"] = np.full(3, 7.0)
    sd["param_groups"][0]["lr"] = 0.5
    del sd["lookahead"]["step_counter"]
    with pytest.raises(ValueError, match="lookahead"):
        la.load_state_dict(sd)
    _same(la.state_dict(), before)


# -- estimators: a rejected or failed fit changes nothing ---------------------------------------------
# (short fits on purpose: their ConvergenceWarning is not the subject here)

def _xy(n=60, d=3, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    return X, X @ np.arange(1.0, d + 1) + 0.5


@pytest.mark.filterwarnings("ignore::dlopt.linear_model.ConvergenceWarning")
def test_rejected_refit_keeps_the_fitted_coefficients():
    X, y = _xy()
    m = dlopt.linear_model.LinearRegression(optimizer="sgd", lr=0.1, epochs=50, tol=None).fit(X, y)
    coef, intercept = np.copy(m.coef_), np.copy(m.intercept_)
    m.set_params(lr=-1.0)
    for _ in range(2):
        with pytest.raises(ValueError, match="lr"):
            m.fit(X, y)
    np.testing.assert_array_equal(m.coef_, coef)
    np.testing.assert_array_equal(m.intercept_, intercept)


def test_rejected_first_fit_leaves_the_estimator_unfitted():
    X, y = _xy()
    m = dlopt.linear_model.LogisticRegression(lr=-1.0)
    with pytest.raises(ValueError, match="lr"):
        m.fit(X, (y > y.mean()).astype(int))
    assert not hasattr(m, "classes_") and not hasattr(m, "n_features_in_")
    with pytest.raises(Exception, match="not fitted"):
        m.predict(X)


@pytest.mark.filterwarnings("ignore::dlopt.linear_model.ConvergenceWarning")
def test_rejected_refit_keeps_the_classes():
    X, y = _xy(seed=1)
    labels = np.digitize(y, np.quantile(y, [1 / 3, 2 / 3]))  # 3 classes
    m = dlopt.linear_model.SoftmaxRegression(optimizer="adam", lr=0.05, epochs=20, tol=None).fit(X, labels)
    before = m.predict(X)
    m.set_params(lr=-1.0)
    with pytest.raises(ValueError):
        m.fit(X, (labels + np.arange(len(labels))) % 4)  # 4 classes, rejected
    np.testing.assert_array_equal(m.classes_, [0, 1, 2])
    np.testing.assert_array_equal(m.predict(X), before)


@pytest.mark.filterwarnings("ignore::dlopt.linear_model.ConvergenceWarning")
def test_divergent_refit_restores_the_previous_coefficients():
    X, y = _xy(seed=2)
    m = dlopt.linear_model.LinearRegression(optimizer="sgd", lr=0.05, epochs=50, tol=None).fit(X, y)
    coef = m.coef_.copy()
    m.set_params(lr=1e100, warm_start=False)
    with pytest.raises(ValueError):
        m.fit(X, y)
    np.testing.assert_array_equal(m.coef_, coef)


def test_a_deleted_hyperparameter_raises_key_error_as_in_torch():
    w = np.zeros(3)
    opt = dlopt.optim.Adam([w], lr=0.1)
    opt.step([np.ones(3)])
    before = w.copy()
    del opt.param_groups[0]["lr"]
    for _ in range(2):
        with pytest.raises(KeyError, match="lr"):
            opt.step([np.ones(3)])
    np.testing.assert_array_equal(w, before)
    opt.param_groups[0]["lr"] = 0.1  # put back: steps again
    opt.step([np.ones(3)])
    assert not np.array_equal(w, before)


# -- a deleted state slot is a KeyError, as in torch; a slot switched on later is created --------------

@pytest.mark.parametrize("name, kwargs, slot", [
    ("Adam", {}, "exp_avg"), ("Adam", {"amsgrad": True}, "max_exp_avg_sq"), ("RMSprop", {}, "square_avg"),
    ("SGD", {"momentum": 0.9}, "momentum_buffer"), ("Adam", {"state_dtype": "int8"}, "exp_avg"),
])
def test_a_deleted_state_slot_raises_key_error_every_time_and_changes_nothing(name, kwargs, slot):
    w = np.zeros(300, np.float32)
    opt = getattr(dlopt.optim, name)([w], lr=0.1, **kwargs)
    opt.step([np.ones(300, np.float32)])
    del opt.state[0][slot]
    if slot + "_scale" in opt.state[0]:
        del opt.state[0][slot + "_scale"]
    before = w.copy(), {k: np.copy(v) for k, v in opt.state[0].items()}
    for _ in range(2):
        with pytest.raises(KeyError, match=rf"state\[0\]\['{slot}'\] was deleted"):
            opt.step([np.ones(300, np.float32)])
    np.testing.assert_array_equal(w, before[0])
    assert opt.state[0].keys() == before[1].keys()
    for k, v in before[1].items():
        np.testing.assert_array_equal(opt.state[0][k], v)


def test_a_deleted_master_weight_raises_key_error():
    import ml_dtypes

    w = np.zeros(8, ml_dtypes.bfloat16)
    opt = dlopt.optim.AdamW([w], lr=0.1, master_weights=True)
    opt.step([np.ones(8, ml_dtypes.bfloat16)])
    del opt.state[0]["master_param"]
    with pytest.raises(KeyError, match="master_param"):
        opt.step([np.ones(8, ml_dtypes.bfloat16)])


def test_the_torch_drop_in_raises_key_error_for_a_deleted_slot_too():
    torch = pytest.importorskip("torch")
    p = torch.nn.Parameter(torch.zeros(3))
    ours = dlopt.torch.Adam([p], lr=0.1)
    p.grad = torch.ones(3)
    ours.step()
    del ours.state[p]["exp_avg"]
    before = p.detach().clone()
    with pytest.raises(KeyError, match="exp_avg"):
        ours.step()
    assert torch.equal(p.detach(), before)


def test_amsgrad_switched_on_later_starts_its_maximum_while_torch_raises():
    """torch 2.13 raises KeyError('max_exp_avg_sq') here; dlopt creates the slot (from zero), as it
    always has: the slot never existed, so nothing the caller did is undone."""
    w = np.zeros(3)
    opt = dlopt.optim.Adam([w], lr=0.1)
    opt.step([np.ones(3)])
    opt.param_groups[0]["amsgrad"] = True
    opt.step([np.full(3, 0.5)])
    np.testing.assert_array_equal(opt.state[0]["max_exp_avg_sq"], opt.state[0]["exp_avg_sq"])
    torch = pytest.importorskip("torch")
    p = torch.nn.Parameter(torch.zeros(3))
    ref = torch.optim.Adam([p], lr=0.1)
    p.grad = torch.ones(3)
    ref.step()
    ref.param_groups[0]["amsgrad"] = True
    with pytest.raises(KeyError, match="max_exp_avg_sq"):
        ref.step()


def test_a_state_loaded_without_a_slot_still_starts_it():
    """load_state_dict of a state saved without the slot (amsgrad off then) is a new state, not a deletion."""
    w = np.zeros(3)
    opt = dlopt.optim.Adam([w], lr=0.1)
    opt.step([np.ones(3)])
    sd = opt.state_dict()
    opt2 = dlopt.optim.Adam([np.zeros(3)], lr=0.1, amsgrad=True)
    opt2.load_state_dict(sd)
    opt2.param_groups[0]["amsgrad"] = True
    opt2.step([np.ones(3)])
    assert "max_exp_avg_sq" in opt2.state[0]


# -- aliasing: an empty array hides nothing ----------------------------------------------------------

def test_an_empty_parameter_inside_a_gradient_does_not_hide_its_overlap_with_the_next_parameter():
    buf = np.zeros(40)
    a, empty, b = buf[0:10], buf[15:15], buf[20:30]
    opt = dlopt.optim.SGD([a, empty, b], lr=1.0)
    before = buf.copy()
    # the gradient of `a` spans buf[12:22]: it holds the empty parameter's pointer and overlaps b
    grads = [buf[12:22], np.ones(0), np.ones(10)]
    for _ in range(2):
        with pytest.raises(ValueError, match=r"grads\[0\] shares memory with params\[2\]"):
            opt.step(grads)
    np.testing.assert_array_equal(buf, before)
    # an empty parameter before the gradient's start does not hide an overlap with an earlier one
    c, e2 = buf[0:10], buf[5:5]
    opt = dlopt.optim.SGD([c, e2], lr=1.0)
    with pytest.raises(ValueError, match=r"grads\[0\] shares memory with params\[0\]"):
        opt.step([buf[8:18], np.ones(0)])
    np.testing.assert_array_equal(buf, before)


def test_an_empty_array_does_not_hide_an_overlap_in_the_fused_helpers():
    buf = np.zeros(40)
    shadow = [buf[0:10], buf[15:15], buf[20:30]]
    with pytest.raises(ValueError, match="shares memory"):
        dlopt._core.ema_update(shadow, [buf[12:22], np.zeros(0), np.zeros(10)], 0.5)
    np.testing.assert_array_equal(buf, 0)


def test_partial_fit_on_the_models_own_coefficients_is_refused():
    X, y = _xy()
    m = dlopt.linear_model.LinearRegression(epochs=2).fit(X, y)
    coef = m.coef_.copy()
    own = m.coef_.reshape(1, -1)  # a view of the buffer training writes
    assert np.shares_memory(own, m.coef_)
    for bad in (dict(X=own, y=np.ones(1)), dict(X=X[:1], y=own[0, :1]),
                dict(X=X[:3], y=y[:3], sample_weight=own[0])):
        with pytest.raises(ValueError, match="shares memory with coef"):
            m.partial_fit(**bad)
        np.testing.assert_array_equal(m.coef_, coef)


def test_least_squares_with_coef_inside_x_is_refused():
    X = np.zeros((10, 3))
    X[:, :] = np.random.default_rng(0).normal(size=(10, 3))
    y = np.ones(10)
    before = X.copy()
    with pytest.raises(ValueError, match="X shares memory with coef"):
        dlopt._core.solve_least_squares(X, y, None, True, 0.0, X[4], np.zeros(1))
    np.testing.assert_array_equal(X, before)
