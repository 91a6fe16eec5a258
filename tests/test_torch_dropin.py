"""dlopt.torch: a training script changes only the optimizer's import.

Training loops against torch.optim (losses and parameters), torch's schedulers, clipping, swa_utils,
hooks, named parameters, closures, state_dicts in both directions, torch.save/torch.load resume, and
the refusals (sparse gradients, non-contiguous or moved parameters, mixed devices) that change nothing.
"""

import io
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")
import dlopt  # noqa: E402
import dlopt.torch  # noqa: E402
from dlopt.optim import algorithms  # noqa: E402


def mlp(seed=0, dtype=torch.float32):
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.Tanh(), torch.nn.Linear(16, 3)).to(dtype)


def batches(n, dtype=torch.float32, seed=1):
    g = torch.Generator().manual_seed(seed)
    return [(torch.randn(32, 8, generator=g, dtype=dtype), torch.randint(0, 3, (32,), generator=g))
            for _ in range(n)]


def train(model, opt, data, scheduler=None, clip=None):
    losses = []
    for x, y in data:
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(x), y)
        loss.backward()
        if clip is not None:
            torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
        opt.step()
        if scheduler is not None:
            scheduler.step()
        losses.append(loss.item())
    return losses


def test_every_optimizer_has_a_torch_class():
    for name in algorithms.__all__:
        cls = getattr(dlopt.torch, name)
        assert issubclass(cls, torch.optim.Optimizer) and cls.__name__ == name
        assert cls._rule == getattr(dlopt.optim, name)._rule
    assert dlopt.torch is sys.modules["dlopt.torch"]


def test_import_dlopt_does_not_import_torch():
    import subprocess

    code = "import sys, dlopt; assert 'torch' not in sys.modules; print('ok')"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "ok"


@pytest.mark.parametrize("name,kwargs", [
    ("AdamW", dict(lr=1e-2, weight_decay=0.01)),
    ("SGD", dict(lr=0.1, momentum=0.9, nesterov=True)),
    ("RMSprop", dict(lr=1e-2, centered=True, momentum=0.5)),
])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_training_loop_with_scheduler_and_clipping_matches_torch(name, kwargs, dtype):
    data = batches(12, dtype)
    results = []
    for module in (torch.optim, dlopt.torch):
        model = mlp(dtype=dtype)
        opt = getattr(module, name)(model.parameters(), **kwargs)
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=0.05, total_steps=12)
        results.append((train(model, opt, data, sched, clip=1.0), [p.detach().clone() for p in model.parameters()]))
    (l_torch, p_torch), (l_ours, p_ours) = results
    # float32: dlopt and torch round in different orders, and 12 steps of momentum accumulate it
    tol = dict(rtol=1e-4, atol=1e-5) if dtype == torch.float32 else dict(rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(l_ours, l_torch, **tol)
    for a, b in zip(p_ours, p_torch):
        torch.testing.assert_close(a, b, **tol)


def test_schedulers_sequential_plateau_and_tensor_lr():
    data = batches(10)
    results = []
    for module in (torch.optim, dlopt.torch):
        model = mlp()
        opt = getattr(module, "Adam")(model.parameters(), lr=torch.tensor(0.01))
        warm = torch.optim.lr_scheduler.LinearLR(opt, start_factor=0.5, total_iters=3)
        decay = torch.optim.lr_scheduler.ExponentialLR(opt, gamma=0.8)
        sched = torch.optim.lr_scheduler.SequentialLR(opt, [warm, decay], milestones=[3])
        plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, patience=0, factor=0.5)
        losses = train(model, opt, data[:5], sched)
        for x, y in data[5:]:  # plateau on a constant "validation" loss: lr halves each step
            losses += train(model, opt, [(x, y)])
            plateau.step(1.0)
        assert isinstance(opt.param_groups[0]["lr"], torch.Tensor)  # changed in place (fill_)
        results.append((losses, [p.detach().clone() for p in model.parameters()]))
    np.testing.assert_allclose(results[1][0], results[0][0], rtol=1e-5, atol=1e-6)
    for a, b in zip(results[1][1], results[0][1]):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_swa_utils_and_hooks_and_named_parameters():
    model = mlp()
    opt = dlopt.torch.SGD(model.named_parameters(), lr=0.1, momentum=0.9)
    assert opt.param_groups[0]["param_names"][0] == "0.weight"
    calls = []
    opt.register_step_pre_hook(lambda o, a, k: calls.append("pre"))
    opt.register_step_post_hook(lambda o, a, k: calls.append("post"))
    swa_model = torch.optim.swa_utils.AveragedModel(model)
    swa = torch.optim.swa_utils.SWALR(opt, swa_lr=0.05, anneal_epochs=2)
    train(model, opt, batches(4), swa)
    swa_model.update_parameters(model)
    assert calls == ["pre", "post"] * 4
    assert opt.param_groups[0]["lr"] == pytest.approx(0.05)
    assert opt.state_dict()["param_groups"][0]["param_names"][0] == "0.weight"


