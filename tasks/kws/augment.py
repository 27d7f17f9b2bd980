"""Training-time augmentation on feature batches: a SpecAugment-style time shift and time/frequency masks."""
from __future__ import annotations

import numpy as np

from harness.core.config import Field, in_range

AUGMENT_SCHEMA = {
    "time_shift_frames": Field(int, default=0, check=in_range(0, 50), doc="random roll of up to ± frames, zero-filled"),
    "time_masks": Field(int, default=0, check=in_range(0, 5)),
    "time_mask_frames": Field(int, default=0, check=in_range(0, 50)),
    "freq_masks": Field(int, default=0, check=in_range(0, 5)),
    "freq_mask_bins": Field(int, default=0, check=in_range(0, 40)),
}


def augment_fn(cfg: dict):
    """SpecAugment-style masks and a time shift on feature batches [B, frames, C, 1] (train only)."""
    if not any(cfg.values()):
        return None

    def apply(x, y, rng):
        x = x.copy()
        b, frames, coeffs = x.shape[:3]
        if cfg["time_shift_frames"]:
            shifts = rng.integers(-cfg["time_shift_frames"], cfg["time_shift_frames"] + 1, b)
            for i, s in enumerate(shifts):
                if s:
                    x[i] = np.roll(x[i], s, axis=0)
                    if s > 0:
                        x[i, :s] = x[i, s:].min()
                    else:
                        x[i, s:] = x[i, :s].min()
        for _ in range(cfg["time_masks"]):
            w = rng.integers(0, cfg["time_mask_frames"] + 1, b)
            t0 = rng.integers(0, np.maximum(frames - w, 1))
            for i in range(b):
                x[i, t0[i]:t0[i] + w[i]] = 0.0
        for _ in range(cfg["freq_masks"]):
            w = rng.integers(0, cfg["freq_mask_bins"] + 1, b)
            f0 = rng.integers(0, np.maximum(coeffs - w, 1))
            for i in range(b):
                x[i, :, f0[i]:f0[i] + w[i]] = 0.0
        return x, y

    return apply
