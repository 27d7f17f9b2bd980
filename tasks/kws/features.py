"""The course's KWS preprocessing (log-Mel / MFCC), numerically faithful, in two implementations.

- `NumpyFeatures`: the deployed path, numpy/scipy only (no TensorFlow import), fast per clip and batched.
- `tf_reference_features` / `tf_feature_function`: the course-style tf.signal pipeline, for parity
  tests and as the "course eager tf.signal" latency reference. TensorFlow is imported lazily.

Course semantics (Lab 3, HW2 2020/21-2024/25): float audio = int16 / 32768; for rates below 16 kHz,
`scipy.signal.resample_poly(x, 1, 16000 // rate)`; STFT with FFT length = frame length (not the
next power of two), periodic Hann window, no end padding; magnitude; TF's mel matrix;
log(mel + 1e-6); MFCC = TF's `mfccs_from_log_mel_spectrograms`, first `num_coefficients`.
"""
from __future__ import annotations

import functools
import hashlib
import io
import json
import math
import zipfile
from dataclasses import asdict, dataclass, fields
from typing import Any, Mapping, Sequence

import numpy as np
import scipy.fft

from harness.core.errors import HarnessError
from harness.toolkit.atomic import write_bytes
from harness.toolkit.datasets import cache_dir

FEATURES_VERSION = 2  # bump when the feature numerics change: invalidates every feature cache
SOURCE_RATE_HZ = 16000  # rate of the corpus clips
LATENCY_SOURCE_RATE_HZ = 48000  # rate of the 2020/21-2021/22 latency protocol input
LOG_OFFSET = 1e-6
_MEL_BREAK_FREQUENCY_HZ = 700.0  # HTK mel scale, as TF
_MEL_HIGH_FREQUENCY_Q = 1127.0
_BATCH_CLIPS = 256  # clips per chunk in batched extraction: bounds memory to tens of MB


# --------------------------------------------------------------------------------------------
# Arguments


def _is_int(v) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, bool)


def _is_number(v) -> bool:
    return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool)


