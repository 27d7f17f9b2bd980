"""Markdown, LaTeX and JSON reports: one folder per version, plus summaries over every version run."""
from __future__ import annotations

import math
from pathlib import Path

from tabulate import tabulate

from harness.core import check
from harness.toolkit import atomic

HEADERS = ["Metric", "Limit", "Shipped artifact", "95 % interval", "Over seeds: mean ± sd [min, max]", "Result"]


def short_label(label: str) -> str:
    """The label up to its first top-level comma: 'Latency (course protocol, this host)' stays whole."""
    depth = 0
    for i, ch in enumerate(label):
        depth += ch == "("
        depth -= ch == ")"
        if ch == "," and depth == 0:
            return label[:i]
    return label


def _num(fmt: str, v) -> str:
    if v is None:
        return "—"
    if isinstance(v, float) and not math.isfinite(v):
        return str(v)
    return fmt.format(v)


def _fmt_of(c: dict) -> str:
    return c.get("fmt") or "{:.4g}"


def _spread_text(c: dict) -> str:
    if c.get("imported"):
        return f"device run, {c['imported'].get('finished_utc') or 'date unknown'}"
    s = c.get("spread")
    if not s or s["n"] < 2:
        return "one seed"
    f = _fmt_of(c)
    return f"{_num(f, s['mean'])} ± {_num(f, s['sd'])} [{_num(f, s['min'])}, {_num(f, s['max'])}] {c['unit']}"


def interval_text(c: dict) -> str:
    iv = c.get("interval")
    if not iv:
        return "—"
    f = _fmt_of(c)
    return f"[{_num(f, iv[0])}, {_num(f, iv[1])}] {c['unit']}"


def _check_table(task: dict, fmt: str) -> str:
    rows = [[c["label"], c["limit_text"], c["measured_text"], interval_text(c), _spread_text(c), c["result"]]
            for c in task["checks"]]
    return tabulate(rows, headers=HEADERS, tablefmt=fmt, disable_numparse=True)


def _seed_table(task: dict) -> str:
    metrics = [c for c in task["checks"] if not c.get("imported")]  # device rows have no per-seed figure
    headers = ["Seed", "tflite sha256"] + [short_label(c["label"]) for c in metrics] + ["Validation (for tuning)", "Result"]
    rows = []
    for s in task["seeds"]:
        by_metric = {c["metric"]: c for c in s["checks"]}
        cells = [by_metric[c["metric"]]["measured_text"] if c["metric"] in by_metric else "—" for c in metrics]
        val = ", ".join(f"{short_label(c['label'])} {_num(_fmt_of(c), s['val_metrics'][c['metric']])} {c['unit']}"
                        for c in metrics if c["metric"] in s.get("val_metrics", {}) and c["metric"] != "size_bytes")
        rows.append([f"{s['seed']}" + (" (shipped)" if s["shipped"] else ""), f"`{s['tflite_sha256'][:16]}…`", *cells,
                     val or "—", "PASS" if s["passed"] else "FAIL"])
    return tabulate(rows, headers=headers, tablefmt="github", disable_numparse=True)


def baseline_lines(task: dict) -> list[str]:
    out = []
    for b in task.get("baselines", []):
        figures = ", ".join(f"{short_label(c['label'])} {c['measured_text']} {c['result']}" for c in b["checks"])
        if b.get("reference"):
            both = b.get("both_miss") or []
            note = (" — **even this misses** " + "; ".join(
                f"{short_label(m['label'])}, by {_num(m['fmt'], m['reference_by'])} {m['unit']} (the shipped file by "
                f"{_num(m['fmt'], m['shipped_by'])} {m['unit']})" for m in both)
                + ": on this data the inputs do not seem to allow that limit") if both else ""
            out.append(f"- Reference, {b['name']}, under the same limits: {figures}{note}.")
            continue
        if b["passes_all"]:
            note = (" — **these limits do not discriminate on this data**: the trivial predictor passes every one "
                    "it can be checked against")
        elif b["passes_any"]:
            passing = ", ".join(short_label(c["label"]) for c in b["checks"] if c["passed"])
            note = f" — the limit on {passing} does not discriminate on this data"
        else:
            note = " — fails, so the limits discriminate"
        out.append(f"- Baseline, {b['name']}, under the same limits: {figures}{note}.")
    return out


def task_verdict(task: dict) -> str:
    n = len(task.get("seeds", [])) or 1
    k = sum(1 for s in task.get("seeds", []) if s["passed"])
    word = "PASS" if task["passed"] else "FAIL"
    device = [c for c in task["checks"] if c.get("imported") and c["passed"] is False]
    return (f"{word} ({k}/{n} seeds)" + (", marginal" if check.marginal_pass(task) else "")
            + ("; the imported device latency misses the limit" if device else ""))


