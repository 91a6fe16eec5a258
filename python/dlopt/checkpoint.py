r"""Checkpoints: ``dlopt.save`` / ``dlopt.load``, a documented binary format without pickle.

A file holds a JSON header (a tree of plain values, in which every NumPy array is replaced by a
reference to a named entry of an array table) and the raw array data, 64-byte aligned, with
CRC-32 checksums of every part; see ``docs/checkpoint-format.md``. This module turns Python
values into that tree and back; the file itself -- its layout, every check on reading, the atomic
write and the error messages -- is the C++ ``dlopt::read_checkpoint`` / ``write_checkpoint``
(``dlopt/checkpoint.hpp``), called through ``_core``.
"""

from __future__ import annotations

import json
import math
import os
from typing import Any, Mapping

import ml_dtypes
import numpy as np

from . import _core

_BFLOAT16 = np.dtype(ml_dtypes.bfloat16)


def _dtype_token(dtype: np.dtype) -> str:
    """The dtype as the array table names it: little-endian ``dtype.str``, or ``bfloat16``."""
    return "bfloat16" if dtype == _BFLOAT16 else dtype.newbyteorder("<").str


def _dtype_from_token(token: str) -> np.dtype:
    return _BFLOAT16 if token == "bfloat16" else np.dtype(token)


def _savable(dtype: np.dtype) -> bool:
    """Whether the format stores this dtype (the C++ writer's rule, ``checkpoint_itemsize``)."""
    return dtype.fields is None and _core.checkpoint_itemsize(_dtype_token(dtype)) == dtype.itemsize

__all__ = ["save", "load", "CheckpointError", "FORMAT_VERSION"]

# Raised for a truncated, corrupted, wrong-version or mismatched checkpoint (a ValueError); documented
# by its binding (python/bindings/train.cpp).
CheckpointError = _core.CheckpointError

FORMAT_VERSION = 1

#: Deepest tree `save` writes and `load` decodes; deeper is refused, not a RecursionError.
_MAX_DEPTH = 200


# -- the tree <-> JSON + arrays -------------------------------------------------------------------


class _Encoder:
    """Turns a tree of plain values and arrays into JSON-ready values plus a list of arrays."""

    def __init__(self) -> None:
        self.arrays: list[tuple[str, str, np.ndarray]] = []
        self._names: set[str] = set()

    def _add(self, path: str, a: np.ndarray) -> str:
        if not _savable(a.dtype):
            raise TypeError(f"{path}: arrays of dtype {a.dtype} cannot be saved (numbers only)")
        name, n = path, 1
        while name in self._names:
            name, n = f"{path}#{n}", n + 1
        self._names.add(name)
        little = a.dtype if a.dtype == _BFLOAT16 else a.dtype.newbyteorder("<")
        self.arrays.append((name, _dtype_token(a.dtype), a.astype(little, order="C", copy=False)))
        return name

    def encode(self, value: Any, path: str, depth: int = 0) -> Any:
        if depth > _MAX_DEPTH:
            raise ValueError(f"{path}: nested deeper than {_MAX_DEPTH} levels, which load refuses")
        if isinstance(value, np.ndarray):
            return {"__array__": self._add(path, value)}
        if isinstance(value, np.generic):
            if isinstance(value, (np.str_, np.bytes_)) or not _savable(value.dtype):
                return self.encode(value.item(), path, depth)
            return {"__scalar__": self._add(path, np.asarray(value))}
        if value is None or isinstance(value, (bool, str)):
            return value
        if isinstance(value, int):
            return int(value)
        if isinstance(value, float):
            if math.isfinite(value):
                return float(value)
            return {"__float__": "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")}
        if isinstance(value, tuple):
            return {"__tuple__": [self.encode(v, f"{path}/{i}", depth + 1) for i, v in enumerate(value)]}
        if isinstance(value, list):
            return [self.encode(v, f"{path}/{i}", depth + 1) for i, v in enumerate(value)]
        if isinstance(value, Mapping):
            if all(isinstance(k, str) and not k.startswith("__") for k in value):
                return {k: self.encode(v, f"{path}/{k}", depth + 1) for k, v in value.items()}
            items = []
            for k, v in value.items():
                if not isinstance(k, (str, int, bool)) and k is not None:
                    raise TypeError(f"{path}: dict keys must be str or int, got {type(k).__name__}")
                items.append([k, self.encode(v, f"{path}/{k}", depth + 1)])
            return {"__dict__": items}
        raise TypeError(f"{path}: cannot save a value of type {type(value).__name__} "
                        "(plain values, lists, tuples, dicts and NumPy arrays only)")