@dataclass(frozen=True)
class PreprocessingArgs:
    """The course's PREPROCESSING_ARGS. Defaults are the course default (16 kHz, 40/20 ms, 40 mel, 20-4000 Hz, 10 MFCC).

    sampling_rate: Hz after resampling (16000 or an integer divisor of 16000 and 48000);
    frame_length_in_s, frame_step_in_s: STFT window and hop, s (integer numbers of samples);
    num_mel_bins; lower_frequency, upper_frequency: mel filter edges, Hz;
    num_coefficients: MFCCs kept, 0 = log-Mel features.
    """

    sampling_rate: int = 16000
    frame_length_in_s: float = 0.04
    frame_step_in_s: float = 0.02
    num_mel_bins: int = 40
    lower_frequency: float = 20.0
    upper_frequency: float = 4000.0
    num_coefficients: int = 10

    def __post_init__(self):
        self._validate("PreprocessingArgs")

    # -- construction ------------------------------------------------------------------------
    @classmethod
    def from_dict(cls, d: Mapping[str, Any], where: str = "PREPROCESSING_ARGS") -> "PreprocessingArgs":
        """Build from a course-style dict; unknown/missing key, wrong type or impossible value -> HarnessError."""
        if not isinstance(d, Mapping):
            raise HarnessError(f"{where}: preprocessing arguments must be a table/dict, got {type(d).__name__}")
        names = [f.name for f in fields(cls)]
        for key in d:
            if key not in names:
                raise HarnessError(f"{where}: unknown preprocessing key {key!r} (allowed: {', '.join(names)})")
        for key in names:
            if key not in d:
                raise HarnessError(f"{where}: missing preprocessing key {key!r}")
        args = object.__new__(cls)
        for key in names:
            object.__setattr__(args, key, d[key])
        args._validate(where)
        return args

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def _validate(self, where: str) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if f.type == "int" and not _is_int(value):
                raise HarnessError(f"{where}: {f.name} must be an integer, got {value!r}")
            if f.type == "float" and not (_is_number(value) and math.isfinite(value)):
                raise HarnessError(f"{where}: {f.name} must be a finite number, got {value!r}")
            # Normalise types so to_dict() (and hence cache keys) does not depend on 20 vs 20.0.
            object.__setattr__(self, f.name, int(value) if f.type == "int" else float(value))
        rate = self.sampling_rate
        if rate <= 0 or SOURCE_RATE_HZ % rate or LATENCY_SOURCE_RATE_HZ % rate:
            raise HarnessError(f"{where}: sampling_rate {rate} Hz must divide {SOURCE_RATE_HZ} and "
                               f"{LATENCY_SOURCE_RATE_HZ} Hz")
        self._check_samples(where, "frame_length_in_s", minimum=2)
        self._check_samples(where, "frame_step_in_s", minimum=1)
        if self.frame_length > rate:
            raise HarnessError(f"{where}: frame_length_in_s {self.frame_length_in_s} s is longer than the 1 s clip")
        if self.num_mel_bins < 1:
            raise HarnessError(f"{where}: num_mel_bins must be >= 1, got {self.num_mel_bins}")
        if self.lower_frequency < 0:
            raise HarnessError(f"{where}: lower_frequency must be >= 0 Hz, got {self.lower_frequency}")
        if self.upper_frequency > rate / 2:
            raise HarnessError(f"{where}: upper_frequency {self.upper_frequency} Hz exceeds the Nyquist "
                               f"frequency {rate / 2:g} Hz of sampling_rate {rate}")
        if self.lower_frequency >= self.upper_frequency:
            raise HarnessError(f"{where}: lower_frequency {self.lower_frequency} Hz must be below "
                               f"upper_frequency {self.upper_frequency} Hz")
        if not 0 <= self.num_coefficients <= self.num_mel_bins:
            raise HarnessError(f"{where}: num_coefficients must be 0 (log-Mel) or 1..num_mel_bins "
                               f"({self.num_mel_bins}), got {self.num_coefficients}")

    def _check_samples(self, where: str, key: str, minimum: int) -> None:
        seconds = getattr(self, key)
        samples = seconds * self.sampling_rate
        if not math.isfinite(samples) or abs(samples - round(samples)) > 1e-6 or round(samples) < minimum:
            raise HarnessError(f"{where}: {key} {seconds} s is not a whole number (>= {minimum}) of samples "
                               f"at {self.sampling_rate} Hz ({samples:g})")

    # -- derived sizes -----------------------------------------------------------------------
    @property
    def frame_length(self) -> int:
        """STFT window (= FFT length), samples."""
        return int(round(self.frame_length_in_s * self.sampling_rate))

    @property
    def frame_step(self) -> int:
        """STFT hop, samples."""
        return int(round(self.frame_step_in_s * self.sampling_rate))

    @property
    def num_spectrogram_bins(self) -> int:
        return self.frame_length // 2 + 1

    @property
    def num_frames(self) -> int:
        """Frames of a 1 s clip (no end padding)."""
        return (self.sampling_rate - self.frame_length) // self.frame_step + 1

    @property
    def num_features(self) -> int:
        return self.num_coefficients or self.num_mel_bins

    @property
    def feature_shape(self) -> tuple[int, int]:
        """(frames, MFCCs or mel bins) of a 1 s clip; the model input is [1, *feature_shape, 1]."""
        return (self.num_frames, self.num_features)

    @property
    def downsample_factor(self) -> int:
        return SOURCE_RATE_HZ // self.sampling_rate

    def describe(self) -> str:
        kind = f"{self.num_coefficients} MFCC" if self.num_coefficients else "log-Mel"
        return (f"{self.sampling_rate} Hz, frame {self.frame_length_in_s * 1000:g}/{self.frame_step_in_s * 1000:g} ms "
                f"({self.frame_length}/{self.frame_step} samples), {self.num_mel_bins} mel "
                f"{self.lower_frequency:g}-{self.upper_frequency:g} Hz, {kind} -> {self.num_frames}x{self.num_features}")


