"""Normalization inside the model; Keras vs deployed TFLite parity; the delta fold is exact."""
import numpy as np
import pytest

from harness.toolkit import convert
from harness.toolkit.measure.interpreter import Runner
from harness.toolkit.tfsetup import seed_everything
from tasks.forecast import models

STATS = models.Stats(mean=[9.1, 75.9], std=[8.65, 16.56], delta_scale=[0.2, 0.9])


def _inputs(n=64, seed=0):
    rng = np.random.default_rng(seed)
    base = np.stack([rng.normal(9, 8, n), rng.uniform(30, 100, n)], axis=1)[:, None, :]
    return (base + rng.normal(0, [0.3, 1.0], (n, 6, 2))).astype(np.float32)


@pytest.mark.parametrize("spec", [{"name": "mlp", "width": 0.25}, {"name": "cnn", "width": 0.25},
                                  {"name": "delta_linear"}, {"name": "delta_mlp", "hidden": 8, "level": True}])
def test_keras_and_tflite_agree_on_physical_units(spec):
    seed_everything(1)
    b = models.build(models.check(dict(spec), "test"), 6, 3, STATS)
    model = b.model
    if spec["name"] == "delta_linear":  # zero-initialised: give it some weights to compare
        w = model.get_layer("delta").get_weights()
        model.get_layer("delta").set_weights([np.random.default_rng(0).normal(0, 0.3, w[0].shape).astype(np.float32)])
    x = _inputs()
    keras_out = model.predict(x, verbose=0)
    deployed = b.export(model)
    runner = Runner(convert.to_tflite(deployed, "none"))
    assert runner.input_shape == (1, 6, 2) and runner.output_shape == (1, 3, 2)
    np.testing.assert_allclose(runner.predict(x), keras_out, rtol=1e-4, atol=1e-4)


def test_delta_linear_exports_as_one_fully_connected_layer():
    b = models.build({"name": "delta_linear"}, 6, 9, STATS)
    layer = b.model.get_layer("delta")
    layer.set_weights([np.random.default_rng(1).normal(0, 0.2, layer.get_weights()[0].shape).astype(np.float32)])
    tfl = convert.to_tflite(b.export(b.model), "none")
    from harness.toolkit.measure.interpreter import load

    it, _ = load(tfl)
    ops = sorted({op["op_name"] for op in it._get_ops_details()} - {"DELEGATE"})  # XNNPACK node
    assert ops == ["FULLY_CONNECTED", "RESHAPE"]
    # a constant input maps to itself plus the learnt drift (zero here: no bias)
    x = np.full((1, 6, 2), [12.5, 80.0], np.float32)
    np.testing.assert_allclose(Runner(tfl)(x)[0], np.tile([12.5, 80.0], (9, 1)), atol=1e-3)


def test_width_multiplier_scales_units():
    small = models.build({"name": "mlp", "width": 0.25}, 6, 3, STATS).model.count_params()
    full = models.build({"name": "mlp"}, 6, 3, STATS).model.count_params()
    assert small < full / 8


def test_unknown_model_or_parameter_is_rejected():
    from harness.core.errors import HarnessError

    with pytest.raises(HarnessError, match="known forecasting models"):
        models.check({"name": "transformer"}, "r.toml")
    with pytest.raises(HarnessError, match="unknown key 'model.filters' for model 'mlp'"):
        models.check({"name": "mlp", "filters": 3}, "r.toml")
    with pytest.raises(HarnessError, match="model.width"):
        models.check({"name": "mlp", "width": "wide"}, "r.toml")


@pytest.mark.parametrize("graph", ["concat", "chain"])
def test_delta_hinge_folds_into_two_layers_exactly_and_rounds_without_drift(graph):
    """The trained form (linear part + ReLU units on differences and level) and the folded two-layer file agree;
    on the 5-bit grid they agree to the rounding, and a constant input still maps to itself (no level drift)."""
    seed_everything(1)
    spec = {"name": "delta_hinge", "hidden": 3, "level": True, "bias": False, "graph": graph}
    for rounding in ("off", "grid"):
        b = models.build(models.check(dict(spec, rounding=rounding, bits=5), "test"), 6, 3, STATS)
        rng = np.random.default_rng(0)
        for name in ("delta", "head"):
            layer = b.model.get_layer(name)
            layer.set_weights([rng.normal(0, 0.2, w.shape).astype(np.float32) for w in layer.get_weights()])
        x = _inputs()
        keras_out = b.model.predict(x, verbose=0)
        got = Runner(convert.to_tflite(b.export(b.model), "none")).predict(x)
        if rounding == "off":
            np.testing.assert_allclose(got, keras_out, atol=1e-4)
        else:  # 5 significant bits per weight: close, not equal
            assert 0 < np.abs(got - keras_out).mean() < 0.1
    b.model.get_layer("head").set_weights([np.zeros_like(w) for w in b.model.get_layer("head").get_weights()])
    const = np.full((1, 6, 2), [12.5, 80.0], np.float32)
    np.testing.assert_allclose(Runner(convert.to_tflite(b.export(b.model), "none"))(const)[0],
                               np.tile([12.5, 80.0], (3, 1)), atol=1e-3)


