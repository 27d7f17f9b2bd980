"""Recipes: how a version is solved (model, width, pruning, quantization, training, seed).

A recipe is a small TOML file under tasks/<task>/recipes/. Sections shared by all tasks are
defined here; a task adds its own (e.g. [features]) and validates [model]
against its model registry. Any key can be overridden from the command line: --set train.epochs=2.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from harness.core.config import Field, apply_overrides, in_range, one_of, read_toml, validate
from harness.core.constraints import SIZE_FORMATS
from harness.core.errors import HarnessError

ENSEMBLE_SCHEMA = {
    "members": Field(int, default=1, check=in_range(1, 8),
                     doc="independently trained models averaged in the file; 1 = a single model (tasks opt in)"),
}

QUANT_MODES = ("none", "dynamic", "float16", "int8", "int4")

TRAIN_SCHEMA = {
    "epochs": Field(int, default=20, check=in_range(1, 10_000)),
    "batch_size": Field(int, default=32, check=in_range(1, 65_536)),
    "learning_rate": Field(float, default=1e-3, check=in_range(0, lo_open=True)),
    "final_learning_rate": Field(float, default=None, check=lambda v: None if v is None or v > 0 else "must be > 0",
                                 doc="linear (polynomial power 1) decay to this value; none = constant"),
    "loss": Field(str, default="default", check=one_of("default", "mae", "mse", "crossentropy")),
    "label_smoothing": Field(float, default=0.0, check=in_range(0, 0.5)),
    "weight_decay": Field(float, default=0.0, check=in_range(0)),
    "select": Field(str, default="last", check=one_of("last", "best-val"), doc="keep the last epoch or the best validation epoch"),
}
PRUNE_SCHEMA = {
    "final_sparsity": Field(float, default=0.0, check=in_range(0, 0.99)),
    "initial_sparsity": Field(float, default=0.0, check=in_range(0, 0.99)),
    "begin": Field(float, default=0.2, check=in_range(0, 1), doc="fraction of the training steps"),
    "end": Field(float, default=0.8, check=in_range(0, 1), doc="fraction of the training steps"),
    "frequency": Field(int, default=0, check=in_range(0), doc="steps between pruning updates; 0 = about 20 updates"),
}
QUANT_SCHEMA = {
    "mode": Field(str, default="none", check=one_of(*QUANT_MODES)),
    "calibration_samples": Field(int, default=200, check=in_range(1, 100_000)),
    "qat_epochs": Field(int, default=0, check=in_range(0, 1000), doc="quantization-aware fine-tuning epochs (int8 only)"),
}
PACKAGE_SCHEMA = {
    "format": Field(str, default="tflite", check=one_of(*SIZE_FORMATS)),
}
COMMON_SCHEMA = {
    "task": Field(str),
    "description": Field(str, default=""),
    # numpy and TF take seeds in [0, 2**32); half that range leaves room for the seeds derived from it (--seeds, cv)
    "seed": Field(int, default=1234, check=in_range(0, 2**31 - 1)),
    "model": Field(dict),
    "train": Field(dict, default={}, schema=TRAIN_SCHEMA),
    "prune": Field(dict, default={}, schema=PRUNE_SCHEMA),
    "quantize": Field(dict, default={}, schema=QUANT_SCHEMA),
    "package": Field(dict, default={}, schema=PACKAGE_SCHEMA),
    "ensemble": Field(dict, default={}, schema=ENSEMBLE_SCHEMA),
}


@dataclass(frozen=True)
class Recipe:
    path: str
    data: dict

    def __getitem__(self, key):
        return self.data[key]

    def to_toml(self) -> str:
        """Serialise back to TOML (used to write search winners as recipe files)."""
        lines = [f"# {self.data.get('description') or 'recipe'}"]
        scalars = {k: v for k, v in self.data.items() if not isinstance(v, dict)}
        for k, v in scalars.items():
            lines.append(f"{k} = {_toml_value(v)}")
        for k, v in self.data.items():
            if isinstance(v, dict):
                lines.append(f"\n[{k}]")
                for kk, vv in v.items():
                    if vv is not None:
                        lines.append(f"{kk} = {_toml_value(vv)}")
        return "\n".join(lines) + "\n"


def _toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, list):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    raise TypeError(f"cannot write {v!r} as TOML")


def validate_recipe(raw: dict, where: str, task_name: str, extra_schema: dict, model_check) -> Recipe:
    schema = dict(COMMON_SCHEMA)
    schema.update(extra_schema)
    data = validate(raw, schema, where)
    if data["task"] != task_name:
        raise HarnessError(f"{where}: key 'task' is {data['task']!r}, but this run needs a {task_name!r} recipe")
    data["model"] = model_check(data["model"], where)
    p = data["prune"]
    if p["final_sparsity"] > 0:
        if p["initial_sparsity"] > p["final_sparsity"]:
            raise HarnessError(f"{where}: key 'prune.initial_sparsity' must be <= prune.final_sparsity")
        if p["end"] <= p["begin"]:
            raise HarnessError(f"{where}: key 'prune.end' must be > prune.begin")
    q = data["quantize"]
    if q["qat_epochs"] and q["mode"] != "int8":
        raise HarnessError(f"{where}: key 'quantize.qat_epochs' needs quantize.mode = \"int8\"")
    return Recipe(path=where, data=data)


def read_recipe(path: str | Path, _within: tuple[Path, ...] = ()) -> dict:
    """A recipe file's keys. `based_on = "other.toml"` (beside this file) starts from that recipe's keys, and
    this file's keys replace them one by one (a table replaces key by key, not whole): two versions that share a
    recipe keep one copy of it."""
    path = Path(path)
    raw = read_toml(path)
    base = raw.pop("based_on", None)
    if base is None:
        return raw
    if not isinstance(base, str) or not base:
        raise HarnessError(f"{path}: key 'based_on' must be a recipe file name, e.g. \"ml4iot-2022-b.toml\"")
    base_path = path.parent / base
    if not base_path.is_file():
        raise HarnessError(f"{path}: key 'based_on': {base_path} not found")
    if base_path.resolve() in (*_within, path.resolve()):
        raise HarnessError(f"{path}: key 'based_on': {base} is based on this file again (a loop)")
    return _merged(read_recipe(base_path, (*_within, path.resolve())), raw)


def _merged(base: dict, own: dict) -> dict:
    out = dict(base)
    for k, v in own.items():
        out[k] = _merged(base[k], v) if isinstance(v, dict) and isinstance(base.get(k), dict) else v
    return out


def load(path: str | Path, task, overrides: list[str] | None = None) -> Recipe:
    raw = apply_overrides(read_recipe(path), overrides or [])
    where = str(path) + (f" (with --set {' '.join(overrides)})" if overrides else "")
    recipe = validate_recipe(raw, where, task.name, task.recipe_schema, task.check_model)
    if recipe.data["ensemble"]["members"] > 1 and not getattr(task, "supports_ensemble", False):
        raise HarnessError(f"{where}: key 'ensemble.members': task {task.name!r} does not build ensembles (use 1)")
    return Recipe(path=where, data=task.check_recipe(recipe.data, where))


def default_path(task, suite: str, version: str) -> Path:
    return task.recipes_dir / f"{suite}-{version}.toml"
