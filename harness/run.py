"""The run loop: constraint file + recipe -> build (cached) -> package -> measure -> check -> report."""
from __future__ import annotations

import gc
import hashlib
import json
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from harness import atomic, check, constraints, datasets, hostinfo, package, recipes, report
from harness.errors import HarnessError
from harness.task import Build, Context
from harness.task import get as get_task
from harness.tfsetup import keras, quiet_stderr, seed_everything

ROOT = Path(__file__).resolve().parents[1]
RESULTS_DIR = ROOT / "results"


def code_fingerprint(task_name: str) -> str:
    """Hash of the code a build depends on: a code change invalidates cached builds."""
    h = hashlib.sha256()
    for folder in (ROOT / "harness", ROOT / "tasks" / task_name):
        for p in sorted(folder.rglob("*.py")):
            h.update(str(p.relative_to(ROOT)).encode())
            h.update(p.read_bytes())
    return h.hexdigest()[:16]


BUILD_SECTION_KEYS = ("labels", "split", "input_steps", "output_steps")  # what a constraint section feeds the build


def build_key(task_name: str, section: dict, recipe, data_fp: dict) -> str:
    """Only what shapes the .tflite: limits and the submitted format (packaging) do not, so versions that
    differ only there share one build."""
    payload = {"task": task_name, "section": {k: section[k] for k in BUILD_SECTION_KEYS if k in section},
               "recipe": {k: v for k, v in recipe.data.items() if k not in ("package", "description")}, "data": data_fp,
               "code": code_fingerprint(task_name), "versions": hostinfo.versions()}
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:20]


def fresh_session(seed: int) -> None:
    """Reset Keras' auto-numbered names (they are written into the .tflite) and all seeds."""
    keras().backend.clear_session()
    seed_everything(seed)


def cached_build(ctx: Context, task, section, recipe, data_fp, use_cache: bool) -> tuple[Build, bool, str]:
    key = build_key(task.name, section, recipe, data_fp)
    folder = datasets.cache_dir() / "builds" / key
    model_path, info_path = folder / "model.tflite", folder / "build.json"
    if use_cache and model_path.is_file() and info_path.is_file():
        ctx.log(f"  build {key}: reused from cache ({model_path})")
        return Build(model_path.read_bytes(), json.loads(info_path.read_text())), True, key
    with quiet_stderr():  # TensorFlow's runtime writes C++ log lines straight to fd 2
        fresh_session(recipe["seed"])
        b = task.build(ctx, section, recipe)
        keras().backend.clear_session()  # drop the training graph and its input pipeline before measuring
        gc.collect()
    atomic.write_bytes(model_path, b.tflite)
    atomic.write_json(info_path, b.info)  # written last: its presence marks a complete build
    return b, False, key


def recipe_summary(recipe) -> str:
    m = ", ".join(f"{k}={v}" for k, v in recipe["model"].items() if k != "name")
    p = recipe["prune"]
    prune = f"pruning {p['initial_sparsity']:.2f}→{p['final_sparsity']:.2f}" if p["final_sparsity"] else "no pruning"
    q = recipe["quantize"]
    quant = q["mode"] + (f" + QAT {q['qat_epochs']} ep" if q["qat_epochs"] else "")
    t = recipe["train"]
    return (f"{recipe['model']['name']}({m}), {prune}, PTQ {quant}, {t['epochs']} epochs × batch {t['batch_size']}, "
            f"seed {recipe['seed']}, package {recipe['package']['format']}")


@dataclass
class TaskOutcome:
    report: dict
    passed: bool


