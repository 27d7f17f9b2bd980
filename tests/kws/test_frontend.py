"""tasks.kws.frontend: raw-audio keyword models with the AudioSpectrogram + Mfcc front end in the .tflite.

A tiny Conv / GAP / Dense classifier trained for a few epochs on synthetic 1 s clips of three kinds (two
tones and noise, with a zero-padded tail as real clips have), converted float, int8 (float32 audio) and
int8 (int16 audio). Measured here (tensorflow 2.21.0, ai-edge-litert 2.3.0): the file's front end gives
exactly the training features (max |diff| 0, also on 80 real clips); int8 vs float file probabilities
differ by < 0.05.
"""
import numpy as np
import pytest

from harness.core.errors import HarnessError
from harness.toolkit.tfsetup import keras, quiet_stderr, seed_everything
from tasks.kws import frontend
from tasks.kws.features import NumpyFeatures, PreprocessingArgs

ARGS = PreprocessingArgs(sampling_rate=16000, frame_length_in_s=0.04, frame_step_in_s=0.02, num_mel_bins=40,
                         lower_frequency=20.0, upper_frequency=8000.0, num_coefficients=10)  # ml4iot-2022 c
CLASSES = 3
FEATURE_TOL = 1e-4  # TF kernels (training) vs TFLite kernels (file); measured 0
# course_c0 features vs the course's (numpy) on these clips: rms difference per coefficient. Measured on the
# 800 real validation clips: rms 0.026-0.066 (max 6.0 on c0, in frames partly below the course's log floor).
COURSE_RMS_TOL = 0.15
INT8_PROB_TOL = 0.1  # |p_int8 - p_float| per class on the held-out clips


def _clips(n, rng):
    """int16 [n, 16000] clips of class y: a 500 Hz tone, a 3 kHz tone or noise; random level, zero tail."""
    y = rng.integers(0, CLASSES, n)
    t = np.arange(16000) / 16000
    audio = np.zeros((n, 16000), np.float32)
    for i, label in enumerate(y):
        length = rng.integers(9000, 16001)
        level = rng.uniform(0.05, 0.5)
        if label == 2:
            sig = rng.normal(scale=level / 2, size=length)
        else:
            sig = level * np.sin(2 * np.pi * (500 if label == 0 else 3000) * t[:length] + rng.uniform(0, 6.3))
        audio[i, :length] = sig + rng.normal(scale=1e-3, size=length)
    return np.clip(np.round(audio * 32767), -32768, 32767).astype(np.int16), y


@pytest.fixture(scope="module")
def built():
    seed_everything(3)
    rng = np.random.default_rng(3)
    x_train, y_train = _clips(96, rng)
    x_test, _ = _clips(8, rng)
    f_train = frontend.features(x_train, ARGS)
    K = keras()
    model = K.Sequential([
        K.layers.Input((*ARGS.feature_shape, 1)),
        K.layers.BatchNormalization(),
        K.layers.Conv2D(8, 3, strides=2, activation="relu"),
        K.layers.GlobalAveragePooling2D(),
        K.layers.Dense(CLASSES),
        K.layers.Softmax(),
    ])
    model.compile(K.optimizers.Adam(1e-2), K.losses.SparseCategoricalCrossentropy())
    with quiet_stderr():
        model.fit(f_train, y_train, epochs=5, batch_size=32, verbose=0)
    files = {
        "float": frontend.to_tflite(model, ARGS, "none"),
        "int8": frontend.to_tflite(model, ARGS, "int8", x_train[:32].astype(np.float32) / 32768),
        "int8-int16": frontend.to_tflite(model, ARGS, "int8", x_train[:32], input_dtype="int16"),
    }
    return model, files, x_test


def _run(tflite, clips):
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_content=tflite, num_threads=1)
    it.allocate_tensors()
    inp, out = it.get_input_details()[0], it.get_output_details()[0]
    results = []
    for clip in clips:
        it.set_tensor(inp["index"], clip.reshape(-1, 1).astype(inp["dtype"]))
        it.invoke()
        results.append(it.get_tensor(out["index"]).copy())
    return inp, np.stack(results)


def test_op_codes_no_flex(built):
    _, files, _ = built
    for name, tflite in files.items():
        codes = frontend.op_codes(tflite)
        assert set(frontend.FRONT_END_OPS) <= set(codes), name
        assert not any("Flex" in c for c in codes), (name, codes)
        assert all(c in frontend.FRONT_END_OPS or not c.startswith("CUSTOM") for c in codes), (name, codes)
    assert "CONV_2D" in frontend.op_codes(files["int8"])
    assert frontend.operators(files["int8-int16"])[:4] == ["CAST", "MUL", *frontend.FRONT_END_OPS]


