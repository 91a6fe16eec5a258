"""Checkpoints under attack and accident: crafted files whose checksums are valid, file modes, the
temporary files a killed save leaves behind (docs/checkpoint-format.md, docs/reliability.md)."""

import fcntl
import json
import os
import signal
import stat
import struct
import subprocess
import sys
import textwrap
import time
import zlib

import numpy as np
import pytest

import dlopt
from dlopt import _core


def _align(x):
    return (x + 63) // 64 * 64


def craft(header, arrays=(), table_tail=b"", offsets=None):
    """A checkpoint laid out as docs/checkpoint-format.md says, with every checksum right, whatever
    the header and the table claim. arrays: (name, dtype, shape, data bytes, nbytes or None);
    offsets: what the table says instead of where the data lies."""
    header = header if isinstance(header, bytes) else json.dumps(header).encode()
    entries, offsets_at = [struct.pack("<Q", len(arrays))], []
    for name, dtype, shape, data, nbytes in arrays:
        e = struct.pack("<I", len(name)) + name.encode() + struct.pack("<B", len(dtype)) + dtype.encode()
        e += struct.pack("<B", len(shape)) + b"".join(struct.pack("<Q", d) for d in shape)
        offsets_at.append(sum(map(len, entries)) + len(e))
        entries.append(e + struct.pack("<QQI", 0, len(data) if nbytes is None else nbytes, zlib.crc32(data)))
    table = bytearray(b"".join(entries) + table_tail)
    data_offset = _align(64 + len(table) + len(header))
    body, end = b"", data_offset
    for i, ((_, _, _, data, _), at) in enumerate(zip(arrays, offsets_at)):
        end = _align(end)
        table[at:at + 8] = struct.pack("<Q", end if offsets is None else offsets[i])
        body += b"\0" * (end - data_offset - len(body)) + data
        end += len(data)
    meta = bytes(table) + header
    prelude = b"DLOPTCKP" + struct.pack("<IIQQQQQI", 1, 0, 64, len(table), len(header), data_offset, end,
                                        zlib.crc32(meta))
    prelude += struct.pack("<I", zlib.crc32(prelude))
    return prelude + meta + b"\0" * (data_offset - 64 - len(meta)) + body


def header_of(contents, **more):
    return {"format": "dlopt-checkpoint", "version": 1, "writer": "test", "types": {},
            "optimizer_keys": "index", "contents": contents, **more}


def test_the_crafting_helper_writes_files_both_readers_accept(tmp_path):
    path = tmp_path / "c.dlopt"
    w = np.arange(6, dtype="<f4").reshape(2, 3)
    path.write_bytes(craft(header_of({"params": {"w": {"__array__": "params/w"}}}),
                           [("params/w", "<f4", (2, 3), w.tobytes(), None)]))
    np.testing.assert_array_equal(dlopt.load(path)["params"]["w"], w)


@pytest.mark.parametrize("shape", [(2**32, 2**32), (2**63,), (2**62, 4), (2**64 - 1, 0)])
def test_shapes_whose_element_count_overflows_are_rejected(tmp_path, shape):
    # (2**32, 2**32) x 4 bytes wraps to 0 bytes, which an unchecked product would accept.
    path = tmp_path / "c.dlopt"
    path.write_bytes(craft(header_of({}), [("a", "<f4", shape, b"", 0)]))
    with pytest.raises(dlopt.CheckpointError, match="64 bits"):
        _core.read_checkpoint(str(path))
    with pytest.raises(dlopt.CheckpointError, match="64 bits"):
        dlopt.load(path)


@pytest.mark.parametrize("dtype", ["<V4", "|V4", "<M8", "<m8", "|O8", "<U1", "|S4", ">f4", "f4", "<f3"])
def test_dtypes_that_are_not_numbers_are_rejected(tmp_path, dtype):
    path = tmp_path / "c.dlopt"
    path.write_bytes(craft(header_of({}), [("a", dtype, (1,), b"\0" * 4, 4)]))
    with pytest.raises(dlopt.CheckpointError, match="not a number or boolean"):
        dlopt.load(path)


