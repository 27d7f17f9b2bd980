"""Latency: run a timed step under a protocol (runs, discarded runs, statistic) and summarize.

The protocol comes from the constraint file; the harness adds untimed warm-up runs first (the
interpreter's first invokes are much slower than steady state) and records that it did.
"""
from __future__ import annotations

import time
from typing import Callable

import numpy as np

HARNESS_WARMUP = 10


def time_runs(step: Callable[[int], tuple[float, float]], runs: int, discard: int = 0,
              warmup: int = HARNESS_WARMUP, sleep_s: float = 0.0) -> np.ndarray:
    """step(i) -> (preprocessing seconds, model seconds). Returns kept samples in ms, shape [n, 2]."""
    for i in range(warmup):
        step(-1 - i)
    out = np.empty((runs, 2), np.float64)
    for i in range(runs):
        out[i] = step(i)
        if sleep_s:
            time.sleep(sleep_s)
    return out[discard:] * 1e3


def summarize(samples_ms: np.ndarray, statistic: str) -> dict:
    """The protocol's statistic of each part, plus median/min/p90 of the total for context."""
    stat = np.mean if statistic == "mean" else np.median
    total = samples_ms.sum(axis=1)
    return {
        "statistic": statistic,
        "n": int(len(samples_ms)),
        "preprocessing_ms": float(stat(samples_ms[:, 0])),
        "model_ms": float(stat(samples_ms[:, 1])),
        "total_ms": float(stat(total)),
        "total_median_ms": float(np.median(total)),
        "model_median_ms": float(np.median(samples_ms[:, 1])),
        "total_min_ms": float(np.min(total)),
        "total_p90_ms": float(np.percentile(total, 90)),
    }


def inference_ms(runner, x: np.ndarray, runs: int = 200) -> dict:
    """Median model latency of a batch-1 input (set input + invoke + read output)."""
    def step(_):
        t0 = time.perf_counter()
        runner(x)
        return 0.0, time.perf_counter() - t0

    return summarize(time_runs(step, runs), "median")
