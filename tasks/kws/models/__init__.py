"""Keyword-spotting model registry: a plain name -> builder, one file per model.

A builder gets (input_shape, num_labels, **params) and returns a tf.keras model that maps
float32 features [B, frames, coefficients, 1] to logits [B, num_labels]. The task adds the
final Softmax to the deployed model.
"""
from __future__ import annotations

from harness.toolkit.registry import Registry, units  # noqa: F401  (units: used by the model files)

REGISTRY = Registry(__name__, "keyword-spotting models")
register = REGISTRY.register
check = REGISTRY.check


def build(model: dict, input_shape, num_labels: int):
    return REGISTRY.build(model, tuple(input_shape), num_labels)


def parameters(model: dict, input_shape, num_labels: int) -> int:
    """Parameter count without training: the search rejects configurations that cannot fit."""
    return int(build(model, input_shape, num_labels).count_params())
