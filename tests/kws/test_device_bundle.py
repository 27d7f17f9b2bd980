"""Device bundle and import-latency: the bundle's script runs with numpy and LiteRT only, measures the shipped
file under the edition's protocol, and its JSON joins the version's tables only for the file it measured."""
import json
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from harness.core.errors import HarnessError
from harness.core.paths import ROOT
from harness.core.task import Context
from harness.pipeline import device, run
from harness.toolkit.measure.interpreter import Runner
from tasks.kws import features as feat
from tests.kws.conftest import OVERRIDES

ONLY = ("numpy", "numpy.libs", "ai_edge_litert")  # all the script may import beyond the standard library


@pytest.fixture(scope="module")
def version_run(tiny_data, tmp_path_factory):
    out = tmp_path_factory.mktemp("out")
    ctx = Context(data_dir=tiny_data / "data", log=lambda m: None)
    run.run_version(ctx, "tiny", "a", recipe_paths={"kws": ROOT / "tests/kws/pair_recipe.toml"},
                    overrides=OVERRIDES, out_dir=out, constraints_dir=tiny_data / "constraints")
    return out


def _run_isolated(script: Path, args: list[str], tmp_path: Path) -> subprocess.CompletedProcess:
    """The script with site-packages cut off except numpy and ai_edge_litert (-S: no site, no .pth files)."""
    import numpy

    site = Path(numpy.__file__).parents[1]
    only = tmp_path / "only"
    only.mkdir()
    for name in ONLY:
        if (site / name).exists():
            (only / name).symlink_to(site / name)
    code = ("import sys, runpy; sys.path[:] = [p for p in sys.path if 'site-packages' not in p]; "
            f"sys.path.insert(0, {str(only)!r}); sys.argv = [{str(script)!r}] + {args!r}; "
            f"runpy.run_path({str(script)!r}, run_name='__main__')")
    return subprocess.run([sys.executable, "-S", "-c", code], cwd=script.parent, capture_output=True, text=True, timeout=300)


