"""Where and with what a run happened: host CPU, library versions, commit."""
from __future__ import annotations

import platform
import subprocess
from functools import lru_cache
from importlib import metadata
from pathlib import Path

from harness.core.paths import ROOT

PACKAGES = ("tensorflow", "tf-keras", "tensorflow-model-optimization", "ai-edge-litert", "numpy", "pandas", "scipy", "soundfile")


def _cpuinfo(path: Path = Path("/proc/cpuinfo")) -> dict:
    """Each key's first value in /proc/cpuinfo (the first processor's); {} when it cannot be read."""
    try:
        text = path.read_text()
    except OSError:
        return {}
    out: dict = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep:
            out.setdefault(key.strip(), value.strip())
    return out


@lru_cache(maxsize=1)
def cpu_model() -> str:
    return _cpuinfo().get("model name") or platform.processor() or platform.machine()


@lru_cache(maxsize=1)
def host() -> dict:
    import os

    return {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "machine": platform.machine(),
        "system": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
    }


def host_line() -> str:
    h = host()
    return f"{h['cpu']} ({h['machine']}, {h['cores']} cores, {h['system']}), Python {h['python']}, 1 interpreter thread"


@lru_cache(maxsize=1)
def versions() -> dict:
    out = {}
    for p in PACKAGES:
        try:
            out[p] = metadata.version(p)
        except metadata.PackageNotFoundError:
            out[p] = None
    return out


def git(*args: str, timeout: float = 30) -> str | None:
    """`git ARGS` in the project's folder: its output, or None when git is missing, fails or has no such object."""
    try:
        proc = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.SubprocessError):
        return None
    return proc.stdout if proc.returncode == 0 else None


@lru_cache(maxsize=1)
def commit() -> str:
    """The code's commit, read once per process: a report names the code that ran, even if HEAD moves during
    a long run (the command line reads it before starting)."""
    sha = (git("rev-parse", "--short=12", "HEAD", timeout=10) or "").strip()
    if not sha:
        return "unknown"
    dirty = git("status", "--porcelain", "--untracked-files=no", "--", ".", ":(exclude)results", timeout=10)
    if dirty is None:
        return "unknown"  # cannot tell whether the code is the commit's
    return sha + ("+dirty" if dirty.strip() else "")


# Environment settings that change numerics (and so the bytes of a trained model), recorded with every build.
NUMERIC_ENV = ("ONEDNN_MAX_CPU_ISA", "TF_ENABLE_ONEDNN_OPTS", "NPY_DISABLE_CPU_FEATURES", "OPENBLAS_CORETYPE",
               "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS")
CPU_FLAGS = ("sse4_2", "avx", "avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "avx512_fp16", "amx_tile",
             "amx_bf16", "amx_int8", "asimd", "sve")


def numeric_pins() -> dict:
    import os

    return {k: os.environ.get(k) for k in NUMERIC_ENV}


@lru_cache(maxsize=1)  # fixed once numpy has loaded OpenBLAS
def openblas_core() -> str | None:
    """The kernel family numpy's OpenBLAS runs (e.g. "Haswell"), read from the library itself: OPENBLAS_CORETYPE
    only takes effect when it is set before numpy loads, so the variable alone does not prove the pin."""
    import ctypes

    import numpy as np

    libs = sorted((Path(np.__file__).parent.parent / "numpy.libs").glob("*openblas*"))
    for lib in libs:
        try:
            dll = ctypes.CDLL(str(lib))
        except OSError:
            continue
        for name in ("scipy_openblas_get_corename64_", "scipy_openblas_get_corename", "openblas_get_corename"):
            fn = getattr(dll, name, None)
            if fn is not None:
                fn.restype = ctypes.c_char_p
                return fn().decode()
    return None


@lru_cache(maxsize=1)
def cpu_flags() -> list[str]:
    """The SIMD features that TensorFlow's oneDNN, XNNPACK and numpy dispatch on at run time."""
    info = _cpuinfo()
    have = set((info.get("flags") or info.get("Features") or "").split())  # x86 / Arm
    return [f for f in CPU_FLAGS if f in have]


@lru_cache(maxsize=1)
def cpu_identity(cpuinfo: Path = Path("/proc/cpuinfo"), cache_dir: Path = Path("/sys/devices/system/cpu/cpu0/cache")) -> dict:
    """Vendor, family, model, stepping and cache sizes (KiB): what tells two CPUs of one model name apart (a
    virtual machine often names its CPU "AMD EPYC" alone), and what oneDNN and OpenBLAS size their blocks by."""
    info = _cpuinfo(cpuinfo)
    keys = {"vendor_id": "vendor", "cpu family": "family", "model": "model", "stepping": "stepping"}
    out = {name: info[key] for key, name in keys.items() if key in info}
    caches = {}
    for index in sorted(cache_dir.glob("index*")):
        try:
            level, kind, size = ((index / f).read_text().strip() for f in ("level", "type", "size"))
        except OSError:
            continue
        name = f"L{level}" + {"Data": "d", "Instruction": "i"}.get(kind, "")
        if size.endswith("K") and size[:-1].isdigit():
            caches[name] = int(size[:-1])
    if caches:
        out["cache_kib"] = caches
    return out


def build_host() -> dict:
    """Where a build ran: the CPU, its identity and features, and the numeric settings in force."""
    return {"cpu": cpu_model(), "cpu_id": cpu_identity(), "machine": platform.machine(), "cpu_flags": cpu_flags(),
            "env": numeric_pins(), "openblas_core": openblas_core(), "versions": versions()}


def pid_alive(pid: int) -> bool:
    """Whether a process of this host still runs (a killed run's leftovers are recognised by a dead pid)."""
    import os

    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
