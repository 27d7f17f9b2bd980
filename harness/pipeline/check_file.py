"""Check a user's own model file against a constraint file, with the same measurement, protocols and table as `run`.

Nothing is trained: the file is read, unpacked as a grader would, measured on the test split, and checked.
The task says how to read the file's inputs (e.g. a sidecar with the preprocessing arguments); the table
names every assumption it made.
"""
from __future__ import annotations

import json

from pathlib import Path

from tabulate import tabulate

from harness.core import constraints, recipes
from harness.core.errors import HarnessError, ModelError
from harness.core.paths import rel
from harness.core.task import Context
from harness.core.task import get as get_task
from harness.pipeline import publish, report, run
from harness.toolkit import atomic, hostinfo, package


def check_file(ctx: Context, model: Path, suite: str, version: str, task_name: str | None = None,
               out: Path | None = None, constraints_dir: Path | None = None) -> dict:
    cons = constraints.load(suite, version, root=constraints_dir or constraints.CONSTRAINTS_DIR)
    if task_name is None:
        if len(cons.tasks) != 1:
            raise HarnessError(f"{cons.rel_path} has several tasks ({', '.join(cons.tasks)}): pass --task")
        task_name = cons.tasks[0]
    if task_name not in cons.tasks:
        raise HarnessError(f"{cons.rel_path} has no [{task_name}] table")
    task = get_task(task_name)
    model = Path(model)
    try:
        blob = model.read_bytes()
    except OSError as e:
        raise HarnessError(f"{model}: cannot read the model file ({e.strerror or e})") from None
    fmt = package.format_of(str(model))
    deployed = package.unpack(blob, fmt, str(model))  # a file that cannot be unpacked fails before the data are read
    if out is not None:  # where the report will go, refused now rather than after the measurement
        first, folder = report_folders(Path(out) / suite, version, model)
        publish.writable(folder)
    section = dict(cons.task(task_name))
    default = recipes.default_path(task, suite, version)
    if not default.is_file():  # an edition without a recipe of ours: the task's first recipe gives the defaults
        default = sorted(task.recipes_dir.glob("*.toml"))[0]
    base = recipes.load(default, task)
    section, recipe, assumptions = task.setup_for_artifact(ctx, section, base)
    try:
        m, record = run.measure_artifact(ctx, task, section, recipe, blob, fmt, split="test", with_val=False)
    except ModelError as e:  # raised where only the bytes are known: the user needs the file's name
        raise HarnessError(f"{model}: {e}") from None
    checks = run.aggregate(task, section, [record])
    m.rows.append(run.runtimes_row(deployed))
    if fmt not in section["size_formats"]:
        assumptions.append(f"the {fmt} format is not one {cons.rel_path} accepts ({', '.join(section['size_formats'])}): "
                           "its size row is shown for information")
    rep = {"suite": suite, "version": version, "task": task_name, "title": task.title, "model": str(model),
           "format": fmt, "bytes": len(blob), "sha256": record["artifact_sha256"], "checks": checks,
           "passed": record["passed"] and fmt in section["size_formats"], "rows": m.rows, "assumptions": assumptions,
           "baselines": run.baseline_report(task, section, m.baselines, m.references, m.metrics), "commit": hostinfo.commit(),
           "host_line": hostinfo.host_line(), "constraints": cons.rel_path, "details": m.details}
    text = markdown(rep)
    if out is not None:
        if folder != first:
            ctx.log(f"note: {first} holds the report of another file named {model.name}; this one goes to {folder.name}")
        write_report(folder, rep, text)
        rep["report"] = rel(folder / "report.md")
    return rep


def report_folders(parent: Path, version: str, model: Path) -> tuple[Path, Path]:
    """(check-<version>-<stem>, the folder for this file): the first, or -2, -3, ... when it holds the report of
    another file with the same stem. A file checked again goes back to its own folder; another file never
    replaces its report.
    """
    first = parent / f"check-{version}-{model.name.split('.')[0]}"
    n = 1
    while True:
        folder = first if n == 1 else first.with_name(f"{first.name}-{n}")
        publish.recover(folder)  # a swap cut short is put back before the folder is read
        earlier = _checked_model(folder)
        if earlier is None or _same_file(Path(earlier), model):
            return first, folder
        n += 1


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve()
    except OSError:
        return False


def _checked_model(folder: Path) -> str | None:
    """The model path an earlier check recorded in folder, if any (an unreadable record counts as none)."""
    try:
        return str(json.loads((folder / "report.json").read_text())["model"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def write_report(folder: Path, rep: dict, text: str) -> None:
    """The check's report.md and report.json appear together or not at all, as a run's version folder does."""
    with publish.together(folder, "report files") as staging:
        atomic.write_text(staging / "report.md", text)
        atomic.write_json(staging / "report.json", rep)


def markdown(rep: dict) -> str:
    table = tabulate([[c["label"], c["limit_text"], c["measured_text"], report.interval_text(c), c["result"]]
                      for c in rep["checks"]], headers=["Metric", "Limit", "Measured", "95 % interval", "Result"],
                     tablefmt="github", disable_numparse=True)
    lines = [f"# Check of `{rep['model']}` against {rep['suite']} version {rep['version']} — "
             f"{'PASS' if rep['passed'] else 'FAIL'}", "",
             f"- File: {rep['bytes']:,} B as {rep['format']}, sha256 `{rep['sha256']}`; constraints `{rep['constraints']}`.",
             f"- Host: {rep['host_line']} (latency rows are this host's, not the course's device).", "", table, ""]
    lines += [f"- Assumed: {a}." for a in rep["assumptions"]]
    lines += [f"- {label}: {text}." for label, text in rep["rows"]]
    lines += report.baseline_lines(rep)
    return "\n".join(lines) + "\n"