def test_bundle_runs_with_numpy_and_litert_only_and_its_json_imports(version_run, tiny_data, tmp_path):
    folder, zpath = device.bundle(version_run, "tiny", "a", constraints_dir=tiny_data / "constraints")
    names = {"README.md", "bundle.json", "frontend.npz", "kernels.py", "latency.py", "measure_on_device.py",
             "model.tflite.zip", "requirements.txt", "sidecar.json"}
    assert {p.name for p in folder.iterdir()} == names
    with zipfile.ZipFile(zpath) as zf:
        assert {Path(n).name for n in zf.namelist()} == names
    manifest = json.loads((folder / "bundle.json").read_text())
    assert "ai_edge_litert 2.3.0: yes" in manifest["runtimes_tested_by_the_harness"]
    assert manifest["runtimes_tested_by_the_harness"] in (folder / "README.md").read_text()
    clips = tiny_data / "data" / "mini_speech_commands"
    res = _run_isolated(folder / "measure_on_device.py", ["--clips", str(clips), "--device", "test-device"], tmp_path)
    assert res.returncode == 0, res.stderr[-2000:]
    measured = json.loads((folder / "device-latency-test-device.json").read_text())
    rep = json.loads((version_run / "tiny" / "version-a" / "report.json").read_text())
    assert measured["artifact_sha256"] == rep["tasks"][0]["artifact"]["sha256"]
    assert measured["latency"]["n"] > 0 and measured["latency"]["metric_ms"] > 0
    # the device's accuracy: the harness's own predictions on the same clips (same feature code, numpy's FFT there)
    side = json.loads((folder / "sidecar.json").read_text())
    from harness.toolkit import package

    runner = Runner(package.unpack((folder / "model.tflite.zip").read_bytes(), "zip"))
    ex = feat.NumpyFeatures(feat.PreprocessingArgs.from_dict(side["PREPROCESSING_ARGS"]))
    import soundfile as sf

    correct = n = 0
    for label in side["LABELS"]:
        for wav in sorted((clips / label).glob("*.wav")):
            x, _ = sf.read(wav, dtype="int16")
            audio = np.zeros(16000, np.int16)
            audio[:len(x)] = x[:16000]
            f = ex.from_int16(audio).reshape(runner.input_shape)
            correct += int(runner(f).argmax() == side["LABELS"].index(label))
            n += 1
    assert measured["accuracy"]["clips"] == n and abs(measured["accuracy"]["correct"] - correct) <= 1
    assert "XNNPACK" not in res.stderr and "INFO" not in res.stderr  # the interpreter's C++ lines are not the user's

    # a cut clip or a folder without clips: one line naming it, exit 2, no JSON
    cut = tmp_path / "clips" / side["LABELS"][0] / "cut.wav"
    cut.parent.mkdir(parents=True)
    cut.write_bytes(b"RIFF\x10")
    for clips_dir, line in ((cut.parents[1], f"error: {cut}: not a readable WAV file ("),
                            (tmp_path / "none", f"error: {tmp_path / 'none'}: no <label>/*.wav clips for the labels")):
        (tmp_path / "iso").mkdir(exist_ok=True)
        shutil.rmtree(tmp_path / "iso")
        (tmp_path / "iso").mkdir()
        bad = _run_isolated(folder / "measure_on_device.py", ["--clips", str(clips_dir), "--device", "bad"], tmp_path / "iso")
        assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1, bad.stderr[-2000:]
        assert bad.stderr.startswith(line), bad.stderr
        assert not (folder / "device-latency-bad.json").exists()

    res = _import(folder / "device-latency-test-device.json", version_run, tiny_data)
    md = (version_run / "tiny" / "version-a" / "report.md").read_text()
    assert "Latency on test-device (imported" in md and res["row"]["passed"] is True
    again = json.loads((version_run / "tiny" / "version-a" / "report.json").read_text())
    assert sum(1 for c in again["tasks"][0]["checks"] if c.get("imported")) == 1
    _import(folder / "device-latency-test-device.json", version_run, tiny_data)  # a re-import replaces the row
    again = json.loads((version_run / "tiny" / "version-a" / "report.json").read_text())
    assert sum(1 for c in again["tasks"][0]["checks"] if c.get("imported")) == 1
    assert again["passed"] == rep["passed"]  # a passing device figure leaves the verdict as it was
    assert (version_run / "tiny" / "summary.md").is_file()


def test_a_device_figure_above_the_limit_fails_the_version(version_run, tmp_path, tiny_data):
    rep = json.loads((version_run / "tiny" / "version-a" / "report.json").read_text())
    path = _figure(rep, tmp_path / "slow.json", tiny_data, device={"name": "slow-board"}, latency={"metric_ms": 5000.0})
    res = _import(path, version_run, tiny_data)
    assert res["row"]["passed"] is False and res["passed"] is False
    md = (version_run / "tiny" / "version-a" / "report.md").read_text()
    assert "the imported device latency misses the limit" in md


def test_import_refuses_a_figure_of_another_file(version_run, tmp_path, tiny_data):
    rep = json.loads((version_run / "tiny" / "version-a" / "report.json").read_text())
    path = _figure(rep, tmp_path / "other.json", tiny_data, artifact_sha256="0" * 64, latency={"metric_ms": 1.0})
    before = (version_run / "tiny" / "version-a" / "report.json").read_text()
    with pytest.raises(HarnessError, match="is not tiny version a's shipped"):
        _import(path, version_run, tiny_data)
    assert (version_run / "tiny" / "version-a" / "report.json").read_text() == before  # nothing changed
    path.write_text("{not json")
    with pytest.raises(HarnessError, match="not a device measurement JSON"):
        _import(path, version_run, tiny_data)
    assert rep["tasks"][0]["artifact"]["sha256"]


def _copy_of(version_run, tmp_path) -> Path:
    """A private copy of the module's results: these tests edit it."""
    out = tmp_path / "results"
    shutil.copytree(version_run, out)
    return out


