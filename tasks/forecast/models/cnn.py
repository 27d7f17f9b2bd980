"""Course Lab 3 CNN-1D: Conv1D 64, k=3 -> ReLU -> Flatten -> Dense 64 -> ReLU -> Dense K*2 -> Reshape.

hidden_dense=false drops the inner Dense layer (seed report 003's "less a Dense layer" variant).
"""
from harness.toolkit.tfsetup import keras
from tasks.forecast.models import Bundle, register, units
from tasks.forecast.models.common import head, identity_export, normalization


@register("cnn")
def build(input_steps, output_steps, stats, *, width: float = 1.0, filters: int = 64, kernel: int = 3,
          hidden: int = 64, hidden_dense: bool = True):
    k = keras()
    x = k.Input((input_steps, 2), name="x")
    h = k.layers.Conv1D(units(filters, width), kernel, activation="relu", name="conv")(normalization(stats)(x))
    h = k.layers.Flatten()(h)
    if hidden_dense:
        h = k.layers.Dense(units(hidden, width), activation="relu", name="dense")(h)
    return Bundle(k.Model(x, head(h, output_steps)), identity_export)
