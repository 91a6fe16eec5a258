"""dlopt.save / dlopt.load: round trips, name keying, atomic writes, rejected files, C++ reader."""

import json
import math
import os
import struct
import zlib

import numpy as np
import pytest

import dlopt
from dlopt import _core
from optim_cases import random_grads

PRELUDE = struct.Struct("<8sIIQQQQQII")


def trained(rng, dtype=np.float32):
    params = {"fc.weight": rng.standard_normal((4, 3)).astype(dtype),
              "fc.bias": rng.standard_normal(4).astype(dtype),
              "emb": rng.standard_normal((5, 2)).astype(dtype)}
    opt = dlopt.optim.Adam([{"params": [params["fc.weight"], params["fc.bias"]]},
                            {"params": [params["emb"]], "lr": 0.1}], lr=0.01, amsgrad=True)
    for _ in range(3):
        opt.step(random_grads(rng, list(params.values())))
    return params, opt


def files_in(d):
    return sorted(os.listdir(d))


def test_round_trip_preserves_values_and_types(tmp_path):
    rng = np.random.default_rng(0)
    params, opt = trained(rng)
    extra = {"epoch": 3, "best": math.inf, "worst": -math.inf, "nan": math.nan,
             "pair": (1, 2.5), "by_int": {0: "a", 7: [1, None, True]}, "__odd": 1,
             "scalar": np.float32(1.5), "ints": np.arange(6, dtype=np.int64).reshape(2, 3),
             "flags": np.array([True, False]), "empty": np.zeros((0, 3), np.float64),
             "be": np.arange(3, dtype=">f8"), "text": "héllo"}
    path = tmp_path / "ckpt.dlopt"
    dlopt.save(path, optimizer=opt, params=params, extra=extra)
    assert files_in(tmp_path) == ["ckpt.dlopt"]
    ckpt = dlopt.load(path)
    assert set(ckpt) >= {"optimizer", "params", "extra"}
    sd = opt.state_dict()
    assert ckpt["optimizer"]["param_groups"] == sd["param_groups"]
    assert type(ckpt["optimizer"]["param_groups"][0]["betas"]) is tuple
    assert ckpt["optimizer"]["state"].keys() == sd["state"].keys()
    for i in sd["state"]:
        for k, v in sd["state"][i].items():
            got = ckpt["optimizer"]["state"][i][k]
            if isinstance(v, np.ndarray):
                assert got.dtype == v.dtype
                np.testing.assert_array_equal(got, v)
            else:
                assert got == v and type(got) is type(v)
    for name, a in params.items():
        np.testing.assert_array_equal(ckpt["params"][name], a)
        assert ckpt["params"][name].dtype == a.dtype
    e = ckpt["extra"]
    assert e["epoch"] == 3 and e["best"] == math.inf and e["worst"] == -math.inf
    assert math.isnan(e["nan"]) and e["pair"] == (1, 2.5) and e["__odd"] == 1
    assert e["by_int"] == {0: "a", 7: [1, None, True]} and e["text"] == "héllo"
    assert e["scalar"] == np.float32(1.5) and type(e["scalar"]) is np.float32
    np.testing.assert_array_equal(e["ints"], extra["ints"])
    np.testing.assert_array_equal(e["flags"], extra["flags"])
    assert e["empty"].shape == (0, 3)
    np.testing.assert_array_equal(e["be"], [0.0, 1.0, 2.0])


def test_arrays_are_64_byte_aligned_and_header_is_json(tmp_path):
    rng = np.random.default_rng(1)
    params, opt = trained(rng)
    path = tmp_path / "c.dlopt"
    dlopt.save(path, optimizer=opt, params=params)
    raw = path.read_bytes()
    magic, version, _, toff, tsize, hsize, doff, fsize, _, _ = PRELUDE.unpack(raw[:64])
    assert magic == b"DLOPTCKP" and version == 1 and fsize == len(raw) and doff % 64 == 0
    header = json.loads(raw[toff + tsize:toff + tsize + hsize])
    assert header["format"] == "dlopt-checkpoint" and header["optimizer_keys"] == "name"
    assert header["types"] == {"optimizer": "Adam"}
    assert set(header["contents"]["optimizer"]["state"]) == set(params)
    _, _, arrays = _core.read_checkpoint(str(path))
    assert len(arrays) == 3 + 3 * 3  # params + exp_avg, exp_avg_sq, max_exp_avg_sq each


