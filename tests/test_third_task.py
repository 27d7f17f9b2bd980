"""The seam: a third task that lives only under tests/ runs end to end (run, check, report, search)."""
import json
import os
from pathlib import Path

import pytest

from harness.core import constraints
from harness.core.task import Context
from harness.pipeline import run, search

TOY = Path(__file__).parent / "toy_task"


def test_a_third_task_runs_checks_and_reports_without_harness_changes(tmp_path, toy):
    ctx = Context(data_dir=tmp_path, log=lambda m: None)
    rep = run.run_version(ctx, "toy", "a", out_dir=tmp_path / "out", seeds=2, constraints_dir=TOY / "constraints")
    task = rep["tasks"][0]
    assert task["task"] == "toy" and len(task["seeds"]) == 2
    mae = task["checks"][0]
    assert mae["passed"] == all(v < 0.5 for v in mae["values"])
    assert task["passed"] == all(s["passed"] for s in task["seeds"])
    assert task["baselines"][0]["name"] == "Train mean" and not task["baselines"][0]["passes_all"]
    version = tmp_path / "out" / "toy" / "version-a"
    assert (version / "toy" / "model.tflite.zlib").is_file()
    assert "Toy regression (tests only)" in (version / "report.md").read_text()
    assert json.loads((version / "report.json").read_text())["suite"] == "toy"
    # the constraint file's [toy] table is validated by the task's own schema
    bad = tmp_path / "toy" / "version-a.toml"
    bad.parent.mkdir()
    bad.write_text((TOY / "constraints" / "toy" / "version-a.toml").read_text().replace("samples = 400", "samples = 3"))
    with pytest.raises(Exception, match="toy.samples"):
        constraints.load_file(bad)


def test_a_third_task_can_be_searched(tmp_path, toy):
    ctx = Context(data_dir=tmp_path, log=lambda m: None)
    cfg = search.SearchConfig(suite="toy", version="a", task="toy", trials=3, out_dir=tmp_path / "out",
                              constraints_dir=TOY / "constraints", seeds=1)
    res = search.search(ctx, cfg)
    assert res["complete"] == 3 and res["best"] is not None
    assert (tmp_path / "out" / "toy" / "search-a-toy.best.toml").is_file()


def test_the_same_search_seed_gives_the_same_trials(tmp_path, toy):
    import optuna

    params = []
    for run_dir in ("a", "b"):
        ctx = Context(data_dir=tmp_path, log=lambda m: None)
        cfg = search.SearchConfig(suite="toy", version="a", task="toy", trials=4, out_dir=tmp_path / run_dir,
                                  constraints_dir=TOY / "constraints", seeds=1, seed=11)
        search.search(ctx, cfg)
        study = optuna.load_study(study_name="toy-a-toy",
                                  storage=search.open_storage(str(tmp_path / run_dir / "toy" / "search-a-toy.journal")))
        params.append([t.params for t in study.trials])
    assert params[0] == params[1] and len(params[0]) == 4


def test_a_version_page_names_the_host_that_measured_each_task_and_summarize_rerenders_it(tmp_path, toy):
    ctx = Context(data_dir=tmp_path, log=lambda m: None)
    out = tmp_path / "out"
    run.run_version(ctx, "toy", "a", out_dir=out, seeds=1, constraints_dir=TOY / "constraints")
    page = out / "toy" / "version-a" / "report.md"
    record = page.with_name("report.json")
    from harness import cli
    first = page.read_text()
    assert cli.main(["summarize", "--out", str(out)]) == 0
    assert page.read_text() == first  # a page re-rendered from its record is the page the run wrote
    rep = json.loads(record.read_text())
    # a task kept from an earlier run on another machine: its host, not this run's, measured it
    rep["tasks"][0]["host_line"] = "Other CPU (x86_64, 2 cores)"
    record.write_text(json.dumps(rep))
    assert cli.main(["summarize", "--out", str(out)]) == 0
    header = next(line for line in page.read_text().splitlines() if line.startswith("- Latency host"))
    assert "Other CPU (x86_64, 2 cores)" in header and rep["host_line"] not in header
    summary = (out / "summary.md").read_text()
    assert "Other CPU (x86_64, 2 cores)" in summary and rep["host_line"] not in summary
    assert json.loads(record.read_text()) == rep  # the record itself is not rewritten


