"""A tiny real keyword-spotting run: two keywords, a few real clips, one epoch -> a real .tflite and a table."""
import io
import json
import re
import zipfile

import numpy as np
import pytest
import soundfile as sf

from harness.core import constraints
from harness.core.errors import HarnessError
from harness.core.paths import ROOT
from harness.core.task import Context
from harness.pipeline import run
from tasks.kws import features as feat
from tests.kws.conftest import OVERRIDES

def test_tiny_run_produces_a_real_artifact_and_table(tiny_run):
    out, folder = tiny_run
    rep = out.report
    blob = (folder / "model.tflite.zip").read_bytes()
    assert rep["metrics"]["size_bytes"] == len(blob)
    assert rep["details"]["clips"] == 12 and 0 <= rep["metrics"]["accuracy_pct"] <= 100
    acc = next(c for c in rep["checks"] if c["metric"] == "accuracy_pct")
    lo, hi = acc["interval"]
    assert lo <= rep["metrics"]["accuracy_pct"] <= hi and acc["interval_method"].startswith("Wilson")
    # the grader's path (course tf.signal features) scores the same file close to ours
    assert abs(rep["details"]["course_pipeline"]["correct"] - rep["details"]["correct"]) <= 1
    lat = rep["details"]["latency"]
    assert lat["n"] == 12 and lat["metric_ms"] == lat["total_ms"] > lat["model_ms"] > 0
    side = json.loads((folder / "sidecar.json").read_text())
    assert side["LABELS"] == ["go", "stop"] and side["PREPROCESSING_ARGS"]["num_coefficients"] == 10
    args = feat.PreprocessingArgs.from_dict(side["PREPROCESSING_ARGS"])
    assert side["input"]["shape"] == [1, *args.feature_shape, 1]
    assert [c["label"].split(",")[0] for c in rep["checks"]] == ["Accuracy", "Size of the submitted file", "Latency (course protocol"]
    assert rep["baselines"][0]["name"].startswith("Majority class")


def test_resampled_features_score_the_course_path_too(tiny_data, tmp_path):
    """At 8 kHz the grader's path resamples with scipy before tf.signal; both paths must agree."""
    cons = constraints.load_file(tiny_data / "constraints" / "tiny" / "version-a.toml")
    ctx = Context(data_dir=tiny_data / "data", log=lambda m: None)
    out = run.run_task(ctx, cons, "kws", recipe_path=ROOT / "tests/kws/pair_recipe.toml",
                       overrides=OVERRIDES + ["features.sampling_rate=8000", "features.num_mel_bins=16"], use_cache=False)
    d = out.report["details"]
    assert d["preprocessing_args"]["sampling_rate"] == 8000
    assert abs(d["course_pipeline"]["correct"] - d["correct"]) <= 1


def test_third_party_check_with_plain_numpy_and_litert(tiny_run, tiny_data):
    """What a grader can do with only the artifact + sidecar: the course's tf.signal features, LiteRT, argmax.
    Its per-clip predictions must match the harness's (at most one clip apart, the documented feature tolerance)."""
    import io
    import zipfile

    from ai_edge_litert.interpreter import Interpreter

    out, folder = tiny_run
    side = json.loads((folder / "sidecar.json").read_text())
    with zipfile.ZipFile(io.BytesIO((folder / "model.tflite.zip").read_bytes())) as zf:
        model = zf.read(zf.namelist()[0])
    it = Interpreter(model_content=model, num_threads=1)
    it.allocate_tensors()
    args = feat.PreprocessingArgs.from_dict(side["PREPROCESSING_ARGS"])
    lines = (tiny_data / "data" / "ml4iot_kws_splits" / "kws_test_split.txt").read_text().split()
    ours = []
    for line in lines:
        label = line.split("/")[-2]
        if label not in side["LABELS"]:
            continue
        x, _ = sf.read(tiny_data / line, dtype="int16")
        audio = np.zeros(16000, np.float32)
        audio[: len(x)] = x / 32768.0
        f = feat.tf_reference_features(audio, args)[None, :, :, None].astype(np.float32)
        it.set_tensor(it.get_input_details()[0]["index"], f)
        it.invoke()
        probs = it.get_tensor(it.get_output_details()[0]["index"])[0]
        assert probs.shape == (2,) and abs(float(probs.sum()) - 1) < 1e-3
        ours.append(int(probs.argmax()))
    theirs = out.report["details"]["predictions"]
    assert len(ours) == len(theirs) == 12
    assert sum(a != b for a, b in zip(ours, theirs)) <= 1


