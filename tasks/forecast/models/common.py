"""Pieces shared by the forecasting models."""
from __future__ import annotations

import numpy as np

from harness.toolkit.tfsetup import keras


def normalization(stats):
    """(x - mean) / (std + 1e-6) with the train-split statistics, as the course lab; inside the model."""
    std = np.asarray(stats.std, np.float64) + 1e-6
    return keras().layers.Normalization(mean=list(stats.mean), variance=list(std**2), name="norm")


def head(h, output_steps: int, name: str = "out"):
    k = keras().layers
    return k.Reshape((output_steps, 2), name="reshape")(k.Dense(output_steps * 2, name=name)(h))


def identity_export(model):
    return model
