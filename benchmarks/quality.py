"""Quality benchmark: every version's figures from a results folder beside the targets (benchmarks/targets.toml).

    python -m benchmarks.quality [--results DIR]      (default: results/reference, the committed run)
"""
from __future__ import annotations

import argparse
import json
import sys
import tomllib
from pathlib import Path

from tabulate import tabulate

from harness.toolkit import hostinfo

ROOT = Path(__file__).resolve().parents[1]


def _met(ok: bool) -> str:
    return "met" if ok else "NOT met"


def seed_rows(reports: list[dict], targets: dict) -> list[list[str]]:
    need = targets["seeds"]["min_seeds"]
    out = []
    for rep in sorted(reports, key=lambda r: (r["suite"], r["version"])):
        for t in rep["tasks"]:
            n = len(t["seeds"])
            k = sum(s["passed"] for s in t["seeds"])
            base = [b["name"] for b in t.get("baselines", []) if b["passes_all"] and not b.get("reference")]
            task = _task_label(t)
            out.append([f"{rep['suite']}/{rep['version']}", task, f"{k}/{n} seeds pass",
                        f"every one of ≥ {need} seeds", _met(n >= need and k == n),
                        "a trivial baseline passes too: " + ", ".join(base) if base else ""])
    return out


def _in_graph(t: dict) -> bool:
    return (t.get("recipe") or {}).get("export", {}).get("front_end") == "in-graph"


def _variant(t: dict) -> bool:
    """A run beside the version's own recipe (a variant recipe, another evaluation profile)."""
    return ("/variants/" in t.get("recipe_path", "") or _in_graph(t)
            or (t.get("data") or {}).get("profile", {}).get("name") not in (None, "course"))


def _task_label(t: dict) -> str:
    profile = (t.get("data") or {}).get("profile", {}).get("name")
    variant = Path(t.get("recipe_path", "")).stem if "/variants/" in t.get("recipe_path", "") else ""
    return (t["task"] + (f" ({profile})" if profile not in (None, "course") else "")
            + (f" (variant {variant})" if variant else ""))


def raw_audio_rows(reports: list[dict], targets: dict) -> list[list[str]]:
    """Raw-audio files: one interpreter call's median latency, and accuracy beside the same version's external file."""
    tg = targets["raw_audio"]
    external = {(r["suite"], r["version"]): t for r in reports for t in r["tasks"] if t["task"] == "kws" and not _variant(t)}
    out = []
    for rep in sorted(reports, key=lambda r: (r["suite"], r["version"])):
        for t in rep["tasks"]:
            if t["task"] != "kws" or not _in_graph(t):
                continue
            where = f"{rep['suite']}/{rep['version']}"
            lat = (t["details"].get("latency") or {}).get("model_median_ms")
            if lat is not None:
                out.append([where, "latency, audio in → probabilities out (one interpreter call), median",
                            f"{lat:.3f} ms", f"≤ {tg['max_median_ms']} ms", _met(lat <= tg["max_median_ms"])])
            ext = external.get((rep["suite"], rep["version"]))
            acc = next((c["spread"] for c in t["checks"] if c["metric"] == "accuracy_pct" and c.get("spread")), None)
            ref = next((c["spread"] for c in (ext or {}).get("checks", []) if c["metric"] == "accuracy_pct" and c.get("spread")), None)
            if acc and ref:
                gap = ref["mean"] - acc["mean"]
                out.append([where, f"accuracy vs the external-feature file (means over {acc['n']} and {ref['n']} seeds)",
                            f"{acc['mean']:.2f} vs {ref['mean']:.2f} % ({-gap:+.2f} points)",
                            f"within {tg['max_accuracy_gap_points']} points", _met(gap <= tg["max_accuracy_gap_points"])])
    return out


