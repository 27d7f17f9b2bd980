"""Command line: python -m harness {run,check,grade,search,cv,seed-reports,summarize,list} ..."""
from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path

from harness.arguments import AppendOnce, Parser, count, out_dir
from harness.core.errors import HarnessError


def _log(msg: str) -> None:
    print(msg, flush=True)


def _recipe_map(items: list[str]) -> dict[str, Path]:
    from harness.core import task as tasks

    out = {}
    for item in items or []:
        if "=" not in item:
            raise HarnessError(f"--recipe {item!r}: expected TASK=FILE, e.g. mytask=my.toml")
        task, path = item.split("=", 1)
        task = task.strip()
        if task not in tasks.names():  # a misspelt task would otherwise run the default recipe silently
            raise HarnessError(f"--recipe {item!r}: no task {task!r} (tasks: {', '.join(tasks.names())})")
        out[task] = Path(path)
    return out


def _one_recipe(value: str | None, task: str) -> Path | None:
    """`--recipe FILE` of a one-task command; `TASK=FILE`, as `run` takes it, is accepted for that task."""
    from harness.core import task as tasks

    name, _, path = (value or "").partition("=")
    if path and name.strip() in tasks.names():
        if name.strip() != task:
            raise HarnessError(f"--recipe {value!r}: this command runs the task {task!r}, not {name.strip()!r}")
        return Path(path)
    return Path(value) if value else None


def _context(args):
    from harness.core import task as tasks
    from harness.core.task import Context
    from harness.toolkit import datasets

    options = {}
    for name in tasks.names():
        t = tasks.get(name)
        for flag, kw in t.cli_options + t.check_options + (("--kernels", {}),):
            dest = kw.get("dest") or flag.lstrip("-").replace("-", "_")
            if getattr(args, dest, None) is not None:
                options[dest] = getattr(args, dest)
    return Context(data_dir=datasets.resolve_data_dir(args.data_dir), log=_log,
                   use_cache=not getattr(args, "no_cache", False), options=options)


def _task_options(p: argparse.ArgumentParser, check: bool = False) -> None:
    """Each registered task's own command-line options (the harness knows none of them by name)."""
    from harness.core import task as tasks
    from harness.toolkit.measure.interpreter import KERNELS

    p.add_argument("--kernels", choices=KERNELS, help="interpreter kernels for accuracy (default: LiteRT's default; "
                   "reference: the builtin reference kernels)")
    seen = set()
    for name in tasks.names():
        t = tasks.get(name)
        for flag, kw in t.cli_options + (t.check_options if check else ()):
            if flag not in seen:
                seen.add(flag)
                if "help" in kw:  # argparse %-formats help; a task writes plain text (°C/%RH)
                    kw = {**kw, "help": kw["help"].replace("%", "%%")}
                p.add_argument(flag, **kw)


def cmd_run(args) -> int:
    from harness.core import constraints
    from harness.pipeline import run
    from harness.pipeline.run_all import run_plan

    suites = constraints.suites() if args.suite == "all" else [args.suite]
    plan = [(suite, v) for suite in suites
            for v in (constraints.versions(suite) if (args.all or not args.version) else args.version)]
    if args.task:  # versions without any requested task are skipped, not an error
        plan = [(s_, v) for s_, v in plan if set(args.task) & set(constraints.load(s_, v).tasks)]
        if not plan:
            raise HarnessError(f"no version of {args.suite} has the task(s) {', '.join(args.task)}")
    started, started_utc = time.perf_counter(), run.utc_now()
    res = run_plan(_context(args), plan, args.task, _recipe_map(args.recipe), args.set, out_dir=Path(args.out),
                   use_cache=not args.no_cache, seeds=args.seeds, jobs=args.jobs)
    _log("stage totals: " + ", ".join(f"{k} {s:.1f} s" for k, s in res["seconds"].items()))
    wall = time.perf_counter() - started
    record = run.record_run(Path(args.out), {
        "command": "python -m harness " + shlex.join(args.argv), "suites": suites, "every_suite": args.suite == "all",
        "every_version": bool(args.all or not args.version), "versions": [f"{s_}/{v}" for s_, v in plan],
        "tasks": args.task, "seeds": args.seeds, "jobs": args.jobs, "overrides": args.set, "recipes": args.recipe,
        "use_cache": not args.no_cache, "started_utc": started_utc, "wall_seconds": round(wall, 1),
        "stage_seconds": {k: round(s_, 1) for k, s_ in res["seconds"].items()},
        **{k: res[k] for k in ("builds", "builds_cached", "builds_shared", "failed")}})
    _log(f"done in {wall:.1f} s ({res['builds_cached']} of {res['builds']} build(s) from an earlier run's cache; "
         f"record {record}); " + (f"FAIL: {', '.join(res['failed'])}" if res["failed"] else "every version PASS"))
    return 1 if res["failed"] and args.strict else 0


