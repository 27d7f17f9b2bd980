import subprocess
import sys
from pathlib import Path

import pytest

from harness.core import constraints, recipes
from harness.core.config import parse_override
from harness.core.errors import HarnessError
from harness.core.task import get

ROOT = Path(__file__).resolve().parents[1]


def test_every_shipped_recipe_is_valid_and_fits_its_constraints():
    n = 0
    for suite in constraints.suites():
        for v in constraints.versions(suite):
            c = constraints.load(suite, v)
            for t in c.tasks:
                task = get(t)
                r = recipes.load(recipes.default_path(task, suite, v), task)
                assert r["package"]["format"] in c.task(t)["size_formats"]
                n += 1
    assert n >= 13  # 4 forecasting + 9 keyword-spotting versions


def test_overrides_are_typed_toml_values():
    assert parse_override("train.epochs=3") == (["train", "epochs"], 3)
    assert parse_override("model.name=mlp") == (["model", "name"], "mlp")
    assert parse_override("quantize.mode=\"int8\"") == (["quantize", "mode"], "int8")
    task = get("forecast")
    path = recipes.default_path(task, "ml4iot-2022", "a")
    assert recipes.load(path, task, ["train.epochs=2"])["train"]["epochs"] == 2
    with pytest.raises(HarnessError, match=r"unknown key 'train.epoch'"):
        recipes.load(path, task, ["train.epoch=2"])
    with pytest.raises(HarnessError, match=r"'train.epochs' must be an integer"):
        recipes.load(path, task, ["train.epochs=two"])
    with pytest.raises(HarnessError, match=r"'model.level' must be a boolean, got 3"):  # the builder's own keys
        recipes.load(path, task, ["model.level=3"])
    with pytest.raises(HarnessError, match="qat_epochs"):
        recipes.load(path, task, ["quantize.qat_epochs=2"])
    for seed in (-1, 2**31):  # numpy/TF refuse seeds outside 32 bits: refused here, before any build
        with pytest.raises(HarnessError, match=r"'seed' must be (>= 0|<= 2147483647)"):
            recipes.load(path, task, [f"seed={seed}"])


def test_cli_bad_input_is_one_line_on_stderr(tmp_path):
    bad = tmp_path / "missing.csv"
    proc = subprocess.run([sys.executable, "-m", "harness", "run", "--suite", "ml4iot-2022", "--version", "a",
                           "--task", "forecast", "--jena", str(bad), "--out", str(tmp_path / "out")],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    lines = [l for l in proc.stderr.splitlines() if l.startswith("error:")]
    assert lines == [f"error: {bad}: Jena climate file not found"]
    assert not (tmp_path / "out").exists()


def test_every_command_prints_its_help():
    """Help text goes through %-formatting: a task's plain '%' (°C/%RH) must not crash --help."""
    import argparse

    from harness.cli import parser

    p = parser()
    commands = next(a for a in p._actions if isinstance(a, argparse._SubParsersAction)).choices
    assert {"run", "cv", "check", "grade"} <= set(commands)
    for name, sp in commands.items():
        text = sp.format_help()
        assert text.startswith("usage: python -m harness " + name), name
    assert "°C/%RH" in commands["check"].format_help()


def test_cli_unknown_version(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "harness", "run", "--suite", "ml4iot-2023", "--version", "z"],
                          cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "has versions: a" in proc.stderr


def test_seed_claims_and_reproduction_recipes_are_valid():
    from harness.pipeline import seed_reports as seeds

    entries = seeds.load()
    assert {e["id"] for e in entries} >= {"000", "001", "002", "003-kws-a", "003-kws-b", "003-kws-c", "004", "003-ex1-a", "003-ex1-b"}
    for e in entries:
        constraints.load(e["suite"], e["version"])
        path = ROOT / e["recipe"]
        if path.is_file():
            recipes.load(path, get(e["task"]))


def test_seed_file_rejects_unknown_claims(tmp_path):
    from harness.pipeline import seed_reports as seeds

    p = tmp_path / "s.toml"
    p.write_text('[[seed]]\nid="x"\nreport="r"\nsuite="ml4iot-2022"\nversion="a"\ntask="kws"\nrecipe="r.toml"\n'
                 'claimed = { accuracy = 90 }\n')
    with pytest.raises(HarnessError, match="unknown key 'accuracy'"):
        seeds.load(p)


def test_seed_reports_reject_an_unknown_id_before_running_anything(tmp_path):
    from harness.pipeline import seed_reports

    with pytest.raises(HarnessError, match="no seed report with id 'nope'"):
        seed_reports.reproduce(None, only=["nope"], out_dir=tmp_path)
    assert not any(tmp_path.iterdir())


def test_cli_task_filter_skips_versions_without_that_task(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "harness", "run", "--suite", "ml4iot-2022", "--task", "nope",
                           "--out", str(tmp_path / "out")], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "no version of ml4iot-2022 has the task(s) nope" in proc.stderr


def test_a_run_checks_every_planned_recipe_before_it_builds_anything(tmp_path, shared_data):
    """`run --suite all` with a recipe the last editions refuse (zlib) and a keyword the corpus lacks stops at once,
    every problem named on one line: before the check, the first versions trained and published first."""
    recipe = tmp_path / "mine.toml"
    recipe.write_text(recipes.default_path(get("kws"), "ml4iot-2021", "a").read_text()
                      + '\n[auxiliary]\nlabels = ["marvin"]\n')
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, "-m", "harness", "run", "--suite", "all", "--task", "kws",
                           "--recipe", f"kws={recipe}", "--data-dir", str(shared_data), "--out", str(out)],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1
    assert f"{recipe}: recipe key 'auxiliary.labels': 'marvin' not a keyword of the corpus" in errors[0]
    for suite in ("ml4iot-2023", "ml4iot-2024", "ml4iot-2025"):
        assert f"{recipe}: package.format 'zlib' is not accepted by constraints/{suite}/version-a.toml" in errors[0]
    assert not out.exists()


