"""Latency benchmarks (pytest-benchmark): our deployed feature pipeline vs the course's tf.signal pipeline,
and the whole keyword-spotting path on a shipped artifact. Run with `make bench`. Host CPU, one thread."""
import json
from pathlib import Path

import numpy as np
import pytest

from tasks.kws import features as feat

ROOT = Path(__file__).resolve().parents[1]
DEFAULT = feat.PreprocessingArgs()
RATE8K = feat.PreprocessingArgs.from_dict({**DEFAULT.to_dict(), "sampling_rate": 8000, "num_mel_bins": 16})
AUDIO16 = (np.random.default_rng(0).standard_normal(16000) / 32767).astype(np.float32)
AUDIO48 = np.random.default_rng(1).uniform(0, 1, 48000).astype(np.float32)


def _pedantic(benchmark, fn, rounds=200):
    return benchmark.pedantic(fn, rounds=rounds, iterations=1, warmup_rounds=20)


def test_numpy_mfcc_16k(benchmark):
    ex = feat.NumpyFeatures(DEFAULT)
    _pedantic(benchmark, lambda: ex(AUDIO16))


def test_numpy_mfcc_from_48k_to_16k(benchmark):  # the 2020/21 and 2021/22 latency input: 48 kHz, resampled in the timer
    ex = feat.NumpyFeatures(DEFAULT)
    _pedantic(benchmark, lambda: ex.resample_from(AUDIO48, 48000))


def test_numpy_mfcc_from_48k_to_8k(benchmark):
    ex = feat.NumpyFeatures(RATE8K)
    _pedantic(benchmark, lambda: ex.resample_from(AUDIO48, 48000))


def test_tf_function_mfcc_16k(benchmark):
    fn = feat.tf_feature_function(DEFAULT)
    _pedantic(benchmark, lambda: fn(AUDIO16))


def test_course_eager_tf_signal_mfcc_16k(benchmark):
    _pedantic(benchmark, lambda: feat.tf_reference_features(AUDIO16, DEFAULT), rounds=50)


def _shipped(suite, version):
    side = ROOT / "results" / "reference" / suite / f"version-{version}" / "kws" / "sidecar.json"
    if not side.is_file():
        pytest.skip(f"no shipped artifact for {suite} {version}: run make reference")
    meta = json.loads(side.read_text())
    from harness.toolkit import package

    blob = (side.parent / meta["artifact"]).read_bytes()
    return package.unpack(blob, meta["format"]), feat.PreprocessingArgs.from_dict(meta["PREPROCESSING_ARGS"])


@pytest.mark.parametrize("suite,version", [("ml4iot-2022", "b"), ("ml4iot-2022", "c"), ("ml4iot-2023", "a"),
                                           ("ml4iot-2024", "a"), ("ml4iot-2025", "a")])
def test_total_pipeline_on_shipped_model(benchmark, suite, version):
    """features (numpy, 16 kHz input) + set input + invoke + read output, on the file a user ships."""
    from harness.toolkit.measure.interpreter import Runner

    model, args = _shipped(suite, version)
    runner = Runner(model)
    ex = feat.NumpyFeatures(args)
    shape = runner.input_shape

    def total():
        return runner(ex(AUDIO16).reshape(shape))

    _pedantic(benchmark, total)
