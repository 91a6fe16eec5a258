"""A run started in C++ resumes in Python and the other way round, bit for bit (dlopt::save / load).

The C++ side is tests/cpp/resume_tool.cpp (``dlopt_resume_tool``, built by the C++ test build:
``$DLOPT_CPP_TEST_BUILD``, else build/cpp-tests or build/dev). Both sides train parameters ``w``
(4 x 8) and ``b`` (8) from the same values with the same exact gradients, lr 0.01 under
StepLR(step_size=3, gamma=0.5).
"""

import os
import pathlib
import subprocess

import numpy as np
import pytest

import dlopt
from dlopt.lr_scheduler import StepLR

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _tool() -> pathlib.Path:
    build = os.environ.get("DLOPT_CPP_TEST_BUILD")
    dirs = [pathlib.Path(build)] if build else [ROOT / "build" / "cpp-tests", ROOT / "build" / "dev"]
    for d in dirs:
        exe = d / "tests" / "cpp" / "dlopt_resume_tool"
        if exe.exists():
            return exe
    if build:
        pytest.fail(f"DLOPT_CPP_TEST_BUILD={build} has no tests/cpp/dlopt_resume_tool")
    pytest.skip("no C++ test build (build/cpp-tests or build/dev) with dlopt_resume_tool")


def run_cpp(name, state_dtype, start, steps, out, evaluate=False):
    done = subprocess.run([str(_tool()), name, state_dtype or "none", str(start or "-"), str(steps), str(out)]
                          + (["eval"] if evaluate else []), capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"dlopt_resume_tool {name}: {done.stderr.strip()}")


def _params(name):
    j = np.arange(32)
    params = {"w": (((j * 5) % 11 - 5) / 4).astype(np.float32).reshape(4, 8)}
    if name != "Muon":
        params["b"] = ((np.arange(8) * 5 % 11 - 5) / 4).astype(np.float32)
    return params


def _grads(params, t):
    out = []
    for i, p in enumerate(params.values()):
        j = np.arange(p.size)
        out.append((((j * 7 + t * 13 + i * 3) % 17 - 8) / 8).astype(np.float32).reshape(p.shape))
    return out


def run_python(name, state_dtype, steps, start=None, out=None, **hyperparameters):
    params = _params(name)
    opt = getattr(dlopt.optim, name)(list(params.values()), lr=0.01, state_dtype=state_dtype, **hyperparameters)
    sched = StepLR(opt, step_size=3, gamma=0.5)
    if start is not None:
        dlopt.load(start, optimizer=opt, scheduler=sched, params=params)
    for _ in range(steps):
        opt.step(_grads(params, sched.last_epoch))
        sched.step()
    if out is not None:
        dlopt.save(out, optimizer=opt, scheduler=sched, params=params)
    return params, opt, sched


def assert_same_run(ckpt_path, params, opt, sched):
    """The checkpoint holds bitwise these parameters, this optimizer state and schedule position."""
    ckpt = dlopt.load(ckpt_path)
    assert ckpt["params"].keys() == params.keys()
    for k in params:
        assert ckpt["params"][k].dtype == params[k].dtype and ckpt["params"][k].shape == params[k].shape
        np.testing.assert_array_equal(ckpt["params"][k].view(np.uint8), params[k].view(np.uint8), err_msg=k)
    mine = opt.state_dict()
    assert ckpt["optimizer"]["param_groups"] == mine["param_groups"]
    assert ckpt["optimizer"]["state"].keys() == mine["state"].keys()
    for i, entry in mine["state"].items():
        saved = ckpt["optimizer"]["state"][i]
        assert saved.keys() == entry.keys(), i
        for key, value in entry.items():
            if isinstance(value, np.ndarray):
                assert saved[key].dtype == value.dtype and saved[key].shape == value.shape, (i, key)
                np.testing.assert_array_equal(saved[key].view(np.uint8), value.view(np.uint8), err_msg=f"{i} {key}")
            else:
                assert type(saved[key]) is type(value) and saved[key] == value, (i, key)
    state = sched.state_dict()
    for key in ("last_epoch", "base_lrs", "_last_lr", "_step_count"):
        assert ckpt["scheduler"][key] == state[key], key


# Every rule (LBFGS is no rule and not resumable from C++), and the 8-bit and bfloat16 state formats.
CASES = [(name, None) for name in dlopt.optim.algorithms.__all__ if name != "LBFGS"] + [
    ("Adam", "int8"), ("NAdam", "bfloat16"), ("Adafactor", "bfloat16"), ("SGD", "int8"), ("AdamW", "float32")]