def test_step_with_closure_and_none_grads_and_add_param_group():
    model = mlp()
    extra = torch.nn.Parameter(torch.ones(5))
    opt = dlopt.torch.Adam(model.parameters(), lr=0.01)
    opt.add_param_group({"params": [extra], "lr": 0.5, "name": "extra"})
    x, y = batches(1)[0]

    def closure():
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(x), y)
        loss.backward()
        return loss

    loss = opt.step(closure)
    assert isinstance(loss, torch.Tensor)
    assert torch.equal(extra.detach(), torch.ones(5))  # no .grad: skipped, no state
    assert extra not in opt.state and len(opt.state) == 4
    extra.grad = torch.ones(5)
    opt.step()
    torch.testing.assert_close(extra.detach(), torch.full((5,), 0.5))
    assert opt.param_groups[1]["name"] == "extra"


@pytest.mark.parametrize("dtype,np_dtype", [(torch.bfloat16, "bfloat16"), (torch.float16, "float16")])
def test_16bit_parameters_are_stepped_in_place(dtype, np_dtype):
    import ml_dtypes

    np_dtype = ml_dtypes.bfloat16 if np_dtype == "bfloat16" else np.float16
    p = torch.nn.Parameter(torch.linspace(-1, 1, 1000, dtype=dtype))
    ref = p.detach().float().numpy().astype(np_dtype)  # the same values in NumPy: dlopt.optim's result
    ptr = p.data_ptr()
    opt = dlopt.torch.AdamW([p], lr=0.01, seed=3)
    ref_opt = dlopt.optim.AdamW([ref], lr=0.01, seed=3)
    for k in range(3):
        p.grad = torch.full_like(p, 0.25 * (k + 1))
        opt.step()
        ref_opt.step([np.full(1000, 0.25 * (k + 1), dtype=np_dtype)])
    assert p.data_ptr() == ptr
    np.testing.assert_array_equal(p.detach().float().numpy(), ref.astype(np.float32))
    assert not np.array_equal(ref.astype(np.float32), np.linspace(-1, 1, 1000, dtype=np.float32))


def test_state_dict_loads_into_torch_and_back():
    data = batches(6)
    model = mlp()
    ours = dlopt.torch.Adam(model.parameters(), lr=0.01, amsgrad=True)
    train(model, ours, data[:3])
    saved = ours.state_dict()
    assert isinstance(saved["state"][0]["step"], torch.Tensor) and saved["state"][0]["step"].item() == 3
    # continue in torch.optim from dlopt's state, and in dlopt from torch's
    model_t = mlp()
    model_t.load_state_dict(model.state_dict())
    theirs = torch.optim.Adam(model_t.parameters(), lr=0.01, amsgrad=True)
    theirs.load_state_dict(saved)
    model_o = mlp()
    model_o.load_state_dict(model.state_dict())
    ours2 = dlopt.torch.Adam(model_o.parameters(), lr=0.01, amsgrad=True)
    ours2.load_state_dict(theirs.state_dict())
    l_t = train(model_t, theirs, data[3:])
    l_o = train(model_o, ours2, data[3:])
    np.testing.assert_allclose(l_o, l_t, rtol=1e-5, atol=1e-6)
    for a, b in zip(model_o.parameters(), model_t.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_torch_save_load_resumes_bit_for_bit():
    data = batches(8)
    model = mlp()
    opt = dlopt.torch.NAdam(model.parameters(), lr=0.01)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=2, gamma=0.5)
    train(model, opt, data[:4], sched)
    buf = io.BytesIO()
    torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "sched": sched.state_dict()}, buf)
    straight = train(model, opt, data[4:], sched)
    buf.seek(0)
    ckpt = torch.load(buf)
    model2 = mlp(seed=5)
    model2.load_state_dict(ckpt["model"])
    opt2 = dlopt.torch.NAdam(model2.parameters(), lr=0.01)
    sched2 = torch.optim.lr_scheduler.StepLR(opt2, step_size=2, gamma=0.5)
    opt2.load_state_dict(ckpt["opt"])
    sched2.load_state_dict(ckpt["sched"])
    resumed = train(model2, opt2, data[4:], sched2)
    assert resumed == straight
    for a, b in zip(model.parameters(), model2.parameters()):
        assert torch.equal(a, b)


