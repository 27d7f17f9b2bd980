"""A real run on a slice of the station's own CSV format: a real .tflite, a table, reproducible bytes."""
import json
import zipfile

import pytest

from harness import constraints, run
from harness.task import Context


@pytest.fixture()
def jena_slice(tmp_path, jena_2017b):
    with zipfile.ZipFile(jena_2017b) as zf:
        raw = zf.read(zf.namelist()[0])
    p = tmp_path / "mpi_roof_slice.csv"
    p.write_bytes(b"\r\n".join(raw.split(b"\r\n")[:3001]) + b"\r\n")  # header + 3000 rows, cp1252, padded
    return p


def _run(tmp_path, jena_slice, out, **kw):
    ctx = Context(data_dir=tmp_path, jena_files=[jena_slice], log=lambda m: None)
    return run.run_version(ctx, "ml4iot-2022", "a", tasks=["forecast"], out_dir=out,
                           overrides=["train.epochs=1", "train.batch_size=128"], **kw)


def test_end_to_end_writes_artifact_and_tables(tmp_path, jena_slice):
    out = tmp_path / "results"
    rep = _run(tmp_path, jena_slice, out)
    task = rep["tasks"][0]
    folder = out / "ml4iot-2022" / "version-a" / "forecast"
    blob = (folder / "model.tflite.zlib").read_bytes()
    assert len(blob) == task["artifact"]["bytes"] == task["metrics"]["size_bytes"]
    side = json.loads((folder / "sidecar.json").read_text())
    assert side["input"]["shape"] == [1, 6, 2] and side["output"]["units"] == ["°C", "%RH"]
    md = (out / "ml4iot-2022" / "version-a.md").read_text()
    assert "| MAE(T), test split" in md and "mpi_roof_slice.csv" in md and "not the course's device" in md
    assert (out / "ml4iot-2022" / "version-a.tex").read_text().count("\\toprule") == 1
    assert "ml4iot-2022" in (out / "summary.md").read_text()
    result = {c["label"]: c["result"] for c in task["checks"]}
    assert set(result.values()) <= {"PASS", "FAIL"} and len(result) == 3
    assert task["details"]["test_windows"] == 300 - 9 + 1
    # a second run reuses the build
    rep2 = _run(tmp_path, jena_slice, out)
    assert rep2["tasks"][0]["build_cached"] and rep2["tasks"][0]["artifact"]["sha256"] == task["artifact"]["sha256"]


def test_same_recipe_twice_gives_byte_identical_tflite(tmp_path, jena_slice):
    shas = []
    for i in range(2):
        rep = _run(tmp_path, jena_slice, tmp_path / f"r{i}", use_cache=False)
        shas.append(rep["tasks"][0]["artifact"]["sha256"])
        assert not rep["tasks"][0]["build_cached"]
    assert shas[0] == shas[1]


def test_lab_mlp_with_pruning_and_int8_runs_end_to_end(tmp_path, jena_slice):
    ctx = Context(data_dir=tmp_path, jena_files=[jena_slice], log=lambda m: None)
    cons = constraints.load("ml4iot-2022", "b")
    out = run.run_task(ctx, cons, "forecast", overrides=[
        "model.name=\"mlp\"", "model.width=0.1", "train.epochs=2", "train.batch_size=64", "train.loss=\"mse\"",
        "prune.final_sparsity=0.5", "quantize.mode=\"int8\""], out_dir=tmp_path / "r", use_cache=False)
    assert out.report["details"]["weight_sparsity"]["FULLY_CONNECTED"] >= 0.49
