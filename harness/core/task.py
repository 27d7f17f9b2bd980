"""The small interface a task implements to plug into the harness run loop.

A task knows its data, models and default recipes; the harness owns the loop
(recipe -> build -> convert -> package -> measure -> check -> report) and never imports a task's internals.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Protocol

from harness.core.limits import Limit, lookup, operator


@dataclass
class Context:
    """What a run knows about its environment (set from the command line / environment)."""

    data_dir: Path
    log: Callable[[str], None] = print
    cache: dict = field(default_factory=dict)  # per-process memo (loaded data, features)
    epoch_hook: Callable[[int, dict], None] | None = None  # called after every training epoch (search: early stop)
    options: dict = field(default_factory=dict)  # task options from the command line (Task.cli_options)
    use_cache: bool = True  # False: every on-disk cache (builds, features) is bypassed and rewritten
    sealed_test: bool = False  # True while anything is being chosen (search trials): the test split is off limits
    # (fold, folds) while cross-validating: the task splits train + val into "train", "val" and "held-out"
    # (harness.core.folds.fold_parts) and cv measures "held-out"; None: the version's own splits
    fold: tuple[int, int] | None = None

    def open_split(self, split: str) -> None:
        """Tasks call this before reading a split's labels: selection must never see the test split."""
        if split == "test" and self.sealed_test:
            raise SealedSplitError("the test split is sealed while recipes are being selected; "
                                   "selection reads train and validation data only")


class SealedSplitError(RuntimeError):
    """Raised when code that selects (a search trial) tries to read the test split."""


@dataclass
class Trained:
    """What a task's training returns; the harness converts, packages and measures it."""

    model: object  # the Keras model to deploy: its inputs and outputs are what the artifact takes and gives
    calibration: object  # fixed int8 calibration inputs, [N, ...] (the first training samples)
    info: dict  # training facts for the JSON report
    # The task's own conversion, (quantize mode, calibration inputs [N, ...]) -> .tflite bytes, when the file is
    # more than the Keras model (e.g. an audio front end inside it); None: the harness's converter.
    convert: Callable[[str, object], bytes] | None = None


@dataclass
class Build:
    tflite: bytes
    info: dict  # training / conversion facts for the JSON report


@dataclass
class Measurement:
    metrics: dict[str, float]  # checked values, keyed by Limit.metric
    rows: list[tuple[str, str]]  # extra (label, text) lines for the report, units included
    details: dict  # everything else for the JSON
    intervals: dict[str, tuple[float, float]] = field(default_factory=dict)  # 95 % interval per metric
    interval_method: dict[str, str] = field(default_factory=dict)  # how each interval was computed
    baselines: dict[str, dict[str, float]] = field(default_factory=dict)  # name -> metrics of a trivial predictor
    # names among `baselines` that are not trivial but an upper reference (e.g. a large model without a size limit):
    # when one misses a limit the shipped file misses too, the table says what the inputs seem to allow
    references: tuple[str, ...] = ()
    sections: list[tuple[str, str]] = field(default_factory=list)  # (title, markdown) blocks for the report
    files: dict[str, bytes] = field(default_factory=dict)  # extra files beside the artifact (plots), by name
    # items the file gets wrong (id -> "true → predicted"), for classification tasks: the report counts, per item,
    # how many seeds miss it, so a FAIL can be traced to the clips behind it (a diagnosis, never a selection signal)
    misses: dict[str, str] = field(default_factory=dict)


class Task(Protocol):
    name: str
    title: str
    recipes_dir: Path
    recipe_schema: dict
    limits: list[Limit]
    build_keys: tuple[str, ...]  # keys of the constraint section that shape the build (others: limits, formats)

    def check_model(self, model: dict, where: str) -> dict: ...

    def data_fingerprint(self, ctx: Context, section: dict, recipe) -> dict: ...

    def train(self, ctx: Context, section: dict, recipe) -> Trained: ...

    def measure(self, ctx: Context, section: dict, recipe, tflite: bytes, split: str = "test",
                latency: bool = True) -> Measurement:
        """Measure the deployed bytes on `split` ("val" while selecting, "test" once to report)."""

    def sidecar(self, ctx: Context, section: dict, recipe) -> dict: ...

    def size_floor_bytes(self, ctx: Context, section: dict, recipe) -> int: ...


