"""Course Lab 3 conventions: chronological 70/20/10 split by row, windows of 6 inputs + K outputs, stride 1.

Windows are built per split, so no window crosses a split boundary (as the lab's
timeseries_dataset_from_array calls on each split did).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

TRAIN_END, VAL_END = 0.7, 0.9  # the lab code's literals (0.7 + 0.2 would be 0.8999... in floating point)


def split_bounds(n: int) -> dict[str, tuple[int, int]]:
    """Row ranges [start, stop): train [0, int(0.7n)), val [int(0.7n), int(0.9n)), test [int(0.9n), n)."""
    a = int(n * TRAIN_END)
    b = int(n * VAL_END)
    return {"train": (0, a), "val": (a, b), "test": (b, n)}


def make_windows(values: np.ndarray, input_steps: int, output_steps: int) -> tuple[np.ndarray, np.ndarray]:
    """[n, F] -> inputs [m, input_steps, F], targets [m, output_steps, F]; m = n - input - output + 1."""
    length = input_steps + output_steps
    if len(values) < length:
        return (np.empty((0, input_steps, values.shape[1]), np.float32),
                np.empty((0, output_steps, values.shape[1]), np.float32))
    w = sliding_window_view(values, (length, values.shape[1]))[:, 0]
    return np.ascontiguousarray(w[:, :input_steps]), np.ascontiguousarray(w[:, input_steps:])


@dataclass
class Windows:
    x: dict[str, np.ndarray]
    y: dict[str, np.ndarray]
    bounds: dict[str, tuple[int, int]]
    mean: np.ndarray  # train-split mean per feature (°C, %RH)
    std: np.ndarray  # train-split std per feature
    # time of each window's first target row, per split (profiles.split fills it; build leaves None,
    # so existing callers are unchanged)
    times: dict[str, np.ndarray] | None = None


def build(values: np.ndarray, input_steps: int, output_steps: int) -> Windows:
    bounds = split_bounds(len(values))
    train = values[slice(*bounds["train"])]
    x, y = {}, {}
    for name, (a, b) in bounds.items():
        x[name], y[name] = make_windows(values[a:b], input_steps, output_steps)
    return Windows(x=x, y=y, bounds=bounds, mean=train.mean(axis=0), std=train.std(axis=0))


def persistence(x: np.ndarray, output_steps: int) -> np.ndarray:
    """Repeat the last observed value over the horizon."""
    return np.repeat(x[:, -1:, :], output_steps, axis=1)


def mae_per_feature(pred: np.ndarray, true: np.ndarray) -> np.ndarray:
    """Mean over windows and steps, one value per feature (plain per-window mean)."""
    return np.abs(pred.astype(np.float64) - true.astype(np.float64)).mean(axis=(0, 1))
