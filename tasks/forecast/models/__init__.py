"""Forecasting model registry: a plain name -> builder. One file per model.

A builder gets (input_steps, output_steps, stats, **params) and returns a Bundle: the Keras model
to train and a function that turns the trained model into the deployed Keras model (by default the
same model; the delta models fold their normalization and residual into plain weights).
Every deployed model takes [1, input_steps, 2] in °C and %RH and returns [1, K, 2] in °C and %RH.
"""
from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Callable

from harness.errors import HarnessError

REGISTRY: dict[str, Callable] = {}


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


def register(name: str):
    def deco(fn):
        REGISTRY[name] = fn
        return fn

    return deco


def _load_all():
    from tasks.forecast.models import cnn, delta_linear, delta_mlp, mlp  # noqa: F401


def check(model: dict, where: str) -> dict:
    _load_all()
    name = model.get("name")
    if name not in REGISTRY:
        raise HarnessError(f"{where}: key 'model.name' is {name!r}; known forecasting models: {', '.join(sorted(REGISTRY))}")
    params = inspect.signature(REGISTRY[name]).parameters
    allowed = {k for k, p in params.items() if p.kind == p.KEYWORD_ONLY}
    for key, value in model.items():
        if key == "name":
            continue
        if key not in allowed:
            raise HarnessError(f"{where}: unknown key 'model.{key}' for model {name!r} (known: {', '.join(sorted(allowed))})")
        default = params[key].default
        if default is not inspect.Parameter.empty and default is not None and not isinstance(value, type(default)) \
                and not (isinstance(default, float) and isinstance(value, int) and not isinstance(value, bool)):
            raise HarnessError(f"{where}: key 'model.{key}' must be a {type(default).__name__}, got {value!r}")
    if "width" in model and not 0 < float(model["width"]) <= 4:
        raise HarnessError(f"{where}: key 'model.width' must be in (0, 4] (got {model['width']!r})")
    return dict(model)


def build(model: dict, input_steps: int, output_steps: int, stats: Stats) -> Bundle:
    _load_all()
    params = {k: v for k, v in model.items() if k != "name"}
    return REGISTRY[model["name"]](input_steps, output_steps, stats, **params)


def units(base: int, width: float) -> int:
    """Width multiplier: scale a layer's units/filters, never below 1."""
    return max(1, int(round(base * width)))