def test_a_checks_report_pair_appears_together_or_not_at_all(tmp_path, toy, monkeypatch):
    from harness import cli
    from harness.pipeline import check_file
    from harness.toolkit import atomic, convert, package
    from harness.toolkit.tfsetup import keras

    k = keras()
    out = tmp_path / "out"
    models = []
    for width in (3, 5):  # two untrained files of the same name: the check folder is named after the file
        m = k.Sequential([k.Input((4,)), k.layers.Dense(width), k.layers.Dense(1)])
        path = tmp_path / f"w{width}" / "mine.tflite.zlib"
        path.parent.mkdir()
        path.write_bytes(package.pack(convert.to_tflite(m, "none"), "zlib"))
        models.append(path)
    ctx = Context(data_dir=tmp_path, log=lambda m: None)
    first = check_file.check_file(ctx, models[0], "toy", "a", "toy", out=out, constraints_dir=TOY / "constraints")
    folder = out / "toy" / "check-a-mine"
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    assert sorted(before) == ["report.json", "report.md"] and first["sha256"] in before["report.md"].decode()

    def full(path, obj):
        raise OSError(28, "No space left on device", str(path))

    with monkeypatch.context() as m, pytest.raises((OSError, cli.HarnessError), match="No space left"):
        m.setattr(atomic, "write_json", full)  # the page is written, then the record fails
        check_file.check_file(ctx, models[1], "toy", "a", "toy", out=out, constraints_dir=TOY / "constraints")
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before
    assert sorted(p.name for p in folder.parent.iterdir()) == ["check-a-mine"]  # no staging left behind
    said = []
    ctx.log = said.append
    second = check_file.check_file(ctx, models[1], "toy", "a", "toy", out=out, constraints_dir=TOY / "constraints")
    other = out / "toy" / "check-a-mine-2"  # another file of the same name never replaces the first one's report
    assert said == [f"note: {folder} holds the report of another file named mine.tflite.zlib; this one goes to {other.name}"]
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before
    rec = json.loads((other / "report.json").read_text())
    assert rec["sha256"] == second["sha256"] != first["sha256"] and second["sha256"] in (other / "report.md").read_text()
    assert second["report"].endswith("check-a-mine-2/report.md")
    said.clear()  # each file checked again goes back to its own folder, given by another spelling of its path
    again = check_file.check_file(ctx, Path(os.path.relpath(models[0])), "toy", "a", "toy", out=out,
                                  constraints_dir=TOY / "constraints")
    assert said == [] and again["report"].endswith("check-a-mine/report.md")
    check_file.check_file(ctx, models[1], "toy", "a", "toy", out=out, constraints_dir=TOY / "constraints")
    assert sorted(p.name for p in folder.parent.iterdir()) == ["check-a-mine", "check-a-mine-2"]
    # a file of the user's own where the report folder would go: refused before anything is measured, and kept
    mine = tmp_path / "w3" / "other.tflite.zlib"
    mine.write_bytes(models[0].read_bytes())
    (out / "toy" / "check-a-other").write_text("my notes")
    with monkeypatch.context() as m, pytest.raises(cli.HarnessError, match=r"check-a-other: exists and is not a folder"):
        m.setattr(run, "measure_artifact", lambda *a, **k: pytest.fail("measured before the output was checked"))
        check_file.check_file(ctx, mine, "toy", "a", "toy", out=out, constraints_dir=TOY / "constraints")
    assert (out / "toy" / "check-a-other").read_text() == "my notes"


