"""An ensemble inside one file: several independently trained models whose output probabilities are averaged.

Averaging members trained from different seeds lowers the variance a single small model carries from its
initialisation and batch order; the file grows by one copy per member, so it pays where a size limit leaves room.
"""
from __future__ import annotations

from harness.toolkit.tfsetup import keras, seed_everything

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


def train(recipe, train_one, name: str):
    """Train the recipe's [ensemble] members and average them: (model, build info).

    train_one(member_recipe, label) -> (model giving probabilities, info) trains one member; member 0 is the
    plain recipe in the session the build seeded, so a one-member ensemble is exactly the single model.
    """
    n = recipe["ensemble"]["members"]
    models, infos = [], []
    for j, seed in enumerate(member_seeds(recipe["seed"], n)):
        if j:
            seed_everything(seed)
        member_recipe = {**getattr(recipe, "data", recipe), "seed": seed} if j else recipe
        model, info = train_one(member_recipe, f" (ensemble member {j + 1}, seed {seed})" if n > 1 else "")
        models.append(model)
        infos.append(dict(info, seed=seed))
    info = dict(infos[0])
    if n > 1:  # what differs between members is kept per member, not shown as the file's
        for key in ("selected_epoch", "keras_sparsity", "seed"):
            info.pop(key, None)
        info.update(params=sum(i["params"] for i in infos), members=infos,
                    train_seconds=round(sum(i["train_seconds"] for i in infos), 2))
    return average(models, name=name), info
