"""The LiteRT runner: a file with int8 input and output gives the float model's outputs."""
import numpy as np

from harness.toolkit.measure.interpreter import Runner


def test_int8_io_file_gives_the_float_files_outputs():
    from harness.toolkit.tfsetup import keras, tf

    k, t = keras(), tf()
    k.utils.set_random_seed(0)
    model = k.Sequential([k.Input((8,)), k.layers.Dense(3), k.layers.Softmax()])
    x = np.random.default_rng(1).normal(size=(64, 8)).astype(np.float32)
    conv = t.lite.TFLiteConverter.from_keras_model(model)
    conv.optimizations = [t.lite.Optimize.DEFAULT]
    conv.representative_dataset = lambda: ([x[i: i + 1]] for i in range(64))
    conv.inference_input_type = conv.inference_output_type = t.int8
    q = Runner(conv.convert()).predict(x)
    f = model.predict(x, verbose=0)
    np.testing.assert_allclose(q, f, atol=0.05)
