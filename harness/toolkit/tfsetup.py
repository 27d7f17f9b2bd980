"""Import TensorFlow once, quietly and deterministically.

Thread pools must be pinned before the first TensorFlow op, and the weights' hash depends on the
intra-op thread count, so every TensorFlow user in the harness goes through `tf()`.
"""
from __future__ import annotations

import contextlib
import os
import sys

import harness  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow loads)

INTRA_OP_THREADS = 1
INTER_OP_THREADS = 1
_TF = None


@contextlib.contextmanager
def quiet_stderr():
    """Silence C++ log lines written straight to fd 2 (absl, oneDNN, converter) for a block."""
    if os.environ.get("HARNESS_VERBOSE"):
        yield
        return
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):
        yield
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


@contextlib.contextmanager
def native_stderr_silenced():
    """For a command: native libraries' fd-2 writes (TensorFlow's C++ logs) go to /dev/null while Python's
    sys.stderr (our errors, progress bars, warnings) keeps the real terminal. Both are put back on exit, so a
    caller in the same process (a test, a notebook) keeps its stderr."""
    if os.environ.get("HARNESS_VERBOSE"):
        yield
        return
    try:
        sys.stderr.flush()
        real = os.dup(2)  # where Python's lines keep going while fd 2 is silenced
    except (OSError, ValueError):
        yield
        return
    saved_stream, sys.stderr = sys.stderr, os.fdopen(real, "w", buffering=1, encoding="utf-8", errors="replace")
    try:
        with quiet_stderr():
            yield
    finally:
        try:
            sys.stderr.close()
        except (OSError, ValueError):
            pass
        sys.stderr = saved_stream


def tf():
    """Return the configured `tensorflow` module (tf.keras is tf_keras)."""
    global _TF
    if _TF is None:
        with quiet_stderr():
            import tensorflow as tf_mod

            try:
                tf_mod.config.threading.set_intra_op_parallelism_threads(INTRA_OP_THREADS)
                tf_mod.config.threading.set_inter_op_parallelism_threads(INTER_OP_THREADS)
            except RuntimeError:
                pass  # already initialised by an earlier import in this process: keep its pools
            tf_mod.config.experimental.enable_op_determinism()
            tf_mod.get_logger().setLevel("ERROR")
        _TF = tf_mod
    return _TF


def keras():
    return tf().keras


def seed_everything(seed: int) -> None:
    keras().utils.set_random_seed(int(seed))


def tfmot():
    tf()
    with quiet_stderr():
        import tensorflow_model_optimization as mot
    return mot
