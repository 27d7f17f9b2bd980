"""Nothing wrong, nothing lost: verified caches, runs that commit as a unit, non-finite numbers, torn journals, OS faults."""
import errno
import hashlib
import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from harness.core import constraints
from harness.core.config import Field, validate
from harness.core.errors import HarnessError
from harness.core.task import Context
from harness.pipeline import publish, run, search
from harness.toolkit import atomic, datasets, hostinfo

OVERRIDES = ["train.epochs=1", "train.batch_size=128"]


def _run(tmp_path, jena_slice, out, **kw):
    ctx = Context(data_dir=tmp_path, options={"jena": [jena_slice]}, log=kw.pop("log", lambda m: None))
    return run.run_version(ctx, "ml4iot-2022", "a", tasks=["forecast"], out_dir=out, overrides=OVERRIDES, **kw)


def _snapshot(folder: Path) -> dict:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("damage", ["valid-other-model", "garbage", "bad-record"])
def test_a_damaged_cache_entry_is_reported_and_rebuilt(tmp_path, jena_slice, damage):
    first = _run(tmp_path, jena_slice, tmp_path / "a")["tasks"][0]
    entry = datasets.cache_dir() / "builds" / first["seeds"][0]["build_key"]
    if damage == "valid-other-model":  # still a loadable model, but not the one the record names
        other = _run(tmp_path, jena_slice, tmp_path / "b", seeds=2)["tasks"][0]
        other_entry = datasets.cache_dir() / "builds" / other["seeds"][1]["build_key"]
        (entry / "model.tflite").write_bytes((other_entry / "model.tflite").read_bytes())
    elif damage == "garbage":
        (entry / "model.tflite").write_bytes(b"\0" * 100)
    else:
        (entry / "build.json").write_text("{ not json")
    logs = []
    again = _run(tmp_path, jena_slice, tmp_path / "c", log=logs.append)["tasks"][0]
    assert not again["build_cached"]
    assert again["artifact"]["sha256"] == first["artifact"]["sha256"]
    assert any(str(entry) in line and ("damaged" in line or "unreadable" in line) for line in logs)


def _cache_entry(key: str, **fields) -> Path:
    """A build cache entry whose model matches its recorded sha256, with the record's other fields as given."""
    entry = datasets.cache_dir() / "builds" / key
    entry.mkdir(parents=True)
    (entry / "model.tflite").write_bytes(b"model bytes")
    record = {"tflite_sha256": hashlib.sha256(b"model bytes").hexdigest(), **fields}
    (entry / "build.json").write_text(json.dumps(record))
    return entry


@pytest.mark.parametrize("fields", [
    {"report_rows": "abc"}, {"report_rows": [["only a label"]]}, {"report_rows": [["label", 3]]},
    {"sizes_without_front_end": [1, 2, 3]}, {"sizes_without_front_end": {"tflite": "1 kB", "zlib": 1, "zip": 1}},
    {"sizes_without_front_end": {"tflite": 1}}, {"selected_epoch": "3"}, {"selected_epoch": True},
    {"built_on": "a host"}, {"built_on": {"cpu_flags": "avx"}}, {"built_on": {"cpu_id": {"cache_kib": [1]}}},
], ids=repr)
def test_a_cache_record_with_a_field_of_the_wrong_type_is_reported_and_rebuilt(tmp_path, monkeypatch, fields):
    from harness.pipeline import builds

    monkeypatch.setenv(datasets.CACHE_DIR_ENV, str(tmp_path))
    good = _cache_entry("good", report_rows=[["label", "text"]], selected_epoch=3, built_on=hostinfo.build_host(),
                        sizes_without_front_end={"tflite": 3, "zlib": 2, "zip": 1})
    assert builds.load_cached("good", print) is not None  # what build_and_store writes is trusted
    entry = _cache_entry("bad", **fields)
    logs = []
    assert builds.load_cached("bad", logs.append) is None
    assert not entry.exists() and good.exists()
    assert len(logs) == 1 and str(entry) in logs[0] and "unreadable" in logs[0] and logs[0].endswith("rebuilding")


def test_same_size_corruption_of_a_clip_changes_the_data_fingerprint(tmp_path):
    from tasks.kws import data as msc

    root = tmp_path / "mini_speech_commands"
    for label in ("go", "stop"):
        (root / label).mkdir(parents=True)
        for i in range(2):
            sf.write(root / label / f"{label}{i}_nohash_0.wav", np.full(800, 100 * (i + 1), np.int16), 16000,
                     subtype="PCM_16")
    before = msc.open_folder(root).fingerprint()
    clip = root / "go" / "go0_nohash_0.wav"
    raw = bytearray(clip.read_bytes())
    raw[-10:] = b"\x7f" * 10  # same size, other samples
    clip.write_bytes(bytes(raw))
    assert msc.open_folder(root).fingerprint() != before


@pytest.mark.parametrize("text", ["inf", "nan", "-inf", "[1.0, nan]"])
def test_non_finite_numbers_are_rejected_with_file_and_key(text):
    with pytest.raises(HarnessError, match=r"f.toml: key 'x' must be a finite number"):
        validate(__import__("tomllib").loads(f"x = {text}"), {"x": Field((float, list))}, "f.toml")


