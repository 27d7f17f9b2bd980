"""tasks.kws.features: argument validation, numpy vs tf.signal parity, shapes, resampling, feature cache."""
from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
from scipy.signal import resample_poly

from harness.core.errors import HarnessError
from harness.toolkit import datasets
from tasks.kws import features as F
from tasks.kws.features import NumpyFeatures, PreprocessingArgs

ROOT = Path(__file__).resolve().parents[2]
COURSE_DEFAULT = dict(sampling_rate=16000, frame_length_in_s=0.04, frame_step_in_s=0.02, num_mel_bins=40,
                      lower_frequency=20, upper_frequency=4000, num_coefficients=10)
PARITY_ARGS = {
    "course-default": COURSE_DEFAULT,
    "8k-16mel": dict(COURSE_DEFAULT, sampling_rate=8000, num_mel_bins=16),
    "logmel-32ms": dict(COURSE_DEFAULT, frame_length_in_s=0.032, frame_step_in_s=0.016, num_coefficients=0),
    "16ms-10mel": dict(COURSE_DEFAULT, frame_length_in_s=0.016, frame_step_in_s=0.008, num_mel_bins=10,
                       lower_frequency=40),
}
# Both pipelines run float32 FFTs that round differently; log() magnifies that in weak mel bands next to
# strong ones. Measured on 40 real test clips: MFCC max 5e-5; log-Mel max 1.5e-4 on 1 of 97,600 values
# (TF itself is 8.5e-5 away from a float64 reference there), 99.99th percentile 2e-5.
MFCC_TOL = 1e-3
LOGMEL_TOL = 2e-4
MEL_MATRIX_TOL = 2e-5  # TF's float32 log differs from numpy's by 1 ulp on a few bins (~5e-6 at 40 mel)


@pytest.fixture(scope="module")
def tf_mod():
    from harness.toolkit.tfsetup import tf

    return tf()


@pytest.fixture(scope="module")
def real_audio(shared_data) -> np.ndarray:
    """Four real clips (float, 16 kHz, padded to 1 s) plus one of loud noise: float32 [5, 16000]."""
    from tasks.kws.data import find_corpus

    corpus = find_corpus(shared_data)
    items = corpus.items()[::2003][:4]
    clips = np.stack([corpus.read(*item) for item in items]).astype(np.float32) / 32768
    # Full-scale noise on the int16 grid, so the int16 batch path sees exactly the same audio.
    noise = np.random.default_rng(0).integers(-32768, 32768, (1, 16000)).astype(np.float32) / 32768
    return np.concatenate([clips, noise])


# -- arguments --------------------------------------------------------------------------------------


def test_default_args_shape():
    args = PreprocessingArgs.from_dict(COURSE_DEFAULT)
    assert args == PreprocessingArgs()
    assert (args.frame_length, args.frame_step, args.num_frames) == (640, 320, 49)
    assert args.feature_shape == (49, 10)
    assert args.to_dict() == {k: float(v) if k in ("lower_frequency", "upper_frequency") else v
                              for k, v in COURSE_DEFAULT.items()}
    assert PreprocessingArgs.from_dict(dict(COURSE_DEFAULT, num_coefficients=0)).feature_shape == (49, 40)
    assert PreprocessingArgs.from_dict(PARITY_ARGS["8k-16mel"]).feature_shape == (49, 10)


@pytest.mark.parametrize("change, key", [
    ({"num_mel_bin": 40}, "num_mel_bin"),  # unknown key (typo)
    ({"num_mel_bins": "40"}, "num_mel_bins"),  # wrong type
    ({"num_coefficients": 10.0}, "num_coefficients"),
    ({"sampling_rate": True}, "sampling_rate"),
    ({"upper_frequency": 8001}, "upper_frequency"),  # above Nyquist
    ({"sampling_rate": 8000, "upper_frequency": 4001}, "upper_frequency"),
    ({"sampling_rate": 12000}, "sampling_rate"),
    ({"frame_length_in_s": 0.0401}, "frame_length_in_s"),  # 641.6 samples
    ({"frame_step_in_s": 0.0}, "frame_step_in_s"),
    ({"num_coefficients": 41}, "num_coefficients"),
    ({"lower_frequency": 4000}, "lower_frequency"),
    ({"lower_frequency": -1}, "lower_frequency"),
    ({"lower_frequency": float("nan")}, "lower_frequency"),
])
def test_args_validation_names_the_key(change, key):
    with pytest.raises(HarnessError, match=rf"recipe.toml \[features\]: .*{key}"):
        PreprocessingArgs.from_dict(dict(COURSE_DEFAULT, **change), where="recipe.toml [features]")


