"""On-device figures: a bundle to measure a version's shipped artifact on the course's device, and the import
of the device's JSON back into that version's tables.

The bundle holds the artifact, its sidecar, the task's standalone script (numpy + a TFLite interpreter only),
requirements.txt, bundle.json (the protocol, the artifact's sha256) and a README; a zip of the same folder
sits beside it. The import refuses a JSON whose sha256 is not the version's artifact: a figure is only
ever attached to the file it measured.
"""
from __future__ import annotations

import hashlib
import io
import json
import math
import shutil
import zipfile
from pathlib import Path

from harness.core import check as checks
from harness.core import constraints
from harness.core.errors import HarnessError
from harness.core.paths import rel
from harness.core.task import get as get_task
from harness.pipeline import publish, report, report_files
from harness.pipeline.run import RUNTIMES_LABEL
from harness.toolkit import atomic

SCHEMA = "ml4iot-device-measurement/1"  # what the task's device script writes
# The interpreters the script accepts; the bundle pins the one this harness measures with.
REQUIREMENTS = ("numpy>=1.24", "ai-edge-litert==2.3.0  # or: tflite-runtime (e.g. on a Raspberry Pi with Python 3.9)")


def _version_report(out_dir: Path, suite: str, version: str) -> tuple[Path, dict]:
    folder = Path(out_dir) / suite / f"version-{version}"
    path = folder / "report.json"
    try:
        return folder, json.loads(path.read_text())
    except FileNotFoundError:
        raise HarnessError(f"{path}: no report for {suite} version {version} (run it first: "
                           f"python -m harness run --suite {suite} --version {version})") from None
    except (OSError, json.JSONDecodeError) as e:
        raise HarnessError(f"{path}: unreadable report ({e})") from None


def _task_entry(rep: dict, task: str | None, where: Path) -> dict:
    tasks = rep["tasks"] if task is None else [t for t in rep["tasks"] if t["task"] == task]
    if len(tasks) != 1:
        names = ", ".join(t["task"] for t in rep["tasks"])
        raise HarnessError(f"{where}: pass --task (one of {names})" if tasks else f"{where}: no task {task!r} (has {names})")
    return tasks[0]


def bundle(out_dir: Path, suite: str, version: str, task_name: str | None = None,
           constraints_dir: Path | None = None) -> tuple[Path, Path]:
    """Write <out>/<suite>/bundles/version-<v>-<task>/ and its .zip; returns both paths."""
    folder, rep = _version_report(out_dir, suite, version)
    entry = _task_entry(rep, task_name, folder / "report.json")
    task = get_task(entry["task"])
    if not hasattr(task, "device_files"):  # optional in the task interface: not every task has a device script
        raise HarnessError(f"{folder / 'report.json'}: task {entry['task']!r} has no device bundle "
                           f"(no device script for it); bundle a task that has one, e.g. --task kws")
    art = entry["artifact"]
    blob = (folder / art["file"]).read_bytes()
    if hashlib.sha256(blob).hexdigest() != art["sha256"]:
        raise HarnessError(f"{folder / art['file']}: sha256 differs from its report's; rerun the version")
    section = constraints.load(suite, version, root=constraints_dir or constraints.CONSTRAINTS_DIR).task(entry["task"])
    try:
        sidecar = json.loads((folder / art["sidecar"]).read_text())
        files, meta = task.device_files(section, sidecar)
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
        raise HarnessError(f"{folder / art['sidecar']}: not the artifact's sidecar ({type(e).__name__}: {e}); "
                           "rerun the version") from None
    name = Path(art["file"]).name
    runtimes = dict(entry.get("rows", [])).get(RUNTIMES_LABEL, "not recorded")
    manifest = {"suite": suite, "version": version, "task": entry["task"], "artifact": name, "artifact_sha256": art["sha256"],
                "built_from_commit": entry["commit"], "runtimes_tested_by_the_harness": runtimes, **meta}
    files = {**files, name: blob, "sidecar.json": json.dumps(sidecar, indent=2).encode(),
             "bundle.json": json.dumps(manifest, indent=2).encode(),
             "requirements.txt": ("\n".join(REQUIREMENTS) + "\n").encode(),
             "README.md": _readme(manifest).encode()}
    final = Path(out_dir) / suite / "bundles" / f"version-{version}-{entry['task']}"
    with publish.together(final, "bundle files") as staging:
        for fname, data in files.items():
            atomic.write_bytes(staging / fname, data)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for fname in sorted(files):
            zf.writestr(f"{final.name}/{fname}", files[fname])
    zpath = atomic.write_bytes(final.with_suffix(".zip"), buf.getvalue())
    return final, zpath


