"""The API documentation: every module's docstring examples run, and every public class and function
documents each argument of its signature with the signature's default (numpydoc sections)."""

import doctest
import importlib
import inspect
import pkgutil

import pytest

import dlopt

numpydoc = pytest.importorskip("numpydoc.docscrape")

# Modules whose doctests need an optional package.
_NEEDS = {"dlopt.torch": "torch"}
# dlopt.distributed's examples need MPI: tests/mpi/test_doctests.py runs them under mpirun.
MODULES = sorted(
    m.name for m in pkgutil.walk_packages(dlopt.__path__, "dlopt.")
    if m.name != "dlopt.__main__" and not m.name.startswith("dlopt.distributed")
)

# The public surface whose classes and functions must have numpydoc sections (their __all__).
DOCUMENTED = ["dlopt", "dlopt.optim", "dlopt.lr_scheduler", "dlopt.clip", "dlopt.averaging", "dlopt.checkpoint",
              "dlopt.linear_model", "dlopt.metrics", "dlopt.datasets", "dlopt.cuda", "dlopt.distributed",
              "dlopt.torch", "dlopt.cli"]


def _available(module):
    need = _NEEDS.get(module)
    if need is None:
        return True
    try:
        importlib.import_module(need)
    except ImportError:
        return False
    return True


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name):
    if not _available(name):
        pytest.skip(f"{name} needs {_NEEDS[name]}")
    module = importlib.import_module(name)
    finder = doctest.DocTestFinder()
    runner = doctest.DocTestRunner(optionflags=doctest.NORMALIZE_WHITESPACE | doctest.ELLIPSIS)
    for test in finder.find(module, name):
        runner.run(test)
    result = runner.summarize(verbose=False)
    assert result.failed == 0


def _public(module_name):
    """The module's public classes and functions, except exceptions and warnings (documented where
    they are raised) and the classes of the compiled module (documented by their bindings)."""
    if not _available(module_name):
        return
    module = importlib.import_module(module_name)
    for name in module.__all__:
        obj = getattr(module, name)
        if inspect.isclass(obj) and issubclass(obj, BaseException):
            continue
        if getattr(obj, "__module__", "").startswith("dlopt._core"):
            continue
        if inspect.isclass(obj) or inspect.isfunction(obj):
            yield f"{module_name}.{name}", obj


PUBLIC = [pytest.param(obj, id=qualname) for module in DOCUMENTED for qualname, obj in _public(module)]


def _signature(obj):
    """The documented arguments: the class's __init__ or the function's, minus self / *args / **kwargs."""
    sig = inspect.signature(obj.__init__ if inspect.isclass(obj) else obj)
    return {name: p for name, p in sig.parameters.items()
            if name not in ("self", "cls") and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)}


def _documented_default(kind):
    """The value after 'default' in a numpydoc type field ('float, default 1e-3'), or a sentinel."""
    head, sep, text = kind.rpartition("default")
    if not sep:
        return inspect.Parameter.empty
    return eval(text.strip(" :=,"), {"__builtins__": {}}, {})  # a literal, or one like 1.0 / 3


def _methods():
    """The public methods the public classes (and their bases in dlopt) define, each once."""
    seen = set()
    for _, cls in PUBLIC_OBJECTS:
        if not inspect.isclass(cls):
            continue
        for klass in cls.__mro__:
            if not klass.__module__.startswith("dlopt"):
                continue
            for name, attribute in vars(klass).items():
                if name.startswith("_") or not inspect.isfunction(attribute) or attribute in seen:
                    continue
                seen.add(attribute)
                yield pytest.param(attribute, id=f"{klass.__module__}.{klass.__qualname__}.{name}")


PUBLIC_OBJECTS = [(qualname, obj) for module in DOCUMENTED for qualname, obj in _public(module)]
METHODS = list(_methods())


@pytest.mark.parametrize("method", METHODS)
def test_every_method_documents_its_arguments(method):
    doc = numpydoc.FunctionDoc(method)
    assert doc["Summary"], "no summary line"
    _check_parameters(method, doc)