def test_every_byte_is_checked_padding_included(tmp_path):
    """Padding is not under a checksum; the reader requires it to be zero instead, so flipping any
    single byte of a file is detected."""
    path = tmp_path / "c.dlopt"
    dlopt.save(path, extra={"a": np.arange(3, dtype=np.float32), "b": np.arange(5.0)})
    raw = path.read_bytes()
    for i in range(len(raw)):
        bad = tmp_path / "bad.dlopt"
        bad.write_bytes(raw[:i] + bytes([raw[i] ^ 0x01]) + raw[i + 1:])
        with pytest.raises(dlopt.CheckpointError):
            _core.read_checkpoint(str(bad))


def test_overlapping_arrays_or_trailing_table_bytes_are_rejected(tmp_path):
    path = tmp_path / "c.dlopt"
    arrays = [("a", "<f8", (2,), b"\0" * 16, None), ("b", "<f8", (2,), b"\0" * 16, None)]
    good = craft(header_of({}), arrays)
    data_offset = struct.unpack("<Q", good[40:48])[0]
    path.write_bytes(good)
    dlopt.load(path)
    for offsets in ([data_offset, data_offset], [data_offset + 64, data_offset], [data_offset, data_offset + 72]):
        path.write_bytes(craft(header_of({}), arrays, offsets=offsets))
        with pytest.raises(dlopt.CheckpointError, match="bad table entry"):
            dlopt.load(path)
    path.write_bytes(craft(header_of({}), table_tail=b"junk"))
    with pytest.raises(dlopt.CheckpointError, match="after the array table"):
        dlopt.load(path)


def _deep(n):
    return "[" * n + "]" * n


@pytest.mark.parametrize("contents, why", [
    ([1, 2], "'contents' is not an object"),
    ({"extra": {"__tuple__": 5}}, "__tuple__"),
    ({"extra": {"__float__": "1e400"}}, "__float__"),
    ({"extra": {"__float__": 3}}, "__float__"),
    ({"extra": {"__dict__": [[[1], 2]]}}, "__dict__"),
    ({"extra": {"__dict__": 7}}, "__dict__"),
    ({"extra": {"__array__": ["x"]}}, "missing array"),
    ({"extra": {"__scalar__": "nope"}}, "missing array"),
    (json.loads(_deep(900)), "'contents' is not an object"),
])
def test_crafted_headers_with_valid_checksums_raise_checkpoint_error(tmp_path, contents, why):
    path = tmp_path / "c.dlopt"
    path.write_bytes(craft(header_of(contents)))
    with pytest.raises(dlopt.CheckpointError, match=why):
        dlopt.load(path)


def test_deeply_nested_headers_raise_checkpoint_error(tmp_path):
    path = tmp_path / "c.dlopt"
    for depth in (900, 5000, 100000):
        text = '{"format": "dlopt-checkpoint", "version": 1, "contents": {"extra": ' + _deep(depth) + "}}"
        path.write_bytes(craft(text.encode()))
        with pytest.raises(dlopt.CheckpointError, match="nested"):
            dlopt.load(path)
    with pytest.raises(ValueError, match="nested deeper"):
        dlopt.save(path, extra={"x": json.loads(_deep(900))})
    # the deepest tree save accepts loads back
    deep = json.loads(_deep(150))
    dlopt.save(path, extra={"x": deep})
    assert dlopt.load(path)["extra"]["x"] == deep


def test_a_crafted_scalar_of_the_wrong_shape_and_a_scalar_array(tmp_path):
    path = tmp_path / "c.dlopt"
    path.write_bytes(craft(header_of({"extra": {"__scalar__": "s"}}), [("s", "<f8", (2,), b"\0" * 16, None)]))
    with pytest.raises(dlopt.CheckpointError, match="not a 0-d array"):
        dlopt.load(path)


