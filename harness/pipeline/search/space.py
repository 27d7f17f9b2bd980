"""Search spaces: a small TOML file of [[param]] tables (choices, int or float ranges, conditional keys)."""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path

from harness.core.config import Field, read_toml, validate
from harness.core.errors import HarnessError

PARAM_SCHEMA = {
    "key": Field(str),
    "choices": Field(list, default=None),
    "int": Field(list, item=int, default=None),
    "float": Field(list, item=float, default=None),
    "step": Field(float, default=None),
    "log": Field(bool, default=False),
    "when": Field(dict, default=None),
}


@dataclass(frozen=True)
class Param:
    key: str
    kind: str  # choices | int | float
    values: tuple
    step: float | None
    log: bool
    when: dict | None

    def active(self, chosen: dict) -> bool:
        return not self.when or all(chosen.get(k) in v for k, v in self.when.items())


def load_space(path: str | Path) -> list[Param]:
    raw = read_toml(path)
    where = str(path)
    if set(raw) - {"param"} or not isinstance(raw.get("param"), list) or not raw["param"]:
        raise HarnessError(f"{where}: expected a list of [[param]] tables and nothing else")
    out = []
    for i, table in enumerate(raw["param"]):
        p = validate(table, PARAM_SCHEMA, where, f"param[{i}].")
        kinds = [k for k in ("choices", "int", "float") if p[k] is not None]
        if len(kinds) != 1:
            raise HarnessError(f"{where}: param[{i}] ({p['key']}) needs exactly one of choices, int, float")
        kind = kinds[0]
        values = tuple(p[kind])
        if kind != "choices" and (len(values) != 2 or values[0] >= values[1]):
            raise HarnessError(f"{where}: param[{i}].{kind} must be [low, high] with low < high")
        if kind == "choices" and not values:
            raise HarnessError(f"{where}: param[{i}].choices is empty")
        for k, v in (p["when"] or {}).items():
            if not isinstance(v, list):
                raise HarnessError(f"{where}: param[{i}].when.{k} must be a list of values")
            if k not in {q.key for q in out}:  # sampled in file order: a condition on a later or absent key never holds
                raise HarnessError(f"{where}: param[{i}].when names {k!r}, which no earlier [[param]] sets")
        out.append(Param(p["key"], kind, values, p["step"], p["log"], p["when"]))
    return out


def check_keys(space: list[Param], load, where: str) -> None:
    """Refuse a param no trial could set: each must load on the base recipe (`load(overrides)`) for at least one
    of its probe values (each choice, or the range's ends), under the first values of its `when`. A value that
    fails only in some combinations stays a pruned trial."""
    for i, p in enumerate(space):
        condition = {k: v[0] for k, v in (p.when or {}).items()}
        errors = []
        for value in p.values:
            try:
                load(overrides_of({**condition, p.key: value}))
                break
            except HarnessError as e:
                errors.append(str(e))
        else:
            raise HarnessError(f"{where}: param[{i}] ({p.key}) fits no value on the base recipe: {errors[0]}")


def fingerprint(space: list[Param]) -> str:
    """Identifies a space's content: a study's trials are only comparable under one space."""
    return hashlib.sha256(json.dumps([asdict(p) for p in space], sort_keys=True, default=str).encode()).hexdigest()


def _toml_literal(v) -> str:
    from harness.core.recipes import _toml_value

    return _toml_value(v)


def suggest(trial, space: list[Param]) -> dict:
    """Sample the active parameters (define-by-run, so conditional keys are honoured)."""
    chosen: dict = {}
    for p in space:
        if not p.active(chosen):
            continue
        if p.kind == "choices":
            chosen[p.key] = trial.suggest_categorical(p.key, list(p.values))
        elif p.kind == "int":
            chosen[p.key] = trial.suggest_int(p.key, int(p.values[0]), int(p.values[1]), step=int(p.step or 1), log=p.log)
        else:
            chosen[p.key] = trial.suggest_float(p.key, float(p.values[0]), float(p.values[1]), step=p.step, log=p.log)
    return chosen


def overrides_of(chosen: dict) -> list[str]:
    """--set overrides for a trial. When the space picks the model, the base recipe's [model] table is
    replaced first: its keys belong to the base model (e.g. `residual`) and may not exist for another."""
    out = []
    if "model.name" in chosen:
        out.append(f"model={{ name = {_toml_literal(chosen['model.name'])} }}")
    return out + [f"{k}={_toml_literal(v)}" for k, v in chosen.items() if k != "model.name"]
