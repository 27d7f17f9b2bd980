"""Jena climate station data: find, read (any of the station's real formats), join, inspect.

Accepted forms: the course's official archive `jena_climate_2009_2016.csv.zip`, the station's own
half-year files (cp1252, padded values, CRLF), the 2020 "Weather" benchmark CSV (UTF-8, `date`
column), as plain CSV or zip, several files joined in time order.
"""
from __future__ import annotations

import io
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from harness.core.errors import HarnessError

COLUMNS = ("T (degC)", "rh (%)")
TIME_COLUMNS = ("Date Time", "date")
STEP = pd.Timedelta(minutes=10)
MISSING = -9999.0
# Beyond these a value is a fault, not weather (the station records lie inside; RH reaches 100): T in °C, RH in %RH.
PLAUSIBLE = {"T (degC)": (-80.0, 60.0), "rh (%)": (0.0, 100.0)}

OFFICIAL_NAME = "jena_climate_2009_2016.csv.zip"
OFFICIAL_URL = "https://storage.googleapis.com/tensorflow/tf-keras-datasets/jena_climate_2009_2016.csv.zip"
# sha256 of the CSV inside the official archive (the archive itself has no published hash).
OFFICIAL_CSV_SHA256 = "eb3df9da6c25039f10814ded0a14138bb0afa3612be9cf79cafdf1cf6f95172e"
OFFICIAL_CSV_BYTES = 43_153_776


@dataclass
class SourceFile:
    path: str
    sha256: str
    bytes: int
    member: str | None
    rows: int
    first: str
    last: str


@dataclass
class Series:
    """T and RH in physical units (°C, %RH), one row per 10-minute record, in time order."""

    values: np.ndarray  # float32 [n, 2]
    times: np.ndarray  # datetime64[ns] [n]
    sources: list[SourceFile]
    duplicates: int  # rows whose timestamp equals an earlier row's
    gaps: list[tuple[str, int]] = field(default_factory=list)  # (time before gap, minutes missing)
    duplicate_policy: str = "keep"

    @property
    def rows(self) -> int:
        return len(self.values)

    def describe(self) -> str:
        gap_min = sum(m for _, m in self.gaps)
        return (
            f"{self.rows} rows; {self.duplicates} duplicated timestamps ({self.duplicate_policy}); "
            f"{len(self.gaps)} gaps ({gap_min} min missing, rows used as they come)"
        )


def _read_member(path: Path) -> tuple[bytes, str | None]:
    if path.suffix.lower() == ".zip":
        try:
            with zipfile.ZipFile(path) as zf:
                members = [m for m in zf.namelist() if m.lower().endswith(".csv") and not m.startswith("__MACOSX")]
                if len(members) != 1:
                    raise HarnessError(f"{path}: expected one .csv member in the zip, found {len(members)}")
                return zf.read(members[0]), members[0]
        except zipfile.BadZipFile as e:
            raise HarnessError(f"{path}: not a readable zip archive ({e})") from None
    return path.read_bytes(), None


def _decode(raw: bytes, where: str) -> str:
    for enc in ("utf-8", "cp1252"):  # the station's own files are cp1252 (² and µ in the header)
        try:
            return raw.decode(enc)
        except UnicodeDecodeError:
            continue
    raise HarnessError(f"{where}: neither UTF-8 nor cp1252 text")


