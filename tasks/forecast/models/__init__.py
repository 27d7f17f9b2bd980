"""Forecasting model registry: a plain name -> builder. One file per model.

A builder gets (input_steps, output_steps, stats, **params) and returns a Bundle: the Keras model
to train and a function that turns the trained model into the deployed Keras model (by default the
same model; the delta models fold their normalization and residual into plain weights).
Every deployed model takes [1, input_steps, 2] in °C and %RH and returns [1, K, 2] in °C and %RH.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from harness.toolkit.registry import Registry, units  # noqa: F401  (units: used by the model files)

REGISTRY = Registry(__name__, "forecasting models")
register = REGISTRY.register
check = REGISTRY.check


@dataclass
class Stats:
    mean: list[float]  # train-split mean per feature
    std: list[float]  # train-split std per feature
    delta_scale: list[float]  # typical |change| per feature, to balance the loss of T and RH


@dataclass
class Bundle:
    model: object  # tf.keras model to train (input in physical units)
    export: Callable[[object], object]  # trained model -> deployable model
    loss_weights: list[float] | None = None  # per-feature weights for the default loss


def build(model: dict, input_steps: int, output_steps: int, stats: Stats) -> Bundle:
    return REGISTRY.build(model, input_steps, output_steps, stats)
