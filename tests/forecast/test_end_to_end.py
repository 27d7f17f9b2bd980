"""A real run on a slice of the station's own CSV format: real .tflite files, a table, reproducible bytes, seeds."""
import json
import shutil

import pytest

from harness.core import constraints
from harness.core.errors import HarnessError
from harness.core.paths import ROOT
from harness.core.task import Context
from harness.pipeline import run

QUICK = ["train.epochs=1", "train.batch_size=128"]  # a real run in seconds


def _run(tmp_path, jena_slice, out, **kw):
    ctx = Context(data_dir=tmp_path, options={"jena": [jena_slice]}, log=lambda m: None)
    return run.run_version(ctx, "ml4iot-2022", "a", tasks=["forecast"], out_dir=out,
                           overrides=QUICK, **kw)


def test_end_to_end_writes_artifact_and_tables(tmp_path, jena_slice):
    out = tmp_path / "results"
    rep = _run(tmp_path, jena_slice, out)
    task = rep["tasks"][0]
    version = out / "ml4iot-2022" / "version-a"
    blob = (version / "forecast" / "model.tflite.zlib").read_bytes()
    assert len(blob) == task["artifact"]["bytes"] == task["metrics"]["size_bytes"]
    side = json.loads((version / "forecast" / "sidecar.json").read_text())
    assert side["input"]["shape"] == [1, 6, 2] and side["output"]["units"] == ["°C", "%RH"]
    assert side["evaluation"].startswith("evaluation profile 'course' (course split: first 70% of rows train")
    md = (version / "report.md").read_text()
    assert "| MAE(T), test split" in md and "mpi_roof_slice.csv" in md and "not the course's device" in md
    assert "Baseline, Persistence" in md and "block bootstrap over days" in md
    assert (version / "report.tex").read_text().count("\\toprule") == 1
    assert "ml4iot-2022" in (out / "summary.md").read_text()
    assert json.loads((version / "report.json").read_text())["tasks"][0]["artifact"]["sha256"] == side["sha256"]
    result = {c["label"]: c["result"] for c in task["checks"]}
    assert set(result.values()) <= {"PASS", "FAIL", "PASS (marginal)"} and len(result) == 3
    assert task["details"]["windows"] == 300 - 9 + 1
    lo, hi = next(c["interval"] for c in task["checks"] if c["metric"] == "mae_t_degc")
    assert lo < task["metrics"]["mae_t_degc"] < hi
    # forecasting has no device script: bundling it is refused in one line naming the report
    from harness.core.errors import HarnessError
    from harness.pipeline import device
    with pytest.raises(HarnessError, match=r"version-a/report.json: task 'forecast' has no device bundle"):
        device.bundle(out, "ml4iot-2022", "a")
    assert not (out / "ml4iot-2022" / "bundles").exists()
    # a second run reuses the build
    rep2 = _run(tmp_path, jena_slice, out)
    assert rep2["tasks"][0]["build_cached"] and rep2["tasks"][0]["artifact"]["sha256"] == task["artifact"]["sha256"]


def test_verdict_follows_the_numbers_and_the_limits(tmp_path, jena_slice):
    """The table's word is derived from the measured figures: an impossible limit fails, a loose one passes."""
    rep = _run(tmp_path, jena_slice, tmp_path / "r")["tasks"][0]
    m = rep["metrics"]
    for c in rep["checks"]:
        assert c["passed"] == (m[c["metric"]] < c["limit"]), c
    assert rep["passed"] == all(c["passed"] for c in rep["checks"])
    ctx = Context(data_dir=tmp_path, options={"jena": [jena_slice]}, log=lambda m: None)
    cons = constraints.load("ml4iot-2022", "a")
    for value, expect in ((m["mae_t_degc"], False), (1e-9, False), (m["mae_t_degc"] * 1.5 + 10, True)):
        section = dict(cons.data["forecast"], max_mae_t_degc=value, max_mae_rh_pct=100.0, max_size_bytes=10**6)
        tight = constraints.Constraints(cons.path, cons.suite, cons.version, dict(cons.data, forecast=section))
        out = run.run_task(ctx, tight, "forecast", overrides=QUICK)
        assert out.passed is expect, value  # equal to a strict limit fails


