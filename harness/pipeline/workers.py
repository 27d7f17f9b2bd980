"""Worker processes for builds and folds that never outlive the command that started them.

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


def _die_with_parent(parent_pid: int) -> None:
    if sys.platform.startswith("linux"):
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)
    if os.getppid() != parent_pid:  # the parent was gone before the request
        os._exit(1)


def pool(jobs: int) -> ProcessPoolExecutor:
    """`jobs` spawned workers (spawn: no forked TensorFlow state) that stop when this process dies."""
    return ProcessPoolExecutor(max_workers=jobs, mp_context=multiprocessing.get_context("spawn"),
                               initializer=_die_with_parent, initargs=(os.getpid(),))
