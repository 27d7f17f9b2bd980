"""The latency runs on their own: warm-up, discarded runs, milliseconds, and the protocol's statistic."""
import numpy as np
import pytest

from harness.toolkit.measure import latency as lat


def test_time_runs_warms_up_discards_and_reports_ms():
    calls = []

    def step(i):
        calls.append(i)
        return 0.001 * max(i, 0), 0.002

    out = lat.time_runs(step, runs=5, discard=2, warmup=3)
    assert calls == [-1, -2, -3, 0, 1, 2, 3, 4]
    np.testing.assert_allclose(out, [[2.0, 2.0], [3.0, 2.0], [4.0, 2.0]])


def test_summarize_uses_the_protocols_statistic_of_each_sum():
    s = np.array([[0.0, 10.0], [10.0, 0.0], [1.0, 1.0]])
    med = lat.summarize(s, "median")
    assert med["total_ms"] == 10.0 and med["preprocessing_ms"] == 1.0 and med["model_ms"] == 1.0
    mean = lat.summarize(s, "mean")
    assert mean["total_ms"] == pytest.approx(22 / 3) and mean["model_ms"] == pytest.approx(11 / 3)
    assert mean["total_median_ms"] == 10.0
