"""Speed perturbation and the per-batch augmentation of the training features."""
import numpy as np
import pytest

from harness.core import recipes
from harness.core.errors import HarnessError
from harness.core.task import get
from harness.toolkit import datasets
from tasks.kws import features as F
from tasks.kws.augment import augment_fn, change_speed

NO_MASKS = {"speeds": [0.9, 1.1], "time_shift_frames": 0, "time_masks": 0, "time_mask_frames": 0, "freq_masks": 0,
            "freq_mask_bins": 0}


def _peak_hz(clip, rate=16000):
    spectrum = np.abs(np.fft.rfft(clip.astype(np.float64)))
    return np.fft.rfftfreq(len(clip), 1 / rate)[spectrum.argmax()]


@pytest.mark.parametrize("speed", [0.9, 1.1, 1.25])
def test_change_speed_moves_pitch_with_tempo_and_keeps_the_length(speed):
    t = np.arange(16000) / 16000
    tone = (8000 * np.sin(2 * np.pi * 1000 * t)).astype(np.int16)
    out = change_speed(tone, speed)
    assert out.shape == tone.shape and out.dtype == np.int16
    assert abs(_peak_hz(out) - 1000 * speed) <= 2  # 1 Hz bins
    burst = np.zeros(16000, np.int16)
    burst[7000:9000] = tone[:2000]  # a word in the middle of the clip stays centred
    loud = np.flatnonzero(np.abs(change_speed(burst, speed)) > 1000)
    assert abs((loud[0] + loud[-1]) / 2 - 8000) < 50
    assert abs((loud[-1] - loud[0]) - 2000 / speed) < 50


def test_each_batch_row_is_the_original_clip_or_one_of_its_copies():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 5, 3, 1)).astype(np.float32)
    copies = [x + 100, x + 200]  # row i of a copy is clip i at another speed
    apply = augment_fn(NO_MASKS, copies)
    seen = set()
    for _ in range(20):
        idx = rng.permutation(40)[:8]
        out, y = apply(x[idx], np.arange(8), rng, idx)
        assert y.tolist() == list(range(8))
        for row, i in zip(out, idx):
            version = [v for v, src in enumerate([x, *copies]) if np.array_equal(row, src[i])]
            assert len(version) == 1
            seen.add(version[0])
    assert seen == {0, 1, 2}
    # seeded: the same rng state draws the same batch
    a, _ = augment_fn(NO_MASKS, copies)(x[:8], np.arange(8), np.random.default_rng(5), np.arange(8))
    b, _ = augment_fn(NO_MASKS, copies)(x[:8], np.arange(8), np.random.default_rng(5), np.arange(8))
    assert np.array_equal(a, b)


def test_no_augmentation_at_all_is_none():
    assert augment_fn({**NO_MASKS, "speeds": []}, []) is None


@pytest.mark.parametrize("value,message", [("[1.0]", "other than 1"), ("[0.3]", r"\[0.5, 2.0\]"),
                                           ("[0.9, 0.9]", "repeats"), ('["fast"]', "fast")])
def test_bad_speeds_are_refused_naming_the_key(value, message):
    task = get("kws")
    with pytest.raises(HarnessError, match=f"augment.speeds.*{message}"):
        recipes.load(task.recipes_dir / "ml4iot-2025-a.toml", task, [f"augment.speeds={value}"])


def test_speeds_with_the_in_graph_front_end_are_refused():
    task = get("kws")
    with pytest.raises(HarnessError, match="augment.speeds.*in-graph"):
        recipes.load(task.recipes_dir / "variants" / "ml4iot-2022-c-in-graph.toml", task, ["augment.speeds=[0.9]"])


def test_a_speed_copy_is_its_own_cache_entry_and_the_original_keeps_its_key(shared_data, tmp_path, monkeypatch):
    from tasks.kws.data import find_corpus

    monkeypatch.setenv(datasets.CACHE_DIR_ENV, str(tmp_path))
    corpus = find_corpus(shared_data)
    items = corpus.items(["go"])[:2]
    args = F.PreprocessingArgs()
    plain, _ = F.cached_features(corpus, items, ["go"], args, "train")
    fast, _ = F.cached_features(corpus, items, ["go"], args, "train", speed=1.1)
    direct = F.NumpyFeatures(args).batch(np.stack([change_speed(corpus.read(*i), 1.1) for i in items]))
    assert np.array_equal(fast, direct) and not np.array_equal(fast, plain)
    names = sorted(p.name for p in (tmp_path / "kws_features").glob("*.npz"))
    assert len(names) == 2 and names[1].startswith("train-speed1.1-")
    key = F.features_cache_key(args, corpus.fingerprint(items), items, ["go"])
    assert names[0] == f"train-{key}.npz"  # the clips as recorded: same key as before speeds existed