def test_low_precision_state_round_trips():
    model = mlp()
    opt = dlopt.torch.Adam(model.parameters(), lr=0.01, state_dtype="int8")
    train(model, opt, batches(2))
    saved = opt.state_dict()
    assert saved["state"][0]["exp_avg"].dtype == torch.int8
    model2 = mlp()
    model2.load_state_dict(model.state_dict())
    opt2 = dlopt.torch.Adam(model2.parameters(), lr=0.01, state_dtype="int8")
    opt2.load_state_dict(saved)
    data = batches(2, seed=3)
    assert train(model, opt, data) == train(model2, opt2, data)


def _snapshot(model, opt):
    return ([p.detach().clone() for p in model.parameters()],
            {i: {k: np.copy(v) for k, v in s.items()} for i, s in opt._core_state.items()})


def _assert_unchanged(before, model, opt):
    params, state = before
    for a, b in zip(params, model.parameters()):
        assert torch.equal(a, b)
    assert state.keys() == opt._core_state.keys()
    for i in state:
        for k, v in state[i].items():
            np.testing.assert_array_equal(v, opt._core_state[i][k])


def test_refusals_change_nothing():
    model = mlp()
    opt = dlopt.torch.AdamW(model.parameters(), lr=0.01)
    train(model, opt, batches(1))
    weight = model[0].weight
    x, y = batches(1)[0]
    torch.nn.functional.cross_entropy(model(x), y).backward()
    before = _snapshot(model, opt)
    good = weight.grad
    weight.grad = good.to_sparse()
    with pytest.raises(TypeError, match=r"grads\[0\].*sparse"):
        opt.step()
    _assert_unchanged(before, model, opt)
    weight.grad = good
    data = weight.data
    weight.data = torch.ones(8, 16).t()  # storage moved, and not contiguous
    with pytest.raises(ValueError, match=r"params\[0\].*not contiguous"):
        opt.step()
    weight.data = data
    _assert_unchanged(before, model, opt)
    # back in place: steps again
    opt.step()
    assert opt.state[weight]["step"] == 2


def test_moved_storage_is_followed():
    p = torch.nn.Parameter(torch.ones(4))
    opt = dlopt.torch.SGD([p], lr=0.5)
    p.grad = torch.ones(4)
    opt.step()
    p.data = torch.zeros(4)
    opt.step()
    torch.testing.assert_close(p.detach(), torch.full((4,), -0.5))


def test_bad_hyperparameters_and_switches_are_refused():
    p = torch.nn.Parameter(torch.ones(2))
    with pytest.raises(ValueError, match="lr"):
        dlopt.torch.Adam([p], lr=-1.0)
    with pytest.raises(ValueError, match="differentiable"):
        dlopt.torch.Adam([p], differentiable=True)
    opt = dlopt.torch.Adam([p], foreach=True, fused=True, capturable=False)
    with pytest.raises(ValueError, match="lr"):
        opt.add_param_group({"params": [torch.nn.Parameter(torch.ones(2))], "lr": -1.0})
    assert len(opt.param_groups) == 1


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_tensors_step_on_the_device_and_mixed_devices_are_refused():
    p = torch.nn.Parameter(torch.ones(1000, device="cuda"))
    ref = torch.nn.Parameter(torch.ones(1000, device="cuda"))
    opt, ref_opt = dlopt.torch.Adam([p], lr=0.01), torch.optim.Adam([ref], lr=0.01)
    for _ in range(3):
        p.grad = torch.full_like(p, 0.5)
        ref.grad = torch.full_like(ref, 0.5)
        opt.step()
        ref_opt.step()
    torch.testing.assert_close(p, ref)
    q = torch.nn.Parameter(torch.ones(3))
    with pytest.raises(ValueError, match="CUDA"):
        dlopt.torch.Adam([p, q])