def test_training_and_deployed_features_agree(tiny_data):
    """Cached training features (batched path) equal the deployed per-clip path on the same clips."""
    from tasks.kws import data as msc

    corpus = msc.find_corpus(tiny_data / "data", allow_download=False)
    items = corpus.items(["go"])[:5]
    for spec in ({}, {"sampling_rate": 8000, "num_mel_bins": 16}, {"num_coefficients": 0}):
        args = feat.PreprocessingArgs.from_dict({**feat.PreprocessingArgs().to_dict(), **spec})
        X, _ = feat.cached_features(corpus, items, ["go"], args, "t")
        ex = feat.NumpyFeatures(args)
        for i, (label, stem) in enumerate(items):
            np.testing.assert_allclose(ex.from_int16(corpus.read(label, stem)), X[i, ..., 0], atol=1e-4)


def test_recipe_with_bad_features_is_rejected():
    from harness.core import recipes
    from harness.core.task import get

    task = get("kws")
    path = task.recipes_dir / "ml4iot-2022-a.toml"
    with pytest.raises(HarnessError, match="upper_frequency"):
        recipes.load(path, task, ["features.upper_frequency=9000"])
    with pytest.raises(HarnessError, match="unknown key 'augment.mixup'"):
        recipes.load(path, task, ["augment.mixup=1"])
    with pytest.raises(HarnessError, match="known keyword-spotting models"):
        recipes.load(path, task, ["model.name=\"resnet50\""])


@pytest.mark.parametrize("name,params", [("cnn", {"width": 0.1}), ("ds_cnn", {"width": 0.1}), ("mlp", {"width": 0.1}),
                                         ("ds_cnn_s", {"width": 0.25, "residual": True}),
                                         ("ds_cnn_s", {"width": 0.25, "subtract_time_mean": True}),
                                         ("bc_resnet", {"width": 0.5})])
def test_keras_and_tflite_agree(name, params):
    from harness.toolkit.tfsetup import seed_everything
    from tasks.kws import models

    seed_everything(0)
    _assert_the_file_computes_the_model(models.build({"name": name, **params}, (49, 10, 1), 8))


def _assert_the_file_computes_the_model(m):
    from harness.toolkit import convert
    from harness.toolkit.measure.interpreter import Runner
    from harness.toolkit.tfsetup import keras

    x = np.random.default_rng(0).normal(size=(4, *m.input_shape[1:])).astype(np.float32)
    deployed = keras().Sequential([m, keras().layers.Softmax()])
    runner = Runner(convert.to_tflite(deployed, "none"))
    np.testing.assert_allclose(runner.predict(x), deployed.predict(x, verbose=0), atol=1e-5)


def test_bc_resnet_sub_bands_normalise_each_band_apart_and_survive_conversion():
    from harness.toolkit.tfsetup import seed_everything
    from tasks.kws import models

    seed_everything(0)
    m = models.build({"name": "bc_resnet", "width": 0.5, "sub_bands": 5}, (49, 40, 1), 8)
    ssn = m.get_layer("s0b0_freq_ssn")
    assert tuple(ssn.moving_mean.shape) == (1, 5, 1, 4)  # one statistic per (sub-band, channel): 5 bands of the 20 bins, 4 channels
    _assert_the_file_computes_the_model(m)
    with pytest.raises(HarnessError, match="sub_bands = 3 does not divide"):
        models.build({"name": "bc_resnet", "sub_bands": 3}, (49, 40, 1), 8)


