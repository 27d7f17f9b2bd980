"""Cross-validation over train + val: the folds, and `cv` end to end on the toy task (the test split sealed)."""
import json
from pathlib import Path

import pytest

from harness.core import folds
from harness.core.errors import HarnessError
from harness.core.task import Context
from harness.pipeline import crossval

TOY = Path(__file__).parent / "toy_task"


def group(item: str) -> str:
    return item.split("/")[0]


POOL = [f"spk{i % 7}/clip{i}" for i in range(60)]


def test_every_item_is_held_out_exactly_once_and_groups_never_straddle():
    held_all = []
    for f in range(4):
        kept, held = folds.split_pool(POOL, group, f, 4)
        assert sorted(kept + held) == sorted(POOL)
        assert kept == [p for p in POOL if p in kept] and held == [p for p in POOL if p in held]  # order kept
        assert not {group(p) for p in kept} & {group(p) for p in held}
        held_all += held
    assert sorted(held_all) == sorted(POOL)


def test_folds_depend_on_the_pool_alone_and_are_balanced():
    kept, held = folds.split_pool(list(reversed(POOL)), group, 1, 3)
    assert folds.split_pool(POOL, group, 1, 3) == (kept[::-1], held[::-1])  # the pool's order does not matter
    sizes = [len({group(p) for p in folds.split_pool(POOL, group, f, 3)[1]}) for f in range(3)]
    assert sorted(sizes) == [2, 2, 3]  # 7 speakers dealt to 3 folds


def test_a_fold_parts_into_train_validation_and_held_out_groups():
    for f in range(3):
        train, val, held = folds.fold_parts(POOL, group, f, 3)
        assert held == folds.split_pool(POOL, group, f, 3)[1]
        assert sorted(train + val + held) == sorted(POOL)
        parts = [{group(p) for p in part} for part in (train, val, held)]
        assert all(parts) and sum(map(len, parts)) == len(set.union(*parts))  # non-empty, no group in two parts
    many = [f"spk{i}/clip" for i in range(100)]
    train, val, _ = folds.fold_parts(many, group, 0, 5)
    assert len(val) == pytest.approx((len(train) + len(val)) / folds.VALIDATION_PARTS, abs=1)
    with pytest.raises(HarnessError, match="keeps 1 group"):
        folds.fold_parts(["a/1", "b/1"], group, 0, 2)


@pytest.mark.parametrize("fold,k,match", [(0, 1, "at least 2 folds"), (3, 3, "not one of 0..2"),
                                          (0, 50, "need at least 50 groups")])
def test_impossible_folds_are_one_line_errors(fold, k, match):
    with pytest.raises(HarnessError, match=match):
        folds.split_pool(POOL[:10], group, fold, k)


def test_cv_trains_each_fold_on_train_plus_val_and_never_reads_the_test_split(tmp_path, toy, monkeypatch):
    reads = []
    real = type(toy).data

    def spy(self, section, split, fold=None):
        reads.append((split, fold))
        return real(self, section, split, fold)

    monkeypatch.setattr(type(toy), "data", spy)
    rep = crossval.cross_validate(Context(data_dir=tmp_path, log=lambda m: None), "toy", "a", "toy", folds=3,
                                  out_dir=tmp_path / "out", constraints_dir=TOY / "constraints")
    assert [r["fold"] for r in rep["rows"]] == [0, 1, 2] and [r["seed"] for r in rep["rows"]] == [1, 2, 3]
    assert {split for split, _ in reads} == {"train", "val", "held-out"}  # never "test"
    assert {fold for _, fold in reads} == {(0, 3), (1, 3), (2, 3)}
    assert len({r["tflite_sha256"] for r in rep["rows"]}) == 3  # three different trainings
    mae = rep["summary"][0]
    assert mae["k_pass"] == sum(r["checks"][0]["result"] == "PASS" for r in rep["rows"])
    assert mae["spread"]["mean"] == pytest.approx(sum(r["metrics"]["mae"] for r in rep["rows"]) / 3)
    folder = Path(rep["folder"])
    assert sorted(p.name for p in folder.iterdir()) == ["report.json", "report.md"]
    assert json.loads((folder / "report.json").read_text())["folds"] == 3
    md = (folder / "report.md").read_text()
    assert "not test figures" in md and "held-out fold" in md