@pytest.mark.parametrize("name,state_dtype", CASES, ids=[f"{n}-{d}" for n, d in CASES])
def test_cpp_run_resumes_in_python(tmp_path, name, state_dtype):
    run_cpp(name, state_dtype, None, 4, tmp_path / "cpp4.dlopt")
    params, opt, sched = run_python(name, state_dtype, 3, start=tmp_path / "cpp4.dlopt")
    run_cpp(name, state_dtype, None, 7, tmp_path / "cpp7.dlopt")  # uninterrupted
    assert_same_run(tmp_path / "cpp7.dlopt", params, opt, sched)


@pytest.mark.parametrize("name,state_dtype", CASES, ids=[f"{n}-{d}" for n, d in CASES])
def test_python_run_resumes_in_cpp(tmp_path, name, state_dtype):
    run_python(name, state_dtype, 4, out=tmp_path / "py4.dlopt")
    run_cpp(name, state_dtype, tmp_path / "py4.dlopt", 3, tmp_path / "cpp.dlopt")
    assert_same_run(tmp_path / "cpp.dlopt", *run_python(name, state_dtype, 7))  # uninterrupted


def test_cpp_refuses_a_python_checkpoint_of_another_optimizer(tmp_path):
    run_python("Adam", None, 2, out=tmp_path / "adam.dlopt")
    with pytest.raises(RuntimeError, match="its optimizer is a Adam, not a SGD"):
        run_cpp("SGD", None, tmp_path / "adam.dlopt", 1, tmp_path / "out.dlopt")
    assert not (tmp_path / "out.dlopt").exists()


# Hyperparameters other than the defaults (the C++ run starts from the defaults): C++ must take
# each from the Python checkpoint, composite keys included, and write them back in Python's keys.
NON_DEFAULT = {
    "SGD": dict(momentum=0.8, dampening=0.1, weight_decay=0.01, maximize=True),
    "Adam": dict(betas=(0.8, 0.99), eps=1e-6, weight_decay=0.1, amsgrad=True, decoupled_weight_decay=True),
    "NAdam": dict(betas=(0.85, 0.995), momentum_decay=0.005),
    "Rprop": dict(etas=(0.4, 1.3), step_sizes=(1e-5, 10.0)),
    "ASGD": dict(lambd=1e-3, alpha=0.5, t0=3.0),
    "Adafactor": dict(eps=(1e-20, 2e-3), beta2_decay=-0.7, d=1.5, weight_decay=0.01),
    "ADOPT": dict(betas=(0.8, 0.999), clip_exponent=None, decouple=True),
    "AdEMAMix": dict(betas=(0.8, 0.99, 0.999), alpha=3.0, beta3_warmup=5, alpha_warmup=4),
    "ScheduleFreeAdamW": dict(warmup_steps=2, r=0.5, weight_lr_power=1.0),
    "Muon": dict(ns_coefficients=(3.0, -4.0, 2.0), adjust_lr_fn="match_rms_adamw", ns_steps=4, nesterov=False),
    "LARS": dict(momentum=0.5, trust_coefficient=0.01, nesterov=True, exclude_1d=True),
}


@pytest.mark.parametrize("name", sorted(NON_DEFAULT))
def test_python_hyperparameters_resume_in_cpp(tmp_path, name):
    hyperparameters = NON_DEFAULT[name]
    run_python(name, None, 4, out=tmp_path / "py4.dlopt", **hyperparameters)
    run_cpp(name, None, tmp_path / "py4.dlopt", 3, tmp_path / "cpp.dlopt")
    assert_same_run(tmp_path / "cpp.dlopt", *run_python(name, None, 7, **hyperparameters))


@pytest.mark.parametrize("name", ["ScheduleFreeSGD", "ScheduleFreeAdamW"])
def test_schedule_free_saved_in_eval_mode_resumes_across_languages(tmp_path, name):
    # Python: 2 steps, eval(), saved (the parameters hold the average x, train_mode False); C++:
    # loads that mode, train(), 3 steps, eval(), saves; Python does the same uninterrupted.
    params, opt, sched = run_python(name, None, 2)
    opt.eval()
    dlopt.save(tmp_path / "eval.dlopt", optimizer=opt, scheduler=sched, params=params)
    run_cpp(name, None, tmp_path / "eval.dlopt", 3, tmp_path / "cpp.dlopt", evaluate=True)
    assert dlopt.load(tmp_path / "cpp.dlopt")["optimizer"]["param_groups"][0]["train_mode"] is False
    opt.train()
    for _ in range(3):
        opt.step(_grads(params, sched.last_epoch))
        sched.step()
    opt.eval()
    assert_same_run(tmp_path / "cpp.dlopt", params, opt, sched)
    # and back: the C++ eval-mode checkpoint resumes in Python
    resumed, again, resumed_sched = run_python(name, None, 0, start=tmp_path / "cpp.dlopt")
    assert all(group["train_mode"] is False for group in again.param_groups)
