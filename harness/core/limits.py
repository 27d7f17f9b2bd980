"""How a constraint key is checked: the metric it limits, its label and unit, and its direction."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Limit:
    """How one constraint key is checked: `max_*` keys need measured < limit, `min_*` keys measured > limit."""

    key: str  # constraint key, e.g. "max_mae_t_degc"
    metric: str  # measured metric key, e.g. "mae_t_degc"
    label: str  # row label in the table
    unit: str  # printed unit
    fmt: str = "{:.3f}"


def lookup(section: dict, dotted: str):
    """The value at a dotted key of a constraint section ("latency.max_ms"), or None."""
    node = section
    for part in dotted.split("."):
        if not isinstance(node, dict) or node.get(part) is None:
            return None
        node = node[part]
    return node


def operator(limit_key: str) -> str:
    """`max_*` keys need measured < limit, `min_*` keys measured > limit."""
    return "<" if limit_key.rsplit(".", 1)[-1].startswith("max_") else ">"
