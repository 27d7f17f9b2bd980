"""Name -> builder registries for models. A builder's keyword-only arguments are the recipe's [model] keys,
checked by name and by the type of their defaults before anything is built."""
from __future__ import annotations

import importlib
import inspect
import pkgutil
from typing import Callable

from harness.core import config
from harness.core.errors import HarnessError


class Registry:
    def __init__(self, package: str, what: str):
        self.package, self.what = package, what
        self.builders: dict[str, Callable] = {}

    def register(self, name: str):
        def deco(fn):
            self.builders[name] = fn
            return fn

        return deco

    def load_all(self) -> None:
        """Import every model file of the package (one file per model; `_private` helpers skipped)."""
        pkg = importlib.import_module(self.package)
        for mod in pkgutil.iter_modules(pkg.__path__):
            if not mod.name.startswith("_"):
                importlib.import_module(f"{self.package}.{mod.name}")

    def check(self, model: dict, where: str) -> dict:
        self.load_all()
        name = model.get("name")
        if name not in self.builders:
            raise HarnessError(f"{where}: key 'model.name' is {name!r}; known {self.what}: {', '.join(sorted(self.builders))}")
        params = inspect.signature(self.builders[name]).parameters
        allowed = {k: p for k, p in params.items() if p.kind == p.KEYWORD_ONLY}
        for key, value in model.items():
            if key == "name":
                continue
            if key not in allowed:
                raise HarnessError(f"{where}: unknown key 'model.{key}' for model {name!r} (known: {', '.join(sorted(allowed))})")
            default = allowed[key].default
            if default is inspect.Parameter.empty or default is None:
                continue
            if isinstance(value, bool) != isinstance(default, bool):  # True is an int to Python, not to a recipe
                ok = False
            else:
                ok = isinstance(value, type(default)) or (isinstance(default, float) and isinstance(value, int))
            if not ok:
                raise HarnessError(f"{where}: key 'model.{key}' must be {config.a_type(type(default))}, got {value!r}")
        if "width" in model and not (isinstance(model["width"], (int, float)) and 0 < float(model["width"]) <= 4):
            raise HarnessError(f"{where}: key 'model.width' must be in (0, 4] (got {model['width']!r})")
        return dict(model)

    def build(self, model: dict, *args):
        self.load_all()
        return self.builders[model["name"]](*args, **{k: v for k, v in model.items() if k != "name"})


def units(base: int, width: float) -> int:
    """Width multiplier: scale a layer's units or filters, never below 1."""
    return max(1, int(round(base * width)))
