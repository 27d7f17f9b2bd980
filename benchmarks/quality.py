"""Quality benchmark: print every version's measured figures (from results/**/version-*.json) beside the targets.

    python -m benchmarks.quality [--results DIR] [--run]   (--run first re-runs every suite)
"""
from __future__ import annotations

import argparse
import sys
import tomllib
from pathlib import Path

from tabulate import tabulate

ROOT = Path(__file__).resolve().parents[1]


def rows(reports: list[dict], targets: dict) -> list[list[str]]:
    out = []
    for rep in sorted(reports, key=lambda r: (r["suite"], r["version"])):
        key = f"{rep['suite']}/{rep['version']}"
        for t in rep["tasks"]:
            m, d = t["metrics"], t["details"]
            size = t["artifact"]["bytes"]
            if t["task"] == "forecast":
                k = str(d["output_steps"])
                lim = targets["forecast"]["max_size_bytes"].get(k)
                skill = d["skill"]
                ok = skill["t"] > targets["forecast"]["min_skill"] and skill["rh"] > targets["forecast"]["min_skill"] \
                    and (lim is None or size <= lim)
                out.append([key, "forecast", f"K={k}: MAE(T) {m['mae_t_degc']:.4f} °C, MAE(RH) {m['mae_rh_pct']:.4f} %RH, "
                            f"skill T {skill['t']:+.1%} / RH {skill['rh']:+.1%}", f"{size:,} B",
                            "—", f"skill > 0 on both, ≤ {lim:,} B" if lim else "skill > 0 on both", "met" if ok else "NOT met"])
            else:
                tg = targets["kws"].get(key, {})
                lat = d.get("latency", {}).get("total_median_ms")
                ok = (m["accuracy_pct"] >= tg.get("min_accuracy_pct", 0) and size <= tg.get("max_size_bytes", 10**12)
                      and (lat is None or lat <= targets["latency"]["kws_total_median_max_ms"]))
                want = ", ".join(filter(None, [f"≥ {tg['min_accuracy_pct']} %" if "min_accuracy_pct" in tg else "",
                                               f"≤ {tg['max_size_bytes']:,} B" if "max_size_bytes" in tg else "",
                                               f"≤ {targets['latency']['kws_total_median_max_ms']} ms"]))
                out.append([key, "kws", f"{m['accuracy_pct']:.2f} % ({d['correct']}/{d['test_clips']})", f"{size:,} B",
                            f"{lat:.3f} ms" if lat is not None else "no protocol", want, "met" if ok else "NOT met"])
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--results", default=str(ROOT / "results"))
    p.add_argument("--run", action="store_true", help="re-run every suite first (make all-suites)")
    p.add_argument("--data-dir")
    p.add_argument("--jena", nargs="+")
    args = p.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    from harness import report

    if args.run:
        from harness.cli import main as cli

        extra = (["--data-dir", args.data_dir] if args.data_dir else []) + (["--jena", *args.jena] if args.jena else [])
        cli(["run", "--suite", "all", *extra])
    targets = tomllib.loads((ROOT / "benchmarks" / "targets.toml").read_text())
    reports = report.load_reports(Path(args.results))
    if not reports:
        print(f"no reports under {args.results}: run `make all-suites` first")
        return 1
    print(tabulate(rows(reports, targets), headers=["Version", "Task", "Measured", "Size", "Latency (median total)", "Target", ""],
                   tablefmt="github", disable_numparse=True))
    per_suite, reused = {}, {}
    for r in reports:
        per_suite[r["suite"]] = per_suite.get(r["suite"], 0.0) + r["wall_seconds"]
        reused[r["suite"]] = reused.get(r["suite"], 0) + sum(t["build_cached"] for t in r["tasks"])
    total = sum(per_suite.values())
    print()
    print(tabulate([[s, f"{v:.0f} s", reused[s]] for s, v in sorted(per_suite.items())] + [["all suites", f"{total:.0f} s", sum(reused.values())]],
                   headers=["Suite", "Wall time of the last run", "builds reused from cache"], tablefmt="github"))
    rt = targets["runtime"]
    cold = "" if not sum(reused.values()) else " — builds were reused: `make clean-cache all-suites` gives a cold timing"
    print(f"\nruntime targets: default suite ≤ {rt['default_suite_max_s']} s "
          f"({per_suite.get('ml4iot-2022', 0):.0f} s), all suites ≤ {rt['all_suites_max_s']} s ({total:.0f} s){cold}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