@pytest.mark.parametrize("obj", PUBLIC)
def test_every_argument_is_documented_with_its_default(obj):
    doc = numpydoc.ClassDoc(obj, config={"show_class_members": False}) if inspect.isclass(obj) \
        else numpydoc.FunctionDoc(obj)
    assert doc["Summary"], "no summary line"
    assert doc["Examples"], "no Examples section"
    _check_parameters(obj, doc)


def _check_parameters(obj, doc):
    """Each argument of the signature has an entry, and each entry's default is the signature's."""
    documented = {}
    for param in doc["Parameters"]:
        for name in param.name.split(","):
            if not name.strip().startswith("*"):  # **kwargs: documented, not a signature argument
                documented[name.strip()] = param
    signature = _signature(obj)
    missing = set(signature) - set(documented)
    assert not missing, f"arguments without a Parameters entry: {sorted(missing)}"
    for name, param in documented.items():
        if name in ("foreach", "fused", "capturable", "differentiable"):
            continue  # torch's switches: accepted through the wrapper, documented once
        assert name in signature, f"documented argument {name!r} is not in the signature"
        assert param.desc, f"{name}: no description"
        default = signature[name].default
        written = _documented_default(param.type)
        if default is inspect.Parameter.empty:
            assert written is inspect.Parameter.empty, f"{name}: documents a default, but has none"
        else:
            if default is None and written is inspect.Parameter.empty and "optional" in param.type:
                continue  # numpydoc's "optional": the default is None
            assert written is not inspect.Parameter.empty, f"{name}: the default {default!r} is not documented"
            assert written == default, f"{name}: documented default {written!r}, signature {default!r}"


COMPILED = [pytest.param(getattr(dlopt, name), id=f"dlopt.{name}") for name in dlopt.__all__
            if inspect.isbuiltin(getattr(dlopt, name))]


@pytest.mark.parametrize("function", COMPILED)
def test_compiled_functions_have_numpydoc_sections(function):
    """pybind11 puts the signature first ("name(n: int) -> None"), then the docstring."""
    signature, _, text = function.__doc__.partition("\n\n")
    arguments = [a.split(":")[0].strip() for a in signature[signature.index("(") + 1: signature.rindex(")")].split(",")
                 if a.strip()]
    doc = numpydoc.NumpyDocString(text)
    assert doc["Summary"] and doc["Examples"]
    assert [p.name for p in doc["Parameters"]] == arguments


def _exceptions_and_compiled_classes():
    """The public exceptions, warnings and compiled classes that dlopt defines (not scikit-learn's
    classes re-exported when it is installed), each once."""
    seen = set()
    for module_name in DOCUMENTED:
        if not _available(module_name):
            continue
        module = importlib.import_module(module_name)
        for name in module.__all__:
            obj = getattr(module, name)
            if not inspect.isclass(obj) or obj in seen or not obj.__module__.startswith("dlopt"):
                continue
            if issubclass(obj, BaseException) or obj.__module__.startswith("dlopt._core"):
                seen.add(obj)
                yield pytest.param(obj, id=f"{module_name}.{name}")


@pytest.mark.parametrize("cls", list(_exceptions_and_compiled_classes()))
def test_exceptions_and_compiled_classes_have_numpydoc_sections(cls):
    """Documented where they are defined (a binding's docstring for the compiled ones), with an example
    that runs (the doctests of their modules, dlopt._core's included)."""
    doc = numpydoc.NumpyDocString(inspect.getdoc(cls))
    assert doc["Summary"], "no summary line"
    assert doc["Examples"], "no Examples section"


def test_exceptions_and_compiled_classes_are_checked():
    """The list above holds the classes issue 17 names (a filter that found none would pass vacuously)."""
    names = {p.values[0].__name__ for p in _exceptions_and_compiled_classes()}
    assert {"DeviceArray", "CheckpointError", "NotFittedError"} <= names