def task_hosts(rep: dict) -> list[tuple[str, list[str]]]:
    """(host line, task titles) for each host that measured a task: a one-task run keeps the other tasks'
    earlier results, which another machine may have measured."""
    hosts: dict[str, list[str]] = {}
    for task in rep["tasks"]:
        hosts.setdefault(task.get("host_line") or rep["host_line"], []).append(task["title"])
    return list(hosts.items()) or [(rep["host_line"], [])]


def version_markdown(rep: dict) -> str:
    c = rep["constraints"]
    lines = [
        f"# {rep['suite']} — version {rep['version']} (A.Y. {c['academic_year']})",
        "",
        f"- Constraints: `{c['path']}` ({c['status']}); every limit is a strict inequality; "
        f"1 kB read as {c['kilobyte_bytes']} B.",
    ]
    if c["status"] == "reconstructed":
        lines.append("- **RECONSTRUCTED limits**: this edition's assignment text was not found; the limits are inferred "
                     "from group reports. PASS/FAIL here is not equivalent to the other suites.")
    if c.get("status_note"):
        lines.append(f"- Note: {c['status_note']}")
    hosts = task_hosts(rep)
    where = (hosts[0][0] if len(hosts) == 1 else
             "; ".join(f"{line} ({', '.join(titles)})" for line, titles in hosts))
    lines += [
        f"- Latency host{'s' if len(hosts) > 1 else ''}: {where}. **This is not the course's device** "
        f"(Raspberry Pi / Deepnote): latency rows are that host's figures under the course protocol.",
        "- Verdict rule: a version passes when every seed of every task passes every limit. *Marginal*: a PASS whose "
        "95 % interval reaches the limit (another test draw of the same size could fail it).",
        "",
    ]
    for task in rep["tasks"]:
        lines += [f"## {task['title']} — {task_verdict(task)}", ""]
        lines += [f"- Run: commit `{task['commit']}`, {task['finished_utc']}; {task['seed_rule']}.", ""]
        lines += [_check_table(task, "github"), ""]
        methods = sorted({c["interval_method"] for c in task["checks"] if c.get("interval_method")})
        if methods:
            lines.append("- Intervals: " + "; ".join(methods) + ".")
        lines += baseline_lines(task)
        if any(c.get("imported") for c in task["checks"]):
            lines.append("- *Imported* rows: a device ran the shipped file (sha256 checked) with the bundle's "
                         "script (`python -m harness bundle`, then `import-latency`); they count toward the verdict.")
        lines += ["", _seed_table(task), ""]
        art = task["artifact"]
        lines += [
            f"- Artifact (seed {task['seeds'][0]['seed']}): [`{art['file']}`]({art['file']}) ({art['bytes']:,} B, sha256 "
            f"`{art['sha256']}`), sidecar [`{art['sidecar']}`]({art['sidecar']}).",
            "- Sizes of the same model: " + ", ".join(f"{k} {v:,} B" for k, v in art["sizes"].items()) + ".",
            f"- Recipe: `{task['recipe_path']}` — {task['recipe_summary']}.",
        ]
        for label, text in task["rows"]:
            lines.append(f"- {label}: {text}.")
        data = task["data"]
        for f in data.get("files", []):
            lines.append(f"- Data: `{f['path']}` (sha256 `{f['sha256']}`).")
        if "fingerprint" in data:
            lines.append("- Data fingerprint (sha256 over clip paths and contents): "
                         + ", ".join(f"{k} `{v[:16]}…`" for k, v in data["fingerprint"].items()) + ".")
        if task.get("data_note"):
            lines.append(f"- Data handling: {task['data_note']}.")
        for title, body in task.get("sections", []):
            lines += ["", f"### {title}", "", body, ""]
        built = task["build"].get("built_on") or {}
        if built:
            lines.append(f"- Built on: {built.get('cpu')}{_cpu_id_text(built.get('cpu_id') or {})} "
                         f"({', '.join(built.get('cpu_flags', []))})"
                         + (f"; numpy's OpenBLAS kernels: {built['openblas_core']}" if built.get("openblas_core") else "")
                         + ".")
        lines.append("- Stage times: " + ", ".join(f"{k} {v:.1f} s" for k, v in task["seconds"].items())
                     + _build_sources_text(task) + ".")
        lines.append("")
    return "\n".join(lines)


def version_latex(rep: dict) -> str:
    parts = [f"% {rep['suite']} version {rep['version']} — generated by the harness, commit {rep['commit']}"]
    for task in rep["tasks"]:
        parts.append(f"% {task['title']}: {task_verdict(task)}")
        parts.append(_check_table(task, "latex_booktabs"))
    return "\n".join(parts) + "\n"


def write_version(folder: Path, rep: dict) -> Path:
    atomic.write_json(folder / "report.json", rep)
    return write_pages(folder / "report.md", rep)


