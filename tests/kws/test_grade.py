"""`grade` over a folder of mixed keyword-spotting submissions: good files in three formats with three kinds of
args file, and broken ones (corrupt zip, wrong input shape, missing args, int8 I/O, not a model)."""
import io
import json
import shutil
import zipfile

import numpy as np
import pytest

from harness.core.task import Context
from harness.pipeline import grade
from harness.toolkit import package
from tasks.kws import features as feat


def _tiny_tflite(input_shape, int8: bool) -> bytes:
    from harness.toolkit.tfsetup import keras, tf

    k, t = keras(), tf()
    k.utils.set_random_seed(0)
    model = k.Sequential([k.Input(input_shape), k.layers.Flatten(), k.layers.Dense(2), k.layers.Softmax()])
    conv = t.lite.TFLiteConverter.from_keras_model(model)
    if int8:
        conv.optimizations = [t.lite.Optimize.DEFAULT]
        conv.representative_dataset = lambda: ([np.random.default_rng(i).normal(size=(1, *input_shape)).astype(np.float32)]
                                               for i in range(8))
        conv.inference_input_type = conv.inference_output_type = t.int8
    return conv.convert()


@pytest.fixture(scope="module")
def submissions(tiny_run, tmp_path_factory):
    _, folder = tiny_run
    root = tmp_path_factory.mktemp("subs")
    side = json.loads((folder / "sidecar.json").read_text())
    args = side["PREPROCESSING_ARGS"]
    shape = (*feat.PreprocessingArgs.from_dict(args).feature_shape, 1)
    with zipfile.ZipFile(io.BytesIO((folder / "model.tflite.zip").read_bytes())) as zf:
        tflite = zf.read(zf.namelist()[0])
    flags = (f"--rate {args['sampling_rate']} --length {round(args['frame_length_in_s'] * args['sampling_rate'])} "
             f"--stride {round(args['frame_step_in_s'] * args['sampling_rate'])} --bins {args['num_mel_bins']} "
             f"--lower-frequency {args['lower_frequency']} --upper-frequency {args['upper_frequency']} "
             f"--coeff {args['num_coefficients']} --mfcc")
    teams = {
        "Group1": {"Group1_kws_a.tflite.zip": package.pack(tflite, "zip"), "Group1_kws_a.json": json.dumps(side)},
        "Group2": {"Group2_kws_a.tflite": tflite, "args.json": json.dumps(args), "labels.txt": str(side["LABELS"])},
        "Group3": {"Group3_kws_a.tflite.zlib": package.pack(tflite, "zlib"), "kws_flags.txt": flags},
        "Group4": {"Group4_kws_a.tflite.zip": b"PK\x03\x04 truncated", "args.json": json.dumps(args)},
        "Group5": {"Group5_kws_a.tflite": _tiny_tflite((20, 10, 1), int8=False), "args.json": json.dumps(args)},
        "Group6": {"Group6_kws_a.tflite.zip": package.pack(tflite, "zip")},  # no args file
        "Group7": {"Group7_kws_a.tflite": _tiny_tflite(shape, int8=True), "args.json": json.dumps(args)},
        "Group8": {"Group8_kws_a.tflite": b"this is my report, not a model", "args.json": json.dumps(args)},
    }
    for team, files in teams.items():
        (root / team).mkdir()
        for name, content in files.items():
            (root / team / name).write_bytes(content if isinstance(content, bytes) else content.encode())
    yield root
    shutil.rmtree(root, ignore_errors=True)


def test_grade_gives_the_expected_row_for_each_submission(tiny_run, tiny_data, submissions, tmp_path):
    out, _ = tiny_run
    ctx = Context(data_dir=tiny_data / "data", log=lambda m: None)
    res = grade.grade(ctx, submissions, "tiny", None, tmp_path, constraints_dir=tiny_data / "constraints")
    (board,) = res["boards"]
    rows = {r["team"]: r for r in board["rows"]}
    assert len(rows) == 8
    run_acc = out.report["metrics"]["accuracy_pct"]
    for team in ("Group1", "Group2", "Group3"):  # the run's own file, three formats, three args files: the run's figure
        rep = rows[team]["rep"]
        assert rep is not None and rep["checks"][0]["measured"] == pytest.approx(run_acc), team
    assert "sidecar" in " ".join(rows["Group1"]["rep"]["assumptions"])
    assert "labels.txt" in " ".join(rows["Group2"]["rep"]["assumptions"])
    assert "kws_latency.py" in " ".join(rows["Group3"]["rep"]["assumptions"])
    assert "cannot unpack as zip" in rows["Group4"]["reason"]
    assert "model input is (1, 20, 10, 1)" in rows["Group5"]["reason"]
    assert "no preprocessing arguments for Group6_kws_a.tflite.zip" in rows["Group6"]["reason"]
    assert rows["Group7"]["rep"] is not None  # int8 input and output, read with their scales
    assert 0 <= rows["Group7"]["rep"]["checks"][0]["measured"] <= 100
    assert "does not load" in rows["Group8"]["reason"]
    ranked = [r["team"] for r in board["rows"] if r["rank"]]
    assert set(ranked) == {"Group1", "Group2", "Group3", "Group7"} and [r["rank"] for r in board["rows"]][4:] == [None] * 4
    # same accuracy: among files meeting every limit the smaller ranks higher; the .zlib is not a format this
    # version accepts, so Group3 fails its size row and ranks after both
    assert rows["Group1"]["rank"] < rows["Group2"]["rank"] < rows["Group3"]["rank"]
    assert not rows["Group3"]["rep"]["passed"] and "zlib format is not one" in " ".join(rows["Group3"]["rep"]["assumptions"])
    md = (tmp_path / "tiny" / f"grade-{submissions.name}" / "leaderboard-a-kws.md").read_text()
    assert md.count("| FAIL: ") == 4