def test_a_recipe_whose_shipped_seed_passes_but_another_fails_fails(tmp_path, monkeypatch, toy):
    real = type(toy).measure

    def measure(self, ctx, section, recipe, tflite, split="test", latency=True):
        m = real(self, ctx, section, recipe, tflite, split, latency)
        m.metrics["mae"] = 0.1 if recipe["seed"] == 1 else 0.9
        return m

    monkeypatch.setattr(type(toy), "measure", measure)
    ctx = Context(data_dir=tmp_path, log=lambda m: None)
    cons = constraints.load("toy", "a", root=TOY / "constraints")
    out = run.run_task(ctx, cons, "toy", seeds=2)
    assert out.report["seeds"][0]["seed"] == 1 and out.report["seeds"][0]["passed"]
    assert not out.passed and out.report["checks"][0]["result"].startswith("FAIL 1/2")


def test_a_searchs_test_reading_is_the_chosen_recipe_on_the_test_split_over_every_seed(tmp_path, toy):
    ctx = Context(data_dir=tmp_path, log=lambda m: None)
    cfg = search.SearchConfig(suite="toy", version="a", task="toy", trials=2, out_dir=tmp_path / "out",
                              constraints_dir=TOY / "constraints", seeds=2)
    best = search.search(ctx, cfg)["best"]
    assert best is not None
    cons = constraints.load("toy", "a", root=TOY / "constraints")
    final = run.run_task(ctx, cons, "toy", overrides=best["overrides"], seeds=2, split="test").report
    expected = {c["label"]: f"{c['result']} ({c['measured_text']})" for c in final["checks"]}
    assert best["test"] == expected
    md = (tmp_path / "out" / "toy" / "search-a-toy.md").read_text()
    assert "- Over 2 seed(s): " + "; ".join(f"{k}: {v}" for k, v in expected.items()) + "." in md


def test_a_trial_whose_parameters_alone_reach_the_size_limit_is_rejected_untrained(tmp_path, toy, monkeypatch):
    import optuna

    from tests.toy_task import task as toy_task

    monkeypatch.setattr(toy_task.ToyTask, "size_floor_bytes", lambda self, ctx, section, recipe: section["max_size_bytes"])
    ctx = Context(data_dir=tmp_path, log=lambda m: None)
    cfg = search.SearchConfig(suite="toy", version="a", task="toy", trials=1, out_dir=tmp_path / "out",
                              constraints_dir=TOY / "constraints", seeds=1)
    assert search.search(ctx, cfg)["complete"] == 0
    study = optuna.load_study(study_name="toy-a-toy",
                              storage=search.open_storage(str(tmp_path / "out" / "toy" / "search-a-toy.journal")))
    (trial,) = study.trials
    assert trial.state == optuna.trial.TrialState.PRUNED
    assert trial.user_attrs["rejected"] == "parameters alone need >= 5,000 B, limit 5,000 B"
    assert "seconds" in trial.user_attrs and "metrics" not in trial.user_attrs


def _exact_model_file(path: Path, fmt: str) -> Path:
    """A file holding the toy's true weights (y = x·w): it passes the MAE limit without training."""
    import numpy as np

    from harness.toolkit import convert, package
    from harness.toolkit.tfsetup import keras
    from tests.toy_task.task import WEIGHTS

    k = keras()
    m = k.Sequential([k.Input((4,)), k.layers.Dense(1)])
    m.layers[-1].set_weights([WEIGHTS[:, None], np.zeros(1, np.float32)])
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(package.pack(convert.to_tflite(m, "none"), fmt))
    return path


def test_check_passes_an_accepted_format_and_fails_one_the_constraints_do_not_take(tmp_path, toy):
    from harness.pipeline import check_file

    ctx = Context(data_dir=tmp_path, log=lambda m: None)
    good = _exact_model_file(tmp_path / "mine.tflite.zlib", "zlib")
    rep = check_file.check_file(ctx, good, "toy", "a", None, out=tmp_path / "out", constraints_dir=TOY / "constraints")
    assert rep["task"] == "toy" and rep["passed"] and all(c["passed"] for c in rep["checks"])  # the only task
    assert rep["bytes"] == good.stat().st_size and rep["format"] == "zlib"
    assumed = rep["assumptions"]
    page = (tmp_path / "out" / "toy" / "check-a-mine" / "report.md").read_text()
    assert page.startswith(f"# Check of `{good}` against toy version a — PASS\n")
    assert f"- File: {good.stat().st_size:,} B as zlib, sha256 `{rep['sha256']}`" in page
    zipped = _exact_model_file(tmp_path / "mine.tflite.zip", "zip")
    rep = check_file.check_file(ctx, zipped, "toy", "a", "toy", constraints_dir=TOY / "constraints")
    assert all(c["passed"] for c in rep["checks"]) and not rep["passed"]  # the numbers pass, the format does not
    *same, extra = rep["assumptions"]
    assert same == assumed and extra.startswith("the zip format is not one ")
    assert extra.endswith("version-a.toml accepts (tflite, zlib): its size row is shown for information")
    text = check_file.markdown(rep)
    assert " — FAIL\n" in text.splitlines(keepends=True)[0] and "- Assumed: the zip format is not one " in text