def _decode(value: Any, arrays: dict[str, np.ndarray], depth: int = 0) -> Any:
    """The header tree back to Python values; any malformed tag is a CheckpointError."""
    def bad(why: str) -> CheckpointError:
        return CheckpointError(f"corrupted checkpoint: {why}")

    if depth > _MAX_DEPTH:
        raise bad(f"header nested deeper than {_MAX_DEPTH} levels")
    if isinstance(value, list):
        return [_decode(v, arrays, depth + 1) for v in value]
    if not isinstance(value, dict):
        return value
    if len(value) == 1:
        (tag, inner), = value.items()
        if tag in ("__array__", "__scalar__"):
            if not isinstance(inner, str) or inner not in arrays:
                raise bad(f"header refers to missing array {inner!r}")
            if tag == "__scalar__" and arrays[inner].ndim != 0:
                raise bad(f"scalar {inner!r} is not a 0-d array")
            return arrays[inner] if tag == "__array__" else arrays[inner][()]
        if tag == "__tuple__":
            if not isinstance(inner, list):
                raise bad(f"__tuple__ holds {type(inner).__name__}, not a list")
            return tuple(_decode(v, arrays, depth + 1) for v in inner)
        if tag == "__float__":
            if inner not in ("inf", "-inf", "nan"):
                raise bad(f"__float__ holds {inner!r}, not 'inf', '-inf' or 'nan'")
            return float(inner)
        if tag == "__dict__":
            if not isinstance(inner, list) or not all(
                    isinstance(kv, list) and len(kv) == 2 and
                    (kv[0] is None or isinstance(kv[0], (str, int, bool))) for kv in inner):
                raise bad("__dict__ holds something other than [key, value] pairs")
            return {k: _decode(v, arrays, depth + 1) for k, v in inner}
    return {k: _decode(v, arrays, depth + 1) for k, v in value.items()}


# -- optimizer state keyed by parameter name ------------------------------------------------------


def _flat_params(obj: Any) -> list[np.ndarray] | None:
    groups = getattr(obj, "param_groups", None)
    if groups is None:
        return None
    return [p for g in groups for p in g["params"]]


def _same_array(a: np.ndarray, b: np.ndarray) -> bool:
    return a is b or (a.shape == b.shape and a.dtype == b.dtype and a.size > 0
                      and a.__array_interface__["data"][0] == b.__array_interface__["data"][0])


def _names_for(params: list[np.ndarray], named: Mapping[str, np.ndarray]) -> list[str] | None:
    """The name of each optimizer parameter in `named`, or None if some have none."""
    names = []
    for p in params:
        hit = [n for n, a in named.items() if _same_array(p, a)]
        if len(hit) != 1:
            return None
        names.append(hit[0])
    return names if len(set(names)) == len(names) else None


def _is_torch_layout(sd: Any) -> bool:
    return isinstance(sd, dict) and isinstance(sd.get("state"), dict) and \
        isinstance(sd.get("param_groups"), list)


def _key_by_name(sd: dict, names: list[str]) -> dict:
    out = dict(sd)
    out["state"] = {names[int(i)]: s for i, s in sd["state"].items()}
    out["param_groups"] = [{**g, "params": [names[int(i)] for i in g["params"]]}
                           for g in sd["param_groups"]]
    return out


def _key_by_index(sd: dict, current: list[str] | None) -> dict:
    """Back to torch's index keys: by the saved order, or by `current` names (the target's)."""
    groups = sd["param_groups"]
    if current is None:
        order = [n for g in groups for n in g["params"]]
        index = {n: i for i, n in enumerate(order)}
        new_groups, start = [], 0
        for g in groups:
            new_groups.append({**g, "params": list(range(start, start + len(g["params"])))})
            start += len(g["params"])
    else:
        index = {n: i for i, n in enumerate(current)}
        new_groups = [{**g, "params": [index[n] for n in g["params"]]} for g in groups]
    return {**sd, "param_groups": new_groups,
            "state": {index[n]: s for n, s in sd["state"].items()}}


# -- writing --------------------------------------------------------------------------------------


def _state_of(obj: Any, what: str) -> Any:
    if obj is None or isinstance(obj, dict):
        return obj
    if hasattr(obj, "state_dict"):
        return obj.state_dict()
    raise TypeError(f"{what}: expected an object with state_dict() or a dict, got {type(obj).__name__}")


