"""dlopt.torch against torch.optim on torch's own optimizer test inputs (``optim_db``).

Every kwargs configuration torch tests on the CPU (tensor lrs included) for each optimizer dlopt has,
in float32 and float64 (torch's default dtype set to match: torch keeps step counts and NAdam's
mu_product in it): 20 steps side by side with the same gradients, the lr changed in place after 7
(``fill_`` for a tensor lr), and after 12 each optimizer replaced by a new one loading the *other*'s
state_dict (torch's into dlopt's and dlopt's into torch's), so both conversions carry the run.
"""

import copy
import importlib

import pytest

torch = pytest.importorskip("torch")
common_optimizers = pytest.importorskip("torch.testing._internal.common_optimizers")
import dlopt.torch  # noqa: E402

SHAPES = [(6, 5), (4, 3), (1, 7)]  # 2-D: Muon (torch's and dlopt's) steps matrices only
TOLERANCE = {torch.float32: dict(rtol=2e-4, atol=2e-5), torch.float64: dict(rtol=1e-9, atol=1e-11)}


def _cases():
    for info in common_optimizers.optim_db:
        name = info.optim_cls.__name__
        if name not in dlopt.torch.__all__:
            continue
        for dtype in (torch.float32, torch.float64):
            for k, inp in enumerate(info.optim_inputs_func(device="cpu", dtype=dtype)):
                if inp.params is None:  # inputs with their own param layout are torch's own business
                    yield pytest.param(name, dtype, k, id=f"{name}-{str(dtype)[6:]}-{inp.desc.replace(' ', '_')}")


def _inputs(name, dtype, k):
    info = next(i for i in common_optimizers.optim_db if i.optim_cls.__name__ == name)
    return info.optim_inputs_func(device="cpu", dtype=dtype)[k].kwargs


@pytest.fixture
def default_dtype(request):
    before = torch.get_default_dtype()
    yield lambda d: torch.set_default_dtype(d)
    torch.set_default_dtype(before)


def _newton_schulz_in_grad_dtype(grad, ns_coefficients, ns_steps, eps):
    """torch's Muon iteration in the gradient's dtype: torch runs it in bfloat16, dlopt by default in
    the parameter's compute type (tests/test_muon.py compares the bfloat16 variants)."""
    a, b, c = ns_coefficients
    x = grad.T if grad.size(0) > grad.size(1) else grad
    x = x / x.norm().clamp(min=eps)
    for _ in range(ns_steps):
        gram = x @ x.T
        x = torch.addmm(x, torch.addmm(gram, gram, gram, beta=b, alpha=c), x, beta=a)
    return x.T if grad.size(0) > grad.size(1) else x


@pytest.mark.parametrize("name,dtype,k", list(_cases()))
def test_matches_torch_optim(name, dtype, k, default_dtype, monkeypatch):
    default_dtype(dtype)
    if name == "Muon":
        muon = importlib.import_module("torch.optim._muon")
        monkeypatch.setattr(muon, "_zeropower_via_newtonschulz", _newton_schulz_in_grad_dtype)
    kwargs = _inputs(name, dtype, k)
    gen = torch.Generator().manual_seed(k)
    init = [torch.randn(s, generator=gen, dtype=dtype) for s in SHAPES]
    theirs_p = [torch.nn.Parameter(t.clone()) for t in init]
    ours_p = [torch.nn.Parameter(t.clone()) for t in init]
    theirs = getattr(torch.optim, name)(theirs_p, **copy.deepcopy(kwargs))
    ours = getattr(dlopt.torch, name)(ours_p, **copy.deepcopy(kwargs))
    for step in range(20):
        grads = [torch.randn(s, generator=gen, dtype=dtype) for s in SHAPES]
        for p, q, g in zip(theirs_p, ours_p, grads):
            p.grad, q.grad = g.clone(), g.clone()
        theirs.step()
        ours.step()
        for p, q in zip(theirs_p, ours_p):
            torch.testing.assert_close(q, p, **TOLERANCE[dtype], msg=lambda m: f"step {step}: {m}")
        if step == 6:  # the lr changed in place, as schedulers do
            for opt in (theirs, ours):
                group = opt.param_groups[0]
                if isinstance(group["lr"], torch.Tensor):
                    group["lr"].fill_(group["lr"].item() * 0.5)
                else:
                    group["lr"] = group["lr"] * 0.5
        if step == 11:  # each continues from the other's state_dict
            saved_theirs, saved_ours = theirs.state_dict(), ours.state_dict()
            theirs = getattr(torch.optim, name)(theirs_p, **copy.deepcopy(kwargs))
            ours = getattr(dlopt.torch, name)(ours_p, **copy.deepcopy(kwargs))
            theirs.load_state_dict(copy.deepcopy(saved_ours))
            ours.load_state_dict(copy.deepcopy(saved_theirs))
            assert float(theirs.param_groups[0]["lr"]) == float(ours.param_groups[0]["lr"])
