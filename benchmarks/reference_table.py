"""The README's reference table (between the `reference-table` markers), from the committed reports.

    python -m benchmarks.reference_table            # prints it
    python -m benchmarks.reference_table --write    # replaces it in README.md
"""
from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BASE = ROOT / "results" / "reference"


def _label(c: dict) -> str:
    if c["label"].startswith("Latency"):
        return "latency"
    if c["label"].startswith("Size"):
        return "size"
    return c["label"].split(",")[0]


def _baselines(t: dict) -> str:
    out = []
    for b in t.get("baselines", []):
        name = b["name"].split(" (")[0]
        if b.get("reference"):
            miss = [m["label"].split(",")[0] for m in b.get("both_miss") or []]
            out.append(f"{name}: " + (f"misses {', '.join(miss)} too" if miss else
                                      "passes" if b["passes_all"] else "misses a limit the file meets"))
        else:
            out.append(f"{name}: {'passes' if b['passes_all'] else 'fails'}")
    return "; ".join(out)


def table(base: Path = BASE) -> str:
    rows = ["| suite / version | task | verdict (seeds 1–5) | figures: mean ± sd [min, max] over seeds | baselines |",
            "|---|---|---|---|---|"]
    reports = sorted(base.glob("*/version-*/report.json")) + sorted(base.glob("*/*/version-*/report.json"))
    for f in reports:
        r = json.loads(f.read_text())
        for t in r["tasks"]:
            n, k = len(t["seeds"]), sum(s["passed"] for s in t["seeds"])
            marginal = any(c.get("marginal") for c in t["checks"])
            verdict = f"{'PASS' if t['passed'] else 'FAIL'} {k}/{n}" + (", marginal" if marginal and t["passed"] else "")
            if r["constraints"]["status"] == "reconstructed":
                verdict += " (reconstructed limits)"
            figs = []
            for c in t["checks"]:
                s, fmt = c.get("spread"), c["fmt"]
                if not s:
                    continue
                sd = fmt.format(s["sd"]) if s.get("sd") is not None else "—"
                figs.append(f"{_label(c)} {fmt.format(s['mean'])} ± {sd} [{fmt.format(s['min'])}, {fmt.format(s['max'])}] {c['unit']}")
            task = t["task"]
            profile = (t.get("data") or {}).get("profile", {}).get("name")
            if profile and profile != "course":
                task += f" ({profile})"
            if "/variants/" in t.get("recipe_path", ""):
                task += f" (variant `{Path(t['recipe_path']).stem}`)"
            link = f"results/reference/{f.parent.relative_to(base)}/report.md"
            rows.append(f"| [{r['suite']} {r['version']}]({link}) | {task} | {verdict} | {'; '.join(figs)} | {_baselines(t)} |")
    return "\n".join(rows)


def main(argv=None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--write", action="store_true")
    a = p.parse_args(argv)
    text = table()
    if not a.write:
        print(text)
        return 0
    readme = ROOT / "README.md"
    old = readme.read_text()
    new, n = re.subn(r"(<!-- reference-table -->\n).*?(\n<!-- /reference-table -->)", lambda m: m[1] + text + m[2],
                     old, flags=re.S)
    if n != 1:
        print("README.md: the reference-table markers were not found", file=sys.stderr)
        return 2
    readme.write_text(new)
    return 0


if __name__ == "__main__":
    sys.exit(main())