def test_missing_key():
    d = dict(COURSE_DEFAULT)
    del d["num_mel_bins"]
    with pytest.raises(HarnessError, match="missing preprocessing key 'num_mel_bins'"):
        PreprocessingArgs.from_dict(d)


# -- parity with tf.signal --------------------------------------------------------------------------


@pytest.mark.parametrize("name", PARITY_ARGS)
def test_mel_matrix_matches_tf(name, tf_mod):
    args = PreprocessingArgs.from_dict(PARITY_ARGS[name])
    ours = NumpyFeatures(args).mel
    theirs = F.tf_mel_matrix(args).numpy()
    assert ours.shape == theirs.shape == (args.frame_length // 2 + 1, args.num_mel_bins)
    assert not ours[0].any()  # the DC bin is zeroed, as in TF
    assert np.abs(ours - theirs).max() < MEL_MATRIX_TOL


def test_dct_matrix_matches_tf_mfcc(tf_mod):
    log_mel = np.random.default_rng(1).normal(size=(7, 40)).astype(np.float32)
    theirs = tf_mod.signal.mfccs_from_log_mel_spectrograms(log_mel).numpy()[:, :10]
    assert np.abs(log_mel @ F.dct_matrix(40, 10) - theirs).max() < 1e-5


@pytest.mark.parametrize("name", PARITY_ARGS)
def test_numpy_matches_tf_signal(name, real_audio, tf_mod):
    args = PreprocessingArgs.from_dict(PARITY_ARGS[name])
    extractor = NumpyFeatures(args)
    reference = F.tf_reference_features(real_audio, args)
    per_clip = np.stack([extractor(x) for x in real_audio])
    batched = extractor.batch((real_audio * 32768).astype(np.int16))
    assert reference.shape == per_clip.shape == (len(real_audio), *args.feature_shape)
    assert batched.shape == (len(real_audio), *args.feature_shape, 1) and batched.dtype == np.float32
    tol = MFCC_TOL if args.num_coefficients else LOGMEL_TOL
    assert np.abs(per_clip - reference).max() < tol
    assert np.abs(batched[..., 0] - reference).max() < tol
    assert np.isfinite(per_clip).all()


def test_tf_function_matches_eager(real_audio, tf_mod):
    args = PreprocessingArgs.from_dict(PARITY_ARGS["8k-16mel"])
    graph = F.tf_feature_function(args)
    audio_8k = resample_poly(real_audio[0], 1, 2).astype(np.float32)
    assert np.abs(graph(audio_8k).numpy() - F.tf_reference_features(real_audio[0], args)).max() < 1e-5


# -- numpy path details -----------------------------------------------------------------------------


def test_real_clip_default_features(shared_data):
    from tasks.kws.data import find_corpus

    corpus = find_corpus(shared_data)
    feats = NumpyFeatures(PreprocessingArgs()).from_int16(corpus.read("yes", corpus.items(["yes"])[0][1]))
    assert feats.shape == (49, 10) and feats.dtype == np.float32 and np.isfinite(feats).all()


@pytest.mark.parametrize("n, down", [(48000, 6), (48000, 3), (16000, 2), (15999, 4), (50, 16)])
def test_fast_resample_matches_scipy(n, down):
    x = np.random.default_rng(n).uniform(-1, 1, n).astype(np.float32)
    ours, ref = F.resample(x, down), resample_poly(x, 1, down)
    assert ours.shape == ref.shape and ours.dtype == np.float32
    assert np.abs(ours - ref).max() < 1e-6


def test_resample_from_48k():
    args = PreprocessingArgs.from_dict(PARITY_ARGS["8k-16mel"])
    x48 = np.random.default_rng(2).uniform(0, 1, 48000).astype(np.float32)
    feats = NumpyFeatures(args).resample_from(x48, 48000)
    expected = NumpyFeatures(args).at_rate(resample_poly(x48, 1, 6))
    assert feats.shape == (49, 10) and np.abs(feats - expected).max() < 1e-4
    with pytest.raises(HarnessError, match="44100"):
        NumpyFeatures(args).resample_from(x48, 44100)


def test_numpy_features_do_not_import_tensorflow():
    code = ("import sys, numpy as np\n"
            "from tasks.kws.features import NumpyFeatures, PreprocessingArgs\n"
            "NumpyFeatures(PreprocessingArgs(sampling_rate=8000))(np.zeros(16000, np.float32))\n"
            "assert 'tensorflow' not in sys.modules\n")
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, timeout=60)


