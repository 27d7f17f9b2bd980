"""The run loop: constraint file + recipe -> N seeded builds (cached, verified) -> package -> measure -> check -> report.

A verdict is about the recipe: it is built once per seed (seeds derived from the recipe's own), every
artifact is measured, and the recipe passes only when every seed passes. The recipe seed's artifact ships.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from harness.core import check, constraints, stats
from harness.core.errors import HarnessError
from harness.core.paths import RESULTS_DIR, rel
from harness.core.task import Context
from harness.pipeline import plan, publish, report, report_files
from harness.pipeline.builds import build_seeds, seeds_of, with_seed
from harness.toolkit import atomic, hostinfo, package
from harness.toolkit.measure.interpreter import runtimes_loading
from harness.toolkit.tfsetup import quiet_stderr

def utc_now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def record_run(out_dir: Path, fields: dict) -> Path:
    """One JSON file per `run` command under <out>/runs/: what was asked, on which commit and host, and how long
    the whole command took (the version reports time their own part only)."""
    now = datetime.now(timezone.utc)
    rec = dict(fields, commit=hostinfo.commit(), host_line=hostinfo.host_line(), finished_utc=utc_now())
    return atomic.write_json(Path(out_dir) / "runs" / f"{now:%Y%m%dT%H%M%S%f}-{os.getpid()}.json", rec)


# -- one task -------------------------------------------------------------------------------------

def recipe_summary(recipe) -> str:
    m = ", ".join(f"{k}={v}" for k, v in recipe["model"].items() if k != "name")
    p = recipe["prune"]
    prune = f"pruning {p['initial_sparsity']:.2f}→{p['final_sparsity']:.2f}" if p["final_sparsity"] else "no pruning"
    q = recipe["quantize"]
    quant = q["mode"] + (f" + QAT {q['qat_epochs']} ep" if q["qat_epochs"] else "")
    t = recipe["train"]
    members = recipe["ensemble"]["members"]
    model = f"{members} × {recipe['model']['name']}({m}) averaged" if members > 1 else f"{recipe['model']['name']}({m})"
    return (f"{model}, {prune}, PTQ {quant}, {t['epochs']} epochs × batch {t['batch_size']}, "
            f"seed {recipe['seed']}, package {recipe['package']['format']}")


@dataclass
class TaskOutcome:
    report: dict
    passed: bool
    files: dict[str, bytes]  # what ships, by name: the artifact and its sidecar (written by the caller)


def _check_dict(r: check.CheckRow) -> dict:
    return {"label": r.label, "metric": r.metric, "limit": r.limit, "measured": r.measured, "unit": r.unit, "op": r.op,
            "passed": r.passed, "fmt": r.fmt, "limit_text": r.limit_text(), "measured_text": r.measured_text(), "result": r.result_text()}


def progress_word(checks: list[dict], latency: bool) -> str:
    """The word a progress line starts with. A selection run (cv, search) skips latency on purpose: its line
    judges the limits it measured, as its table does, and says latency was not measured."""
    ok = all(c["passed"] is not False for c in checks)  # None: an information row, no limit
    return ("PASS" if ok else "FAIL") + ("" if latency else " on the measured limits")


def measure_artifact(ctx: Context, task, section: dict, recipe, blob: bytes, fmt: str, split: str = "test",
                     latency: bool = True, with_val: bool = True, counted_bytes: int | None = None):
    """Measure one submitted file as a grader would: unpack it, run the task's measurement, check the limits.

    Returns the Measurement and a JSON record (figures, intervals, validation figures when reporting)."""
    deployed = package.unpack(blob, fmt, "artifact")
    with quiet_stderr():
        m = task.measure(ctx, section, recipe, deployed, split=split, latency=latency)
        val = (task.measure(ctx, section, recipe, deployed, split="val", latency=False).metrics
               if split == "test" and with_val else dict(m.metrics) if split != "test" else {})
    m.metrics["size_bytes"] = float(len(blob) if counted_bytes is None else counted_bytes)
    rows = check.evaluate(task.limits, section, m.metrics)
    return m, {"tflite_sha256": hashlib.sha256(deployed).hexdigest(), "artifact_sha256": hashlib.sha256(blob).hexdigest(),
               "bytes": len(blob), "metrics": m.metrics, "val_metrics": val, "passed": check.verdict(rows),
               "checks": [_check_dict(r) for r in rows], "intervals": {k: list(v) for k, v in m.intervals.items()},
               "interval_method": m.interval_method, "misses": m.misses}


def missed_by_seeds(per_seed: list[dict], seeds: list[int]) -> list[dict]:
    """Every item some seed gets wrong, with the seeds that miss it; most-missed first, then by name."""
    by_item: dict[str, dict] = {}
    for seed, rec in zip(seeds, per_seed):
        for item, what in rec.get("misses", {}).items():
            by_item.setdefault(item, {"item": item, "seeds": [], "answers": []})
            by_item[item]["seeds"].append(seed)
            by_item[item]["answers"].append(what)
    return sorted(by_item.values(), key=lambda r: (-len(r["seeds"]), r["item"]))


RUNTIMES_LABEL = "Runtimes that load and run the shipped file"


def runtimes_row(tflite: bytes) -> tuple[str, str]:
    """Which installed interpreters load and run the file (4-bit weights, custom ops: not every runtime does)."""
    loads = runtimes_loading(tflite)
    return RUNTIMES_LABEL, ", ".join(f"{k}: {v}" for k, v in loads.items()) + "; tflite-runtime not tested (it needs numpy < 2)"


def aggregate(task, section: dict, per_seed: list[dict]) -> list[dict]:
    """One row per limit over every seed: spread, passes k/N, the shipped seed's figure and interval, marginal."""
    shipped = per_seed[0]
    rows = []
    for i, r in enumerate(shipped["checks"]):
        values = [s["metrics"].get(r["metric"]) for s in per_seed]
        finite = [v for v in values if v is not None]
        k = sum(1 for s in per_seed if s["checks"][i]["passed"])
        row = dict(r)
        row.update({"values": values, "spread": stats.spread(finite) if finite else None, "n": len(per_seed),
                    "k_pass": k if r["limit"] is not None else None,
                    "passed": (k == len(per_seed)) if r["limit"] is not None else None})
        ivs = [s["intervals"].get(r["metric"]) for s in per_seed]
        row["interval"] = ivs[0]
        row["interval_method"] = shipped["interval_method"].get(r["metric"])
        row["marginal"] = bool(row["passed"]) and any(check.crosses(r["op"], r["limit"], iv) for iv in ivs if iv)
        row["result"] = ("info" if row["passed"] is None else ("PASS" if row["passed"] else "FAIL")
                         + (f" {k}/{len(per_seed)}" if len(per_seed) > 1 else "") + (" (marginal)" if row["marginal"] else ""))
        rows.append(row)
    return rows