def test_cv_and_search_check_the_recipe_against_the_data_before_they_train(tmp_path, shared_data):
    """The same up-front check as a run: a keyword the corpus lacks stops cv and search naming the recipe file, before
    any fold or trial trains (before, cv found it when a fold assembled its training set; search failed every trial)."""
    from harness.core.task import Context
    from harness.pipeline import crossval, search

    recipe = tmp_path / "mine.toml"
    recipe.write_text(recipes.default_path(get("kws"), "ml4iot-2025", "a").read_text().replace(
        'labels = ["go", "left", "no", "right", "stop", "yes"]', 'labels = ["marvin"]'))
    ctx = Context(data_dir=shared_data, use_cache=False)
    problem = f"{recipe}: recipe key 'auxiliary.labels': 'marvin' not a keyword of the corpus"
    with pytest.raises(HarnessError) as e:
        crossval.cross_validate(ctx, "ml4iot-2025", "a", "kws", 5, recipe_path=recipe, out_dir=tmp_path / "cv")
    assert problem in str(e.value)
    storage = tmp_path / "study.db"
    with pytest.raises(HarnessError) as e:
        search.search(ctx, search.SearchConfig("ml4iot-2025", "a", "kws", trials=1, base_recipe=recipe,
                                               storage=f"sqlite:///{storage}", out_dir=tmp_path / "search"))
    assert problem in str(e.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine.toml"]  # no folds, no study, no outputs


def test_a_recipe_based_on_another_replaces_its_keys_one_by_one(tmp_path):
    task = get("kws")
    base = recipes.default_path(task, "ml4iot-2022", "b")
    (tmp_path / "base.toml").write_text(base.read_text())
    (tmp_path / "mine.toml").write_text('based_on = "base.toml"\n[train]\nepochs = 3\n[model]\nwidth = 0.5\n')
    mine, theirs = recipes.load(tmp_path / "mine.toml", task).data, recipes.load(base, task).data
    assert (mine["train"]["epochs"], mine["model"]["width"]) == (3, 0.5)
    assert mine["train"] == {**theirs["train"], "epochs": 3}  # the rest of the table is kept
    assert mine["model"]["name"] == theirs["model"]["name"] and mine["features"] == theirs["features"]
    assert "based_on" not in mine  # resolved away: the build key sees the keys, not how they were written
    shipped = recipes.load(recipes.default_path(task, "ml4iot-2021", "c"), task).data
    assert shipped == theirs  # the shipped 2021 c recipe is 2022 b's
    assert recipes.load(tmp_path / "mine.toml", task, ["train.epochs=4"])["train"]["epochs"] == 4

    (tmp_path / "a.toml").write_text('based_on = "b.toml"\n')
    (tmp_path / "b.toml").write_text('based_on = "a.toml"\n')
    (tmp_path / "gone.toml").write_text('based_on = "nowhere.toml"\n')
    (tmp_path / "typed.toml").write_text('based_on = 3\n')
    for name, message in (("a.toml", r"b.toml: key 'based_on': a.toml is based on this file again"),
                          ("gone.toml", r"gone.toml: key 'based_on': .*nowhere.toml not found"),
                          ("typed.toml", r"typed.toml: key 'based_on' must be a recipe file name")):
        with pytest.raises(HarnessError, match=message):
            recipes.load(tmp_path / name, task)


@pytest.mark.parametrize("argv", [["run", "--suite", "ml4iot-2023", "--version", "a", "--seeds", "0"],
                                  ["run", "--suite", "ml4iot-2023", "--version", "a", "--jobs", "two"],
                                  ["search", "--suite", "ml4iot-2023", "--version", "a", "--trials", "-3"],
                                  ["cv", "--suite", "ml4iot-2023", "--version", "a", "--folds", "0"]])
def test_a_bad_count_is_refused_before_any_data_is_read(argv, capsys):
    from harness.cli import parser

    with pytest.raises(SystemExit) as stop:
        parser().parse_args(argv)
    assert stop.value.code == 2
    flag = next(a for a in argv if a in ("--seeds", "--jobs", "--trials", "--folds"))
    (line,) = capsys.readouterr().err.splitlines()  # one line, like every other refusal: no usage block
    assert line.startswith(f"error: python -m harness {argv[0]}: argument {flag}:"), line
    assert line.endswith(f"(see python -m harness {argv[0]} --help)"), line


@pytest.mark.parametrize("argv, names", [([], "command"), (["runn"], "invalid choice: 'runn'"),
                                         (["check", "--version", "a"], "required: model"),
                                         (["grade", "--jena", "a.zip", "subs"], "required: folder; --jena takes every "
                                          "value up to the next option, so give the positional argument first")])
def test_a_command_line_argparse_refuses_is_one_line(argv, names, capsys):
    from harness.cli import main

    with pytest.raises(SystemExit) as stop:
        main(argv)
    (line,) = capsys.readouterr().err.splitlines()
    assert stop.value.code == 2 and line.startswith("error: python -m harness") and names in line, line
    assert ("takes every value" in line) == ("--jena" in argv)  # the hint only when such an option was given


def test_a_repeated_version_or_task_is_run_once(tmp_path, monkeypatch):
    from harness import cli
    from harness.pipeline import run, run_all

    planned = []
    monkeypatch.setenv("HARNESS_VERBOSE", "1")
    monkeypatch.setattr(run_all, "run_plan", lambda ctx, plan, tasks, *a, **k: planned.append((plan, tasks)) or {
        "seconds": {}, "builds": 1, "builds_cached": 0, "builds_shared": 0, "failed": []})
    monkeypatch.setattr(run, "record_run", lambda out, record: out / "runs" / "r.json")
    assert cli.main(["run", "--suite", "ml4iot-2022", "--version", "b", "--version", "a", "--version", "b",
                     "--task", "kws", "--task", "kws", "--out", str(tmp_path)]) == 0
    assert planned == [([("ml4iot-2022", "b"), ("ml4iot-2022", "a")], ["kws"])]



def test_cv_and_search_take_their_recipe_as_file_or_as_run_does_as_task_equals_file(tmp_path, capfd, shared_data):
    from harness import cli

    assert cli._one_recipe(None, "kws") is None
    assert cli._one_recipe("my.toml", "kws") == Path("my.toml")
    assert cli._one_recipe("kws=my.toml", "kws") == Path("my.toml")
    assert cli._one_recipe("runs/lr=0.01.toml", "kws") == Path("runs/lr=0.01.toml")  # not a task: a file name
    with pytest.raises(HarnessError, match=r"^--recipe 'forecast=my.toml': this command runs the task 'kws', not 'forecast'$"):
        cli._one_recipe("forecast=my.toml", "kws")
    assert cli.main(["cv", "--suite", "ml4iot-2025", "--version", "a", "--folds", "3", "--data-dir", str(shared_data),
                     "--recipe", f"kws={tmp_path / 'gone.toml'}", "--out", str(tmp_path / "out")]) == 2
    assert capfd.readouterr().err.strip().splitlines()[-1] == f"error: {tmp_path / 'gone.toml'}: no such recipe file"

def test_out_and_recipe_options_are_refused_before_any_data_is_read(tmp_path, capsys):
    """A run writes its results last: an unusable --out or a misspelt --recipe task must stop it at once (exit 2)."""
    from harness.cli import main

    a_file = tmp_path / "a_file"
    a_file.write_text("")
    base = ["run", "--suite", "ml4iot-2022", "--version", "a", "--task", "forecast", "--data-dir", str(tmp_path)]
    for out, why in (("", "an empty path"), (str(a_file), "exists and is not a folder"),
                     (str(a_file / "sub"), "is not a writable folder")):
        with pytest.raises(SystemExit) as e:
            main(base + ["--out", out])
        assert e.value.code == 2 and why in capsys.readouterr().err
    proc = subprocess.run([sys.executable, "-m", "harness", *base, "--out", str(tmp_path / "out"),
                           "--recipe", "forcast=my.toml"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert [l for l in proc.stderr.splitlines() if l.startswith("error:")] == [
        "error: --recipe 'forcast=my.toml': no task 'forcast' (tasks: forecast, kws)"]
    assert not (tmp_path / "out").exists()


def test_a_problem_every_planned_version_shares_is_named_once(tmp_path):
    from harness.core.task import Context
    from harness.pipeline import plan

    recipe = tmp_path / "mine.toml"
    recipe.write_text(recipes.default_path(get("forecast"), "ml4iot-2022", "a").read_text())
    ctx = Context(data_dir=tmp_path, options={"jena": [tmp_path / "jena.csv"]}, log=lambda m: None)
    with pytest.raises(HarnessError) as e:
        plan.check(ctx, [("ml4iot-2022", "a"), ("ml4iot-2022", "b")], ["forecast"], {"forecast": recipe},
                   ["train.epochz=3"])
    assert str(e.value).count("unknown key 'train.epochz'") == 1 and " | " not in str(e.value)


def test_without_its_data_a_recipe_is_not_checked_against_the_data(tmp_path, monkeypatch, toy):
    from harness.core.task import Context
    from harness.pipeline import plan

    checked = []

    def missing(ctx, section):
        raise HarnessError("toy data: not found in the data folder")

    monkeypatch.setattr(toy, "ensure_data", missing)
    monkeypatch.setattr(toy, "check_recipe_data", lambda ctx, section, recipe: checked.append(recipe))
    with pytest.raises(HarnessError) as e:
        plan.check(Context(data_dir=tmp_path, log=lambda m: None), [("toy", "a")], ["toy"],
                   constraints_dir=Path(__file__).parent / "toy_task" / "constraints")
    assert str(e.value) == "toy data: not found in the data folder" and checked == []



def test_a_missing_dataset_and_a_wrong_recipe_key_are_named_together(tmp_path, monkeypatch, toy):
    """A recipe's own keys need no data: a user missing both learns of both in one go."""
    from harness.core.task import Context
    from harness.pipeline import plan

    def missing(ctx, section):
        raise HarnessError("toy data: not found in the data folder")

    monkeypatch.setattr(toy, "ensure_data", missing)
    with pytest.raises(HarnessError) as e:
        plan.check(Context(data_dir=tmp_path, log=lambda m: None), [("toy", "a")], ["toy"], None, ["train.epochz=3"],
                   constraints_dir=Path(__file__).parent / "toy_task" / "constraints")
    first, second = str(e.value).split(" | ")
    assert first == "toy data: not found in the data folder" and "unknown key 'train.epochz'" in second


def test_a_recipe_file_that_is_not_there_is_named_with_advice_every_command_can_follow(tmp_path, toy):
    from harness.core import constraints
    from harness.pipeline import plan

    root = Path(__file__).parent / "toy_task" / "constraints"
    cons = constraints.load("toy", "a", root=root)
    with pytest.raises(HarnessError, match=r"^\S*nothere.toml: no such recipe file$"):
        plan.load_recipe(cons, "toy", tmp_path / "nothere.toml")
    (tmp_path / "toy").mkdir()
    (tmp_path / "toy" / "version-b.toml").write_text((root / "toy" / "version-a.toml").read_text()
                                                     .replace('version = "a"', 'version = "b"'))
    with pytest.raises(HarnessError, match=r"toy-b.toml: no recipe for toy version b \(toy\); give one with --recipe$"):
        plan.load_recipe(constraints.load("toy", "b", root=tmp_path), "toy")

def test_seed_reports_put_our_figures_beside_the_claims_and_only_keeps_the_other_rows(tmp_path, monkeypatch):
    """reproduce() with a stand-in for the run (nothing trains): the claimed and measured texts, the verdict, a
    missing recipe, and --only updating its own rows while keeping the others of the earlier table."""
    import json
    from types import SimpleNamespace

    from harness.core.task import Context
    from harness.pipeline import run
    from harness.pipeline import seed_reports as seeds

    recipe = "tasks/forecast/recipes/ml4iot-2022-a.toml"
    entries = [
        {"id": "s1", "report": "first", "suite": "ml4iot-2022", "version": "a", "task": "forecast", "recipe": recipe,
         "claimed": {"mae_t_degc": 0.25, "size_bytes": 1350, "mae_rh_pct": 0.5}, "note": "their data"},
        {"id": "s2", "report": "second", "suite": "ml4iot-2022", "version": "a", "task": "forecast", "recipe": recipe,
         "claimed": {"mae_rh_pct": 1.5}, "note": ""},
        {"id": "s3", "report": "third", "suite": "ml4iot-2022", "version": "a", "task": "forecast",
         "recipe": "tasks/forecast/recipes/seeds/not-written-yet.toml", "claimed": {}, "note": ""},
    ]
    ran = []
    outcomes = {"s1": (True, {"mae_t_degc": 0.31234, "size_bytes": 1500.0, "mae_rh_pct": 0.0}), "s2": (False, {"mae_t_degc": 0.9})}

    def fake_run_task(ctx, cons, task, recipe_path, artifact_dir):
        sid = artifact_dir.name
        ran.append(sid)
        passed, metrics = outcomes[sid]
        return SimpleNamespace(passed=passed, report={"metrics": metrics, "artifact": {"file": "m"}, "recipe_summary": "r",
                                                      "data": {}, "commit": "c0ffee"})

    monkeypatch.setattr(seeds, "load", lambda: entries)
    monkeypatch.setattr(run, "run_task", fake_run_task)
    ctx = Context(data_dir=tmp_path, log=lambda m: None)
    page = seeds.reproduce(ctx, out_dir=tmp_path)
    assert ran == ["s1", "s2"]
    rows = {line.split("|")[1].strip(): [c.strip() for c in line.split("|")[1:-1]]
            for line in page.read_text().splitlines() if line.startswith("| s")}
    assert rows["s1"] == ["s1", "first", "MAE(T) 0.2500 °C; Size of the submitted file 1,350 B; MAE(RH) 0.5000 %RH",
                          "MAE(T) 0.3123 °C; Size of the submitted file 1,500 B; MAE(RH) 0.0000 %RH",
                          "PASS (ml4iot-2022 a)", "their data"]  # a zero is a measurement
    assert rows["s2"][2:5] == ["MAE(RH) 1.5000 %RH", "MAE(RH) not measured", "FAIL (ml4iot-2022 a)"]
    assert rows["s3"][2:5] == ["—", "—", "recipe missing"]
    outcomes["s2"] = (True, {"mae_rh_pct": 1.25})
    seeds.reproduce(ctx, only=["s2"], out_dir=tmp_path)
    assert ran == ["s1", "s2", "s2"]  # only the row asked for ran again
    text = page.read_text()
    assert "MAE(T) 0.3123 °C" in text and "MAE(RH) 1.2500 %RH" in text and "FAIL (ml4iot-2022 a)" not in text
    assert [r["seed"]["id"] for r in json.loads((tmp_path / "seed_reports.json").read_text())] == ["s1", "s2"]
    seeds.reproduce(ctx, only=["s2"], out_dir=tmp_path)  # and again: s1's row is still kept
    assert "MAE(T) 0.3123 °C" in page.read_text()


def test_strict_turns_a_failing_verdict_into_exit_1_and_only_then(tmp_path, monkeypatch):
    """run and check exit 0 whatever the verdict, unless --strict and the verdict is FAIL (stand-ins, nothing trains)."""
    from harness import cli
    from harness.pipeline import check_file, run, run_all

    failed = []
    monkeypatch.setenv("HARNESS_VERBOSE", "1")  # keep this process's stderr where pytest captures it
    monkeypatch.setattr(run_all, "run_plan", lambda *a, **k: {"seconds": {}, "builds": 1, "builds_cached": 0,
                                                               "builds_shared": 0, "failed": list(failed)})
    monkeypatch.setattr(run, "record_run", lambda out, record: out / "runs" / "r.json")
    run_argv = ["run", "--suite", "ml4iot-2022", "--version", "a", "--task", "forecast", "--out", str(tmp_path)]
    assert cli.main(run_argv) == 0 and cli.main(run_argv + ["--strict"]) == 0
    failed.append("ml4iot-2022/a")
    assert cli.main(run_argv) == 0 and cli.main(run_argv + ["--strict"]) == 1
    verdict = {"passed": True}
    monkeypatch.setattr(check_file, "check_file", lambda *a, **k: dict(verdict))
    monkeypatch.setattr(check_file, "markdown", lambda rep: "table\n")
    check_argv = ["check", str(tmp_path / "m.tflite"), "--version", "a", "--task", "forecast", "--out", str(tmp_path)]
    assert cli.main(check_argv) == 0 and cli.main(check_argv + ["--strict"]) == 0
    verdict["passed"] = False
    assert cli.main(check_argv) == 0 and cli.main(check_argv + ["--strict"]) == 1


@pytest.mark.parametrize("raised, code, line", [
    (HarnessError("x.toml: bad key"), 2, "error: x.toml: bad key"),
    (OSError(28, "No space left on device", "/results/a.json"), 2, "error: /results/a.json: No space left on device"),
    (KeyboardInterrupt(), 130, "interrupted: finished files are kept, nothing half-written"),
])
def test_a_failing_command_exits_with_its_code_and_one_line(monkeypatch, capsys, raised, code, line):
    from harness import cli

    def fail(args):
        raise raised

    monkeypatch.setenv("HARNESS_VERBOSE", "1")  # keep this process's stderr where pytest captures it
    monkeypatch.setattr(cli, "cmd_list", fail)
    assert cli.main(["list"]) == code
    assert capsys.readouterr().err.splitlines() == [line]


def test_a_recipe_option_without_a_task_and_a_version_with_several_tasks_are_named():
    from harness import cli

    with pytest.raises(HarnessError, match=r"^--recipe 'my.toml': expected TASK=FILE, e.g. mytask=my.toml$"):
        cli._recipe_map(["my.toml"])
    assert cli._recipe_map([" kws = a=b.toml"]) == {"kws": Path(" a=b.toml")}  # the file name is kept whole
    with pytest.raises(HarnessError, match=r"^ml4iot-2022 version a has several tasks \(forecast, kws\): pass --task$"):
        cli._only_task("ml4iot-2022", "a", None)
    assert cli._only_task("ml4iot-2023", "a", None) == "kws" and cli._only_task("ml4iot-2022", "a", "kws") == "kws"


def test_recipe_consistency_checks_name_the_key_and_the_overrides():
    forecast = get("forecast")
    path = recipes.default_path(forecast, "ml4iot-2022", "a")
    with pytest.raises(HarnessError, match=r"key 'task' is 'kws', but this run needs a 'forecast' recipe$"):
        recipes.load(path, forecast, ['task="kws"'])  # a recipe of another task is refused, not run as this one
    with pytest.raises(HarnessError, match=r"^\S+ml4iot-2022-a.toml \(with --set prune.final_sparsity=0.3 "
                                           r"prune.initial_sparsity=0.5\): key 'prune.initial_sparsity' must be <= "
                                           r"prune.final_sparsity$"):
        recipes.load(path, forecast, ["prune.final_sparsity=0.3", "prune.initial_sparsity=0.5"])
    with pytest.raises(HarnessError, match=r"key 'prune.end' must be > prune.begin$"):
        recipes.load(path, forecast, ["prune.final_sparsity=0.3", "prune.begin=0.5", "prune.end=0.5"])
    ok = recipes.load(path, forecast, ["prune.final_sparsity=0.3", "prune.initial_sparsity=0.3", "prune.begin=0.4",
                                       "prune.end=0.5"])
    assert ok["prune"]["final_sparsity"] == 0.3


def test_a_recipe_written_back_as_toml_loads_as_the_same_recipe(tmp_path):
    """Search winners are written with Recipe.to_toml: every shipped recipe must survive the round trip."""
    n = 0
    for task in (get("forecast"), get("kws")):
        for path in sorted(task.recipes_dir.glob("*.toml")):
            r = recipes.load(path, task)
            copy = tmp_path / f"{task.name}-{path.name}"
            copy.write_text(r.to_toml())
            assert recipes.load(copy, task).data == r.data, path
            n += 1
    assert n >= 13


def test_model_keys_are_checked_against_the_builder_before_anything_is_built():
    from harness.toolkit.registry import units

    task, kws = get("forecast"), get("kws")
    path, kws_path = recipes.default_path(task, "ml4iot-2022", "a"), recipes.default_path(kws, "ml4iot-2025", "a")
    with pytest.raises(HarnessError, match=r"key 'model.name' is 'nope'; known forecasting models: .*delta_hinge"):
        recipes.load(path, task, ['model.name="nope"'])
    with pytest.raises(HarnessError, match=r"unknown key 'model.hiddn' for model 'delta_hinge' \(known: .*hidden"):
        recipes.load(path, task, ["model.hiddn=3"])
    assert recipes.load(kws_path, kws, ["model.width=2"])["model"]["width"] == 2  # a whole number is a float key's value
    for bad in ("0", "0.0", "4.5"):
        with pytest.raises(HarnessError, match=r"key 'model.width' must be in \(0, 4\]"):
            recipes.load(kws_path, kws, [f"model.width={bad}"])
    assert units(64, 0.25) == 16 and units(8, 0.01) == 1  # a narrow model keeps at least one unit per layer
    # a boolean is no whole number (Python's True == 1 would build one unit), and a whole number is no boolean
    with pytest.raises(HarnessError, match=r"key 'model.hidden' must be an integer, got True$"):
        recipes.load(path, task, ["model.hidden=true"])
    with pytest.raises(HarnessError, match=r"key 'model.residual' must be a boolean, got 1$"):
        recipes.load(kws_path, kws, ["model.residual=1"])
    with pytest.raises(HarnessError, match=r"key 'model.width' must be a number, got True$"):
        recipes.load(kws_path, kws, ["model.width=true"])


def test_a_command_silences_native_stderr_while_it_runs_and_gives_it_back(monkeypatch, capfd):
    """TensorFlow's C++ lines (fd 2) are dropped, our one error line is not; afterwards an in-process caller (a test,
    a notebook) has its own stderr again."""
    import os
    import sys

    from harness import cli

    def noisy(args):
        os.write(2, b"native log line\n")
        raise HarnessError("x.toml: bad key")

    monkeypatch.delenv("HARNESS_VERBOSE", raising=False)
    monkeypatch.setattr(cli, "cmd_list", noisy)
    before = sys.stderr
    assert cli.main(["list"]) == 2
    assert sys.stderr is before
    os.write(2, b"after\n")
    print("python after", file=sys.stderr)
    assert capfd.readouterr().err.splitlines() == ["error: x.toml: bad key", "after", "python after"]


def test_the_positional_hint_is_given_only_when_a_positional_is_missing(capsys):
    from harness.cli import main

    with pytest.raises(SystemExit) as stop:
        main(["run", "--jena", "a.zip", "--seeds", "0"])
    (line,) = capsys.readouterr().err.splitlines()
    assert stop.value.code == 2 and "argument --seeds: must be >= 1, got 0" in line, line
    assert "takes every value" not in line, line


@pytest.mark.parametrize("text", ["", " ", "   \t"])
def test_an_out_of_only_blanks_is_an_empty_path(text):
    import argparse

    from harness import arguments

    with pytest.raises(argparse.ArgumentTypeError, match="an empty path"):
        arguments.out_dir(text)


def test_out_under_an_executable_file_is_refused(tmp_path):
    """Run as root, the access check alone passes for an executable file: the folder test must refuse it."""
    import argparse

    from harness import arguments

    script = tmp_path / "run.sh"
    script.write_text("#!/bin/sh\n")
    script.chmod(0o755)
    with pytest.raises(argparse.ArgumentTypeError, match=r"run.sh/sub: cannot create or write it .*is not a writable folder"):
        arguments.out_dir(str(script / "sub"))


def test_search_takes_its_recipe_as_task_equals_file_too(tmp_path, capfd, shared_data):
    from harness import cli

    assert cli.main(["search", "--suite", "ml4iot-2025", "--version", "a", "--trials", "1", "--data-dir", str(shared_data),
                     "--recipe", f"kws={tmp_path / 'gone.toml'}", "--out", str(tmp_path / "out")]) == 2
    assert capfd.readouterr().err.strip().splitlines()[-1] == f"error: {tmp_path / 'gone.toml'}: no such recipe file"
