"""Keyword-spotting model registry: a plain name -> builder, one file per model.

A builder gets (input_shape, num_labels, **params) and returns a tf.keras model that maps
float32 features [B, frames, coefficients, 1] to logits [B, num_labels]. The task adds the
final Softmax to the deployed model.
"""
from __future__ import annotations

import importlib
import inspect
import pkgutil
from typing import Callable

from harness.errors import HarnessError

REGISTRY: dict[str, Callable] = {}


def register(name: str):
    def deco(fn):
        REGISTRY[name] = fn
        return fn

    return deco


def _load_all():
    for mod in pkgutil.iter_modules(__path__):
        if not mod.name.startswith("_"):
            importlib.import_module(f"{__name__}.{mod.name}")


def check(model: dict, where: str) -> dict:
    _load_all()
    name = model.get("name")
    if name not in REGISTRY:
        raise HarnessError(f"{where}: key 'model.name' is {name!r}; known keyword-spotting models: {', '.join(sorted(REGISTRY))}")
    params = inspect.signature(REGISTRY[name]).parameters
    allowed = {k: p for k, p in params.items() if p.kind == p.KEYWORD_ONLY}
    for key, value in model.items():
        if key == "name":
            continue
        if key not in allowed:
            raise HarnessError(f"{where}: unknown key 'model.{key}' for model {name!r} (known: {', '.join(sorted(allowed))})")
        default = allowed[key].default
        ok = isinstance(value, type(default)) or (isinstance(default, float) and isinstance(value, int) and not isinstance(value, bool))
        if isinstance(default, list):
            ok = isinstance(value, list)
        if not ok:
            raise HarnessError(f"{where}: key 'model.{key}' must be a {type(default).__name__}, got {value!r}")
    if not 0 < float(model.get("width", 1.0)) <= 4:
        raise HarnessError(f"{where}: key 'model.width' must be in (0, 4] (got {model['width']!r})")
    return dict(model)


def build(model: dict, input_shape, num_labels: int):
    _load_all()
    params = {k: v for k, v in model.items() if k != "name"}
    return REGISTRY[model["name"]](tuple(input_shape), num_labels, **params)


def parameters(model: dict, input_shape, num_labels: int) -> int:
    """Parameter count without training: the search rejects configurations that cannot fit."""
    return int(build(model, input_shape, num_labels).count_params())


def units(base: int, width: float) -> int:
    return max(1, int(round(base * width)))
