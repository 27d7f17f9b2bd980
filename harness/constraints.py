"""Versioned constraint files: what must hold for one version of one suite (course edition).

Layout: constraints/<suite>/version-<v>.toml. Every limit is a strict inequality, as in the
assignments. Units are in the key names: _degc (°C), _pct (% or %RH), _bytes, _ms.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from harness.config import Field, in_range, one_of, read_toml, validate
from harness.errors import HarnessError

ROOT = Path(__file__).resolve().parents[1]
CONSTRAINTS_DIR = ROOT / "constraints"
SIZE_FORMATS = ("tflite", "zlib", "zip")
LATENCY_INPUTS = ("uniform-48k", "normal-16k", "test-clips")

_positive = in_range(0, lo_open=True)

LATENCY_SCHEMA = {
    "max_ms": Field(float, default=None, check=lambda v: None if v is None or v > 0 else "must be > 0"),
    "scope": Field(str, check=one_of("total", "inference")),
    "statistic": Field(str, check=one_of("mean", "median")),
    "runs": Field(int, check=in_range(1)),
    "discard": Field(int, default=0, check=in_range(0)),
    "input": Field(str, check=one_of(*LATENCY_INPUTS)),
    "read_output": Field(bool, default=True),
    "decode_in_timer": Field(bool, default=False, doc="test-clips: WAV decode + pad inside the timed region"),
    "sleep_s": Field(float, default=0.0, check=in_range(0), doc="pause between runs (course: 0.1 s on the device)"),
    "device": Field(str, doc="where the course measured it; our host is reported beside it"),
    "source": Field(str),
}

FORECAST_SCHEMA = {
    "source": Field(str),
    "output_steps": Field(int, check=in_range(1, 48)),
    "input_steps": Field(int, default=6, check=in_range(1, 144)),
    "max_mae_t_degc": Field(float, check=_positive),
    "max_mae_rh_pct": Field(float, check=_positive),
    "max_size_bytes": Field(int, check=in_range(1)),
    "size_formats": Field(list, item=str, check=lambda v: None if v and set(v) <= set(SIZE_FORMATS) else f"must list some of {SIZE_FORMATS}"),
}

KWS_SCHEMA = {
    "source": Field(str),
    "labels": Field(list, item=str, check=lambda v: None if len(v) >= 2 and len(set(v)) == len(v) else "must list >= 2 distinct keywords"),
    "split": Field(str, check=one_of("course", "course-pair", "hash")),
    "min_accuracy_pct": Field(float, default=None, check=lambda v: None if v is None or 0 < v < 100 else "must be in (0, 100)"),
    "max_size_bytes": Field(int, default=None),
    "size_formats": Field(list, item=str, check=lambda v: None if v and set(v) <= set(SIZE_FORMATS) else f"must list some of {SIZE_FORMATS}"),
    "latency": Field(dict, default=None, schema=LATENCY_SCHEMA),
}

SCHEMA = {
    "suite": Field(str),
    "version": Field(str),
    "academic_year": Field(str),
    "status": Field(str, check=one_of("official", "reconstructed")),
    "status_note": Field(str, default=""),
    "kilobyte_bytes": Field(int, check=one_of(1000, 1024), doc="how the source's kB/KB was read"),
    "forecast": Field(dict, default=None, schema=FORECAST_SCHEMA),
    "kws": Field(dict, default=None, schema=KWS_SCHEMA),
}
TASK_KEYS = ("forecast", "kws")


@dataclass(frozen=True)
class Constraints:
    path: Path
    suite: str
    version: str
    data: dict

    @property
    def tasks(self) -> list[str]:
        return [t for t in TASK_KEYS if self.data.get(t) is not None]

    def task(self, name: str) -> dict:
        return self.data[name]

    @property
    def reconstructed(self) -> bool:
        return self.data["status"] == "reconstructed"

    @property
    def rel_path(self) -> str:
        try:
            return str(self.path.relative_to(ROOT))
        except ValueError:
            return str(self.path)


def load_file(path: str | Path) -> Constraints:
    path = Path(path)
    where = str(path)
    data = validate(read_toml(path), SCHEMA, where)
    if not any(data.get(t) for t in TASK_KEYS):
        raise HarnessError(f"{where}: no task table (expected [forecast] and/or [kws])")
    expected = f"version-{data['version']}.toml"
    if path.name != expected or path.parent.name != data["suite"]:
        raise HarnessError(
            f"{where}: suite/version keys ({data['suite']}/{data['version']}) do not match the file path "
            f"(expected constraints/{data['suite']}/{expected})"
        )
    kws = data.get("kws")
    if kws:
        if kws["latency"] and kws["latency"]["discard"] >= kws["latency"]["runs"]:
            raise HarnessError(f"{where}: key 'kws.latency.discard' must be < kws.latency.runs")
        if kws["min_accuracy_pct"] is None and not data["status"] == "reconstructed":
            raise HarnessError(f"{where}: missing required key 'kws.min_accuracy_pct'")
        if kws["max_size_bytes"] is None and not data["status"] == "reconstructed":
            raise HarnessError(f"{where}: missing required key 'kws.max_size_bytes'")
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
