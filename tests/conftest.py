import os
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import harness  # noqa: E402,F401  (sets TensorFlow and thread environment before numpy / TF load)
import pytest  # noqa: E402

SHARED_DATA = Path(os.environ.get("ML4IOT_SHARED_DATA", ROOT.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data folder not found: {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture(scope="session", autouse=True)
def _isolated_cache(tmp_path_factory):
    """Tests never read or fill the user's cache. Session-wide, so that module fixtures (set up before any
    function-level fixture) build into it too."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ML4IOT_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "cache"))
        yield


@pytest.fixture
def toy(monkeypatch):
    """The toy third task (tests/toy_task), registered for the test."""
    from harness.core import task as tasks

    monkeypatch.setitem(tasks._REGISTRY, "toy", "tests.toy_task.task")
    yield tasks.get("toy")
    tasks._REGISTRY.pop("toy", None)


@pytest.fixture
def opened_splits():
    """Every (split, whether the test split was sealed) a Context opens while the test runs."""
    from harness.core.task import Context

    opened = []
    real = Context.open_split

    def spy(self, split):
        opened.append((split, self.sealed_test))
        return real(self, split)

    with pytest.MonkeyPatch.context() as mp:  # a patch of its own: a test's monkeypatch.undo() leaves it in place
        mp.setattr(Context, "open_split", spy)
        yield opened


@pytest.fixture(scope="session")
def jena_2020(shared_data) -> Path:
    return shared_data / "jena_climate" / "weather_2020.zip"


@pytest.fixture(scope="session")
def jena_2017b(shared_data) -> Path:
    return shared_data / "jena_climate" / "mpi_roof_2017b.zip"


def write_jena_slice(folder: Path, jena_zip: Path) -> Path:
    """The station's own CSV format cut short (header + 3000 rows, cp1252, CRLF), for fast real runs."""
    with zipfile.ZipFile(jena_zip) as zf:
        raw = zf.read(zf.namelist()[0])
    p = folder / "mpi_roof_slice.csv"
    p.write_bytes(b"\r\n".join(raw.split(b"\r\n")[:3001]) + b"\r\n")
    return p


@pytest.fixture()
def jena_slice(tmp_path, jena_2017b) -> Path:
    """One per test: the data fingerprint holds the file's path, so two tests never share a cached build."""
    return write_jena_slice(tmp_path, jena_2017b)
