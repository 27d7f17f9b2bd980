"""Keyword models that take raw audio: the MFCC front end inside the .tflite.

Why: a file whose input is the 1 s clip itself needs nothing on the device but the interpreter — no
numpy/scipy feature code to port, and no way for the device's features to drift from the training ones.

The front end is TensorFlow's `AudioSpectrogram` + `Mfcc` ops. The converter keeps them as the custom
ops "AudioSpectrogram" and "Mfcc" (hence `allow_custom_ops`), which the stock TFLite op resolver
registers: `ai_edge_litert` and `tf.lite` load the file with no Flex delegate and no registration.
Every other op is a TFLite builtin. These ops define their own features, not the course's:

- FFT length = next power of two of the frame (1024 for 640 samples, the course uses 640): the mel
  sums grow by 1024/640, so c0 is sqrt(2M) ln(1.6) = 4.2 higher (M = 40 mel bins);
- log(max(mel, 1e-12)) instead of the course's log(mel + 1e-6) (all-zero frames: c0 -247 vs -124).

On 80 real clips (2022 c settings) coefficients 1..C-1 agree with the course's (slope 1.00, r >= 0.9995,
rms difference 1-3 % of their spread); c0 does not (r 0.93). So models are trained on these features
(`features`: the same TF kernels, which give bit-identical values to the TFLite kernels in the file).
`course_c0=True` moves c0 toward the course's instead (c0 - 4.2, then floored at the course's all-silent
value sqrt(2M) ln(1e-6); an ADD and a MAXIMUM op): a model trained on the course's features then runs on
raw audio without retraining (2022 c, 15 epochs: val 95.00 % on course features, 94.75 % this way).

Layout: audio float32 [samples, 1] in [-1, 1] (what tf.audio.decode_wav returns) or int16 [samples, 1];
output: the feature model's output for a batch of one, e.g. probabilities [1, labels].
With mode "int8" only the model part is integer: the front end stays float32 and a QUANTIZE op follows
it. (The quantizer would otherwise quantize a float op in front of AudioSpectrogram — the int16 scale —
to int8, i.e. the audio to 8 bits; `to_tflite` keeps that op float, see `_int8_keep_front_end_float`.)

Only sampling_rate 16000 (the corpus rate: no resampling in the graph) and MFCC features
(num_coefficients > 0) are supported.
"""
from __future__ import annotations

import warnings

import numpy as np

from harness.core.errors import HarnessError
from harness.toolkit.tfsetup import quiet_stderr, tf
from tasks.kws.features.args import PreprocessingArgs
from tasks.kws.features.constants import LOG_OFFSET, SOURCE_RATE_HZ

FRONT_END_OPS = ("CUSTOM:AudioSpectrogram", "CUSTOM:Mfcc")
INPUT_DTYPES = ("float32", "int16")
MODES = ("none", "dynamic", "int8")
_SCALE_NODE = "frontend_int16_scale"  # the int16 -> [-1, 1) multiply, kept float in int8 files
_CHUNK = 256  # clips per feature batch (the spectrogram of 256 clips is ~26 MB)


def check_args(args: PreprocessingArgs) -> None:
    """HarnessError if the in-graph front end cannot compute features for `args`."""
    if args.sampling_rate != SOURCE_RATE_HZ:
        raise HarnessError(f"in-graph front end: sampling_rate must be {SOURCE_RATE_HZ} Hz (no resampling in the "
                           f"graph), got {args.sampling_rate}")
    if args.num_coefficients == 0:
        raise HarnessError("in-graph front end: the Mfcc op gives MFCCs only; log-Mel features "
                           "(num_coefficients = 0) are not supported")


def fft_length(args: PreprocessingArgs) -> int:
    """FFT length AudioSpectrogram uses: the next power of two of the frame length (course: the frame length)."""
    return 1 << (args.frame_length - 1).bit_length()


def course_c0_constants(args: PreprocessingArgs) -> tuple[np.ndarray, np.ndarray]:
    """(shift, low) float32 [C]: course_c0 features are max(mfcc + shift, low); only c0 changes."""
    c = args.num_coefficients
    shift = np.zeros(c, np.float32)
    shift[0] = -np.sqrt(2 * args.num_mel_bins) * np.log(fft_length(args) / args.frame_length)
    low = np.full(c, np.finfo(np.float32).min, np.float32)
    low[0] = np.sqrt(2 * args.num_mel_bins) * np.log(LOG_OFFSET)  # c0 of an all-zero frame, course features
    return shift, low


