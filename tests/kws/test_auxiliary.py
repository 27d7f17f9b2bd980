"""Auxiliary keywords: extra training classes that the shipped file does not output."""
import numpy as np
import pytest

from harness.core import recipes
from harness.core.errors import HarnessError
from harness.core.task import get
from harness.toolkit import datasets, package
from tasks.kws import auxiliary, models
from tasks.kws import splits as sp

SPEC = {"name": "ds_cnn_s", "width": 0.25, "blocks": 1}
SHAPE = (49, 10, 1)


def test_the_shipped_head_is_the_trained_heads_first_rows():
    from harness.toolkit.tfsetup import seed_everything

    seed_everything(3)
    big = models.build(SPEC, SHAPE, 5)
    rng = np.random.default_rng(0)
    # positive draws: batch-norm variances must be (a negative one gives NaN, which assert_allclose calls equal)
    big.set_weights([rng.uniform(0.1, 1.0, size=w.shape).astype(np.float32) for w in big.get_weights()])
    small = auxiliary.keep_outputs(big, models.build(SPEC, SHAPE, 2))
    x = rng.normal(size=(4, *SHAPE)).astype(np.float32)
    big_logits, small_logits = big(x, training=False).numpy(), small(x, training=False).numpy()
    assert small_logits.shape == (4, 2) and np.isfinite(big_logits).all()
    np.testing.assert_allclose(small_logits, big_logits[:, :2], rtol=1e-5, atol=1e-5)
    assert not np.allclose(small_logits, big_logits[:, -2:], atol=1e-3)


def test_another_architecture_is_refused_not_half_copied():
    big = models.build(SPEC, SHAPE, 5)
    with pytest.raises(HarnessError, match="auxiliary head: layer"):
        auxiliary.keep_outputs(big, models.build({**SPEC, "width": 0.5}, SHAPE, 2))


def test_the_clips_are_the_other_keywords_training_clips(tiny_data):
    from tasks.kws.data import find_corpus

    corpus = find_corpus(tiny_data / "data")
    full, _ = sp.version_splits(corpus, tiny_data / "data", "course-pair", ["yes"])
    clips = auxiliary.items(corpus, tiny_data / "data", "course-pair", ["go", "stop"], ["yes"])
    assert clips == list(full["train"]) and {label for label, _ in clips} == {"yes"} and len(clips) == 20


def test_a_fold_keeps_no_clip_of_a_held_out_or_validation_speaker(tiny_data):
    from tasks.kws.data import find_corpus

    corpus = find_corpus(tiny_data / "data")
    pair, source = sp.version_splits(corpus, tiny_data / "data", "course-pair", ["go", "stop"])
    full, _ = sp.version_splits(corpus, tiny_data / "data", "course-pair", ["yes"])
    pool = list(full["train"]) + list(full["val"])
    checked = 0
    for fold in range(3):
        folds, _ = sp.fold_splits(pair, source, fold, 3)
        held_out = {sp.speaker(i) for i in folds["held-out"]}
        unseen = held_out | {sp.speaker(i) for i in folds["val"]}
        clips = auxiliary.items(corpus, tiny_data / "data", "course-pair", ["go", "stop"], ["yes"], fold_splits=folds)
        assert not {sp.speaker(i) for i in clips} & unseen
        assert clips == [i for i in pool if sp.speaker(i) not in unseen]
        checked += sum(sp.speaker(i) in held_out for i in pool)
    assert checked > 0  # some fold really held out a speaker who also said "yes"


@pytest.mark.parametrize("labels,message", [('["cat"]', "'cat' not a keyword"), ('["go"]', "'go' already one of")])
def test_a_label_that_is_no_other_keyword_is_refused_naming_the_key(tiny_data, labels, message):
    from tasks.kws.data import find_corpus

    corpus = find_corpus(tiny_data / "data")
    with pytest.raises(HarnessError, match=f"auxiliary.labels.*{message}"):
        auxiliary.items(corpus, tiny_data / "data", "course-pair", ["go", "stop"], eval(labels))


