"""A run over several versions: check the whole plan, build it on one pool, then let each version measure.

What the command line's `run` does between parsing its flags and writing the run record; the counts it returns are
the record's (how many builds an earlier run's cache held, how many two versions shared).
"""
from __future__ import annotations

from pathlib import Path

from harness.core.task import Context
from harness.pipeline import builds, plan, run


def run_plan(ctx: Context, versions: list[tuple[str, str]], tasks: list[str] | None = None,
             recipe_paths: dict[str, Path] | None = None, overrides: list[str] | None = None,
             out_dir: Path = run.RESULTS_DIR, use_cache: bool = True, seeds: int = 1, jobs: int = 1) -> dict:
    """Every (suite, version) of the plan, checked first (one HarnessError naming every problem, nothing built),
    then built and reported; returns the failed versions, per-stage seconds and the build counts."""
    cached_before = builds.cached_keys()  # a build another version of this run made is not "from the cache"
    planned = plan.check(ctx, versions, tasks, recipe_paths, overrides)
    totals: dict[str, float] = {}
    pool_built: set[str] = set()
    if use_cache:  # every missing build first, on one pool; the versions then measure
        built, seconds = plan.build_all(ctx, planned, seeds, jobs)
        pool_built.update(built)
        if built:
            ctx.log(f"   {len(built)} build(s) for the whole run: {seconds:.1f} s")
            totals["build (train + convert)"] = seconds
    failed, used = [], []
    for suite, v in versions:
        rep = run.run_version(ctx, suite, v, tasks=tasks, recipe_paths=recipe_paths, overrides=overrides,
                              out_dir=out_dir, use_cache=use_cache, seeds=seeds, jobs=jobs,
                              pool_built=pool_built)
        if not rep["passed"]:
            failed.append(f"{suite}/{v}")
        for t in rep["tasks"]:
            if tasks and t["task"] not in tasks:
                continue  # kept from an earlier run
            ctx.log("   stage times (" + t["task"] + "): " + ", ".join(f"{k} {s:.1f} s" for k, s in t["seconds"].items()))
            used += [(seed["build_key"], seed.get("build_source")) for seed in t.get("seeds", [])]
            for k, s in t["seconds"].items():
                totals[k] = totals.get(k, 0.0) + s
    # from the cache: read (not rebuilt, not under --no-cache) from an entry that was there before this command
    fresh = [key for key, source in used if source != run.FROM_CACHE or key not in cached_before]
    return {"failed": failed, "seconds": totals, "builds": len(used), "builds_cached": len(used) - len(fresh),
            "builds_shared": len(fresh) - len(set(fresh))}  # built once in this run, used by another version too
