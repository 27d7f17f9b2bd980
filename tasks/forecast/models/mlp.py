"""Course Lab 3 MLP: Flatten -> Dense 128 -> ReLU -> Dense 128 -> ReLU -> Dense K*2 -> Reshape (K, 2)."""
from harness.toolkit.tfsetup import keras
from tasks.forecast.models import Bundle, register, units
from tasks.forecast.models.common import head, identity_export, normalization


@register("mlp")
def build(input_steps, output_steps, stats, *, width: float = 1.0, hidden: int = 128, layers: int = 2):
    k = keras()
    x = k.Input((input_steps, 2), batch_size=None, name="x")
    h = k.layers.Flatten()(normalization(stats)(x))
    for i in range(layers):
        h = k.layers.Dense(units(hidden, width), activation="relu", name=f"dense{i}")(h)
    return Bundle(k.Model(x, head(h, output_steps)), identity_export)