# --------------------------------------------------------------------------------------------
# Constant matrices (float32, computed like TF's float32 kernels so they match to ~1e-7)


def _tf_linspace_f32(start: np.float32, stop: np.float32, num: int) -> np.ndarray:
    """tf.linspace in float32: start + delta * i, with the end points exact."""
    start, stop = np.float32(start), np.float32(stop)
    if num == 1:
        return np.array([start], dtype=np.float32)
    delta = (stop - start) / np.float32(num - 1)
    middle = start + delta * np.arange(1, num - 1, dtype=np.float32)
    return np.concatenate([[start], middle, [stop]]).astype(np.float32)


def _hertz_to_mel_f32(hz) -> np.ndarray:
    hz = np.asarray(hz, dtype=np.float32)
    return np.float32(_MEL_HIGH_FREQUENCY_Q) * np.log(np.float32(1.0) + hz / np.float32(_MEL_BREAK_FREQUENCY_HZ))


@functools.lru_cache(maxsize=32)
def mel_weight_matrix(num_mel_bins: int, num_spectrogram_bins: int, sampling_rate: int,
                      lower_frequency: float, upper_frequency: float) -> np.ndarray:
    """numpy port of tf.signal.linear_to_mel_weight_matrix: float32 [spectrogram bins, mel bins].

    HTK mel scale; triangular filters evenly spaced in mel between the edges (Hz); the DC bin row is
    zero. Read-only: the result is shared through the cache.
    """
    nyquist_hz = np.float32(sampling_rate) / np.float32(2.0)
    linear_hz = _tf_linspace_f32(np.float32(0.0), nyquist_hz, num_spectrogram_bins)[1:]
    bins_mel = _hertz_to_mel_f32(linear_hz)[:, None]
    edges = _tf_linspace_f32(_hertz_to_mel_f32(lower_frequency), _hertz_to_mel_f32(upper_frequency),
                             num_mel_bins + 2)
    lower, center, upper = edges[None, :-2], edges[None, 1:-1], edges[None, 2:]
    lower_slopes = (bins_mel - lower) / (center - lower)
    upper_slopes = (upper - bins_mel) / (upper - center)
    weights = np.maximum(np.float32(0.0), np.minimum(lower_slopes, upper_slopes))
    matrix = np.concatenate([np.zeros((1, num_mel_bins), np.float32), weights]).astype(np.float32)
    matrix.flags.writeable = False
    return matrix


@functools.lru_cache(maxsize=32)
def dct_matrix(num_mel_bins: int, num_coefficients: int) -> np.ndarray:
    """float32 [M, C] with D[m, c] = 2 cos(pi (2m+1) c / (2M)) / sqrt(2M): TF's MFCC scaling (toolchain §6)."""
    m = np.arange(num_mel_bins, dtype=np.float64)[:, None]
    c = np.arange(num_coefficients, dtype=np.float64)[None, :]
    d = 2.0 * np.cos(np.pi * (2 * m + 1) * c / (2 * num_mel_bins)) / np.sqrt(2.0 * num_mel_bins)
    d = d.astype(np.float32)
    d.flags.writeable = False
    return d


def periodic_hann(frame_length: int) -> np.ndarray:
    """Periodic Hann window, float32 [frame_length], computed as tf.signal.hann_window(periodic=True)."""
    n = np.arange(frame_length, dtype=np.float32)
    return (np.float32(0.5) - np.float32(0.5) * np.cos(np.float32(2 * np.pi) * n / np.float32(frame_length))
            ).astype(np.float32)


