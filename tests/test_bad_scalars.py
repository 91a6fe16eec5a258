"""Scalars that Python's float() cannot hold (10**400) or that poison every number they touch (NaN):
EMA, Lookahead and the clipping functions raise a ValueError / TypeError naming the argument and
change nothing, while every value torch's clipping accepts gives torch's result (max_norm=inf is no
clipping; norm_type inf / -inf / 'inf' are the max / min norms; even a negative max_norm).
WarmupStableDecayLR: test_lr_scheduler.py::test_warmup_stable_decay_rejects."""

import math

import numpy as np
import pytest

import dlopt

HUGE = 10**400  # an int beyond float's range: float() raises OverflowError


def short(value):
    return "10**400" if value is HUGE else repr(value)[:16]


@pytest.mark.parametrize("decay, error", [(HUGE, ValueError), (math.nan, ValueError), (math.inf, ValueError),
                                          (-0.1, ValueError), ("0.5", TypeError), (None, TypeError),
                                          (True, TypeError), (1j, TypeError)], ids=short)
def test_ema_refuses_bad_decays(decay, error):
    w = np.ones(3)
    with pytest.raises(error, match="decay"):
        dlopt.EMA([w], decay=decay)
    ema = dlopt.EMA([w], decay=0.9)
    sd = ema.state_dict()
    sd["decay"] = decay
    with pytest.raises(ValueError, match="decay"):
        ema.load_state_dict(sd)
    assert ema.decay == 0.9


@pytest.mark.parametrize("alpha, error", [(HUGE, ValueError), (math.nan, ValueError), (-math.inf, ValueError),
                                          ("0.5", TypeError), (None, TypeError)], ids=short)
def test_lookahead_refuses_bad_alphas(alpha, error):
    w = np.ones(3)
    with pytest.raises(error, match="alpha"):
        dlopt.Lookahead(dlopt.optim.SGD([w], lr=0.1), alpha=alpha)
    la = dlopt.Lookahead(dlopt.optim.SGD([w], lr=0.1), k=2, alpha=0.5)
    la.step([np.ones(3)])
    sd = la.state_dict()
    sd["lookahead"]["alpha"] = alpha
    with pytest.raises(ValueError, match="alpha"):
        la.load_state_dict(sd)
    assert la.alpha == 0.5


@pytest.mark.parametrize("field, value", [("k", 2.5), ("k", math.inf), ("k", 0),
                                          ("step_counter", -1), ("step_counter", math.nan), ("k", "3")], ids=short)
def test_lookahead_load_refuses_counts_that_are_not_integers(field, value):
    w = np.ones(3)
    la = dlopt.Lookahead(dlopt.optim.SGD([w], lr=0.1), k=2)
    la.step([np.ones(3)])
    sd = la.state_dict()
    sd["lookahead"][field] = value
    with pytest.raises(ValueError, match=field):
        la.load_state_dict(sd)
    assert la.k == 2 and la.step_counter == 1


def _grads():
    return [np.array([3.0, 0.0]), np.array([4.0])]


@pytest.mark.parametrize("call, match", [
    (lambda g: dlopt.clip_grad_norm_(g, HUGE), "max_norm"),
    (lambda g: dlopt.clip_grad_norm_(g, math.nan), "max_norm"),
    (lambda g: dlopt.clip_grad_norm_(g, None), "max_norm"),
    (lambda g: dlopt.clip_grad_norm_(g, "one"), "max_norm"),
    (lambda g: dlopt.clip_grad_norm_(g, 1.0, norm_type=HUGE), "norm_type"),
    (lambda g: dlopt.clip_grad_norm_(g, 1.0, norm_type=math.nan), "norm_type"),
    (lambda g: dlopt.clip_grad_norm_(g, 1.0, norm_type=True), "norm_type"),
    (lambda g: dlopt.get_total_norm(g, norm_type=HUGE), "norm_type"),
    (lambda g: dlopt.get_total_norm(g, norm_type="nan"), "norm_type"),
    (lambda g: dlopt.clip_grad_value_(g, HUGE), "clip_value"),
    (lambda g: dlopt.clip_grad_value_(g, math.nan), "clip_value"),
    (lambda g: dlopt.clip_grads_with_norm_(g, 1.0, HUGE), "total_norm"),
    (lambda g: dlopt.clip_grads_with_norm_(g, HUGE, 5.0), "max_norm"),
])
def test_clipping_refuses_bad_scalars_and_changes_nothing(call, match):
    g = _grads()
    with pytest.raises((ValueError, TypeError), match=match):
        call(g)
    for a, b in zip(g, _grads()):
        np.testing.assert_array_equal(a, b)


def test_clipping_keeps_what_torch_accepts():
    torch = pytest.importorskip("torch")
    cases = [dict(max_norm=math.inf), dict(max_norm=1.0, norm_type=math.inf), dict(max_norm=1.0, norm_type=-math.inf),
             dict(max_norm=1.0, norm_type="inf"), dict(max_norm="1.5"), dict(max_norm=1.0, norm_type=0.5),
             dict(max_norm=0.0), dict(max_norm=1.0, norm_type=0), dict(max_norm=-1.0)]
    for kw in cases:
        ours = _grads()
        total = dlopt.clip_grad_norm_(ours, **kw)
        params = [torch.nn.Parameter(torch.zeros(len(a), dtype=torch.float64)) for a in _grads()]
        for p, a in zip(params, _grads()):
            p.grad = torch.from_numpy(a.copy())
        expected = torch.nn.utils.clip_grad_norm_(params, **kw)
        assert float(total) == pytest.approx(float(expected), rel=1e-12), kw
        for a, p in zip(ours, params):
            np.testing.assert_allclose(a, p.grad.numpy(), rtol=1e-12, err_msg=str(kw))
    # a NaN norm computed from the data is the data's, as in torch (error_if_nonfinite catches it)
    g = [np.array([math.nan, 1.0])]
    assert math.isnan(dlopt.clip_grad_norm_(g, 1.0))
    with pytest.raises(RuntimeError, match="non-finite"):
        dlopt.clip_grad_norm_([np.array([math.nan, 1.0])], 1.0, error_if_nonfinite=True)
    g = _grads()
    dlopt.clip_grad_value_(g, math.inf)  # inf: no clamping, as torch
    for a, b in zip(g, _grads()):
        np.testing.assert_array_equal(a, b)
