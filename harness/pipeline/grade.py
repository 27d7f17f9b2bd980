"""Grade a folder of submissions: one sub-folder per team -> a leaderboard per version (markdown, LaTeX, JSON).

Every file is measured by `check` (same code, protocols and table). Submissions run one at a time in a
worker process that keeps the data and features in memory; a submission that kills the worker (a segfault
in the interpreter, a hang past the timeout) gets a FAIL row with the reason and a fresh worker takes the
rest. A broken submission never stops the batch.

File names say the task and version, as the assignments asked: <team>_<task>_<version>.tflite[.zlib|.zip]
(e.g. Group2_kws_b.tflite.zlib, Group12_th_a.tflite.zlib). A suite with one version and one task accepts
any model file name.
"""
from __future__ import annotations

import multiprocessing
import re
import signal
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

from tabulate import tabulate

from harness.core import check, constraints
from harness.core.errors import HarnessError
from harness.core.paths import rel
from harness.core.task import Context
from harness.core.task import get as get_task
from harness.pipeline import publish, report, workers
from harness.toolkit import atomic, hostinfo, package

NAME = re.compile(r"^(?P<stem>.+)_(?P<task>[A-Za-z]+)_(?P<version>[A-Za-z])$")


@dataclass
class Submission:
    team: str
    path: Path
    version: str | None = None
    task: str | None = None
    options: dict = field(default_factory=dict)
    problem: str | None = None  # a reason to FAIL without measuring (bad name, missing args file)


def _model_files(folder: Path) -> list[Path]:
    """Model files by name; a link to nothing stays in the list, so its row can say so instead of vanishing."""
    return sorted(p for p in folder.iterdir() if (p.is_file() or p.is_symlink()) and not p.name.startswith(".")
                  and p.name.lower().endswith(package.SUBMITTED_SUFFIXES))


def discover(root: Path, suite: str, versions: list[str], constraints_dir: Path) -> list[Submission]:
    """Every model file of every team folder, with its version, task and check options (or the problem)."""
    cons = {v: constraints.load(suite, v, root=constraints_dir) for v in versions}
    words = {}
    for c in cons.values():
        for name in c.tasks:
            for w in get_task(name).submission_names:
                words[w.lower()] = name
    # a name may be left out only when the suite itself has one version with one task, not when --version picked one
    every = constraints.versions(suite, root=constraints_dir)
    single = len(every) == 1 and len(cons) == 1 and len(next(iter(cons.values())).tasks) == 1
    teams = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not teams:
        raise HarnessError(f"{root}: no team folders (expected one sub-folder per team holding its files)")
    out = []
    for team in teams:
        files = _model_files(team)
        if not files:
            out.append(Submission(team.name, team, problem="no model file (.tflite, .tflite.zlib, .tflite.zip) in the folder"))
            continue
        for path in files:
            sub = Submission(team.name, path)
            m = NAME.match(package.stem_of(path.name))
            if m and m["version"].lower() in every and m["version"].lower() not in cons:
                continue  # another version's file: graded on that version's board
            if m and m["task"].lower() in words and m["version"].lower() in cons:
                sub.task, sub.version = words[m["task"].lower()], m["version"].lower()
            elif single:
                sub.version = next(iter(cons))
                sub.task = cons[sub.version].tasks[0]
            else:
                sub.problem = (f"the file name does not say a task and version of {suite} (expected <team>_<task>_<version>"
                               f".tflite[.zlib|.zip] with task one of {', '.join(sorted(words))} and version one of "
                               f"{', '.join(versions)})")
            if sub.task and sub.task not in cons[sub.version].tasks:
                sub.problem = f"{suite} version {sub.version} has no {sub.task} task"
            if not path.is_file():
                sub.problem = f"{path.name} is a link to {path.readlink()}, which is not there"
            if sub.problem is None:
                try:
                    sub.options = get_task(sub.task).submission_options(team, path)
                except HarnessError as e:
                    sub.problem = str(e)
            out.append(sub)
    return out


