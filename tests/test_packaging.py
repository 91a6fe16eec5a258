"""Packaging: one version everywhere, typing markers and a stub of the compiled module that matches it."""

import ast
import importlib.metadata
from pathlib import Path

import dlopt
from dlopt import _core

PACKAGE = Path(dlopt.__file__).parent


def test_one_version_everywhere():
    # python/dlopt/_version.py is read by pyproject.toml (the wheel's metadata) and CMakeLists.txt (_core).
    assert dlopt.__version__ == _core.__version__ == importlib.metadata.version("dlopt")


def test_runtime_dependencies_are_declared():
    requires = importlib.metadata.requires("dlopt") or []
    names = {r.split(";")[0].split(">")[0].split("=")[0].strip().lower().replace("-", "_") for r in requires
             if "extra ==" not in r}
    assert {"numpy", "ml_dtypes"} <= names


def test_package_is_typed_and_stubs_the_compiled_module():
    assert (PACKAGE / "py.typed").is_file()
    assert (PACKAGE / "_core.pyi").is_file()


def test_core_stub_names_match_the_compiled_module():
    """The stub declares exactly the module's public names (scripts/update_stubs.sh regenerates it)."""
    tree = ast.parse((PACKAGE / "_core.pyi").read_text())
    declared = set()
    for node in tree.body:
        if isinstance(node, (ast.ClassDef, ast.FunctionDef)):
            declared.add(node.name)
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            declared.add(node.target.id)
        elif isinstance(node, ast.Assign):
            declared.update(t.id for t in node.targets if isinstance(t, ast.Name))
    public = {name for name in dir(_core) if not name.startswith("_")}
    declared = {name for name in declared if not name.startswith("_")}
    assert declared == public, (f"missing from the stub: {sorted(public - declared)}; "
                                f"not in the module: {sorted(declared - public)}; run scripts/update_stubs.sh")


def test_changelog_has_this_version():
    changelog = PACKAGE.parent.parent / "CHANGELOG.md"
    if changelog.is_file():  # a source checkout (an installed wheel has no CHANGELOG next to it)
        assert f"## [{dlopt.__version__}]" in changelog.read_text(), "CHANGELOG.md has no entry for this version"
