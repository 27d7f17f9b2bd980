"""Load a deployed model in the LiteRT interpreter (tf.lite.Interpreter only as a fallback)."""
from __future__ import annotations

import warnings

import numpy as np

from harness.core.errors import HarnessError, ModelError
from harness.toolkit.tfsetup import quiet_stderr

KERNELS = ("default", "reference")


def load(tflite: bytes, num_threads: int = 1, kernels: str = "default"):
    """Return (interpreter, runtime name). One thread: what every protocol here assumes.

    kernels: "default" (XNNPACK where it applies) or "reference" (the builtin reference kernels): for
    dynamic-range models the two can disagree on a clip or two, so a grader can pick the course's."""
    if kernels not in KERNELS:
        raise HarnessError(f"kernels: {kernels!r} is not one of {', '.join(KERNELS)}")
    if not tflite:  # LiteRT's own message for this names its arguments, not the file
        raise ModelError("the model file is empty (0 bytes)")
    extra = {}
    try:
        with quiet_stderr():
            from ai_edge_litert.interpreter import Interpreter, OpResolverType
        name = "ai_edge_litert"
        if kernels == "reference":
            extra = {"experimental_op_resolver_type": OpResolverType.BUILTIN_REF}
    except ImportError:  # pragma: no cover - platforms without a LiteRT wheel
        from harness.toolkit.tfsetup import tf

        Interpreter = tf().lite.Interpreter
        name = "tf.lite.Interpreter"
    try:
        with quiet_stderr():
            it = Interpreter(model_content=tflite, num_threads=num_threads, **extra)
            it.allocate_tensors()
    except (ValueError, RuntimeError) as e:
        raise ModelError(f"the model does not load in {name}: {' '.join(str(e).split())[:300]}") from None
    return it, name + (" (reference kernels)" if kernels == "reference" else "")


class Runner:
    """Batch-1 inference with float I/O, handling int8 I/O quantization if the model has it."""

    def __init__(self, tflite: bytes, kernels: str = "default"):
        self.kernels = kernels
        self.interpreter, self.runtime = load(tflite, kernels=kernels)
        self.inp = self.interpreter.get_input_details()[0]
        self.out = self.interpreter.get_output_details()[0]
        # int16 input without a scale is raw PCM audio (a keyword model with its front end inside): values as given
        self.raw_int16 = self.inp["dtype"] == np.int16 and not self.inp["quantization"][0]
        for what, d in (("input", self.inp), ("output", self.out)):
            if d["dtype"] != np.float32 and not d["quantization"][0] and not (what == "input" and self.raw_int16):
                raise ModelError(f"the model's {what} is {np.dtype(d['dtype']).name} but carries no quantization scale")
        self.input_shape = tuple(int(d) for d in self.inp["shape"])
        self.output_shape = tuple(int(d) for d in self.out["shape"])

    def set(self, x: np.ndarray) -> None:
        if self.inp["dtype"] != np.float32 and not self.raw_int16:
            scale, zero = self.inp["quantization"]
            info = np.iinfo(self.inp["dtype"])  # int8 or uint8 inputs, with their own range
            x = np.clip(np.round(x / scale + zero), info.min, info.max)
        self.interpreter.set_tensor(self.inp["index"], x.astype(self.inp["dtype"]).reshape(self.input_shape))

    def get(self) -> np.ndarray:
        y = self.interpreter.get_tensor(self.out["index"])
        if self.out["dtype"] != np.float32:
            scale, zero = self.out["quantization"]
            y = (y.astype(np.float32) - zero) * scale
        return y

    def __call__(self, x: np.ndarray) -> np.ndarray:
        self.set(x)
        self.interpreter.invoke()
        return self.get()

    def predict(self, xs: np.ndarray) -> np.ndarray:
        """Run every sample through the file one at a time, as a device would."""
        out = np.empty((len(xs),) + self.output_shape[1:], np.float32)
        for i in range(len(xs)):
            out[i] = self(xs[i : i + 1])[0]
        return out


_WEIGHT_OPS = {"FULLY_CONNECTED": 1, "CONV_2D": 1, "DEPTHWISE_CONV_2D": 1}


def weight_sparsity(tflite: bytes) -> dict[str, float]:
    """Zeros in the weight tensors of the file itself (what pruning really left after conversion)."""
    it, _ = load(tflite)
    per_op: dict[str, list[int]] = {}
    seen = set()
    ops = it._get_ops_details()  # noqa: SLF001 - the only API listing op inputs
    # fp16 / dynamic weights reach the op through a DEQUANTIZE of the stored constant
    dequant_src = {int(op["outputs"][0]): int(op["inputs"][0]) for op in ops if op["op_name"] == "DEQUANTIZE"}
    for op in ops:
        pos = _WEIGHT_OPS.get(op["op_name"])
        if pos is None or len(op["inputs"]) <= pos:
            continue
        idx = int(op["inputs"][pos])
        idx = dequant_src.get(idx, idx)
        if idx in seen or idx < 0:
            continue
        seen.add(idx)
        try:
            w = it.get_tensor(idx)
        except ValueError:
            continue  # produced at run time (e.g. dequantized on the fly), not a stored constant
        z = per_op.setdefault(op["op_name"], [0, 0])
        z[0] += int(np.sum(w == 0))
        z[1] += int(w.size)
    total_zero = sum(v[0] for v in per_op.values())
    total = sum(v[1] for v in per_op.values())
    out = {k: v[0] / v[1] for k, v in per_op.items() if v[1]}
    out["all"] = total_zero / total if total else 0.0
    return out


def _litert_interpreter():
    from ai_edge_litert.interpreter import Interpreter

    return Interpreter


def _tf_lite_interpreter():
    from harness.toolkit.tfsetup import tf

    return tf().lite.Interpreter


# name shown in the table, the package whose version is shown, how to get the interpreter class
RUNTIMES = (("ai_edge_litert", "ai-edge-litert", _litert_interpreter), ("tf.lite", "tensorflow", _tf_lite_interpreter))


def runtimes_loading(tflite: bytes) -> dict[str, str]:
    """Which interpreters installed here load and run the file once: name -> "yes" or the reason it failed.

    tflite-runtime (what a Raspberry Pi user often installs) cannot be tested beside numpy 2 on this stack."""
    from importlib import metadata

    out = {}
    for name, package, interpreter in RUNTIMES:
        key = f"{name} {metadata.version(package)}"
        try:
            with quiet_stderr(), warnings.catch_warnings():
                warnings.simplefilter("ignore")  # tf.lite.Interpreter's deprecation notice: we test it on purpose
                it = interpreter()(model_content=tflite, num_threads=1)
                it.allocate_tensors()
                d = it.get_input_details()[0]
                it.set_tensor(d["index"], np.zeros(d["shape"], d["dtype"]))
                it.invoke()
            out[key] = "yes"
        except Exception as e:  # any failure to load or run is the answer, not an error of the run
            out[key] = f"no ({type(e).__name__}: {' '.join(str(e).split())[:120]})"
    return out
