"""The numeric core of the deployed feature path, numpy only and free of project imports.

The harness computes features with these functions, and a device bundle ships this very file beside its
script, so the device runs the same code (the constant matrices come precomputed in the bundle).
"""
import numpy as np


def polyphase_downsample(x, reversed_taps, down):
    """scipy.signal.resample_poly(x, 1, down) of 1-D float32 `x` given its FIR filter reversed (float32).

    Same filter, zero padding and output samples as scipy (float32 summation order differs, < 1e-6 for
    |x| <= 1), as a strided matrix-vector product."""
    half = (reversed_taps.shape[0] - 1) // 2  # resample_poly centres the filter: output k sits at input k*down
    padded = np.zeros(x.shape[0] + 2 * half, dtype=np.float32)
    padded[half:half + x.shape[0]] = x
    n_out = -(-x.shape[0] // down)
    windows = np.lib.stride_tricks.sliding_window_view(padded, reversed_taps.shape[0])[::down][:n_out]
    # The copy makes the windows BLAS-friendly; numpy's fallback for overlapping rows is 3x slower.
    return np.ascontiguousarray(windows) @ reversed_taps


def frames(audio, frame_length, frame_step):
    """[..., samples] -> view [..., frames, frame_length] (no copy, no end padding, as tf.signal.stft)."""
    windows = np.lib.stride_tricks.sliding_window_view(audio, frame_length, axis=-1)
    return windows[..., ::frame_step, :]


def features(framed, window, mel, dct, log_offset, rfft=np.fft.rfft):
    """Framed audio -> log-Mel (dct None) or MFCC, float32: |STFT| (FFT length = frame length) @ mel, log, @ dct."""
    spectrum = rfft(framed * window, n=framed.shape[-1], axis=-1)
    log_mel = np.log(np.abs(spectrum) @ mel + np.float32(log_offset))
    out = log_mel if dct is None else log_mel @ dct
    return out.astype(np.float32, copy=False)
