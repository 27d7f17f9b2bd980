"""`make bench`'s target tables: a row names the recipe it measured (a version can have variant runs beside it)."""
from benchmarks.quality import latency_rows

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
