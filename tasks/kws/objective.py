"""What the keyword model trains against: labels (optionally smoothed), or labels and a teacher's outputs."""
from __future__ import annotations

import numpy as np

from tasks.kws import distill


def objective(recipe, n_out: int, y_tr: np.ndarray, y_val: np.ndarray, teacher_logits=None):
    """(loss, metrics, monitor, training targets, validation targets).

    teacher_logits: (on the training clips, on the validation clips) when the recipe distils.
    """
    from harness.toolkit.tfsetup import keras

    k = keras()
    smoothing = recipe["train"]["label_smoothing"]
    if teacher_logits is not None:
        d = recipe["distill"]
        t = d["temperature"]
        return (distill.loss(n_out, t, d["weight"], smoothing), [distill.accuracy(n_out)],
                ("val_categorical_accuracy", "max"),
                distill.targets(y_tr, teacher_logits[0], t), distill.targets(y_val, teacher_logits[1], t))
    if smoothing:
        eye = np.eye(n_out, dtype=np.float32)
        return (k.losses.CategoricalCrossentropy(from_logits=True, label_smoothing=smoothing), ["categorical_accuracy"],
                ("val_categorical_accuracy", "max"), eye[y_tr], eye[y_val])
    return (k.losses.SparseCategoricalCrossentropy(from_logits=True), ["sparse_categorical_accuracy"],
            ("val_sparse_categorical_accuracy", "max"), y_tr, y_val)
