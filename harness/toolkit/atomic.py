"""Atomic file writes: a reader never sees a half-written file, an interrupt never leaves one."""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; the result follows the umask like any new file
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    return path


def write_text(path: str | os.PathLike, text: str) -> Path:
    return write_bytes(path, text.encode("utf-8"))


def _plain(value):
    """numpy scalars as the JSON values they are (a numpy bool was written as the string "False", which readers
    take as true); anything else (paths) as text."""
    item = getattr(value, "item", None)
    return item() if callable(item) and getattr(value, "shape", None) == () else str(value)


def json_text(obj) -> str:
    """The JSON text every record is written as: keys sorted, numpy scalars as values, paths as text."""
    return json.dumps(obj, indent=2, sort_keys=True, default=_plain) + "\n"


def as_stored(obj):
    """The object as a reader of its JSON record sees it (pages render from this, so a re-render is the same)."""
    return json.loads(json_text(obj))


def write_json(path: str | os.PathLike, obj) -> Path:
    return write_text(path, json_text(obj))