def baseline_report(task, section: dict, baselines: dict, references: tuple[str, ...] = (),
                    shipped: dict | None = None) -> list[dict]:
    """Each baseline under the same limits. A reference (not trivial) that misses a limit the shipped file also
    misses gets both margins: how far the inputs seem to allow, and how far the file is."""
    out = []
    for name, metrics in baselines.items():
        rows = check.baseline_rows(task.limits, section, metrics)
        if not rows:
            continue
        entry = {"name": name, "checks": [_check_dict(r) for r in rows], "passes_all": all(r.passed for r in rows),
                 "passes_any": any(r.passed for r in rows), "reference": name in references}
        if entry["reference"] and shipped:
            entry["both_miss"] = [{"label": r.label, "unit": r.unit, "fmt": r.fmt, "reference_by": abs(r.measured - r.limit),
                                   "shipped_by": abs(shipped[r.metric] - r.limit)}
                                  for r in rows if not r.passed and r.metric in shipped
                                  and not check.passes(shipped[r.metric], r.op, r.limit)]
        out.append(entry)
    return out


# Where a seed's build came from: made by this task's own step, by the command's shared pool, or by an earlier command.
BUILT_HERE, BUILT_BY_POOL, FROM_CACHE = "built", "pool", "cache"


def run_task(ctx: Context, cons, task_name: str, recipe_path: Path | None = None, overrides: list[str] | None = None,
             use_cache: bool = True, latency: bool = True,
             artifact_dir: Path | None = None, seeds: int = 1, jobs: int = 1, split: str = "test",
             pool_built: set[str] = frozenset()) -> TaskOutcome:
    """Build the recipe with `seeds` seeds and measure every artifact on `split`.

    pool_built: the build keys this command's shared pool made before the versions measured (run_all), so that the
    record tells them apart from builds an earlier command left in the cache.

    split="test" reports (and ships the recipe seed's artifact); split="val" (a search trial) or "held-out" (a
    cross-validation fold) is for selection and never opens the test split."""
    task, section, recipe, path = plan.load_recipe(cons, task_name, recipe_path, overrides)
    fmt = recipe["package"]["format"]
    seed_list = seeds_of(recipe, seeds)
    seconds = {}
    t0 = time.perf_counter()
    data_fp = task.data_fingerprint(ctx, section, recipe)
    seconds["data"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    builds = build_seeds(ctx, task, section, recipe, data_fp, seed_list, use_cache, jobs)
    seconds["build (train + convert)"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    per_seed, shipped_m = [], None
    for seed, (build, cached, key) in zip(seed_list, builds):
        blob = package.pack(build.tflite, fmt)
        m, record = measure_artifact(ctx, task, section, with_seed(recipe, seed), blob, fmt, split, latency,
                                     counted_bytes=task.counted_size(section, build.info, fmt))
        source = BUILT_BY_POOL if cached and key in pool_built else FROM_CACHE if cached else BUILT_HERE
        record.update({"seed": seed, "shipped": seed == recipe["seed"], "build_key": key, "build_cached": cached,
                       "build_source": source,
                       "built_on": build.info.get("built_on"), "selected_epoch": build.info.get("selected_epoch")})
        per_seed.append(record)
        if shipped_m is None:
            shipped_m, shipped_build, shipped_blob = m, build, blob
        shown = [c for c in record["checks"] if latency or c["measured"] is not None]
        ctx.log(f"  seed {seed}: {progress_word(shown, latency)} — "
                + ", ".join(f"{report.short_label(c['label'])} {c['measured_text']}" for c in shown))
    seconds["measure"] = time.perf_counter() - t0

    checks = aggregate(task, section, per_seed)
    passed = all(s["passed"] for s in per_seed)
    shipped_m.rows.extend(task.build_rows(section, shipped_build.info))  # facts only the build knows
    if split == "test":
        shipped_m.rows.append(runtimes_row(shipped_build.tflite))
    missed = missed_by_seeds(per_seed, seed_list)
    if missed:
        shipped_m.sections.append(report.missed_section(missed, len(seed_list), split))
    # Package: the file a user would submit (the recipe seed's), and its sidecar.
    art_name = "model" + package.SUFFIX[fmt]
    sidecar = task.sidecar(ctx, section, recipe)
    sidecar.update({"artifact": art_name, "format": fmt, "sha256": per_seed[0]["artifact_sha256"],
                    "tflite_sha256": per_seed[0]["tflite_sha256"], "recipe": recipe.data, "constraints": cons.rel_path})
    files = {art_name: shipped_blob,
             "sidecar.json": atomic.json_text(sidecar).encode(),
             **shipped_m.files}
    if artifact_dir is not None:
        for name, blob in files.items():
            atomic.write_bytes(Path(artifact_dir) / name, blob)
    art = {"file": f"{task_name}/{art_name}", "sidecar": f"{task_name}/sidecar.json", "bytes": len(shipped_blob),
           "sha256": per_seed[0]["artifact_sha256"], "format": fmt, "sizes": package.sizes(shipped_build.tflite)}
    rep = {
        "task": task_name,
        "title": task.title,
        "split": split,
        "passed": passed,
        "seeds": per_seed,
        "seed_rule": f"PASS only when every one of the {len(seed_list)} seed(s) passes every limit"
                     if len(seed_list) > 1 else "one seed: the verdict says nothing about the seed spread (run with --seeds N)",
        "checks": checks,
        "baselines": baseline_report(task, section, shipped_m.baselines, shipped_m.references, per_seed[0]["metrics"]),
        "metrics": per_seed[0]["metrics"],
        "rows": shipped_m.rows,
        "sections": [list(x) for x in shipped_m.sections],
        "missed": missed,
        "files": sorted(f"{task_name}/{k}" for k in shipped_m.files),
        "details": shipped_m.details,
        "artifact": art,
        "recipe_path": rel(path),
        "recipe": recipe.data,
        "overrides": overrides or [],
        "recipe_summary": recipe_summary(recipe),
        "build": shipped_build.info,
        "build_cached": builds[0][1],
        "build_sources": {src: n for src in (BUILT_HERE, BUILT_BY_POOL, FROM_CACHE)
                          if (n := sum(r["build_source"] == src for r in per_seed))},
        "data": data_fp,
        "data_note": task.data_note(data_fp),
        "seconds": {k: round(v, 2) for k, v in seconds.items()},
        "commit": hostinfo.commit(),
        "finished_utc": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "host_line": hostinfo.host_line(),
    }
    shown = [c for c in checks if latency or any(v is not None for v in c["values"])]
    ctx.log(f"  {task_name}: {'PASS' if passed else progress_word(shown, latency)} — "
            + ", ".join(f"{report.short_label(c['label'])} "
                        f"{c['result'] if any(v is not None for v in c['values']) else 'not measured'}" for c in shown))
    return TaskOutcome(rep, passed, files)


# -- one version ----------------------------------------------------------------------------------

def _previous(final: Path) -> dict | None:
    try:
        return json.loads((final / "report.json").read_text())
    except (OSError, ValueError):
        return None


def run_version(ctx: Context, suite: str, version: str, tasks: list[str] | None = None,
                recipe_paths: dict[str, Path] | None = None, overrides: list[str] | None = None,
                out_dir: Path = RESULTS_DIR, use_cache: bool = True, seeds: int = 1, jobs: int = 1,
                constraints_dir: Path | None = None, pool_built: set[str] = frozenset()) -> dict:
    cons = constraints.load(suite, version, root=constraints_dir or constraints.CONSTRAINTS_DIR)
    wanted = [t for t in cons.tasks if not tasks or t in tasks]
    if not wanted:
        raise HarnessError(f"{cons.rel_path}: none of the requested tasks ({', '.join(tasks or [])}) is in this version")
    started = time.perf_counter()
    ctx.log(f"== {suite} version {version}: {', '.join(wanted)} ({cons.rel_path}), {seeds} seed(s)")
    final = Path(out_dir) / suite / f"version-{version}"
    outcomes, files = {}, {}
    for name in wanted:
        out = run_task(ctx, cons, name, (recipe_paths or {}).get(name), overrides, use_cache, seeds=seeds, jobs=jobs,
                       pool_built=pool_built)
        outcomes[name] = out.report
        files.update({f"{name}/{k}": v for k, v in out.files.items()})
    # Everything was measured: now write the whole set beside the old one, and swap.
    with publish.together(final) as staging:
        for name, blob in files.items():
            atomic.write_bytes(staging / name, blob)
        # A one-task run keeps the other tasks' last results (each keeps its own commit and date).
        previous = _previous(final)
        for old in (previous or {}).get("tasks", []):
            name = old.get("task")
            if name in cons.tasks and name not in outcomes and (final / name).is_dir():
                shutil.copytree(final / name, staging / name)
                outcomes[name] = old
        task_reports = [outcomes[t] for t in cons.tasks if t in outcomes]
        rep = {
            "suite": suite,
            "version": version,
            "constraints": {"path": cons.rel_path, "status": cons.data["status"], "status_note": cons.data["status_note"],
                            "academic_year": cons.data["academic_year"], "kilobyte_bytes": cons.data["kilobyte_bytes"]},
            "tasks": task_reports,
            "passed": all(t["passed"] for t in task_reports),
            "commit": hostinfo.commit(),
            "host": hostinfo.host(),
            "host_line": hostinfo.host_line(),
            "library_versions": hostinfo.versions(),
            "finished_utc": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "wall_seconds": round(time.perf_counter() - started, 2),
        }
        report.write_version(staging, rep)
    try:
        report_files.write_summaries(Path(out_dir), suite, log=ctx.log)
    except OSError as e:
        raise HarnessError(f"{e.filename or out_dir}: cannot write the summaries ({e.strerror or e})") from None
    ctx.log(f"   -> {rel(final / 'report.md')}")
    return rep
