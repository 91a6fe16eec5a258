"""Property-based tests beyond the optimizer step (hypothesis, derandomized as tests/test_properties.py):
estimators' fit / partial_fit, metrics against scikit-learn, schedulers against torch.optim.lr_scheduler,
and EMA / Lookahead load_state_dict. Each call either raises TypeError / ValueError / KeyError and
changes nothing, or succeeds and matches the reference."""

from __future__ import annotations

import copy
import math
import warnings

import numpy as np
import pytest

import dlopt
from dlopt import lr_scheduler as dls
from dlopt import metrics

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import given  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from property_strategies import BAD, derandomized  # noqa: E402
from property_strategies import anything as any_scalar  # noqa: E402

SETTINGS = derandomized(60)
# Short fits on purpose: their ConvergenceWarning is not the subject.
pytestmark = pytest.mark.filterwarnings("ignore::dlopt.linear_model.ConvergenceWarning")
anything = st.one_of(any_scalar, st.sampled_from([[1.0], {"a": 1}]))


# -- estimators -----------------------------------------------------------------------------------------

def _data(n=40, d=3):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(n, d))
    return X, X @ np.arange(1.0, d + 1) + 0.5


ESTIMATOR_KEYS = ["lr", "alpha", "l1_ratio", "epochs", "batch_size", "penalty", "tol", "optimizer"]


@SETTINGS
@given(key=st.sampled_from(ESTIMATOR_KEYS), value=anything, partial=st.booleans())
def test_an_estimator_fit_works_or_changes_nothing(key, value, partial):
    from dlopt.linear_model import LinearRegression

    X, y = _data()
    model = LinearRegression(optimizer="sgd", lr=0.01, epochs=3, random_state=0).fit(X, y)
    coef, intercept = model.coef_.copy(), np.copy(model.intercept_)
    model.set_params(**{key: value})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ConvergenceWarning of a short fit is not the subject
        try:
            (model.partial_fit if partial else model.fit)(X, y)
        except BAD:
            np.testing.assert_array_equal(model.coef_, coef)
            np.testing.assert_array_equal(model.intercept_, intercept)
            return
    # it worked: the same fit again (fresh estimator, same parameters) gives the same coefficients
    again = LinearRegression(**model.get_params()).fit(X, y) if not partial else None
    assert np.all(np.isfinite(model.coef_))
    if again is not None:
        np.testing.assert_array_equal(again.coef_, model.coef_)


# -- metrics against scikit-learn --------------------------------------------------------------------------

labels_strategy = st.lists(st.integers(0, 3), min_size=1, max_size=30)


@SETTINGS
@given(t=labels_strategy, p=labels_strategy, weights=st.booleans(), subset=st.sampled_from([None, [0], [2, 1], [3, 0, 5]]),
       average=st.sampled_from(["micro", "macro", "weighted", None, "binary"]), zero_division=st.sampled_from([0, 1]),
       name=st.sampled_from(["precision_score", "recall_score", "f1_score"]))
def test_classification_metrics_raise_or_match_sklearn(t, p, weights, subset, average, zero_division, name):
    sk = pytest.importorskip("sklearn.metrics")
    n = min(len(t), len(p))
    t, p = np.array(t[:n]), np.array(p[:n])
    w = np.linspace(0.5, 2.0, n) if weights else None
    kw = dict(labels=subset, average=average, sample_weight=w, zero_division=zero_division)
    try:
        ours = getattr(metrics, name)(t, p, **kw)
    except BAD:
        with pytest.raises(ValueError), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            getattr(sk, name)(t, p, **kw)
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # sklearn's notes about labels absent from y
        theirs = getattr(sk, name)(t, p, **kw)
    np.testing.assert_allclose(ours, theirs, rtol=1e-12, atol=0)


floats = st.floats(-1e6, 1e6, allow_nan=False)


@SETTINGS
@given(values=st.lists(st.tuples(floats, floats, st.floats(0.01, 10)), min_size=2, max_size=30),
       weighted=st.booleans(), name=st.sampled_from(["mean_squared_error", "mean_absolute_error", "r2_score"]))
def test_regression_metrics_match_sklearn(values, weighted, name):
    sk = pytest.importorskip("sklearn.metrics")
    t, p, w = (np.array(c) for c in zip(*values))
    kw = dict(sample_weight=w if weighted else None)
    ours = getattr(metrics, name)(t, p, **kw)
    theirs = getattr(sk, name)(t, p, **kw)
    assert ours == pytest.approx(theirs, rel=1e-9, abs=1e-9)


# -- schedulers against torch ----------------------------------------------------------------------------

