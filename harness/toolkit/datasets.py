"""Data-file plumbing shared by the tasks: where data lives, where caches go, verified downloads.

The data folder is read-only to the harness: downloads and derived caches go to `cache_dir()`.
"""
from __future__ import annotations

import hashlib
import http.client
import os
import socket
import sys
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

from harness.core.errors import HarnessError
from harness.core.paths import ROOT as PROJECT_ROOT

DATA_DIR_ENV = "ML4IOT_DATA_DIR"
CACHE_DIR_ENV = "ML4IOT_CACHE_DIR"
DEFAULT_CACHE_DIR = Path("~/.cache/ml4iot-harness")
DOWNLOAD_TIMEOUT_S = 60.0
_CHUNK_BYTES = 1 << 20


def resolve_data_dir(cli_value: str | os.PathLike | None = None) -> Path:
    """Data folder: command-line value > env ML4IOT_DATA_DIR > <project root>/data."""
    env = os.environ.get(DATA_DIR_ENV)
    if cli_value not in (None, ""):
        given, named = cli_value, f"--data-dir {Path(cli_value).expanduser()}"
    elif env:
        given, named = env, f"{DATA_DIR_ENV}={env}"
    else:
        return PROJECT_ROOT / "data"
    path = Path(given).expanduser()
    if not path.is_dir():  # a typo or a stale variable must not fall through to a download attempt
        raise HarnessError(f"{named}: no such folder")
    return path


def cache_dir() -> Path:
    """Writable cache folder (downloads, feature caches): env ML4IOT_CACHE_DIR > ~/.cache/ml4iot-harness."""
    env = os.environ.get(CACHE_DIR_ENV)
    path = Path(env).expanduser() if env else DEFAULT_CACHE_DIR.expanduser()
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise HarnessError(f"cannot create cache folder {path} ({e.strerror or e}); set {CACHE_DIR_ENV}") from e
    return path


def sha256_file(path: str | os.PathLike) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK_BYTES), b""):
            digest.update(chunk)
    return digest.hexdigest()


def placement_hint(file_name: str, directory: str | os.PathLike) -> str:
    """The standard offline advice: where to put a file by hand."""
    return f"put {file_name} in {directory} or pass --data-dir"


def download(
    url: str,
    dest: str | os.PathLike,
    sha256: str | None,
    desc: str | None = None,
    *,
    offline_hint: str | None = None,
    timeout_s: float = DOWNLOAD_TIMEOUT_S,
) -> Path:
    """Download `url` to `dest` atomically and return `dest`.

    The bytes go to a temporary file next to `dest`, are checked (sha256 when given, otherwise the
    Content-Length) and only then renamed, so `dest` is either absent or complete.
    Network failures raise HarnessError "cannot download <url> (<reason>); <offline_hint>".
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out:
            actual = _fetch(url, out, desc or dest.name, timeout_s, offline_hint)
            out.flush()
            os.fsync(out.fileno())
        if sha256 is not None and actual != sha256.lower():
            raise HarnessError(f"download of {url} has sha256 {actual}, expected {sha256.lower()}; file discarded")
        os.replace(tmp, dest)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return dest


def ensure_download(
    url: str,
    dest: str | os.PathLike,
    sha256: str | None,
    desc: str | None = None,
    *,
    offline_hint: str | None = None,
) -> Path:
    """Return `dest` if it is already there (and matches `sha256`), else download it."""
    dest = Path(dest)
    if dest.is_file() and (sha256 is None or sha256_file(dest) == sha256.lower()):
        return dest
    return download(url, dest, sha256, desc, offline_hint=offline_hint)


def _fetch(url: str, out, desc: str, timeout_s: float, offline_hint: str | None) -> str:
    """Stream `url` into the open file `out`; return the sha256 of the bytes received."""
    from tqdm import tqdm  # progress bar only; tqdm disables itself when stderr is not a tty

    digest = hashlib.sha256()
    received = 0
    expected = None
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as resp:
            length = resp.headers.get("Content-Length")
            expected = int(length) if length and length.isdigit() else None
            with tqdm(total=expected, unit="B", unit_scale=True, desc=desc, file=sys.stderr,
                      disable=None, leave=False) as bar:
                for chunk in iter(lambda: resp.read(_CHUNK_BYTES), b""):
                    out.write(chunk)
                    digest.update(chunk)
                    received += len(chunk)
                    bar.update(len(chunk))
    except urllib.error.HTTPError as e:
        raise HarnessError(_network_message(url, f"HTTP {e.code} {e.reason}", offline_hint)) from e
    except urllib.error.URLError as e:
        raise HarnessError(_network_message(url, _reason_text(e.reason), offline_hint)) from e
    except (OSError, socket.timeout, http.client.HTTPException) as e:
        raise HarnessError(_network_message(url, _reason_text(e), offline_hint)) from e
    if expected is not None and received != expected:
        raise HarnessError(_network_message(
            url, f"connection closed after {received} of {expected} bytes", offline_hint))
    return digest.hexdigest()


def _reason_text(reason) -> str:
    if isinstance(reason, OSError) and reason.strerror:
        return reason.strerror
    if isinstance(reason, (socket.timeout, TimeoutError)):
        return "timed out"
    return str(reason) or type(reason).__name__


def _network_message(url: str, reason: str, offline_hint: str | None) -> str:
    message = f"cannot download {url} ({reason})"
    return f"{message}; {offline_hint}" if offline_hint else message