def test_example_script_matches_torch(monkeypatch, capsys):
    import runpy
    from pathlib import Path

    pytest.importorskip("sklearn")
    script = Path(__file__).resolve().parents[1] / "examples" / "python" / "torch_mlp.py"
    results = {}
    for flag in ([], ["--torch"]):
        monkeypatch.setattr(sys, "argv", [str(script), *flag])
        namespace = runpy.run_path(str(script))
        results[bool(flag)] = namespace["main"]()
    (ours, acc_ours), (theirs, acc_theirs) = results[False], results[True]
    np.testing.assert_allclose(ours, theirs, rtol=1e-4)
    assert abs(acc_ours - acc_theirs) <= 0.01 and acc_ours > 0.9
    assert "dlopt.torch.AdamW" in capsys.readouterr().out


def test_deepcopy_steps_like_the_original():
    import copy

    model = mlp()
    opt = dlopt.torch.Adam(model.parameters(), lr=0.01)
    train(model, opt, batches(2))
    twin_model = copy.deepcopy(model)
    twin = dlopt.torch.Adam(twin_model.parameters(), lr=0.01)
    twin.load_state_dict(copy.deepcopy(opt.state_dict()))
    clone = copy.deepcopy(opt)  # its own state arrays, not the original's
    assert clone._core_state[0]["exp_avg"] is not opt._core_state[0]["exp_avg"]
    data = batches(3, seed=7)
    assert train(model, opt, data) == train(twin_model, twin, data)


def test_state_dict_hooks_run_as_in_torch():
    model = mlp()
    opt = dlopt.torch.SGD(model.parameters(), lr=0.1, momentum=0.9)
    train(model, opt, batches(1))
    calls = []
    opt.register_state_dict_pre_hook(lambda o: calls.append("sd pre"))
    opt.register_state_dict_post_hook(lambda o, sd: {**sd, "extra": 1})
    opt.register_load_state_dict_pre_hook(lambda o, sd: calls.append("load pre"))
    opt.register_load_state_dict_post_hook(lambda o: calls.append("load post"))
    saved = opt.state_dict()
    assert saved["extra"] == 1 and calls == ["sd pre"]
    opt.load_state_dict(saved)
    assert calls == ["sd pre", "load pre", "load post"]


def test_bad_state_dict_is_refused_and_changes_nothing():
    model = mlp()
    opt = dlopt.torch.Adam(model.parameters(), lr=0.01)
    train(model, opt, batches(1))
    saved = opt.state_dict()
    before = _snapshot(model, opt)
    groups = opt.param_groups
    bad = {"state": {**saved["state"], 0: {**saved["state"][0], "exp_avg": torch.zeros(3)}},
           "param_groups": saved["param_groups"]}
    with pytest.raises(ValueError, match="shape"):
        opt.load_state_dict(bad)
    bad = {"state": saved["state"], "param_groups": [{**saved["param_groups"][0], "lr": -1.0}]}
    with pytest.raises(ValueError, match="lr"):
        opt.load_state_dict(bad)
    _assert_unchanged(before, model, opt)
    assert opt.param_groups is groups and opt.param_groups[0]["lr"] == 0.01


@pytest.mark.parametrize("name", [n for n in algorithms.__all__ if hasattr(getattr(dlopt.optim, n), "eval")])
def test_train_eval_modes_run_as_in_dlopt_optim(name):
    # Methods a dlopt.optim class adds (Schedule-Free's train/eval) run on the torch class's tensors.
    rng = np.random.default_rng(8)
    init = [rng.standard_normal(s).astype(np.float32) for s in [(4, 3), (5,)]]
    ref = [p.copy() for p in init]
    params = [torch.nn.Parameter(torch.from_numpy(p.copy())) for p in init]
    ours, theirs = getattr(dlopt.torch, name)(params, lr=0.01), getattr(dlopt.optim, name)(ref, lr=0.01)
    for _ in range(3):
        grads = [rng.standard_normal(p.shape).astype(np.float32) for p in init]
        for p, g in zip(params, grads):
            p.grad = torch.from_numpy(g)
        ours.step()
        theirs.step(grads)
    ours.eval()
    theirs.eval()
    assert ours.param_groups[0]["train_mode"] is False
    for p, r in zip(params, ref):
        np.testing.assert_array_equal(p.detach().numpy(), r)
    with pytest.raises(RuntimeError, match="train mode"):
        ours.step()
    ours.train()
    theirs.train()
    for p, r in zip(params, ref):
        np.testing.assert_array_equal(p.detach().numpy(), r)
    assert ours.state_dict()["param_groups"][0]["train_mode"] is True
