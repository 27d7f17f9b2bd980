"""Residual MLP on the differences to the last value: last + scale * MLP(diffs [, level]).

The non-linear sibling of delta_linear for larger budgets. `level=true` also feeds the normalized
last value (lets the model learn level-dependent behaviour, e.g. RH saturating near 100 %).
"""
from harness.toolkit.tfsetup import keras
from tasks.forecast.models import Bundle, register, units
from tasks.forecast.models.common import identity_export, normalization
from tasks.forecast.models.delta_linear import delta_inputs, residual_head


@register("delta_mlp")
def build(input_steps, output_steps, stats, *, width: float = 1.0, hidden: int = 16, level: bool = False):
    k = keras()
    x = k.Input((input_steps, 2), name="x")
    last, d = delta_inputs(x, stats, input_steps)
    if level:
        d = k.layers.Concatenate(name="cat")([d, k.layers.Flatten(name="lvl")(normalization(stats)(last))])
    h = k.layers.Dense(units(hidden, width), activation="relu", name="hidden")(d)
    z = k.layers.Dense(output_steps * 2, name="delta")(h)
    model = k.Model(x, residual_head(z, last, output_steps, stats))
    return Bundle(model, identity_export, loss_weights=[1.0 / s for s in stats.delta_scale])