def front_end(audio, args: PreprocessingArgs, course_c0: bool = False):
    """TF ops: float32 audio [samples, channels] in [-1, 1] -> float32 MFCCs [channels, frames, C].

    Channels are independent, so a batch of clips is computed as channels (see `features`)."""
    t = tf()
    spectrogram = t.raw_ops.AudioSpectrogram(input=audio, window_size=args.frame_length, stride=args.frame_step,
                                             magnitude_squared=True)  # Mfcc takes the power spectrum
    mfcc = t.raw_ops.Mfcc(spectrogram=spectrogram, sample_rate=args.sampling_rate,
                          upper_frequency_limit=args.upper_frequency, lower_frequency_limit=args.lower_frequency,
                          filterbank_channel_count=args.num_mel_bins, dct_coefficient_count=args.num_coefficients)
    if course_c0:
        shift, low = course_c0_constants(args)
        mfcc = t.maximum(mfcc + shift, low)
    return mfcc


def features(audio: np.ndarray, args: PreprocessingArgs, course_c0: bool = False) -> np.ndarray:
    """Training features with the same ops: audio [N, samples] (int16, or float in [-1, 1]) -> float32
    [N, frames, C, 1], the feature model's input. int16 is scaled by 1/32768 as in the file."""
    check_args(args)
    t = tf()
    audio = np.asarray(audio)
    if audio.ndim != 2 or audio.shape[1] < args.frame_length:
        raise ValueError(f"expected audio [N, >= {args.frame_length} samples], got shape {audio.shape}")
    frames = (audio.shape[1] - args.frame_length) // args.frame_step + 1
    out = np.empty((audio.shape[0], frames, args.num_coefficients, 1), np.float32)
    for start in range(0, audio.shape[0], _CHUNK):
        chunk = audio[start:start + _CHUNK]
        if chunk.dtype == np.int16:
            chunk = chunk.astype(np.float32) * np.float32(1.0 / 32768.0)
        out[start:start + len(chunk), ..., 0] = front_end(t.constant(chunk.T.astype(np.float32)), args, course_c0).numpy()
    return out


def raw_audio_function(feature_model, args: PreprocessingArgs, input_dtype: str = "float32", course_c0: bool = False):
    """tf.function audio [samples, 1] (`input_dtype`) -> feature_model(features [1, frames, C, 1]).

    `feature_model` maps float32 [B, frames, C, 1] to the output (end it with a softmax for probabilities)."""
    check_args(args)
    if input_dtype not in INPUT_DTYPES:
        raise HarnessError(f"in-graph front end: input_dtype must be one of {', '.join(INPUT_DTYPES)}, got {input_dtype!r}")
    t = tf()
    shape = (1, args.num_frames, args.num_coefficients, 1)

    @t.function(input_signature=[t.TensorSpec([args.sampling_rate, 1], getattr(t, input_dtype), name="audio")])
    def raw_audio(audio):
        if input_dtype == "int16":
            audio = t.multiply(t.cast(audio, t.float32), 1.0 / 32768.0, name=_SCALE_NODE)
        return feature_model(t.reshape(front_end(audio, args, course_c0), shape), training=False)

    return raw_audio


