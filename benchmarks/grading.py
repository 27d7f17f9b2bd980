"""Speed of `grade` and `check` on the committed reference artifacts, beside the targets; and the sample leaderboard.

    python -m benchmarks.grading [--data-dir DIR]            # times beside benchmarks/targets.toml [grading]
    python -m benchmarks.grading --sample [--data-dir DIR]   # writes results/reference/ml4iot-2022/grade-sample/

Both time the command a user types (a fresh process each, TensorFlow import included).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
REF = ROOT / "results" / "reference"
KWS = [("ml4iot-2022", v) for v in "abc"] + [("ml4iot-2021", v) for v in "abc"]  # the 8-keyword artifacts


def _kws(suite: str, version: str) -> tuple[bytes, str, dict]:
    folder = REF / suite / f"version-{version}" / "kws"
    art = next(p for p in folder.iterdir() if p.name.startswith("model."))
    return art.read_bytes(), art.name.removeprefix("model"), json.loads((folder / "sidecar.json").read_text())


def _put(team: Path, files: dict[str, bytes | str]) -> None:
    team.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        (team / name).write_bytes(data if isinstance(data, bytes) else data.encode())


def ten_submissions(root: Path) -> Path:
    """10 teams, each an 8-keyword reference artifact (cycled) named for a 2022 version, with its sidecar."""
    for i in range(10):
        suite, version = KWS[i % len(KWS)]
        blob, suffix, side = _kws(suite, version)
        stem = f"Group{i + 1}_kws_{'abc'[i % 3]}"
        _put(root / f"Team{i + 1:02d}", {stem + suffix: blob, stem + ".json": json.dumps(side)})
    return root


def sample_submissions(root: Path) -> Path:
    """The harness's own 2022 artifacts, two 2021 ones, and deliberately broken submissions."""
    for v in "abc":
        blob, suffix, side = _kws("ml4iot-2022", v)
        files = {f"Ref_kws_{v}{suffix}": blob, f"Ref_kws_{v}.json": json.dumps(side)}
        if v != "c":
            fc = REF / "ml4iot-2022" / f"version-{v}" / "forecast" / "model.tflite.zlib"
            files[f"Ref_th_{v}.tflite.zlib"] = fc.read_bytes()
        _put(root / f"Reference-{v}", files)
    blob, suffix, side = _kws("ml4iot-2021", "a")
    # the course's flags give the preprocessing but not the output order: the edition's order is assumed (and is wrong)
    _put(root / "Flags-no-labels", {"Old_kws_a" + suffix: blob, "kws_flags.txt": side["course_latency_command_2021_22"]
                                 .removeprefix("python kws_latency.py ")})
    blob, suffix, side = _kws("ml4iot-2021", "c")
    _put(root / "Older-recipe", {"Old_kws_c" + suffix: blob, "args.json": json.dumps(side["PREPROCESSING_ARGS"]),
                                   "labels.txt": repr(side["LABELS"])})
    blob, suffix, side = _kws("ml4iot-2022", "c")
    _put(root / "Broken-zlib", {"Bad_kws_c.tflite.zlib": blob[: len(blob) // 2], "args.json": json.dumps(side)})
    fc = REF / "ml4iot-2022" / "version-a" / "forecast" / "model.tflite.zlib"
    _put(root / "Wrong-shape", {"Shape_kws_b.tflite.zlib": fc.read_bytes(), "args.json": json.dumps(side)})
    blob_a, suffix_a, _ = _kws("ml4iot-2022", "a")
    _put(root / "No-args", {"Noargs_kws_a" + suffix_a: blob_a})
    _put(root / "Not-a-model", {"Report_kws_c.tflite": "our report is attached as a PDF", "args.json": json.dumps(side)})
    _put(root / "Misnamed", {"final_model.tflite": blob, "args.json": json.dumps(side)})
    return root


def _harness(args: list[str]) -> tuple[float, subprocess.CompletedProcess]:
    t0 = time.perf_counter()
    res = subprocess.run([sys.executable, "-m", "harness", *args], cwd=ROOT, capture_output=True, text=True)
    return time.perf_counter() - t0, res


def _data_args(data_dir: str | None) -> list[str]:
    d = data_dir or os.environ.get("ML4IOT_DATA_DIR") or str(ROOT.parent / "shared" / "data")
    return ["--data-dir", d, "--jena", str(Path(d) / "jena_climate" / "weather_2020.zip")]


def main(argv=None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--data-dir")
    p.add_argument("--sample", action="store_true", help="write the sample leaderboard into results/reference")
    a = p.parse_args(argv)
    if not (REF / "ml4iot-2022" / "version-a" / "report.json").is_file():
        print(f"no reference artifacts under {REF}: run `make reference` first")
        return 1
    data = _data_args(a.data_dir)
    with tempfile.TemporaryDirectory() as tmp:
        if a.sample:
            folder = sample_submissions(Path(tmp) / "sample")
            secs, res = _harness(["grade", str(folder), "--suite", "ml4iot-2022", "--out", str(REF), *data])
            print(res.stdout, end="")
            if res.returncode:
                print(res.stderr[-2000:], file=sys.stderr)
            return res.returncode
        targets = tomllib.loads((ROOT / "benchmarks" / "targets.toml").read_text())["grading"]
        folder = ten_submissions(Path(tmp) / "ten")
        out = Path(tmp) / "out"
        blob_dir = REF / "ml4iot-2022" / "version-c" / "kws"
        check = ["check", str(next(blob_dir.glob("model.*"))), "--suite", "ml4iot-2022", "--version", "c", "--task", "kws",
                 "--sidecar", str(blob_dir / "sidecar.json"), "--out", str(out), *data]
        _harness(check)  # warms the feature cache (the target is for a warm cache)
        t_check, r1 = _harness(check)
        t_grade, r2 = _harness(["grade", str(folder), "--suite", "ml4iot-2022", "--out", str(out), *data])
        for r in (r1, r2):
            if r.returncode:
                print(r.stderr[-2000:], file=sys.stderr)
                return 1
        rows = [("check of one 8-keyword model (feature cache warm)", t_check, targets["check_max_s"]),
                ("grade of 10 submissions of 8-keyword models", t_grade, targets["grade_10_max_s"])]
        for label, secs, lim in rows:
            print(f"{label}: {secs:.1f} s (target < {lim} s: {'met' if secs < lim else 'NOT met'})")
        shutil.rmtree(out, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