@pytest.mark.parametrize("optimizer", [
    {"state": {}, "param_groups": [5]},
    {"state": {}, "param_groups": [{"params": [0, 1]}]},
    {"state": {"w": {}}, "param_groups": [{"params": ["v"]}]},
    {"state": {}, "param_groups": [{"params": ["w", "w"]}]},
    {"state": {}, "param_groups": [{"lr": 1}]},
])
def test_crafted_optimizer_state_keyed_by_name_raises_checkpoint_error(tmp_path, optimizer):
    path = tmp_path / "c.dlopt"
    path.write_bytes(craft(header_of({"optimizer": optimizer}, optimizer_keys="name")))
    with pytest.raises(dlopt.CheckpointError, match="names"):
        dlopt.load(path)


# -- file modes ---------------------------------------------------------------------------------------


def _writers():
    """Both writers: dlopt.save (JSON tree) and the C++ params writer dlopt::write_checkpoint."""
    return {"python": lambda p: dlopt.save(p, extra={"w": np.ones(3)}),
            "cpp": lambda p: _core.write_checkpoint(str(p), {"w": np.ones(3)})}


@pytest.mark.parametrize("writer", ["python", "cpp"])
def test_a_replaced_file_keeps_its_mode_and_a_new_one_follows_the_umask(tmp_path, writer):
    save = _writers()[writer]
    path = tmp_path / "c.dlopt"
    old = os.umask(0o027)
    try:
        save(path)
        assert stat.S_IMODE(path.stat().st_mode) == 0o640
        os.umask(0o002)
        for mode in (0o600, 0o444, 0o664):
            path.chmod(mode)
            save(path)
            assert stat.S_IMODE(path.stat().st_mode) == mode
        os.umask(0o077)
        save(tmp_path / "new.dlopt")
        assert stat.S_IMODE((tmp_path / "new.dlopt").stat().st_mode) == 0o600
    finally:
        os.umask(old)


# -- temporary files ------------------------------------------------------------------------------------


@pytest.mark.parametrize("writer", ["python", "cpp"])
def test_stale_temporary_files_are_removed_by_the_next_save_but_a_live_one_is_kept(tmp_path, writer):
    stale = tmp_path / ".dlopt-tmp-abc123"
    stale.write_bytes(b"half a checkpoint")
    live = tmp_path / ".dlopt-tmp-live"
    live.write_bytes(b"a save in progress holds its lock")
    other = tmp_path / "dlopt-tmp-not-ours"
    other.write_bytes(b"x")
    with open(live, "rb") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        _writers()[writer](tmp_path / "c.dlopt")
        assert sorted(os.listdir(tmp_path)) == [".dlopt-tmp-live", "c.dlopt", "dlopt-tmp-not-ours"]
    _writers()[writer](tmp_path / "c.dlopt")
    assert sorted(os.listdir(tmp_path)) == ["c.dlopt", "dlopt-tmp-not-ours"]


SAVER = textwrap.dedent("""
    import sys, numpy as np, dlopt
    big = {"w": np.arange(4_000_000, dtype=np.float64)}
    while True:
        dlopt.save(sys.argv[1], params=big, extra={"n": 1})
""")


def test_kill_9_during_save_leaves_a_whole_checkpoint_and_the_next_save_cleans_up(tmp_path):
    path = tmp_path / "c.dlopt"
    for attempt in range(20):
        proc = subprocess.Popen([sys.executable, "-c", SAVER, str(path)])
        try:
            deadline = time.monotonic() + 120
            # wait until a first save is complete and the next one is being written
            while not (path.exists() and any(n.startswith(".dlopt-tmp-") for n in os.listdir(tmp_path))):
                assert proc.poll() is None, "the saving process died"
                assert time.monotonic() < deadline, "no save in 120 s"
                time.sleep(0.005)
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
        ckpt = dlopt.load(path)  # whole and valid, never a torn file
        np.testing.assert_array_equal(ckpt["params"]["w"], np.arange(4_000_000, dtype=np.float64))
        if any(n.startswith(".dlopt-tmp-") for n in os.listdir(tmp_path)):
            break  # killed mid-write: a stale temporary file is left
    else:
        pytest.fail("the process was never killed in the middle of a save")
    dlopt.save(path, extra={"n": 2})
    assert os.listdir(tmp_path) == ["c.dlopt"]
    assert dlopt.load(path)["extra"] == {"n": 2}
