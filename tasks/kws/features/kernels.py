"""The numeric core of the deployed feature path, numpy only and free of project imports.

The harness computes features with these functions, and a device bundle ships this very file beside its
script, so the device runs the same code (the constant matrices come precomputed in the bundle).
"""
import numpy as np


def polyphase_downsample(x, reversed_taps, down):
    """scipy.signal.resample_poly(x, 1, down) of 1-D float32 `x` given its FIR filter reversed (float32).

    Same filter, zero padding and output samples as scipy (float32 summation order differs, < 1e-6 for
    |x| <= 1). Output k is the dot product of the taps with padded[k*down : k*down + taps]; with the padded
    signal split into `down` planes (plane r holds samples r, r+down, ...), that is a sum over the filter's
    ceil(taps / down) phases of one `down`-term product of shifted planes each. The working set stays near the
    input's size (the one-matrix form, every window copied, ~4 MB for a 48 kHz second, was 2-3x slower), and
    the planes make each product a long column sweep: OpenBLAS's Haswell kernels, which the harness pins for
    reproducible bytes, took 1.5-2x as long on the same product with the samples interleaved (rows of `down`)."""
    taps = reversed_taps.shape[0]
    half = (taps - 1) // 2  # resample_poly centres the filter: output k sits at input k*down
    n_out = -(-x.shape[0] // down)
    phases = -(-taps // down)
    padded = np.zeros((n_out + phases - 1) * down, dtype=np.float32)
    padded[half:half + x.shape[0]] = x
    planes = np.ascontiguousarray(padded.reshape(-1, down).T)  # [down, n_out + phases - 1]
    h = np.zeros(phases * down, dtype=np.float32)
    h[:taps] = reversed_taps
    h = h.reshape(phases, down)
    y = h[0] @ planes[:, :n_out]
    for m in range(1, phases):
        y += h[m] @ planes[:, m:m + n_out]
    return y


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
