"""Pruning must reach its target sparsity in the final .tflite, not only in Keras."""
import numpy as np
import pytest

from harness.core.config import validate
from harness.core.errors import HarnessError
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


class _Weights:
    """A stand-in model for a callback: its one weight is the epoch that set it."""

    def __init__(self):
        self.w = -1

    def get_weights(self):
        return [np.array([self.w], np.float32)]


@pytest.mark.parametrize("mode, values, first, epoch", [
    ("min", [0.1, 0.5, 0.2, 0.3, 0.35], 2, 3),  # epoch 0's low loss came before pruning ended: not eligible
    ("max", [99.0, 50.0, 70.0, 80.0, 60.0], 1, 4),  # accuracy: the highest after the first eligible epoch
])
def test_best_val_keeps_the_best_eligible_epoch_counted_from_one(mode, values, first, epoch):
    from harness.toolkit import train

    keep = train._KeepBest("val_metric", mode, first)
    cb = keep.callback()
    cb.model = model = _Weights()
    for e, v in enumerate(values):
        model.w = e
        cb.on_epoch_end(e, {"val_metric": v})
    assert keep.epoch == epoch and keep.best == values[epoch - 1] and keep.weights[0][0] == epoch - 1


def test_augmented_batches_are_exactly_as_many_as_fit_draws_and_reproducible():
    from harness.toolkit import train

    x, y = np.arange(10.0), np.arange(10.0) * 2

    def batches(seed):
        return list(train._batches(x, y, 4, lambda xb, yb, rng, rows: (xb, yb), seed, total_batches=7))

    got = batches(0)
    assert [len(b[0]) for b in got] == [4, 4, 2, 4, 4, 2, 4]  # 3 per pass over 10 rows, cut at 7
    assert all(np.array_equal(yb, xb * 2) for xb, yb in got)
    assert sorted(np.concatenate([b[0] for b in got[:3]])) == list(x)  # each pass is a permutation
    assert all(np.array_equal(a[0], b[0]) for a, b in zip(got, batches(0)))


def test_weight_decay_uses_adamw_and_a_final_rate_decays_to_it():
    from harness.toolkit import train

    t = validate({"learning_rate": 0.01, "weight_decay": 0.001}, TRAIN_SCHEMA, "t")
    assert type(train.optimizer(t, 100)).__name__ == "AdamW"
    assert type(train.optimizer(validate({}, TRAIN_SCHEMA, "t"), 100)).__name__ == "Adam"
    lr = train.learning_rate(validate({"learning_rate": 0.01, "final_learning_rate": 0.001}, TRAIN_SCHEMA, "t"), 100)
    assert float(lr(0)) == pytest.approx(0.01) and float(lr(100)) == pytest.approx(0.001)