def test_non_finite_limit_in_a_constraint_file(tmp_path):
    src = constraints.CONSTRAINTS_DIR / "ml4iot-2022" / "version-a.toml"
    folder = tmp_path / "ml4iot-2022"
    folder.mkdir()
    (folder / "version-a.toml").write_text(src.read_text().replace("max_mae_t_degc = 0.3", "max_mae_t_degc = inf"))
    with pytest.raises(HarnessError, match=r"version-a.toml: key 'forecast.max_mae_t_degc' must be a finite number"):
        constraints.load_file(folder / "version-a.toml")


def test_non_finite_recipe_values_and_overrides():
    from harness.core import recipes
    from harness.core.task import get

    task = get("forecast")
    path = recipes.default_path(task, "ml4iot-2022", "a")
    with pytest.raises(HarnessError, match="train.learning_rate' must be a finite number"):
        recipes.load(path, task, ["train.learning_rate=nan"])
    with pytest.raises(HarnessError, match="final_learning_rate"):
        recipes.load(path, task, ["train.final_learning_rate=-1e-3"])


def test_a_run_that_fails_late_leaves_the_previous_set_untouched(tmp_path, jena_slice, monkeypatch):
    out = tmp_path / "results"
    _run(tmp_path, jena_slice, out)
    version = out / "ml4iot-2022" / "version-a"
    before = _snapshot(version)

    def full(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device", str(version / "report.json"))

    monkeypatch.setattr(run.report, "write_version", full)
    with pytest.raises(HarnessError, match="No space left on device.*previous results .* are unchanged"):
        _run(tmp_path, jena_slice, out, seeds=2)
    assert _snapshot(version) == before
    assert [p.name for p in version.parent.iterdir() if p.name.startswith(".")] == []  # no staging left behind


def test_a_one_task_run_keeps_the_other_tasks_results(tmp_path, jena_slice):
    out = tmp_path / "results"
    _run(tmp_path, jena_slice, out)
    version = out / "ml4iot-2022" / "version-a"
    rep = json.loads((version / "report.json").read_text())
    kws = dict(rep["tasks"][0], task="kws", title="Keyword spotting", commit="older", finished_utc="2026-01-01 00:00 UTC")
    rep["tasks"].append(kws)
    atomic.write_json(version / "report.json", rep)
    (version / "kws").mkdir()
    (version / "kws" / "model.tflite").write_bytes(b"kept")
    new = _run(tmp_path, jena_slice, out)
    assert [t["task"] for t in new["tasks"]] == ["forecast", "kws"]
    assert new["tasks"][1]["commit"] == "older" and new["tasks"][1]["finished_utc"].startswith("2026-01-01")
    assert (version / "kws" / "model.tflite").read_bytes() == b"kept"
    assert "Keyword spotting" in (version / "report.md").read_text()


def test_an_interrupted_swap_is_recovered(tmp_path):
    final = tmp_path / "suite" / "version-a"
    final.mkdir(parents=True)
    (final / "report.json").write_text("{}")
    os.replace(final, final.with_name(".version-a.old"))  # killed between the two renames
    (final.parent / ".version-a.staging-999999999-0").mkdir()  # a dead run's staging folder
    (final.parent / ".summary.md.abc.tmp").write_text("half")
    publish.recover(final)
    assert (final / "report.json").read_text() == "{}"
    assert sorted(p.name for p in final.parent.iterdir()) == ["version-a"]


def test_output_folder_that_is_a_file_is_one_clear_error(tmp_path, jena_slice):
    blocker = tmp_path / "results"
    blocker.write_text("not a folder")
    with pytest.raises(HarnessError, match="results"):
        _run(tmp_path, jena_slice, blocker)


def test_written_files_follow_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        p = atomic.write_text(tmp_path / "a.txt", "x")
    finally:
        os.umask(old)
    assert p.stat().st_mode & 0o777 == 0o644


@pytest.mark.parametrize("interrupt", [OSError(errno.ENOSPC, "No space left on device"), KeyboardInterrupt()])
def test_a_write_that_fails_or_is_interrupted_leaves_the_old_file_and_no_temporary_one(tmp_path, monkeypatch, interrupt):
    target = atomic.write_text(tmp_path / "a.json", "old")

    def fail(src, dst):
        raise interrupt

    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(type(interrupt)):
        atomic.write_text(target, "new")
    assert target.read_text() == "old" and sorted(p.name for p in tmp_path.iterdir()) == ["a.json"]


def test_a_write_reaches_the_disk_in_the_target_folder_before_it_replaces_the_file(tmp_path, monkeypatch):
    """Flushed and synced first (a crash after the rename never leaves an empty file), and renamed within the folder
    (a rename across file systems is a copy, not atomic)."""
    steps = []
    real_fsync, real_replace = os.fsync, os.replace
    monkeypatch.setattr(os, "fsync", lambda fd: steps.append("fsync") or real_fsync(fd))
    monkeypatch.setattr(os, "replace", lambda src, dst: steps.append(("replace", Path(src).parent)) or real_replace(src, dst))
    atomic.write_bytes(tmp_path / "sub" / "m.bin", b"data")
    assert steps == ["fsync", ("replace", tmp_path / "sub")]
    assert (tmp_path / "sub" / "m.bin").read_bytes() == b"data"


def test_json_is_written_with_sorted_keys_indented_and_a_final_newline(tmp_path):
    p = atomic.write_json(tmp_path / "r.json", {"b": 1, "a": {"d": 2, "c": Path("x")}})
    assert p.read_text() == '{\n  "a": {\n    "c": "x",\n    "d": 2\n  },\n  "b": 1\n}\n'


def test_a_cut_journal_record_is_set_aside_and_the_study_resumes(tmp_path):
    import optuna

    path = tmp_path / "s.journal"
    study = optuna.create_study(storage=search.open_storage(str(path)), study_name="s", directions=["minimize"])
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=2)
    with open(path, "ab") as f:
        f.write(b'{"op_code": 5, "worker_id": "x", "trial_id": 1, "sta')  # a killed write
    logs = []
    assert search.repair_journal(path, log=logs.append) > 0 and "set aside" in logs[0]
    assert path.with_name("s.journal.torn").read_bytes().startswith(b'{"op_code": 5')
    study = optuna.load_study(storage=search.open_storage(str(path)), study_name="s")
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=1)
    assert len(study.trials) == 3
    assert search.repair_journal(path) == 0  # an intact journal is left alone


