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
import os
import socket
import time
from dataclasses import dataclass
from pathlib import Path

from harness import atomic, constraints, datasets, recipes, run
from harness.paths import rel
from harness.config import Field, read_toml, validate
from harness.errors import HarnessError
from harness.task import Context
from harness.task import get as get_task

PARAM_SCHEMA = {
    "key": Field(str),
    "choices": Field(list, default=None),
    "int": Field(list, item=int, default=None),
    "float": Field(list, item=float, default=None),
    "step": Field(float, default=None),
    "log": Field(bool, default=False),
    "when": Field(dict, default=None),
}


@dataclass(frozen=True)
class Param:
    key: str
    kind: str  # choices | int | float
    values: tuple
    step: float | None
    log: bool
    when: dict | None

    def active(self, chosen: dict) -> bool:
        return not self.when or all(chosen.get(k) in v for k, v in self.when.items())


def load_space(path: str | Path) -> list[Param]:
    raw = read_toml(path)
    where = str(path)
    if set(raw) - {"param"} or not isinstance(raw.get("param"), list) or not raw["param"]:
        raise HarnessError(f"{where}: expected a list of [[param]] tables and nothing else")
    out = []
    for i, table in enumerate(raw["param"]):
        p = validate(table, PARAM_SCHEMA, where, f"param[{i}].")
        kinds = [k for k in ("choices", "int", "float") if p[k] is not None]
        if len(kinds) != 1:
            raise HarnessError(f"{where}: param[{i}] ({p['key']}) needs exactly one of choices, int, float")
        kind = kinds[0]
        values = tuple(p[kind])
        if kind != "choices" and (len(values) != 2 or values[0] >= values[1]):
            raise HarnessError(f"{where}: param[{i}].{kind} must be [low, high] with low < high")
        if kind == "choices" and not values:
            raise HarnessError(f"{where}: param[{i}].choices is empty")
        for k, v in (p["when"] or {}).items():
            if not isinstance(v, list):
                raise HarnessError(f"{where}: param[{i}].when.{k} must be a list of values")
        out.append(Param(p["key"], kind, values, p["step"], p["log"], p["when"]))
    return out


def _toml_literal(v) -> str:
    from harness.recipes import _toml_value

    return _toml_value(v)


def suggest(trial, space: list[Param]) -> dict:
    """Sample the active parameters (define-by-run, so conditional keys are honoured)."""
    chosen: dict = {}
    for p in space:
        if not p.active(chosen):
            continue
        if p.kind == "choices":
            chosen[p.key] = trial.suggest_categorical(p.key, list(p.values))
        elif p.kind == "int":
            chosen[p.key] = trial.suggest_int(p.key, int(p.values[0]), int(p.values[1]), step=int(p.step or 1), log=p.log)
        else:
            chosen[p.key] = trial.suggest_float(p.key, float(p.values[0]), float(p.values[1]), step=p.step, log=p.log)
    return chosen


def overrides_of(chosen: dict) -> list[str]:
    """--set overrides for a trial. When the space picks the model, the base recipe's [model] table is
    replaced first: its keys belong to the base model (e.g. `residual`) and may not exist for another."""
    out = []
    if "model.name" in chosen:
        out.append(f"model={{ name = {_toml_literal(chosen['model.name'])} }}")
    return out + [f"{k}={_toml_literal(v)}" for k, v in chosen.items() if k != "model.name"]


# -- objectives and constraints ----------------------------------------------------------------

def mean_metrics(report: dict) -> dict:
    """Each metric averaged over the trial's seeds (validation split)."""
    seeds = report["seeds"]
    keys = set().union(*(sd["metrics"] for sd in seeds))
    return {k: sum(sd["metrics"][k] for sd in seeds if k in sd["metrics"]) / len(seeds) for k in keys}


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


# -- storage, resume -----------------------------------------------------------------------------

def default_storage(suite: str, version: str, task: str, out_dir: Path) -> str:
    return str(out_dir / suite / f"search-{version}-{task}.journal")


def open_storage(spec: str):
    import optuna

    if "://" in spec:
        if spec.startswith(("postgresql://", "postgres://")):
            spec = "postgresql+psycopg2://" + spec.split("://", 1)[1]  # the pinned driver (SQLAlchemy may default to psycopg 3)
        # Heartbeats let other workers see a dead worker's trial as failed and retry it.
        try:
            return _retry(lambda: optuna.storages.RDBStorage(
                spec, heartbeat_interval=30, grace_period=120,
                failed_trial_callback=optuna.storages.RetryFailedTrialCallback(max_retry=1),
            ))
        except Exception as e:
            if type(e).__module__.split(".")[0] not in ("sqlalchemy", "psycopg2", "optuna"):
                raise
            first = next((line for line in str(e).splitlines() if line.strip()), type(e).__name__)
            raise HarnessError(f"{mask_url(spec)}: cannot open the study database ({first.strip()[:200]})") from None
    from optuna.storages.journal import JournalFileBackend

    try:
        Path(spec).parent.mkdir(parents=True, exist_ok=True)
        repair_journal(Path(spec))
        return optuna.storages.JournalStorage(JournalFileBackend(spec))
    except OSError as e:
        raise HarnessError(f"{spec}: cannot open the search journal ({e.strerror or e})") from None


