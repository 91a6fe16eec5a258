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
        with pytest.raises((TypeError, ValueError)), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            getattr(sk, name)(t, p, **kw)
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # sklearn's notes about labels absent from y
        theirs = getattr(sk, name)(t, p, **kw)
    np.testing.assert_allclose(ours, theirs, rtol=1e-12, atol=0)


# Labels of every kind, as scikit-learn's type checks see them: accepted (ints, integral floats, strings,
# bools) or refused (fractions, NaN / inf, complex, bytes, object arrays holding more than strings, string
# labels against numeric ones).
LABEL_KINDS = {
    "int": st.integers(0, 3), "integral float": st.sampled_from([0.0, 1.0, 2.0]), "str": st.sampled_from("abc"),
    "bool": st.booleans(), "fraction": st.sampled_from([0.5, 1.0, 2.0]),
    "nan or inf": st.sampled_from([0.0, 1.0, math.nan, math.inf]), "complex": st.sampled_from([0j, 1 + 0j, 1j]),
    "bytes": st.sampled_from([b"a", b"b"]), "object": st.sampled_from([None, 2**70, "a", 1, 2.5, "b"]),
}


@st.composite
def label_pair(draw):
    n = draw(st.integers(1, 12))
    arrays = []
    for _ in range(2):
        kind = draw(st.sampled_from(sorted(LABEL_KINDS)))
        values = draw(st.lists(LABEL_KINDS[kind], min_size=n, max_size=n))
        arrays.append(np.array(values, dtype=object if kind == "object" else None))
    return arrays


@SETTINGS
@given(pair=label_pair(), name=st.sampled_from(["accuracy_score", "confusion_matrix", "precision_score", "recall_score",
                                               "f1_score"]),
       average=st.sampled_from(["micro", "macro", "weighted", None]))
def test_classification_metrics_accept_and_refuse_the_labels_sklearn_does(pair, name, average):
    sk = pytest.importorskip("sklearn.metrics")
    t, p = pair
    kw = {} if name in ("accuracy_score", "confusion_matrix") else dict(average=average, zero_division=0)

    def run(module):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                return getattr(module, name)(t, p, **kw)
            except (TypeError, ValueError) as e:
                return e

    ours, theirs = run(metrics), run(sk)
    assert isinstance(ours, Exception) == isinstance(theirs, Exception), (t, p, ours, theirs)
    if not isinstance(ours, Exception):
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

# Each argument's domain (docs/reliability.md): inside it dlopt gives torch's lrs (and momenta); outside
# it the constructor raises TypeError / ValueError and leaves the param groups as they were, where
# torch accepts some of these values and fails or gives NaN / negative lrs at a later step.
whole_floats = st.integers(1, 6).map(float)
SCHEDULERS = {
    "StepLR": dict(step_size=st.integers(1, 4) | whole_floats, gamma=st.floats(0, 2)),
    "MultiStepLR": dict(milestones=st.lists(st.integers(0, 8), max_size=3), gamma=st.floats(0, 2)),
    "ExponentialLR": dict(gamma=st.floats(0, 2)),
    "CosineAnnealingLR": dict(T_max=st.integers(1, 6) | whole_floats, eta_min=st.floats(0, 0.1)),
    "LinearLR": dict(start_factor=st.floats(0.01, 1), end_factor=st.floats(0, 1), total_iters=st.integers(1, 6)),
    "ConstantLR": dict(factor=st.floats(0.01, 1), total_iters=st.integers(0, 6)),
    "PolynomialLR": dict(total_iters=st.integers(1, 6), power=st.floats(0, 3)),
    "CosineAnnealingWarmRestarts": dict(T_0=st.integers(1, 5), T_mult=st.integers(1, 3), eta_min=st.floats(0, 0.1)),
    "CyclicLR": dict(base_lr=st.floats(0, 0.1), max_lr=st.floats(0.1, 1), step_size_up=st.integers(1, 4) | st.floats(0.5, 4),
                     step_size_down=st.none() | st.integers(0, 4), mode=st.sampled_from(["triangular", "triangular2", "exp_range"]),
                     gamma=st.floats(0.5, 1), base_momentum=st.floats(0, 0.8), max_momentum=st.floats(0.8, 0.99)),
    "OneCycleLR": dict(max_lr=st.floats(0.01, 1), total_steps=st.integers(8, 12), pct_start=st.floats(0.15, 0.45),
                       anneal_strategy=st.sampled_from(["cos", "linear"]), div_factor=st.floats(1, 30),
                       final_div_factor=st.floats(1, 1e4), three_phase=st.booleans(), base_momentum=st.floats(0, 0.8),
                       max_momentum=st.floats(0.8, 0.99)),
    "ReduceLROnPlateau": dict(mode=st.sampled_from(["min", "max"]), factor=st.floats(0, 0.9), patience=st.integers(0, 3),
                              threshold=st.floats(0, 0.1), threshold_mode=st.sampled_from(["rel", "abs"]),
                              cooldown=st.integers(0, 2), min_lr=st.floats(0, 0.01), eps=st.floats(0, 1e-6)),
}
# Values outside some argument's domain: zero and negative counts and factors, fractions where an int is
# meant, NaN, infinities, beyond a float, complex (NumPy's too), bools, strings, arrays.
out_of_domain = st.sampled_from([None, 0, 0.0, -1, -0.5, 2.5, 1.5, math.nan, math.inf, -math.inf, 10**400, 2**63,
                                 "1", 1j, np.complex128(0.5), True, np.ones(2), [1.0], -2])


