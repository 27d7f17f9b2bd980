"""Shared tiny keyword-spotting data and one tiny real run, built once for every test module of tests/kws."""
import pytest
import soundfile as sf

from harness.core import constraints
from harness.core.paths import ROOT
from harness.core.task import Context
from harness.pipeline import run

CONSTRAINT = """
suite = "tiny"
version = "a"
academic_year = "test"
status = "official"
kilobyte_bytes = 1024
[kws]
source = "test"
labels = ["go", "stop"]
split = "course-pair"
min_accuracy_pct = 40.0
max_size_bytes = 200000
size_formats = ["tflite", "zip"]
[kws.latency]
max_ms = 1000.0
scope = "total"
statistic = "median"
runs = 1
discard = 0
input = "test-clips"
decode_in_timer = true
device = "test"
source = "test"
"""


@pytest.fixture(scope="package")
def tiny_data(tmp_path_factory, shared_data):
    """A wav tree of 32 real clips per keyword and split lists over it (course line format)."""
    root = tmp_path_factory.mktemp("tiny")
    src = shared_data / "mini_speech_commands_flac" / "mini_speech_commands"
    lists = {"train": [], "val": [], "test": []}
    for label in ("go", "stop", "yes"):
        files = sorted((src / label).glob("*.flac"))[:32]
        for i, f in enumerate(files):
            x, rate = sf.read(f, dtype="int16")
            out = root / "data" / "mini_speech_commands" / label / (f.stem + ".wav")
            out.parent.mkdir(parents=True, exist_ok=True)
            sf.write(out, x, rate, subtype="PCM_16")
            split = "train" if i < 20 else "val" if i < 26 else "test"
            lists[split].append(f"./data/mini_speech_commands/{label}/{f.stem}.wav")
    splits = root / "data" / "ml4iot_kws_splits"
    splits.mkdir()
    for name, lines in lists.items():
        (splits / f"kws_{name}_split.txt").write_text("\n".join(lines) + "\n")
    (splits / "labels.txt").write_text("['go', 'stop', 'yes']")
    cdir = root / "constraints" / "tiny"
    cdir.mkdir(parents=True)
    (cdir / "version-a.toml").write_text(CONSTRAINT)
    return root


OVERRIDES = ["train.epochs=1", "train.batch_size=8", "model.width=0.25", "model.blocks=1", "train.select=\"last\"",
             "quantize.calibration_samples=8", "package.format=\"zip\""]


@pytest.fixture(scope="package")
def tiny_run(tiny_data):
    """One tiny real run whose artifact and report the tests below share (each test can run alone)."""
    cons = constraints.load_file(tiny_data / "constraints" / "tiny" / "version-a.toml")
    ctx = Context(data_dir=tiny_data / "data", log=lambda m: None)
    folder = tiny_data / "results" / "tiny" / "version-a" / "kws"
    out = run.run_task(ctx, cons, "kws", recipe_path=ROOT / "tests/kws/pair_recipe.toml",
                       overrides=OVERRIDES, artifact_dir=folder, use_cache=False)
    return out, folder