def test_bc_resnet_follows_the_papers_layout():
    """Time path on the mean over frequency (broadcast back), dilations 1/2/4/8, an identity path in every block that
    keeps its channels, swish in the time path, a 32-channel head; four stages or a clear refusal."""
    from tasks.kws import models

    m = models.build({"name": "bc_resnet"}, (49, 40, 1), 8)
    for s, dilation in enumerate((1, 2, 4, 8)):
        assert m.get_layer(f"s{s}b0_time_dw").dilation_rate == (dilation, 1)
        assert m.get_layer(f"s{s}b1_time_pw").output.shape[2] == 1  # one frequency bin, added to every bin
        assert len(m.get_layer(f"s{s}b1_add").input) == 3  # input + frequency path + time path
        assert m.get_layer(f"s{s}b0_swish").get_config()["activation"] == "swish"
    assert m.get_layer("head_pw").filters == 32
    with pytest.raises(HarnessError, match="must each list 4 stages"):
        models.build({"name": "bc_resnet", "blocks": [2, 2, 4]}, (49, 40, 1), 8)


def test_the_classifier_averages_over_time_and_frequency_and_drops_out_in_training():
    from harness.toolkit.tfsetup import keras
    from tasks.kws import models

    m = models.build({"name": "ds_cnn", "width": 0.1, "dropout": 0.5}, (49, 10, 1), 8)
    assert isinstance(m.get_layer("gap"), keras().layers.GlobalAveragePooling2D)
    assert m.get_layer("drop").rate == 0.5


def test_subtract_time_mean_makes_the_file_blind_to_a_constant_offset_per_coefficient():
    from harness.toolkit import convert
    from harness.toolkit.measure.interpreter import Runner
    from harness.toolkit.tfsetup import keras, seed_everything
    from tasks.kws import models

    seed_everything(0)
    x = np.random.default_rng(0).normal(size=(4, 49, 10, 1)).astype(np.float32)
    offset = np.random.default_rng(1).normal(scale=3.0, size=(1, 1, 10, 1)).astype(np.float32)
    outputs = {}
    for on in (True, False):
        m = models.build({"name": "ds_cnn_s", "width": 0.25, "subtract_time_mean": on}, (49, 10, 1), 8)
        runner = Runner(convert.to_tflite(m, "none"))  # logits: an untrained model's softmax is nearly flat
        plain, shifted = runner.predict(x), runner.predict(x + offset)
        outputs[on] = np.abs(plain - shifted).max() / np.abs(plain).max()  # logits are tiny before training
    assert outputs[True] < 1e-3
    assert outputs[False] > 0.1  # the offset does reach a model without it


def test_check_reproduces_the_runs_figures_from_the_file_and_sidecar(tiny_run, tiny_data):
    from harness.pipeline import check_file

    out, folder = tiny_run
    ctx = Context(data_dir=tiny_data / "data", log=lambda m: None, options={"sidecar": str(folder / "sidecar.json")})
    rep = check_file.check_file(ctx, folder / "model.tflite.zip", "tiny", "a", constraints_dir=tiny_data / "constraints")
    assert rep["details"]["predictions"] == out.report["details"]["predictions"]
    assert [c["measured"] for c in rep["checks"][:2]] == [c["measured"] for c in out.report["checks"][:2]]
    assert rep["passed"] == out.report["passed"] and "sidecar" in " ".join(rep["assumptions"])
    assert "ai_edge_litert 2.3.0: yes" in dict(rep["rows"])["Runtimes that load and run the shipped file"]
    # the same figures from the course's command-line flags instead of the sidecar
    args = json.loads((folder / "sidecar.json").read_text())["PREPROCESSING_ARGS"]
    flags = (f"--rate {args['sampling_rate']} --length {round(args['frame_length_in_s'] * args['sampling_rate'])} "
             f"--stride {round(args['frame_step_in_s'] * args['sampling_rate'])} --bins {args['num_mel_bins']} "
             f"--lower-frequency {args['lower_frequency']} --upper-frequency {args['upper_frequency']} "
             f"--coeff {args['num_coefficients']} --mfcc")
    ctx = Context(data_dir=tiny_data / "data", log=lambda m: None, options={"kws_flags": flags})
    again = check_file.check_file(ctx, folder / "model.tflite.zip", "tiny", "a", constraints_dir=tiny_data / "constraints")
    assert again["details"]["predictions"] == rep["details"]["predictions"]


