"""A results folder's report.json files read back: every one checked, a broken one named, never skipped unseen;
the summaries and re-rendered pages are built from them."""
from __future__ import annotations

import json
from pathlib import Path

from harness.core.errors import HarnessError
from harness.pipeline.report import write_pages, summary_markdown, version_latex, version_markdown
from harness.toolkit import atomic


def _problem(rep) -> str | None:
    """Why a parsed report.json cannot be summarized or re-rendered, or None when it can."""
    if not isinstance(rep, dict):
        return f"holds a JSON {type(rep).__name__}, not a version report (an object)"
    for key in ("suite", "version", "commit"):
        if key not in rep:
            return f"lacks the key {key!r}"
        if not isinstance(rep[key], str):
            return f"its {key!r} is a {type(rep[key]).__name__}, not text"
    if not isinstance(rep.get("tasks"), list):
        return "lacks the list 'tasks'" if "tasks" not in rep else "its 'tasks' is not a list"
    try:  # the summary row and the page are what is read from it: rendering both is the test
        summary_markdown([rep], "check")
        record = atomic.as_stored(rep)
        version_markdown(record)
        version_latex(record)
    except KeyError as e:
        return f"lacks the key {e} the summary and page need"
    except (TypeError, AttributeError, ValueError, IndexError) as e:
        return f"has a field of the wrong type ({' '.join(str(e).split())})"
    return None


def _read_report(p: Path):
    """(report, None) or (None, why the file is broken)."""
    try:
        raw = p.read_bytes()
    except OSError as e:
        return None, f"cannot be read ({e.strerror or e})"
    try:
        rep = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as e:
        return None, f"is not UTF-8 text (byte {e.start})"
    except json.JSONDecodeError as e:
        return None, f"is not valid JSON ({e.msg}: line {e.lineno}, column {e.colno}; cut short?)"
    except RecursionError:
        return None, "is not valid JSON (nested too deep)"
    problem = _problem(rep)
    return (None, problem) if problem else (rep, None)


def load_reports(folder: Path, broken: dict[str, str] | None = None) -> list[dict]:
    """Every version's report.json under folder. A broken one (unreadable, not JSON, not a version report) raises
    one HarnessError naming every such file; given a dict `broken`, it is left out and recorded there instead
    (path -> why)."""
    folder = Path(folder)
    out, bad = [], {}
    for p in sorted(folder.glob("**/version-*/report.json")):
        if any(part.startswith(".") for part in p.relative_to(folder).parts):
            continue  # staging or backup folders
        rep, why = _read_report(p)
        if why:
            bad[str(p)] = why
            continue
        rep["_path"] = str(p.relative_to(folder).with_name("report.md"))  # for links from folder/summary.md
        out.append(rep)
    if bad and broken is None:
        raise HarnessError(f"{_broken_text(bad)}; the summaries read every version's report.json: "
                           "rerun that version or remove its folder")
    if broken is not None:
        broken.update(bad)
    return out


def _broken_text(bad: dict[str, str]) -> str:
    return "; ".join(f"{path}: {why}" for path, why in sorted(bad.items()))


def rerender(folder: Path) -> list[Path]:
    """Rewrite every version's report.md and report.tex from its report.json (the JSON is the record)."""
    written = []
    for rep in load_reports(folder):
        written.append(write_pages(Path(folder) / rep.pop("_path"), rep))
    return written


def write_summaries(out_dir: Path, suite: str, log=print) -> None:
    """The suite's and the folder's summary.md. A broken report.json is left out of them, and one line naming it
    goes to `log` (the run that calls this has already written its own report)."""
    broken: dict[str, str] = {}
    suite_reports = load_reports(out_dir / suite, broken)
    if suite_reports:
        atomic.write_text(out_dir / suite / "summary.md", summary_markdown(suite_reports, f"{suite}: summary"))
    all_reports = load_reports(out_dir, broken)
    if all_reports:
        atomic.write_text(out_dir / "summary.md", summary_markdown(all_reports, "All suites: summary"))
    if broken:
        log(f"warning: left out of the summaries: {_broken_text(broken)}")
