"""Seed-report reproduction: run each original group report's configuration through the harness and put our
measured numbers beside the ones the report claimed (tasks/seed_reports.toml). "Seed" here means the five
original reports the project started from, not a random seed."""
from __future__ import annotations

from pathlib import Path

from tabulate import tabulate

from harness.core import constraints
from harness.core.config import Field, read_toml, validate
from harness.core.errors import HarnessError
from harness.core.paths import ROOT
from harness.core.task import Context
from harness.pipeline import run
from harness.toolkit import atomic

SEEDS_FILE = ROOT / "tasks" / "seed_reports.toml"


def claim_keys(task_name: str) -> dict:
    """What a report can claim for a task: the metrics its limits check (label, unit, format)."""
    from harness.core.task import get
    from harness.pipeline.report import short_label

    return {lim.metric: (short_label(lim.label), lim.unit, lim.fmt) for lim in get(task_name).limits}
SEED_SCHEMA = {
    "id": Field(str), "report": Field(str), "suite": Field(str), "version": Field(str),
    "task": Field(str), "recipe": Field(str), "claimed": Field(dict), "note": Field(str, default=""),
}


def load(path: Path = SEEDS_FILE) -> list[dict]:
    raw = read_toml(path)
    out = []
    for i, table in enumerate(raw.get("seed", [])):
        s = validate(table, SEED_SCHEMA, str(path), f"seed[{i}].")
        known = claim_keys(s["task"])
        unknown = set(s["claimed"]) - set(known)
        if unknown:
            raise HarnessError(f"{path}: seed[{i}].claimed has unknown key '{sorted(unknown)[0]}' (known: {', '.join(known)})")
        out.append(s)
    return out


def _previous(out_dir: Path) -> dict:
    """Rows of an earlier table by id, so that --only updates its rows and keeps the others."""
    import json

    try:
        return {r["seed"]["id"]: r for r in json.loads((out_dir / "seed_reports.json").read_text())}
    except (OSError, ValueError, KeyError, TypeError):
        return {}


def reproduce(ctx: Context, only: list[str] | None = None, out_dir: Path = run.RESULTS_DIR) -> Path:
    entries = load()
    unknown = sorted(set(only or ()) - {s["id"] for s in entries})
    if unknown:
        raise HarnessError(f"{SEEDS_FILE}: no seed report with id {', '.join(map(repr, unknown))} "
                           f"(known: {', '.join(s['id'] for s in entries)})")
    previous = _previous(out_dir)
    rows, records = [], []
    for s in entries:
        if only and s["id"] not in only:
            old = previous.get(s["id"])
            if old:
                rows.append(old["row"])
                records.append(old)
            continue
        recipe = ROOT / s["recipe"]
        if not recipe.is_file():
            ctx.log(f"== seed {s['id']}: no reproduction recipe yet ({s['recipe']}); skipped")
            rows.append([s["id"], s["report"], "—", "—", "recipe missing", ""])
            continue
        ctx.log(f"== seed {s['id']}: {s['report']}")
        cons = constraints.load(s["suite"], s["version"])
        outcome = run.run_task(ctx, cons, s["task"], recipe_path=recipe, artifact_dir=out_dir / "seed-reports" / s["id"])
        rep = outcome.report
        measured = dict(rep["metrics"])
        claimed_txt, ours_txt = [], []
        for key, value in s["claimed"].items():
            label, unit, fmt = claim_keys(s["task"])[key]
            claimed_txt.append(f"{label} {fmt.format(value)} {unit}")
            ours = measured.get(key)
            ours_txt.append(f"{label} {fmt.format(ours)} {unit}" if ours is not None else f"{label} not measured")
        verdict = "PASS" if outcome.passed else "FAIL"
        rows.append([s["id"], s["report"], "; ".join(claimed_txt), "; ".join(ours_txt),
                     f"{verdict} ({s['suite']} {s['version']})", s["note"]])
        records.append({"seed": s, "measured": measured, "passed": outcome.passed, "artifact": rep["artifact"],
                        "recipe_summary": rep["recipe_summary"], "data": rep["data"], "row": rows[-1],
                        "commit": rep["commit"]})
    table = tabulate(rows, headers=["Seed", "Report", "Claimed (their data, their device)", "Measured here (deployed file)",
                                    "Our verdict", "Note"], tablefmt="github", disable_numparse=True)
    from harness.toolkit import hostinfo

    md = ("# Seed reports reproduced through the harness\n\n"
          "Each row runs the report's configuration (recipe under `tasks/*/recipes/seeds/`) through the same code as "
          "`make version-*` and measures the deployed file. Their numbers come from other data and other devices "
          "(each row's note says which); "
          f"our latencies are this host's ({hostinfo.host_line()}). Commit `{hostinfo.commit()}`.\n\n" + table + "\n")
    path = out_dir / "seed_reports.md"
    atomic.write_json(out_dir / "seed_reports.json", records)
    atomic.write_text(path, md)
    return path
