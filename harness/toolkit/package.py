"""The submitted formats: raw .tflite, zlib stream (.tflite.zlib) or zip archive (.tflite.zip)."""
from __future__ import annotations

import io
import zipfile
import zlib

from harness.core.errors import HarnessError

SUFFIX = {"tflite": ".tflite", "zlib": ".tflite.zlib", "zip": ".tflite.zip"}
# Fixed timestamp so the same model always gives the same zip bytes.
_ZIP_DATE = (2020, 1, 1, 0, 0, 0)


def pack(tflite: bytes, fmt: str, member_name: str = "model.tflite") -> bytes:
    if fmt == "tflite":
        return tflite
    if fmt == "zlib":
        return zlib.compress(tflite, 9)
    if fmt == "zip":
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as zf:
            info = zipfile.ZipInfo(member_name, date_time=_ZIP_DATE)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            zf.writestr(info, tflite, compresslevel=9)
        return buf.getvalue()
    raise HarnessError(f"package.format: unknown format {fmt!r} (known: {', '.join(SUFFIX)})")


def unpack(blob: bytes, fmt: str, where: str = "artifact") -> bytes:
    """What a grader does before loading: decompress, or extract the archive's one model file."""
    try:
        if fmt == "tflite":
            return blob
        if fmt == "zlib":
            return zlib.decompress(blob)
        if fmt == "zip":
            with zipfile.ZipFile(io.BytesIO(blob)) as zf:
                return zf.read(_only_member(zf.namelist(), where))
    except (zlib.error, zipfile.BadZipFile) as e:
        raise HarnessError(f"{where}: cannot unpack as {fmt} ({e})") from None
    raise HarnessError(f"{where}: unknown format {fmt!r}")


def _only_member(names: list[str], where: str) -> str:
    """The archive's model: its one .tflite member, else its one file (folders and macOS's __MACOSX/ copies
    aside). Two models in one archive are ambiguous, so they are refused rather than one of them measured."""
    files = [n for n in names if not n.endswith("/") and not n.startswith("__MACOSX/")]
    models = [n for n in files if n.lower().endswith(".tflite")] or files
    if len(models) != 1:
        raise HarnessError(f"{where}: the zip must hold exactly one model file, it holds {len(models)}"
                           + (f" ({', '.join(models[:5])}{', …' if len(models) > 5 else ''})" if models else ""))
    return models[0]


def sizes(tflite: bytes) -> dict[str, int]:
    """Size in bytes of every submittable format of the same model."""
    return {fmt: len(pack(tflite, fmt)) for fmt in SUFFIX}


# Names a submission may carry: the course asked for .tflite, .tflite.zlib, .tflite.zip (and some groups sent .zip).
SUBMITTED_SUFFIXES = (".tflite.zlib", ".tflite.zip", ".tflite", ".zlib", ".zip")


def format_of(path: str) -> str:
    name = str(path).lower()
    for suffix in SUBMITTED_SUFFIXES:
        if name.endswith(suffix):
            return {"tflite": "tflite"}.get(suffix.rsplit(".", 1)[1], suffix.rsplit(".", 1)[1])
    raise HarnessError(f"{path}: not a .tflite, .tflite.zlib or .tflite.zip file")


def stem_of(path: str) -> str:
    """The file name without its submitted suffix: Group2_kws_b.tflite.zlib -> Group2_kws_b."""
    name = str(path).rsplit("/", 1)[-1]
    for suffix in SUBMITTED_SUFFIXES:
        if name.lower().endswith(suffix):
            return name[:-len(suffix)]
    return name
