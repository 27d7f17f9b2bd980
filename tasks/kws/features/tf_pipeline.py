"""The course-style tf.signal pipeline: parity reference and the grader's path (TensorFlow imported lazily)."""
from __future__ import annotations

import functools

import numpy as np

from tasks.kws.features.args import PreprocessingArgs
from tasks.kws.features.constants import LOG_OFFSET
from tasks.kws.features.numpy_pipeline import resample

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
    return tf_features_at_rate(resample(np.asarray(audio, dtype=np.float32), args.downsample_factor), args)


def tf_features_at_rate(audio: np.ndarray, args: PreprocessingArgs) -> np.ndarray:
    """The tf.signal steps on float audio already at args.sampling_rate, [..., samples] -> float32 [..., frames, C]."""
    from harness.toolkit.tfsetup import tf

    tf_mod = tf()
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
