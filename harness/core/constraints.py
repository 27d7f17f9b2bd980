"""Versioned constraint files: what must hold for one version of one suite (course edition).

Layout: constraints/<suite>/version-<v>.toml. Every limit is a strict inequality, as in the
assignments. Units are in the key names: _degc (°C), _pct (% or %RH), _bytes, _ms.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from harness.core.config import Field, one_of, read_toml, validate
from harness.core.errors import HarnessError
from harness.core.paths import CONSTRAINTS_DIR, rel

SIZE_FORMATS = ("tflite", "zlib", "zip")


def size_formats_check(v):
    return None if v and set(v) <= set(SIZE_FORMATS) else f"must list some of {SIZE_FORMATS}"


# Keys every task section has; a task's constraint_schema adds its own limits and settings.
SECTION_SCHEMA = {
    "source": Field(str, doc="where the limits come from (assignment text, report)"),
    "size_formats": Field(list, item=str, check=size_formats_check, doc="submitted formats the size limit accepts"),
}

BASE_SCHEMA = {
    "suite": Field(str),
    "version": Field(str),
    "academic_year": Field(str),
    "status": Field(str, check=one_of("official", "reconstructed")),
    "status_note": Field(str, default=""),
    "kilobyte_bytes": Field(int, check=one_of(1000, 1024), doc="how the source's kB/KB was read"),
    "grading": Field(str, default="all-limits", check=one_of("all-limits", "per-limit"),
                     doc="all-limits: a version passes when every limit holds; per-limit: one point per limit (leaderboards)"),
}


def schema() -> dict:
    """The file schema: the common keys plus one optional table per registered task."""
    from harness.core.task import get, names

    return {**BASE_SCHEMA, **{name: Field(dict, default=None, schema=get(name).constraint_schema) for name in names()}}


@dataclass(frozen=True)
class Constraints:
    path: Path
    suite: str
    version: str
    data: dict

    @property
    def tasks(self) -> list[str]:
        from harness.core.task import names

        return [t for t in names() if self.data.get(t) is not None]

    def task(self, name: str) -> dict:
        return self.data[name]

    @property
    def reconstructed(self) -> bool:
        return self.data["status"] == "reconstructed"

    @property
    def rel_path(self) -> str:
        try:
            return rel(self.path)
        except ValueError:
            return str(self.path)


def load_file(path: str | Path) -> Constraints:
    path = Path(path)
    where = str(path)
    from harness.core.task import get, names

    data = validate(read_toml(path), schema(), where)
    if not any(data.get(t) for t in names()):
        raise HarnessError(f"{where}: no task table (expected one of {', '.join(f'[{t}]' for t in names())})")
    expected = f"version-{data['version']}.toml"
    if path.name != expected or path.parent.name != data["suite"]:
        raise HarnessError(
            f"{where}: suite/version keys ({data['suite']}/{data['version']}) do not match the file path "
            f"(expected constraints/{data['suite']}/{expected})"
        )
    for name in names():
        if data.get(name):
            get(name).check_constraints(data[name], where, reconstructed=data["status"] == "reconstructed")
    return Constraints(path=path, suite=data["suite"], version=data["version"], data=data)


def suites(root: Path = CONSTRAINTS_DIR) -> list[str]:
    return sorted(p.name for p in root.iterdir() if p.is_dir() and list(p.glob("version-*.toml")))


def versions(suite: str, root: Path = CONSTRAINTS_DIR) -> list[str]:
    folder = root / suite
    if not folder.is_dir():
        raise HarnessError(f"unknown suite '{suite}' (known: {', '.join(suites(root))})")
    return sorted(p.stem.removeprefix("version-") for p in folder.glob("version-*.toml"))


def load(suite: str, version: str, root: Path = CONSTRAINTS_DIR) -> Constraints:
    path = root / suite / f"version-{version}.toml"
    if not path.is_file():
        known = versions(suite, root)
        raise HarnessError(f"{path}: no such constraint file (suite '{suite}' has versions: {', '.join(known)})")
    return load_file(path)