# -- feature cache ----------------------------------------------------------------------------------


@pytest.fixture
def cached_corpus(shared_data, tmp_path, monkeypatch):
    """The corpus, with the feature cache in this test's own folder (tmp_path/kws_features)."""
    from tasks.kws.data import find_corpus

    monkeypatch.setenv(datasets.CACHE_DIR_ENV, str(tmp_path))
    return find_corpus(shared_data)


def test_cached_features_written_once_and_reused(cached_corpus, tmp_path, monkeypatch):
    corpus = cached_corpus
    items = corpus.items(["go"])[:3] + corpus.items(["stop"])[:2]
    labels = ["go", "stop"]
    args = PreprocessingArgs()
    X, y = F.cached_features(corpus, items, labels, args, "train")
    assert X.shape == (5, 49, 10, 1) and y.tolist() == [0, 0, 0, 1, 1]
    direct = NumpyFeatures(args).batch(np.stack([corpus.read(*i) for i in items]))
    assert np.array_equal(X, direct)
    files = list((tmp_path / "kws_features").glob("train-*.npz"))
    assert len(files) == 1

    def no_extraction(*_):
        raise AssertionError("features recomputed despite the cache")

    monkeypatch.setattr(NumpyFeatures, "batch", no_extraction)
    X2, y2 = F.cached_features(corpus, items, labels, args, "train")
    assert np.array_equal(X2, X) and np.array_equal(y2, y)
    # Another label order changes y, so it must be another cache entry (recomputed: extraction called).
    with pytest.raises(AssertionError, match="recomputed"):
        F.cached_features(corpus, items, ["stop", "go"], args, "train")


def test_the_2022_23_key_downsampling_rate_reads_as_sampling_rate():
    d = {**F.PreprocessingArgs().to_dict()}
    d["downsampling_rate"] = d.pop("sampling_rate")
    assert F.PreprocessingArgs.from_dict(d) == F.PreprocessingArgs()
    with pytest.raises(HarnessError, match="both 'sampling_rate' and 'downsampling_rate'"):
        F.PreprocessingArgs.from_dict({**d, "sampling_rate": 16000})


def _flip_a_feature_bit(raw: bytearray) -> None:
    raw[raw.index(b"\x93NUMPY", raw.index(b"X.npy")) + 300] ^= 0x10


def _huge_declared_shape(raw: bytearray) -> None:
    # Same length (the header's padding shrinks), so the zip stays readable: only the shape lies.
    old, new = b"(5, 49, 10, 1), }" + b" " * 12, b"(5000000000000, 49, 10, 1), }"
    assert raw.count(old) == 1
    raw[:] = raw.replace(old, new)


def _unknown_compression_method(raw: bytearray) -> None:
    central = raw.rindex(b"PK\x01\x02", 0, raw.rindex(b"X.npy"))
    raw[central + 10:central + 12] = (99).to_bytes(2, "little")


