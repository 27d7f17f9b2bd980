"""A version's files appear together or not at all.

A run writes the artifact, sidecar, JSON, markdown and LaTeX of a version into a staging folder beside
the final one and swaps the folders only after measuring and reporting succeeded. A crash between the
two renames of the swap leaves `.version-x.old`, which the next run puts back before anything else.
"""
from __future__ import annotations

import os
import shutil
from contextlib import contextmanager
from pathlib import Path

from harness.core.errors import HarnessError
from harness.toolkit.hostinfo import pid_alive


def _old(final: Path) -> Path:
    return final.with_name(f".{final.name}.old")


def recover(final: Path) -> None:
    """Undo a swap cut in the middle, and remove what killed runs left behind in the folder."""
    folder = final.parent
    old = _old(final)
    if old.exists() and not final.exists():
        os.replace(old, final)
    elif old.exists():
        shutil.rmtree(old, ignore_errors=True)
    if not folder.is_dir():
        return
    for p in folder.iterdir():
        if ".staging-" in p.name and p.name.startswith("."):
            try:
                pid = int(p.name.rsplit("-", 2)[-2])
            except ValueError:
                pid = -1
            if pid != os.getpid() and not pid_alive(pid):
                shutil.rmtree(p, ignore_errors=True)
        elif p.name.startswith(".") and p.name.endswith(".tmp") and p.is_file():
            p.unlink(missing_ok=True)  # a temp file of an atomic write that was killed


def writable(final: Path) -> Path:
    """`final`, refused when a file of the user's own stands there (it is never swapped out); checked before the work
    that fills it, and again when it is staged."""
    if final.exists() and not final.is_dir():
        raise HarnessError(f"{final}: exists and is not a folder of results (move it away, or write elsewhere with --out)")
    return final


def stage(final: Path) -> Path:
    """A fresh staging folder for `final` (same file system, so the swap is a rename)."""
    writable(final)
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
        recover(final)
        n = 0
        while True:
            path = final.with_name(f".{final.name}.staging-{os.getpid()}-{n}")
            try:
                path.mkdir()
                return path
            except FileExistsError:
                n += 1
    except OSError as e:
        raise HarnessError(f"{final.parent}: cannot write results here ({e.strerror or e})") from None


def commit(staging: Path, final: Path) -> None:
    old = _old(final)
    try:
        if old.exists():
            shutil.rmtree(old)
        if final.exists():
            os.replace(final, old)
        os.replace(staging, final)
    except OSError as e:
        raise HarnessError(f"{final}: cannot publish the results ({e.strerror or e})") from None
    shutil.rmtree(old, ignore_errors=True)


def discard(staging: Path) -> None:
    shutil.rmtree(staging, ignore_errors=True)



@contextmanager
def together(final: Path, what: str = "results"):
    """Yield a staging folder for `final`, swapped in when the block ends; on any failure it is removed and the
    previous `what` (a plural: "results", "report files") stay as they were."""
    staging = stage(final)
    try:
        yield staging
        commit(staging, final)
    except OSError as e:
        discard(staging)
        raise HarnessError(f"{e.filename or staging}: cannot write the {what} ({e.strerror or e}); "
                           f"the previous {what} in {final} are unchanged") from None
    except BaseException:
        discard(staging)
        raise