def test_optimizer_state_follows_names_when_order_differs(tmp_path):
    rng = np.random.default_rng(2)
    params, opt = trained(rng)
    path = tmp_path / "c.dlopt"
    dlopt.save(path, optimizer=opt, params=params)
    # the same model, its optimizer listing the first group's parameters in the other order
    fresh = {k: np.zeros_like(v) for k, v in params.items()}
    opt2 = dlopt.optim.Adam([{"params": [fresh["fc.bias"], fresh["fc.weight"]]},
                             {"params": [fresh["emb"]], "lr": 0.1}], lr=0.01, amsgrad=True)
    dlopt.load(path, optimizer=opt2, params=fresh)
    np.testing.assert_array_equal(opt2.state[0]["exp_avg"], opt.state[1]["exp_avg"])
    np.testing.assert_array_equal(opt2.state[1]["exp_avg"], opt.state[0]["exp_avg"])
    for k in params:
        np.testing.assert_array_equal(fresh[k], params[k])


def test_crash_mid_save_leaves_previous_checkpoint(tmp_path, monkeypatch):
    rng = np.random.default_rng(3)
    params, opt = trained(rng)
    path = tmp_path / "c.dlopt"
    dlopt.save(path, optimizer=opt, params=params)
    before = path.read_bytes()
    opt.step(random_grads(rng, list(params.values())))

    def crash(fd):
        raise OSError("simulated crash before the data reached the disk")

    monkeypatch.setattr(os, "fsync", crash)
    with pytest.raises(OSError, match="simulated"):
        dlopt.save(path, optimizer=opt, params=params)
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert files_in(tmp_path) == ["c.dlopt"]  # no temporary file left behind
    with pytest.raises(TypeError, match="cannot save"):
        dlopt.save(path, extra={"x": object()})
    assert path.read_bytes() == before


def rewrite_prelude(raw, **fields):
    names = ["magic", "version", "flags", "toff", "tsize", "hsize", "doff", "fsize", "mcrc", "pcrc"]
    values = dict(zip(names, PRELUDE.unpack(raw[:64])))
    values.update(fields)
    prelude = PRELUDE.pack(*[values[n] for n in names])[:60]
    prelude += struct.pack("<I", zlib.crc32(prelude))
    return prelude + raw[64:]


@pytest.fixture
def saved(tmp_path):
    rng = np.random.default_rng(4)
    params, opt = trained(rng)
    path = tmp_path / "c.dlopt"
    dlopt.save(path, optimizer=opt, params=params)
    return path, path.read_bytes(), params, opt


@pytest.mark.parametrize("reader", ["python", "cpp"])
def test_rejected_files(saved, reader, tmp_path):
    path, raw, _, _ = saved
    _, tsize, hsize = PRELUDE.unpack(raw[:64])[3:6]
    read = (lambda p: dlopt.load(p)) if reader == "python" else (lambda p: _core.read_checkpoint(str(p)))
    bad = tmp_path / "bad.dlopt"
    cases = {
        "truncated": [raw[:len(raw) - 1], raw[:100], raw[:10], b""],
        "bad magic": [b"NOTADLOPT" + raw[9:]],
        "prelude checksum": [raw[:20] + bytes([raw[20] ^ 1]) + raw[21:]],
        "header checksum": [raw[:64 + tsize + 5] + b"X" + raw[64 + tsize + 6:]],
        "checksum mismatch in array": [raw[:-3] + bytes([raw[-3] ^ 0x10]) + raw[-2:]],
        "format version 2": [rewrite_prelude(raw, version=2)],
        "expected": [raw + b"\0"],
    }
    for why, contents in cases.items():
        for data in contents:
            bad.write_bytes(data)
            with pytest.raises(dlopt.CheckpointError) as info:
                read(bad)
            msg = str(info.value)
            assert any(w in msg for w in (why, "truncated", "magic")), (why, msg)
    assert issubclass(dlopt.CheckpointError, ValueError)


def test_mismatched_targets_are_rejected_and_nothing_changes(saved):
    path, _, params, opt = saved
    rng = np.random.default_rng(5)
    fresh = {k: rng.standard_normal(v.shape).astype(v.dtype) for k, v in params.items()}
    opt2 = dlopt.optim.Adam([{"params": [fresh["fc.weight"], fresh["fc.bias"]]},
                             {"params": [fresh["emb"]], "lr": 0.1}], lr=0.01, amsgrad=True)
    opt2.step(random_grads(rng, list(fresh.values())))

    def snapshot():
        return ({k: v.copy() for k, v in fresh.items()}, opt2.state_dict())

    def same(a, b):
        for k in a[0]:
            np.testing.assert_array_equal(a[0][k], b[0][k])
        assert a[1]["param_groups"] == b[1]["param_groups"]
        for i in a[1]["state"]:
            for k, v in a[1]["state"][i].items():
                np.testing.assert_array_equal(v, b[1]["state"][i][k])

    before = snapshot()
    bad_cases = [
        (dict(params={**fresh, "extra": np.zeros(2, np.float32)}), "missing"),
        (dict(params={k: v for k, v in fresh.items() if k != "emb"}), "unexpected"),
        (dict(params={**fresh, "emb": np.zeros((2, 5), np.float32)}), "emb"),
        (dict(params={**fresh, "emb": np.zeros((5, 2), np.float64)}), "float64"),
        (dict(optimizer=dlopt.optim.SGD(list(fresh.values()))), "Adam, not a SGD"),
        (dict(optimizer=dlopt.optim.Adam([fresh["emb"]]), params=fresh), "param"),
        (dict(optimizer=opt2, params=fresh, scheduler=opt2), "scheduler"),
    ]
    for kwargs, msg in bad_cases:
        with pytest.raises((dlopt.CheckpointError, ValueError), match=msg):
            dlopt.load(path, **kwargs)
        same(before, snapshot())

    # a failing load_state_dict (after the optimizer was loaded) rolls everything back
    class Broken:
        def state_dict(self):
            return {}

        def load_state_dict(self, sd):
            raise ValueError("broken model")

    dlopt.save(path, optimizer=opt, params=params, model={"w": 1})
    with pytest.raises(dlopt.CheckpointError, match="broken model"):
        dlopt.load(path, optimizer=opt2, params=fresh, model=Broken())
    same(before, snapshot())
    # the good case loads everything
    dlopt.load(path, optimizer=opt2, params=fresh)
    for k in params:
        np.testing.assert_array_equal(fresh[k], params[k])


