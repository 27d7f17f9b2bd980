"""Course lab MLP: Flatten → 3 × [Dense 256·α → ReLU] → Dense."""
from harness.toolkit.tfsetup import keras
from tasks.kws.models import register, units


@register("mlp")
def build(input_shape, num_labels, *, width: float = 1.0, hidden: int = 256, layers: int = 3):
    k = keras()
    x = k.Input(input_shape, name="features")
    h = k.layers.Flatten()(x)
    for i in range(layers):
        h = k.layers.Dense(units(hidden, width), activation="relu", name=f"dense{i}")(h)
    return k.Model(x, k.layers.Dense(num_labels, name="logits")(h), name="mlp")
