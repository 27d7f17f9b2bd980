"""Keyword-spotting folds: train + val re-partitioned by speaker, the test split untouched; `cv` with workers."""
from harness.core import constraints
from harness.core.paths import ROOT
from harness.core.task import Context
from harness.core.task import get as get_task
from harness.pipeline import crossval
from tasks.kws import data as msc
from tests.kws.conftest import OVERRIDES


def test_a_fold_repartitions_train_and_val_by_speaker_and_keeps_the_test_split(tiny_data):
    task = get_task("kws")
    section = constraints.load_file(tiny_data / "constraints" / "tiny" / "version-a.toml").task("kws")
    base, _ = task.splits(Context(data_dir=tiny_data / "data", log=lambda m: None), section)
    held_out = []
    for fold in range(3):
        s, source = task.splits(Context(data_dir=tiny_data / "data", log=lambda m: None, fold=(fold, 3)), section)
        assert sorted(s["train"] + s["val"] + s["held-out"]) == sorted(base["train"] + base["val"])
        assert s["test"] == base["test"]
        speakers = [{msc.speaker(i) for i in s[part]} for part in ("train", "val", "held-out")]
        assert all(speakers) and not (speakers[0] & speakers[1] or speakers[0] & speakers[2] or speakers[1] & speakers[2])
        assert f"fold {fold + 1} of 3" in source
        held_out += s["held-out"]
    assert sorted(held_out) == sorted(base["train"] + base["val"])


def test_cv_builds_folds_in_worker_processes_with_the_test_split_sealed(tiny_data, tmp_path):
    ctx = Context(data_dir=tiny_data / "data", log=lambda m: None)
    rep = crossval.cross_validate(ctx, "tiny", "a", "kws", folds=2, jobs=2, overrides=OVERRIDES,
                                  recipe_path=ROOT / "tests/kws/pair_recipe.toml",
                                  constraints_dir=tiny_data / "constraints", out_dir=tmp_path)
    assert [r["seed"] for r in rep["rows"]] == [1, 2]
    assert all("fold" in r["data_note"] and 0 <= r["metrics"]["accuracy_pct"] <= 100 for r in rep["rows"])
    assert "Accuracy, held-out fold" in rep["markdown"]
    # every held-out clip a fold gets wrong is named, once, and only train + val clips can be
    section = constraints.load_file(tiny_data / "constraints" / "tiny" / "version-a.toml").task("kws")
    for r in rep["rows"]:
        s, _ = get_task("kws").splits(Context(data_dir=tiny_data / "data", log=lambda m: None, fold=(r["fold"], 2)), section)
        held_out = {"/".join(item) for item in s["held-out"]}
        assert set(r["misses"]) <= held_out
        assert len(r["misses"]) == round(len(held_out) * (1 - r["metrics"]["accuracy_pct"] / 100))
    missed = sum(len(r["misses"]) for r in rep["rows"])
    if missed:
        assert f"## Held-out items missed ({missed})" in rep["markdown"]