def cmd_check(args) -> int:
    from harness.pipeline import check_file

    ctx = _context(args)
    rep = check_file.check_file(ctx, Path(args.model), args.suite, args.version, args.task, out=Path(args.out))
    print(check_file.markdown(rep), end="")
    if rep.get("report"):
        _log(f"-> {rep['report']}")
    return 0 if rep["passed"] or not args.strict else 1


def cmd_grade(args) -> int:
    from harness.core.check import marginal_pass
    from harness.pipeline import grade

    res = grade.grade(_context(args), Path(args.folder), args.suite, args.version, Path(args.out), timeout_s=args.timeout)
    for b in res["boards"]:
        passed = [r for r in b["rows"] if r["rep"] and r["rep"]["passed"]]
        marginal = sum(1 for r in passed if marginal_pass(r["rep"]))
        _log(f"version {b['version']} ({b['task']}): {len(passed)}/{len(b['rows'])} submission(s) pass"
             + (f" ({marginal} marginal)" if marginal else ""))
    _log(f"-> {res['folder']}/leaderboard-*.md")
    return 0


def cmd_bundle(args) -> int:
    from harness.pipeline import device

    folder, zpath = device.bundle(Path(args.out), args.suite, args.version, args.task)
    _log(f"-> {folder}/ and {zpath}: copy to the device, then follow its README.md")
    return 0


def cmd_import_latency(args) -> int:
    from harness.pipeline import device

    res = device.import_latency(Path(args.file), Path(args.out))
    r = res["row"]
    _log(f"{r['label']}: {r['measured_text']} (limit {r['limit_text']}) {r['result']} -> {res['report']}")
    return 0


def cmd_summarize(args) -> int:
    from harness.pipeline import report_files

    out = Path(args.out)
    suites = sorted({r["suite"] for r in report_files.load_reports(out)})
    if not suites:
        raise HarnessError(f"{out}: no version reports to summarize")
    pages = report_files.rerender(out)
    for suite in suites:
        report_files.write_summaries(out, suite)
    _log(f"-> {len(pages)} version page(s) and {out / 'summary.md'} ({len(suites)} suite(s))")
    return 0


def cmd_list(args) -> int:
    from harness.core import constraints

    for suite in constraints.suites():
        for v in constraints.versions(suite):
            c = constraints.load(suite, v)
            _log(f"{suite} {v}: {', '.join(c.tasks)}" + (" (reconstructed)" if c.reconstructed else ""))
    return 0


def cmd_search(args) -> int:
    from harness.pipeline import search

    task = _only_task(args.suite, args.version, args.task)
    cfg = search.SearchConfig(
        suite=args.suite, version=args.version, task=task, trials=args.trials,
        space=Path(args.space) if args.space else None, storage=args.storage, study=args.study,
        base_recipe=_one_recipe(args.recipe, task), out_dir=Path(args.out), seed=args.seed,
        sampler=args.sampler, extra_overrides=tuple(args.set or ()), seeds=args.seeds,
    )
    res = search.search(_context(args), cfg)
    _log(f"search: {res['complete']} complete trial(s), {res['feasible']} passing; table {res['markdown']}")
    return 0


