import zlib

import pytest

from harness.core.errors import HarnessError
from harness.toolkit import atomic, package


def test_formats_round_trip_and_sizes():
    blob = bytes(range(256)) * 40 + b"\0" * 4000
    s = package.sizes(blob)
    assert s["tflite"] == len(blob)
    assert s["zlib"] == len(zlib.compress(blob, 9))
    assert s["zip"] > s["zlib"]  # zip adds headers around the same deflate stream
    for fmt in package.SUFFIX:
        assert package.unpack(package.pack(blob, fmt), fmt) == blob


def test_zip_bytes_are_reproducible():
    assert package.pack(b"abc" * 100, "zip") == package.pack(b"abc" * 100, "zip")


def test_bad_inputs():
    with pytest.raises(HarnessError, match="cannot unpack as zlib"):
        package.unpack(b"not zlib", "zlib", "m.tflite.zlib")
    with pytest.raises(HarnessError, match="unknown format"):
        package.pack(b"x", "gzip")
    assert package.format_of("a/model.tflite.zlib") == "zlib"
    with pytest.raises(HarnessError):
        package.format_of("model.onnx")


def test_atomic_write_keeps_the_old_file_when_interrupted(tmp_path, monkeypatch):
    target = tmp_path / "table.md"
    atomic.write_text(target, "old")

    def boom(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(atomic.os, "replace", boom)
    with pytest.raises(KeyboardInterrupt):
        atomic.write_text(target, "new and longer")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["table.md"]  # no temp file left behind
