"""Cross-validation of one recipe over train + val (the test split sealed): a selection signal that a ~200-item
validation split cannot give.

Fold i (of K) holds out its part of train + val (the task decides how items are grouped, see harness.core.folds),
trains on the rest with seed recipe-seed + i, choosing epochs on a validation part of the rest, and measures the
deployed file on the held-out part, which chooses nothing. The table gives
each fold's figures, mean ± sd over folds, and how many folds meet each limit; comparing recipes on the same folds
is a paired comparison. The figures are not test figures and the table says so.

With seeds=N every fold is built N times (seed set r trains fold i with recipe-seed + i + r·K, so set 0 is the
single-seed cv). One 5-fold cv moves by a few held-out misses when only the training seeds change, as much as the
gains a recipe is chosen on; the per-set means show that spread, and the overall mean averages it down.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

from tabulate import tabulate

from harness.core import constraints, recipes, stats
from harness.core.errors import HarnessError
from harness.core.paths import rel
from harness.core.task import Context
from harness.core.task import get as get_task
from harness.pipeline import plan, publish, report, workers
from harness.pipeline.run import run_task
from harness.toolkit import atomic, hostinfo


def _one_fold(payload: dict) -> dict:
    """One fold: build with its seed on the kept part, measure on the held-out part (runs in-process or spawned)."""
    import sys

    from harness.core.task import register

    register(payload["task"], payload["task_module"])  # a spawned worker knows only the tasks package's own
    ctx = Context(data_dir=Path(payload["data_dir"]), options=payload["options"], use_cache=payload["use_cache"],
                  sealed_test=True, fold=(payload["fold"], payload["folds"]),
                  log=(lambda m: print(f"[fold {payload['fold'] + 1}] {m.strip()}", flush=True, file=sys.stdout))
                  if payload["verbose"] else (lambda m: None))
    cons = constraints.load_file(payload["constraints"])
    out = run_task(ctx, cons, payload["task"], recipe_path=payload["recipe_path"],
                   overrides=payload["overrides"] + [f"seed={payload['seed']}"], use_cache=payload["use_cache"],
                   latency=False, seeds=1, jobs=1, split="held-out")
    rep = out.report
    seed = rep["seeds"][0]
    checks = [c for c in seed["checks"] if c["measured"] is not None]  # latency: not measured (no fold changes it)
    return {"fold": payload["fold"], "seed_set": payload["seed_set"], "seed": payload["seed"], "metrics": seed["metrics"], "checks": checks,
            "passed": all(c["result"] == "PASS" for c in checks), "tflite_sha256": seed["tflite_sha256"], "data_note": rep["data_note"],
            "recipe_path": rep["recipe_path"], "recipe_summary": rep["recipe_summary"], "misses": seed.get("misses", {})}


def cross_validate(ctx: Context, suite: str, version: str, task_name: str, folds: int, recipe_path: Path | None = None,
                   overrides: list[str] | None = None, jobs: int = 1, out_dir: Path | None = None,
                   constraints_dir: Path = constraints.CONSTRAINTS_DIR, seeds: int = 1) -> dict:
    """Run every fold (seeds times, with other seeds) and write <out>/<suite>/cv/<version>-<task>-<label>/report.{md,json} (together or not at all)."""
    task = get_task(task_name)
    if not task.supports_folds:
        raise HarnessError(f"task {task_name!r} does not define cross-validation folds; use `search` (validation split)")
    if folds < 2:
        raise HarnessError(f"--folds {folds}: cross-validation needs at least 2 folds")
    if seeds < 1:
        raise HarnessError(f"--seeds {seeds}: cross-validation needs at least 1 seed per fold")
    cons = constraints.load(suite, version, constraints_dir)
    if task_name not in cons.tasks:
        raise HarnessError(f"{cons.rel_path} has no [{task_name}] table")
    path = Path(recipe_path) if recipe_path else recipes.default_path(task, suite, version)
    # the checks a run makes before its first build: data, recipe and overrides, package format, the recipe's data
    (_, _, _, recipe), = plan.check(ctx, [(suite, version)], [task_name], {task_name: path}, overrides, constraints_dir)
    overrides = list(overrides or [])
    payloads = [{"constraints": str(cons.path), "task": task_name, "task_module": type(task).__module__, "recipe_path": str(path), "overrides": overrides,
                 "fold": i, "folds": folds, "seed_set": r, "seed": recipe["seed"] + i + r * folds,
                 "data_dir": str(ctx.data_dir), "options": ctx.options, "use_cache": ctx.use_cache, "verbose": jobs > 1}
                for i in range(folds) for r in range(seeds)]
    jobs = min(jobs, len(payloads))
    ctx.log(f"cross-validation: {folds} folds of train + val" + (f", {seeds} seeds each" if seeds > 1 else "")
            + f", {jobs} at a time; the test split is sealed")
    rows = []
    if jobs > 1:
        with workers.pool(jobs) as pool:
            rows = list(pool.map(_one_fold, payloads))
    else:
        for p in payloads:
            ctx.log(f"  fold {p['fold'] + 1}/{folds} (seed {p['seed']})")
            rows.append(_one_fold(p))
    summary = summarize(rows, seeds)
    # seeds=1 keeps the folder name it always had, so earlier single-seed tables stay comparable side by side
    label = hashlib.sha256(json.dumps([rel(path), overrides] + ([seeds] if seeds > 1 else [])).encode()).hexdigest()[:8]
    rep = {"suite": suite, "version": version, "task": task_name, "folds": folds, "seeds": seeds, "recipe_path": rel(path),
           "overrides": overrides, "recipe_summary": rows[0]["recipe_summary"], "rows": rows, "summary": summary,
           "commit": hostinfo.commit(), "host_line": hostinfo.host_line()}
    md = markdown(rep)
    if out_dir is not None:
        final = Path(out_dir) / suite / "cv" / f"{version}-{task_name}-{label}"
        with publish.together(final, "report files") as staging:
            atomic.write_json(staging / "report.json", rep)
            atomic.write_text(staging / "report.md", md)
        rep["folder"] = str(final)
    rep["markdown"] = md
    return rep


def summarize(rows: list[dict], seeds: int = 1) -> list[dict]:
    """Per checked metric: the limit, spread over every fold build, how many meet it, and each seed set's mean over
    its folds (what one single-seed cv would have reported)."""
    out = []
    for j, c in enumerate(rows[0]["checks"]):
        values = [r["checks"][j]["measured"] for r in rows]
        set_means = [stats.spread([r["checks"][j]["measured"] for r in rows if r.get("seed_set", 0) == s])["mean"]
                     for s in range(seeds)]
        out.append({"label": c["label"], "limit_text": c["limit_text"], "fmt": c["fmt"], "unit": c["unit"],
                    "spread": stats.spread(values), "k_pass": sum(r["checks"][j]["result"] == "PASS" for r in rows),
                    "n": len(rows), "seed_set_means": set_means})
    return out


def missed_items(rows: list[dict]) -> list[tuple[str, int, int, str]]:
    """Every held-out item some build got wrong: (item, fold, how many of the fold's builds missed it, what they
    heard). Each item is held out by exactly one fold, so with one seed this lists every miss once."""
    by_item: dict[tuple[str, int], list[str]] = {}
    for r in rows:
        for item, what in r.get("misses", {}).items():
            by_item.setdefault((item, r["fold"] + 1), []).append(what)
    return sorted((item, fold, len(whats), "; ".join(sorted(set(whats)))) for (item, fold), whats in by_item.items())


def markdown(rep: dict) -> str:
    seeds = rep.get("seeds", 1)
    resampled = (f"; every fold is built {seeds} times, seed set r training with seed (recipe seed + i + "
                 f"r × {rep['folds']})" if seeds > 1 else "")
    lines = [f"# Cross-validation: {rep['suite']} version {rep['version']}, {rep['task']}", "",
             f"- Recipe: `{rep['recipe_path']}`" + (f" with {', '.join(f'`{o}`' for o in rep['overrides'])}"
                                                    if rep["overrides"] else "") + f" — {rep['recipe_summary']}.",
             f"- {rep['folds']} folds over train + val; fold i trains with seed (recipe seed + i) and is measured on "
             f"its held-out part{resampled}. **These are not test figures**: the test split was sealed. Latency is "
             "not measured (no fold changes it); \"All limits\" means every measured limit.",
             f"- Commit `{rep['commit']}`; {rep['host_line']}.", ""]
    head = ["Fold", "Seed", *[report.short_label(c["label"]) for c in rep["rows"][0]["checks"]],
            "All limits"]
    body = [[r["fold"] + 1, r["seed"], *[c["measured_text"] for c in r["checks"]], "PASS" if r["passed"] else "FAIL"]
            for r in rep["rows"]]
    lines += [tabulate(body, head, tablefmt="github"), ""]
    notes = {r["fold"]: r["data_note"] for r in rep["rows"] if r["data_note"]}
    lines += [f"- Fold {fold + 1} data: {note}" for fold, note in sorted(notes.items())] + [""]
    head = ["Metric", "Limit", "Over " + (f"{len(rep['rows'])} fold builds" if seeds > 1 else "folds")
            + ": mean ± sd [min, max]", *(["Each seed set: mean over folds"] if seeds > 1 else []),
            "Builds meeting it" if seeds > 1 else "Folds meeting it"]
    body = []
    for s in rep["summary"]:
        sp, f = s["spread"], s["fmt"]
        unit = f" {s['unit']}" if s["unit"] else ""
        sd = f" ± {f.format(sp['sd'])}" if sp["sd"] is not None else ""
        per_set = [", ".join(f.format(m) for m in s["seed_set_means"]) + unit] if seeds > 1 else []
        body.append([s["label"].replace(", test split", ", held-out fold"), s["limit_text"],
                     f"{f.format(sp['mean'])}{sd} [{f.format(sp['min'])}, {f.format(sp['max'])}]{unit}",
                     *per_set, f"{s['k_pass']}/{s['n']}"])
    lines += [tabulate(body, head, tablefmt="github", disable_numparse=True), ""]
    missed = missed_items(rep["rows"])
    if missed:  # every train + val item is held out once: with one seed this is every miss, once each
        show = 40
        total = sum(k for _, _, k, _ in missed)
        title = (f"## Held-out items missed ({len(missed)})" if seeds == 1 else
                 f"## Held-out items missed ({len(missed)} items; {total} misses over {seeds} seed sets, "
                 f"{total / seeds:.1f} per set)")
        lines += [title, "",
                  "Each item is held out by exactly one fold. Train + val items only: looking at them is allowed"
                  + (f"; the first {show} by name, the JSON has all." if len(missed) > show else "."), "",
                  tabulate([[f"`{i}`", f, *([f"{k}/{seeds}"] if seeds > 1 else []), w] for i, f, k, w in missed[:show]],
                           ["Item", "Fold", *(["Seeds missing it"] if seeds > 1 else []), "True → predicted"],
                           tablefmt="github", disable_numparse=True), ""]
    return "\n".join(lines)
