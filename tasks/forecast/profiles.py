"""Evaluation profiles: which rows of the loaded Jena data train, validate and test a forecaster.

A profile is a small TOML file in tasks/forecast/profiles/. kind "fractions" is the course's
chronological split by row (windows may span gaps, as the course's did); kind "dates" selects
inclusive whole-day ranges and cuts windows per continuous segment, so no window spans a gap
between files or a missing stretch inside one.
"""
from __future__ import annotations

import datetime as dt
import math
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from harness.core.config import Field, one_of, read_toml, validate
from harness.core.errors import HarnessError
from tasks.forecast import data, windows

PROFILES_DIR = Path(__file__).resolve().parent / "profiles"
SPLITS = ("train", "val", "test")


def _fraction(v) -> str | None:
    # TOML allows nan and inf; in_range alone lets nan through (every comparison is False)
    if not math.isfinite(v):
        return "must be a finite number"
    return None if 0 < v < 1 else "must be > 0 and < 1"


def _day(v) -> str | None:
    if isinstance(v, dt.datetime):  # a TOML date-time: ranges are whole days
        return "must be a date without a time of day (YYYY-MM-DD)"
    if isinstance(v, str):
        try:
            if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", v):
                raise ValueError
            dt.date.fromisoformat(v)
        except ValueError:
            return "must be a date written YYYY-MM-DD"
    return None


_COMMON = {
    "kind": Field(str, check=one_of("fractions", "dates")),
    "description": Field(str, default=""),
    "files": Field(list, default=[], item=str, doc="file names the profile expects; messages only"),
}
_RANGE = {"start": Field((str, dt.date), check=_day), "end": Field((str, dt.date), check=_day)}
SCHEMAS = {
    "fractions": {**_COMMON, "train": Field(float, check=_fraction), "val": Field(float, check=_fraction)},
    "dates": {**_COMMON, **{s: Field(dict, schema=_RANGE) for s in SPLITS}},
}


@dataclass(frozen=True)
class Profile:
    name: str  # file stem, e.g. "full-season"
    path: Path
    kind: str  # "fractions" | "dates"
    description: str
    files: tuple[str, ...]  # expected file names; used only in messages
    fractions: dict[str, float] | None = None  # kind "fractions": {"train": 0.7, "val": 0.2}
    ranges: dict[str, tuple[dt.date, dt.date]] | None = None  # kind "dates": inclusive days per split


@dataclass
class SplitInfo:
    """What a split actually selected, for the report."""

    profile: str
    rows: dict[str, int]
    windows: dict[str, int]
    segments: dict[str, list[tuple[int, int]]]  # row ranges [a, b) that windows were cut from
    covered: dict[str, tuple[str, str]]  # first and last timestamp of the split's rows
    gaps: dict[str, int]  # forward jumps > 10 min inside the split (course: windows span them)


def known() -> list[str]:
    return sorted(p.stem for p in PROFILES_DIR.glob("*.toml"))


def load(name_or_path: str | Path) -> Profile:
    """A bare name looks in tasks/forecast/profiles/; anything with a suffix or a folder is a path."""
    text = str(name_or_path)
    if isinstance(name_or_path, Path) or "/" in text or text.endswith(".toml"):
        path = Path(name_or_path)
    else:
        path = PROFILES_DIR / f"{text}.toml"
        if not path.is_file():
            raise HarnessError(f"unknown evaluation profile '{text}' (known: {', '.join(known())})")
    where = str(path)
    raw = read_toml(path)
    # the kind decides the schema, so check it alone first (validate would call the rest unknown)
    kind = validate({k: raw[k] for k in ("kind",) if k in raw}, {"kind": _COMMON["kind"]}, where)["kind"]
    cfg = validate(raw, SCHEMAS[kind], where)
    common = dict(name=path.stem, path=path, kind=kind, description=cfg["description"], files=tuple(cfg["files"]))
    if kind == "fractions":
        if round(cfg["train"] + cfg["val"], 9) >= 1:
            raise HarnessError(f"{where}: key 'val' leaves no test rows: train + val must be < 1 "
                               f"(got {cfg['train']} + {cfg['val']})")
        return Profile(**common, fractions={"train": cfg["train"], "val": cfg["val"]})
    ranges = {}
    for s in SPLITS:
        a, b = (v if isinstance(v, dt.date) else dt.date.fromisoformat(v) for v in (cfg[s]["start"], cfg[s]["end"]))
        if a > b:
            raise HarnessError(f"{where}: key '{s}.end' ({b}) is before '{s}.start' ({a}): the range is empty")
        ranges[s] = (a, b)
    # sorted by start, any overlap shows up between neighbours
    order = sorted(SPLITS, key=lambda s: ranges[s][0])
    for p, q in zip(order, order[1:]):
        if ranges[q][0] <= ranges[p][1]:
            raise HarnessError(f"{where}: key '{q}.start' ({ranges[q][0]}) falls inside '{p}' "
                               f"({ranges[p][0]}..{ranges[p][1]}): ranges must not overlap")
    return Profile(**common, ranges=ranges)