def _import(path, out, tiny_data):
    return device.import_latency(path, out, constraints_dir=tiny_data / "constraints")


def _figure(rep, path, tiny_data, **changes):
    """A device JSON as the bundle's script writes it, for the tiny suite's version a."""
    from harness.core import constraints

    protocol = constraints.load("tiny", "a", root=tiny_data / "constraints").task("kws")["latency"]
    fake = {"schema": device.SCHEMA, "suite": "tiny", "version": "a", "task": "kws", "protocol": protocol,
            "artifact_sha256": rep["tasks"][0]["artifact"]["sha256"], "metric": "latency_ms", "device": {"name": "rpi"},
            "runtime": "tflite_runtime 2.14.0", "latency": {"metric_ms": 0.001}}
    path.write_text(json.dumps({**fake, **changes}))
    return path


def test_a_fast_device_figure_never_turns_a_failing_seed_into_a_pass(version_run, tmp_path, tiny_data):
    out = _copy_of(version_run, tmp_path)
    record = out / "tiny" / "version-a" / "report.json"
    rep = json.loads(record.read_text())
    task = rep["tasks"][0]
    assert task["seeds"]
    task["checks"] = [c for c in task["checks"] if not c.get("imported")]  # figures other tests imported
    for s in task["seeds"]:
        s["passed"] = True
    task["seeds"][0]["passed"] = False  # a seed that missed a limit on the host
    record.write_text(json.dumps(rep))
    res = _import(_figure(rep, tmp_path / "fast.json", tiny_data), out, tiny_data)
    assert res["row"]["passed"] is True and res["passed"] is False
    assert res["row"]["label"] == "Latency on rpi (imported, tflite_runtime 2.14.0)"
    fig = json.loads((tmp_path / "fast.json").read_text())
    del fig["runtime"]
    (tmp_path / "fast.json").write_text(json.dumps(fig))
    assert _import(tmp_path / "fast.json", out, tiny_data)["row"]["label"] == "Latency on rpi (imported, runtime unknown)"


def test_a_device_figure_without_a_limit_is_reported_not_judged(version_run, tmp_path, tiny_data):
    out = _copy_of(version_run, tmp_path)
    record = out / "tiny" / "version-a" / "report.json"
    rep = json.loads(record.read_text())
    row = next(c for c in rep["tasks"][0]["checks"] if c["metric"] == "latency_ms")
    row["limit"] = None  # an edition that states no latency limit
    record.write_text(json.dumps(rep))
    res = _import(_figure(rep, tmp_path / "slow.json", tiny_data, latency={"metric_ms": 5000.0}), out, tiny_data)
    assert res["row"]["passed"] is None
    assert json.loads(record.read_text())["tasks"][0]["passed"] == rep["tasks"][0]["passed"]


def test_import_and_bundle_refuse_what_they_cannot_attach_in_one_line(version_run, tiny_data, tmp_path):
    rep = json.loads((version_run / "tiny" / "version-a" / "report.json").read_text())
    before = (version_run / "tiny" / "version-a" / "report.json").read_text()
    with pytest.raises(HarnessError, match=r"nope.json: no such file$"):
        _import(tmp_path / "nope.json", version_run, tiny_data)
    with pytest.raises(HarnessError, match=r"report.json: no task 'forecast' \(has kws\)$"):
        _import(_figure(rep, tmp_path / "f.json", tiny_data, task="forecast"), version_run, tiny_data)
    with pytest.raises(HarnessError, match=r"e.json: tiny version a has no 'energy_mj' row to compare with$"):
        _import(_figure(rep, tmp_path / "e.json", tiny_data, metric="energy_mj"), version_run, tiny_data)
    assert (version_run / "tiny" / "version-a" / "report.json").read_text() == before
    out = _copy_of(version_run, tmp_path)
    shutil.rmtree(out / "tiny" / "bundles", ignore_errors=True)  # another test's bundle
    art = out / "tiny" / "version-a" / rep["tasks"][0]["artifact"]["file"]
    art.write_bytes(art.read_bytes() + b"\0")  # the file no longer the one the report measured
    with pytest.raises(HarnessError, match=r"sha256 differs from its report's; rerun the version$"):
        device.bundle(out, "tiny", "a", constraints_dir=tiny_data / "constraints")
    assert not (out / "tiny" / "bundles").exists()