def forecast_rows(reports: list[dict], targets: dict) -> list[list[str]]:
    """Forecasting beside persistence and the unconstrained reference (means over seeds, test split)."""
    tg = targets["forecast"]
    out = []
    for rep in sorted(reports, key=lambda r: (r["suite"], r["version"])):
        for t in rep["tasks"]:
            if t["task"] != "forecast":
                continue
            profile = (t.get("data") or {}).get("profile", {}).get("name") or "course"
            where = f"{rep['suite']}/{rep['version']} ({profile})"
            mean = {c["metric"]: c["spread"]["mean"] for c in t["checks"] if c.get("spread")}
            base = {b["name"].split(" (")[0]: {c["metric"]: c["measured"] for c in b["checks"]} for b in t.get("baselines", [])}
            pers, ref = base.get("Persistence"), base.get("Unconstrained reference")
            for m, name in (("mae_t_degc", "MAE(T)"), ("mae_rh_pct", "MAE(RH)")):
                if pers:
                    skill = 1 - mean[m] / pers[m]
                    need = tg["min_skill_course"][m] if profile == "course" else 0.0
                    out.append([where, f"{name} skill vs persistence", f"{skill:+.1%}", f"≥ {need:.1%}", _met(skill >= need)])
                if ref:
                    gap = mean[m] / ref[m] - 1
                    out.append([where, f"{name} vs the unconstrained reference", f"{mean[m]:.4f} vs {ref[m]:.4f} ({gap:+.1%})",
                                f"≤ +{tg['max_gap_to_reference']:.0%}", _met(gap <= tg["max_gap_to_reference"])])
            size = mean.get("size_bytes")
            lim = tg["max_size_bytes"].get(str(t["details"].get("output_steps")))
            if size is not None and lim:
                out.append([where, "size (mean)", f"{size:,.0f} B", f"≤ {lim:,} B", _met(size <= lim)])
    return out


def mean_rows(reports: list[dict], targets: dict) -> list[list[str]]:
    by_version = {f"{r['suite']}/{r['version']}": r for r in reports if not any(_variant(t) for t in r["tasks"])}
    out = []
    for tg in targets.get("mean", []):
        rep = by_version.get(tg["version"])
        row = None
        for t in (rep or {}).get("tasks", []):
            for c in t["checks"]:
                if c["metric"] == tg["metric"] and c.get("spread"):
                    s = c["spread"]
                    sd = f" ± {s['sd']:.2f}" if s.get("sd") is not None else ""
                    want = f"mean ≥ {tg['min']}" if "min" in tg else f"mean ≤ {tg['max']}"
                    ok = s["mean"] >= tg["min"] if "min" in tg else s["mean"] <= tg["max"]
                    row = [tg["version"], tg["metric"], f"{s['mean']:.2f}{sd} over {s['n']} seed(s)", want, _met(ok)]
        out.append(row or [tg["version"], tg["metric"], "no report", "", "NOT met"])
    return out


def latency_rows(reports: list[dict], targets: dict) -> list[list[str]]:
    lim = targets["latency"]["max_median_total_ms"]
    out = []
    for rep in sorted(reports, key=lambda r: (r["suite"], r["version"])):
        for t in rep["tasks"]:
            lat = (t["details"].get("latency") or {}).get("total_median_ms")
            if lat is not None:
                out.append([f"{rep['suite']}/{rep['version']}", _task_label(t), f"{lat:.3f} ms", f"≤ {lim} ms",
                            _met(lat <= lim)])
    return out


def full_run_record(folder: Path, seeds: int = 5) -> dict | None:
    """The newest record of a `run` over every version of every suite with at least `seeds` seeds, the shipped
    recipes and no task filter."""
    found = []
    for p in sorted((folder / "runs").glob("*.json")):
        try:
            rec = json.loads(p.read_text())
        except (OSError, ValueError):
            continue
        if (rec.get("every_suite") and rec.get("every_version") and (rec.get("seeds") or 0) >= seeds
                and not rec.get("tasks") and not rec.get("overrides")
                and not rec.get("recipes")):
            found.append(rec)
    return max(found, key=lambda r: r["finished_utc"]) if found else None


