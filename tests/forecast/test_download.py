"""The default Jena file is downloaded when absent, verified by the sha256 of the CSV inside, never trusted blindly."""
import hashlib
import zipfile

import pytest

from harness.core.errors import HarnessError
from harness.core.task import Context
from tasks.forecast import data as jena
from tasks.forecast import task as forecast_task
from tests.loopback import closed_port_url, serve

CSV = ('"Date Time","p (mbar)","T (degC)","Tpot (K)","Tdew (degC)","rh (%)"\n'
       + "".join(f"01.01.2009 00:{m:02d}:00,996.52,{-8 + m / 100:.2f},265.40,-8.90,93.30\n" for m in range(10, 60, 10)))


@pytest.fixture()
def official(tmp_path, monkeypatch):
    served = tmp_path / "served"
    served.mkdir()
    with zipfile.ZipFile(served / jena.OFFICIAL_NAME, "w") as zf:
        zf.writestr("jena_climate_2009_2016.csv", CSV)
    data_dir = tmp_path / "empty-data"
    data_dir.mkdir()
    monkeypatch.delenv("ML4IOT_JENA", raising=False)
    monkeypatch.setenv("ML4IOT_CACHE_DIR", str(tmp_path / "cache"))  # no verified copy from another test
    return served, Context(data_dir=data_dir, log=lambda m: None)


def test_download_and_verify(official, monkeypatch):
    served, ctx = official
    monkeypatch.setattr(jena, "OFFICIAL_CSV_SHA256", hashlib.sha256(CSV.encode()).hexdigest())
    monkeypatch.setattr(jena, "OFFICIAL_CSV_BYTES", len(CSV))
    with serve(served) as base:
        monkeypatch.setattr(jena, "OFFICIAL_URL", f"{base}/{jena.OFFICIAL_NAME}")
        files = forecast_task.find_files(ctx)
    assert files[0].name == jena.OFFICIAL_NAME and not str(files[0]).startswith(str(ctx.data_dir))
    assert jena.load(files).rows == 5
    assert list(ctx.data_dir.iterdir()) == []  # the data folder is never written


def test_a_different_file_is_rejected_and_removed(official, monkeypatch):
    served, ctx = official
    with serve(served) as base:
        monkeypatch.setattr(jena, "OFFICIAL_URL", f"{base}/{jena.OFFICIAL_NAME}")
        with pytest.raises(HarnessError, match=f"expected {jena.OFFICIAL_CSV_SHA256}"):
            forecast_task.find_files(ctx)
    from harness.toolkit import datasets

    assert not (datasets.cache_dir() / "downloads" / jena.OFFICIAL_NAME).exists()


def test_offline_names_the_file_and_the_folder(official, monkeypatch):
    _, ctx = official
    monkeypatch.setattr(jena, "OFFICIAL_URL", closed_port_url(jena.OFFICIAL_NAME))
    with pytest.raises(HarnessError) as e:
        forecast_task.find_files(ctx)
    assert f"put {jena.OFFICIAL_NAME} in {ctx.data_dir}" in str(e.value)
