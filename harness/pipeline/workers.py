"""Worker processes (builds, folds, grading) that never outlive the command that started them.

Spawned workers are not children the kernel ends with their parent: a `run --jobs 2` killed with SIGTERM or
SIGKILL (a CI timeout, `kill PID`) would leave them training on, orphaned, holding every core. On Linux each
worker asks the kernel for SIGTERM when its parent dies; everywhere it checks the parent once at start, in case
the parent died before the request took hold.
"""
from __future__ import annotations

import multiprocessing
import os
import signal
import sys
from concurrent.futures import ProcessPoolExecutor

_PR_SET_PDEATHSIG = 1  # linux/prctl.h
_SPAWN = multiprocessing.get_context("spawn")  # spawn: no forked TensorFlow state


def die_with_parent(parent_pid: int) -> None:
    if sys.platform.startswith("linux"):
        import ctypes

        ctypes.CDLL(None).prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)
    if os.getppid() != parent_pid:  # the parent was gone before the request
        os._exit(1)


def pool(jobs: int) -> ProcessPoolExecutor:
    """`jobs` spawned workers that stop when this process dies."""
    return ProcessPoolExecutor(max_workers=jobs, mp_context=_SPAWN, initializer=die_with_parent,
                               initargs=(os.getpid(),))


def process(target, args: tuple) -> multiprocessing.Process:
    """One spawned daemon process running target(*args) that stops when this process dies (not yet started)."""
    return _SPAWN.Process(target=_bound, args=(os.getpid(), target, args), daemon=True)


def _bound(parent_pid: int, target, args: tuple) -> None:
    die_with_parent(parent_pid)
    target(*args)
