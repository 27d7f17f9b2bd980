"""Training-time augmentation: speed-perturbed copies of the training clips (chosen per clip and batch) and a
SpecAugment-style time shift and time/frequency masks on feature batches."""
from __future__ import annotations

from fractions import Fraction

import numpy as np

from harness.core.config import Field, in_range


def _speeds(values) -> str | None:
    for v in values:
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0.5 <= v <= 2.0 or v == 1.0:
            return f"each speed must be a number in [0.5, 2.0] other than 1, got {v!r}"
    if len(set(values)) != len(values):
        return f"repeats a value: {list(values)}"
    return None


AUGMENT_SCHEMA = {
    "speeds": Field(list, default=[], check=_speeds,
                    doc="extra copies of the training clips played at these speeds (tempo and pitch, as Kaldi's "
                        "speed perturbation); every batch draws the original or one copy of each clip at random"),
    "time_shift_frames": Field(int, default=0, check=in_range(0, 50),
                               doc="random roll of up to ± frames; the frames rolled in take the clip's lowest value "
                                   "(silence)"),
    "time_masks": Field(int, default=0, check=in_range(0, 5)),
    "time_mask_frames": Field(int, default=0, check=in_range(0, 50)),
    "freq_masks": Field(int, default=0, check=in_range(0, 5)),
    "freq_mask_bins": Field(int, default=0, check=in_range(0, 40)),
}


def change_speed(clip: np.ndarray, speed: float) -> np.ndarray:
    """int16 [n] played `speed` times faster (resampled, so pitch moves with tempo), centred in n samples:
    zero-padded when it gets shorter, its ends cut when it gets longer."""
    from scipy.signal import resample_poly

    ratio = Fraction(speed).limit_denominator(100)
    out = resample_poly(clip.astype(np.float32), ratio.denominator, ratio.numerator)
    n = len(clip)
    if len(out) >= n:
        start = (len(out) - n) // 2
        out = out[start:start + n]
    else:
        pad = n - len(out)
        out = np.pad(out, (pad // 2, pad - pad // 2))
    return np.clip(np.rint(out), -32768, 32767).astype(np.int16)


def augment_fn(cfg: dict, copies: list | None = None):
    """The per-batch augmentation of the training features [B, frames, C, 1], or None when there is none.

    copies: the training features at each of cfg["speeds"] (same rows as the original), if any.
    """
    masks = {k: v for k, v in cfg.items() if k != "speeds"}
    if not any(masks.values()) and not copies:
        return None

    def apply(x, y, rng, idx):
        x = x.copy()
        if copies:
            version = rng.integers(0, len(copies) + 1, len(idx))  # 0 = the original clip
            for v, feats in enumerate(copies, start=1):
                rows = version == v
                x[rows] = feats[idx[rows]]
        b, frames, coeffs = x.shape[:3]
        if masks["time_shift_frames"]:
            shifts = rng.integers(-masks["time_shift_frames"], masks["time_shift_frames"] + 1, b)
            for i, s in enumerate(shifts):
                if s:
                    x[i] = np.roll(x[i], s, axis=0)
                    if s > 0:
                        x[i, :s] = x[i, s:].min()
                    else:
                        x[i, s:] = x[i, :s].min()
        for _ in range(masks["time_masks"]):
            w = rng.integers(0, masks["time_mask_frames"] + 1, b)
            t0 = rng.integers(0, np.maximum(frames - w, 1))
            for i in range(b):
                x[i, t0[i]:t0[i] + w[i]] = 0.0
        for _ in range(masks["freq_masks"]):
            w = rng.integers(0, masks["freq_mask_bins"] + 1, b)
            f0 = rng.integers(0, np.maximum(coeffs - w, 1))
            for i in range(b):
                x[i, :, f0[i]:f0[i] + w[i]] = 0.0
        return x, y

    return apply
