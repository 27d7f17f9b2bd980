"""ml4iot harness: train, shrink, convert and measure tiny models against versioned constraints.

Importing the package fixes the TensorFlow environment before any TensorFlow import:
tfmot needs tf_keras (Keras 2), and determinism depends on oneDNN and thread settings.
"""
import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
# One BLAS / OpenMP thread, set before numpy loads: per-clip features are tiny matmuls, and a multi-threaded
# BLAS spinning against another busy process made them 60x slower (15.8 ms vs 0.27 ms measured).
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# oneDNN stays on (default): turning it off changes numerics and doubles epoch time.
# The same recipe gave other bytes on another x86-64 host: oneDNN (training) and OpenBLAS (numpy feature matmuls)
# pick kernels by the CPU's SIMD features at run time. Pinning both to the AVX2 level makes every AVX2 host run
# the same kernels (measured: the AVX-512/AMX default and the AVX2 pin give different bytes on one host).
import platform as _platform


def _has_avx2() -> bool:
    try:
        with open("/proc/cpuinfo") as f:
            flags = next((line for line in f if line.startswith("flags")), "").split()
        return "avx2" in flags and "fma" in flags
    except OSError:
        return False


if _platform.machine() in ("x86_64", "AMD64") and _has_avx2():  # a forced Haswell kernel would crash without AVX2
    os.environ.setdefault("ONEDNN_MAX_CPU_ISA", "AVX2")  # costs 25-50 % per training epoch (measured here)
    os.environ.setdefault("OPENBLAS_CORETYPE", "Haswell")

__version__ = "0.1.0"
