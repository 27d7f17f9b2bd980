"""Uncertainty of a verdict: binomial intervals for accuracies, block-bootstrap intervals for MAEs, seed spread.

A test split of a few hundred clips moves accuracy in steps of 1/N, and test windows of a time series are
correlated within a day, so a figure alone does not say whether a PASS is close to the limit.
"""
from __future__ import annotations

import math

import numpy as np

Z95 = 1.959963984540054  # two-sided 95 % normal quantile


def wilson(k: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval for k successes in n trials, as fractions in [0, 1]."""
    if n <= 0 or not 0 <= k <= n:
        raise ValueError(f"wilson: need 0 <= k <= n and n > 0 (got k={k}, n={n})")
    p = k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def block_bootstrap_mae(abs_err: np.ndarray, blocks: np.ndarray, resamples: int = 2000, seed: int = 0,
                        level: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    """Percentile interval of the MAE per feature, resampling whole blocks (days) with replacement.

    abs_err: [m, F] mean absolute error of each window (over its steps); blocks: [m] block id of each window.
    Windows of one day share weather, so resampling windows one by one would understate the spread.
    """
    abs_err = np.asarray(abs_err, dtype=np.float64)
    ids, inverse = np.unique(np.asarray(blocks), return_inverse=True)
    n_blocks = len(ids)
    sums = np.zeros((n_blocks, abs_err.shape[1]))
    np.add.at(sums, inverse, abs_err)
    counts = np.bincount(inverse, minlength=n_blocks).astype(np.float64)
    rng = np.random.default_rng(seed)
    # How many times each block is drawn in each resample: a multinomial over the blocks.
    draws = rng.multinomial(n_blocks, np.full(n_blocks, 1.0 / n_blocks), size=resamples).astype(np.float64)
    maes = (draws @ sums) / (draws @ counts)[:, None]
    alpha = (1 - level) / 2
    return np.quantile(maes, alpha, axis=0), np.quantile(maes, 1 - alpha, axis=0)


def spread(values: list[float]) -> dict:
    """Mean, sample standard deviation (n - 1), min and max over seeds; sd is None for one seed."""
    v = [float(x) for x in values]
    n = len(v)
    mean = sum(v) / n if n else math.nan
    sd = math.sqrt(sum((x - mean) ** 2 for x in v) / (n - 1)) if n > 1 else None
    return {"n": n, "mean": mean, "sd": sd, "min": min(v) if v else math.nan, "max": max(v) if v else math.nan}