def test_a_refused_database_url_is_one_line_with_the_password_masked():
    with pytest.raises(HarnessError) as e:
        search.open_storage("postgresql://user:s3cret@127.0.0.1:1/db")
    assert "s3cret" not in str(e.value) and "***" in str(e.value) and "\n" not in str(e.value)


def test_every_run_command_leaves_a_record_and_the_benchmark_reads_the_full_run(tmp_path, jena_slice):
    """`run` writes <out>/runs/<stamp>.json (command, wall time, cached builds); `make bench` times the reference
    from the newest record of a full 5-seed run, not from the sum of version reports."""
    from benchmarks.quality import full_run_record, runtime_line
    from harness import cli

    out = tmp_path / "out"
    argv = ["run", "--suite", "ml4iot-2022", "--version", "a", "--task", "forecast", "--jena", str(jena_slice),
            "--data-dir", str(tmp_path), "--out", str(out)] + [a for o in OVERRIDES for a in ("--set", o)]
    assert cli.main(argv) == 0 and cli.main(argv) == 0
    records = [json.loads(p.read_text()) for p in sorted((out / "runs").glob("*.json"))]
    assert len(records) == 2 and records[0]["versions"] == ["ml4iot-2022/a"]
    assert (records[0]["builds"], records[0]["builds_cached"], records[1]["builds_cached"]) == (1, 0, 1)
    assert records[0]["builds_shared"] == 0 and not records[0]["every_version"]
    assert records[0]["wall_seconds"] > 0 and records[0]["command"].startswith("python -m harness run --suite ml4iot-2022")
    stages = records[0]["stage_seconds"]  # where the time went, kept beside the wall time
    assert stages["build (train + convert)"] > 0 == records[1]["stage_seconds"]["build (train + convert)"]  # cached
    assert all(isinstance(v, float) and 0 <= v <= records[0]["wall_seconds"] + 1 for v in stages.values())
    # neither is a full run (one suite, a task filter, overrides): the benchmark says it has no timing
    assert full_run_record(out) is None and "not measured" in runtime_line(out, 5400)
    full = dict(records[0], every_suite=True, every_version=True, tasks=None, overrides=None, seeds=5, wall_seconds=6000.0,
                builds_cached=0, finished_utc="2030-01-01 00:00:00 UTC")
    atomic.write_json(out / "runs" / "full.json", full)
    for i, partial in enumerate([{"seeds": 1}, {"every_version": False}, {"tasks": ["kws"]}, {"recipes": ["kws=x.toml"]}]):
        atomic.write_json(out / "runs" / f"partial{i}.json", dict(full, wall_seconds=10.0, finished_utc="2031-01-01 00:00:00 UTC", **partial))
    line = runtime_line(out, 5400)
    assert "6000 s" in line and "NOT met" in line and "from the cache" not in line


