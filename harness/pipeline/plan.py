"""What a run will build: checked before it builds anything, then built on one pool of workers.

A run over every suite trains for an hour; a missing dataset, a broken recipe file or a recipe key the data cannot
satisfy in its last version must stop it in seconds, with every problem named, not after the first versions' builds.
Built version by version, 5 seeds on 2 workers leave one worker idle while the fifth trains; built for the whole
plan at once, both stay busy until the last few builds.
"""
from __future__ import annotations

import time
from pathlib import Path

from harness.core import constraints, recipes
from harness.core.errors import HarnessError
from harness.core.task import Context, get as get_task
from harness.pipeline import builds


def load_recipe(cons, task_name: str, recipe_path: Path | None = None, overrides: list[str] | None = None):
    """(task, constraint section, recipe, recipe file) for one task of one version: the recipe validated, its
    package format one the version accepts."""
    task = get_task(task_name)
    section = cons.task(task_name)
    path = Path(recipe_path) if recipe_path else recipes.default_path(task, cons.suite, cons.version)
    if recipe_path and not path.is_file():
        raise HarnessError(f"{path}: no such recipe file")
    if not path.is_file():  # run takes --recipe TASK=FILE, cv and search --recipe FILE
        raise HarnessError(f"{path}: no recipe for {cons.suite} version {cons.version} ({task_name}); "
                           f"give one with --recipe")
    recipe = recipes.load(path, task, overrides)
    fmt = recipe["package"]["format"]
    if fmt not in section["size_formats"]:
        raise HarnessError(f"{path}: package.format {fmt!r} is not accepted by {cons.rel_path} "
                           f"(size_formats = {section['size_formats']})")
    return task, section, recipe, path


def check(ctx: Context, plan: list[tuple[str, str]], only_tasks: list[str] | None = None,
          recipe_paths: dict[str, Path] | None = None, overrides: list[str] | None = None,
          constraints_dir: Path | None = None) -> list[tuple]:
    """Every dataset and every recipe the planned versions need; raise one HarnessError naming all problems, else
    return (version label, task, section, recipe) per planned task.

    Data and each recipe's own keys are checked first (a recipe file needs no data to be read); a recipe's data
    checks (e.g. keyword names the corpus must have) need the data, so they run only when every dataset is there."""
    root = constraints_dir or constraints.CONSTRAINTS_DIR
    wanted = [(cons, name) for cons in (constraints.load(s, v, root=root) for s, v in plan)
              for name in cons.tasks if not only_tasks or name in only_tasks]
    problems: list[str] = []

    def attempt(fn, *args):
        try:
            return fn(*args)
        except HarnessError as e:
            if str(e) not in problems:
                problems.append(str(e))

    for cons, name in wanted:
        attempt(get_task(name).ensure_data, ctx, cons.task(name))
    data_missing = bool(problems)
    loaded = [attempt(load_recipe, cons, name, (recipe_paths or {}).get(name), overrides) for cons, name in wanted]
    if data_missing:
        raise HarnessError(" | ".join(problems))

    def recipe_and_data(cons, name, task, section, recipe, _path):
        try:
            task.check_recipe_data(ctx, section, recipe)
        except HarnessError as e:
            raise HarnessError(f"{recipe.path}: {e}") from None
        return f"{cons.suite}/{cons.version} {name}", task, section, recipe

    planned = [attempt(recipe_and_data, cons, name, *found) for (cons, name), found in zip(wanted, loaded) if found]
    if problems:
        raise HarnessError(" | ".join(problems))
    return planned


def build_all(ctx: Context, planned: list[tuple], seeds: int, jobs: int) -> tuple[list[str], float]:
    """Every build the checked plan needs that the cache lacks, `jobs` at a time on one pool; (keys built, seconds).
    The versions then find them in the cache (verified there) and only measure."""
    started = time.perf_counter()
    payloads, seen = [], set()
    for label, task, section, recipe in planned:
        data_fp = task.data_fingerprint(ctx, section, recipe)
        missing = []
        for seed in builds.seeds_of(recipe, seeds):
            key = builds.build_key(task, section, builds.with_seed(recipe, seed), data_fp)
            if key not in seen and builds.load_cached(key, ctx.log) is None:
                missing.append(builds.payload(ctx, task, section, recipe, seed, key, f"{label} seed {seed}"))
            seen.add(key)  # versions with the same build share it
        if missing and jobs > 1:
            task.prepare(ctx, section, recipe)  # fill the on-disk caches once, before the workers read them
        payloads += missing
    if len(payloads) < 2 or jobs < 2:
        return [], 0.0  # nothing to gain: the versions build it themselves
    ctx.log(f"building {len(payloads)} model(s) for the whole run, {jobs} at a time")
    builds.build_in_workers(ctx, payloads, jobs)
    return [p["key"] for p in payloads], time.perf_counter() - started