def read_file(path: str | Path) -> tuple[pd.DataFrame, SourceFile]:
    """Read one file (CSV or zip of one CSV) into a frame indexed by time with the two columns."""
    import hashlib

    path = Path(path)
    if not path.is_file():
        raise HarnessError(f"{path}: Jena climate file not found")
    try:
        raw, member = _read_member(path)
    except OSError as e:
        raise HarnessError(f"{path}: cannot read ({e.strerror or e})") from None
    where = f"{path}:{member}" if member else str(path)
    text = _decode(raw, where)
    try:
        # padded values: ",   -8.02"; one pass (low_memory=False), so a stray text cell gives no pandas warning
        df = pd.read_csv(io.StringIO(text), skipinitialspace=True, low_memory=False)
    except Exception as e:  # pandas raises several types for malformed CSV
        raise HarnessError(f"{where}: cannot parse CSV ({type(e).__name__}: {e})") from None
    df.columns = [c.strip() for c in df.columns]
    if df.empty:
        raise HarnessError(f"{where}: no data rows (the file has a header only)")
    time_col = next((c for c in TIME_COLUMNS if c in df.columns), None)
    if time_col is None:
        raise HarnessError(f"{where}: no time column (expected one of {', '.join(TIME_COLUMNS)})")
    for col in COLUMNS:
        if col not in df.columns:
            raise HarnessError(f"{where}: missing column '{col}'")
    fmt = "%d.%m.%Y %H:%M:%S" if time_col == "Date Time" else "%Y-%m-%d %H:%M:%S"
    try:
        times = pd.to_datetime(df[time_col].astype(str).str.strip(), format=fmt)
    except (ValueError, TypeError) as e:
        raise HarnessError(f"{where}: column '{time_col}' has a timestamp not in {fmt} ({e})") from None
    values = df[list(COLUMNS)].apply(pd.to_numeric, errors="coerce")
    bad = values.isna().any(axis=1) | (values == MISSING).any(axis=1)
    if bad.any():
        i = int(np.flatnonzero(bad.to_numpy())[0])
        raise HarnessError(
            f"{where}: {int(bad.sum())} rows with a missing T/RH value (-9999 or not a number), "
            f"first at data row {i + 1} ({times.iloc[i]})"
        )
    for col, (lo, hi) in PLAUSIBLE.items():
        outside = ~values[col].between(lo, hi)
        if outside.any():
            i = int(np.flatnonzero(outside.to_numpy())[0])
            raise HarnessError(f"{where}: {int(outside.sum())} rows with '{col}' outside [{lo:g}, {hi:g}], first at "
                               f"data row {i + 1} ({times.iloc[i]}: {values[col].iloc[i]:g})")
    out = pd.DataFrame(values.to_numpy(np.float32), index=pd.DatetimeIndex(times), columns=list(COLUMNS))
    info = SourceFile(
        path=str(path),
        sha256=hashlib.sha256(path.read_bytes()).hexdigest(),
        bytes=path.stat().st_size,
        member=member,
        rows=len(out),
        first=str(out.index[0]),
        last=str(out.index[-1]),
    )
    return out, info


def load(paths: list[str | Path], duplicates: str = "keep") -> Series:
    """Read and join files in time order; detect duplicated timestamps and gaps.

    duplicates="keep" uses rows as they come (what the course did); "drop" keeps the first row of
    each duplicated timestamp.
    """
    if duplicates not in ("keep", "drop"):
        raise HarnessError(f"data.duplicates: expected 'keep' or 'drop', got {duplicates!r}")
    if not paths:
        raise HarnessError("no Jena climate file given")
    parts = [read_file(p) for p in paths]
    for frame, info in parts:  # name the file at fault: one with rows out of order, or two that overlap
        back = np.flatnonzero(np.diff(frame.index.to_numpy()) < np.timedelta64(0, "ns"))
        if back.size:
            raise HarnessError(f"{info.path}: time goes backwards after {frame.index[back[0]]} "
                               f"(data row {back[0] + 1}); the rows must be in time order")
    parts.sort(key=lambda p: p[0].index[0])
    for (a, a_info), (b, b_info) in zip(parts, parts[1:]):
        if a.index[-1] > b.index[0]:
            raise HarnessError(f"{a_info.path} and {b_info.path} overlap in time ({a.index[-1]} > {b.index[0]}); "
                               f"pass files that follow one another")
    frame = pd.concat([p[0] for p in parts])
    dup_mask = frame.index.duplicated(keep="first")
    n_dup = int(dup_mask.sum())
    if duplicates == "drop" and n_dup:
        frame = frame[~dup_mask]
    times = frame.index.to_numpy()
    diffs = np.diff(times)
    gaps = [
        (str(pd.Timestamp(times[i])), int((diffs[i] - STEP.to_timedelta64()) / np.timedelta64(1, "m")))
        for i in np.flatnonzero(diffs > STEP.to_timedelta64())
    ]
    return Series(
        values=frame.to_numpy(np.float32),
        times=times,
        sources=[p[1] for p in parts],
        duplicates=n_dup,
        gaps=gaps,
        duplicate_policy=duplicates,
    )