def test_check_needs_the_preprocessing_and_rejects_a_broken_file(tiny_run, tiny_data, tmp_path):
    from harness.pipeline import check_file

    _, folder = tiny_run
    ctx = Context(data_dir=tiny_data / "data", log=lambda m: None)
    with pytest.raises(HarnessError, match="needs its preprocessing"):
        check_file.check_file(ctx, folder / "model.tflite.zip", "tiny", "a", constraints_dir=tiny_data / "constraints")
    broken = tmp_path / "broken.tflite.zip"
    broken.write_bytes(b"PK\x03\x04 not really a zip")
    ctx = Context(data_dir=tiny_data / "data", log=lambda m: None, options={"sidecar": str(folder / "sidecar.json")})
    with pytest.raises(HarnessError, match="cannot unpack as zip"):
        check_file.check_file(ctx, broken, "tiny", "a", constraints_dir=tiny_data / "constraints")
    two = tmp_path / "two.tflite.zip"
    with zipfile.ZipFile(folder / "model.tflite.zip") as zf, zipfile.ZipFile(two, "w") as out:
        out.writestr("a.tflite", zf.read(zf.namelist()[0]))
        out.writestr("b.tflite", zf.read(zf.namelist()[0]))
    with pytest.raises(HarnessError, match=f"^{re.escape(str(two))}: the zip must hold exactly one model file, it holds 2"):
        check_file.check_file(ctx, two, "tiny", "a", constraints_dir=tiny_data / "constraints")
    for name, content, says in (("empty.tflite", b"", "the model file is empty \\(0 bytes\\)"),
                                ("garbage.tflite", b"TFL3" + bytes(200), "the model does not load")):
        (tmp_path / name).write_bytes(content)
        with pytest.raises(HarnessError, match=f"^{re.escape(str(tmp_path / name))}: {says}"):
            check_file.check_file(ctx, tmp_path / name, "tiny", "a", constraints_dir=tiny_data / "constraints")
    side = json.loads((folder / "sidecar.json").read_text())
    wrong = tmp_path / "wrong_labels.json"
    wrong.write_text(json.dumps({**side, "LABELS": ["go", "stop", "no"]}))
    ctx = Context(data_dir=tiny_data / "data", log=lambda m: None, options={"sidecar": str(wrong)})
    with pytest.raises(HarnessError, match=f"^{re.escape(str(wrong))}: labels .* are not the keywords"):
        check_file.check_file(ctx, folder / "model.tflite.zip", "tiny", "a", constraints_dir=tiny_data / "constraints")
    bad_args = tmp_path / "bad_args.json"
    bad_args.write_text(json.dumps({**side["PREPROCESSING_ARGS"], "sampling_rate": "fast"}))
    ctx = Context(data_dir=tiny_data / "data", log=lambda m: None, options={"preprocessing": str(bad_args)})
    with pytest.raises(HarnessError, match=f"^{re.escape(str(bad_args))}: preprocessing arguments"):
        check_file.check_file(ctx, folder / "model.tflite.zip", "tiny", "a", constraints_dir=tiny_data / "constraints")


def test_course_latency_flags_give_the_preprocessing_arguments():
    args = feat.PreprocessingArgs.from_dict(feat.args_from_course_flags("--rate 8000 --bins 16 --length 320 --stride 160 --mfcc"))
    assert args.sampling_rate == 8000 and args.frame_length == 320 and args.frame_step == 160
    assert args.num_mel_bins == 16 and args.num_coefficients == 10 and args.feature_shape == (49, 10)
    with pytest.raises(HarnessError, match="only the --mfcc path"):
        feat.args_from_course_flags("--rate 16000")
    with pytest.raises(HarnessError, match="unknown flag"):
        feat.args_from_course_flags("--mfcc --frobnicate 3")