def to_tflite(feature_model, args: PreprocessingArgs, mode: str = "int8", calibration_audio: np.ndarray | None = None,
              input_dtype: str = "float32", course_c0: bool = False) -> bytes:
    """One .tflite file: raw audio [samples, 1] -> feature_model's output, front end included.

    mode: none (float32) | dynamic (int8 weights) | int8 (int8 model part from `calibration_audio`
    [N, samples] in `input_dtype`; front end float32; float32 output). Builtin ops plus the two front-end
    custom ops; no Flex ops. course_c0: see the module docstring (the features the model was trained on)."""
    if mode not in MODES:
        raise HarnessError(f"in-graph front end: mode must be one of {', '.join(MODES)}, got {mode!r}")
    t = tf()
    fn = raw_audio_function(feature_model, args, input_dtype, course_c0)
    with quiet_stderr():
        concrete = fn.get_concrete_function()
    trackable = feature_model if isinstance(feature_model, t.Module) else None  # keeps the variables alive
    conv = t.lite.TFLiteConverter.from_concrete_functions([concrete], trackable)
    conv.target_spec.supported_ops = [t.lite.OpsSet.TFLITE_BUILTINS]
    conv.allow_custom_ops = True  # AudioSpectrogram and Mfcc: custom ops of the stock resolver
    if mode != "none":
        conv.optimizations = [t.lite.Optimize.DEFAULT]
    if mode == "int8":
        if calibration_audio is None or len(calibration_audio) == 0:
            raise HarnessError("in-graph front end: mode int8 needs calibration_audio")
        dtype = np.dtype(input_dtype)
        clips = np.asarray(calibration_audio)
        conv.representative_dataset = lambda: ([np.asarray(c, dtype).reshape(-1, 1)] for c in clips)
    with quiet_stderr(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "Statistics for quantized inputs were expected" (float input)
        if mode == "int8" and input_dtype == "int16":
            tflite = _int8_keep_front_end_float(conv)
        else:
            tflite = conv.convert()
    _check_front_end_float(tflite)
    return tflite


def _int8_keep_front_end_float(conv) -> bytes:
    """int8 conversion with the int16 scale multiply kept float.

    The public converter quantizes that MUL (audio to int8 before the front end: probabilities off by
    0.09 on a test model); TF 2.21 offers a node denylist only through the calibrate-only path and
    `mlir_quantize` (what tf.lite.experimental.QuantizationDebugger uses), so this uses them."""
    from tensorflow.lite.python.convert import mlir_quantize

    conv._experimental_calibrate_only = True
    calibrated = conv.convert()
    return mlir_quantize(calibrated, denylisted_nodes=[_SCALE_NODE])


def op_codes(tflite: bytes) -> list[str]:
    """The file's operator codes in order: builtin names ("CONV_2D") and "CUSTOM:<custom_code>"."""
    from ai_edge_litert import schema_py_generated as schema

    names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_") and isinstance(v, int)}
    model = schema.Model.GetRootAs(tflite, 0)
    out = []
    for i in range(model.OperatorCodesLength()):
        oc = model.OperatorCodes(i)
        code = max(oc.BuiltinCode(), oc.DeprecatedBuiltinCode())  # deprecated_builtin_code caps at 127
        name = names.get(code, str(code))
        if name == "CUSTOM":
            name = "CUSTOM:" + (oc.CustomCode() or b"").decode()
        out.append(name)
    return out


def operators(tflite: bytes) -> list[str]:
    """The first subgraph's operators in execution order, as op-code names."""
    from ai_edge_litert import schema_py_generated as schema

    codes = op_codes(tflite)
    graph = schema.Model.GetRootAs(tflite, 0).Subgraphs(0)
    return [codes[graph.Operators(i).OpcodeIndex()] for i in range(graph.OperatorsLength())]


def _check_front_end_float(tflite: bytes) -> None:
    """The front end ops are present and nothing before them is (de)quantized."""
    ops = operators(tflite)
    if any(op not in ops for op in FRONT_END_OPS):
        raise HarnessError(f"in-graph front end: the converted file lacks {FRONT_END_OPS} (ops: {ops})")
    before = ops[:ops.index("CUSTOM:Mfcc")]
    if "QUANTIZE" in before or "DEQUANTIZE" in before:
        raise HarnessError(f"in-graph front end: the audio is quantized before the front end (ops: {ops})")
    flex = [op for op in op_codes(tflite) if op.startswith("CUSTOM:Flex")]
    if flex:
        raise HarnessError(f"in-graph front end: Flex ops in the file: {flex}")


def frontend_only(args: PreprocessingArgs, input_dtype: str = "float32", course_c0: bool = False) -> bytes:
    """The front end alone as a float .tflite: audio [samples, 1] -> MFCCs [1, frames, C] (parity checks, sizes)."""
    return to_tflite(lambda x, training=False: x[..., 0], args, mode="none", input_dtype=input_dtype,
                     course_c0=course_c0)
