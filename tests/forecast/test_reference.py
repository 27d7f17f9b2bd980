"""The unconstrained reference's figures: cached by the windows' content, verified when read back."""
import json
from types import SimpleNamespace

import numpy as np
import pytest

from harness.toolkit import datasets
from tasks.forecast import reference


@pytest.fixture
def trainings(monkeypatch, tmp_path):
    """Each training returns figures that say which one it was (no model is trained)."""
    monkeypatch.setenv(datasets.CACHE_DIR_ENV, str(tmp_path / "cache"))
    count = []

    def train(w, K):
        count.append(K)
        n = float(len(count))
        return {"params": 1, "epochs": 1, "val": {"mae_t_degc": n, "mae_rh_pct": 10 * n},
                "test": {"mae_t_degc": 100 * n, "mae_rh_pct": 1000 * n}}

    monkeypatch.setattr(reference, "_train_and_measure", train)
    return count


def _windows(test_offset=0.0):
    rng = np.random.default_rng(0)
    x = {s: rng.normal(size=(8, 6, 2)).astype(np.float32) for s in ("train", "val", "test")}
    y = {s: rng.normal(size=(8, 3, 2)).astype(np.float32) for s in ("train", "val", "test")}
    x["test"] = x["test"] + np.float32(test_offset)
    return SimpleNamespace(x=x, y=y)


def test_the_figures_of_the_asked_split_are_returned_and_read_back_without_training(trainings):
    w = _windows()
    assert reference.mae(w, 3, "test", log=lambda m: None) == {"mae_t_degc": 100.0, "mae_rh_pct": 1000.0}
    assert reference.mae(w, 3, "val", log=lambda m: None) == {"mae_t_degc": 1.0, "mae_rh_pct": 10.0}
    assert trainings == [3]


def test_other_test_windows_are_not_served_the_cached_figures(trainings):
    reference.mae(_windows(), 3, "test", log=lambda m: None)
    assert reference.mae(_windows(test_offset=1.0), 3, "test", log=lambda m: None)["mae_t_degc"] == 200.0
    assert trainings == [3, 3]


def test_a_tampered_cache_entry_is_not_trusted_and_the_reference_is_trained_again(trainings, tmp_path):
    w = _windows()
    reference.mae(w, 3, "test", log=lambda m: None)
    (entry,) = (tmp_path / "cache" / "forecast_reference").glob("*.json")
    cached = json.loads(entry.read_text())
    cached["figures"]["test"]["mae_t_degc"] = 0.001  # a better figure than the reference reached
    entry.write_text(json.dumps(cached))
    assert reference.mae(w, 3, "test", log=lambda m: None)["mae_t_degc"] == 200.0
    assert trainings == [3, 3]
