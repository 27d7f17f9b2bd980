"""The checking code on its own: strict limits, non-finite figures, intervals, seed spread, size floor, build keys."""
import math

import numpy as np
import pytest

from harness.core import check, constraints, recipes, stats
from harness.core.task import Limit, get, size_floor
from harness.pipeline import builds, report, run

LIMITS = [Limit("max_err", "err", "Error, test split", "u"), Limit("min_acc", "acc", "Accuracy", "%"),
          Limit("latency.max_ms", "lat", "Latency (protocol, host)", "ms")]


def _rows(err=None, acc=None, lat=None, section=None):
    section = section or {"max_err": 1.0, "min_acc": 90.0, "latency": {"max_ms": 5.0}}
    metrics = {k: v for k, v in (("err", err), ("acc", acc), ("lat", lat)) if v is not None}
    return check.evaluate(LIMITS, section, metrics)


def test_a_value_equal_to_a_strict_limit_fails():
    rows = _rows(err=1.0, acc=90.0, lat=5.0)
    assert [r.passed for r in rows] == [False, False, False]
    assert not check.verdict(rows)


def test_values_inside_the_limits_pass_and_outside_fail():
    assert check.verdict(_rows(err=0.999, acc=90.01, lat=4.99))
    assert [r.passed for r in _rows(err=1.001, acc=89.99, lat=5.01)] == [False, False, False]
    assert [r.op for r in _rows(err=0.5, acc=95.0, lat=1.0)] == ["<", ">", "<"]


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_measurements_fail(bad):
    for kw in ({"err": bad, "acc": 95.0, "lat": 1.0}, {"err": 0.5, "acc": bad, "lat": 1.0}):
        rows = _rows(**kw)
        assert not check.verdict(rows)
        assert any("not a finite number" in r.measured_text() for r in rows)


def test_a_missing_measurement_fails_and_an_unlimited_one_is_information():
    rows = _rows(err=0.5, acc=95.0)  # latency has a limit but was not measured
    assert not check.verdict(rows) and rows[2].measured_text() == "not measured"
    rows = _rows(err=0.5, acc=95.0, lat=100.0, section={"max_err": 1.0, "min_acc": 90.0})
    assert rows[2].passed is None and rows[2].result_text() == "info" and check.verdict(rows)


def test_labels_with_commas_are_kept_whole_in_short_form():
    from harness.pipeline.report import short_label

    assert short_label("Latency (course protocol, this host)") == "Latency (course protocol, this host)"
    assert short_label("MAE(T), test split") == "MAE(T)"


def test_wilson_interval_known_values():
    lo, hi = stats.wilson(8, 10)
    assert lo == pytest.approx(0.4902, abs=1e-4) and hi == pytest.approx(0.9433, abs=1e-4)
    lo, hi = stats.wilson(0, 10)
    assert lo == 0.0 and hi == pytest.approx(0.2775, abs=1e-4)
    lo, hi = stats.wilson(181, 181)
    assert hi == 1.0 and lo == pytest.approx(0.9792, abs=1e-4)  # a perfect score still cannot prove > 99.4 %
    with pytest.raises(ValueError):
        stats.wilson(3, 2)


def test_marginal_when_the_interval_reaches_the_limit():
    assert check.crosses(">", 99.4, (97.9, 100.0))
    assert not check.crosses(">", 90.0, (93.0, 96.0))
    assert check.crosses("<", 0.3, (0.2, 0.31)) and not check.crosses("<", 0.3, (0.2, 0.29))