def test_optimizer_state_dtype_mismatch_rejected(tmp_path):
    rng = np.random.default_rng(6)
    params, opt = trained(rng, dtype=np.float64)
    path = tmp_path / "c.dlopt"
    dlopt.save(path, optimizer=opt)  # not keyed by name: no params given
    p32 = [v.astype(np.float32) for v in params.values()]
    opt32 = dlopt.optim.Adam([{"params": p32[:2]}, {"params": p32[2:], "lr": 0.1}], lr=0.01,
                             amsgrad=True)
    with pytest.raises(dlopt.CheckpointError, match="float64"):
        dlopt.load(path, optimizer=opt32)
    assert opt32.state == {}


def test_cpp_reader_reads_python_files_and_python_reads_cpp_files(tmp_path):
    rng = np.random.default_rng(7)
    params, opt = trained(rng)
    path = tmp_path / "c.dlopt"
    dlopt.save(path, optimizer=opt, params=params)
    version, header, arrays = _core.read_checkpoint(str(path))
    assert version == 1
    assert json.loads(header)["format"] == "dlopt-checkpoint"
    by_name = {name: np.frombuffer(data.tobytes(), dtype=dtype).reshape(shape)
               for name, dtype, shape, data in arrays}
    for name, a in params.items():
        np.testing.assert_array_equal(by_name[f"params/{name}"], a)
    np.testing.assert_array_equal(by_name["optimizer/state/emb/exp_avg"], opt.state[2]["exp_avg"])

    cpp_path = tmp_path / "from_cpp.dlopt"
    named = {"w": rng.standard_normal((3, 4)).astype(np.float32), "b \"q\"": np.arange(5.0)}
    _core.write_checkpoint(str(cpp_path), named)
    assert files_in(tmp_path) == ["c.dlopt", "from_cpp.dlopt"]
    ckpt = dlopt.load(cpp_path)
    assert set(ckpt) == {"params"}
    for k, v in named.items():
        np.testing.assert_array_equal(ckpt["params"][k], v)
        assert ckpt["params"][k].dtype == v.dtype


def test_io_errors_are_oserrors_and_the_format_rules_are_the_cpp_ones(tmp_path):
    """The file is read and written by dlopt::read_checkpoint / write_checkpoint: a failed system
    call is the OSError of its errno, as before; which dtypes a checkpoint stores is C++'s rule."""
    with pytest.raises(FileNotFoundError, match="missing.dlopt"):
        dlopt.load(tmp_path / "missing.dlopt")
    with pytest.raises(IsADirectoryError):
        dlopt.load(tmp_path)
    with pytest.raises(FileNotFoundError):
        dlopt.save(tmp_path / "no" / "such" / "dir.dlopt", extra={"x": 1})
    with pytest.raises(TypeError, match="cannot be saved"):
        dlopt.save(tmp_path / "c.dlopt", extra={"u": np.array(["text"])})
    assert files_in(tmp_path) == []
    assert [_core.checkpoint_itemsize(t) for t in ("<f4", "|b1", "bfloat16", "<U1", ">f8")] == [4, 1, 2, 0, 0]
    # the same message from dlopt.load and the C++ reader
    path = tmp_path / "c.dlopt"
    dlopt.save(path, extra={"x": np.arange(3.0)})
    path.write_bytes(path.read_bytes()[:-1])
    messages = []
    for read in (dlopt.load, lambda p: _core.read_checkpoint(str(p))):
        with pytest.raises(dlopt.CheckpointError) as info:
            read(path)
        messages.append(str(info.value))
    assert messages[0] == messages[1] and "truncated" in messages[0]