def test_check_names_the_file_it_cannot_read_and_the_task_the_constraints_lack(tmp_path, toy):
    from harness.core.errors import HarnessError
    from harness.pipeline import check_file

    ctx = Context(data_dir=tmp_path, log=lambda m: None)
    with pytest.raises(HarnessError, match=r"missing.tflite: cannot read the model file \(No such file or directory\)$"):
        check_file.check_file(ctx, tmp_path / "missing.tflite", "toy", "a", "toy", constraints_dir=TOY / "constraints")
    with pytest.raises(HarnessError, match=r"version-a.toml has no \[forecast\] table$"):
        check_file.check_file(ctx, tmp_path / "missing.tflite", "toy", "a", "forecast", constraints_dir=TOY / "constraints")
    (tmp_path / "broken.tflite").write_bytes(b"not a flatbuffer at all")
    with pytest.raises(HarnessError, match=r"broken.tflite: "):
        check_file.check_file(ctx, tmp_path / "broken.tflite", "toy", "a", "toy", constraints_dir=TOY / "constraints")
    assert not (tmp_path / "toy").exists()  # nothing written without --out
    with pytest.raises(HarnessError, match=r"version-a.toml has several tasks \(forecast, kws\): pass --task$"):
        check_file.check_file(ctx, tmp_path / "missing.tflite", "ml4iot-2022", "a")  # never one of them guessed


def test_a_size_the_task_counts_replaces_the_file_size_in_the_check(tmp_path, toy):
    """An edition that does not count part of the file (e.g. an in-graph front end) checks the counted bytes."""
    from harness.core import recipes

    blob = _exact_model_file(tmp_path / "m.tflite.zlib", "zlib").read_bytes()
    section = dict(constraints.load_file(TOY / "constraints" / "toy" / "version-a.toml").task("toy"))
    recipe = recipes.load(TOY / "recipes" / "toy-a.toml", toy)
    ctx = Context(data_dir=tmp_path, log=lambda m: None)
    _, whole = run.measure_artifact(ctx, toy, section, recipe, blob, "zlib", with_val=False)
    assert whole["metrics"]["size_bytes"] == len(blob) and whole["passed"]
    _, counted = run.measure_artifact(ctx, toy, section, recipe, blob, "zlib", with_val=False, counted_bytes=6000)
    assert counted["metrics"]["size_bytes"] == 6000 and counted["bytes"] == len(blob) and not counted["passed"]


def test_no_cache_builds_again_and_the_report_says_which_builds_were_reused(tmp_path, toy):
    ctx = Context(data_dir=tmp_path, log=lambda m: None)
    cons = constraints.load_file(TOY / "constraints" / "toy" / "version-a.toml")
    first = run.run_task(ctx, cons, "toy", artifact_dir=tmp_path / "a", use_cache=False)  # other tests share the cache
    again = run.run_task(ctx, cons, "toy", artifact_dir=tmp_path / "b")
    fresh = run.run_task(ctx, cons, "toy", artifact_dir=tmp_path / "c", use_cache=False)
    assert [o.report["build_cached"] for o in (first, again, fresh)] == [False, True, False]
    assert first.report["artifact"]["sha256"] == again.report["artifact"]["sha256"] == fresh.report["artifact"]["sha256"]