def save(path: str | os.PathLike, *, optimizer: Any = None, scheduler: Any = None,
         model: Any = None, params: Mapping[str, np.ndarray] | None = None,
         extra: Mapping[str, Any] | None = None) -> None:
    r"""Writes a checkpoint atomically: a crash mid-save leaves the previous file intact.

    ``optimizer``, ``scheduler`` and ``model`` are objects with ``state_dict()`` (or such dicts);
    ``params`` maps names to arrays (the model's parameters); ``extra`` holds anything else made
    of plain values and arrays (an :class:`~dlopt.EMA`'s ``state_dict()``, the epoch, ...).
    Where every optimizer parameter is one of the named ``params`` (the same array), the
    optimizer's state is stored keyed by parameter name.

    The file is written to a temporary file in the same directory, flushed, fsynced and renamed
    over ``path``; the directory is then fsynced.

    Parameters
    ----------
    path : str or os.PathLike
        The checkpoint file (docs/checkpoint-format.md describes it).
    optimizer : object or dict, optional
        An optimizer (or anything with ``state_dict()``), or its state dict.
    scheduler : object or dict, optional
        A learning-rate scheduler, or its state dict.
    model : object or dict, optional
        A model (a linear model, say), or its state dict.
    params : dict of str to numpy.ndarray, optional
        The model's parameters by name.
    extra : dict, optional
        Anything else made of plain values (numbers, strings, lists, dicts, ``None``) and arrays.

    Raises
    ------
    TypeError
        ``params`` is not a dict of names to NumPy arrays, or a value that the format cannot hold.
    OSError
        The file cannot be written (the previous file, if any, is left as it was).

    Examples
    --------
    >>> import numpy as np, dlopt, tempfile, os
    >>> w = np.arange(3, dtype=np.float32)
    >>> opt = dlopt.optim.Adam([w], lr=0.1); opt.step([np.ones(3, np.float32)])
    >>> path = os.path.join(tempfile.mkdtemp(), "ckpt.dlopt")
    >>> dlopt.save(path, optimizer=opt, params={"w": w})
    >>> ckpt = dlopt.load(path)
    >>> sorted(ckpt["optimizer"]["state"][0]), ckpt["params"]["w"].dtype
    (['exp_avg', 'exp_avg_sq', 'step'], dtype('float32'))
    """
    if params is not None:
        if not isinstance(params, Mapping):
            raise TypeError(f"params: expected a dict of name -> array, got {type(params).__name__}")
        for name, a in params.items():
            if not isinstance(name, str):
                raise TypeError(f"params: names must be strings, got {name!r}")
            if not isinstance(a, np.ndarray):
                raise TypeError(f"params[{name!r}]: expected a numpy.ndarray, got {type(a).__name__}")
    contents: dict[str, Any] = {}
    types: dict[str, str] = {}
    keyed_by_name = None
    for key, obj in (("optimizer", optimizer), ("scheduler", scheduler), ("model", model)):
        if obj is None:
            continue
        contents[key] = _state_of(obj, key)
        if not isinstance(obj, dict):
            types[key] = type(obj).__name__
    opt_params = _flat_params(optimizer)
    if params and opt_params is not None and _is_torch_layout(contents["optimizer"]):
        keyed_by_name = _names_for(opt_params, params)
        if keyed_by_name is not None:
            contents["optimizer"] = _key_by_name(contents["optimizer"], keyed_by_name)
    if params is not None:
        contents["params"] = dict(params)
    if extra is not None:
        contents["extra"] = dict(extra)

    enc = _Encoder()
    tree = {k: enc.encode(v, k) for k, v in contents.items()}
    header = {"format": "dlopt-checkpoint", "version": FORMAT_VERSION,
              "writer": f"dlopt {_core.__version__}", "types": types,
              "optimizer_keys": "name" if keyed_by_name is not None else "index",
              "contents": tree}
    header_bytes = json.dumps(header, allow_nan=False, ensure_ascii=False).encode("utf-8")
    _core.write_checkpoint(os.fspath(path), header_bytes, enc.arrays)


def _state_layout(optimizer: Any, saved: Mapping[str, Any], index: int, param: Any) -> dict:
    """The dtype of each state entry of parameter `index` under the saved group's storage options."""
    rule = getattr(optimizer, "_rule", None)
    if rule is None or not isinstance(param, np.ndarray):
        return {}
    for group in saved.get("param_groups", []):
        if index in group.get("params", []):
            return dict(_core.state_layout(rule, group, param))
    return {}


# -- reading --------------------------------------------------------------------------------------