@functools.lru_cache(maxsize=8)
def _resample_filter(down: int) -> np.ndarray:
    """The FIR filter resample_poly(x_float32, 1, down) designs on every call: Kaiser(5.0), 20*down+1 taps."""
    from scipy.signal import firwin

    h = firwin(2 * 10 * down + 1, 1.0 / down, window=("kaiser", 5.0)).astype(np.float32)
    h.flags.writeable = False
    return h


@functools.lru_cache(maxsize=8)
def _reversed_filter(down: int) -> np.ndarray:
    h = np.ascontiguousarray(_resample_filter(down)[::-1])
    h.flags.writeable = False
    return h


def resample(x: np.ndarray, down: int) -> np.ndarray:
    """scipy.signal.resample_poly(x, 1, down) along the last axis, float32 in and out.

    1-D input takes a polyphase matrix-vector path (same filter, same zero padding, same output
    samples; differs from scipy only by float32 summation order, < 1e-6 for |x| <= 1) that is about
    3x faster than scipy's upfirdn. Batches [..., samples] go through scipy itself.
    """
    if down == 1:
        return x
    if x.ndim != 1:
        from scipy.signal import resample_poly

        return resample_poly(x, 1, down, axis=-1, window=_resample_filter(down))
    taps = _reversed_filter(down)
    half = (taps.shape[0] - 1) // 2  # resample_poly centres the filter: output k sits at input k*down
    padded = np.zeros(x.shape[0] + 2 * half, dtype=np.float32)
    padded[half:half + x.shape[0]] = x
    n_out = -(-x.shape[0] // down)
    windows = np.lib.stride_tricks.sliding_window_view(padded, taps.shape[0])[::down][:n_out]
    # The copy makes the windows BLAS-friendly; numpy's fallback for overlapping rows is 3x slower.
    return np.ascontiguousarray(windows) @ taps


# --------------------------------------------------------------------------------------------
# numpy pipeline (deployed)


class NumpyFeatures:
    """The course features with numpy/scipy only.

    Per clip:   feats = NumpyFeatures(args)(audio_float32_16k)       -> float32 [frames, C]
    Batched:    NumpyFeatures(args).batch(audio_int16 [N, 16000])    -> float32 [N, frames, C, 1]
    """

    def __init__(self, args: PreprocessingArgs):
        self.args = args
        self.frame_length = args.frame_length
        self.frame_step = args.frame_step
        self.window = periodic_hann(self.frame_length)
        self.mel = np.ascontiguousarray(mel_weight_matrix(
            args.num_mel_bins, args.num_spectrogram_bins, args.sampling_rate,
            args.lower_frequency, args.upper_frequency))
        self.dct = dct_matrix(args.num_mel_bins, args.num_coefficients) if args.num_coefficients else None
        self.down = args.downsample_factor

    # -- per clip ----------------------------------------------------------------------------
    def __call__(self, audio: np.ndarray) -> np.ndarray:
        """float audio at 16 kHz, 1-D [samples] in [-1, 1) -> float32 [frames, C]."""
        return self.at_rate(resample(np.asarray(audio, dtype=np.float32), self.down))

    def from_int16(self, audio: np.ndarray) -> np.ndarray:
        """int16 audio at 16 kHz [samples] -> float32 [frames, C] (scaled by 1/32768 like decode_wav)."""
        return self(np.asarray(audio, dtype=np.float32) * np.float32(1.0 / 32768.0))

    def resample_from(self, audio: np.ndarray, source_rate: int) -> np.ndarray:
        """Features of float audio sampled at `source_rate` Hz (e.g. the 48 kHz latency input), resampling included."""
        if not isinstance(source_rate, int) or source_rate <= 0 or source_rate % self.args.sampling_rate:
            raise HarnessError(f"source rate {source_rate} Hz is not a multiple of sampling_rate "
                               f"{self.args.sampling_rate} Hz")
        down = source_rate // self.args.sampling_rate
        return self.at_rate(resample(np.asarray(audio, dtype=np.float32), down))

    def at_rate(self, audio: np.ndarray) -> np.ndarray:
        """Features of float audio already at args.sampling_rate, 1-D [samples] -> float32 [frames, C]."""
        audio = np.asarray(audio, dtype=np.float32)
        if audio.ndim != 1 or audio.shape[0] < self.frame_length:
            raise ValueError(f"expected 1-D audio of >= {self.frame_length} samples, got shape {audio.shape}")
        return self._features(self._frames(audio))

    # -- batched -----------------------------------------------------------------------------
    def batch(self, audio_int16: np.ndarray) -> np.ndarray:
        """int16 [N, 16000] at 16 kHz -> float32 [N, frames, C, 1], in chunks to bound memory."""
        audio_int16 = np.asarray(audio_int16)
        if audio_int16.ndim != 2:
            raise ValueError(f"expected [N, samples] audio, got shape {audio_int16.shape}")
        n = audio_int16.shape[0]
        frames = (-(-audio_int16.shape[1] // self.down) - self.frame_length) // self.frame_step + 1
        out = np.empty((n, frames, self.args.num_features, 1), dtype=np.float32)
        for start in range(0, n, _BATCH_CLIPS):
            chunk = audio_int16[start:start + _BATCH_CLIPS].astype(np.float32) * np.float32(1.0 / 32768.0)
            out[start:start + _BATCH_CLIPS, ..., 0] = self._features(self._frames(resample(chunk, self.down)))
        return out

    # -- shared ------------------------------------------------------------------------------
    def _frames(self, audio: np.ndarray) -> np.ndarray:
        """[..., samples] -> view [..., frames, frame_length] (no copy, no end padding)."""
        windows = np.lib.stride_tricks.sliding_window_view(audio, self.frame_length, axis=-1)
        return windows[..., ::self.frame_step, :]

    def _features(self, frames: np.ndarray) -> np.ndarray:
        # scipy's pocketfft keeps float32 (complex64) and is ~2x faster than np.fft here.
        spectrum = scipy.fft.rfft(frames * self.window, n=self.frame_length, axis=-1)
        log_mel = np.log(np.abs(spectrum) @ self.mel + np.float32(LOG_OFFSET))
        features = log_mel if self.dct is None else log_mel @ self.dct
        return features.astype(np.float32, copy=False)


# --------------------------------------------------------------------------------------------
# tf.signal pipeline (reference, lazily imports TensorFlow)


def _tf_pipeline(tf, audio, args: PreprocessingArgs, mel):
    """The course's steps on a float32 tensor [..., samples] already at args.sampling_rate."""
    stft = tf.signal.stft(audio, frame_length=args.frame_length, frame_step=args.frame_step,
                          fft_length=args.frame_length)  # periodic Hann window, pad_end=False
    log_mel = tf.math.log(tf.tensordot(tf.abs(stft), mel, 1) + LOG_OFFSET)
    if args.num_coefficients == 0:
        return log_mel
    return tf.signal.mfccs_from_log_mel_spectrograms(log_mel)[..., :args.num_coefficients]


def tf_mel_matrix(args: PreprocessingArgs):
    """tf.signal.linear_to_mel_weight_matrix for `args` (a float32 tensor)."""
    from harness.toolkit.tfsetup import tf

    return tf().signal.linear_to_mel_weight_matrix(
        num_mel_bins=args.num_mel_bins, num_spectrogram_bins=args.num_spectrogram_bins,
        sample_rate=args.sampling_rate, lower_edge_hertz=args.lower_frequency,
        upper_edge_hertz=args.upper_frequency)


@functools.lru_cache(maxsize=16)
def _tf_mel_cached(args: PreprocessingArgs):
    return tf_mel_matrix(args)


def tf_reference_features(audio: np.ndarray, args: PreprocessingArgs) -> np.ndarray:
    """Course-style eager pipeline: float audio at 16 kHz [..., samples] -> float32 [..., frames, C].

    Resampling (rates below 16 kHz) uses scipy's resample_poly, as the course does; the rest is tf.signal.
    """
    from harness.toolkit.tfsetup import tf

    tf_mod = tf()
    audio = resample(np.asarray(audio, dtype=np.float32), args.downsample_factor)
    return _tf_pipeline(tf_mod, tf_mod.constant(audio), args, _tf_mel_cached(args)).numpy()


def tf_feature_function(args: PreprocessingArgs):
    """tf.function with a fixed input signature float32 [args.sampling_rate] (1 s, already resampled)
    -> float32 [frames, C]. The first call traces (~0.1 s); later calls run the graph."""
    from harness.toolkit.tfsetup import tf

    tf_mod = tf()
    mel = tf_mel_matrix(args)

    @tf_mod.function(input_signature=[tf_mod.TensorSpec([args.sampling_rate], tf_mod.float32)])
    def features(audio):
        return _tf_pipeline(tf_mod, audio, args, mel)

    return features


# --------------------------------------------------------------------------------------------
# Training-set feature cache


def features_cache_key(args: PreprocessingArgs, corpus_fingerprint: str, items: Sequence[tuple[str, str]],
                       labels: Sequence[str]) -> str:
    """Hash of everything the cached arrays depend on: args, the bytes read, row order, label order, code version."""
    payload = {
        "version": FEATURES_VERSION,
        "args": args.to_dict(),
        "corpus": corpus_fingerprint,
        "order": hashlib.sha256("\n".join(f"{a}/{b}" for a, b in items).encode()).hexdigest(),
        "labels": list(labels),
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:32]


def cached_features(corpus, items: Sequence[tuple[str, str]], labels: Sequence[str], args: PreprocessingArgs,
                    split_name: str, use_cache: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """(X float32 [N, frames, C, 1], y int32 [N]) for `items`, cached under <cache>/kws_features/.

    Clips are decoded and featurised in chunks, so the raw audio of a whole split is never held.
    """
    from tasks.kws.data import iter_audio, label_indices, progress

    y = label_indices(items, labels)
    key = features_cache_key(args, corpus.fingerprint(items), items, labels)
    path = cache_dir() / "kws_features" / f"{split_name}-{key}.npz"
    shape = (len(items), *args.feature_shape, 1)
    cached = _load_cached(path, shape, y) if use_cache else None
    if cached is not None:
        return cached, y
    extractor = NumpyFeatures(args)
    X = np.empty(shape, dtype=np.float32)
    buffer = np.empty((_BATCH_CLIPS, SOURCE_RATE_HZ), dtype=np.int16)
    filled = done = 0
    for clip in progress(iter_audio(corpus, items), len(items), f"{split_name} features"):
        buffer[filled] = clip
        filled += 1
        if filled == _BATCH_CLIPS:
            X[done:done + filled] = extractor.batch(buffer)
            done, filled = done + filled, 0
    if filled:
        X[done:done + filled] = extractor.batch(buffer[:filled])
    blob = io.BytesIO()
    np.savez(blob, X=X, y=y, sha256=np.array(hashlib.sha256(X.tobytes()).hexdigest()))
    write_bytes(path, blob.getvalue())
    return X, y


def _load_cached(path, shape: tuple[int, ...], y: np.ndarray) -> np.ndarray | None:
    """The cached X if the file is there and consistent; a damaged cache is ignored (and rewritten)."""
    if not path.is_file():
        return None
    try:
        with np.load(path) as data:
            X, y_cached, digest = data["X"], data["y"], str(data["sha256"])
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
        print(f"  feature cache {path} is unreadable; recomputing", flush=True)
        return None
    if (X.shape != shape or X.dtype != np.float32 or not np.array_equal(y_cached, y)
            or hashlib.sha256(X.tobytes()).hexdigest() != digest):
        print(f"  feature cache {path} does not match its record; recomputing", flush=True)
        return None
    return X
