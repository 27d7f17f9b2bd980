"""What a search leaves: the Pareto table, the chosen recipe (validation only) with its one test reading, a plot."""
from __future__ import annotations

from pathlib import Path

from harness.core import recipes
from harness.core.paths import rel
from harness.pipeline import run
from harness.toolkit import atomic


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
    from harness.core.limits import lookup

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