def _read(path: str) -> tuple[dict, dict[str, np.ndarray]]:
    """The C++ reader (every check of the format), then the JSON header parsed."""
    _, meta, table = _core.read_checkpoint(path)
    arrays = {name: data.view(_dtype_from_token(dtype)).reshape(tuple(shape))
              for name, dtype, shape, data in table}
    try:
        header = json.loads(meta.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CheckpointError(f"corrupted checkpoint {path!r}: header is not JSON ({e})") from None
    except RecursionError:
        raise CheckpointError(f"corrupted checkpoint {path!r}: header nested too deeply") from None
    if not isinstance(header, dict) or header.get("format") != "dlopt-checkpoint":
        raise CheckpointError(f"corrupted checkpoint {path!r}: header does not describe a dlopt "
                              "checkpoint")
    for key in ("contents", "types"):
        if not isinstance(header.get(key, {}), dict):
            raise CheckpointError(f"corrupted checkpoint {path!r}: header's {key!r} is not an object")
    return header, arrays


def _check_named_layout(path: str, sd: dict) -> None:
    """An optimizer state keyed by parameter name: groups list names, state is keyed by them."""
    names = []
    for g in sd["param_groups"]:
        if not isinstance(g, dict) or not isinstance(g.get("params"), list) or \
                not all(isinstance(n, str) for n in g["params"]):
            raise CheckpointError(f"corrupted checkpoint {path!r}: an optimizer param group does "
                                  "not list parameter names")
        names += g["params"]
    if len(set(names)) != len(names) or not set(sd["state"]) <= set(names):
        raise CheckpointError(f"corrupted checkpoint {path!r}: optimizer state is keyed by names "
                              "its param groups do not list once each")


def load(path: str | os.PathLike, *, optimizer: Any = None, scheduler: Any = None,
         model: Any = None, params: Mapping[str, np.ndarray] | None = None,
         strict: bool = True) -> dict[str, Any]:
    r"""Reads a checkpoint; optionally restores it into the given objects, all or nothing.

    Returns ``{"optimizer", "scheduler", "model", "params", "extra"}`` (the keys that were saved):
    what each ``load_state_dict`` takes (the optimizer's state keyed by index, as torch) and the
    named arrays. The whole file is verified first (size, version, every checksum): a truncated,
    corrupted or wrong-version file raises :class:`CheckpointError` (a ``ValueError``).

    Given objects, it also restores them: ``params`` (name -> array) are overwritten in place,
    ``optimizer`` / ``scheduler`` / ``model`` get ``load_state_dict``. Everything is checked
    before anything changes: parameter names (all of them, with ``strict``), shapes and dtypes,
    the object types recorded at save time, and the optimizer's parameters (matched by name when
    the state was keyed by name, so the optimizer may list them in another order). If one
    ``load_state_dict`` fails, those already loaded are rolled back.

    Parameters
    ----------
    path : str or os.PathLike
        The checkpoint file.
    optimizer, scheduler, model : object, optional
        Objects to restore with their ``load_state_dict``.
    params : dict of str to numpy.ndarray, optional
        Arrays to overwrite in place with the saved arrays of the same names.
    strict : bool, default True
        Require ``params`` and the saved parameters to have exactly the same names.

    Returns
    -------
    dict
        The saved contents: ``"optimizer"``, ``"scheduler"``, ``"model"``, ``"params"``,
        ``"extra"`` (the keys that were saved).

    Raises
    ------
    CheckpointError
        A truncated, corrupted or wrong-version file, or contents that do not match the objects
        given (names, shapes, dtypes, types); nothing is changed then.
    OSError
        The file cannot be read.

    Examples
    --------
    >>> import numpy as np, dlopt, tempfile, os
    >>> w = np.ones(2, np.float32)
    >>> path = os.path.join(tempfile.mkdtemp(), "w.dlopt")
    >>> dlopt.save(path, params={"w": w}, extra={"epoch": 3})
    >>> w[:] = 0
    >>> dlopt.load(path, params={"w": w})["extra"], w
    ({'epoch': 3}, array([1., 1.], dtype=float32))
    """
    path = os.fspath(path)
    header, arrays = _read(path)
    contents = header.get("contents", {})
    result = {k: _decode(v, arrays) for k, v in contents.items()}
    by_name = header.get("optimizer_keys") == "name" and _is_torch_layout(result.get("optimizer"))
    current_names = None
    if by_name and optimizer is not None and params is not None:
        current_names = _names_for(_flat_params(optimizer) or [], params)
    if by_name:
        _check_named_layout(path, result["optimizer"])
        saved_names = [n for g in result["optimizer"]["param_groups"] for n in g["params"]]
        if current_names is not None:
            _check_optimizer_names(path, result["optimizer"], current_names, optimizer)
        elif optimizer is not None and len(saved_names) != len(_flat_params(optimizer) or []):
            raise CheckpointError(f"checkpoint {path!r}: optimizer has "
                                  f"{len(_flat_params(optimizer) or [])} parameters, checkpoint "
                                  f"has {len(saved_names)}")
        result["optimizer_param_names"] = saved_names
        result["optimizer"] = _key_by_index(result["optimizer"], current_names)
    if any(x is not None for x in (optimizer, scheduler, model, params)):
        _restore(path, header, result, optimizer, scheduler, model, params, strict)
    return result


def _check_optimizer_names(path, sd, current_names, optimizer) -> None:
    groups = optimizer.param_groups
    saved = sd["param_groups"]
    if len(saved) != len(groups):
        raise CheckpointError(f"checkpoint {path!r}: optimizer has {len(groups)} param groups, "
                              f"checkpoint has {len(saved)}")
    start = 0
    for gi, (s, g) in enumerate(zip(saved, groups)):
        here = current_names[start:start + len(g["params"])]
        start += len(g["params"])
        if sorted(here) != sorted(s["params"]):
            raise CheckpointError(
                f"checkpoint {path!r}: param_groups[{gi}] holds {sorted(s['params'])} in the "
                f"checkpoint but {sorted(here)} in the optimizer")


def _restore(path, header, result, optimizer, scheduler, model, params, strict) -> None:
    def mismatch(why: str) -> CheckpointError:
        return CheckpointError(f"checkpoint {path!r} does not match: {why}")

    # 1. Check everything.
    types = header.get("types", {})
    for key, obj in (("optimizer", optimizer), ("scheduler", scheduler), ("model", model)):
        if obj is None:
            continue
        if key not in result:
            raise mismatch(f"it holds no {key} state")
        if key in types and types[key] != type(obj).__name__:
            raise mismatch(f"its {key} is a {types[key]}, not a {type(obj).__name__}")
        if not hasattr(obj, "load_state_dict"):
            raise TypeError(f"{key}: expected an object with load_state_dict(), got "
                            f"{type(obj).__name__}")
    if params is not None:
        saved = result.get("params")
        if saved is None:
            raise mismatch("it holds no named params")
        missing = sorted(set(params) - set(saved))
        unexpected = sorted(set(saved) - set(params))
        if missing or (strict and unexpected):
            raise mismatch(f"missing params {missing}, unexpected params {unexpected}")
        for name, target in params.items():
            src = saved[name]
            if not isinstance(target, np.ndarray):
                raise TypeError(f"params[{name!r}]: expected a numpy.ndarray, got "
                                f"{type(target).__name__}")
            if src.shape != target.shape or src.dtype != target.dtype:
                raise mismatch(f"params[{name!r}] is {src.dtype}{list(src.shape)} in the "
                               f"checkpoint, {target.dtype}{list(target.shape)} here")
            if not target.flags.writeable:
                raise ValueError(f"params[{name!r}]: array is read-only, cannot load into it")

    if optimizer is not None and _is_torch_layout(result["optimizer"]):
        flat = _flat_params(optimizer) or []
        for key, entry in result["optimizer"]["state"].items():
            i = int(key)
            if not 0 <= i < len(flat) or not isinstance(entry, dict):
                raise mismatch(f"optimizer state for parameter {key!r}, which does not exist")
            layout = _state_layout(optimizer, result["optimizer"], i, flat[i])
            rule = getattr(optimizer, "_rule", None)
            shapes = dict(_core.slot_shapes(rule, list(flat[i].shape))) if rule else {}
            for slot, value in entry.items():
                # The file must hold the state as this optimizer stores it (storage: docs/formats.md).
                if not isinstance(value, np.ndarray) or value.ndim == 0:
                    continue
                shape = value.shape if slot.endswith("_scale") else shapes.get(slot, flat[i].shape)
                if value.shape != shape or (slot in layout and value.dtype != layout[slot]):
                    raise mismatch(f"optimizer state[{i}][{slot!r}] is {value.dtype}"
                                   f"{list(value.shape)}, parameter {i} is {flat[i].dtype}"
                                   f"{list(flat[i].shape)}")

    # 2. Load the objects, rolling back on failure; then copy the params (cannot fail now).
    done: list[tuple[Any, Any]] = []
    try:
        for key, obj in (("optimizer", optimizer), ("scheduler", scheduler), ("model", model)):
            if obj is None:
                continue
            before = obj.state_dict()
            obj.load_state_dict(result[key])
            done.append((obj, before))
    except Exception as e:
        for obj, before in reversed(done):
            obj.load_state_dict(before)
        raise mismatch(f"{type(e).__name__}: {e}") from e
    if params is not None:
        for name, target in params.items():
            np.copyto(target, result["params"][name])
