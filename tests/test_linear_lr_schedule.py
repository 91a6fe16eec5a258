"""lr_schedule= of the linear models: the lr of every epoch equals torch's / dlopt.lr_scheduler's for the
same schedule, a scheduled fit equals a manual loop that sets lr every epoch, and the keyword follows
scikit-learn's parameter protocol."""

import math
import warnings

import numpy as np
import pytest

import dlopt
from dlopt import lr_scheduler as S
from dlopt.linear_model import LinearRegression, LogisticRegression, SoftmaxRegression

# These tests compare a few epochs with a reference trajectory; whether the fits converged is not
# their subject (tests/test_convergence.py is), so the ConvergenceWarning of these short fits is expected.
pytestmark = pytest.mark.filterwarnings("ignore::dlopt.linear_model.ConvergenceWarning")

E = 60
BASE = 0.05


def data(n=200, d=3, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    return X, X @ np.arange(1.0, d + 1) + 0.5 + rng.normal(0, 0.1, n)


def reference_lrs(make, n=E, base=BASE, lib=S):
    """lr of epochs 0..n-1 of a scheduler stepped once per epoch (torch's or dlopt.lr_scheduler's)."""
    if lib is S:
        opt = dlopt.optim.SGD([np.zeros(1, np.float32)], lr=base)
    else:
        import torch
        opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=base)
    sched = make(opt, lib)
    out = []
    for _ in range(n):
        out.append(sched.get_last_lr()[0])
        if lib is not S:
            opt.step()  # torch warns about a scheduler stepped before its optimizer
        sched.step()
    return out