def _coverage(series: data.Series) -> str:
    if series.sources:
        return "; ".join(f"{Path(f.path).name} {f.first}..{f.last}" for f in series.sources)
    return f"{_minute(series.times[0])}..{_minute(series.times[-1])}" if series.rows else "no rows"


def _fraction_bounds(n: int, fr: dict[str, float]) -> dict[str, tuple[int, int]]:
    # rounding the cumulative fraction makes 0.7 + 0.2 exactly the lab's 0.9 (the sum alone is
    # 0.8999..., which moves the boundary by one row for many n), so the course split is unchanged
    a = int(n * fr["train"])
    b = int(n * round(fr["train"] + fr["val"], 9))
    return {"train": (0, a), "val": (a, b), "test": (b, n)}


def _date_bounds(series: data.Series, profile: Profile) -> dict[str, tuple[int, int]]:
    out = {}
    for s, (start, end) in profile.ranges.items():
        lo = np.datetime64(start, "D")
        hi = np.datetime64(end, "D") + np.timedelta64(1, "D")  # end day inclusive
        a, b = (int(i) for i in np.searchsorted(series.times, [lo, hi], side="left"))  # times are sorted
        if a == b:
            # a range wholly before the data needs a later end; otherwise (after it, or in a gap) a new start
            key = f"{s}.end" if series.rows and hi <= series.times[0] else f"{s}.start"
            raise HarnessError(f"{profile.path}: key '{key}': {s} range {start}..{end} selects no rows of the "
                               f"loaded data (data covers {_coverage(series)})")
        out[s] = (a, b)
    return out


def _minute(t) -> str:
    return np.datetime_as_string(np.datetime64(t), unit="m").replace("T", " ")


def segments(times: np.ndarray, a: int, b: int) -> list[tuple[int, int]]:
    # duplicated timestamps (step 0) stay inside a segment; only a forward jump > 10 min breaks it
    jumps = np.flatnonzero(np.diff(times[a:b]) > data.STEP.to_timedelta64()) + 1 + a
    edges = [a, *map(int, jumps), b]
    return list(zip(edges[:-1], edges[1:]))


def split(series: data.Series, profile: Profile, input_steps: int, output_steps: int) -> tuple[windows.Windows, SplitInfo]:
    """Windows per split (with the time of each window's first target row) and what was selected."""
    dates = profile.kind == "dates"
    bounds = _date_bounds(series, profile) if dates else _fraction_bounds(series.rows, profile.fractions)
    length = input_steps + output_steps
    x, y, times, info = {}, {}, {}, SplitInfo(profile.name, {}, {}, {}, {}, {})
    for s, (a, b) in bounds.items():
        continuous = segments(series.times, a, b)
        segs = continuous if dates else [(a, b)]  # course: one run per split, gaps spanned
        parts = [windows.make_windows(series.values[p:q], input_steps, output_steps) for p, q in segs]
        x[s] = np.concatenate([p[0] for p in parts]) if len(parts) > 1 else parts[0][0]
        y[s] = np.concatenate([p[1] for p in parts]) if len(parts) > 1 else parts[0][1]
        # window i of segment [p, q) has its first target at row p + i + input_steps
        times[s] = np.concatenate([series.times[p + input_steps : p + input_steps + max(q - p - length + 1, 0)]
                                   for p, q in segs])
        if len(x[s]) == 0:
            key = f"key '{s}'" if dates else f"split '{s}'"
            where = f" in {len(segs)} continuous segment(s)" if dates else ""
            raise HarnessError(f"{profile.path}: {key} has no complete window: {b - a} rows{where}, "
                               f"a window needs {length} (data covers {_coverage(series)})")
        info.rows[s], info.windows[s], info.segments[s] = b - a, len(x[s]), segs
        info.covered[s] = (_minute(series.times[a]), _minute(series.times[b - 1]))
        info.gaps[s] = len(continuous) - 1
    train = series.values[slice(*bounds["train"])]
    w = windows.Windows(x=x, y=y, bounds=bounds, mean=train.mean(axis=0), std=train.std(axis=0), times=times)
    return w, info


def describe(profile: Profile, info: SplitInfo) -> str:
    """One line for the report table."""
    parts = []
    for s in SPLITS:
        if profile.kind == "dates":
            span = f"{profile.ranges[s][0]}..{profile.ranges[s][1]}"
        else:  # the course's split has no dates of its own: show what the rows covered
            span = f"{info.covered[s][0][:10]}..{info.covered[s][1][:10]}"
        segs = f", {len(info.segments[s])} segments" if len(info.segments[s]) > 1 else ""
        parts.append(f"{s} {span} ({info.rows[s]:,} rows, {info.windows[s]:,} windows{segs})")
    return f"{profile.name}: " + "; ".join(parts)