@st.composite
def scheduler_case(draw):
    name = draw(st.sampled_from(sorted(SCHEDULERS)))
    kwargs = {k: draw(s) for k, s in SCHEDULERS[name].items()}
    if draw(st.booleans()):  # one argument (last_epoch too) of any value at all
        keys = sorted(kwargs) + ([] if name == "ReduceLROnPlateau" else ["last_epoch"])
        kwargs[draw(st.sampled_from(keys))] = draw(out_of_domain | anything)
    return name, kwargs


def _group_values(opt):
    return [{k: v for k, v in g.items() if k != "params"} for g in opt.param_groups]


def _same(a, b):
    return a == b or (isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b)) \
        or a == pytest.approx(b, rel=1e-12, abs=1e-16)  # abs: torch's LinearLR can round 0 to -7e-20


@SETTINGS
@given(case=scheduler_case())
def test_schedulers_raise_and_change_nothing_or_match_torch(case):
    torch = pytest.importorskip("torch")
    name, kwargs = case
    opt = dlopt.optim.SGD([np.zeros(2)], lr=0.1, momentum=0.9)
    before = copy.deepcopy(_group_values(opt))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            ours = getattr(dls, name)(opt, **kwargs)
        except (TypeError, ValueError, KeyError):
            assert _group_values(opt) == before
            return
    # accepted: torch accepts it too and gives the same lrs and momenta for 8 steps
    p = torch.nn.Parameter(torch.zeros(2))
    topt = torch.optim.SGD([p], lr=0.1, momentum=0.9)
    metrics = [1.0, 0.9, 0.95, 0.97, 0.99, 0.8, 0.85, 0.86]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = getattr(torch.optim.lr_scheduler, name)(topt, **kwargs)
        for metric in metrics:
            for key in ("lr", "momentum"):
                a, b = opt.param_groups[0][key], topt.param_groups[0][key]
                assert _same(a, b), (key, a, b)
            assert all(_same(a, b) for a, b in zip(ours.get_last_lr(), theirs.get_last_lr()))
            opt.step([np.zeros(2)])
            topt.step()
            args = (metric,) if name == "ReduceLROnPlateau" else ()
            ours.step(*args)
            theirs.step(*args)


def _raises_at_epoch_0(x):
    raise ArithmeticError("user function fails")