def test_a_report_without_seed_records_is_refused_in_one_line_and_left_as_it_was(version_run, tmp_path, tiny_data):
    out = _copy_of(version_run, tmp_path)
    record = out / "tiny" / "version-a" / "report.json"
    rep = json.loads(record.read_text())
    rep["tasks"][0].pop("seeds")  # a report written before per-seed records
    record.write_text(json.dumps(rep))
    before = {p: p.read_bytes() for p in (out / "tiny" / "version-a").rglob("*") if p.is_file()}
    with pytest.raises(HarnessError, match=r"report.json: task 'kws' has no per-seed records \(an older report\); "
                                           r"run tiny version a again$"):
        _import(_figure(rep, tmp_path / "fast.json", tiny_data), out, tiny_data)
    assert {p: p.read_bytes() for p in (out / "tiny" / "version-a").rglob("*") if p.is_file()} == before


@pytest.mark.parametrize("figure", [-5.0, 0.0, float("nan"), float("inf")])
def test_a_device_figure_that_is_no_positive_time_is_refused_in_one_line(version_run, tmp_path, figure, tiny_data):
    out = _copy_of(version_run, tmp_path)
    rep = json.loads((out / "tiny" / "version-a" / "report.json").read_text())
    before = (out / "tiny" / "version-a" / "report.json").read_bytes()
    with pytest.raises(HarnessError, match=r"odd.json: key 'latency.metric_ms' must be a positive number of ms, got "):
        _import(_figure(rep, tmp_path / "odd.json", tiny_data, latency={"metric_ms": figure}), out, tiny_data)
    assert (out / "tiny" / "version-a" / "report.json").read_bytes() == before


@pytest.mark.parametrize("text", ["", '{"LABELS": 5}', "[1, 2]"])
def test_a_broken_sidecar_stops_the_bundle_in_one_line(version_run, tiny_data, tmp_path, text):
    out = _copy_of(version_run, tmp_path)
    shutil.rmtree(out / "tiny" / "bundles", ignore_errors=True)  # another test's bundle
    rep = json.loads((out / "tiny" / "version-a" / "report.json").read_text())
    (out / "tiny" / "version-a" / rep["tasks"][0]["artifact"]["sidecar"]).write_text(text)
    with pytest.raises(HarnessError, match=r"sidecar.json: not the artifact's sidecar \(\w+Error: .*\); rerun the version$"):
        device.bundle(out, "tiny", "a", constraints_dir=tiny_data / "constraints")
    assert not (out / "tiny" / "bundles").exists()


def test_a_figure_of_another_schema_or_latency_protocol_is_refused_and_nothing_changes(version_run, tiny_data, tmp_path):
    from harness.core import constraints

    rep = json.loads((version_run / "tiny" / "version-a" / "report.json").read_text())
    before = (version_run / "tiny" / "version-a" / "report.json").read_bytes()
    protocol = constraints.load("tiny", "a", root=tiny_data / "constraints").task("kws")["latency"]
    with pytest.raises(HarnessError, match=r"s.json: schema 'mine/2' is not 'ml4iot-device-measurement/1' \(the bundle's"):
        _import(_figure(rep, tmp_path / "s.json", tiny_data, schema="mine/2"), version_run, tiny_data)
    with pytest.raises(HarnessError, match=r"s.json: not a device measurement JSON \(KeyError: 'schema'\)$"):
        fig = json.loads((tmp_path / "s.json").read_text())
        del fig["schema"]
        (tmp_path / "s.json").write_text(json.dumps(fig))
        _import(tmp_path / "s.json", version_run, tiny_data)
    other = {**protocol, "runs": protocol["runs"] + 1, "statistic": "mean" if protocol["statistic"] != "mean" else "median"}
    with pytest.raises(HarnessError, match=r"p.json: measured under another latency protocol than tiny version a's "
                                           r"\(differs in: runs, statistic\); bundle the version again"):
        _import(_figure(rep, tmp_path / "p.json", tiny_data, protocol=other), version_run, tiny_data)
    with pytest.raises(HarnessError, match=r"\(differs in: all\)"):
        _import(_figure(rep, tmp_path / "p.json", tiny_data, protocol="course"), version_run, tiny_data)
    assert (version_run / "tiny" / "version-a" / "report.json").read_bytes() == before


