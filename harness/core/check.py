"""Compare measured metrics with a constraint section's limits (all strict inequalities), per seed and over seeds."""
from __future__ import annotations

import math
from dataclasses import dataclass

from harness.core.limits import Limit, lookup, operator


@dataclass
class CheckRow:
    label: str
    limit: float | None
    measured: float | None
    unit: str
    op: str  # "<" or ">"
    passed: bool | None  # None: no limit to check (information only)
    fmt: str
    metric: str = ""

    def limit_text(self) -> str:
        return "—" if self.limit is None else f"{self.op} {self.fmt.format(self.limit)} {self.unit}"

    def measured_text(self) -> str:
        if self.measured is None:
            return "not measured"
        if not math.isfinite(self.measured):
            return f"{self.measured} (not a finite number)"
        return f"{self.fmt.format(self.measured)} {self.unit}"

    def result_text(self) -> str:
        return {True: "PASS", False: "FAIL", None: "info"}[self.passed]


def passes(value: float | None, op: str, limit: float) -> bool:
    """Strict comparison; a missing, NaN or infinite measurement never passes."""
    if value is None or not math.isfinite(value):
        return False
    return bool(value < limit if op == "<" else value > limit)  # a plain bool, also for numpy figures


def evaluate(limits: list[Limit], section: dict, metrics: dict) -> list[CheckRow]:
    rows = []
    for lim in limits:
        op = operator(lim.key)
        limit = lookup(section, lim.key)
        value = metrics.get(lim.metric)
        if limit is None and value is None:
            continue
        passed = None if limit is None else passes(value, op, limit)
        rows.append(CheckRow(lim.label, limit, value, lim.unit, op, passed, lim.fmt, lim.metric))
    return rows


def verdict(rows: list[CheckRow]) -> bool:
    """A run passes when every limited metric passes (a missing or non-finite one fails)."""
    return all(r.passed for r in rows if r.limit is not None)


def crosses(op: str, limit: float, interval: tuple[float, float] | None) -> bool:
    """A PASS is marginal when its 95 % interval reaches the limit: another test draw could fail it."""
    if interval is None:
        return False
    lo, hi = interval
    return hi >= limit if op == "<" else lo <= limit


def marginal_pass(record: dict) -> bool:
    """A recorded PASS (a task entry or a check report: 'passed' and 'checks') with a limit its interval reaches."""
    return bool(record["passed"]) and any(c.get("marginal") for c in record["checks"])


def baseline_rows(limits: list[Limit], section: dict, metrics: dict) -> list[CheckRow]:
    """A baseline (e.g. persistence) checked under the same limits, on the metrics it has (not size)."""
    return [r for r in evaluate(limits, section, metrics) if r.measured is not None and r.limit is not None]