def test_best_val_never_picks_an_epoch_before_pruning_has_finished():
    """Validation loss that only gets worse with training: best-val would pick epoch 1, but the weights of an epoch
    before the pruning schedule ends are not yet at their sparsity, so the first eligible epoch is chosen."""
    from harness.toolkit.tfsetup import keras

    k = keras()
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 4)).astype(np.float32)
    w = np.array([[1.0], [-2.0], [0.5], [3.0]], np.float32)
    recipe = {
        "seed": 1,
        "train": validate({"epochs": 6, "batch_size": 8, "select": "best-val", "learning_rate": 0.05}, TRAIN_SCHEMA, "t"),
        "prune": validate({"final_sparsity": 0.5, "begin": 0.2, "end": 0.6}, PRUNE_SCHEMA, "t"),
        "quantize": validate({}, QUANT_SCHEMA, "t"),
    }
    model = k.Sequential([k.Input((4,)), k.layers.Dense(1)])
    _, info = fit(model, (x, x @ w, x, -(x @ w)), recipe, loss="mse", metrics=None, log=lambda m: None)
    first_eligible = -(-(info["pruning_schedule"]["end_step"] + 1) // info["steps_per_epoch"])
    assert first_eligible > 1 and info["selected_epoch"] >= first_eligible


def test_a_schedule_that_begins_late_or_ends_where_it_begins_still_prunes():
    for total in (7, 40, 100):
        for begin, end in ((0.5, 0.5), (1.0, 1.0), (0.9, 1.0)):
            b, e, f = shrink.pruning_steps(total, {"begin": begin, "end": end, "frequency": 0})
            assert 0 <= b < e <= total - 1 and f >= 1 and (e - b) % f == 0, (total, begin, end, (b, e, f))


def test_the_default_frequency_updates_the_masks_about_twenty_times():
    begin, end, freq = shrink.pruning_steps(1000, {"begin": 0.0, "end": 1.0, "frequency": 0})
    assert (end - begin) // freq == 20


def test_depthwise_convolutions_and_batch_norm_are_left_unpruned():
    from harness.toolkit.tfsetup import keras

    k = keras().layers
    assert shrink.prunable(k.Dense(2)) and shrink.prunable(k.Conv2D(2, 3)) and shrink.prunable(k.Conv1D(2, 3))
    assert not shrink.prunable(k.DepthwiseConv2D(3)) and not shrink.prunable(k.BatchNormalization())


def test_keras_sparsity_counts_exact_zeros_of_prunable_kernels_only():
    from harness.toolkit.tfsetup import keras

    k = keras()
    m = k.Sequential([k.Input((4,)), k.layers.Dense(2)])
    m.layers[0].set_weights([np.array([[0, 1e-6], [0, 1], [1, 1], [1, 1]], np.float32), np.zeros(2, np.float32)])
    assert shrink.keras_sparsity(m) == pytest.approx(0.25)
    nothing = k.Sequential([k.Input((4, 4, 1)), k.layers.DepthwiseConv2D(3), k.layers.Flatten()])
    assert shrink.keras_sparsity(nothing) == 0.0  # nothing prunable: nothing pruned


def test_the_initial_sparsity_of_the_recipe_reaches_the_schedule():
    m = models.build({"name": "mlp", "width": 0.25}, 6, 3, models.Stats([0, 0], [1, 1], [1, 1])).model
    prune = validate({"final_sparsity": 0.75, "initial_sparsity": 0.5, "begin": 0.1, "end": 0.9}, PRUNE_SCHEMA, "t")
    wrapped, _, _ = shrink.wrap_for_pruning(m, 100, prune)
    schedules = [layer.pruning_schedule for layer in wrapped.layers if hasattr(layer, "pruning_schedule")]
    assert schedules and all(s.initial_sparsity == 0.5 and s.final_sparsity == 0.75 for s in schedules)


def test_quantization_aware_training_after_pruning_keeps_the_zeros():
    from harness.toolkit.tfsetup import keras

    k = keras()
    m = k.Sequential([k.Input((12,)), k.layers.Dense(32, activation="relu"), k.layers.Dense(6)])
    rng = np.random.default_rng(0)
    x = rng.normal(size=(256, 12)).astype(np.float32)
    y = rng.normal(size=(256, 6)).astype(np.float32)
    recipe = {
        "seed": 1,
        "train": validate({"epochs": 2, "batch_size": 32, "learning_rate": 0.01}, TRAIN_SCHEMA, "t"),
        "prune": validate({"final_sparsity": 0.75, "begin": 0.1, "end": 0.9}, PRUNE_SCHEMA, "t"),
        "quantize": validate({"mode": "int8", "qat_epochs": 1}, QUANT_SCHEMA, "t"),
    }
    model, _ = fit(m, (x, y, x[:64], y[:64]), recipe, loss="mse", metrics=None, log=lambda m: None)
    tfl = convert.to_tflite(model, "int8", lambda: ([x[i : i + 1]] for i in range(32)))
    assert weight_sparsity(tfl)["FULLY_CONNECTED"] >= 0.74


def _qat_recipe(qat_epochs: int, final_sparsity: float = 0.5) -> dict:
    return {"seed": 1,
            "train": validate({"epochs": 2, "batch_size": 32, "learning_rate": 0.01}, TRAIN_SCHEMA, "t"),
            "prune": validate({"final_sparsity": final_sparsity, "begin": 0.1, "end": 0.9}, PRUNE_SCHEMA, "t"),
            "quantize": validate({"mode": "int8", "qat_epochs": qat_epochs}, QUANT_SCHEMA, "t")}


@pytest.mark.parametrize("final_sparsity", [0.0, 0.5])
def test_a_model_that_cannot_train_quantization_aware_is_refused_before_it_trains(final_sparsity):
    """Every forecasting model has such a layer (normalisation, Lambda); before, the whole training ran and the build
    then failed with tfmot's own traceback."""
    b = models.build({"name": "delta_linear"}, 6, 3, models.Stats([0, 0], [1, 1], [1, 1]))
    x = np.random.default_rng(0).normal(size=(64, 6, 2)).astype(np.float32)
    y = x[:, -3:, :]
    lines = []
    with pytest.raises(HarnessError, match=r"^recipe: key 'quantize.qat_epochs': this model cannot be trained "
                                           r"quantization-aware \(.*Lambda.*\); use 0"):
        fit(b.model, (x, y, x, y), _qat_recipe(1, final_sparsity), loss="mae", metrics=None, log=lines.append)
    assert not [line for line in lines if "epoch" in line]  # refused before the first epoch


def test_the_check_before_quantization_aware_training_leaves_the_training_as_it_was():
    from harness.toolkit.tfsetup import keras

    k = keras()
    rng = np.random.default_rng(0)
    x = rng.normal(size=(128, 12)).astype(np.float32)
    y = rng.normal(size=(128, 6)).astype(np.float32)
    logs = {}
    for qat in (0, 1):
        k.backend.clear_session()
        m = k.Sequential([k.Input((12,)), k.layers.Dense(16, activation="relu"), k.layers.Dense(6)])
        m.set_weights([np.full(w.shape, 0.05, np.float32) for w in m.get_weights()])
        lines = []
        fit(m, (x, y, x[:32], y[:32]), _qat_recipe(qat), loss="mse", metrics=None, log=lines.append)
        logs[qat] = [line.split("(")[0] for line in lines if "train epoch" in line]  # losses, not seconds
    assert len(logs[0]) == 2 and logs[1] == logs[0]


def test_a_refusal_without_tfmot_s_words_names_the_error_type(monkeypatch):
    def fails(model, pruned):
        raise ValueError("")

    monkeypatch.setattr(shrink, "quantize_aware", fails)
    with pytest.raises(HarnessError, match=r"^r.toml: key 'quantize.qat_epochs': .* \(ValueError\); use 0"):
        shrink.check_quantize_aware(None, False, "r.toml")