class TaskBase:
    """Defaults for the optional parts of Task: a task subclasses this and overrides what it needs."""

    build_keys: tuple[str, ...] = ()
    constraint_schema: dict = {}  # this task's [table] in a constraint file (harness.constraints.SECTION_SCHEMA + own keys)
    # Command-line options of this task: (flag, argparse keyword arguments); values reach ctx.options by dest.
    cli_options: tuple[tuple[str, dict], ...] = ()
    # True when the task honours Context.fold (cross-validation over train + val)
    supports_folds: bool = False
    supports_ensemble: bool = False  # whether the task builds recipes with [ensemble] members > 1

    def check_constraints(self, section: dict, where: str, reconstructed: bool) -> None:
        """Cross-key checks of this task's constraint table after schema validation (raise HarnessError)."""

    def check_recipe(self, data: dict, where: str) -> dict:
        """Task-specific recipe checks after schema validation; returns the (normalised) data."""
        return data

    def data_note(self, fingerprint: dict) -> str:
        """One line for the table on how the data was handled."""
        return ""

    def prepare(self, ctx: Context, section: dict, recipe) -> None:
        """Fill on-disk caches (e.g. features) before builds start in worker processes."""

    # Options of `check` only (how to read a user's file): (flag, argparse keyword arguments), into ctx.options.
    check_options: tuple[tuple[str, dict], ...] = ()

    def setup_for_artifact(self, ctx: Context, section: dict, recipe) -> tuple[dict, object, list[str]]:
        """How to read a user's own file: (section, recipe, assumptions stated in the table)."""
        return section, recipe, [f"inputs as the version's default recipe ({recipe.path}) defines them"]

    # `grade`: the task words a submission's file name may use (<team>_<word>_<version>.tflite...).
    @property
    def submission_names(self) -> tuple[str, ...]:
        return (self.name,)

    def submission_options(self, folder, model) -> dict:
        """`grade`: the check options of one submission (e.g. its args file) from its team folder; raise
        HarnessError naming what is missing. Default: none needed."""
        return {}

    def counted_size(self, section: dict, build_info: dict, fmt: str) -> int | None:
        """Bytes the size limit counts for one of the harness's own builds, when not the whole submitted file
        (e.g. an edition that does not count an in-graph front end); None: the whole file."""
        return None

    def build_rows(self, section: dict, build_info: dict) -> list[tuple[str, str]]:
        """(label, text) rows of facts only the build knows, for the version's table. A build is shared by every
        version whose build keys match, so what depends on the rest of the section is written here, not stored."""
        return [tuple(r) for r in build_info.get("report_rows", [])]

    def ensure_data(self, ctx: Context, section: dict) -> None:
        """Find (or download) every input this section needs; raise HarnessError naming what is missing."""

    def check_recipe_data(self, ctx: Context, section: dict, recipe: dict) -> None:
        """Checks of a recipe that need the data (e.g. names the dataset must contain); run before any training."""

    def objectives(self, section: dict) -> list[tuple[str, str]]:
        """(name, direction) per search objective; default: the worst metric/limit ratio, then size."""
        return [("worst_limit_ratio", "minimize"), ("size_bytes", "minimize")]

    def objective_values(self, section: dict, metrics: dict) -> list[float]:
        vals = []
        for name, _ in self.objectives(section):
            if name == "worst_limit_ratio":
                ratios = []
                for lim in self.limits:
                    limit = lookup(section, lim.key)
                    if lim.metric == "size_bytes" or limit is None or lim.metric not in metrics:
                        continue
                    v = metrics[lim.metric]
                    ratios.append(v / limit if operator(lim.key) == "<" else limit / max(v, 1e-12))
                vals.append(max(ratios))
            else:
                vals.append(float(metrics[name]))
        return vals

    def objective_label(self, name: str) -> str:
        return {"worst_limit_ratio": "worst metric / limit (validation)"}.get(name, name)

    def hopeless(self, section: dict, epoch_logs: dict) -> str | None:
        """A reason to stop a search trial early from one epoch's logs, or None."""
        return None


def bytes_per_weight(mode: str) -> float:
    return {"none": 4.0, "float16": 2.0, "dynamic": 1.0, "int8": 1.0, "int4": 0.5}[mode]


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


_REGISTRY: dict[str, object] = {}


def register(name: str, task_or_module: object) -> None:
    """Add a task: an object implementing Task, or the dotted name of a module whose TASK is one (lazy)."""
    _REGISTRY[name] = task_or_module


def _discover() -> None:
    """The project's own tasks are listed in the `tasks` package (TASKS: name -> module); the harness names none."""
    if _REGISTRY.get("__discovered__"):
        return
    _REGISTRY["__discovered__"] = True
    try:
        import tasks
    except ImportError:
        return
    for name, module in getattr(tasks, "TASKS", {}).items():
        _REGISTRY.setdefault(name, module)


def names() -> list[str]:
    _discover()
    return sorted(k for k in _REGISTRY if k != "__discovered__")


def get(name: str) -> Task:
    """The registered task (imported on first use, so one task's heavy imports never load for another)."""
    import importlib

    from harness.core.errors import HarnessError

    _discover()
    entry = _REGISTRY.get(name) if name != "__discovered__" else None
    if entry is None:
        raise HarnessError(f"unknown task {name!r} (known: {', '.join(names())})")
    if isinstance(entry, str):
        entry = importlib.import_module(entry).TASK
        _REGISTRY[name] = entry
    return entry
