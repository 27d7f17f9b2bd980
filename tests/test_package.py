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


def _zip(members: dict[str, bytes]) -> bytes:
    import io
    import zipfile

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


def test_a_zip_gives_its_one_model_and_refuses_two_or_none():
    assert package.unpack(_zip({"team/": b"", "team/model.tflite": b"ONE", "__MACOSX/team/._model.tflite": b"x"}),
                          "zip") == b"ONE"  # folders and macOS metadata copies are not models
    assert package.unpack(_zip({"notes.txt": b"hi", "kws.tflite": b"ONE"}), "zip") == b"ONE"  # the .tflite member
    assert package.unpack(_zip({"model": b"ONE"}), "zip") == b"ONE"  # a lone file of another name
    with pytest.raises(HarnessError, match=r"sub.tflite.zip: the zip must hold exactly one model file, it holds 2 "
                                           r"\(a.tflite, b.tflite\)"):
        package.unpack(_zip({"a.tflite": b"A", "b.tflite": b"B"}), "zip", "sub.tflite.zip")
    with pytest.raises(HarnessError, match="it holds 0$"):
        package.unpack(_zip({}), "zip", "empty.zip")


def test_zip_member_is_the_same_level_9_deflate_stream_as_zlib():
    """The zip size in the tables is the model deflated at level 9 plus the archive's headers, nothing else."""
    import io
    import zipfile

    blob = bytes(range(256)) * 40 + b"\0" * 4000
    with zipfile.ZipFile(io.BytesIO(package.pack(blob, "zip"))) as zf:
        (info,) = zf.infolist()
    assert info.compress_type == zipfile.ZIP_DEFLATED
    assert info.compress_size == len(zlib.compress(blob, 9)) - 6  # zlib = 2-byte header + deflate + 4-byte adler32


def test_a_broken_zip_is_a_harness_error_naming_the_file():
    with pytest.raises(HarnessError, match=r"^sub.tflite.zip: cannot unpack as zip"):
        package.unpack(b"PK not really a zip", "zip", "sub.tflite.zip")


def test_a_zip_with_many_models_lists_five_and_an_ellipsis():
    names = {f"m{i}.tflite": b"M" for i in range(7)}
    with pytest.raises(HarnessError, match=r"it holds 7 \(m0.tflite, m1.tflite, m2.tflite, m3.tflite, m4.tflite, …\)$"):
        package.unpack(_zip(names), "zip", "sub.tflite.zip")


def test_upper_case_names_are_recognised():
    assert package.format_of("GROUP1_KWS_A.TFLITE.ZIP") == "zip"
    assert package.format_of("Group1_kws_a.TFLite") == "tflite"
    assert package.unpack(_zip({"README.txt": b"hi", "team/MODEL.TFLITE": b"ONE"}), "zip") == b"ONE"


@pytest.mark.parametrize("path, stem, fmt", [
    ("Group2_kws_b.tflite.zlib", "Group2_kws_b", "zlib"),
    ("sub/dir/Group2_kws_b.tflite.zip", "Group2_kws_b", "zip"),
    ("Group2_kws_b.tflite", "Group2_kws_b", "tflite"),
    ("Group2_kws_b.zip", "Group2_kws_b", "zip"),
    ("Group2_kws_b.ZLIB", "Group2_kws_b", "zlib"),
])
def test_stem_and_format_of_every_submitted_suffix(path, stem, fmt):
    assert package.stem_of(path) == stem
    assert package.format_of(path) == fmt
