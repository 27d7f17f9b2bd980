"""TFLite conversion: one function, the PTQ variant is a parameter."""
from __future__ import annotations

from typing import Callable, Iterable

import numpy as np

from harness.core.errors import HarnessError
from harness.toolkit.tfsetup import quiet_stderr, tf


def to_tflite(model, mode: str, calibration: Callable[[], Iterable[list[np.ndarray]]] | None = None) -> bytes:
    """Convert a Keras model.

    mode: none (float32) | dynamic (int8 weights) | float16 (fp16 weights) | int8 (int8 weights and
    activations from a fixed calibration set; float32 input/output so the artifact keeps physical
    units and the course's float features).
    """
    t = tf()
    # A fixed batch of 1 (as the course's concrete function [1, ...]): a dynamic batch adds
    # SHAPE / STRIDED_SLICE / PACK ops to every reshape, i.e. hundreds of bytes on a tiny model.
    spec = [t.TensorSpec([1] + list(i.shape[1:]), i.dtype) for i in model.inputs]
    fn = t.function(lambda *xs: model(list(xs) if len(xs) > 1 else xs[0], training=False))
    with quiet_stderr():
        concrete = fn.get_concrete_function(*spec)
    conv = t.lite.TFLiteConverter.from_concrete_functions([concrete], model)
    if mode == "none":
        pass
    elif mode == "dynamic":
        conv.optimizations = [t.lite.Optimize.DEFAULT]
    elif mode == "float16":
        conv.optimizations = [t.lite.Optimize.DEFAULT]
        conv.target_spec.supported_types = [t.float16]
    elif mode == "int8":
        if calibration is None:
            raise HarnessError("quantize.mode = int8 needs a calibration set")
        conv.optimizations = [t.lite.Optimize.DEFAULT]
        conv.representative_dataset = calibration
    else:
        raise HarnessError(f"quantize.mode: unknown variant {mode!r}")
    with quiet_stderr():
        return conv.convert()