# --------------------------------------------------------------------------------------------
# Crash-isolated measurement


def _serve(conn, payload: dict) -> None:
    """Worker process: check one submission per message until told to stop."""
    from harness.core.task import register
    from harness.toolkit.tfsetup import native_stderr_silenced

    for name, module in payload["tasks"].items():
        register(name, module)
    with native_stderr_silenced():  # the worker's whole life
        _serve_checks(conn, payload)


def _serve_checks(conn, payload: dict) -> None:
    from harness.pipeline import check_file

    _import_what_a_check_loads(payload["tasks"])
    ctx = Context(data_dir=Path(payload["data_dir"]), log=lambda m: None, options=payload["options"])
    conn.send("ready")  # imports done: from here on the timeout measures one submission only
    while True:
        job = conn.recv()
        if job is None:
            return
        try:
            rep = check_file.check_file(replace(ctx, options={**payload["options"], **job["options"]}), Path(job["path"]),
                                        payload["suite"], job["version"], job["task"],
                                        constraints_dir=Path(payload["constraints_dir"]))
            rep.pop("details", None)
            conn.send({"ok": True, "rep": rep})
        except HarnessError as e:
            conn.send({"ok": False, "reason": str(e)})
        except Exception as e:  # anything a broken file makes the code raise is that file's FAIL, not the batch's
            conn.send({"ok": False, "reason": f"{type(e).__name__}: {' '.join(str(e).split())[:300]}"})


def _import_what_a_check_loads(task_names) -> None:
    """The task modules and every runtime a check loads the file with (TensorFlow among them) are imported
    before "ready": a first submission must not spend its timeout on imports (many seconds without bytecode)."""
    from harness.core.task import get
    from harness.toolkit.measure.interpreter import RUNTIMES

    for name in task_names:
        get(name)
    for _, _, load in RUNTIMES:
        try:
            load()
        except ImportError:
            pass


STARTUP_S = 300


class Worker:
    def __init__(self, payload: dict):
        self.conn, child = multiprocessing.Pipe()
        self.proc = workers.process(_serve, (child, payload))
        self.proc.start()
        child.close()
        try:
            ready = self.conn.poll(STARTUP_S) and self.conn.recv() == "ready"
        except (EOFError, ConnectionError):
            ready = False
        if not ready:
            self.stop(kill=True)
            raise HarnessError(f"the measuring process did not start within {STARTUP_S} s (exit code {self.proc.exitcode})")

    def check(self, job: dict, timeout_s: float) -> dict:
        self.conn.send(job)
        if not self.conn.poll(timeout_s):
            self.stop(kill=True)
            return {"ok": False, "crashed": True, "reason": f"no answer within {timeout_s:.0f} s: the measurement was stopped"}
        try:
            return self.conn.recv()
        except (EOFError, ConnectionError):
            self.proc.join(5)
            code = self.proc.exitcode
            how = (f"killed by {signal.Signals(-code).name}" if code is not None and code < 0 and -code in signal.valid_signals()
                   else f"exit code {code}")
            return {"ok": False, "crashed": True, "reason": f"the model crashed the measuring process ({how})"}

    def stop(self, kill: bool = False) -> None:
        if not kill and self.proc.is_alive():
            try:
                self.conn.send(None)
                self.proc.join(10)
            except (OSError, ValueError):
                pass
        if self.proc.is_alive():
            self.proc.kill()
            self.proc.join(5)


def measure_all(subs: list[Submission], suite: str, data_dir: Path, options: dict, constraints_dir: Path,
                log=print, timeout_s: float = 600.0) -> list[dict]:
    names = {s.task for s in subs if s.task}
    payload = {"tasks": {n: type(get_task(n)).__module__ for n in names}, "data_dir": str(data_dir),
               "options": options, "suite": suite, "constraints_dir": str(constraints_dir)}
    results, worker = [], None
    try:
        for i, s in enumerate(subs, 1):
            started = time.perf_counter()
            if s.problem:
                res = {"ok": False, "reason": s.problem}
            else:
                worker = worker or Worker(payload)
                res = worker.check({"path": str(s.path), "version": s.version, "task": s.task, "options": s.options},
                                   timeout_s)
                if res.get("crashed"):
                    worker = None  # the next submission gets a fresh process
            res["seconds"] = time.perf_counter() - started
            verdict = ("PASS" if res["rep"]["passed"] else "FAIL") if res["ok"] else f"FAIL ({res['reason']})"
            log(f"  [{i}/{len(subs)}] {s.team}/{s.path.name}: {verdict} ({res['seconds']:.1f} s)")
            results.append(res)
    finally:
        if worker:
            worker.stop()
    return results