def test_what_a_fold_measures_never_chooses_its_epoch(tmp_path, toy, monkeypatch):
    """Scrambling the held-out targets leaves every fold's file unchanged, with the best validation epoch kept."""
    import numpy as np

    def build():
        return crossval.cross_validate(Context(data_dir=tmp_path, log=lambda m: None, use_cache=False), "toy", "a",
                                       "toy", folds=2, overrides=["train.select=best-val", "train.epochs=12"],
                                       constraints_dir=TOY / "constraints")  # no cache: both runs really train

    plain = build()
    real = type(toy).data

    def scrambled(self, section, split, fold=None):  # the held-out rows' targets, under whichever split reads them
        x, y = real(self, section, split, fold)
        if fold is None:
            return x, y
        held = {row.tobytes() for row in real(self, section, "held-out", fold)[0]}
        hit = np.array([row.tobytes() in held for row in x])
        return x, np.where(hit[:, None], -3 * y + 5, y)

    monkeypatch.setattr(type(toy), "data", scrambled)
    again = build()
    assert [r["tflite_sha256"] for r in again["rows"]] == [r["tflite_sha256"] for r in plain["rows"]]
    assert [r["metrics"]["mae"] for r in again["rows"]] != [r["metrics"]["mae"] for r in plain["rows"]]


def test_cv_seeds_builds_every_fold_with_other_seeds_and_reports_each_seed_sets_mean(tmp_path, toy):
    rep = crossval.cross_validate(Context(data_dir=tmp_path, log=lambda m: None), "toy", "a", "toy", folds=2, seeds=2,
                                  out_dir=tmp_path / "out", constraints_dir=TOY / "constraints")
    assert [(r["fold"], r["seed_set"], r["seed"]) for r in rep["rows"]] == [(0, 0, 1), (0, 1, 3), (1, 0, 2), (1, 1, 4)]
    assert len({r["tflite_sha256"] for r in rep["rows"]}) == 4
    mae = rep["summary"][0]
    assert mae["n"] == 4
    for s in range(2):  # each set's mean is what a single-seed cv with those seeds would report
        assert mae["seed_set_means"][s] == pytest.approx(sum(r["metrics"]["mae"] for r in rep["rows"]
                                                             if r["seed_set"] == s) / 2)
    assert mae["spread"]["mean"] == pytest.approx(sum(mae["seed_set_means"]) / 2)
    assert "built 2 times" in rep["markdown"] and "Each seed set: mean over folds" in rep["markdown"]
    single = crossval.cross_validate(Context(data_dir=tmp_path, log=lambda m: None), "toy", "a", "toy", folds=2,
                                     out_dir=tmp_path / "out", constraints_dir=TOY / "constraints")
    assert [r["tflite_sha256"] for r in single["rows"]] == [r["tflite_sha256"] for r in rep["rows"]
                                                             if r["seed_set"] == 0]  # set 0 is the single-seed cv
    assert Path(single["folder"]) != Path(rep["folder"])  # neither table overwrites the other
    with pytest.raises(HarnessError, match="--seeds 0"):
        crossval.cross_validate(Context(data_dir=tmp_path), "toy", "a", "toy", folds=2, seeds=0,
                                constraints_dir=TOY / "constraints")


def test_missed_items_are_counted_over_seed_sets_once_per_item():
    rows = [{"fold": 0, "seed_set": 0, "misses": {"a/1": "a → b", "a/2": "a → c"}},
            {"fold": 0, "seed_set": 1, "misses": {"a/1": "a → b", "a/2": "a → b"}},
            {"fold": 1, "seed_set": 0, "misses": {}},
            {"fold": 1, "seed_set": 1, "misses": {"b/7": "b → a"}}]
    assert crossval.missed_items(rows) == [("a/1", 1, 2, "a → b"), ("a/2", 1, 2, "a → b; a → c"),
                                           ("b/7", 2, 1, "b → a")]


def test_a_held_out_fold_is_measured_on_the_held_out_rows(tmp_path, toy):
    """The fold's figure equals the MAE of its own file on its held-out rows, recomputed here."""
    import numpy as np

    from harness.core import constraints
    from harness.pipeline import run
    from harness.toolkit.measure.interpreter import Runner

    rep = crossval.cross_validate(Context(data_dir=tmp_path, log=lambda m: None), "toy", "a", "toy", folds=2,
                                  constraints_dir=TOY / "constraints")
    cons = constraints.load("toy", "a", TOY / "constraints")
    ctx = Context(data_dir=tmp_path, log=lambda m: None, sealed_test=True, fold=(1, 2))
    out = run.run_task(ctx, cons, "toy", overrides=["seed=2"], latency=False, split="held-out")
    assert out.report["seeds"][0]["tflite_sha256"] == rep["rows"][1]["tflite_sha256"]
    x, y = toy.data(cons.task("toy"), "held-out", (1, 2))
    tflite = out.files["model.tflite.zlib"]
    from harness.toolkit import package

    err = np.abs(Runner(package.unpack(tflite, "zlib")).predict(x) - y).mean()
    assert rep["rows"][1]["metrics"]["mae"] == pytest.approx(float(err), rel=1e-6)


