"""Strict reading of small TOML data files: unknown keys, wrong types and bad values are errors.

A schema is a dict  key -> Field.  Nested tables use Field(kind=dict, schema=...).
"""
from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from harness.core.errors import HarnessError

_MISSING = object()


@dataclass(frozen=True)
class Field:
    kind: type | tuple  # bool, int, float, str, list, dict
    default: Any = _MISSING  # _MISSING = required
    check: Callable[[Any], str | None] | None = None  # returns an error text or None
    item: type | None = None  # element type for lists
    schema: dict | None = None  # for nested tables
    doc: str = ""


def one_of(*allowed):
    return lambda v: None if v in allowed else f"must be one of {', '.join(map(repr, allowed))}"


def in_range(lo=None, hi=None, lo_open=False, hi_open=False):
    def check(v):
        if lo is not None and (v < lo or (lo_open and v == lo)):
            return f"must be {'>' if lo_open else '>='} {lo}"
        if hi is not None and (v > hi or (hi_open and v == hi)):
            return f"must be {'<' if hi_open else '<='} {hi}"
        return None

    return check


def _type_ok(value, kind) -> bool:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    for k in kinds:
        if k is float and isinstance(value, (int, float)) and not isinstance(value, bool):
            return True
        if k is int and isinstance(value, int) and not isinstance(value, bool):
            return True
        if k not in (int, float) and isinstance(value, k):
            return True
    return False


def _type_name(kind) -> str:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    names = {bool: "boolean", int: "integer", float: "number", str: "string", list: "array", dict: "table"}
    return " or ".join(names.get(k, k.__name__) for k in kinds)


def a_type(kind) -> str:
    """'an integer', 'a number or string': the type name with its article, for error lines."""
    name = _type_name(kind)
    return ("an " if name[0] in "aeiou" else "a ") + name


def validate(table: dict, schema: dict, where: str, prefix: str = "") -> dict:
    """Return a new dict with defaults filled in; raise HarnessError naming file and key."""
    if not isinstance(table, dict):
        raise HarnessError(f"{where}: '{prefix.rstrip('.') or 'top level'}' must be a table")
    unknown = sorted(set(table) - set(schema))
    if unknown:
        raise HarnessError(
            f"{where}: unknown key '{prefix}{unknown[0]}' (known keys here: {', '.join(sorted(schema))})"
        )
    out = {}
    for key, f in schema.items():
        name = prefix + key
        if key not in table:
            if f.default is _MISSING:
                raise HarnessError(f"{where}: missing required key '{name}'")
            if f.schema is not None and f.default is not None:
                out[key] = validate(dict(f.default), f.schema, where, name + ".")
            else:
                out[key] = f.default
            continue
        value = table[key]
        if not _type_ok(value, f.kind):
            raise HarnessError(f"{where}: key '{name}' must be {a_type(f.kind)}, got {value!r}")
        if f.schema is not None:
            value = validate(value, f.schema, where, name + ".")
        if f.item is not None:
            for v in value:
                if not _type_ok(v, f.item):
                    raise HarnessError(f"{where}: key '{name}' must hold {_type_name(f.item)} items, got {v!r}")
        if isinstance(value, int) and not isinstance(value, bool) and f.kind is float:
            value = float(value)
        bad = _non_finite(value)
        if bad is not None:
            raise HarnessError(f"{where}: key '{name}' must be a finite number, got {bad!r}")
        if f.check is not None:
            msg = f.check(value)
            if msg:
                raise HarnessError(f"{where}: key '{name}' {msg} (got {value!r})")
        out[key] = value
    return out


def _non_finite(value):
    """The first NaN or infinity in a value (numbers, or lists of them), else None: TOML allows nan and inf."""
    import math

    items = value if isinstance(value, list) else [value]
    for v in items:
        if isinstance(v, float) and not math.isfinite(v):
            return v
    return None


def read_toml(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise HarnessError(f"{path}: file not found")
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as e:
        raise HarnessError(f"{path}: invalid TOML ({e})") from None
    except UnicodeDecodeError:
        raise HarnessError(f"{path}: not UTF-8 text") from None


def parse_override(text: str) -> tuple[list[str], Any]:
    """'train.epochs=3' -> (['train', 'epochs'], 3); values are TOML literals, bare words are strings."""
    if "=" not in text:
        raise HarnessError(f"--set {text!r}: expected KEY=VALUE, e.g. train.epochs=3")
    key, raw = text.split("=", 1)
    key = key.strip()
    if not key or any(not part for part in key.split(".")):
        raise HarnessError(f"--set {text!r}: empty key")
    try:
        value = tomllib.loads(f"v = {raw.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw.strip()
    return key.split("."), value


def apply_overrides(data: dict, overrides: list[str]) -> dict:
    import copy

    data = copy.deepcopy(data)
    for text in overrides or []:
        path, value = parse_override(text)
        node = data
        for part in path[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise HarnessError(f"--set {text!r}: '{part}' is not a table")
        node[path[-1]] = value
    return data
