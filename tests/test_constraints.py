import shutil

import pytest

from harness.core import constraints
from harness.core.errors import HarnessError

SUITES = {"ml4iot-2021": ["a", "b", "c"], "ml4iot-2022": ["a", "b", "c"], "ml4iot-2023": ["a"],
          "ml4iot-2024": ["a"], "ml4iot-2025": ["a"]}


def test_every_shipped_file_parses():
    assert {s: constraints.versions(s) for s in constraints.suites()} == SUITES
    for suite, versions in SUITES.items():
        for v in versions:
            c = constraints.load(suite, v)
            assert c.tasks


def test_forecast_limits_match_the_assignments():
    a22 = constraints.load("ml4iot-2022", "a").task("forecast")
    assert (a22["output_steps"], a22["max_mae_t_degc"], a22["max_mae_rh_pct"], a22["max_size_bytes"]) == (3, 0.3, 1.2, 1500)
    b22 = constraints.load("ml4iot-2022", "b").task("forecast")
    assert (b22["output_steps"], b22["max_size_bytes"]) == (9, 1800)
    for v in "ab":
        assert constraints.load("ml4iot-2021", v).task("forecast")["output_steps"] == 6


def test_reconstructed_suite_is_marked():
    assert constraints.load("ml4iot-2024", "a").reconstructed
    assert not constraints.load("ml4iot-2025", "a").reconstructed


def _copy(tmp_path, suite="ml4iot-2022", version="a"):
    dst = tmp_path / suite
    dst.mkdir()
    path = dst / f"version-{version}.toml"
    shutil.copy(constraints.CONSTRAINTS_DIR / suite / f"version-{version}.toml", path)
    return path


@pytest.mark.parametrize("old,new,message", [
    ("max_mae_t_degc = 0.3", "max_mae_t_degree = 0.3", "unknown key 'forecast.max_mae_t_degree'"),
    ("max_mae_t_degc = 0.3", 'max_mae_t_degc = "0.3"', "key 'forecast.max_mae_t_degc' must be a number"),
    ("max_mae_t_degc = 0.3", "", "missing required key 'forecast.max_mae_t_degc'"),
    ("max_mae_t_degc = 0.3", "max_mae_t_degc = -0.3", "key 'forecast.max_mae_t_degc' must be > 0"),
    ("output_steps = 3", "output_steps = 0", "key 'forecast.output_steps' must be >= 1"),
    ('size_formats = ["tflite", "zlib"]', 'size_formats = ["gzip"]', "key 'forecast.size_formats'"),
    ('status = "official"', 'status = "maybe"', "key 'status' must be one of"),
    ("max_size_bytes = 1500", "max_size_bytes = 1.5", "key 'forecast.max_size_bytes' must be an integer"),
    ("max_size_bytes = 1500", "max_size_bytes = true", "key 'forecast.max_size_bytes' must be an integer"),
    ('size_formats = ["tflite", "zlib"]', 'size_formats = ["tflite", 1]', "key 'forecast.size_formats' must hold string items"),
    ("max_size_bytes = 130000", "max_size_bytes = -1", "key 'kws.max_size_bytes' must be >= 1"),
    ("kilobyte_bytes = 1000", "kilobyte_bytes = 1100", "key 'kilobyte_bytes' must be one of 1000, 1024"),
    ('status = "official"', 'status = "official"\ngrading = "best-of-3"', "key 'grading' must be one of"),
    ('size_formats = ["tflite", "zlib"]', "size_formats = []", "key 'forecast.size_formats' must list some of"),
])
def test_validation_errors_name_file_and_key(tmp_path, old, new, message):
    path = _copy(tmp_path)
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))
    with pytest.raises(HarnessError) as e:
        constraints.load_file(path)
    assert str(path) in str(e.value) and message in str(e.value)
    assert "\n" not in str(e.value)


def test_latency_discard_must_leave_runs(tmp_path):
    path = _copy(tmp_path, "ml4iot-2025", "a")
    path.write_text(path.read_text().replace("discard = 100", "discard = 200"))
    with pytest.raises(HarnessError, match="kws.latency.discard"):
        constraints.load_file(path)


def test_path_must_match_suite_and_version(tmp_path):
    path = _copy(tmp_path)
    path.write_text(path.read_text().replace('version = "a"', 'version = "b"'))
    with pytest.raises(HarnessError, match="do not match the file path"):
        constraints.load_file(path)


def test_invalid_toml_and_unknown_suite(tmp_path):
    path = _copy(tmp_path)
    path.write_text("suite = ")
    with pytest.raises(HarnessError, match="invalid TOML"):
        constraints.load_file(path)
    with pytest.raises(HarnessError, match="unknown suite 'nope'"):
        constraints.load("nope", "a")
    with pytest.raises(HarnessError, match="has versions: a, b, c"):
        constraints.load("ml4iot-2022", "z")