def test_int8_front_end_stays_float(built):
    """Only the model part is integer: no (DE)QUANTIZE before Mfcc, a QUANTIZE right after it."""
    _, files, _ = built
    for name in ("int8", "int8-int16"):
        ops = frontend.operators(files[name])
        cut = ops.index("CUSTOM:Mfcc")
        assert "QUANTIZE" not in ops[:cut] and "DEQUANTIZE" not in ops[:cut], (name, ops)
        assert ops[cut + 1] == "QUANTIZE", (name, ops)


def test_raw_audio_files_load_and_give_probabilities(built):
    model, files, x_test = built
    expected = model.predict(frontend.features(x_test, ARGS), verbose=0)
    for name, tflite in files.items():
        clips = x_test if name == "int8-int16" else x_test.astype(np.float32) / 32768
        inp, probs = _run(tflite, clips)
        assert tuple(inp["shape"]) == (16000, 1)
        assert inp["dtype"] == (np.int16 if name == "int8-int16" else np.float32)
        assert probs.shape == (len(x_test), 1, CLASSES)
        assert np.all(probs >= 0) and np.allclose(probs.sum(-1), 1, atol=1e-2)
        tol = 1e-5 if name == "float" else INT8_PROB_TOL
        assert np.abs(probs[:, 0] - expected).max() < tol, name


def test_in_graph_features_equal_training_features(built):
    _, _, x_test = built
    train = frontend.features(x_test, ARGS)[..., 0]
    assert np.array_equal(train, frontend.features(x_test.astype(np.float32) / 32768, ARGS)[..., 0])
    for dtype, clips in (("float32", x_test.astype(np.float32) / 32768), ("int16", x_test)):
        _, feats = _run(frontend.frontend_only(ARGS, dtype), clips)
        assert feats.shape == (len(x_test), 1, *ARGS.feature_shape)
        assert np.abs(feats[:, 0] - train).max() <= FEATURE_TOL, dtype
    course_c0 = frontend.features(x_test, ARGS, course_c0=True)[..., 0]
    _, feats = _run(frontend.frontend_only(ARGS, course_c0=True), x_test.astype(np.float32) / 32768)
    assert np.abs(feats[:, 0] - course_c0).max() <= FEATURE_TOL
    assert np.array_equal(course_c0[..., 1:], train[..., 1:])


def test_course_c0_is_close_to_course_features(shared_data):
    """On real (broadband) clips; pure tones are not close: FFT 1024 vs 640 leaks differently into weak bands.
    Without course_c0, c0 is far from the course's (zero-padded frames: -247 vs -124)."""
    from tasks.kws.data import find_corpus

    corpus = find_corpus(shared_data)
    clips = np.stack([corpus.read(*item) for item in corpus.items()[::400][:20]])
    course = NumpyFeatures(ARGS).batch(clips)[..., 0]
    plain = frontend.features(clips, ARGS)[..., 0]
    fixed = frontend.features(clips, ARGS, course_c0=True)[..., 0]
    rms = np.sqrt(((fixed - course) ** 2).mean((0, 1)))
    assert rms.max() < COURSE_RMS_TOL, rms
    assert np.sqrt(((plain - course)[..., 0] ** 2).mean()) > 10 * COURSE_RMS_TOL


def test_front_end_shape_and_fft_length():
    assert frontend.fft_length(ARGS) == 1024
    feats = frontend.features(np.zeros((2, 16000), np.int16), ARGS)
    assert feats.shape == (2, 49, 10, 1) and np.isfinite(feats).all()


@pytest.mark.parametrize("change", [{"sampling_rate": 8000}, {"num_coefficients": 0}])
def test_unsupported_args(change):
    args = PreprocessingArgs(**{**ARGS.to_dict(), "upper_frequency": 4000.0, **change})
    with pytest.raises(HarnessError):
        frontend.check_args(args)
    with pytest.raises(HarnessError):
        frontend.to_tflite(lambda x, training=False: x, args, "none")


@pytest.mark.parametrize("frame_s, fft", [(0.032, 512), (0.03, 512), (0.04, 1024), (0.016, 256)])
def test_fft_length_is_the_spectrogram_ops_own_and_course_c0_moves_c0_only_when_it_differs(frame_s, fft):
    from harness.toolkit.tfsetup import tf

    args = PreprocessingArgs(**{**ARGS.to_dict(), "frame_length_in_s": frame_s, "frame_step_in_s": 0.016})
    assert frontend.fft_length(args) == fft
    spectrogram = tf().raw_ops.AudioSpectrogram(input=np.zeros((16000, 1), np.float32), window_size=args.frame_length,
                                                stride=args.frame_step, magnitude_squared=True)
    assert spectrogram.shape[-1] == fft // 2 + 1
    shift, _ = frontend.course_c0_constants(args)
    expected = -np.sqrt(2 * args.num_mel_bins) * np.log(fft / args.frame_length)
    np.testing.assert_allclose(shift, [expected] + [0.0] * (args.num_coefficients - 1), atol=1e-6)
    assert (shift[0] == 0.0) == (fft == args.frame_length)