@pytest.mark.parametrize("name", ["delta_linear", "delta_hinge"])
def test_a_learnt_drift_survives_the_export(name):
    """With a bias the folded file still equals the trained model: the drift is in physical units, not scaled ones."""
    spec = {"name": name, "bias": True} if name == "delta_linear" else {"name": name, "rounding": "off"}
    b = models.build(models.check(dict(spec), "test"), 6, 3, STATS)
    rng = np.random.default_rng(0)
    for layer in b.model.layers:
        if layer.name in ("delta", "hidden", "head"):
            layer.set_weights([rng.normal(0, 0.3, w.shape).astype(np.float32) for w in layer.get_weights()])
    x = _inputs()
    np.testing.assert_allclose(Runner(convert.to_tflite(b.export(b.model), "none")).predict(x),
                               b.model.predict(x, verbose=0), atol=1e-4)


def test_delta_models_weigh_each_feature_by_its_typical_change():
    for name in ("delta_linear", "delta_hinge"):
        assert models.build({"name": name}, 6, 3, STATS).loss_weights == pytest.approx([1 / 0.2, 1 / 0.9])


@pytest.mark.parametrize("rounding,mode", [("fp16", "float16"), ("bits", "none")])
def test_rounded_weights_keep_a_constant_input_constant(rounding, mode):
    """After rounding (and the float16 cast) the weights on the six steps still sum to 0 per difference and to 1
    for the residual: a steady reading is forecast as itself, with no error growing with the level."""
    spec = {"name": "delta_hinge", "hidden": 0, "bias": False, "rounding": rounding, "bits": 5}
    b = models.build(models.check(spec, "test"), 6, 3, STATS)
    layer = b.model.get_layer("delta")
    layer.set_weights([np.random.default_rng(2).normal(0, 0.3, w.shape).astype(np.float32) for w in layer.get_weights()])
    const = np.full((1, 6, 2), [12.5, 80.0], np.float32)
    got = Runner(convert.to_tflite(b.export(b.model), mode))(const)[0]
    np.testing.assert_allclose(got, np.tile([12.5, 80.0], (3, 1)), atol=1e-3)


def test_grid_rounding_leaves_few_significant_bits_in_the_hidden_layer_too():
    spec = {"name": "delta_hinge", "hidden": 3, "level": True, "bias": False, "rounding": "grid", "bits": 5}
    b = models.build(models.check(spec, "test"), 6, 3, STATS)
    rng = np.random.default_rng(0)
    for name in ("delta", "hidden", "head"):
        layer = b.model.get_layer(name)
        layer.set_weights([rng.normal(0, 0.2, w.shape).astype(np.float32) for w in layer.get_weights()])
    kernel = b.export(b.model).get_layer("h").get_weights()[0].astype(np.float64)
    earlier = np.frexp(kernel[:-2])[0] * 2.0**5  # the five earlier steps: 5 significant bits each
    np.testing.assert_array_equal(earlier, np.round(earlier))
    last = np.frexp(kernel[-2:])[0] * 2.0**8  # the last step holds the sum: on the same grid, a few bits more
    np.testing.assert_array_equal(last, np.round(last))


def test_delta_hinge_defaults_and_unknown_choices():
    from harness.core.errors import HarnessError

    assert models.build({"name": "delta_hinge"}, 6, 3, STATS).model.get_layer("hidden").units == 2
    with pytest.raises(HarnessError, match="model.rounding"):
        models.build({"name": "delta_hinge", "rounding": "nearest"}, 6, 3, STATS)
    with pytest.raises(HarnessError, match="model.graph"):
        models.build({"name": "delta_hinge", "graph": "tree"}, 6, 3, STATS)