def test_course_latency_flags_default_to_the_course_preprocessing():
    assert feat.args_from_course_flags("--mfcc") == feat.PreprocessingArgs().to_dict()
    args = feat.args_from_course_flags("--mfcc --lower-frequency 40 --upper-frequency 3000 --coeff 13")
    assert (args["lower_frequency"], args["upper_frequency"], args["num_coefficients"]) == (40.0, 3000.0, 13)


def test_check_takes_the_output_order_from_the_sidecar_and_the_preprocessing_from_the_course_flags(tmp_path):
    from harness.core.recipes import Recipe
    from harness.core.task import get

    task = get("kws")
    args = feat.PreprocessingArgs(sampling_rate=8000, num_mel_bins=16).to_dict()
    side = tmp_path / "sidecar.json"
    side.write_text(json.dumps({"PREPROCESSING_ARGS": args, "LABELS": ["stop", "go"]}))
    section = {"labels": ["go", "stop"]}

    def setup(**options):
        return task.setup_for_artifact(Context(data_dir=tmp_path, log=lambda m: None, options=options), section,
                                       Recipe(None, {}))

    sec, rec, notes = setup(sidecar=str(side))
    assert sec["labels"] == ["stop", "go"] and "output order from the sidecar's LABELS" in notes
    assert rec["features"] == args and "audio zero-padded to 1 s, then resampled" in notes
    sec, rec, notes = setup(sidecar=str(side), kws_flags="--rate 16000 --mfcc")  # the flags given too decide
    assert sec["labels"] == ["stop", "go"] and rec["features"] == feat.PreprocessingArgs().to_dict()
    assert any("kws_latency.py --rate 16000 --mfcc" in n for n in notes)
    said = [n for n in notes if n.startswith("preprocessing from")]  # one source named as used, the other as not
    assert len(said) == 1 and said[0].endswith(f"(not from the sidecar {side})")
    sec, _, notes = setup(kws_flags="--rate 8000 --bins 16 --mfcc")
    assert sec["labels"] == ["go", "stop"] and any("the edition's labels" in n for n in notes)


def test_resample_first_pads_each_resampled_clip_at_its_end(tmp_path, monkeypatch):
    from harness.core.task import get
    from tasks.kws import decode

    task = get("kws")
    clip = (np.sin(np.arange(8000) / 3) * 9000).astype(np.int16)  # half a second: padding matters
    buf = io.BytesIO()
    sf.write(buf, clip, 16000, format="WAV", subtype="PCM_16")

    class Clips:
        def raw(self, label, stem):
            return buf.getvalue()

        def clip_path(self, label, stem):
            return f"{label}/{stem}.wav"

    monkeypatch.setattr(task, "corpus", lambda ctx: Clips())
    monkeypatch.setattr(task, "splits", lambda ctx, section: ({"test": [("go", "a_nohash_0")]}, None))
    args = feat.PreprocessingArgs(sampling_rate=8000, num_mel_bins=16)
    out = task.resample_first_features(Context(data_dir=tmp_path, log=lambda m: None), {}, args, "test")
    low = feat.resample(clip.astype(np.float32) / np.float32(32768.0), 2)
    padded = np.zeros(8000, np.float32)
    padded[:len(low)] = low
    assert out.shape == (1, *args.feature_shape, 1) and len(low) == 4000
    np.testing.assert_array_equal(out[0, ..., 0], feat.NumpyFeatures(args).at_rate(padded))
    assert decode.decode_clip(buf.getvalue(), "x", pad=False).shape == (8000,)