def repair_journal(path: Path, log=print) -> int:
    """Cut a torn last record (a write killed half way) off the journal, keeping it aside; returns bytes set aside.

    Optuna appends records one JSON line at a time: a torn line would be glued to the next record and
    make every later resume fail, so it is moved to `<journal>.torn` before the study is opened."""
    import json

    if not path.is_file():
        return 0
    data = path.read_bytes()
    keep = len(data)
    if not data.endswith(b"\n"):
        keep = data.rfind(b"\n") + 1
    else:
        last = data[data.rfind(b"\n", 0, len(data) - 1) + 1:]
        try:
            json.loads(last)
        except ValueError:
            keep = data.rfind(b"\n", 0, len(data) - 1) + 1
    if keep == len(data):
        return 0
    atomic.write_bytes(path.with_name(path.name + ".torn"), data[keep:])
    with open(path, "r+b") as f:
        f.truncate(keep)
    log(f"  {path}: the last record was cut off (a killed write); set aside in {path.name}.torn, resuming without it")
    return len(data) - keep


def mask_url(url: str) -> str:
    """A database URL fit for a message: the password replaced by ***."""
    import re

    return re.sub(r"(://[^:/@]+):[^@]*@", r"\1:***@", url)


def _retry(make, attempts: int = 6):
    """Workers starting together on a fresh database race to create Optuna's tables and the study;
    the loser sees a duplicate-object error and succeeds on a second try."""
    for i in range(attempts):
        try:
            return make()
        except Exception as e:  # sqlalchemy's IntegrityError / ProgrammingError, optuna's DuplicatedStudyError
            if i == attempts - 1 or type(e).__module__.split(".")[0] not in ("sqlalchemy", "optuna", "psycopg2"):
                raise
            time.sleep(0.3 * (i + 1))


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def recover_interrupted(study, log) -> int:
    """Trials left RUNNING by a dead worker on this host: mark them failed and queue their parameters again."""
    from optuna.trial import TrialState

    host = socket.gethostname()
    n = 0
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        owner = t.user_attrs.get("worker", "")
        if not owner.startswith(host + ":"):
            continue  # another machine's trial: the database heartbeat handles it
        pid = int(owner.rsplit(":", 1)[1])
        if _alive(pid):
            continue
        study._storage.set_trial_state_values(t._trial_id, TrialState.FAIL)  # noqa: SLF001 - no public API for this
        study.enqueue_trial(t.params, user_attrs={"retry_of": t.number}, skip_if_exists=False)
        n += 1
    if n:
        log(f"  resumed: {n} interrupted trial(s) queued again")
    return n


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


