"""Knowledge distillation (Hinton et al. 2015): a teacher trained first, on the same training clips, lends its
softened outputs to the model that ships.

The teacher is the recipe's model at another width, unpruned and kept in float; it never reaches the file. Its
outputs are computed once per training clip (offline distillation: the student sees augmented features, the
teacher's targets are of the clean ones), so the targets are fixed before the student's first step and a
build stays deterministic. The student's loss is (1 - weight) × cross-entropy with the labels + weight × T² ×
cross-entropy with the teacher's probabilities at temperature T (T² keeps the gradients' scale as T moves).
"""
from __future__ import annotations

import numpy as np

from harness.core.config import Field, in_range
from harness.core.errors import HarnessError

DISTILL_SCHEMA = {
    "weight": Field(float, default=0.0, check=in_range(0, 1),
                    doc="share of the student's loss on the teacher's softened outputs; 0 = no teacher"),
    "temperature": Field(float, default=4.0, check=in_range(1, 20), doc="softens both sides' logits"),
    "teacher_width": Field(float, default=None, check=lambda v: None if v is None or v > 0 else "must be > 0",
                           doc="the teacher's model.width; none = the student's"),
}


def check_recipe(data: dict, where: str, check_model) -> None:
    """The teacher's model must exist before any training: its width is checked by the model registry."""
    d = data["distill"]
    if not d["weight"]:
        return
    if data["quantize"]["qat_epochs"]:
        raise HarnessError(f"{where}: key 'distill.weight' is not available with quantize.qat_epochs")
    check_model(teacher_model(data), f"{where}: [distill] teacher_width")


def teacher_model(recipe) -> dict:
    width = recipe["distill"]["teacher_width"]
    return dict(recipe["model"]) if width is None else {**recipe["model"], "width": width}


def teacher_recipe(recipe) -> dict:
    """The recipe the teacher trains with: its own width, no pruning."""
    data = dict(getattr(recipe, "data", recipe))
    data.update(model=teacher_model(data), prune={**data["prune"], "final_sparsity": 0.0, "initial_sparsity": 0.0})
    return data


def targets(labels: np.ndarray, teacher_logits: np.ndarray, temperature: float) -> np.ndarray:
    """[N, 2 × classes]: the one-hot labels, then the teacher's probabilities at the temperature."""
    n = teacher_logits.shape[1]
    z = teacher_logits.astype(np.float64) / temperature
    z -= z.max(axis=1, keepdims=True)
    soft = np.exp(z)
    soft /= soft.sum(axis=1, keepdims=True)
    return np.concatenate([np.eye(n)[labels], soft], axis=1).astype(np.float32)


def loss(n: int, temperature: float, weight: float, label_smoothing: float = 0.0):
    """The student's loss on targets() rows and its logits."""
    from harness.toolkit.tfsetup import keras

    t = float(temperature)
    ce = keras().losses.categorical_crossentropy

    def distillation_loss(y, logits):
        hard, soft = y[:, :n], y[:, n:]
        return ((1.0 - weight) * ce(hard, logits, from_logits=True, label_smoothing=label_smoothing)
                + weight * t * t * ce(soft, logits / t, from_logits=True))

    return distillation_loss


def accuracy(n: int):
    """Accuracy against the labels half of targets() rows (named so the usual monitor key applies)."""
    from harness.toolkit.tfsetup import tf as tf_

    tf = tf_()

    def categorical_accuracy(y, logits):
        return tf.cast(tf.equal(tf.argmax(y[:, :n], axis=1), tf.argmax(logits, axis=1)), tf.float32)

    return categorical_accuracy


def train_teacher(ctx, recipe, data, n_out: int, augment):
    """Train the teacher on data = (x_train, y_train, x_val, y_val): its logits on the training and the
    validation clips, and what to record of it."""
    from harness.toolkit.tfsetup import keras
    from harness.toolkit.train import fit
    from tasks.kws import models

    x_tr, y_tr, x_val, y_val = data
    t_recipe = teacher_recipe(recipe)
    model = models.build(t_recipe["model"], x_tr.shape[1:], n_out)
    ctx.log(f"  train the teacher {t_recipe['model']['name']} (width {t_recipe['model'].get('width')}): "
            f"{model.count_params():,} params, unpruned, float")
    model, info = fit(model, data, t_recipe, loss=keras().losses.SparseCategoricalCrossentropy(from_logits=True),
                      metrics=["sparse_categorical_accuracy"], log=ctx.log,
                      monitor=("val_sparse_categorical_accuracy", "max"), augment=augment)
    logits_tr = model.predict(x_tr, batch_size=256, verbose=0)
    logits_val = model.predict(x_val, batch_size=256, verbose=0)
    val_acc = float(np.mean(np.argmax(logits_val, axis=1) == y_val))
    return logits_tr, logits_val, {"params": int(model.count_params()), "val_accuracy": round(val_acc, 6),
                                   "train_seconds": info["train_seconds"], "selected_epoch": info["selected_epoch"]}