def run_task(ctx: Context, cons, task_name: str, recipe_path: Path | None = None, overrides: list[str] | None = None,
             out_dir: Path = RESULTS_DIR, use_cache: bool = True, latency: bool = True,
             artifact_dir: Path | None = None) -> TaskOutcome:
    task = get_task(task_name)
    section = cons.task(task_name)
    path = Path(recipe_path) if recipe_path else recipes.default_path(task, cons.suite, cons.version)
    if not path.is_file():
        raise HarnessError(f"{path}: no recipe for {cons.suite} version {cons.version} ({task_name}); pass --recipe {task_name}=FILE")
    recipe = recipes.load(path, task, overrides)
    fmt = recipe["package"]["format"]
    if fmt not in section["size_formats"]:
        raise HarnessError(f"{path}: package.format {fmt!r} is not accepted by {cons.rel_path} "
                           f"(size_formats = {section['size_formats']})")
    seconds = {}
    t0 = time.perf_counter()
    data_fp = task.data_fingerprint(ctx, section, recipe)
    seconds["data"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    build, was_cached, key = cached_build(ctx, task, section, recipe, data_fp, use_cache)
    seconds["build (train + convert)"] = time.perf_counter() - t0

    # Package: write the file a user would submit, then measure *that file*.
    t0 = time.perf_counter()
    art_dir = artifact_dir or (out_dir / cons.suite / f"version-{cons.version}" / task_name)
    blob = package.pack(build.tflite, fmt)
    art_path = atomic.write_bytes(art_dir / ("model" + package.SUFFIX[fmt]), blob)
    sidecar = task.sidecar(ctx, section, recipe)
    sidecar.update({"artifact": art_path.name, "format": fmt, "sha256": hashlib.sha256(blob).hexdigest(),
                    "tflite_sha256": hashlib.sha256(build.tflite).hexdigest(), "recipe": recipe.data,
                    "constraints": cons.rel_path})
    side_path = atomic.write_json(art_dir / "sidecar.json", sidecar)
    seconds["package"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    shipped = package.unpack(art_path.read_bytes(), fmt, str(art_path))
    with quiet_stderr():
        m = task.measure(ctx, section, recipe, shipped, latency=latency)
    m.metrics["size_bytes"] = float(len(blob))
    seconds["measure"] = time.perf_counter() - t0

    rows = check.evaluate(task.limits, section, m.metrics)
    passed = check.verdict(rows)

    def rel(p: Path) -> str:
        try:
            return str(p.resolve().relative_to(ROOT))
        except ValueError:
            return str(p)

    rep = {
        "task": task_name,
        "title": task.title,
        "passed": passed,
        "checks": [{"label": r.label, "limit": r.limit, "measured": r.measured, "unit": r.unit, "op": r.op,
                    "passed": r.passed, "limit_text": r.limit_text(), "measured_text": r.measured_text(),
                    "result": r.result_text()} for r in rows],
        "metrics": m.metrics,
        "rows": m.rows,
        "details": m.details,
        "artifact": {"path": rel(art_path), "bytes": len(blob), "sha256": sidecar["sha256"], "format": fmt,
                     "sizes": package.sizes(build.tflite), "sidecar": rel(side_path)},
        "recipe_path": rel(path),
        "recipe": recipe.data,
        "overrides": overrides or [],
        "recipe_summary": recipe_summary(recipe),
        "build": build.info,
        "build_key": key,
        "build_cached": was_cached,
        "data": data_fp,
        "data_note": getattr(task, "data_note", lambda fp: "")(data_fp),
        "seconds": {k: round(v, 2) for k, v in seconds.items()},
    }
    verdicts = ", ".join(f"{r.label.split(',')[0]} {r.measured_text()} {r.result_text()}" for r in rows)
    ctx.log(f"  {task_name}: {'PASS' if passed else 'FAIL'} — {verdicts}")
    return TaskOutcome(rep, passed)


def run_version(ctx: Context, suite: str, version: str, tasks: list[str] | None = None,
                recipe_paths: dict[str, Path] | None = None, overrides: list[str] | None = None,
                out_dir: Path = RESULTS_DIR, use_cache: bool = True) -> dict:
    cons = constraints.load(suite, version)
    wanted = [t for t in cons.tasks if not tasks or t in tasks]
    if not wanted:
        raise HarnessError(f"{cons.rel_path}: none of the requested tasks ({', '.join(tasks or [])}) is in this version")
    started = time.perf_counter()
    ctx.log(f"== {suite} version {version}: {', '.join(wanted)} ({cons.rel_path})")
    outcomes = []
    for name in wanted:
        outcomes.append(run_task(ctx, cons, name, (recipe_paths or {}).get(name), overrides, out_dir, use_cache).report)
    rep = {
        "suite": suite,
        "version": version,
        "constraints": {"path": cons.rel_path, "status": cons.data["status"], "status_note": cons.data["status_note"],
                        "academic_year": cons.data["academic_year"], "kilobyte_bytes": cons.data["kilobyte_bytes"]},
        "tasks": outcomes,
        "passed": all(t["passed"] for t in outcomes),
        "commit": hostinfo.commit(),
        "host": hostinfo.host(),
        "host_line": hostinfo.host_line(),
        "library_versions": hostinfo.versions(),
        "finished_utc": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "wall_seconds": round(time.perf_counter() - started, 2),
    }
    md = report.write_version(out_dir, rep)
    report.write_summaries(out_dir, suite)
    ctx.log(f"   -> {md}")
    return rep
