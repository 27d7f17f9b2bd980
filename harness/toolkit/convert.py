"""TFLite conversion: one function, the PTQ variant is a parameter."""
from __future__ import annotations

import contextlib
import io
import os
import warnings
from typing import Callable, Iterable

import numpy as np

from harness.core.errors import HarnessError
from harness.toolkit.tfsetup import quiet_stderr, tf


def to_tflite(model, mode: str, calibration: Callable[[], Iterable[list[np.ndarray]]] | None = None) -> bytes:
    """Convert a Keras model.

    mode: none (float32) | dynamic (int8 weights) | float16 (fp16 weights) | int8 (int8 weights and
    activations from a fixed calibration set; float32 input/output so the artifact keeps physical
    units and the course's float features) | int4 (as int8, but 4-bit weights where the runtime has
    kernels for them; done by ai-edge-quantizer on the float32 file).
    """
    if mode == "int4":
        if calibration is None:
            raise HarnessError("quantize.mode = int4 needs a calibration set")
        return _int4(to_tflite(model, "none"), calibration)
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


def _int4(float_tflite: bytes, calibration: Callable[[], Iterable[list[np.ndarray]]]) -> bytes:
    """4-bit weights, int8 activations, float32 input/output: ai-edge-quantizer on the float32 file.

    Its static int4-weight / int8-activation config covers CONV_2D and FULLY_CONNECTED only (channelwise,
    symmetric); every other op it supports (DEPTHWISE_CONV_2D, MEAN, ADD, ...) gets the static int8
    config, so the graph is integer end to end as in int8. The graph's input and output are left float
    (a QUANTIZE / DEQUANTIZE pair is inserted), as the TFLiteConverter's int8 path does.

    Activation ranges are the min / max over the whole calibration set, as the TFLiteConverter's. The
    quantizer's own `Quantizer.calibrate` keeps a moving average (0.95) of per-sample ranges, which on a
    few hundred samples clips activations: on the test model its all-int8 output was 12x further from
    the float model's than the TFLiteConverter's int8 (relative RMS 0.17 vs 0.014); with global ranges
    the two agree (0.014).
    """
    try:
        with quiet_stderr():
            from ai_edge_litert.interpreter import Interpreter
            from ai_edge_quantizer import calibrator, qtyping, quantizer, recipe_manager
            from ai_edge_quantizer.algorithm_manager import AlgorithmName
    except ImportError:
        raise HarnessError("quantize.mode = int4 needs ai-edge-quantizer (pip install -r requirements.txt)") from None
    # The calibration generator yields one list per sample, in the model's input order; the quantizer
    # wants {signature: [{signature input name: array}]}: map by tensor index.
    with quiet_stderr():
        it = Interpreter(model_content=float_tflite)
        signatures = it.get_signature_list()
        if len(signatures) != 1:
            raise HarnessError(f"quantize.mode = int4: expected one signature in the float file, found {len(signatures)}")
        key = next(iter(signatures))
        by_index = {d["index"]: name for name, d in it.get_signature_runner(key).get_input_details().items()}
    inputs = [(by_index[d["index"]], d["dtype"]) for d in it.get_input_details()]
    samples = [{name: np.asarray(x, dtype) for (name, dtype), x in zip(inputs, xs, strict=True)} for xs in calibration()]
    if not samples:
        raise HarnessError("quantize.mode = int4: the calibration set is empty")

    op = qtyping.TFLOperationName
    q = quantizer.Quantizer(float_tflite)
    q.add_static_config(".*", op.ALL_SUPPORTED, activation_num_bits=8, weight_num_bits=8)
    for name in (op.CONV_2D, op.FULLY_CONNECTED):  # the later, more specific entry wins for these ops
        q.add_static_config(".*", name, activation_num_bits=8, weight_num_bits=4,
                            weight_granularity=qtyping.QuantGranularity.CHANNELWISE)
    for name in (op.INPUT, op.OUTPUT):
        q.update_quantization_recipe(".*", name, algorithm_key=AlgorithmName.NO_QUANTIZE)
    recipe = recipe_manager.RecipeManager()
    recipe.load_quantization_recipe(q.get_quantization_recipe())
    try:
        with quiet_stderr(), _quiet_python_stderr():
            calib = calibrator.Calibrator(float_tflite, num_threads=1, qsv_update_func=_widen)
            calib.calibrate({key: samples}, recipe)
            result = q.quantize(calib.get_model_qsvs(), enable_progress_bar=False, enable_progress_report=False)
    except (ValueError, RuntimeError, KeyError) as e:
        raise HarnessError(f"quantize.mode = int4: ai-edge-quantizer failed: {' '.join(str(e).split())[:300]}") from None
    return bytes(result.quantized_model)


def _widen(qsv: dict, new: dict) -> dict:
    """Calibration statistics update: the running min / max (the quantizer's default is a moving average)."""
    return {**new, "min": np.minimum(qsv["min"], new["min"]), "max": np.maximum(qsv["max"], new["max"])}


@contextlib.contextmanager
def _quiet_python_stderr():
    """The quantizer's Python-level noise (a tqdm calibration bar, the LiteRT preserve_all_tensors
    UserWarning, absl warnings) goes to sys.stderr, which a CLI process keeps on the terminal."""
    if os.environ.get("HARNESS_VERBOSE"):
        yield
        return
    with warnings.catch_warnings(), contextlib.redirect_stderr(io.StringIO()):
        warnings.simplefilter("ignore")
        yield