def test_a_task_without_folds_is_refused(tmp_path, toy, monkeypatch):
    monkeypatch.setattr(type(toy), "supports_folds", False)
    with pytest.raises(HarnessError, match="does not define cross-validation folds"):
        crossval.cross_validate(Context(data_dir=tmp_path), "toy", "a", "toy", folds=3,
                                constraints_dir=TOY / "constraints")


def test_each_recipe_and_its_overrides_keep_their_own_cv_table(tmp_path, toy):
    def cv(*overrides):
        return crossval.cross_validate(Context(data_dir=tmp_path, log=lambda m: None), "toy", "a", "toy", folds=2,
                                       overrides=list(overrides), out_dir=tmp_path / "out",
                                       constraints_dir=TOY / "constraints")

    two, three = cv("train.epochs=2"), cv("train.epochs=3")
    assert two["folder"] != three["folder"]  # another override never replaces the first table
    assert json.loads((Path(two["folder"]) / "report.json").read_text())["overrides"] == ["train.epochs=2"]
    assert cv("train.epochs=2")["folder"] == two["folder"]  # the same command replaces its own table


def test_every_fold_runs_with_the_test_split_sealed(tmp_path, toy, opened_splits):
    crossval.cross_validate(Context(data_dir=tmp_path, log=lambda m: None), "toy", "a", "toy", folds=2,
                            overrides=["train.epochs=2"], constraints_dir=TOY / "constraints")
    assert opened_splits and set(opened_splits) == {("held-out", True)}


def test_a_fold_build_passes_only_when_every_measured_limit_holds_and_each_build_is_counted(tmp_path, toy, monkeypatch):
    real = type(toy).measure

    def measure(self, ctx, section, recipe, tflite, split="test", latency=True):
        m = real(self, ctx, section, recipe, tflite, split, latency)
        m.metrics["mae"] = 0.9 if recipe["seed"] == 2 else 0.1  # one build misses the MAE limit, its size still fits
        return m

    monkeypatch.setattr(type(toy), "measure", measure)
    rep = crossval.cross_validate(Context(data_dir=tmp_path, log=lambda m: None), "toy", "a", "toy", folds=2, seeds=2,
                                  overrides=["train.epochs=2"], constraints_dir=TOY / "constraints")
    assert [(r["seed"], r["passed"]) for r in rep["rows"]] == [(1, True), (3, True), (2, False), (4, True)]
    assert [(s["k_pass"], s["n"]) for s in rep["summary"]] == [(3, 4), (4, 4)]  # MAE: 3 of 4 builds; size: all
    cells = [[c.strip() for c in line.split("|")] for line in rep["markdown"].splitlines() if line.startswith("|")]
    assert [row[-2] for row in cells if row[-2] in ("PASS", "FAIL")] == ["PASS", "PASS", "FAIL", "PASS"]  # All limits
    assert "Builds meeting it" in rep["markdown"] and "Folds meeting it" not in rep["markdown"]


def test_a_limit_no_fold_measures_neither_fails_a_fold_nor_shows_in_its_table(tmp_path, toy, monkeypatch):
    from harness.core.limits import Limit

    # like latency in cv: a limit of the version whose metric no fold measures
    monkeypatch.setattr(type(toy), "limits", type(toy).limits + [Limit("max_size_bytes", "latency_ms", "Latency", "ms")])
    rep = crossval.cross_validate(Context(data_dir=tmp_path, log=lambda m: None), "toy", "a", "toy", folds=2,
                                  overrides=["train.epochs=2"], constraints_dir=TOY / "constraints")
    assert [s["label"] for s in rep["summary"]] == ["MAE, test split", "Size of the submitted file"]
    assert all(len(r["checks"]) == 2 for r in rep["rows"])
    assert [r["passed"] for r in rep["rows"]] == [all(c["result"] == "PASS" for c in r["checks"]) for r in rep["rows"]]
    head = next(line for line in rep["markdown"].splitlines() if line.lstrip("| ").startswith("Fold"))
    assert "Latency" not in head


def test_the_missed_items_title_gives_the_misses_per_seed_set():
    rows = [{"fold": 0, "seed_set": 0, "seed": 1, "checks": [], "passed": True, "data_note": "",
             "misses": {"a/1": "a → b", "a/2": "a → c"}},
            {"fold": 0, "seed_set": 1, "seed": 3, "checks": [], "passed": True, "data_note": "",
             "misses": {"a/1": "a → b"}}]
    rep = {"suite": "toy", "version": "a", "task": "toy", "folds": 2, "seeds": 2, "recipe_path": "r.toml",
           "overrides": [], "recipe_summary": "dense", "rows": rows, "summary": [], "commit": "c0ffee", "host_line": "host"}
    md = crossval.markdown(rep)
    assert "## Held-out items missed (2 items; 3 misses over 2 seed sets, 1.5 per set)" in md
    assert "2/2" in next(line for line in md.splitlines() if "`a/1`" in line)  # missed by both seed sets