def test_resample_order_is_an_explicit_check_option(tiny_run, tiny_data):
    """At 8 kHz, resampling each clip before zero-padding changes the features near the clip's end (the filter's
    tail sees the clip's end instead of zeros); `check` does either and says which in the table."""
    from harness.core.task import get
    from harness.pipeline import check_file

    out, folder = tiny_run
    base = {"sidecar": str(folder / "sidecar.json")}
    ctx = Context(data_dir=tiny_data / "data", log=lambda m: None, options={**base, "resample_order": "resample-first"})
    rep = check_file.check_file(ctx, folder / "model.tflite.zip", "tiny", "a", constraints_dir=tiny_data / "constraints")
    assert "audio resampled, then zero-padded to 1 s" in " ".join(rep["assumptions"])
    ours = out.report["details"]["predictions"]
    assert sum(a != b for a, b in zip(rep["details"]["predictions"], ours)) <= 2
    default = check_file.check_file(Context(data_dir=tiny_data / "data", log=lambda m: None, options=base),
                                    folder / "model.tflite.zip", "tiny", "a", constraints_dir=tiny_data / "constraints")
    assert "audio zero-padded to 1 s, then resampled" in " ".join(default["assumptions"])
    task = get("kws")
    cons = constraints.load_file(tiny_data / "constraints" / "tiny" / "version-a.toml")
    section = cons.task("kws")
    args = feat.PreprocessingArgs.from_dict(json.loads((folder / "sidecar.json").read_text())["PREPROCESSING_ARGS"])
    ctx = Context(data_dir=tiny_data / "data", log=lambda m: None)
    first = task.resample_first_features(ctx, section, args, "test")
    from harness.core.recipes import Recipe

    padded, _ = task.features(ctx, section, Recipe(None, {"features": args.to_dict()}), "test")
    assert first.shape == padded.shape and not np.array_equal(first, padded)
    assert np.median(np.abs(first - padded)) < 1e-3  # the same clip, differing only near its end


def test_an_ensemble_recipe_ships_every_member_in_one_file(tiny_run, tiny_data):
    """ensemble.members = 2: two members trained from their own seeds, both inside the measured file."""
    import io
    import zipfile

    from ai_edge_litert.interpreter import Interpreter

    single, folder = tiny_run
    cons = constraints.load_file(tiny_data / "constraints" / "tiny" / "version-a.toml")
    ctx = Context(data_dir=tiny_data / "data", log=lambda m: None)
    out = run.run_task(ctx, cons, "kws", recipe_path=ROOT / "tests/kws/pair_recipe.toml",
                       overrides=OVERRIDES + ["ensemble.members=2"], use_cache=False)
    build = out.report["build"]
    assert [m["seed"] for m in build["members"]] == [1, 1001]  # the recipe seed, then one stride on
    assert build["params"] == 2 * single.report["build"]["params"]
    assert "2 × ds_cnn_s" in out.report["recipe_summary"]

    def interpreter(blob):
        with zipfile.ZipFile(io.BytesIO(blob)) as zf:
            it = Interpreter(model_content=zf.read(zf.namelist()[0]), num_threads=1)
        it.allocate_tensors()
        return it

    def ops(blob):
        return [o["op_name"] for o in interpreter(blob)._get_ops_details()]  # noqa: SLF001

    single_ops = ops((folder / "model.tflite.zip").read_bytes())
    both_ops = ops(out.files["model.tflite.zip"])
    assert both_ops.count("FULLY_CONNECTED") == 2 * single_ops.count("FULLY_CONNECTED")
    assert both_ops.count("CONV_2D") == 2 * single_ops.count("CONV_2D")
    assert out.report["metrics"]["size_bytes"] == len(out.files["model.tflite.zip"])
    # the members are two models, not one model twice: their output layers' weights differ
    it = interpreter(out.files["model.tflite.zip"])
    dense = [it.get_tensor(int(o["inputs"][1])) for o in it._get_ops_details() if o["op_name"] == "FULLY_CONNECTED"]  # noqa: SLF001
    assert len(dense) == 2 and dense[0].shape == dense[1].shape and not np.array_equal(dense[0], dense[1])
    assert "selected_epoch" not in build and len({m["selected_epoch"] for m in build["members"]}) == 1


def test_the_report_names_every_test_clip_the_file_gets_wrong(tiny_run):
    out, folder = tiny_run
    rep = out.report
    d = rep["details"]
    assert len(rep["missed"]) == d["clips"] - d["correct"]
    for r in rep["missed"]:
        label, _ = r["item"].split("/")
        true, predicted = r["answers"][0].split(" → ")
        assert r["seeds"] == [1] and true == label and predicted != true and predicted in d["labels"]
    if rep["missed"]:
        titles = [t for t, _ in rep["sections"]]
        assert "Items the seeds get wrong (test split)" in titles