# The arguments' documented domains. Outside them (None, a zero step_size or T_max, a negative gamma)
# dlopt's schedulers, like torch's, accept the value and fail or differ at a later step(): not
# covered here yet (issue 15 notes).
SCHEDULERS = {
    "StepLR": dict(step_size=st.integers(1, 4), gamma=st.floats(0.01, 1)),
    "MultiStepLR": dict(milestones=st.lists(st.integers(0, 8), max_size=3), gamma=st.floats(0.01, 1)),
    "ExponentialLR": dict(gamma=st.floats(0.01, 1)),
    "CosineAnnealingLR": dict(T_max=st.integers(1, 6), eta_min=st.floats(0, 0.1)),
    "LinearLR": dict(start_factor=st.floats(0.01, 1), end_factor=st.floats(0, 1), total_iters=st.integers(1, 6)),
    "ConstantLR": dict(factor=st.floats(0.01, 1), total_iters=st.integers(0, 6)),
    "PolynomialLR": dict(total_iters=st.integers(1, 6), power=st.floats(0, 3)),
}


@st.composite
def scheduler_case(draw):
    name = draw(st.sampled_from(sorted(SCHEDULERS)))
    kwargs = {k: draw(s) for k, s in SCHEDULERS[name].items()}
    junk = draw(st.booleans())
    if junk:  # one argument of any kind at all: refused, or at least not compared
        kwargs[draw(st.sampled_from(sorted(kwargs)))] = draw(anything)
    return name, kwargs, junk


@SETTINGS
@given(case=scheduler_case())
def test_schedulers_raise_and_change_nothing_or_match_torch(case):
    torch = pytest.importorskip("torch")
    name, kwargs, junk = case
    opt = dlopt.optim.SGD([np.zeros(2)], lr=0.1)
    groups_before = copy.deepcopy([{k: v for k, v in g.items() if k != "params"} for g in opt.param_groups])
    try:
        ours = getattr(dls, name)(opt, **kwargs)
    except BAD:
        assert [{k: v for k, v in g.items() if k != "params"} for g in opt.param_groups] == groups_before
        return
    if junk:
        return
    p = torch.nn.Parameter(torch.zeros(2))
    topt = torch.optim.SGD([p], lr=0.1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = getattr(torch.optim.lr_scheduler, name)(topt, **kwargs)  # what we accept, torch accepts
        for _ in range(8):
            a, b = ours.get_last_lr()[0], theirs.get_last_lr()[0]
            assert a == b or (math.isnan(a) and math.isnan(b)) or a == pytest.approx(b, rel=1e-12), (a, b)
            opt.step([np.zeros(2)])
            ours.step()
            topt.step()
            theirs.step()


# -- EMA / Lookahead load_state_dict ----------------------------------------------------------------------

@SETTINGS
@given(key=st.sampled_from(["decay", "num_updates", "use_num_updates", "shadow", "extra"]), value=anything)
def test_ema_load_state_dict_of_anything_works_or_changes_nothing(key, value):
    w = np.linspace(0, 1, 5)
    ema = dlopt.EMA([w], decay=0.9)
    ema.update()
    sd = ema.state_dict()
    sd[key] = value
    before = copy.deepcopy(ema.state_dict())
    try:
        ema.load_state_dict(sd)
    except BAD:
        after = ema.state_dict()
        assert {k: v for k, v in after.items() if k != "shadow"} == {k: v for k, v in before.items() if k != "shadow"}
        np.testing.assert_array_equal(after["shadow"][0], before["shadow"][0])
        return
    assert 0.0 <= ema.decay <= 1.0 and isinstance(ema.num_updates, int) and ema.num_updates >= 0


@SETTINGS
@given(key=st.sampled_from(["k", "alpha", "step_counter", "slow_param", "lr"]), value=anything)
def test_lookahead_load_state_dict_of_anything_works_or_changes_nothing(key, value):
    w = np.linspace(0, 1, 5)
    la = dlopt.Lookahead(dlopt.optim.SGD([w], lr=0.1), k=3, alpha=0.5)
    la.step([np.ones(5)])
    sd = la.state_dict()
    if key == "slow_param":
        sd["state"][0]["slow_param"] = value
    elif key == "lr":
        sd["param_groups"][0]["lr"] = value
    else:
        sd["lookahead"][key] = value
    before = copy.deepcopy(la.state_dict())
    w_before = w.copy()
    try:
        la.load_state_dict(sd)
    except BAD:
        after = la.state_dict()
        assert after["lookahead"] == before["lookahead"]
        assert after["param_groups"] == before["param_groups"]
        np.testing.assert_array_equal(after["state"][0]["slow_param"], before["state"][0]["slow_param"])
        np.testing.assert_array_equal(w, w_before)
        return
    assert la.k >= 1 and 0.0 <= la.alpha <= 1.0 and la.step_counter >= 0