@pytest.mark.parametrize("make", [
    lambda opt: dls.LambdaLR(opt, _raises_at_epoch_0),
    lambda opt: dls.CyclicLR(opt, base_lr=0.01, max_lr=0.1, scale_fn=_raises_at_epoch_0),
], ids=["LambdaLR", "CyclicLR"])
def test_a_user_function_raising_in_the_constructor_changes_nothing(make):
    """The constructor's step calls the user's function: when it raises, the groups are as before (no
    initial_lr, lr or momentum written)."""
    opt = dlopt.optim.SGD([np.zeros(2)], lr=0.1, momentum=0.9)
    before = copy.deepcopy(_group_values(opt))
    with pytest.raises(ArithmeticError):
        make(opt)
    assert _group_values(opt) == before


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


# -- device-array interfaces (read from the dict alone: no GPU needed) -----------------------------------

_TYPESTRS = {"<f4": np.float32, "<f8": np.float64, "<f2": np.float16, "|i1": np.int8, "<i1": np.int8,
             "|u1": np.uint8, "<u1": np.uint8}


class _Interface:
    def __init__(self, iface):
        self.__cuda_array_interface__ = iface


def _expected_spec(iface):
    """What the __cuda_array_interface__ protocol (v0-3) and dlopt's rules say of `iface`: the
    exception type, or (shape, dtype). Written from the protocol's text, not from the binding."""
    if iface.get("version") not in (0, 1, 2, 3):
        return ValueError
    if iface["typestr"] not in _TYPESTRS:
        return TypeError
    shape = iface["shape"]
    if any(n < 0 for n in shape):
        return ValueError
    pointer, _ = iface["data"]
    if iface.get("mask") is not None:
        return ValueError
    dtype = np.dtype(_TYPESTRS[iface["typestr"]])
    size = math.prod(shape)
    strides = iface.get("strides")
    if strides is not None and size > 0:
        if len(strides) != len(shape):
            return ValueError
        contiguous = np.cumprod((dtype.itemsize,) + tuple(shape[:0:-1]))[::-1]
        if any(n != 1 and s != c for n, s, c in zip(shape, strides, contiguous)):
            return ValueError
    if size > 0 and (pointer == 0 or pointer % dtype.itemsize):
        return ValueError
    return tuple(shape), dtype


@st.composite
def _interfaces(draw):
    shape = draw(st.lists(st.integers(-1, 4), max_size=4))
    typestr = draw(st.sampled_from(sorted(_TYPESTRS) + [">f4", "<i4", "<c8", "<V2", "|b1"]))
    itemsize = np.dtype(_TYPESTRS.get(typestr, np.float32)).itemsize
    contiguous = list(np.cumprod([itemsize] + shape[:0:-1])[::-1]) if shape else []
    strides = draw(st.one_of(st.none(), st.just(contiguous),
                             st.lists(st.sampled_from([0, 1, 2, 4, 8, 16, 32]), min_size=len(shape), max_size=len(shape)),
                             st.lists(st.integers(1, 64), max_size=5)))
    iface = {"shape": tuple(shape), "typestr": typestr,
             "data": (draw(st.sampled_from([0, 1, 2, 4096, 4098, 4100, 4104])), draw(st.booleans())),
             "version": draw(st.sampled_from([0, 1, 2, 3, 3, 3, 4])), "strides": strides}
    if draw(st.booleans()):
        iface["mask"] = draw(st.sampled_from([None, (0, False)]))
    return iface


@derandomized(300)
@given(iface=_interfaces())
def test_cuda_array_spec_follows_the_interface_protocol(iface):
    """_core.cuda_array_spec reads (shape, dtype) from any interface that is valid, C-contiguous and
    aligned, and refuses every other one with TypeError (its dtype) or ValueError, as the protocol
    and dlopt's rules say (a reference written from them); cuda_array_info takes float32/float64
    only unless any_format."""
    from dlopt import _core
    expected = _expected_spec(iface)
    array = _Interface(iface)
    if isinstance(expected, type):
        with pytest.raises(expected):
            _core.cuda_array_spec(array)
        return
    shape, dtype = _core.cuda_array_spec(array)
    assert (tuple(shape), np.dtype(dtype)) == expected
    if expected[1] not in (np.float32, np.float64):
        with pytest.raises(TypeError, match="dtype must be float32 or float64"):
            _core.cuda_array_info(array)
