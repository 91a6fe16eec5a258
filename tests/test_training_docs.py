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


def test_docs_cpp_example_is_the_tested_program():
    """docs/training.md shows examples/cpp/training_loop.cpp's marked part (ctest runs that file)."""
    text = (ROOT / "docs" / "training.md").read_text()
    (shown,) = re.findall(r"## From C\+\+.*?```cpp\n(.*?)```", text, flags=re.S)
    source = (ROOT / "examples" / "cpp" / "training_loop.cpp").read_text()
    _, marked, _ = source.split("// [docs/training.md]\n")
    assert shown == marked
