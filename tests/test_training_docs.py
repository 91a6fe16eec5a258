"""docs/training.md's loop and examples/python/training_loop.py run, converge and resume exactly."""

import pathlib
import re
import runpy

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_docs_training_loop_runs():
    text = (ROOT / "docs" / "training.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    assert blocks
    for block in blocks:
        exec(compile(block, "docs/training.md", "exec"), {"__name__": "docs"})


def test_example_resumes_exactly(tmp_path, capsys):
    mod = runpy.run_path(str(ROOT / "examples" / "python" / "training_loop.py"))
    params, final = mod["main"](str(tmp_path))
    assert final < 1e-3
    straight = mod["build"](seed=1)
    mod["train"](*straight, range(mod["EPOCHS"]))
    for k in params:
        np.testing.assert_array_equal(params[k], straight[0][k])
    assert "final mse" in capsys.readouterr().out
