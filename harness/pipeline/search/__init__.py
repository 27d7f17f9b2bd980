"""Constraint-driven search over recipes (Optuna, multi-objective, constraints from the constraint file).

Every trial is a real `run.run_task` (train -> convert -> package -> measure the deployed file), the
same code path as `make version-*`. The space is a small TOML file per task (tasks/<task>/search_space.toml):

    [[param]]
    key = "model.width"            # a recipe key, set with --set semantics
    float = [0.25, 1.0]            # or int = [lo, hi], or choices = [...]
    step = 0.25                    # optional; log = true for a log scale
    when = { "model.name" = ["ds_cnn_s"] }   # optional: only when earlier keys have these values

Storage: an Optuna journal file under results/ by default (survives interrupts, resumes), or any
database URL (postgresql://...) so that several workers or machines share one study.
"""
from __future__ import annotations

import math
import socket  # noqa: F401  (tests reach the host name through the package)
import time
from dataclasses import dataclass
from pathlib import Path

from harness.core import constraints, recipes
from harness.core.errors import HarnessError
from harness.core.task import Context
from harness.core.task import get as get_task
from harness.pipeline import plan, run
from harness.pipeline.search.outputs import choose, pareto, plot, write_outputs  # noqa: F401
from harness.pipeline.search.space import (  # noqa: F401
    Param, check_keys, fingerprint, load_space, overrides_of, suggest)
from harness.pipeline.search.storage import (  # noqa: F401
    _retry,
    default_storage,
    mask_url,
    open_storage,
    recover_interrupted,
    repair_journal,
    worker_id,
)


def mean_metrics(report: dict) -> dict:
    """Each metric averaged over the trial's seeds (validation split). A metric one seed lacks is refused: a mean
    over the other seeds would rank this trial on fewer seeds than the rest."""
    seeds = report["seeds"]
    keys = set().union(*(sd["metrics"] for sd in seeds))
    for i, sd in enumerate(seeds):
        if missing := sorted(keys - set(sd["metrics"])):
            raise HarnessError(f"trial seed {sd.get('seed', i + 1)}: {', '.join(missing)} not measured, "
                               "though other seeds of the trial measured it")
    return {k: sum(sd["metrics"][k] for sd in seeds) / len(seeds) for k in keys}


def constraint_values(report: dict) -> list[float]:
    """Optuna's convention: <= 0 is feasible. The worst seed counts; strict limits make equality a violation."""
    out = []
    for i, c in enumerate(report["checks"]):
        if c["limit"] is None:
            continue
        gaps = []
        for sd in report["seeds"]:
            v = sd["checks"][i]["measured"]
            if v is None or v != v or v in (float("inf"), float("-inf")):
                gaps.append(1.0)
                continue
            gap = (v - c["limit"]) if c["op"] == "<" else (c["limit"] - v)
            gaps.append(gap if gap != 0 else 1e-9)
        out.append(max(gaps))
    return out


def _constraints_func(frozen):
    return frozen.user_attrs.get("constraints", [1.0])


@dataclass
class SearchConfig:
    suite: str
    version: str
    task: str
    trials: int = 20
    space: Path | None = None
    storage: str | None = None
    study: str | None = None
    base_recipe: Path | None = None
    out_dir: Path = run.RESULTS_DIR
    seed: int = 0
    seeds: int = 2
    constraints_dir: Path | None = None
    sampler: str = "tpe"
    prune_warmup_epochs: int = 2
    extra_overrides: tuple = ()