def _readme(m: dict) -> str:
    p = m["protocol"]
    return (f"# Device bundle: {m['suite']} version {m['version']} ({m['task']})\n\n"
            f"Measures `{m['artifact']}` (sha256 `{m['artifact_sha256']}`) on this device under the edition's protocol: "
            f"{p['scope']} latency, {p['statistic']} of {p['runs']} runs ({p['discard']} discarded), input {p['input']}; "
            f"limit {p.get('max_ms')} ms on {p['device']}.\n\nRuntimes that loaded and ran this file where it was built: "
            f"{m['runtimes_tested_by_the_harness']}.\n\n"
            "```\npython3 -m venv venv && venv/bin/pip install -r requirements.txt\n"
            f"venv/bin/{m['command']}\n```\n\n"
            "The script writes `device-latency-<device>.json`. Copy it back and run\n"
            "`python -m harness import-latency device-latency-<device>.json` in the harness: the figure joins the\n"
            "version's tables as \"Latency on <device> (imported)\", checked against the limit.\n")


def import_latency(path: Path, out_dir: Path, constraints_dir: Path | None = None) -> dict:
    """Attach a device JSON to its version's tables (the sha256 must be the version's artifact, the protocol the
    version's own)."""
    try:
        dev = json.loads(Path(path).read_text())
        suite, version, task, sha = dev["suite"], dev["version"], dev["task"], dev["artifact_sha256"]
        value, name, metric = float(dev["latency"]["metric_ms"]), str(dev["device"]["name"]), dev["metric"]
        schema, protocol = dev["schema"], dev["protocol"]
    except FileNotFoundError:
        raise HarnessError(f"{path}: no such file") from None
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise HarnessError(f"{path}: not a device measurement JSON ({type(e).__name__}: {e})") from None
    if schema != SCHEMA:
        raise HarnessError(f"{path}: schema {schema!r} is not {SCHEMA!r} (the bundle's measure_on_device.py writes it)")
    if not math.isfinite(value) or value <= 0:  # NaN would also write a report.json no JSON reader accepts
        raise HarnessError(f"{path}: key 'latency.metric_ms' must be a positive number of ms, got {value}")
    folder, rep = _version_report(out_dir, suite, version)
    entry = _task_entry(rep, task, folder / "report.json")
    if not hasattr(get_task(task), "device_protocol"):  # optional, as device_files is
        raise HarnessError(f"{path}: task {task!r} has no device measurement to import (no device script for it)")
    section = constraints.load(suite, version, root=constraints_dir or constraints.CONSTRAINTS_DIR).task(task)
    expected = get_task(task).device_protocol(section)
    if protocol != expected:  # a figure timed under another protocol (an older bundle, an edited file) is no figure here
        differ = (sorted(k for k in {*protocol, *expected} if protocol.get(k) != expected.get(k))
                  if isinstance(protocol, dict) else ["all"])
        raise HarnessError(f"{path}: measured under another latency protocol than {suite} version {version}'s "
                           f"(differs in: {', '.join(differ)}); bundle the version again and measure with that bundle")
    if not entry.get("seeds"):  # the host verdict is read from them; the stored one may hold an earlier import
        raise HarnessError(f"{folder / 'report.json'}: task {task!r} has no per-seed records (an older report); "
                           f"run {suite} version {version} again")
    if sha != entry["artifact"]["sha256"]:
        raise HarnessError(f"{path}: artifact sha256 {sha[:16]}… is not {suite} version {version}'s shipped "
                           f"{entry['artifact']['file']} ({entry['artifact']['sha256'][:16]}…); bundle the current artifact again")
    host_row = next((c for c in entry["checks"] if c["metric"] == metric), None)
    if host_row is None:
        raise HarnessError(f"{path}: {suite} version {version} has no {metric!r} row to compare with")
    passed = None if host_row["limit"] is None else checks.passes(value, host_row["op"], host_row["limit"])
    row = checks.CheckRow(f"Latency on {name} (imported, {dev.get('runtime', 'runtime unknown')})", host_row["limit"], value,
                          host_row["unit"], host_row["op"], passed, host_row["fmt"], f"{metric}@{name}")
    new = {"label": row.label, "metric": row.metric, "limit": row.limit, "measured": value, "unit": row.unit, "op": row.op,
           "passed": passed, "fmt": row.fmt, "limit_text": row.limit_text(), "measured_text": row.measured_text(),
           "result": row.result_text(), "imported": {k: dev.get(k) for k in ("device", "runtime", "protocol", "latency",
                                                                               "accuracy", "finished_utc")}}
    entry["checks"] = [c for c in entry["checks"] if c["metric"] != new["metric"]] + [new]  # re-import replaces
    seed_pass = all(s["passed"] for s in entry["seeds"])
    entry["passed"] = seed_pass and all(c["passed"] is not False for c in entry["checks"] if c.get("imported"))
    rep["passed"] = all(t["passed"] for t in rep["tasks"])
    with publish.together(folder, "report files") as staging:
        shutil.rmtree(staging)
        shutil.copytree(folder, staging)  # artifacts unchanged; the three report files rewritten together
        report.write_version(staging, rep)
    report_files.write_summaries(Path(out_dir), suite)
    return {"report": rel(folder / "report.md"), "row": new, "passed": rep["passed"]}