# -- the search ----------------------------------------------------------------------------------

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
    import optuna

    import warnings

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)  # TPE options we rely on
    cons = constraints.load(cfg.suite, cfg.version, root=cfg.constraints_dir or constraints.CONSTRAINTS_DIR)
    if cfg.task not in cons.tasks:
        raise HarnessError(f"{cons.rel_path} has no [{cfg.task}] table")
    task = get_task(cfg.task)
    section = cons.task(cfg.task)
    space = load_space(cfg.space or (task.recipes_dir.parent / "search_space.toml"))
    base = Path(cfg.base_recipe or recipes.default_path(task, cfg.suite, cfg.version))
    recipes.load(base, task, list(cfg.extra_overrides))  # fail fast on a broken base recipe
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
            outcome = run.run_task(ctx, cons, cfg.task, recipe_path=base, overrides=overrides, out_dir=cfg.out_dir,
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


# -- outputs -------------------------------------------------------------------------------------

def pareto(rows: list[dict], objs) -> list[dict]:
    def dominates(a, b):
        better = False
        for (name, d), va, vb in zip(objs, a["values"], b["values"]):
            if (va > vb if d == "minimize" else va < vb):
                return False
            better |= va != vb
        return better

    return [r for r in rows if not any(dominates(o, r) for o in rows if o is not r)]


def choose(rows: list[dict], objs) -> dict | None:
    """The passing trial with the best first objective (validation), ties broken by the others."""
    feasible = [r for r in rows if r["passed"]]
    if not feasible:
        return None
    sign = [-1.0 if d == "maximize" else 1.0 for _, d in objs]
    return min(feasible, key=lambda r: tuple(sg * v for sg, v in zip(sign, r["values"])) + (r["number"],))


def write_outputs(ctx, study, cfg, cons, task, section, base, objs, storage_spec) -> dict:
    from optuna.trial import TrialState
    from tabulate import tabulate

    done = [t for t in study.trials if t.state == TrialState.COMPLETE]
    rows = [{"number": t.number, "values": list(t.values), "passed": bool(t.user_attrs.get("passed")),
             "overrides": t.user_attrs.get("overrides", []), "metrics": t.user_attrs.get("metrics", {})} for t in done]
    feasible = [r for r in rows if r["passed"]]
    front = sorted(pareto(feasible, objs), key=lambda r: r["values"][1])
    base_name = f"search-{cfg.version}-{cfg.task}"
    folder = cfg.out_dir / cfg.suite
    best = choose(rows, objs)
    test_lines = []
    if best:
        recipe = recipes.load(base, task, best["overrides"])
        data = dict(recipe.data)
        data["description"] = (f"search winner: trial {best['number']} of study {study.study_name}, chosen on validation "
                               f"({', '.join(f'{n} {v:.4g}' for (n, _), v in zip(objs, best['values']))})")
        atomic.write_text(folder / f"{base_name}.best.toml", recipes.Recipe(path="", data=data).to_toml())
        # The test split, read once, for the chosen recipe only (its builds are in the cache from the trial).
        final = run.run_task(ctx, cons, cfg.task, recipe_path=base, overrides=best["overrides"], seeds=cfg.seeds,
                             split="test").report
        best["test"] = {c["label"]: c["result"] + f" ({c['measured_text']})" for c in final["checks"]}
        test_lines = ["", "## The chosen recipe on the test split (read once, after the choice)", "",
                      f"- Over {cfg.seeds} seed(s): " + "; ".join(f"{k}: {v}" for k, v in best["test"].items()) + "."]
    table = tabulate(
        [[r["number"]] + [f"{v:.4g}" for v in r["values"]] + [" ".join(r["overrides"])] for r in front],
        headers=["trial"] + [f"{n} ({d[:3]})" for n, d in objs] + ["recipe overrides"], tablefmt="github", disable_numparse=True)
    pruned = sum(t.state == TrialState.PRUNED for t in study.trials)
    failed = sum(t.state == TrialState.FAIL for t in study.trials)
    md = [f"# Search {study.study_name}", "",
          f"- Constraints: `{cons.rel_path}`; base recipe `{rel(base)}`; storage `{rel(storage_spec) if '://' not in storage_spec else storage_spec.split('@')[-1]}`.",
          f"- Trials: {len(rows)} complete ({len(feasible)} pass every limit), {pruned} rejected before or stopped during "
          f"training, {failed} failed.",
          "- Every trial is a full train → convert → package → measure of the deployed file (same code as `make version-*`), "
          f"with {cfg.seeds} seed(s); objectives and limits are read on the **validation** split (mean over seeds, the worst "
          "seed for limits). The test split is sealed during the search.",
          "", "## Pareto-optimal passing configurations", "", table if front else "_none passed yet_", ""]
    if best:
        md.append(f"Best passing configuration (trial {best['number']}): `{base_name}.best.toml`; reproduce with "
                  f"`make version-{cfg.version} SUITE={cfg.suite} ARGS=\"--task {cfg.task} --recipe {cfg.task}={rel(folder / (base_name + '.best.toml'))}\"`.")
    md += test_lines
    atomic.write_text(folder / f"{base_name}.md", "\n".join(md) + "\n")
    plot(rows, objs, section, folder / f"{base_name}.png", study.study_name, task)
    return {"complete": len(rows), "feasible": len(feasible), "pareto": front, "best": best,
            "markdown": str(folder / f"{base_name}.md")}


def plot(rows, objs, section, path: Path, title: str, task) -> None:
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=110)
    if rows:
        lat = len(objs) > 2
        ok = [r for r in rows if r["passed"]]
        bad = [r for r in rows if not r["passed"]]
        if ok:
            color = {"c": [r["values"][2] for r in ok], "cmap": "viridis"} if lat else {"c": "tab:blue"}
            sc = ax.scatter([r["values"][1] for r in ok], [r["values"][0] for r in ok], label="passes every limit", **color)
            if lat:
                fig.colorbar(sc, ax=ax, label="latency (ms, this host)")
        if bad:
            ax.scatter([r["values"][1] for r in bad], [r["values"][0] for r in bad], marker="x", c="tab:red", label="infeasible")
        front = sorted(pareto(ok, objs), key=lambda r: r["values"][1])
        if front:
            ax.plot([r["values"][1] for r in front], [r["values"][0] for r in front], "k--", lw=1, label="Pareto front")
    if section.get("max_size_bytes"):
        ax.axvline(section["max_size_bytes"], color="tab:red", lw=1, label="size limit")
    from harness.check import lookup

    first = next((lim for lim in task.limits if lim.metric == objs[0][0]), None)
    if first is not None and lookup(section, first.key) is not None:
        ax.axhline(lookup(section, first.key), color="tab:orange", lw=1, label="limit")
    if objs[0][0] == "worst_limit_ratio":
        ax.axhline(1.0, color="tab:orange", lw=1, label="limit (ratio 1)")
    ax.set_xlabel("deployed size (bytes, submitted format)")
    ax.set_ylabel(task.objective_label(objs[0][0]))
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png")
    plt.close(fig)
    atomic.write_bytes(path, buf.getvalue())