def _truncated(raw: bytearray) -> None:
    del raw[len(raw) // 2:]


@pytest.mark.parametrize("damage", [_flip_a_feature_bit, _huge_declared_shape, _unknown_compression_method, _truncated],
                         ids=["bit-flip", "huge-declared-shape", "compression-method-99", "truncated"])
def test_a_damaged_feature_cache_is_reported_in_one_line_and_recomputed(cached_corpus, tmp_path, capsys, damage):
    corpus = cached_corpus
    items = corpus.items(["go"])[:3] + corpus.items(["stop"])[:2]
    X, _ = F.cached_features(corpus, items, ["go", "stop"], PreprocessingArgs(), "test")
    (path,) = (tmp_path / "kws_features").glob("test-*.npz")
    raw = bytearray(path.read_bytes())
    damage(raw)
    path.write_bytes(bytes(raw))
    capsys.readouterr()
    again, _ = F.cached_features(corpus, items, ["go", "stop"], PreprocessingArgs(), "test")
    assert np.array_equal(again, X)
    said = [line for line in capsys.readouterr().out.splitlines() if str(path) in line]
    assert len(said) == 1 and said[0].endswith("recomputing")
    # rewritten: the next read trusts it again
    assert F._load_cached(path, X.shape, np.array([0, 0, 0, 1, 1], np.int32)) is not None


def test_a_feature_cache_that_cannot_be_written_is_said_and_skipped(cached_corpus, monkeypatch, capsys):
    from tasks.kws.features import cache

    corpus = cached_corpus
    items = corpus.items(["go"])[:2] + corpus.items(["stop"])[:2]
    expected, _ = F.cached_features(corpus, items, ["go", "stop"], PreprocessingArgs(), "test", use_cache=False)

    def read_only(path, data):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(cache, "write_bytes", read_only)
    capsys.readouterr()
    X, _ = F.cached_features(corpus, items, ["go", "stop"], PreprocessingArgs(), "val")
    assert np.array_equal(X, expected)
    said = [line for line in capsys.readouterr().out.splitlines() if "cannot be written" in line]
    assert len(said) == 1 and "Permission denied" in said[0] and said[0].endswith("going on without it")


def test_an_interrupt_while_reading_the_feature_cache_is_not_taken_for_damage(tmp_path, monkeypatch):
    path = tmp_path / "test-x.npz"
    np.savez(path, X=np.zeros((1, 49, 10, 1), np.float32))

    def interrupted(*_, **__):
        raise KeyboardInterrupt

    monkeypatch.setattr(np, "load", interrupted)
    monkeypatch.setattr(zipfile, "ZipFile", interrupted)
    with pytest.raises(KeyboardInterrupt):
        F._load_cached(path, (1, 49, 10, 1), np.zeros(1, np.int32))


def test_a_feature_cache_whose_array_differs_from_its_recorded_sha256_is_recomputed(cached_corpus, tmp_path, capsys):
    """A well-formed file (zip CRCs right) whose X is not the one its sha256 names: only the sha256 can tell."""
    corpus = cached_corpus
    items = corpus.items(["go"])[:3] + corpus.items(["stop"])[:2]
    X, y = F.cached_features(corpus, items, ["go", "stop"], PreprocessingArgs(), "test")
    (path,) = (tmp_path / "kws_features").glob("test-*.npz")
    with np.load(path) as d:
        digest = d["sha256"]
    np.savez(path, X=X + 1, y=y, sha256=digest)
    capsys.readouterr()
    again, _ = F.cached_features(corpus, items, ["go", "stop"], PreprocessingArgs(), "test")
    assert np.array_equal(again, X)
    assert any(str(path) in line and "does not match its record" in line for line in capsys.readouterr().out.splitlines())


def test_the_feature_cache_key_covers_row_order_and_preprocessing_args(cached_corpus):
    corpus = cached_corpus
    items = corpus.items(["go"])[:3]
    args = PreprocessingArgs()
    X, _ = F.cached_features(corpus, items, ["go"], args, "train")
    reordered, _ = F.cached_features(corpus, items[::-1], ["go"], args, "train")  # same labels, other row order
    assert np.array_equal(reordered, X[::-1])
    other = PreprocessingArgs(lower_frequency=40.0)  # same feature shape, other features
    X2, _ = F.cached_features(corpus, items, ["go"], other, "train")
    assert np.array_equal(X2, NumpyFeatures(other).batch(np.stack([corpus.read(*i) for i in items])))
