"""An ensemble in one file: the deployed output is the mean of independently trained members' probabilities."""
import numpy as np
import pytest

from harness.core.errors import HarnessError
from harness.toolkit import convert, ensemble
from harness.toolkit.measure.interpreter import Runner
from harness.toolkit.tfsetup import keras, quiet_stderr, seed_everything


def _member(seed):
    seed_everything(seed)
    k = keras()
    return k.Sequential([k.layers.Input((6, 4, 1)), k.layers.Flatten(), k.layers.Dense(3), k.layers.Softmax()])


def test_the_converted_file_outputs_the_mean_of_its_members():
    a, b = _member(1), _member(2)
    x = np.random.default_rng(0).normal(size=(16, 6, 4, 1)).astype(np.float32)
    want = (a.predict(x, verbose=0) + b.predict(x, verbose=0)) / 2
    assert np.abs(a.predict(x, verbose=0) - b.predict(x, verbose=0)).max() > 0.01  # distinct members
    with quiet_stderr():
        got = Runner(convert.to_tflite(ensemble.average([a, b], name="pair"), "none")).predict(x)
    np.testing.assert_allclose(got, want, atol=1e-5)
    np.testing.assert_allclose(got.sum(axis=1), 1.0, atol=1e-5)


def test_one_member_is_the_model_itself():
    m = _member(3)
    assert ensemble.average([m], name="one") is m


def test_member_seeds_start_at_the_recipe_seed_and_avoid_the_seeds_axis():
    seeds = ensemble.member_seeds(1, 3)
    assert seeds[0] == 1 and len(set(seeds)) == 3
    # --seeds N builds seeds 1..N: no other member may fall on them for any sensible N
    assert not set(seeds[1:]) & set(range(1, 1 + ensemble.MEMBER_SEED_STRIDE))


def test_a_task_that_does_not_build_ensembles_refuses_more_than_one_member():
    from harness.core import recipes
    from harness.core.paths import ROOT
    from harness.core.task import get

    with pytest.raises(HarnessError, match="ensemble.members.*'forecast' does not build ensembles"):
        recipes.load(ROOT / "tasks/forecast/recipes/ml4iot-2022-a.toml", get("forecast"), ["ensemble.members=2"])
    assert recipes.load(ROOT / "tasks/forecast/recipes/ml4iot-2022-a.toml", get("forecast"))["ensemble"]["members"] == 1


@pytest.mark.parametrize("value, message", [("0", "ensemble.members"), ("9", "ensemble.members"), ("1.5", "ensemble.members")])
def test_bad_member_counts_are_refused_naming_the_key(value, message):
    from harness.core import recipes
    from harness.core.paths import ROOT
    from harness.core.task import get

    with pytest.raises(HarnessError, match=message):
        recipes.load(ROOT / "tasks/kws/recipes/ml4iot-2025-a.toml", get("kws"), [f"ensemble.members={value}"])


def test_train_seeds_each_member_and_sums_what_the_file_holds():
    """ensemble.train with a stand-in trainer (no training): member j trains from its own seed, in a session seeded
    with it; the file's build info sums params and train time and keeps per-member details per member."""
    calls = []

    def train_one(member_recipe, label):
        calls.append((member_recipe["seed"], label, float(np.random.random())))
        return _member(0), {"params": 10, "train_seconds": 1.25, "selected_epoch": 3 + len(calls), "loss": "x"}

    recipe = {"seed": 7, "ensemble": {"members": 3}, "model": {"name": "m"}}
    seed_everything(7)  # what the build does before training member 0
    _, info = ensemble.train(recipe, train_one, name="trio")

    def draw(seed):
        seed_everything(seed)
        return float(np.random.random())

    assert [c[0] for c in calls] == [7, 1007, 2007]
    assert [c[1] for c in calls] == [" (ensemble member 1, seed 7)", " (ensemble member 2, seed 1007)",
                                     " (ensemble member 3, seed 2007)"]
    assert [c[2] for c in calls] == [draw(7), draw(1007), draw(2007)]  # each member's session seeded with its seed
    assert info["params"] == 30 and info["train_seconds"] == 3.75 and info["loss"] == "x"
    assert "selected_epoch" not in info and "seed" not in info
    assert [(m["seed"], m["selected_epoch"]) for m in info["members"]] == [(7, 4), (1007, 5), (2007, 6)]


def test_train_with_one_member_is_the_plain_build():
    seen = []

    def train_one(member_recipe, label):
        seen.append((member_recipe, label))
        return "model", {"params": 10, "train_seconds": 1.0, "selected_epoch": 2}

    recipe = {"seed": 7, "ensemble": {"members": 1}}
    model, info = ensemble.train(recipe, train_one, name="one")
    assert model == "model" and seen == [(recipe, "")]  # no member label in the log for a plain build
    assert info == {"params": 10, "train_seconds": 1.0, "selected_epoch": 2, "seed": 7}


def test_the_file_s_build_info_is_member_one_s_and_what_differs_is_kept_per_member():
    seen = []

    def train_one(member_recipe, label):
        seen.append(member_recipe["seed"])
        j = len(seen)
        return _member(member_recipe["seed"]), {"params": 10 * j, "train_seconds": 1.5, "selected_epoch": j,
                                                "features": f"of member {j}"}

    model, info = ensemble.train({"seed": 1, "ensemble": {"members": 3}}, train_one, name="trio")
    assert seen == ensemble.member_seeds(1, 3)
    assert info["features"] == "of member 1"  # members share these keys; the file's are the plain recipe's
    assert info["params"] == 60 and info["train_seconds"] == 4.5
    assert "selected_epoch" not in info and "seed" not in info
    assert [m["selected_epoch"] for m in info["members"]] == [1, 2, 3]
    assert [m["seed"] for m in info["members"]] == seen
    _, single = ensemble.train({"seed": 1, "ensemble": {"members": 1}}, train_one, name="one")
    assert single["selected_epoch"] == 4 and "members" not in single
