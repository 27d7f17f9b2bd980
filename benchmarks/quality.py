"""Quality benchmark: every version's figures from a results folder beside the targets (benchmarks/targets.toml).

    python -m benchmarks.quality [--results DIR]      (default: results/reference, the committed run)
"""
from __future__ import annotations

import argparse
import sys
import tomllib
from pathlib import Path

from tabulate import tabulate

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
            base = [b["name"] for b in t.get("baselines", []) if b["passes_all"]]
            profile = (t.get("data") or {}).get("profile", {}).get("name")
            task = t["task"] + (f" ({profile})" if profile not in (None, "course") else "")
            out.append([f"{rep['suite']}/{rep['version']}", task, f"{k}/{n} seeds pass",
                        f"every one of ≥ {need} seeds", _met(n >= need and k == n),
                        "a trivial baseline passes too: " + ", ".join(base) if base else ""])
    return out


def mean_rows(reports: list[dict], targets: dict) -> list[list[str]]:
    by_version = {f"{r['suite']}/{r['version']}": r for r in reports}
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
                out.append([f"{rep['suite']}/{rep['version']}", t["task"], f"{lat:.3f} ms", f"≤ {lim} ms", _met(lat <= lim)])
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--results", default=str(ROOT / "results" / "reference"))
    args = p.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    from harness.pipeline import report

    targets = tomllib.loads((ROOT / "benchmarks" / "targets.toml").read_text())
    reports = report.load_reports(Path(args.results))
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
    total = sum(r["wall_seconds"] for r in reports)
    cached = sum(t["build_cached"] for r in reports for t in r["tasks"])
    lim = targets["runtime"]["reference_max_s"]
    print(f"\nruntime: the last run of each version took {total:.0f} s in all (target ≤ {lim} s: {_met(total <= lim)})"
          + (f"; {cached} task(s) reused cached builds, so this is not a cold timing" if cached else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
