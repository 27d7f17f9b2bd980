"""`make bench`'s target tables: a row names the recipe it measured (a version can have variant runs beside it), and
the runtime line says when the timed recipes are no longer the shipped ones."""
from benchmarks.quality import ROOT as BENCH_ROOT, latency_rows, runtime_line
from harness.toolkit import atomic

TARGETS = {"latency": {"max_median_total_ms": 0.5}}


def _report(recipe_path: str, total_median_ms: float) -> dict:
    return {"suite": "ml4iot-2022", "version": "c",
            "tasks": [{"task": "kws", "recipe_path": recipe_path,
                       "details": {"latency": {"total_median_ms": total_median_ms}}}]}


def test_latency_rows_name_the_variant_and_judge_the_target():
    rows = latency_rows([_report("tasks/kws/recipes/ml4iot-2022-c.toml", 0.48),
                         _report("tasks/kws/recipes/variants/ml4iot-2022-c-int4.toml", 0.74)], TARGETS)
    assert rows == [["ml4iot-2022/c", "kws", "0.480 ms", "≤ 0.5 ms", "met"],
                    ["ml4iot-2022/c", "kws (variant ml4iot-2022-c-int4)", "0.740 ms", "≤ 0.5 ms", "NOT met"]]


def test_latency_at_the_target_meets_it_and_reports_without_latency_are_skipped():
    no_latency = {"suite": "ml4iot-2021", "version": "a", "tasks": [{"task": "forecast", "details": {}}]}
    rows = latency_rows([_report("tasks/kws/recipes/ml4iot-2022-c.toml", 0.5), no_latency], TARGETS)
    assert [r[-1] for r in rows] == ["met"]


def test_the_runtime_benchmark_says_when_the_shipped_recipes_changed_after_the_timed_run(tmp_path):
    """A full run's timing is of its commit's recipes: a recipe re-chosen since (keys, not comments) is named."""
    record = {"every_suite": True, "every_version": True, "seeds": 5, "tasks": None, "overrides": None,
              "recipes": None, "command": "python -m harness run --suite all", "commit": "abc123",
              "wall_seconds": 4000.0, "builds": 65, "builds_cached": 0, "builds_shared": 5,
              "finished_utc": "2030-01-01 00:00:00 UTC"}
    atomic.write_json(tmp_path / "runs" / "full.json", record)
    gostop = "tasks/kws/recipes/ml4iot-2023-a.toml"
    now = {p.relative_to(BENCH_ROOT).as_posix(): p.read_text() for p in BENCH_ROOT.glob("tasks/*/recipes/*.toml")}

    def show(edit):
        return lambda commit, path: "" if path is None else edit(path, now[path])

    same = runtime_line(tmp_path, 5400, show=show(lambda path, text: "# an old comment\n" + text))
    assert "4000 s" in same and "changed since" not in same and "not compared" not in same
    changed = runtime_line(tmp_path, 5400, show=show(
        lambda path, text: text.replace("epochs = 25", "epochs = 40") if path == gostop else text))
    assert f"changed since** ({gostop}):" in changed
    missing = runtime_line(tmp_path, 5400, show=show(lambda path, text: None if path == gostop else text))
    assert f"({gostop})" in missing  # not in that commit: changed too
    assert "not compared" in runtime_line(tmp_path, 5400, show=lambda commit, path: None)
    atomic.write_json(tmp_path / "runs" / "full.json", dict(record, commit="abc123+dirty"))
    assert "not compared" in runtime_line(tmp_path, 5400, show=show(lambda path, text: text))  # not that commit's


def test_a_broken_report_stops_the_quality_bench_in_one_line(tmp_path, capsys):
    from benchmarks.quality import main

    broken = tmp_path / "ml4iot-2022" / "version-a" / "report.json"
    broken.parent.mkdir(parents=True)
    broken.write_text("[]")
    assert main(["--results", str(tmp_path)]) == 2
    assert capsys.readouterr().out.startswith(f"error: {broken}: holds a JSON list")