@pytest.mark.parametrize("sets,message", [(['auxiliary.labels=["yes", "yes"]'], "repeat"),
                                          (['auxiliary.labels=["yes"]', "augment.speeds=[0.9]"], "augment.speeds"),
                                          (['auxiliary.labels=["yes"]', "quantize.qat_epochs=1"], "qat_epochs")])
def test_bad_or_clashing_recipes_are_refused_before_training(sets, message):
    task = get("kws")
    with pytest.raises(HarnessError, match=f"auxiliary.labels.*{message}"):
        recipes.load(task.recipes_dir / "ml4iot-2025-a.toml", task, sets)


def test_with_the_in_graph_front_end_it_is_refused():
    task = get("kws")
    with pytest.raises(HarnessError, match="auxiliary.labels.*in-graph"):
        recipes.load(task.recipes_dir / "variants" / "ml4iot-2022-c-in-graph.toml", task, ['auxiliary.labels=["yes"]'])


def test_a_run_trains_on_the_extra_clips_and_ships_the_versions_outputs_only(tiny_data, monkeypatch):
    from harness.core import constraints
    from harness.core.paths import ROOT
    from harness.core.task import Context
    from harness.pipeline import run
    from harness.toolkit.measure.interpreter import Runner
    from tests.kws.conftest import OVERRIDES

    monkeypatch.setenv(datasets.CACHE_DIR_ENV, str(tiny_data / "aux-cache"))
    lines = []
    cons = constraints.load_file(tiny_data / "constraints" / "tiny" / "version-a.toml")
    ctx = Context(data_dir=tiny_data / "data", log=lines.append)
    folder = tiny_data / "aux-run"
    out = run.run_task(ctx, cons, "kws", recipe_path=ROOT / "tests/kws/pair_recipe.toml",
                       overrides=OVERRIDES + ['auxiliary.labels=["yes"]'], artifact_dir=folder, use_cache=False)
    assert out.report["checks"]
    assert any("60 training clips" in line for line in lines)  # 20 go + 20 stop + 20 yes
    assert any("auxiliary keywords yes: 20 more training clips" in line for line in lines)
    runner = Runner(package.unpack((folder / "model.tflite.zip").read_bytes(), "zip"))
    assert runner.predict(np.zeros((1, 61, 10, 1), np.float32)).shape == (1, 2)
    assert out.report["details"]["labels"] == ["go", "stop"]
    assert dict(out.report["rows"])["Auxiliary keywords (training only)"].startswith("yes: their training clips")


def test_the_extra_clips_are_labelled_after_the_versions_labels(tiny_data):
    from harness.core import constraints
    from harness.core.paths import ROOT
    from harness.core.task import Context
    from tasks.kws import features as feat

    task = get("kws")
    cons = constraints.load_file(tiny_data / "constraints" / "tiny" / "version-a.toml")
    section = cons.task("kws")
    rec = recipes.load(ROOT / "tests/kws/pair_recipe.toml", task, ['auxiliary.labels=["yes"]'])
    ctx = Context(data_dir=tiny_data / "data", log=lambda m: None)
    shape = feat.PreprocessingArgs.from_dict(rec["features"]).feature_shape
    x_tr = np.full((3, *shape, 1), 7.0, np.float32)
    y_tr = np.array([0, 1, 0], np.int32)
    x, y = auxiliary.with_clips(task, ctx, section, rec, x_tr, y_tr)
    assert section["labels"] == ["go", "stop"]
    assert len(x) == len(y) == 3 + 20
    np.testing.assert_array_equal(y[:3], y_tr)
    assert (y[3:] == 2).all()  # "yes" is a third class, never one of the version's outputs
    assert (x[:3] == 7.0).all() and not (x[3:] == 7.0).all()