# --------------------------------------------------------------------------------------------
# Leaderboards


def _rank_key(task, section: dict, rep: dict | None, grading: str):
    """Sort key: passing (or points) first, then the task's objectives (e.g. accuracy, then size)."""
    if rep is None:
        return (1, 0, [])
    points = sum(1 for c in rep["checks"] if c["passed"])
    metrics = {c["metric"]: c["measured"] for c in rep["checks"]}
    values = []
    for (name, direction), v in zip(task.objectives(section), _objective_values(task, section, metrics)):
        values.append(v if direction == "minimize" else -v)
    return (0, -(points if grading == "per-limit" else int(rep["passed"])), values)


def _objective_values(task, section, metrics):
    try:
        return task.objective_values(section, metrics)
    except (KeyError, ValueError, TypeError):
        return []


def rank_rule(task, section: dict, grading: str) -> str:
    first = ("points (one per limit met, as the edition grades)" if grading == "per-limit"
             else "submissions meeting every limit (the edition requires all of them together)")
    labels = {lim.metric: report.short_label(lim.label) for lim in task.limits}
    labels["worst_limit_ratio"] = "the worst metric / limit ratio"
    then = ", then ".join(f"{labels.get(n) or task.objective_label(n)} ({'lower' if d == 'minimize' else 'higher'} first)"
                          for n, d in task.objectives(section))
    return f"{first} first, then {then}; submissions that could not be measured last"


def _inside(text: str, root: Path) -> str:
    """Paths inside the graded folder as <folder>/team/file: a leaderboard reads the same wherever it was graded."""
    return text.replace(str(root.resolve()), root.name).replace(str(root), root.name)


def leaderboard(suite: str, version: str, task_name: str, subs: list[Submission], results: list[dict],
                constraints_dir: Path, root: Path) -> dict:
    cons = constraints.load(suite, version, root=constraints_dir)
    task, section = get_task(task_name), cons.task(task_name)
    grading = cons.data.get("grading", "all-limits")
    rows = []
    for s, res in zip(subs, results):
        rep = res.get("rep") if res["ok"] else None
        if rep:
            rep["assumptions"] = [_inside(a, root) for a in rep["assumptions"]]
        rows.append({"team": s.team, "file": s.path.name, "rep": rep, "reason": None if rep else _inside(res["reason"], root),
                     "key": _rank_key(task, section, rep, grading), "seconds": res["seconds"]})
    rows.sort(key=lambda r: (r["key"], r["team"]))
    rank, prev = 0, None
    for i, r in enumerate(rows, 1):
        if r["key"] != prev:
            rank, prev = i, r["key"]
        r["rank"] = rank if r["rep"] else None
    labels = [(lim.metric, lim.label) for lim in task.limits]
    return {"suite": suite, "version": version, "task": task_name, "title": task.title, "constraints": cons.rel_path,
            "grading": grading, "rank_rule": rank_rule(task, section, grading), "metrics": labels,
            "host_line": hostinfo.host_line(), "commit": hostinfo.commit(),
            "rows": [{k: v for k, v in r.items() if k != "key"} for r in rows]}