def test_a_recipe_with_speeds_trains_on_the_copies_of_its_own_training_clips(tiny_data, monkeypatch):
    from harness.core import constraints
    from harness.core.paths import ROOT
    from harness.core.task import Context
    from harness.pipeline import run
    from tasks.kws import task as kws_task
    from tests.kws.conftest import OVERRIDES

    seen = {}

    def spy(cfg, copies=None):
        seen["speeds"], seen["copies"] = cfg["speeds"], copies
        return augment_fn(cfg, copies)

    monkeypatch.setattr(kws_task, "augment_fn", spy)
    monkeypatch.setenv(datasets.CACHE_DIR_ENV, str(tiny_data / "speed-cache"))
    cons = constraints.load_file(tiny_data / "constraints" / "tiny" / "version-a.toml")
    ctx = Context(data_dir=tiny_data / "data", log=lambda m: None)
    out = run.run_task(ctx, cons, "kws", recipe_path=ROOT / "tests/kws/pair_recipe.toml",
                       overrides=OVERRIDES + ["augment.speeds=[0.9, 1.1]"],
                       artifact_dir=tiny_data / "speed-run", use_cache=False)
    assert out.report["checks"] and seen["speeds"] == [0.9, 1.1] and len(seen["copies"]) == 2
    plain = sorted((tiny_data / "speed-cache" / "kws_features").glob("train-*.npz"))
    assert [p.name.split("-")[1] for p in plain if "speed" in p.name] == ["speed0.9", "speed1.1"]
    for copy in seen["copies"]:
        assert copy.shape == (40, 61, 10, 1)  # 20 go + 20 stop training clips, the recipe's 61 x 10 features


OFF = {**NO_MASKS, "speeds": []}


def _shifted(row, s):
    """The row rolled by s frames, the frames rolled in set to the quietest value of the frames kept."""
    out = np.roll(row, s, axis=0)
    if s > 0:
        out[:s] = out[s:].min()
    elif s < 0:
        out[s:] = out[:s].min()
    return out


def test_time_shift_is_at_most_the_asked_frames_either_way_and_fills_with_the_quietest_value():
    rng = np.random.default_rng(0)
    x = (rng.normal(size=(300, 12, 4, 1)) + 5).astype(np.float32)
    apply = augment_fn({**OFF, "time_shift_frames": 2})
    out, _ = apply(x, np.arange(300), np.random.default_rng(1), np.arange(300))
    shifts = []
    for row, src in zip(out, x):
        found = [s for s in range(-4, 5) if np.array_equal(row, _shifted(src, s))]
        assert len(found) == 1
        shifts.append(found[0])
    assert set(shifts) == {-2, -1, 0, 1, 2}
    again, _ = apply(x, np.arange(300), np.random.default_rng(1), np.arange(300))
    assert np.array_equal(out, again)  # seeded


@pytest.mark.parametrize("axis, cfg, limit", [(1, {"time_masks": 1, "time_mask_frames": 3}, 3),
                                              (2, {"freq_masks": 1, "freq_mask_bins": 2}, 2)])
def test_a_mask_is_one_zeroed_band_at_most_as_wide_as_asked(axis, cfg, limit):
    x = np.ones((400, 20, 10, 1), np.float32)
    apply = augment_fn({**OFF, **cfg})
    out, _ = apply(x, np.arange(400), np.random.default_rng(2), np.arange(400))
    assert set(np.unique(out)) <= {0.0, 1.0}
    other = 2 if axis == 1 else 1
    zero = (out[..., 0] == 0).all(axis=other)  # [rows, frames or bins] wholly zeroed
    assert np.array_equal(zero, (out[..., 0] == 0).any(axis=other))  # a mask spans the whole other axis
    widths = zero.sum(axis=1)
    assert widths.max() == limit and widths.min() == 0
    for z in zero:
        idx = np.flatnonzero(z)
        assert len(idx) == 0 or idx[-1] - idx[0] + 1 == len(idx)  # one contiguous band
    again, _ = apply(x, np.arange(400), np.random.default_rng(2), np.arange(400))
    assert np.array_equal(out, again)
