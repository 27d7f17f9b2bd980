"""`check` on real submissions from public student repositories reproduces each group's reported accuracy, given
the group's preprocessing, label order, interpreter kernels and resampling order (tests/fixtures/student_submissions.toml)."""
import hashlib
import os
import tomllib
from pathlib import Path

import pytest

from harness.core.task import Context
from harness.pipeline import check_file

HERE = Path(__file__).parent
ENTRIES = tomllib.loads((HERE / "fixtures" / "student_submissions.toml").read_text())["submission"]


def _locate(entry: dict) -> Path | None:
    name = entry["path"].rsplit("/", 1)[1]
    if entry.get("committed"):
        return HERE.parent / entry["committed"] / name
    folder = os.environ.get("ML4IOT_SUBMISSIONS")
    path = Path(folder, entry["repo"].replace("/", "__"), name) if folder else None
    return path if path and path.is_file() else None


@pytest.mark.parametrize("entry", ENTRIES, ids=[e["id"] for e in ENTRIES])
def test_check_reproduces_the_groups_figure(entry, shared_data, tmp_path):
    path = _locate(entry)
    if path is None:
        pytest.skip(f"{entry['repo']} has no licence: not in this repository (set ML4IOT_SUBMISSIONS to check it)")
    assert hashlib.sha256(path.read_bytes()).hexdigest() == entry["sha256"]
    labels = tmp_path / "labels.txt"
    labels.write_text(repr(entry["labels"]))
    opts = {"labels": str(labels), "kernels": entry["kernels"]}
    if "kws_flags" in entry:
        opts["kws_flags"] = entry["kws_flags"]
    if "preprocessing" in entry:
        opts["preprocessing"] = str(path.parent / entry["preprocessing"])
    if "resample_order" in entry:
        opts["resample_order"] = entry["resample_order"]
    ctx = Context(data_dir=shared_data, log=lambda m: None, options=opts)
    rep = check_file.check_file(ctx, path, entry["suite"], entry["version"], "kws")
    assert rep["details"]["correct"] == entry["expect_correct"], entry["reported"]