def _cells(board: dict, r: dict) -> list[str]:
    rep = r["rep"]
    by = {c["metric"]: c for c in rep["checks"]} if rep else {}
    cells = [str(r["rank"]) if r["rank"] else "—", r["team"], f"`{r['file']}`"]
    cells += [by[m]["measured_text"] + ("" if by[m]["passed"] is not False else " ✗") if m in by else "—"
              for m, _ in board["metrics"]]
    if rep:
        points = sum(1 for c in rep["checks"] if c["passed"])
        verdict = "PASS" if rep["passed"] else "FAIL"
        if check.marginal_pass(rep):
            verdict += ", marginal"
        if board["grading"] == "per-limit":
            verdict += f" ({points}/{sum(1 for c in rep['checks'] if c['passed'] is not None)} points)"
        cells.append(verdict)
    else:
        cells.append(f"FAIL: {r['reason']}")
    return cells


def _table(board: dict, fmt: str) -> str:
    headers = ["Rank", "Team", "File"] + [report.short_label(label) for _, label in board["metrics"]] + ["Verdict"]
    rows = [_cells(board, r) for r in board["rows"]]
    if fmt == "github":  # a '|' inside a cell would split it
        rows = [[c.replace("|", "\\|") for c in row] for row in rows]
    return tabulate(rows, headers=headers, tablefmt=fmt, disable_numparse=True)


def board_markdown(board: dict, source: str) -> str:
    lines = [f"# Leaderboard — {board['suite']} version {board['version']}, {board['title']}", "",
             f"- Submissions: `{source}` ({len(board['rows'])} file(s)); constraints `{board['constraints']}`; "
             "every file measured by `python -m harness check` (same code and protocols as `run`).",
             f"- Rank: {board['rank_rule']}. ✗ marks a limit the file misses; *marginal*: a PASS whose 95 % "
             "interval reaches a limit (another test draw could fail it).",
             f"- Latency host: {board['host_line']} — not the course's device.", "", _table(board, "github"), ""]
    for r in board["rows"]:
        if r["rep"] and r["rep"].get("assumptions"):
            lines.append(f"- {r['team']} (`{r['file']}`): " + "; ".join(r["rep"]["assumptions"]) + ".")
    return "\n".join(lines) + "\n"


def grade(ctx: Context, root: Path, suite: str, versions: list[str] | None, out_dir: Path,
          constraints_dir: Path | None = None, timeout_s: float = 600.0) -> dict:
    root = Path(root)
    if not root.is_dir():
        raise HarnessError(f"{root}: not a folder of team sub-folders")
    cdir = constraints_dir or constraints.CONSTRAINTS_DIR
    versions = versions or constraints.versions(suite, root=cdir)
    subs = discover(root, suite, versions, cdir)
    ctx.log(f"grade {root}: {len(subs)} submission(s) from {len({s.team for s in subs})} team(s), {suite}")
    for v, t in sorted({(s.version, s.task) for s in subs if s.task and not s.problem}):
        get_task(t).ensure_data(ctx, constraints.load(suite, v, root=cdir).task(t))  # the grader's data, checked once
    results = measure_all(subs, suite, ctx.data_dir, ctx.options, cdir, log=ctx.log, timeout_s=timeout_s)
    final = Path(out_dir) / suite / f"grade-{root.name}"
    boards = []
    with publish.together(final, "leaderboards") as staging:
        every = [(v, t) for v in versions for t in constraints.load(suite, v, root=cdir).tasks]
        groups: dict[tuple[str, str], list[int]] = {}
        for i, s in enumerate(subs):  # a file whose name says no version is listed on every board
            for pair in ([(s.version, s.task)] if s.task else every):
                groups.setdefault(pair, []).append(i)
        for (v, t), idx in sorted(groups.items()):
            board = leaderboard(suite, v, t, [subs[i] for i in idx], [results[i] for i in idx], cdir, root)
            name = f"leaderboard-{v}-{t}"
            atomic.write_json(staging / f"{name}.json", board)
            atomic.write_text(staging / f"{name}.tex", f"% {board['suite']} version {v}, {board['title']}\n"
                              + _table(board, "latex_booktabs") + "\n")
            atomic.write_text(staging / f"{name}.md", board_markdown(board, root.name))
            boards.append(board)
    return {"folder": rel(final), "boards": boards}