def test_seeds_are_an_axis_and_every_seed_must_pass(tmp_path, jena_slice):
    out = tmp_path / "results"
    rep = _run(tmp_path, jena_slice, out, seeds=3)["tasks"][0]
    assert [s["seed"] for s in rep["seeds"]] == [1, 2, 3] and rep["seeds"][0]["shipped"]
    assert len({s["tflite_sha256"] for s in rep["seeds"]}) == 3  # different seeds train different models
    mae = next(c for c in rep["checks"] if c["metric"] == "mae_t_degc")
    assert mae["spread"]["n"] == 3 and mae["spread"]["min"] <= mae["spread"]["mean"] <= mae["spread"]["max"]
    assert mae["values"] == [s["metrics"]["mae_t_degc"] for s in rep["seeds"]]
    # a limit between the best and the worst seed: some seeds pass, so the recipe does not
    ctx = Context(data_dir=tmp_path, options={"jena": [jena_slice]}, log=lambda m: None)
    cons = constraints.load("ml4iot-2022", "a")
    middle = (mae["spread"]["min"] + mae["spread"]["max"]) / 2
    section = dict(cons.data["forecast"], max_mae_t_degc=middle, max_mae_rh_pct=100.0, max_size_bytes=10**6)
    split = constraints.Constraints(cons.path, cons.suite, cons.version, dict(cons.data, forecast=section))
    res = run.run_task(ctx, split, "forecast", overrides=QUICK, seeds=3)
    k = next(c for c in res.report["checks"] if c["metric"] == "mae_t_degc")["k_pass"]
    assert 0 < k < 3 and not res.passed
    # the shipped artifact is the recipe seed's, and the table shows every seed
    md = (out / "ml4iot-2022" / "version-a" / "report.md").read_text()
    assert "| 1 (shipped)" in md and "| 3 " in md and "/3 seeds)" in md


def test_parallel_seed_builds_give_the_same_bytes(tmp_path, jena_slice, monkeypatch):
    serial = _run(tmp_path, jena_slice, tmp_path / "a", seeds=2, use_cache=False)["tasks"][0]
    monkeypatch.setenv("ML4IOT_CACHE_DIR", str(tmp_path / "other-cache"))
    parallel = _run(tmp_path, jena_slice, tmp_path / "b", seeds=2, jobs=2)["tasks"][0]
    assert not parallel["build_cached"]
    assert [s["tflite_sha256"] for s in serial["seeds"]] == [s["tflite_sha256"] for s in parallel["seeds"]]


def test_same_recipe_twice_gives_byte_identical_tflite(tmp_path, jena_slice):
    shas = []
    for i in range(2):
        rep = _run(tmp_path, jena_slice, tmp_path / f"r{i}", use_cache=False)
        shas.append(rep["tasks"][0]["artifact"]["sha256"])
        assert not rep["tasks"][0]["build_cached"]
    assert shas[0] == shas[1]


def test_lab_mlp_with_pruning_and_int8_runs_end_to_end(tmp_path, jena_slice):
    ctx = Context(data_dir=tmp_path, options={"jena": [jena_slice]}, log=lambda m: None)
    cons = constraints.load("ml4iot-2022", "b")
    recipe = tmp_path / "lab-mlp.toml"
    recipe.write_text('task = "forecast"\nseed = 1\n[model]\nname = "mlp"\n[package]\nformat = "zlib"\n')
    out = run.run_task(ctx, cons, "forecast", recipe_path=recipe, overrides=[
        "model.width=0.1", "train.epochs=2", "train.batch_size=64", "train.loss=\"mse\"",
        "prune.final_sparsity=0.5", "quantize.mode=\"int8\""], use_cache=False)
    assert out.report["details"]["weight_sparsity"]["FULLY_CONNECTED"] >= 0.49


