"""Compare measured metrics with a constraint section's limits (all strict inequalities)."""
from __future__ import annotations

from dataclasses import dataclass

from harness.task import Limit


@dataclass
class CheckRow:
    label: str
    limit: float | None
    measured: float | None
    unit: str
    op: str  # "<" or ">"
    passed: bool | None  # None: no limit to check (information only) or not measured
    fmt: str

    def limit_text(self) -> str:
        return "—" if self.limit is None else f"{self.op} {self.fmt.format(self.limit)} {self.unit}"

    def measured_text(self) -> str:
        return "not measured" if self.measured is None else f"{self.fmt.format(self.measured)} {self.unit}"

    def result_text(self) -> str:
        return {True: "PASS", False: "FAIL", None: "info"}[self.passed]


def lookup(section: dict, dotted: str):
    node = section
    for part in dotted.split("."):
        if not isinstance(node, dict) or node.get(part) is None:
            return None
        node = node[part]
    return node


def evaluate(limits: list[Limit], section: dict, metrics: dict) -> list[CheckRow]:
    rows = []
    for lim in limits:
        name = lim.key.rsplit(".", 1)[-1]
        op = "<" if name.startswith("max_") else ">"
        limit = lookup(section, lim.key)
        value = metrics.get(lim.metric)
        if limit is None and value is None:
            continue
        passed = None
        if limit is not None and value is not None:
            passed = bool(value < limit) if op == "<" else bool(value > limit)
        rows.append(CheckRow(lim.label, limit, value, lim.unit, op, passed, lim.fmt))
    return rows


def verdict(rows: list[CheckRow]) -> bool:
    """A task passes when every limited metric was measured and passes."""
    return all(r.passed is not False for r in rows) and all(r.measured is not None for r in rows if r.limit is not None)
