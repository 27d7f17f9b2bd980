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
    with pytest.raises(HarnessError, match=r"'train.epochs' must be a integer"):
        recipes.load(path, task, ["train.epochs=two"])
    with pytest.raises(HarnessError, match="qat_epochs"):
        recipes.load(path, task, ["quantize.qat_epochs=2"])


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
