"""`check` on the harness's own committed reference artifacts gives exactly the figures of the run that made them."""
import json

import pytest

from harness.core.paths import ROOT
from harness.core.task import Context
from harness.pipeline import check_file

REF = ROOT / "results" / "reference"


def _shipped(suite: str, version: str, task: str) -> tuple[dict, object]:
    path = REF / suite / f"version-{version}" / "report.json"
    if not path.is_file():
        pytest.skip(f"{path} not committed")
    rep = json.loads(path.read_text())
    t = next(t for t in rep["tasks"] if t["task"] == task)
    return t, path.parent


# every committed version table of the course profile; forecasting's were made on the 2020 Jena file
SHIPPED = [(r.parent.parent.name, r.parent.name.removeprefix("version-"), t["task"])
           for r in sorted(REF.glob("ml4iot-*/version-*/report.json")) for t in json.loads(r.read_text())["tasks"]]
JENA = {"jena": ["jena_climate/weather_2020.zip"]}


def test_every_version_table_is_checked():
    assert len(SHIPPED) == 13 and {t for _, _, t in SHIPPED} == {"kws", "forecast"}


@pytest.mark.parametrize("suite,version,task,options", [(s, v, t, JENA if t == "forecast" else {}) for s, v, t in SHIPPED])
def test_check_of_a_reference_artifact_gives_the_runs_figures(suite, version, task, options, shared_data):
    t, folder = _shipped(suite, version, task)
    art = folder / t["artifact"]["file"]
    opts = {k: [str(shared_data / p) for p in v] for k, v in options.items()}
    if task == "kws":
        opts["sidecar"] = str(folder / t["artifact"]["sidecar"])
    rep = check_file.check_file(Context(data_dir=shared_data, log=lambda m: None, options=opts), art, suite, version, task)
    assert rep["sha256"] == t["artifact"]["sha256"]
    for metric, value in t["metrics"].items():
        if metric != "latency_ms":  # host timing: measured again, never equal
            got = next(c["measured"] for c in rep["checks"] if c["metric"] == metric)
            assert got == pytest.approx(value, rel=1e-9, abs=1e-12), metric
    shipped = next(s for s in t["seeds"] if s["shipped"])  # its intervals and baselines are measured again too
    for c in rep["checks"]:
        if c["metric"] in shipped["intervals"]:
            assert c["interval"] == pytest.approx(shipped["intervals"][c["metric"]], rel=1e-9), c["metric"]
    ours = {b["name"]: [c["measured"] for c in b["checks"]] for b in rep["baselines"]}
    assert t["baselines"] and all(b["name"] in ours for b in t["baselines"] if not b.get("reference"))
    for b in t["baselines"]:
        if b["name"] in ours:
            assert ours[b["name"]] == pytest.approx([c["measured"] for c in b["checks"]], rel=1e-9), b["name"]