def test_a_run_builds_every_versions_seeds_on_one_pool_and_the_versions_then_only_measure(tmp_path, jena_slice, monkeypatch):
    """Per version, 5 seeds on 2 workers leave one idle while the fifth trains: the run builds its whole plan first."""
    from harness.pipeline import plan, run_all, workers

    pools, real_pool = [], workers.pool
    monkeypatch.setattr(workers, "pool", lambda jobs: pools.append(jobs) or real_pool(jobs))
    ctx = Context(data_dir=tmp_path, options={"jena": [jena_slice]}, log=lambda m: None)
    versions = [("ml4iot-2022", "a"), ("ml4iot-2022", "b")]
    res = run_all.run_plan(ctx, versions, ["forecast"], overrides=OVERRIDES, out_dir=tmp_path / "out", seeds=2, jobs=2)
    assert pools == [2]  # 2 versions × 2 seeds on one pool; the versions built nothing
    assert (res["builds"], res["builds_cached"], res["builds_shared"]) == (4, 0, 0)
    page = tmp_path / "out" / "ml4iot-2022" / "version-a" / "report.md"
    rep = json.loads(page.with_name("report.json").read_text())
    # the versions read the pool's builds from the cache, and the record does not take them for an earlier command's
    assert [s["build_source"] for s in rep["tasks"][0]["seeds"]] == ["pool", "pool"]
    assert rep["tasks"][0]["build_sources"] == {"pool": 2}
    assert "(2 build(s) made by this command's shared pool before the versions measured" in page.read_text()
    assert plan.build_all(ctx, plan.check(ctx, versions, ["forecast"], None, OVERRIDES), seeds=2, jobs=2)[0] == []
    res = run_all.run_plan(ctx, versions, ["forecast"], overrides=OVERRIDES, out_dir=tmp_path / "out", seeds=2, jobs=2)
    assert (res["builds"], res["builds_cached"], pools) == (4, 4, [2])  # from the cache, nothing built
    rep = run.run_version(ctx, "ml4iot-2022", "a", tasks=["forecast"], out_dir=tmp_path / "out", overrides=OVERRIDES,
                          seeds=2, jobs=2)
    assert [(s["build_cached"], s["build_source"]) for s in rep["tasks"][0]["seeds"]] == [(True, "cache")] * 2
    assert "(2 build(s) read from the build cache an earlier command left)" in page.read_text()
    assert "shared pool" not in page.read_text()


def test_the_commit_is_read_before_the_command_starts_and_then_kept(monkeypatch):
    """A long run names the code it started with, even if HEAD moves before it writes its reports."""
    import subprocess

    from harness import cli
    from harness.toolkit import hostinfo

    heads = iter(["aaaaaaaaaaaa", "bbbbbbbbbbbb"])  # HEAD moves between two reads
    seen = []

    def fake_run(cmd, **kw):
        out = next(heads) if "rev-parse" in cmd else ""
        return subprocess.CompletedProcess(cmd, 0, stdout=out + "\n", stderr="")

    hostinfo.commit.cache_clear()
    monkeypatch.setattr(subprocess, "run", fake_run)
    monkeypatch.setattr(cli, "cmd_list", lambda args: seen.append(hostinfo.commit.cache_info().currsize) or 0)
    try:
        assert cli.main(["list"]) == 0 and seen == [1]  # read before the command ran
        assert hostinfo.commit() == "aaaaaaaaaaaa" and hostinfo.commit() == "aaaaaaaaaaaa"
    finally:
        hostinfo.commit.cache_clear()


@pytest.mark.parametrize("head,status,stamp", [("abc\n", "", "abc"), ("abc\n", " M harness/cli.py\n", "abc+dirty"),
                                              (None, "", "unknown"), ("abc\n", None, "unknown")])
def test_the_commit_stamp_marks_uncommitted_code_and_never_guesses(monkeypatch, head, status, stamp):
    """A reference run must come from a clean commit: the stamp says '+dirty' when tracked code differs, and
    'unknown' when git cannot tell (no repository, git missing), never a clean-looking sha."""
    from harness.toolkit import hostinfo

    assert hostinfo.git("show", "no-such-object-anywhere") is None  # a failing git call gives None, not ""
    monkeypatch.setattr(hostinfo, "git", lambda *args, timeout=30: head if args[0] == "rev-parse" else status)
    hostinfo.commit.cache_clear()
    try:
        assert hostinfo.commit() == stamp
    finally:
        hostinfo.commit.cache_clear()


def test_the_commit_stamp_reads_a_real_repository_tracked_code_only(monkeypatch, tmp_path):
    """Run in a repository of its own: an untracked scratch file and a changed result do not mark the code
    '+dirty'; a changed tracked source file does."""
    from harness.toolkit import hostinfo

    repo = tmp_path / "repo"
    (repo / "results").mkdir(parents=True)
    (repo / "code.py").write_text("x = 1\n")
    (repo / "results" / "report.md").write_text("PASS\n")
    env = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"}
    for args in (["init", "-q"], ["add", "-A"], ["commit", "-qm", "first"]):
        subprocess.run(["git", *args], cwd=repo, check=True, env={**os.environ, **env}, capture_output=True)
    monkeypatch.setattr(hostinfo, "ROOT", repo)
    hostinfo.commit.cache_clear()
    try:
        sha = hostinfo.commit()
        assert len(sha) == 12 and not sha.endswith("+dirty")
        (repo / "scratch.txt").write_text("notes\n")
        (repo / "results" / "report.md").write_text("FAIL\n")
        hostinfo.commit.cache_clear()
        assert hostinfo.commit() == sha
        (repo / "code.py").write_text("x = 2\n")
        hostinfo.commit.cache_clear()
        assert hostinfo.commit() == sha + "+dirty"
    finally:
        hostinfo.commit.cache_clear()


PARENT = """
import sys, time
from harness.pipeline import workers

def main():
    if sys.argv[1] == "pool":  # run --jobs, cv --jobs
        pool = workers.pool(1)
        pool.submit(time.sleep, 600)
        while not pool._processes:
            time.sleep(0.05)
        pid = next(iter(pool._processes))
    else:  # grade's measuring process
        proc = workers.process(time.sleep, (600,))
        proc.start()
        pid = proc.pid
    print(pid, flush=True)
    time.sleep(600)

if __name__ == "__main__":
    main()
"""