def test_block_bootstrap_resamples_days_not_windows():
    # two days, every window of a day has the same error: only whole-day draws move the MAE
    err = np.concatenate([np.zeros((100, 1)), np.ones((100, 1))])
    days = np.repeat([0, 1], 100)
    lo, hi = stats.block_bootstrap_mae(err, days, resamples=4000, seed=1)
    assert lo[0] == 0.0 and hi[0] == 1.0
    # constant errors: the interval collapses to the value
    lo, hi = stats.block_bootstrap_mae(np.full((50, 2), 0.25), np.arange(50) // 5)
    np.testing.assert_allclose([lo, hi], 0.25)


def test_seed_spread_uses_the_sample_sd():
    s = stats.spread([1.0, 2.0, 3.0])
    assert s == {"n": 3, "mean": 2.0, "sd": 1.0, "min": 1.0, "max": 3.0}
    assert stats.spread([5.0])["sd"] is None


def test_size_floor():
    task = get("forecast")
    path = recipes.default_path(task, "ml4iot-2022", "a")
    r = recipes.load(path, task, ['quantize.mode="int8"', 'package.format="tflite"'])
    assert size_floor(1000, r) == 1000
    r = recipes.load(path, task, ['quantize.mode="none"', 'package.format="zlib"', "prune.final_sparsity=0.5"])
    assert size_floor(1000, r) == 1000 * 4 * 0.5 * 0.5


def test_build_key_changes_with_what_shapes_the_model_only():
    task = get("forecast")
    cons = constraints.load("ml4iot-2022", "a")
    section = cons.task("forecast")
    r = recipes.load(recipes.default_path(task, "ml4iot-2022", "a"), task)
    fp = {"files": ["x"]}
    key = builds.build_key(task, section, r, fp)
    assert key == builds.build_key(task, section, r, fp)
    assert key == builds.build_key(task, dict(section, max_mae_t_degc=0.1, size_formats=["zlib"]), r, fp)
    assert key == builds.build_key(task, section, recipes.load(r.path, task, ['package.format="tflite"']), fp)
    assert key != builds.build_key(task, section, builds.with_seed(r, 7), fp)
    assert key != builds.build_key(task, dict(section, output_steps=9), r, fp)
    assert key != builds.build_key(task, section, r, {"files": ["y"]})
    # every recipe table that shapes the model is part of the key: a changed recipe never reuses a stale build
    assert key != builds.build_key(task, section, recipes.load(r.path, task, ["train.epochs=3"]), fp)
    assert key != builds.build_key(task, section, recipes.load(r.path, task, ["model.hidden=3"]), fp)


def test_a_reference_that_misses_a_limit_the_file_misses_gives_both_margins():
    from harness.pipeline import report, run

    class T:
        limits = LIMITS

    section = {"max_err": 1.0, "min_acc": 90.0, "latency": {"max_ms": None}}
    shipped = {"err": 1.3, "acc": 95.0}
    out = run.baseline_report(T, section, {"Trivial": {"err": 2.0, "acc": 50.0},
                                           "Big model": {"err": 1.1, "acc": 99.0}}, ("Big model",), shipped)
    trivial, big = out
    assert not trivial["reference"] and "both_miss" not in trivial
    assert big["reference"] and len(big["both_miss"]) == 1
    miss = big["both_miss"][0]
    assert miss["reference_by"] == pytest.approx(0.1) and miss["shipped_by"] == pytest.approx(0.3)
    lines = report.baseline_lines({"baselines": out})
    assert "even this misses" in lines[1] and "the shipped file by 0.3" in lines[1]
    assert lines[0].startswith("- Baseline, Trivial") and "discriminate" in lines[0]
    # a reference that passes, or a limit the file meets, is not reported as out of reach
    ok = run.baseline_report(T, section, {"Big model": {"err": 0.9, "acc": 99.0}}, ("Big model",), shipped)
    assert ok[0]["both_miss"] == [] and "even this" not in report.baseline_lines({"baselines": ok})[0]


def test_a_baseline_counts_as_passing_only_when_it_meets_every_limit_and_a_reference_is_no_trivial_pass():
    class T:
        limits = LIMITS

    section = {"max_err": 1.0, "min_acc": 90.0, "latency": {"max_ms": None}}
    out = run.baseline_report(T, section, {"Half": {"err": 0.5, "acc": 50.0}, "Every": {"err": 0.5, "acc": 95.0}})
    half, every = out
    assert (half["passes_all"], half["passes_any"]) == (False, True)
    assert (every["passes_all"], every["passes_any"]) == (True, True)
    lines = report.baseline_lines({"baselines": out})
    assert "the limit on Error does not discriminate" in lines[0] and "every one" not in lines[0]
    assert "these limits do not discriminate" in lines[1]

    big = run.baseline_report(T, section, {"Big model": {"err": 0.5, "acc": 95.0}}, ("Big model",), {"err": 0.6, "acc": 95.0})
    assert big[0]["passes_all"] and "trivial" not in _summary_status(big)  # an upper reference passing is expected
    assert _summary_status([every]).endswith("; a trivial baseline passes too")
    assert "trivial" not in _summary_status([half])


def _summary_rep(baselines, version="a", status="official"):
    """A one-task report.json as the summary reads it."""
    task = {"title": "Forecast", "passed": True, "seeds": [{"passed": True}], "baselines": baselines,
            "checks": [{"label": "MAE T, test split", "measured_text": "0.2 °C"}]}
    return {"suite": "s", "version": version, "_path": f"s/version-{version}/report.md", "commit": "c0ffee",
            "host_line": "host", "constraints": {"status": status}, "tasks": [task]}


def _summary_status(baselines):
    return report.summary_rows([_summary_rep(baselines)])[0][0][-1]


def test_missed_items_are_counted_over_seeds_most_missed_first():
    from harness.pipeline.report import missed_section
    from harness.pipeline.run import missed_by_seeds

    per_seed = [{"misses": {"up/a": "up → down", "down/b": "down → up"}}, {"misses": {"up/a": "up → down"}}, {}]
    missed = missed_by_seeds(per_seed, [1, 2, 3])
    assert [(r["item"], r["seeds"]) for r in missed] == [("up/a", [1, 2]), ("down/b", [1])]
    title, body = missed_section(missed, 3, "test")
    assert "2 test item(s) are missed by at least one seed, 0 by every seed" in body and "| `up/a`   | 2/3" in body
    missed = [{"item": "a/1", "seeds": [1, 2], "answers": ["b"]}, {"item": "a/2", "seeds": [2], "answers": ["c"]}]
    title, body = missed_section(missed, 2, "test")
    assert body.startswith("2 test item(s) are missed by at least one seed, 1 by every seed.")


def test_a_progress_line_judges_what_was_measured_and_says_when_latency_was_skipped():
    from harness.pipeline.run import progress_word

    acc = {"passed": True, "measured": 95.0}
    info = {"passed": None, "measured": 1.0}
    assert progress_word([acc, info], latency=True) == "PASS"
    assert progress_word([acc, {"passed": False, "measured": None}], latency=True) == "FAIL"
    assert progress_word([acc], latency=False) == "PASS on the measured limits"
    assert progress_word([acc, {"passed": False, "measured": 1e6}], latency=False) == "FAIL on the measured limits"


def test_the_summary_lists_the_versions_first_and_other_profiles_and_variants_apart():
    def rep(suite, version, path, **task):
        task = {"title": "Keyword spotting", "passed": True, "seeds": [{"passed": True}],
                "checks": [{"label": "Accuracy, test split", "measured_text": "95.00 %"}], **task}
        return {"suite": suite, "version": version, "_path": path, "commit": "c0ffee", "host_line": "host",
                "constraints": {"status": "official"}, "tasks": [task]}

    reports = [rep("s-2021", "a", "full-season/s-2021/version-a/report.md", data={"profile": {"name": "full-season"}},
                   passed=False, seeds=[{"passed": False}]),
               rep("s-2022", "b", "s-2022/version-b/report.md"),
               rep("s-2022", "a", "int4/s-2022/version-a/report.md", recipe_path="tasks/kws/recipes/variants/x-int4.toml"),
               rep("s-2021", "b", "s-2021/version-b/report.md", data={"profile": {"name": "course"}})]
    text = report.summary_markdown(reports, "All suites: summary")
    own, beside = text.split("## Beside the versions")
    assert own.index("s-2021/version-b") < own.index("s-2022/version-b")  # suite, then version order
    assert "full-season" not in own and "int4" not in own and "FAIL" not in own
    assert "profile full-season" in beside and "variant `x-int4`" in beside and "FAIL (0/1 seeds)" in beside
    assert beside.index("s-2021") < beside.index("s-2022")
    only_own = report.summary_markdown(reports[1:2], "one")
    assert "Beside the versions" not in only_own and "s-2022/version-b" in only_own


def test_an_interval_ending_at_the_limit_is_marginal():
    assert check.crosses("<", 0.3, (0.2, 0.3)) and check.crosses(">", 90.0, (90.0, 95.0))


def test_bootstrap_is_a_95_interval_of_the_window_mean():
    err = np.arange(20, dtype=float)[:, None]  # 20 days of one window: sd of the mean 1.289
    lo, hi = stats.block_bootstrap_mae(err, np.arange(20), resamples=4000)
    assert 4.6 < hi[0] - lo[0] < 5.6  # 2 x 1.96 x 1.289 = 5.05 (a 90 % interval is 4.24)
    sizes = np.tile([1, 99], 10)  # days of 1 window (error 1) and of 99 windows (error 0): MAE 0.01, not 0.5
    err = np.concatenate([np.full((s, 1), float(s == 1)) for s in sizes])
    lo, hi = stats.block_bootstrap_mae(err, np.repeat(np.arange(20), sizes))
    assert lo[0] < 0.01 < hi[0] < 0.1


def _rec(err, iv, passed):
    rows = check.evaluate([Limit("max_err", "err", "Error", "u")], {"max_err": 1.0}, {"err": err})
    return {"metrics": {"err": err}, "checks": [run._check_dict(r) for r in rows], "intervals": {"err": iv},
            "interval_method": {"err": "bootstrap"}, "passed": passed}


def test_aggregate_needs_every_seed_and_marks_marginal_from_any_seed():
    seeds = [_rec(0.5, (0.4, 0.6), True), _rec(0.8, (0.7, 1.05), True), _rec(1.2, (1.1, 1.3), False)]
    (row,) = run.aggregate(None, {"max_err": 1.0}, seeds)
    assert row["k_pass"] == 2 and row["passed"] is False and row["result"] == "FAIL 2/3"
    (row,) = run.aggregate(None, {"max_err": 1.0}, seeds[:2])
    assert row["passed"] and row["marginal"] and row["interval"] == (0.4, 0.6) and row["result"] == "PASS 2/2 (marginal)"


def test_the_verdict_counts_passing_seeds_and_calls_only_a_pass_marginal():
    def task(passed, seeds, marginal=False, device=None):
        checks = [{"marginal": marginal, "passed": passed}]
        if device is not None:
            checks.append({"imported": {"finished_utc": None}, "passed": device})
        return {"passed": passed, "seeds": [{"passed": p} for p in seeds], "checks": checks}

    assert report.task_verdict(task(True, [True, True], marginal=True)) == "PASS (2/2 seeds), marginal"
    assert report.task_verdict(task(False, [True, False], marginal=True)) == "FAIL (1/2 seeds)"
    assert report.task_verdict(task(False, [True], device=False)) == \
        "FAIL (1/1 seeds); the imported device latency misses the limit"
    assert report.task_verdict(task(True, [True], device=True)) == "PASS (1/1 seeds)"


def test_the_summary_flags_reconstructed_limits_and_a_trivial_baseline_that_passes_but_not_a_reference():
    own, _ = report.summary_rows([
        _summary_rep([{"name": "Persistence", "passes_all": True}], "a"),
        _summary_rep([{"name": "Big model", "passes_all": True, "reference": True}], "b", "reconstructed"),
        _summary_rep([{"name": "Persistence", "passes_all": False}], "c")])
    assert [row[-1] for row in own] == ["PASS (1/1 seeds); a trivial baseline passes too",
                                        "PASS (1/1 seeds) (reconstructed limits)", "PASS (1/1 seeds)"]


def test_a_baseline_line_says_which_limits_do_not_discriminate():
    def line(passes):
        checks = [{"label": "MAE T, test split", "measured_text": "0.25", "result": "PASS" if passes[0] else "FAIL",
                   "passed": passes[0]},
                  {"label": "MAE RH, test split", "measured_text": "1.5", "result": "PASS" if passes[1] else "FAIL",
                   "passed": passes[1]}]
        b = {"name": "Persistence", "checks": checks, "passes_all": all(passes), "passes_any": any(passes)}
        return report.baseline_lines({"baselines": [b]})[0]

    assert line([True, True]).endswith("the trivial predictor passes every one it can be checked against.")
    assert line([True, False]).endswith(" — the limit on MAE T does not discriminate on this data.")
    assert line([False, False]).endswith(" — fails, so the limits discriminate.")


def test_the_worst_limit_ratio_reads_each_limit_the_right_way_up_and_leaves_size_out():
    """The search's first objective: the metric that is closest to (or furthest past) its limit, whichever the
    direction of the limit; size is an objective of its own, not one of the ratios."""
    from harness.core.task import TaskBase

    class Three(TaskBase):
        limits = LIMITS + [Limit("max_size_bytes", "size_bytes", "Size", "B")]

    section = {"max_err": 1.0, "min_acc": 90.0, "latency": {"max_ms": 5.0}, "max_size_bytes": 1000}
    metrics = {"err": 0.5, "acc": 95.0, "lat": 4.0, "size_bytes": 100_000.0}
    worst, size = Three().objective_values(section, metrics)
    assert worst == pytest.approx(90.0 / 95.0) and size == 100_000.0  # accuracy 95 % against a 90 % floor is the closest
    worst, _ = Three().objective_values(section, {**metrics, "acc": 45.0})
    assert worst == pytest.approx(2.0)  # half the accuracy asked for: twice past its limit


def test_size_floor_of_int4_and_of_a_nearly_all_pruned_model():
    task = get("forecast")
    path = recipes.default_path(task, "ml4iot-2022", "a")
    r = recipes.load(path, task, ['quantize.mode="int4"', 'package.format="tflite"'])
    assert size_floor(1000, r) == 500  # two weights a byte
    r = recipes.load(path, task, ['quantize.mode="none"', 'package.format="zlib"', "prune.final_sparsity=0.99"])
    assert size_floor(1000, r) == int(1000 * 4 * 0.05 * 0.5)  # never below 5 % of the weights kept


def test_the_recipe_line_of_a_table_says_pruning_quantization_seed_and_members():
    task = get("forecast")
    path = recipes.default_path(task, "ml4iot-2022", "a")
    plain = run.recipe_summary(recipes.load(path, task))
    assert ", no pruning, PTQ none, " in plain and plain.endswith(", seed 1, package zlib")
    tuned = run.recipe_summary(recipes.load(path, task, ["prune.final_sparsity=0.6", "prune.initial_sparsity=0.2",
                                                         'quantize.mode="int8"', "quantize.qat_epochs=3", "seed=7"]))
    assert ", pruning 0.20→0.60, PTQ int8 + QAT 3 ep, " in tuned and tuned.endswith(", seed 7, package zlib")
    started_pruned = run.recipe_summary(recipes.load(path, task, ["prune.final_sparsity=0.6"]))
    assert ", pruning 0.00→0.60, " in started_pruned  # pruning from dense is pruning
    kws = get("kws")
    kws_path = recipes.default_path(kws, "ml4iot-2025", "a")
    pair = run.recipe_summary(recipes.load(kws_path, kws, ["ensemble.members=2"]))
    assert pair.startswith("2 × ds_cnn_s(") and ") averaged, pruning " in pair
    assert not run.recipe_summary(recipes.load(kws_path, kws, ["ensemble.members=1"])).startswith("1 ×")


def test_a_check_on_numpy_figures_is_a_plain_bool_and_the_json_says_false_not_the_string():
    """A numpy comparison gives numpy's bool, which JSON wrote as the string "False": true to any reader."""
    passed = check.passes(np.float64(53.04), ">", 99.4)
    assert type(passed) is bool and passed is False
    assert type(check.passes(np.float32(0.1), "<", 0.5)) is bool


def test_json_records_write_numpy_scalars_as_json_values(tmp_path):
    import json
    from pathlib import Path

    from harness.toolkit import atomic

    p = atomic.write_json(tmp_path / "r.json", {"ok": np.bool_(False), "n": np.int64(3), "x": np.float32(0.5), "p": Path("a/b")})
    assert json.loads(p.read_text()) == {"ok": False, "n": 3, "x": 0.5, "p": "a/b"}