CASES = [
    (None, lambda o, L: L.LambdaLR(o, lambda t: 1.0)),
    ("constant", lambda o, L: L.LambdaLR(o, lambda t: 1.0)),
    ("cosine", lambda o, L: L.CosineAnnealingLR(o, E)),
    ({"name": "cosine", "T_max": 25, "eta_min": 1e-3}, lambda o, L: L.CosineAnnealingLR(o, 25, 1e-3)),
    ({"name": "step", "step_size": 7, "gamma": 0.5}, lambda o, L: L.StepLR(o, 7, 0.5)),
    ("step", lambda o, L: L.StepLR(o, E // 3, 0.1)),
    ({"name": "multistep", "milestones": [10, 30, 30], "gamma": 0.3},
     lambda o, L: L.MultiStepLR(o, [10, 30, 30], 0.3)),
    ("multistep", lambda o, L: L.MultiStepLR(o, [E // 2, 3 * E // 4], 0.1)),
    ({"name": "exponential", "gamma": 0.95}, lambda o, L: L.ExponentialLR(o, 0.95)),
    ({"name": "polynomial", "total_iters": 40, "power": 2.0}, lambda o, L: L.PolynomialLR(o, 40, 2.0)),
    ("polynomial", lambda o, L: L.PolynomialLR(o, E, 1.0)),
    ({"name": "linear_warmup", "start_factor": 0.1, "total_iters": 10},
     lambda o, L: L.LinearLR(o, 0.1, 1.0, 10)),
    ({"name": "constant_factor", "factor": 0.5, "total_iters": 4}, lambda o, L: L.ConstantLR(o, 0.5, 4)),
    ({"name": "warmup_cosine", "warmup_steps": 6, "start_factor": 0.1, "T_max": 54},
     lambda o, L: L.SequentialLR(o, [L.LinearLR(o, 0.1, 1.0, 6), L.CosineAnnealingLR(o, 54)], [6])),
    ("onecycle", lambda o, L: L.OneCycleLR(o, BASE, total_steps=E)),
    ({"name": "one_cycle", "max_lr": 0.2, "pct_start": 0.25, "anneal_strategy": "linear",
      "three_phase": True, "total_steps": E},
     lambda o, L: L.OneCycleLR(o, 0.2, total_steps=E, pct_start=0.25, anneal_strategy="linear",
                               three_phase=True)),
]


@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.parametrize("lib", ["dlopt", "torch"])
@pytest.mark.parametrize("spec,make", CASES, ids=[str(c[0]) for c in CASES])
def test_lr_curve_equals_the_scheduler(spec, make, lib):
    if lib == "torch":
        lib = pytest.importorskip("torch").optim.lr_scheduler
    else:
        lib = S
    X, y = data()
    m = LinearRegression(optimizer="sgd", lr=BASE, lr_schedule=spec, epochs=E, batch_size=32,
                         random_state=0).fit(X, y)
    assert len(m.lr_curve_) == E
    np.testing.assert_allclose(m.lr_curve_, reference_lrs(make, lib=lib), rtol=1e-9, atol=1e-15)


@pytest.mark.parametrize("decay", ["linear", "cosine", "sqrt"])
def test_wsd_equals_dlopt_scheduler(decay):
    X, y = data()
    spec = {"name": "wsd", "warmup_steps": 5, "stable_steps": 30, "decay_steps": 20,
            "final_lr_factor": 0.1, "warmup_start_factor": 0.05, "decay": decay}
    m = LinearRegression(optimizer="sgd", lr=BASE, lr_schedule=spec, epochs=E).fit(X, y)
    ref = reference_lrs(lambda o, L: L.WarmupStableDecayLR(o, 5, 30, 20, final_lr_factor=0.1,
                                                           warmup_start_factor=0.05, decay=decay))
    np.testing.assert_allclose(m.lr_curve_, ref, rtol=1e-12)


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_scheduled_fit_equals_a_manual_loop(optimizer):
    """The schedule only sets the optimizer's lr: the same as partial_fit epochs with lr set by hand."""
    X, y = data()
    spec = {"name": "cosine", "T_max": 20, "eta_min": 1e-3}
    auto = LinearRegression(optimizer=optimizer, lr=0.1, lr_schedule=spec, epochs=20).fit(X, y)
    manual = LinearRegression(optimizer=optimizer, lr=0.1, epochs=20)
    for e in range(20):
        lr = 1e-3 + (0.1 - 1e-3) * (1 + math.cos(math.pi * e / 20)) / 2
        manual.set_params(lr=lr).partial_fit(X, y)
    np.testing.assert_allclose(auto.lr_curve_, manual.lr_curve_, rtol=1e-12)
    np.testing.assert_allclose(auto.coef_, manual.coef_, rtol=1e-10)
    np.testing.assert_allclose(auto.intercept_, manual.intercept_, rtol=1e-10)
    np.testing.assert_allclose(auto.loss_curve_, manual.loss_curve_, rtol=1e-10)


def test_partial_fit_and_warm_start_continue_the_schedule():
    X, y = data()
    spec = {"name": "step", "step_size": 3, "gamma": 0.5}
    m = LinearRegression(optimizer="sgd", lr=0.1, lr_schedule=spec, epochs=10)
    for _ in range(7):
        m.partial_fit(X, y)
    np.testing.assert_allclose(m.lr_curve_, [0.1 * 0.5 ** (e // 3) for e in range(7)])
    w = LinearRegression(optimizer="sgd", lr=0.1, lr_schedule=spec, epochs=4, warm_start=True)
    w.fit(X, y).fit(X, y)
    np.testing.assert_allclose(w.lr_curve_, [0.1 * 0.5 ** (e // 3) for e in range(8)])
    # a fresh fit (no warm start) restarts the schedule
    np.testing.assert_allclose(LinearRegression(optimizer="sgd", lr=0.1, lr_schedule=spec, epochs=4)
                               .fit(X, y).fit(X, y).lr_curve_, [0.1, 0.1, 0.1, 0.05])


def test_default_keeps_the_constant_lr_and_the_result():
    X, y = data()
    a = LinearRegression(optimizer="adam", lr=0.05, epochs=30, batch_size=16, random_state=3).fit(X, y)
    b = LinearRegression(optimizer="adam", lr=0.05, lr_schedule="constant", epochs=30, batch_size=16,
                         random_state=3).fit(X, y)
    assert a.lr_curve_ == [0.05] * 30
    np.testing.assert_array_equal(a.coef_, b.coef_)


def test_classifiers_take_a_schedule():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(300, 2))
    y = (X[:, 0] + X[:, 1] > 0).astype(int)
    lg = LogisticRegression(lr=0.1, lr_schedule="cosine", epochs=50).fit(X, y)
    assert lg.score(X, y) > 0.95 and lg.lr_curve_[0] == 0.1 and lg.lr_curve_[-1] < 1e-3
    yk = np.digitize(X[:, 0], [-0.5, 0.5])
    sm = SoftmaxRegression(lr=0.1, lr_schedule={"name": "warmup_cosine", "warmup_steps": 5}, epochs=80)
    sm.fit(X, yk)
    assert sm.score(X, yk) > 0.9 and len(sm.lr_curve_) == 80 and sm.lr_curve_[0] == 0.0


@pytest.mark.parametrize("spec,match", [
    ("nope", "unknown schedule 'nope'"),
    ({"T_max": 3}, "'name'"),
    ({"name": "cosine", "T_max": 0}, r"lr_schedule\['T_max'\]"),
    ({"name": "cosine", "T_max": 2.5}, r"lr_schedule\['T_max'\]"),
    ({"name": "cosine", "tmax": 10}, r"lr_schedule\['tmax'\].*unknown key"),
    ({"name": "step", "gamma": -1}, r"lr_schedule\['gamma'\]"),
    ({"name": "step", "gamma": "big"}, r"lr_schedule\['gamma'\]"),
    ({"name": "step", "gamma": [1]}, r"lr_schedule\['gamma'\]"),
    ({"name": "multistep", "milestones": 3}, r"lr_schedule\['milestones'\]"),
    ({"name": "wsd", "decay": "exp"}, r"lr_schedule\['decay'\]"),
    ({"name": "one_cycle", "anneal_strategy": "cosine"}, r"lr_schedule\['anneal_strategy'\]"),
    ({"name": "one_cycle", "total_steps": 10}, "total steps"),
    (3, "lr_schedule"),
])
def test_invalid_specs_are_value_errors_naming_the_key(spec, match):
    X, y = data(n=20)
    m = LinearRegression(lr=0.01, lr_schedule=spec, epochs=20)
    with pytest.raises(ValueError, match=match):
        m.fit(X, y)
    assert not hasattr(m, "coef_") or np.all(m.coef_ == 0)


def test_get_params_set_params_clone():
    m = LinearRegression(lr_schedule={"name": "cosine", "T_max": 10})
    assert m.get_params()["lr_schedule"] == {"name": "cosine", "T_max": 10}
    assert "lr_schedule=" in repr(m)
    m.set_params(lr_schedule="step")
    assert m.lr_schedule == "step"
    sk = pytest.importorskip("sklearn.base")
    spec = {"name": "cosine", "T_max": 10}
    c = sk.clone(LogisticRegression(lr_schedule=spec))
    assert c.lr_schedule == spec and c.lr_schedule is not spec
    X, y = data(n=50)
    LinearRegression(lr_schedule=spec, epochs=15).fit(X, y)
    assert spec == {"name": "cosine", "T_max": 10}  # fit does not mutate the parameter


@pytest.mark.parametrize("make", [lambda: LinearRegression(lr_schedule="cosine"),
                                  lambda: LogisticRegression(lr_schedule={"name": "step", "step_size": 400})],
                         ids=["linear-cosine", "logistic-step"])
def test_scikit_learn_estimator_checks_with_a_schedule(make):
    checks = pytest.importorskip("sklearn.utils.estimator_checks")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        results = checks.check_estimator(make(), on_fail=None)
    failed = [f"{r['check_name']}: {r['exception']}" for r in results if r["status"] == "failed"]
    assert not failed, "\n".join(failed)