@pytest.mark.parametrize("kind", ["pool", "process"])
def test_a_killed_command_takes_its_worker_processes_with_it(tmp_path, kind):
    """SIGKILL to a command running workers (a CI timeout, `kill -9`): no worker keeps training as an orphan."""
    import signal
    import subprocess
    import sys
    import time

    from harness.core.paths import ROOT

    script = tmp_path / "parent.py"
    script.write_text(PARENT)
    parent = subprocess.Popen([sys.executable, str(script), kind], stdout=subprocess.PIPE, text=True, cwd=ROOT,
                              env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        worker = int(parent.stdout.readline())
        time.sleep(1.0)  # the worker has asked to die with its parent: it is sleeping in its task now
        os.kill(worker, 0)  # alive
        parent.send_signal(signal.SIGKILL)
        parent.wait(10)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                os.kill(worker, 0)
            except ProcessLookupError:
                break
            if _zombie(worker):
                break
            time.sleep(0.1)
        else:
            os.kill(worker, signal.SIGKILL)
            pytest.fail(f"worker {worker} outlived its killed parent by 20 s")
    finally:
        parent.kill()


def test_a_worker_whose_parent_is_already_gone_stops_at_once():
    """The parent died before the worker could ask to die with it: the worker sees another parent and exits."""
    import sys

    from harness.core.paths import ROOT

    code = "import os; from harness.pipeline import workers; workers.die_with_parent(os.getppid() + 1); print('trained')"
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 1 and "trained" not in done.stdout


def test_workers_are_as_many_as_asked_and_a_measuring_process_never_keeps_the_command_waiting():
    from harness.pipeline import workers

    pool = workers.pool(3)
    try:
        assert pool._max_workers == 3
    finally:
        pool.shutdown()
    assert workers.process(print, ()).daemon


def _zombie(pid: int) -> bool:
    """A dead process not yet reaped (its new parent, init, reaps it later) counts as gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] == "Z"
    except OSError:
        return False


def _version_record(suite="toy", version="a"):
    """A minimal report.json of a version, as `run` writes it (enough for its page and the summaries)."""
    check = {"label": "MAE, test split", "metric": "mae", "limit_text": "< 0.5", "measured_text": "0.1000",
             "result": "PASS", "unit": "units", "passed": True}
    task = {"task": "toy", "title": "Toy regression", "commit": "c0ffee", "finished_utc": "2026-01-01 00:00 UTC",
            "seed_rule": "seed 1", "passed": True, "checks": [check],
            "seeds": [{"seed": 1, "shipped": True, "passed": True, "tflite_sha256": "ab" * 32, "checks": [check],
                       "val_metrics": {}}],
            "artifact": {"file": "toy/model.tflite", "bytes": 100, "sha256": "ab" * 32, "sidecar": "toy/model.json",
                         "sizes": {"tflite": 100}},
            "recipe_path": "tasks/toy/recipes/toy-a.toml", "recipe_summary": "dense", "rows": [], "data": {},
            "build": {}, "seconds": {"train": 1.0}, "build_cached": False}
    return {"suite": suite, "version": version, "commit": "c0ffee", "host_line": "Some CPU", "passed": True,
            "constraints": {"path": "constraints/toy/version-a.toml", "status": "official", "academic_year": "test",
                            "kilobyte_bytes": 1000},
            "tasks": [task]}


def test_a_page_says_where_its_builds_came_from_and_keeps_the_old_wording_for_older_records():
    from harness.pipeline import report

    def stage_line(**task_fields):
        rec = _version_record()
        rec["tasks"][0].update(task_fields)
        return next(line for line in report.version_markdown(rec).splitlines() if line.startswith("- Stage times"))

    assert stage_line(build_cached=False, build_sources={"built": 2}) == "- Stage times: train 1.0 s."
    assert "(1 build(s) made by this command's shared pool before the versions measured" in stage_line(
        build_cached=True, build_sources={"pool": 1})
    mixed = stage_line(build_cached=True, build_sources={"built": 1, "pool": 2, "cache": 3})
    assert "2 build(s) made by this command's shared pool" in mixed and "3 build(s) read from the build cache an " \
        "earlier command left" in mixed and "1 build" not in mixed
    # a record from before `build_sources` knew only "from the cache": the page does not guess which command made them
    assert "made earlier by this command's shared pool or by an earlier command" in stage_line(build_cached=True)


BROKEN_REPORTS = {
    "a list": b"[]",
    "no commit": b'{"suite": "toy", "version": "b"}',
    "not utf-8": b'{"suite": "toy\xff\xfe"}',
    "cut short": b'{"suite": "toy", "version": "b", "tas',
    "a task without checks": json.dumps({**_version_record(version="b"), "tasks": [{"title": "x"}]}).encode(),
}


def _results_with(tmp_path, broken: bytes) -> Path:
    out = tmp_path / "results"
    atomic.write_json(out / "toy" / "version-a" / "report.json", _version_record())
    bad = out / "toy" / "version-b" / "report.json"
    bad.parent.mkdir(parents=True)
    bad.write_bytes(broken)
    return out


@pytest.mark.parametrize("broken", BROKEN_REPORTS.values(), ids=BROKEN_REPORTS.keys())
def test_summarize_refuses_a_broken_report_in_one_line_naming_it(tmp_path, capsys, monkeypatch, broken):
    from harness import cli

    monkeypatch.setenv("HARNESS_VERBOSE", "1")  # keep this process's stderr where capsys reads it
    out = _results_with(tmp_path, broken)
    assert cli.main(["summarize", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and str(out / "toy" / "version-b" / "report.json") in err[0]
    assert not (out / "summary.md").exists() and not (out / "toy" / "version-a" / "report.md").exists()


def test_summarize_names_every_broken_report_and_a_lone_broken_one_is_not_no_reports(tmp_path, capsys, monkeypatch):
    from harness import cli

    monkeypatch.setenv("HARNESS_VERBOSE", "1")
    out = tmp_path / "results"
    for v, raw in (("a", b"[]"), ("b", b"{")):
        (out / "toy" / f"version-{v}").mkdir(parents=True)
        (out / "toy" / f"version-{v}" / "report.json").write_bytes(raw)
    assert cli.main(["summarize", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "version-a/report.json" in err and "version-b/report.json" in err and "no version reports" not in err


@pytest.mark.parametrize("broken", BROKEN_REPORTS.values(), ids=BROKEN_REPORTS.keys())
def test_the_summaries_after_a_run_leave_a_broken_report_out_and_say_so(tmp_path, broken):
    out = _results_with(tmp_path, broken)
    lines = []
    run.report_files.write_summaries(out, "toy", log=lines.append)  # what `run` calls once its own report is written
    assert len(lines) == 1 and lines[0].startswith("warning:") and str(out / "toy" / "version-b" / "report.json") in lines[0]
    for summary in (out / "summary.md", out / "toy" / "summary.md"):
        text = summary.read_text()
        assert "version-a" in text and "version-b" not in text


def test_recovery_leaves_a_running_commands_staging_folder_alone(tmp_path):
    final = tmp_path / "suite" / "version-a"
    final.mkdir(parents=True)
    live = final.with_name(f".version-a.staging-{os.getppid()}-0")  # another command, still running, is writing here
    live.mkdir()
    (live / "report.json").write_text("{}")
    publish.recover(final)
    assert (live / "report.json").read_text() == "{}"


def test_a_publication_cut_short_by_any_error_leaves_the_previous_files_and_nothing_else(tmp_path):
    final = tmp_path / "suite" / "version-a"
    with publish.together(final) as staging:
        (staging / "report.json").write_text("first")
    with pytest.raises(RuntimeError), publish.together(final) as staging:
        (staging / "report.json").write_text("second")
        raise RuntimeError("the measurement failed")
    assert (final / "report.json").read_text() == "first"
    assert sorted(p.name for p in final.parent.iterdir()) == ["version-a"]
    with publish.together(final) as staging:
        (staging / "report.json").write_text("third")
    assert (final / "report.json").read_text() == "third"
    assert sorted(p.name for p in final.parent.iterdir()) == ["version-a"]  # the replaced set is not kept aside


def test_a_file_of_the_user_where_results_would_go_is_refused_and_kept(tmp_path):
    final = tmp_path / "suite" / "check-a-model"
    final.parent.mkdir()
    final.write_text("my notes")
    with pytest.raises(HarnessError, match=r"check-a-model: exists and is not a folder of results \(move it away"):
        with publish.together(final) as staging:
            (staging / "report.json").write_text("{}")
    assert final.read_text() == "my notes" and sorted(p.name for p in final.parent.iterdir()) == ["check-a-model"]


@pytest.mark.parametrize("torn", [b'{"op_code": 5, "trial_id": 1, "sta', b'{"op_code": 5, "trial_id": 1, "sta\n'])
def test_a_torn_last_journal_record_is_cut_off_at_the_end_of_the_last_whole_one(tmp_path, torn):
    path = tmp_path / "s.journal"
    whole = b'{"op_code": 0, "worker_id": "x", "study_name": "s"}\n{"op_code": 4, "worker_id": "x", "study_id": 0}\n'
    path.write_bytes(whole + torn)
    assert search.repair_journal(path, log=lambda m: None) == len(torn)
    assert path.read_bytes() == whole
    assert path.with_name("s.journal.torn").read_bytes() == torn



@pytest.mark.parametrize("text", [b"# My notes\nline two\nline three", b"# My notes\n", b"no newline at all",
                                  b'{"op_code": 0, "worker_id": "x"}\nplain text\n{"op_code": 4}\n'])
def test_a_storage_file_that_is_no_journal_is_refused_and_left_untouched(tmp_path, text):
    path = tmp_path / "notes.txt"
    path.write_bytes(text)
    with pytest.raises(HarnessError, match=r"notes.txt: not an Optuna search journal .*left as it is: pass another --storage$"):
        search.repair_journal(path, log=lambda m: None)
    assert path.read_bytes() == text and sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


def test_a_second_torn_record_is_set_aside_beside_the_first_not_over_it(tmp_path):
    path = tmp_path / "s.journal"
    whole = b'{"op_code": 0, "worker_id": "x", "study_name": "s"}\n'
    for torn in (b'{"op_code": 5, "tri', b'{"op_code": 6, "va'):
        path.write_bytes(whole + torn)
        search.repair_journal(path, log=lambda m: None)
    assert path.read_bytes() == whole
    assert path.with_name("s.journal.torn").read_bytes() == b'{"op_code": 5, "tri\n{"op_code": 6, "va'

def test_the_summaries_skip_hidden_folders_and_the_folders_summary_lists_every_suite(tmp_path):
    out = tmp_path / "results"
    atomic.write_json(out / "toy" / "version-a" / "report.json", _version_record())
    atomic.write_json(out / "other" / "version-a" / "report.json", _version_record(suite="other"))
    atomic.write_json(out / ".before-upgrade" / "toy" / "version-b" / "report.json", _version_record(version="b"))
    run.report_files.write_summaries(out, "toy", log=lambda m: None)
    top, suite = (out / "summary.md").read_text(), (out / "toy" / "summary.md").read_text()
    assert "toy/version-a/report.md" in top and "other/version-a/report.md" in top and "version-b" not in top
    assert "version-a/report.md" in suite and "other/version-a" not in suite and "version-b" not in suite


@pytest.mark.parametrize("change,why", [({"commit": None}, "its 'commit' is a NoneType, not text"),
                                        ({"commit": 5}, "its 'commit' is a int, not text"),
                                        ({"commit": ...}, "lacks the key 'commit'")])
def test_a_report_without_a_commit_stamp_in_text_is_named_broken(tmp_path, change, why):
    rec = {k: v for k, v in {**_version_record(), **change}.items() if v is not ...}
    atomic.write_json(tmp_path / "toy" / "version-a" / "report.json", rec)
    broken = {}
    assert run.report_files.load_reports(tmp_path, broken) == []
    assert list(broken.values()) == [why]


def test_a_report_nested_too_deep_is_named_broken_not_a_crash(tmp_path):
    bad = tmp_path / "toy" / "version-a" / "report.json"
    bad.parent.mkdir(parents=True)
    bad.write_bytes(b"[" * 200_000)
    broken = {}
    assert run.report_files.load_reports(tmp_path, broken) == []
    assert broken == {str(bad): "is not valid JSON (nested too deep)"}


def test_a_results_folder_inside_a_hidden_folder_is_still_summarized(tmp_path):
    out = tmp_path / ".cache" / "results"
    atomic.write_json(out / "toy" / "version-a" / "report.json", _version_record())
    run.report_files.write_summaries(out, "toy", log=lambda m: None)
    assert "version-a/report.md" in (out / "toy" / "summary.md").read_text()


def test_a_suite_whose_only_report_is_broken_gets_no_summary_of_its_own(tmp_path):
    out = tmp_path / "results"
    atomic.write_json(out / "other" / "version-a" / "report.json", _version_record(suite="other"))
    (out / "toy" / "version-a").mkdir(parents=True)
    (out / "toy" / "version-a" / "report.json").write_text("{")
    lines = []
    run.report_files.write_summaries(out, "toy", log=lines.append)
    assert not (out / "toy" / "summary.md").exists() and "other/version-a" in (out / "summary.md").read_text()
    assert len(lines) == 1 and "toy/version-a/report.json" in lines[0]


def test_a_version_page_marks_reconstructed_limits_and_a_single_seed():
    from harness.pipeline import report

    rec = _version_record()
    rec["tasks"][0]["checks"][0]["spread"] = {"n": 1, "mean": 0.1, "sd": None, "min": 0.1, "max": 0.1}
    page = report.version_markdown(rec)
    assert "1 kB read as 1000 B." in page and "RECONSTRUCTED" not in page
    assert "| one seed " in page
    rec["constraints"]["status"] = "reconstructed"
    assert "- **RECONSTRUCTED limits**" in report.version_markdown(rec)


def test_a_run_over_several_versions_names_the_failed_ones_and_counts_the_builds_they_share(tmp_path, monkeypatch, toy):
    from harness.pipeline import run_all

    toy_dir = Path(__file__).parent / "toy_task"
    monkeypatch.setenv("ML4IOT_CACHE_DIR", str(tmp_path / "cache"))
    text = (toy_dir / "constraints" / "toy" / "version-a.toml").read_text()
    root = tmp_path / "constraints"
    (root / "toy").mkdir(parents=True)
    (root / "toy" / "version-a.toml").write_text(text.replace("max_mae = 0.5", "max_mae = 100.0"))
    (root / "toy" / "version-b.toml").write_text(text.replace('version = "a"', 'version = "b"')
                                                 .replace("max_mae = 0.5", "max_mae = 0.0001"))
    monkeypatch.setattr(constraints, "CONSTRAINTS_DIR", root)
    ctx = Context(data_dir=tmp_path, log=lambda m: None)

    def run_plan():
        return run_all.run_plan(ctx, [("toy", "a"), ("toy", "b")], ["toy"], {"toy": toy_dir / "recipes" / "toy-a.toml"},
                                ["train.epochs=3"], out_dir=tmp_path / "out")

    first = run_plan()
    assert first["failed"] == ["toy/b"]  # one model: it meets a's limit and misses b's
    assert (first["builds"], first["builds_cached"], first["builds_shared"]) == (2, 0, 1)
    again = run_plan()
    assert (again["builds"], again["builds_cached"], again["builds_shared"]) == (2, 2, 0)


def test_a_run_over_several_versions_adds_up_their_stage_times_and_without_the_cache_builds_nothing_ahead(
        tmp_path, monkeypatch, toy):
    from harness.pipeline import plan, run_all

    toy_dir = Path(__file__).parent / "toy_task"
    monkeypatch.setenv("ML4IOT_CACHE_DIR", str(tmp_path / "cache"))
    text = (toy_dir / "constraints" / "toy" / "version-a.toml").read_text()
    (tmp_path / "constraints" / "toy").mkdir(parents=True)
    (tmp_path / "constraints" / "toy" / "version-a.toml").write_text(text)
    (tmp_path / "constraints" / "toy" / "version-b.toml").write_text(text.replace('version = "a"', 'version = "b"'))
    monkeypatch.setattr(constraints, "CONSTRAINTS_DIR", tmp_path / "constraints")
    ahead = []  # the shared pool's builds, stood in for: 1.5 s of work that left nothing the versions can use
    monkeypatch.setattr(plan, "build_all", lambda *a: ahead.append(a) or (["pool-1", "pool-2"], 1.5))
    ctx = Context(data_dir=tmp_path, log=lambda m: None)
    versions = [("toy", "a"), ("toy", "b")]
    recipe = {"toy": toy_dir / "recipes" / "toy-a.toml"}
    res = run_all.run_plan(ctx, versions, ["toy"], recipe, ["train.epochs=3"], out_dir=tmp_path / "out")
    assert len(ahead) == 1
    per_version = [json.loads((tmp_path / "out" / "toy" / f"version-{v}" / "report.json").read_text())["tasks"][0]["seconds"]
                   for _, v in versions]
    for stage in set(per_version[0]) | {"build (train + convert)"}:
        pool = 1.5 if stage == "build (train + convert)" else 0.0
        assert res["seconds"][stage] == pytest.approx(pool + sum(s.get(stage, 0.0) for s in per_version)), stage
    run_all.run_plan(ctx, versions, ["toy"], recipe, ["train.epochs=3"], out_dir=tmp_path / "out2", use_cache=False)
    assert len(ahead) == 1  # without the cache each version trains its own: nothing is built ahead



def test_a_build_made_afresh_is_never_counted_as_read_from_the_cache(tmp_path, monkeypatch, toy):
    """--no-cache builds anew even when the cache holds the entry: the run record must not say it was read."""
    from harness.pipeline import run_all

    toy_dir = Path(__file__).parent / "toy_task"
    monkeypatch.setenv("ML4IOT_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(constraints, "CONSTRAINTS_DIR", toy_dir / "constraints")
    ctx = Context(data_dir=tmp_path, log=lambda m: None)
    args = ([("toy", "a")], ["toy"], {"toy": toy_dir / "recipes" / "toy-a.toml"}, ["train.epochs=3"])
    counts = []
    for use_cache in (True, True, False):
        res = run_all.run_plan(ctx, *args, out_dir=tmp_path / "out", use_cache=use_cache)
        counts.append((res["builds"], res["builds_cached"]))
    assert counts == [(1, 0), (1, 1), (1, 0)]

def test_a_one_task_run_counts_only_the_builds_of_the_tasks_it_ran(tmp_path, jena_slice):
    from harness.pipeline import run_all

    out = tmp_path / "results"
    _run(tmp_path, jena_slice, out)
    version = out / "ml4iot-2022" / "version-a"
    rep = json.loads((version / "report.json").read_text())
    kept = dict(rep["tasks"][0], task="kws", title="Keyword spotting", seconds={"measure": 50.0},
                seeds=[dict(s, build_key="kept-from-an-earlier-run") for s in rep["tasks"][0]["seeds"]])
    rep["tasks"].append(kept)
    atomic.write_json(version / "report.json", rep)
    (version / "kws").mkdir()
    ctx = Context(data_dir=tmp_path, options={"jena": [jena_slice]}, log=lambda m: None)
    res = run_all.run_plan(ctx, [("ml4iot-2022", "a")], ["forecast"], overrides=OVERRIDES, out_dir=out)
    assert (res["builds"], res["builds_cached"]) == (1, 1)
    assert res["seconds"]["measure"] < 50.0  # the kept task's stage times are not this run's


@pytest.mark.parametrize("text, line", [(b'{"a": 1}\n', 1),                                    # JSON, no op_code
                                        (b'{"op_code": 0, "worker_id": "x"}\n[1, 2]\n', 2),   # JSON, not an object
                                        (b'# header\n{"op_code": 0, "worker_id": "x"}\n', 1)])  # only line 1 is wrong
def test_a_storage_file_with_a_line_that_is_no_journal_record_is_refused_and_named(tmp_path, text, line):
    path = tmp_path / "notes.txt"
    path.write_bytes(text)
    with pytest.raises(HarnessError, match=rf"notes.txt: not an Optuna search journal \(line {line} is no journal record\)"):
        search.repair_journal(path, log=lambda m: None)
    assert path.read_bytes() == text and sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]
