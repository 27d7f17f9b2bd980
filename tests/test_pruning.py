"""Pruning must reach its target sparsity in the final .tflite, not only in Keras."""
import numpy as np
import pytest

from harness.core.config import validate
from harness.core.recipes import PRUNE_SCHEMA, QUANT_SCHEMA, TRAIN_SCHEMA
from harness.toolkit import convert, shrink
from harness.toolkit.measure.interpreter import weight_sparsity
from harness.toolkit.train import fit
from tasks.forecast import models


def test_schedule_lands_on_a_pruning_step():
    for total in (7, 40, 100, 1234):
        begin, end, freq = shrink.pruning_steps(total, {"begin": 0.2, "end": 0.8, "frequency": 0})
        assert 0 <= begin < end <= total - 1
        assert (end - begin) % freq == 0
    # the default frequency of 100 would never prune a 40-step run; ours does
    assert shrink.pruning_steps(40, {"begin": 0.0, "end": 1.0, "frequency": 100})[2] <= 39


@pytest.mark.parametrize("mode", ["none", "int8"])
def test_final_file_has_the_target_sparsity(mode):
    stats = models.Stats([0, 0], [1, 1], [1, 1])
    b = models.build({"name": "mlp", "width": 0.25}, 6, 3, stats)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(512, 6, 2)).astype(np.float32)
    y = rng.normal(size=(512, 3, 2)).astype(np.float32)
    recipe = {
        "seed": 1,
        "train": validate({"epochs": 2, "batch_size": 32}, TRAIN_SCHEMA, "t"),
        "prune": validate({"final_sparsity": 0.75, "begin": 0.1, "end": 0.9}, PRUNE_SCHEMA, "t"),
        "quantize": validate({}, QUANT_SCHEMA, "t"),
    }
    model, info = fit(b.model, (x, y, x[:64], y[:64]), recipe, loss="mse", metrics=None, log=lambda m: None)
    assert info["keras_sparsity"] >= 0.74
    tfl = convert.to_tflite(model, mode, lambda: ([x[i : i + 1]] for i in range(32)))
    sp = weight_sparsity(tfl)
    assert sp["FULLY_CONNECTED"] >= 0.74, sp


def test_sparsity_of_float16_weights_and_weighted_over_ops():
    from harness.toolkit.tfsetup import keras

    k = keras()
    m = k.Sequential([k.Input((8, 8, 1)), k.layers.Conv2D(2, 3), k.layers.Flatten(), k.layers.Dense(4)])
    conv, dense = m.layers[0], m.layers[2]
    conv.set_weights([np.zeros((3, 3, 1, 2), np.float32), np.zeros(2, np.float32)])
    w = np.ones((72, 4), np.float32)
    w[:36] = 0
    dense.set_weights([w, np.zeros(4, np.float32)])
    for mode in ("none", "float16"):
        sp = weight_sparsity(convert.to_tflite(m, mode))
        assert sp["FULLY_CONNECTED"] == pytest.approx(0.5), (mode, sp)
        assert sp["CONV_2D"] == pytest.approx(1.0), (mode, sp)
        assert sp["all"] == pytest.approx((18 + 144) / (18 + 288)), (mode, sp)


def test_schedule_lands_on_a_pruning_step_with_a_given_frequency():
    for total in (7, 40, 100, 1234):
        for freq in (0, 3, 7, 100):
            begin, end, f = shrink.pruning_steps(total, {"begin": 0.2, "end": 0.8, "frequency": freq})
            assert (end - begin) % f == 0, (total, freq)