def test_full_season_profile_reports_its_split_the_baseline_and_error_by_month(tmp_path, jena_2017b, jena_2020):
    ctx = Context(data_dir=tmp_path, options={"jena": [jena_2017b, jena_2020], "profile": "full-season"},
                  log=lambda m: None)
    out = tmp_path / "results"
    rep = run.run_version(ctx, "ml4iot-2022", "a", tasks=["forecast"], out_dir=out, overrides=["train.epochs=1"])
    task = rep["tasks"][0]
    assert task["data"]["profile"]["name"] == "full-season"
    assert task["details"]["split_rows"]["test"][1] - task["details"]["split_rows"]["test"][0] == 41_896
    pers = task["baselines"][0]
    assert pers["name"].startswith("Persistence") and not pers["passes_all"]  # on a full season persistence fails
    version = out / "ml4iot-2022" / "version-a"
    md = (version / "report.md").read_text()
    assert "Evaluation profile: full-season" in md and "| 2020-03 " in md and "| 2020-12 " in md
    assert (version / "forecast" / "error-by-month-test.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # the sidecar tells a third party how this file was evaluated: this profile's split, not the course's
    evaluation = json.loads((version / "forecast" / "sidecar.json").read_text())["evaluation"]
    assert evaluation.startswith("evaluation profile 'full-season' (train 2017 H2") and "never cross a gap" in evaluation
    assert "70/20/10" not in evaluation
    # the course profile on the same files is another build (the profile is part of the data fingerprint)
    ctx2 = Context(data_dir=tmp_path, options={"jena": [jena_2017b, jena_2020]}, log=lambda m: None)
    course = run.run_task(ctx2, constraints.load("ml4iot-2022", "a"), "forecast", overrides=["train.epochs=1"])
    assert course.report["seeds"][0]["build_key"] != task["seeds"][0]["build_key"]


def test_cross_year_evaluates_the_shipped_file_on_another_year(tmp_path, jena_slice, jena_2017b):
    ctx = Context(data_dir=tmp_path, options={"jena": [jena_slice], "cross_year": [str(jena_2017b)]}, log=lambda m: None)
    out = run.run_task(ctx, constraints.load("ml4iot-2022", "a"), "forecast", overrides=["train.epochs=1"])
    row = dict(out.report["rows"])
    text = next(v for k, v in row.items() if k.startswith("Held-out year (mpi_roof_2017b.zip"))
    assert "MAE(T)" in text and "persistence" in text and ("PASS" in text or "FAIL" in text)



def test_a_bad_held_out_year_file_stops_the_run_before_it_trains(tmp_path, jena_slice):
    from harness.pipeline import plan

    bad = tmp_path / "notzip.zip"
    bad.write_bytes(b"not a zip")
    ctx = Context(data_dir=tmp_path, options={"jena": [jena_slice], "cross_year": [str(bad)]}, log=lambda m: None)
    with pytest.raises(HarnessError, match=r"notzip.zip: "):
        plan.check(ctx, [("ml4iot-2022", "a")], ["forecast"])

def _normalized_persistence(path, mean, std, k=3):
    """A file in the course's Lab 3 convention: normalized inputs, outputs in °C/%RH (here: repeat the last value)."""
    from harness.toolkit import convert, package
    from harness.toolkit.tfsetup import keras

    kr = keras()
    x = kr.Input((6, 2))
    last = kr.layers.Lambda(lambda t: t[:, -1:, :] * (std + 1e-6) + mean)(x)
    y = kr.layers.Concatenate(axis=1)([last] * k)
    path.write_bytes(package.pack(convert.to_tflite(kr.Model(x, y), "none"), "zlib"))
    return path


def test_check_reads_a_course_style_forecaster_with_normalized_inputs(tmp_path, jena_slice):
    """--inputs normalized: the file gets (x - mean) / (std + 1e-6) with the train split's statistics, as the lab
    fed it; the figures then equal persistence's exactly. Read as physical inputs the same file is far off."""
    import numpy as np

    from harness.core.errors import HarnessError
    from harness.core.task import get
    from harness.pipeline import check_file

    opts = {"jena": [jena_slice]}
    ctx = Context(data_dir=tmp_path, options=opts, log=lambda m: None)
    cons = constraints.load("ml4iot-2022", "a")
    task = get("forecast")
    from harness.core import recipes

    w = task.windows(ctx, cons.task("forecast"), recipes.load(recipes.default_path(task, "ml4iot-2022", "a"), task))
    model = _normalized_persistence(tmp_path / "g_th_a.tflite.zlib", w.mean.astype(np.float32), w.std.astype(np.float32))
    ctx = Context(data_dir=tmp_path, options={**opts, "inputs": "normalized"}, log=lambda m: None)
    rep = check_file.check_file(ctx, model, "ml4iot-2022", "a", "forecast")
    pers = rep["baselines"][0]["checks"]
    for c, p in zip(rep["checks"][:2], pers):
        assert abs(c["measured"] - p["measured"]) < 1e-3
    assert "normalized outside the model" in " ".join(rep["assumptions"])
    ctx = Context(data_dir=tmp_path, options=opts, log=lambda m: None)
    physical = check_file.check_file(ctx, model, "ml4iot-2022", "a", "forecast")
    assert physical["checks"][0]["measured"] > 10 * rep["checks"][0]["measured"]
    ctx = Context(data_dir=tmp_path, options={**opts, "inputs": "normalized", "norm_stats": "1,2,3"}, log=lambda m: None)
    with pytest.raises(HarnessError, match="--norm-stats"):
        check_file.check_file(ctx, model, "ml4iot-2022", "a", "forecast")


def test_given_normalization_statistics_are_read_as_mean_and_std_of_t_then_rh(tmp_path):
    """--norm-stats 'MEAN_T,STD_T,MEAN_RH,STD_RH', a std of 0 refused, and --norm-stats only with normalized inputs."""
    import numpy as np

    from harness.core.errors import HarnessError
    from harness.core.task import get

    task = get("forecast")

    def ctx(**options):
        return Context(data_dir=tmp_path, options=options, log=lambda m: None)

    mean, std = task.input_stats(ctx(inputs="normalized", norm_stats="10,2,70,5"), {}, None)
    np.testing.assert_array_equal(mean, [10.0, 70.0])
    np.testing.assert_array_equal(std, [2.0, 5.0])
    x = np.array([[[12.0, 80.0]]], np.float32)
    np.testing.assert_allclose(task.model_inputs(ctx(inputs="normalized", norm_stats="10,2,70,5"), {}, None, x),
                               [[[1.0, 2.0]]], rtol=1e-5)
    lab_mean, lab_std = task.input_stats(ctx(inputs="normalized", norm_stats="lab"), {}, None)
    np.testing.assert_array_equal(lab_mean, [9.107597, 75.904076])
    np.testing.assert_array_equal(lab_std, [8.654227, 16.557089])
    for bad in ("10,0,70,5", "10,2,70,0", "10,-1,70,5"):
        with pytest.raises(HarnessError, match="std > 0"):
            task.input_stats(ctx(inputs="normalized", norm_stats=bad), {}, None)
    with pytest.raises(HarnessError, match="--norm-stats applies only with --inputs normalized"):
        task.setup_for_artifact(ctx(norm_stats="lab"), {}, None)
    np.testing.assert_array_equal(task.model_inputs(ctx(), {}, None, x), x)  # physical: the file takes °C/%RH


def test_grade_reads_the_files_own_args_file_before_a_shared_args_json(tmp_path):
    from harness.core.errors import HarnessError
    from harness.core.task import get

    task = get("forecast")
    model = tmp_path / "g_th_a.tflite.zlib"
    model.write_bytes(b"")
    assert task.submission_options(tmp_path, model) == {}
    (tmp_path / "args.json").write_text(json.dumps({"inputs": "normalized", "norm_stats": "lab"}))
    assert task.submission_options(tmp_path, model) == {"inputs": "normalized", "norm_stats": "lab"}
    (tmp_path / "g_th_a.json").write_text(json.dumps({"inputs": "physical"}))
    assert task.submission_options(tmp_path, model) == {"inputs": "physical"}
    (tmp_path / "g_th_a.json").write_text(json.dumps({"inputs": "physical", "scale": 2}))
    with pytest.raises(HarnessError, match="unknown key"):
        task.submission_options(tmp_path, model)


def test_the_unconstrained_reference_is_reported_beside_the_shipped_file(tmp_path, jena_slice):
    ctx = Context(data_dir=tmp_path, options={"jena": [jena_slice], "unconstrained_reference": True}, log=lambda m: None)
    rep = run.run_version(ctx, "ml4iot-2022", "a", tasks=["forecast"], out_dir=tmp_path / "out",
                          overrides=QUICK)
    task = rep["tasks"][0]
    ref = next(b for b in task["baselines"] if b.get("reference"))
    assert ref["name"].startswith("Unconstrained reference") and {c["metric"] for c in ref["checks"]} == {"mae_t_degc", "mae_rh_pct"}
    assert "- Reference, Unconstrained reference" in (tmp_path / "out" / "ml4iot-2022" / "version-a" / "report.md").read_text()
    # the figures are cached by the windows' content: a second run reads them back, the same
    again = run.run_version(ctx, "ml4iot-2022", "a", tasks=["forecast"], out_dir=tmp_path / "out2",
                            overrides=QUICK)
    ref2 = next(b for b in again["tasks"][0]["baselines"] if b.get("reference"))
    assert [c["measured"] for c in ref2["checks"]] == [c["measured"] for c in ref["checks"]]


def test_skill_days_and_held_out_year_follow_the_numbers(tmp_path, jena_slice, jena_2017b):
    ctx = Context(data_dir=tmp_path, options={"jena": [jena_slice], "cross_year": [str(jena_2017b)]}, log=lambda m: None)
    cons = constraints.load("ml4iot-2022", "a")
    section = dict(cons.data["forecast"], max_mae_t_degc=100.0, max_mae_rh_pct=1e-9)
    tight = constraints.Constraints(cons.path, cons.suite, cons.version, dict(cons.data, forecast=section))
    rep = run.run_task(ctx, tight, "forecast", overrides=QUICK).report
    d, m = rep["details"], rep["metrics"]
    assert d["skill"]["t"] == pytest.approx(1 - m["mae_t_degc"] / d["persistence_mae"]["t_degc"])
    assert d["skill"]["rh"] == pytest.approx(1 - m["mae_rh_pct"] / d["persistence_mae"]["rh_pct"])
    assert d["days"] <= 3  # 292 windows of 10 min: blocks are calendar days
    held = next(v for k, v in rep["rows"] if k.startswith("Held-out year"))
    assert held.endswith("FAIL")  # MAE(T) within 100 °C but MAE(RH) not below 1e-9


def test_reference_figures_are_per_feature(tmp_path, jena_slice):
    ctx = Context(data_dir=tmp_path, options={"jena": [jena_slice], "unconstrained_reference": True}, log=lambda m: None)
    rep = run.run_task(ctx, constraints.load("ml4iot-2022", "a"), "forecast",
                       overrides=QUICK).report
    ref = next(b for b in rep["baselines"] if b.get("reference"))
    got = {c["metric"]: c["measured"] for c in ref["checks"]}
    pers = rep["details"]["persistence_mae"]
    assert 0.3 < got["mae_t_degc"] / pers["t_degc"] < 2 and 0.3 < got["mae_rh_pct"] / pers["rh_pct"] < 2


def test_version_fails_when_a_kept_task_passes_and_the_run_task_fails(tmp_path, jena_slice):
    cdir = tmp_path / "cons" / "ml4iot-2022"
    cdir.mkdir(parents=True)
    text = (ROOT / "constraints" / "ml4iot-2022" / "version-a.toml").read_text()
    cons = constraints.load("ml4iot-2022", "a")
    old = f"max_mae_t_degc = {cons.data['forecast']['max_mae_t_degc']}"
    assert old in text
    (cdir / "version-a.toml").write_text(text.replace(old, "max_mae_t_degc = 1e-9"))
    final = tmp_path / "out" / "ml4iot-2022" / "version-a"
    final.mkdir(parents=True)
    shutil.copy(ROOT / "results" / "reference" / "ml4iot-2022" / "version-a" / "report.json", final / "report.json")
    shutil.copytree(ROOT / "results" / "reference" / "ml4iot-2022" / "version-a" / "kws", final / "kws")
    ctx = Context(data_dir=tmp_path, options={"jena": [jena_slice]}, log=lambda m: None)
    rep = run.run_version(ctx, "ml4iot-2022", "a", tasks=["forecast"], out_dir=tmp_path / "out",
                          overrides=QUICK, constraints_dir=tmp_path / "cons")
    by = {t["task"]: t["passed"] for t in rep["tasks"]}
    assert by == {"forecast": False, "kws": True} and rep["passed"] is False


def test_the_held_out_year_series_is_read_once_per_duplicates_policy(tmp_path, monkeypatch):
    from harness.core.task import Context, get
    from tasks.forecast import task as forecast_task

    calls = []
    monkeypatch.setattr(forecast_task.jena, "load", lambda files, duplicates: calls.append(duplicates) or f"series-{duplicates}")
    task = get("forecast")
    ctx = Context(data_dir=tmp_path, options={"cross_year": [str(tmp_path / "2020.csv")]}, log=lambda m: None)
    assert task.cross_year_series(ctx, {"data": {"duplicates": "keep"}}) == "series-keep"
    assert task.cross_year_series(ctx, {"data": {"duplicates": "drop"}}) == "series-drop"
    assert task.cross_year_series(ctx, {"data": {"duplicates": "keep"}}) == "series-keep"
    assert calls == ["keep", "drop"]  # cached per policy, never one policy's series for the other
