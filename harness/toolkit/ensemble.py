"""An ensemble inside one file: several independently trained models whose output probabilities are averaged.

Averaging members trained from different seeds lowers the variance a single small model carries from its
initialisation and batch order; the file grows by one copy per member, so it pays where a size limit leaves room.
"""
from __future__ import annotations

from harness.toolkit.tfsetup import keras

# Member j trains with seed (seed + j * MEMBER_SEED_STRIDE): far from the seeds axis (seed, seed + 1, ...),
# so no member of one seed's build repeats another seed's model.
MEMBER_SEED_STRIDE = 1000


def member_seeds(seed: int, members: int) -> list[int]:
    return [int(seed) + j * MEMBER_SEED_STRIDE for j in range(members)]


def average(models: list, name: str):
    """One model: the members side by side on the same input, their outputs averaged (one member: itself)."""
    if len(models) == 1:
        return models[0]
    k = keras()
    x = k.Input(models[0].input_shape[1:], name="features")
    outputs = []
    for j, m in enumerate(models):
        m._name = f"member{j}"  # nested models need distinct names; their layers keep theirs
        outputs.append(m(x))
    return k.Model(x, k.layers.Average(name="mean_probabilities")(outputs), name=name)
