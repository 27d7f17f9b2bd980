"""Linear model of the change from the last observed value, deployed as one fully-connected layer.

Trained as  y = last + scale * W·((x[:-1] - last) / scale)  (+ b): it only sees differences, so it is
translation-invariant and does not drag the forecast towards the training season's mean level
(the test split is a different season from the training split). The whole map is linear in x,
so export folds normalization and residual into a single Dense(K*2) on the raw [6, 2] input: the
smallest possible TFLite graph (one FULLY_CONNECTED + RESHAPE).
"""
import numpy as np

from harness.toolkit.tfsetup import keras
from tasks.forecast.models import Bundle, register


def delta_inputs(x, stats, input_steps):
    """Differences to the last step, scaled per feature, flattened: [B, (input_steps-1)*2]."""
    k = keras()
    scale = np.asarray(stats.delta_scale, np.float32)
    last = k.layers.Lambda(lambda t: t[:, -1:, :], name="last")(x)
    d = k.layers.Lambda(lambda a: (a[0][:, :-1, :] - a[1]) / scale, name="diff")([x, last])
    return last, k.layers.Flatten(name="flat")(d)


def residual_head(z, last, output_steps, stats):
    k = keras()
    scale = np.asarray(stats.delta_scale, np.float32)
    z = k.layers.Reshape((output_steps, 2), name="reshape")(z)
    return k.layers.Lambda(lambda a: a[0] * scale + a[1], name="residual")([z, last])


def fold_linear(model, input_steps: int, output_steps: int):
    """Probe a model that is linear in its input and return the equivalent Dense-only model."""
    k = keras()
    n_in = input_steps * 2
    basis = np.concatenate([np.zeros((1, n_in)), np.eye(n_in)]).reshape(-1, input_steps, 2)
    out = model.predict(basis.astype(np.float32), verbose=0).reshape(n_in + 1, -1).astype(np.float64)
    bias = out[0]
    kernel = out[1:] - bias
    use_bias = bool(np.any(np.abs(bias) > 1e-7))
    x = k.Input((input_steps, 2), name="x")
    dense = k.layers.Dense(output_steps * 2, use_bias=use_bias, name="fc")
    y = k.layers.Reshape((output_steps, 2), name="y")(dense(k.layers.Flatten(name="f")(x)))
    folded = k.Model(x, y)
    dense.set_weights([kernel.astype(np.float32)] + ([bias.astype(np.float32)] if use_bias else []))
    return folded


@register("delta_linear")
def build(input_steps, output_steps, stats, *, bias: bool = False):
    k = keras()
    x = k.Input((input_steps, 2), name="x")
    last, d = delta_inputs(x, stats, input_steps)
    z = k.layers.Dense(output_steps * 2, use_bias=bias, kernel_initializer="zeros", name="delta")(d)
    model = k.Model(x, residual_head(z, last, output_steps, stats))
    return Bundle(
        model,
        export=lambda m: fold_linear(m, input_steps, output_steps),
        loss_weights=[1.0 / s for s in stats.delta_scale],
    )
