"""The in-graph export end to end: a recipe with [export] front_end = "in-graph" trains on the front end's own
features, ships one file that takes raw audio, and is measured, timed, sized and checked like any other."""
import json

import numpy as np
import pytest

from harness.core import constraints
from harness.core.errors import HarnessError
from harness.core.paths import ROOT
from harness.core.task import Context
from harness.pipeline import check_file, run
from harness.toolkit import package
from harness.toolkit.measure.interpreter import Runner
from tasks.kws import frontend
from tests.kws.conftest import OVERRIDES

RAW = OVERRIDES + ["features.sampling_rate=16000", "features.frame_length_in_s=0.04", "features.frame_step_in_s=0.02",
                   "features.num_mel_bins=20", 'export.front_end="in-graph"']


class _Out:
    def __init__(self, report):
        self.report = report


@pytest.fixture(scope="module")
def raw_run(tiny_data):
    """One version run (report, artifact, sidecar) of the tiny suite with the in-graph export."""
    out_dir = tiny_data / "results-raw"
    ctx = Context(data_dir=tiny_data / "data", log=lambda m: None)
    rep = run.run_version(ctx, "tiny", "a", recipe_paths={"kws": ROOT / "tests/kws/pair_recipe.toml"},
                          overrides=RAW, out_dir=out_dir, use_cache=False, constraints_dir=tiny_data / "constraints")
    return _Out(rep["tasks"][0]), out_dir / "tiny" / "version-a" / "kws"


def test_the_file_takes_raw_audio_and_carries_only_builtin_and_front_end_ops(raw_run):
    out, folder = raw_run
    tflite = package.unpack((folder / "model.tflite.zip").read_bytes(), "zip")
    r = Runner(tflite)
    assert r.input_shape == (16000, 1) and r.output_shape == (1, 2)
    ops = frontend.op_codes(tflite)
    assert "CUSTOM:AudioSpectrogram" in ops and "CUSTOM:Mfcc" in ops and "CONV_2D" in ops
    assert not [op for op in ops if op.startswith("CUSTOM:") and op not in frontend.FRONT_END_OPS]  # no Flex ops
    rep = out.report
    rows = dict(rep["rows"])
    assert "inside the file" in rows["Front end"] and "Sizes of the same model without its front end" in rows
    sizes = rep["build"]["sizes_without_front_end"]
    assert sizes["zip"] < rep["metrics"]["size_bytes"]  # the front end costs bytes, and they are counted here
    lat = rep["details"]["latency"]
    assert lat["n"] > 0 and lat["metric_ms"] > 0 and lat["eager_tf_signal_total_median_ms"] is None
    side = json.loads((folder / "sidecar.json").read_text())
    assert side["input"]["shape"] == [16000, 1] and "raw audio" in side["input"]["kind"]


def test_the_file_predicts_what_its_training_features_predict(raw_run, tiny_data):
    """Training features (the front end's TF ops) through the feature model = the raw file on the audio, per clip."""
    out, folder = raw_run
    tflite = package.unpack((folder / "model.tflite.zip").read_bytes(), "zip")
    ctx = Context(data_dir=tiny_data / "data", log=lambda m: None, options={"sidecar": str(folder / "sidecar.json")})
    rep = check_file.check_file(ctx, folder / "model.tflite.zip", "tiny", "a", constraints_dir=tiny_data / "constraints")
    assert rep["details"]["predictions"] == out.report["details"]["predictions"]
    assert rep["checks"][0]["measured"] == out.report["checks"][0]["measured"]
    assert np.isfinite(Runner(tflite)(np.zeros((16000, 1), np.float32))).all()


def test_the_size_limit_counts_the_front_end_unless_the_edition_says_not(raw_run, tiny_data, tmp_path):
    out, _ = raw_run
    text = (tiny_data / "constraints" / "tiny" / "version-a.toml").read_text().replace(
        'size_formats = ["tflite", "zip"]', 'size_formats = ["tflite", "zip"]\nfront_end_in_size = false')
    path = tmp_path / "tiny" / "version-a.toml"
    path.parent.mkdir()
    path.write_text(text)
    cons = constraints.load_file(path)
    ctx = Context(data_dir=tiny_data / "data", log=lambda m: None)
    again = run.run_task(ctx, cons, "kws", recipe_path=ROOT / "tests/kws/pair_recipe.toml", overrides=RAW)
    sizes = again.report["build"]["sizes_without_front_end"]
    assert again.report["metrics"]["size_bytes"] == sizes["zip"] < again.report["artifact"]["bytes"]
    assert "the size limit counts these" in dict(again.report["rows"])["Sizes of the same model without its front end"]


def test_in_graph_export_rejects_what_it_cannot_do():
    from harness.core import recipes
    from harness.core.task import get

    task = get("kws")
    base = ROOT / "tests/kws/pair_recipe.toml"
    with pytest.raises(HarnessError, match="sampling_rate must be 16000"):
        recipes.load(base, task, overrides=['export.front_end="in-graph"'])  # the recipe is at 8 kHz
    with pytest.raises(HarnessError, match="quantize.mode"):
        recipes.load(base, task, overrides=['export.front_end="in-graph"', "features.sampling_rate=16000",
                                            "features.frame_length_in_s=0.04", "features.frame_step_in_s=0.02",
                                            'quantize.mode="float16"'])


def test_the_device_bundle_feeds_raw_audio_to_a_raw_audio_file(raw_run, tiny_data, tmp_path):
    from harness.pipeline import device
    from tests.kws.test_device_bundle import _run_isolated

    _, folder = raw_run
    out_dir = folder.parents[2]
    bundle, _ = device.bundle(out_dir, "tiny", "a", constraints_dir=tiny_data / "constraints")
    res = _run_isolated(bundle / "measure_on_device.py", ["--clips", str(tiny_data / "data" / "mini_speech_commands"),
                                                          "--device", "raw"], tmp_path)
    assert res.returncode == 0, res.stderr[-2000:]
    measured = json.loads((bundle / "device-latency-raw.json").read_text())
    assert measured["latency"]["metric_ms"] > 0 and measured["accuracy"]["clips"] > 0