def _git_show(commit: str, path: str | None) -> str | None:
    """The file at `commit` (path None: the commit itself), or None when git has no such object."""
    return hostinfo.git("show", f"{commit}^{{commit}}" if path is None else f"{commit}:{path}")


def recipes_changed_since(commit: str, show=_git_show) -> list[str] | None:
    """Shipped recipe files whose keys (comments aside) differ from, or were not in, `commit`; None when git
    cannot read that commit (no repository, a shallow clone)."""
    if show(commit, None) is None:
        return None
    changed = []
    for path in sorted((ROOT / "tasks").glob("*/recipes/*.toml")):
        name = path.relative_to(ROOT).as_posix()
        then = show(commit, name)
        if then is None or tomllib.loads(then) != tomllib.loads(path.read_text()):
            changed.append(name)
    return changed


def runtime_line(folder: Path, limit_s: float, seeds: int = 5, show=_git_show) -> str:
    rec = full_run_record(folder, seeds)
    if rec is None:
        return (f"runtime: no record of a full run with ≥ {seeds} seeds in {folder}/runs (every suite, shipped recipes): "
                f"not measured (target ≤ {limit_s:.0f} s)")
    cold = (f"; {rec['builds_cached']} of {rec['builds']} builds came from an earlier run's cache, so this is not a cold timing"
            if rec["builds_cached"] else f"; cold: no build from an earlier run ({rec.get('builds_shared', 0)} shared within the run)")
    # the timing is of the recipes of its commit; a run from uncommitted code has no commit to compare with
    changed = None if rec["commit"].endswith("+dirty") else recipes_changed_since(rec["commit"], show)
    stale = ("; recipes not compared with that commit (uncommitted code, or git cannot read it)" if changed is None else
             f"; **the shipped recipes changed since** ({', '.join(changed)}): this timing is of the earlier ones"
             if changed else "")
    return (f"runtime: `{rec['command']}` at {rec['commit']} took {rec['wall_seconds']:.0f} s, finished "
            f"{rec['finished_utc']} (target ≤ {limit_s:.0f} s: {_met(rec['wall_seconds'] <= limit_s)}){cold}{stale}")


def main(argv=None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--results", default=str(ROOT / "results" / "reference"))
    args = p.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    from harness.core.errors import HarnessError
    from harness.pipeline import report_files

    targets = tomllib.loads((ROOT / "benchmarks" / "targets.toml").read_text())
    try:
        reports = report_files.load_reports(Path(args.results))
    except HarnessError as e:  # a broken report.json: named in one line, as the harness's own commands do
        print(f"error: {e}")
        return 2
    if not reports:
        print(f"no reports under {args.results}: run `make reference` (or point --results at a run)")
        return 1
    print(tabulate(seed_rows(reports, targets), headers=["Version", "Task", "Seeds", "Target", "", "Note"],
                   tablefmt="github", disable_numparse=True))
    print()
    print(tabulate(mean_rows(reports, targets), headers=["Version", "Metric", "Measured", "Target", ""],
                   tablefmt="github", disable_numparse=True))
    print()
    print(tabulate(latency_rows(reports, targets), headers=["Version", "Task", "Median total latency (this host)", "Target", ""],
                   tablefmt="github", disable_numparse=True))
    print()
    print(tabulate(forecast_rows(reports, targets), headers=["Version (profile)", "Forecasting", "Measured", "Target", ""],
                   tablefmt="github", disable_numparse=True))
    raw = raw_audio_rows(reports, targets)
    if raw:
        print()
        print(tabulate(raw, headers=["Version", "Raw-audio file", "Measured", "Target", ""], tablefmt="github",
                       disable_numparse=True))
    print("\n" + runtime_line(Path(args.results), targets["runtime"]["reference_max_s"], targets["seeds"]["min_seeds"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
