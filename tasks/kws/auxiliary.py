"""Auxiliary keywords: train a pair model on the other keywords' training clips too, ship the pair's outputs only.

A two-keyword version has ~1,600 training clips; the corpus's other keywords add ~4,800 clips from the same
training list (more speakers, more microphones). The model learns them as extra classes, then its last layer
keeps only the version's rows: the file has the version's outputs, in the version's order, and its logits for
those labels are exactly the trained model's.
"""
from __future__ import annotations

import numpy as np

from harness.core.config import Field
from harness.core.errors import HarnessError
from tasks.kws import splits as sp


def _labels(v):
    if not all(isinstance(x, str) and x for x in v):
        return "must be a list of keyword names"
    if len(set(v)) != len(v):
        return "must not repeat a keyword"
    return None


AUXILIARY_SCHEMA = {
    "labels": Field(list, default=[], check=_labels,
                    doc="other keywords whose training clips the model also learns, as extra classes dropped "
                        "from the shipped file"),
}


def check_recipe(recipe: dict, where: str) -> None:
    """Refuse, before any training, the combinations whose training rows or head would not line up."""
    if not recipe["auxiliary"]["labels"]:
        return
    clashes = {"augment.speeds": recipe["augment"]["speeds"], "quantize.qat_epochs": recipe["quantize"]["qat_epochs"],
               "export.front_end = \"in-graph\"": recipe["export"]["front_end"] == "in-graph"}
    for key, value in clashes.items():
        if value:
            raise HarnessError(f"{where}: key 'auxiliary.labels' is not available with {key}")


def check_labels(auxiliary, corpus_labels, labels) -> None:
    """Every auxiliary keyword is one of the corpus's and none of the version's."""
    for bad, why in (([k for k in auxiliary if k not in corpus_labels], f"not a keyword of the corpus ({', '.join(corpus_labels)})"),
                     ([k for k in auxiliary if k in labels], "already one of the version's labels")):
        if bad:
            raise HarnessError(f"recipe key 'auxiliary.labels': {', '.join(map(repr, bad))} {why}")


def items(corpus, data_dir, kind: str, labels, auxiliary, fold_splits=None) -> list:
    """The auxiliary keywords' training clips under the version's split kind.

    In a cross-validation fold (fold_splits given) the pool is their train + val clips minus every clip of a
    held-out or validation speaker, so the fold's figure stays a figure on unseen speakers.
    """
    check_labels(auxiliary, corpus.labels, labels)
    full, _ = sp.version_splits(corpus, data_dir, kind, auxiliary)
    if fold_splits is None:
        return list(full["train"])
    # the fold's validation speakers are left out too: what training chooses on stays unseen speakers as well
    unseen = {sp.speaker(i) for part in ("held-out", "val") for i in fold_splits[part]}
    return [i for i in list(full["train"]) + list(full["val"]) if sp.speaker(i) not in unseen]


def with_clips(task, ctx, section, recipe, x_tr, y_tr):
    """The training set plus the auxiliary keywords' clips, labelled after the version's labels."""
    from tasks.kws import features as feat

    aux = recipe["auxiliary"]["labels"]
    ctx.open_split("train")
    s, _ = task.splits(ctx, section)
    corpus = task.corpus(ctx)
    clips = items(corpus, ctx.data_dir, section["split"], section["labels"], aux, fold_splits=s if ctx.fold else None)
    x_aux, y_aux = feat.cached_features(corpus, clips, [*section["labels"], *aux], feat.PreprocessingArgs.from_dict(
        recipe["features"]), "train-auxiliary", use_cache=ctx.use_cache)
    ctx.log(f"  auxiliary keywords {', '.join(aux)}: {len(clips)} more training clips, not among the file's outputs")
    return np.concatenate([x_tr, x_aux]), np.concatenate([y_tr, y_aux])


def keep_outputs(model, small):
    """Copy `model`'s weights into `small`, the same architecture with fewer outputs: the layer named "logits"
    (every builder's last, see models/_layers.classifier) keeps its first rows. Any other mismatch is an error,
    so a wrong builder never ships a half-copied model."""
    for layer in small.layers:
        weights = model.get_layer(layer.name).get_weights()
        if layer.name == "logits":
            weights = [np.ascontiguousarray(w[..., : layer.units]) for w in weights]
        wanted = [w.shape for w in layer.get_weights()]
        if [w.shape for w in weights] != wanted:
            raise HarnessError(f"auxiliary head: layer {layer.name!r} has weights {[w.shape for w in weights]}, "
                               f"the shipped model wants {wanted}")
        layer.set_weights(weights)
    return small
