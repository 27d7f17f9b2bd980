"""Seed-report reproduction: run each report's configuration through the harness and put our measured
numbers beside the ones the report claimed (tasks/seeds.toml)."""
from __future__ import annotations

from pathlib import Path

from tabulate import tabulate

from harness import atomic, constraints, run
from harness.config import Field, read_toml, validate
from harness.errors import HarnessError
from harness.task import Context

ROOT = Path(__file__).resolve().parents[1]
SEEDS_FILE = ROOT / "tasks" / "seeds.toml"
CLAIM_KEYS = {"accuracy_pct": ("accuracy", "%", "{:.2f}"), "mae_t_degc": ("MAE(T)", "°C", "{:.3f}"),
              "mae_rh_pct": ("MAE(RH)", "%RH", "{:.3f}"), "size_bytes": ("size", "B", "{:,.0f}"),
              "latency_ms": ("latency", "ms", "{:.3f}")}
SEED_SCHEMA = {
    "id": Field(str), "report": Field(str), "suite": Field(str), "version": Field(str),
    "task": Field(str), "recipe": Field(str), "claimed": Field(dict), "note": Field(str, default=""),
}


def load(path: Path = SEEDS_FILE) -> list[dict]:
    raw = read_toml(path)
    out = []
    for i, table in enumerate(raw.get("seed", [])):
        s = validate(table, SEED_SCHEMA, str(path), f"seed[{i}].")
        unknown = set(s["claimed"]) - set(CLAIM_KEYS)
        if unknown:
            raise HarnessError(f"{path}: seed[{i}].claimed has unknown key '{sorted(unknown)[0]}' (known: {', '.join(CLAIM_KEYS)})")
        out.append(s)
    return out


def reproduce(ctx: Context, only: list[str] | None = None, out_dir: Path = run.RESULTS_DIR) -> Path:
    rows, records = [], []
    for s in load():
        if only and s["id"] not in only:
            continue
        recipe = ROOT / s["recipe"]
        if not recipe.is_file():
            ctx.log(f"== seed {s['id']}: no reproduction recipe yet ({s['recipe']}); skipped")
            rows.append([s["id"], s["report"], "—", "—", "recipe missing", ""])
            continue
        ctx.log(f"== seed {s['id']}: {s['report']}")
        cons = constraints.load(s["suite"], s["version"])
        outcome = run.run_task(ctx, cons, s["task"], recipe_path=recipe, out_dir=out_dir,
                               artifact_dir=out_dir / "seeds" / s["id"])
        rep = outcome.report
        measured = dict(rep["metrics"])
        claimed_txt, ours_txt = [], []
        for key, value in s["claimed"].items():
            label, unit, fmt = CLAIM_KEYS[key]
            claimed_txt.append(f"{label} {fmt.format(value)} {unit}")
            ours = measured.get(key)
            ours_txt.append(f"{label} {fmt.format(ours)} {unit}" if ours is not None else f"{label} not measured")
        verdict = "PASS" if outcome.passed else "FAIL"
        rows.append([s["id"], s["report"], "; ".join(claimed_txt), "; ".join(ours_txt),
                     f"{verdict} ({s['suite']} {s['version']})", s["note"]])
        records.append({"seed": s, "measured": measured, "passed": outcome.passed, "artifact": rep["artifact"],
                        "recipe_summary": rep["recipe_summary"], "data": rep["data"]})
    table = tabulate(rows, headers=["Seed", "Report", "Claimed (their data, their device)", "Measured here (deployed file)",
                                    "Our verdict", "Note"], tablefmt="github", disable_numparse=True)
    from harness import hostinfo

    md = ("# Seed reports reproduced through the harness\n\n"
          "Each row runs the report's configuration (recipe under `tasks/*/recipes/seeds/`) through the same code as "
          "`make version-*` and measures the deployed file. Their numbers come from other data (the 2009–2016 Jena file; "
          "the course's msc-* folders for 2022/23+, here the substitute split) and other devices (Raspberry Pi, Deepnote); "
          f"our latencies are this host's ({hostinfo.host_line()}). Commit `{hostinfo.commit()}`.\n\n" + table + "\n")
    path = out_dir / "seeds.md"
    atomic.write_text(path, md)
    atomic.write_json(out_dir / "seeds.json", records)
    return path