def write_pages(page: Path, rep: dict) -> Path:
    # Rendered from the record as stored (keys sorted), so a page re-rendered later is the same page.
    rep = atomic.as_stored(rep)
    atomic.write_text(page.with_suffix(".tex"), version_latex(rep))
    return atomic.write_text(page, version_markdown(rep))


def _beside(task: dict) -> str:
    """What makes a task a run beside the version's own table ("" for the version's own): another evaluation
    profile or a variant recipe."""
    parts = []
    profile = (task.get("data") or {}).get("profile", {}).get("name")
    if profile and profile != "course":
        parts.append(f"profile {profile}")
    if "/variants/" in task.get("recipe_path", ""):  # a recipe run beside the version's own
        parts.append(f"variant `{Path(task['recipe_path']).stem}`")
    return ", ".join(parts)


def summary_rows(reports: list[dict]) -> tuple[list[list[str]], list[list[str]]]:
    """(the versions' own rows, rows run beside them), each in suite and version order."""
    own, beside = [], []
    for rep in sorted(reports, key=lambda r: (r["suite"], r["version"], r.get("_path", ""))):
        for task in rep["tasks"]:
            measured = "; ".join(f"{short_label(c['label'])} {c['measured_text']}" for c in task["checks"])
            status = task_verdict(task)
            if rep["constraints"]["status"] == "reconstructed":
                status += " (reconstructed limits)"
            if any(b["passes_all"] and not b.get("reference") for b in task.get("baselines", [])):
                status += "; a trivial baseline passes too"
            extra = _beside(task)
            title = task["title"] + (f", {extra}" if extra else "")
            (beside if extra else own).append(
                [rep["suite"], f"[{rep['version']}]({rep.get('_path', '')})", title, measured, status])
    return own, beside


def summary_markdown(reports: list[dict], title: str) -> str:
    commits = sorted({t.get("commit", r["commit"]) for r in reports for t in r["tasks"]})
    hosts = sorted({line for r in reports for line, _ in task_hosts(r)})
    headers = ["Suite", "Version", "Task", "Measured (shipped artifact)", "Result"]
    own, beside = summary_rows(reports)
    body = tabulate(own, headers=headers, tablefmt="github", disable_numparse=True) if own else ""
    if beside:  # other profiles and variant recipes answer other questions: kept apart from the versions' verdicts
        body += ("\n\n## Beside the versions: other evaluation profiles and variant recipes\n\n"
                 "Each row is the same version's limits applied to another profile or recipe; the versions' own "
                 "verdicts are the table above.\n\n"
                 + tabulate(beside, headers=headers, tablefmt="github", disable_numparse=True))
    return (f"# {title}\n\nGenerated from the per-version JSON reports (commits: {', '.join(commits)}). "
            f"Latency host: {'; '.join(hosts)} — not the course's Raspberry Pi or Deepnote.\n\n{body.strip()}\n")


def missed_section(missed: list[dict], n_seeds: int, split: str, show: int = 20) -> tuple[str, str]:
    always = sum(1 for r in missed if len(r["seeds"]) == n_seeds)
    rows = [[f"`{r['item']}`", f"{len(r['seeds'])}/{n_seeds}", ", ".join(sorted(set(r["answers"])))] for r in missed[:show]]
    body = (f"{len(missed)} {split} item(s) are missed by at least one seed, {always} by every seed. This is a diagnosis "
            f"of the verdict; nothing is chosen from it."
            + (f" The {show} most missed are listed; the JSON has all." if len(missed) > show else "") + "\n\n"
            + tabulate(rows, headers=["Item", "Seeds missing it", "True → predicted"], tablefmt="github", disable_numparse=True))
    return f"Items the seeds get wrong ({split} split)", body


_SOURCE_WORDS = {"pool": "made by this command's shared pool before the versions measured (its time is in the run "
                        "record, not here)",
                "cache": "read from the build cache an earlier command left"}


def _build_sources_text(task: dict) -> str:
    """Where the builds timed above came from; records written before `build_sources` only knew "from the cache"."""
    sources = task.get("build_sources")
    if sources is None:
        return (" (builds read from the build cache, made earlier by this command's shared pool or by an "
                "earlier command: the run record counts which)" if task["build_cached"] else "")
    parts = [f"{n} build(s) {_SOURCE_WORDS[src]}" for src, n in sources.items() if src in _SOURCE_WORDS]
    return f" ({'; '.join(parts)})" if parts else ""


def _cpu_id_text(cpu_id: dict) -> str:
    """", family 25 model 17 stepping 1, L2 1024 KiB, L3 32768 KiB" (empty for records made before it was kept)."""
    parts = [" ".join(f"{k} {cpu_id[k]}" for k in ("family", "model", "stepping") if k in cpu_id)]
    parts += [f"{level} {kib} KiB" for level, kib in cpu_id.get("cache_kib", {}).items() if level in ("L2", "L3")]
    return "".join(f", {p}" for p in parts if p)