def test_a_passing_figure_imported_over_a_failing_one_restores_the_seeds_verdict(version_run, tmp_path, tiny_data):
    out = _copy_of(version_run, tmp_path)
    record = out / "tiny" / "version-a" / "report.json"
    rep = json.loads(record.read_text())
    task = rep["tasks"][0]
    task["checks"] = [c for c in task["checks"] if not c.get("imported")]
    for s in task["seeds"]:
        s["passed"] = True
    task["passed"] = True
    record.write_text(json.dumps(rep))
    slow = _import(_figure(rep, tmp_path / "slow.json", tiny_data, latency={"metric_ms": 5000.0}), out, tiny_data)
    assert slow["row"]["passed"] is False and json.loads(record.read_text())["tasks"][0]["passed"] is False
    fast = _import(_figure(rep, tmp_path / "fast.json", tiny_data), out, tiny_data)  # same device: replaces the row
    assert fast["row"]["passed"] is True
    assert json.loads(record.read_text())["tasks"][0]["passed"] is True  # the verdict is the seeds', not the stored one


def test_a_protocol_key_the_figure_lacks_is_named(version_run, tiny_data, tmp_path):
    from harness.core import constraints

    rep = json.loads((version_run / "tiny" / "version-a" / "report.json").read_text())
    protocol = constraints.load("tiny", "a", root=tiny_data / "constraints").task("kws")["latency"]
    partial = {k: v for k, v in protocol.items() if k != "runs"}
    with pytest.raises(HarnessError, match=r"\(differs in: runs\); bundle the version again"):
        _import(_figure(rep, tmp_path / "p.json", tiny_data, protocol=partial), version_run, tiny_data)


def test_a_damaged_bundle_is_refused_in_one_error_line_with_exit_2(version_run, tiny_data, tmp_path):
    folder, _ = device.bundle(version_run, "tiny", "a", constraints_dir=tiny_data / "constraints")
    for n, (damage, start) in enumerate([
            (lambda b: (b / "frontend.npz").unlink(), "error: "),
            (lambda b: (b / "model.tflite.zip").write_bytes(b"not the model"), "error: model.tflite.zip: sha256 ")]):
        copy = tmp_path / f"bundle{n}"
        shutil.copytree(folder, copy)
        damage(copy)
        (tmp_path / f"iso{n}").mkdir()
        res = _run_isolated(copy / "measure_on_device.py", ["--device", "bad"], tmp_path / f"iso{n}")
        assert res.returncode == 2 and len(res.stderr.strip().splitlines()) == 1, res.stderr[-2000:]
        assert res.stderr.startswith(start), res.stderr
        assert not list(copy.glob("device-latency-*.json"))


def test_a_figure_for_a_task_without_a_device_script_is_refused(version_run, tiny_data, tmp_path):
    out = _copy_of(version_run, tmp_path)
    record = out / "tiny" / "version-a" / "report.json"
    rep = json.loads(record.read_text())
    rep["tasks"][0]["task"] = "forecast"  # a task with no device_protocol
    record.write_text(json.dumps(rep))
    with pytest.raises(HarnessError, match=r"f.json: task 'forecast' has no device measurement to import"):
        _import(_figure(rep, tmp_path / "f.json", tiny_data, task="forecast"), out, tiny_data)