def _early_stop_hook(study, trial, task, section, warmup_epochs, log):
    """Stop a trial whose validation metric is hopeless: the task's own rule, or far worse than the median of
    finished trials at the same epoch (Optuna has no pruner for multi-objective studies)."""
    import optuna
    from optuna.trial import TrialState

    curve: list[float] = []

    def hook(epoch: int, logs: dict) -> None:
        key = next((k for k in logs if k.startswith("val_") and "accuracy" in k), None) or "val_loss"
        value = float(logs.get(key, math.nan))
        sign = 1.0 if "accuracy" in key else -1.0  # higher is better after the sign
        curve.append(sign * value)
        trial.set_user_attr("val_curve", curve)
        if epoch + 1 < warmup_epochs:
            return
        reason = task.hopeless(section, logs)
        if reason:
            log(f"    trial {trial.number}: stopped early ({reason})")
            raise optuna.TrialPruned()
        others = [t.user_attrs.get("val_curve", []) for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))]
        at_epoch = sorted(c[epoch] for c in others if len(c) > epoch)
        if len(at_epoch) >= 4 and curve[-1] < at_epoch[len(at_epoch) // 2] - abs(at_epoch[len(at_epoch) // 2]) * 0.25:
            log(f"    trial {trial.number}: stopped early (validation far below the median of finished trials)")
            raise optuna.TrialPruned()

    return hook


def search(ctx: Context, cfg: SearchConfig) -> dict:
    import warnings

    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)  # TPE options we rely on
    cons = constraints.load(cfg.suite, cfg.version, root=cfg.constraints_dir or constraints.CONSTRAINTS_DIR)
    if cfg.task not in cons.tasks:
        raise HarnessError(f"{cons.rel_path} has no [{cfg.task}] table")
    task = get_task(cfg.task)
    section = cons.task(cfg.task)
    space_path = cfg.space or (task.recipes_dir.parent / "search_space.toml")
    space = load_space(space_path)
    searched = {p.key for p in space}
    for ov in cfg.extra_overrides:  # the trial's value would replace it: a fixed value that silently does not hold
        if (key := ov.split("=", 1)[0].strip()) in searched:
            raise HarnessError(f"--set {ov}: {space_path} searches the key {key!r}; remove it from the space or "
                               "drop the --set")
    base = Path(cfg.base_recipe or recipes.default_path(task, cfg.suite, cfg.version))
    # fail fast, as a run does, on missing data, a broken base recipe or override, or a recipe the data cannot meet
    plan.check(ctx, [(cfg.suite, cfg.version)], [cfg.task], {cfg.task: base}, list(cfg.extra_overrides),
               cfg.constraints_dir)
    check_keys(space, lambda ov: recipes.load(base, task, list(cfg.extra_overrides) + ov), str(space_path))
    storage_spec = cfg.storage or default_storage(cfg.suite, cfg.version, cfg.task, cfg.out_dir)
    study_name = cfg.study or f"{cfg.suite}-{cfg.version}-{cfg.task}"
    objs = task.objectives(section)
    # The sampler seed alone fixes the trial sequence (one worker); workers sharing a study differ by their rank.
    sampler = (optuna.samplers.NSGAIISampler(seed=cfg.seed, constraints_func=_constraints_func)
               if cfg.sampler == "nsga2" else
               optuna.samplers.TPESampler(seed=cfg.seed, multivariate=True, group=True, constant_liar=True,
                                          constraints_func=_constraints_func, n_startup_trials=min(8, max(2, cfg.trials // 3))))
    storage = open_storage(storage_spec)
    study = _retry(lambda: optuna.create_study(storage=storage, study_name=study_name, sampler=sampler,
                                               directions=[d for _, d in objs], load_if_exists=True))
    study.set_metric_names([n for n, _ in objs])
    made_with = study.user_attrs.get("space_sha256")
    if made_with is None:
        study.set_user_attr("space_sha256", fingerprint(space))
    elif made_with != fingerprint(space):  # resuming under another space would rank incomparable trials together
        raise HarnessError(f"{storage_spec}: study {study_name!r} was made with another search space than "
                           f"{space_path}; pass --study NAME for a new study, or the space it was made with")
    recover_interrupted(study, ctx.log)
    done_before = len(study.trials)
    ctx.log(f"== search {study_name}: {cfg.trials} trial(s) in this worker, {done_before} already in the study "
            f"(storage {storage_spec}); objectives {', '.join(f'{n} ({d})' for n, d in objs)}")
    started = time.perf_counter()
    durations: list[float] = []

    def objective(trial):
        t0 = time.perf_counter()
        try:
            return _objective(trial)
        except optuna.TrialPruned:
            raise
        except Exception as e:  # one broken configuration fails its trial, not the whole search
            trial.set_user_attr("error", f"{type(e).__name__}: {' '.join(str(e).split())[:300]}")
            raise
        finally:
            trial.set_user_attr("seconds", round(time.perf_counter() - t0, 1))

    def _objective(trial):
        trial.set_user_attr("worker", worker_id())
        chosen = suggest(trial, space)
        overrides = list(cfg.extra_overrides) + overrides_of(chosen)
        trial.set_user_attr("overrides", overrides)
        try:
            recipe = recipes.load(base, task, overrides)
        except HarnessError as e:
            trial.set_user_attr("rejected", str(e))
            raise optuna.TrialPruned() from None
        floor = task.size_floor_bytes(ctx, section, recipe)
        if section.get("max_size_bytes") and floor >= section["max_size_bytes"]:
            trial.set_user_attr("rejected", f"parameters alone need >= {floor:,} B, limit {section['max_size_bytes']:,} B")
            raise optuna.TrialPruned()
        warmup = max(cfg.prune_warmup_epochs, recipe["train"]["epochs"] // 3)  # judge after a third of the run
        ctx.epoch_hook = _early_stop_hook(study, trial, task, section, warmup, ctx.log)
        ctx.sealed_test = True  # selection reads train and validation only
        try:
            outcome = run.run_task(ctx, cons, cfg.task, recipe_path=base, overrides=overrides,
                                   seeds=cfg.seeds, split="val")
        finally:
            ctx.epoch_hook = None
            ctx.sealed_test = False
        rep = outcome.report
        metrics = mean_metrics(rep)
        trial.set_user_attr("constraints", constraint_values(rep))
        trial.set_user_attr("passed", outcome.passed)
        trial.set_user_attr("metrics", metrics)
        trial.set_user_attr("tflite_sha256", [sd["tflite_sha256"] for sd in rep["seeds"]])
        return task.objective_values(section, metrics)

    def progress(study, frozen):
        dt = time.perf_counter() - started
        durations.append(frozen.user_attrs.get("seconds") or 0.0)
        left = cfg.trials - len(durations)
        mean = sum(durations) / len(durations)
        if frozen.state.name == "COMPLETE":
            m = frozen.user_attrs["metrics"]
            figures = ", ".join(f"{n} {m.get(n, frozen.values[i]):.4g}" for i, (n, _) in enumerate(objs))
            verdict = "PASS" if frozen.user_attrs.get("passed") else "FAIL"
        else:
            figures = frozen.user_attrs.get("rejected") or frozen.user_attrs.get("error") or "stopped early"
            verdict = frozen.state.name
        ctx.log(f"  trial {frozen.number}: {figures} — {verdict} — {frozen.user_attrs.get('seconds', 0):.0f} s; "
                f"elapsed {dt / 60:.1f} min, ~{left * mean / 60:.1f} min left")

    study.optimize(objective, n_trials=cfg.trials, callbacks=[progress], catch=(Exception,), gc_after_trial=True)
    return write_outputs(ctx, study, cfg, cons, task, section, base, objs, storage_spec)