def _only_task(suite: str, version: str, task: str | None) -> str:
    from harness.core import constraints

    if task is not None:
        return task
    tasks = constraints.load(suite, version).tasks
    if len(tasks) != 1:
        raise HarnessError(f"{suite} version {version} has several tasks ({', '.join(tasks)}): pass --task")
    return tasks[0]


def cmd_cv(args) -> int:
    from harness.pipeline import crossval

    task = _only_task(args.suite, args.version, args.task)
    rep = crossval.cross_validate(_context(args), args.suite, args.version, task,
                                  args.folds, recipe_path=_one_recipe(args.recipe, task),
                                  overrides=args.set, jobs=args.jobs, out_dir=Path(args.out), seeds=args.seeds)
    print(rep["markdown"], flush=True)
    _log(f"cross-validation table: {rep['folder']}/report.md")
    return 0


def cmd_seed_reports(args) -> int:
    from harness.pipeline import seed_reports

    path = seed_reports.reproduce(_context(args), only=args.only, out_dir=Path(args.out))
    _log(f"seed reproduction table: {path}")
    return 0


def _one_version(p: argparse.ArgumentParser) -> None:
    p.add_argument("--version", required=True)
    p.add_argument("--task", help="the task (default: the version's only task)")


def parser() -> argparse.ArgumentParser:
    results = str(Path(__file__).resolve().parents[1] / "results")
    common = Parser(add_help=False)  # options every command shares
    common.add_argument("--suite", default="ml4iot-2022", help="suite name (constraints/<suite>/)")
    common.add_argument("--data-dir", help="data folder (default: $ML4IOT_DATA_DIR, else data/ in the project folder)")
    common.add_argument("--out", type=out_dir, default=results, help="results folder (default: results/)")
    p = Parser(prog="python -m harness", description="Train, shrink, convert and measure tiny models against versioned constraints.")
    sub = p.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run", parents=[common], help="run versions of a suite; write results/<suite>/version-<v>/report.md")
    r.add_argument("--version", action=AppendOnce, help="version letter; repeatable; default: all versions (--suite all: every suite)")
    r.add_argument("--all", action="store_true", help="every version of the suite")
    r.add_argument("--task", action=AppendOnce, help="only these tasks (others keep their last results)")
    r.add_argument("--seeds", type=count, default=1, help="build the recipe with N seeds (the recipe's seed and the next "
                   "N-1); the verdict needs every seed to pass (default 1)")
    r.add_argument("--jobs", type=count, default=1, help="seeds built in parallel worker processes (default 1)")
    r.add_argument("--recipe", action="append", metavar="TASK=FILE", help="use this recipe file for a task")
    r.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a recipe key, e.g. train.epochs=2")
    r.add_argument("--no-cache", action="store_true", help="read no cache (builds and features); what is built replaces the cached entries")
    r.add_argument("--strict", action="store_true", help="exit 1 when a version fails its constraints")
    _task_options(r)
    r.set_defaults(fn=cmd_run)
    s = sub.add_parser("search", parents=[common], help="search recipes against one constraint file (Optuna, validation only)")
    _one_version(s)
    s.add_argument("--seeds", type=count, default=2, help="seeds per trial; the objective is their mean validation metric")
    s.add_argument("--trials", type=count, default=20, help="trials run by this worker")
    s.add_argument("--space", help="search-space TOML (default: tasks/<task>/search_space.toml)")
    s.add_argument("--storage", help="journal file path or database URL (postgresql://...); default: results/<suite>/search-<v>-<task>.journal")
    s.add_argument("--study", help="study name (default: <suite>-<version>-<task>)")
    s.add_argument("--recipe", metavar="FILE", help="base recipe (default: the version's recipe; TASK=FILE as for run also works)")
    s.add_argument("--set", action="append", metavar="KEY=VALUE", help="fixed override applied to every trial (not a key the space searches)")
    s.add_argument("--seed", type=int, default=0, help="sampler seed: the same seed, storage and worker count give the same trials")
    s.add_argument("--sampler", choices=["tpe", "nsga2"], default="tpe")
    _task_options(s)
    s.set_defaults(fn=cmd_search)
    cv = sub.add_parser("cv", parents=[common], help="cross-validate a recipe over train + val (K folds, test split sealed)")
    _one_version(cv)
    cv.add_argument("--folds", type=count, default=5, help="number of folds (default 5)")
    cv.add_argument("--seeds", type=count, default=1, help="build every fold with N seeds; the table gives each seed "
                    "set's mean beside the overall one (default 1)")
    cv.add_argument("--jobs", type=count, default=1, help="fold builds run in parallel worker processes (default 1)")
    cv.add_argument("--recipe", metavar="FILE", help="recipe file (default: the version's recipe; TASK=FILE as for run also works)")
    cv.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a recipe key, e.g. model.width=0.5")
    cv.add_argument("--no-cache", action="store_true", help="read no cache (builds and features); what is built replaces the cached entries")
    _task_options(cv)
    cv.set_defaults(fn=cmd_cv)
    sd = sub.add_parser("seed-reports", parents=[common], help="reproduce the seed reports' configurations (tasks/seed_reports.toml) and compare")
    sd.add_argument("--only", action="append", metavar="ID", help="only these seed ids (the table keeps the other rows)")
    _task_options(sd)
    sd.set_defaults(fn=cmd_seed_reports)
    c = sub.add_parser("check", parents=[common], help="measure your own model file against a version's limits (no training)")
    c.add_argument("model", help="a .tflite, .tflite.zlib or .tflite.zip file")
    _one_version(c)
    c.add_argument("--strict", action="store_true", help="exit 1 when the file fails a limit")
    _task_options(c, check=True)
    c.set_defaults(fn=cmd_check, no_cache=False)
    g = sub.add_parser("grade", parents=[common], help="check every submission of a folder (one sub-folder per team) "
                       "and write a leaderboard per version")
    g.add_argument("folder", help="folder of team folders holding files named <team>_<task>_<version>.tflite[.zlib|.zip]")
    g.add_argument("--version", action=AppendOnce, help="only these versions (default: every version of the suite)")
    g.add_argument("--timeout", type=float, default=600.0, help="seconds one submission may take before it FAILs")
    _task_options(g, check=True)
    g.set_defaults(fn=cmd_grade, no_cache=False)
    b = sub.add_parser("bundle", parents=[common], help="a folder + zip to measure a version's artifact on the device "
                       "(numpy and a TFLite interpreter only)")
    _one_version(b)
    b.set_defaults(fn=cmd_bundle)
    il = sub.add_parser("import-latency", parents=[common], help="add a device's JSON (from a bundle) to its version's tables")
    il.add_argument("file", help="device-latency-<device>.json written by the bundle's script")
    il.set_defaults(fn=cmd_import_latency)
    sm = sub.add_parser("summarize", help="rewrite the version pages and summaries of a results folder from its report.json files")
    sm.add_argument("--out", type=out_dir, default=results, help="results folder (default: results/)")
    sm.set_defaults(fn=cmd_summarize)
    ls = sub.add_parser("list", help="list suites and versions")
    ls.set_defaults(fn=cmd_list)
    return p


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parser().parse_args(argv)
    args.argv = argv  # for the run record
    from harness.toolkit import hostinfo

    hostinfo.commit()  # before any work: reports name the code that started, not HEAD at the end
    from harness.toolkit.tfsetup import native_stderr_silenced

    with native_stderr_silenced():
        return _run_command(args)


def _run_command(args) -> int:
    """The command, with every foreseen failure as one line on stderr and its exit code."""
    try:
        return args.fn(args)
    except HarnessError as e:
        print(f"error: {e}", file=sys.stderr, flush=True)
        return 2
    except OSError as e:  # a file-system or network failure the code did not foresee: still one line
        where = e.filename or "I/O"
        print(f"error: {where}: {e.strerror or e}", file=sys.stderr, flush=True)
        return 2
    except KeyboardInterrupt:
        print("interrupted: finished files are kept, nothing half-written", file=sys.stderr)
        return 130
