"""The small interface a task implements to plug into the harness run loop.

A task knows its data, models and default recipes; the harness owns the loop
(recipe -> build -> convert -> package -> measure -> check -> report) and never imports a task's internals.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Protocol


@dataclass(frozen=True)
class Limit:
    """How one constraint key is checked: `max_*` keys need measured < limit, `min_*` keys measured > limit."""

    key: str  # constraint key, e.g. "max_mae_t_degc"
    metric: str  # measured metric key, e.g. "mae_t_degc"
    label: str  # row label in the table
    unit: str  # printed unit
    fmt: str = "{:.3f}"


@dataclass
class Context:
    """What a run knows about its environment (set from the command line / environment)."""

    data_dir: Path
    jena_files: list[Path] | None = None
    log: Callable[[str], None] = print
    cache: dict = field(default_factory=dict)  # per-process memo (loaded data, features)
    epoch_hook: Callable[[int, dict], None] | None = None  # called after every training epoch (search: early stop)


@dataclass
class Build:
    tflite: bytes
    info: dict  # training / conversion facts for the JSON report


@dataclass
class Measurement:
    metrics: dict[str, float]  # checked values, keyed by Limit.metric
    rows: list[tuple[str, str]]  # extra (label, text) lines for the report, units included
    details: dict  # everything else for the JSON


class Task(Protocol):
    name: str
    title: str
    recipes_dir: Path
    recipe_schema: dict
    limits: list[Limit]

    def check_model(self, model: dict, where: str) -> dict: ...

    def data_fingerprint(self, ctx: Context, section: dict, recipe) -> dict: ...

    def build(self, ctx: Context, section: dict, recipe) -> Build: ...

    def measure(self, ctx: Context, section: dict, recipe, tflite: bytes, latency: bool = True) -> Measurement: ...

    def sidecar(self, ctx: Context, section: dict, recipe) -> dict: ...

    def size_floor_bytes(self, ctx: Context, section: dict, recipe) -> int: ...


def bytes_per_weight(mode: str) -> float:
    return {"none": 4.0, "float16": 2.0, "dynamic": 1.0, "int8": 1.0}[mode]


def size_floor(params: int, recipe) -> int:
    """A lower bound of the submitted file's size from the parameter count, before any training.

    Raw .tflite stores every weight whatever its value; a compressed format can at best squeeze
    the non-zero weights to half their bytes (quantized weights are close to incompressible).
    """
    bpw = bytes_per_weight(recipe["quantize"]["mode"])
    if recipe["package"]["format"] == "tflite":
        return int(params * bpw)
    keep = max(1.0 - recipe["prune"]["final_sparsity"], 0.05)
    return int(params * bpw * keep * 0.5)


def get(name: str) -> Task:
    """Task registry (lazy, so forecasting runs never import the audio stack and vice versa)."""
    if name == "forecast":
        from tasks.forecast.task import TASK
    elif name == "kws":
        from tasks.kws.task import TASK
    else:
        from harness.errors import HarnessError

        raise HarnessError(f"unknown task {name!r} (known: forecast, kws)")
    return TASK
