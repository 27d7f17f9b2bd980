"""The conversion variants: the weights each one stores, and the calibration set the integer ones need."""
import numpy as np
import pytest

from harness.core.errors import HarnessError
from harness.toolkit import convert
from harness.toolkit.measure.interpreter import load
from harness.toolkit.tfsetup import keras


@pytest.fixture(scope="module")
def model():
    k = keras()
    # 2048 weights in the first layer: dynamic range quantization leaves tensors below 1024 elements float
    m = k.Sequential([k.Input((32,)), k.layers.Dense(64, activation="relu"), k.layers.Dense(4)])
    rng = np.random.default_rng(0)
    m.set_weights([rng.normal(0, 0.3, w.shape).astype(np.float32) for w in m.get_weights()])
    return m


def _weight_dtypes(tfl: bytes) -> set[str]:
    it, _ = load(tfl)
    return {np.dtype(d["dtype"]).name for d in it.get_tensor_details() if len(d["shape"]) == 2 and d["shape"][0] > 1}


@pytest.mark.parametrize("mode,dtype", [("none", "float32"), ("dynamic", "int8"), ("float16", "float16")])
def test_each_variant_stores_the_weights_it_names(model, mode, dtype):
    stored = _weight_dtypes(convert.to_tflite(model, mode))
    assert dtype in stored and not ({"int8", "float16"} - {dtype}) & stored, stored


@pytest.mark.parametrize("mode", ["int8", "int4"])
def test_integer_variants_refuse_a_missing_or_empty_calibration_set_in_one_clear_line(model, mode):
    with pytest.raises(HarnessError, match=f"quantize.mode = {mode} needs a calibration set"):
        convert.to_tflite(model, mode)
    if mode == "int4":
        with pytest.raises(HarnessError, match="the calibration set is empty"):
            convert.to_tflite(model, mode, lambda: iter([]))
