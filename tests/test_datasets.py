"""harness.datasets: folder resolution, cache folder, hashing and verified downloads (local HTTP server)."""
from __future__ import annotations

import hashlib
import http.server
import socket

import pytest

from harness.core.errors import HarnessError
from harness.toolkit import datasets
from harness.toolkit.datasets import cache_dir, download, ensure_download, placement_hint, resolve_data_dir, sha256_file
from tests.loopback import closed_port_url, serve, serve_with


@pytest.fixture()
def archive(tmp_path):
    served = tmp_path / "served"
    served.mkdir()
    payload = bytes(range(256)) * 4096  # 1 MiB: several read chunks
    (served / "small.zip").write_bytes(payload)
    return served, payload, hashlib.sha256(payload).hexdigest()


def test_resolve_data_dir_precedence(monkeypatch, tmp_path):
    monkeypatch.delenv(datasets.DATA_DIR_ENV, raising=False)
    assert resolve_data_dir() == datasets.PROJECT_ROOT / "data"
    monkeypatch.setenv(datasets.DATA_DIR_ENV, str(tmp_path / "env"))
    with pytest.raises(HarnessError, match=r"ML4IOT_DATA_DIR=.*env: no such folder"):
        resolve_data_dir()
    (tmp_path / "env").mkdir()
    assert resolve_data_dir() == tmp_path / "env"
    (tmp_path / "cli").mkdir()
    assert resolve_data_dir(str(tmp_path / "cli")) == tmp_path / "cli"
    with pytest.raises(HarnessError, match="--data-dir .*missing: no such folder"):
        resolve_data_dir(str(tmp_path / "missing"))  # a typo never falls through to a download


def test_cache_dir_from_env(monkeypatch, tmp_path):
    monkeypatch.setenv(datasets.CACHE_DIR_ENV, str(tmp_path / "c"))
    assert cache_dir() == tmp_path / "c" and (tmp_path / "c").is_dir()


def test_sha256_file(tmp_path):
    f = tmp_path / "f.bin"
    f.write_bytes(b"x" * 3_000_000)
    assert sha256_file(f) == hashlib.sha256(b"x" * 3_000_000).hexdigest()


def test_download_success(archive, tmp_path):
    served, payload, digest = archive
    dest = tmp_path / "out" / "small.zip"
    with serve(served) as base:
        assert download(f"{base}/small.zip", dest, digest, "small") == dest
        assert dest.read_bytes() == payload
        # Without a hash the Content-Length is still checked; the same bytes arrive.
        download(f"{base}/small.zip", tmp_path / "out" / "nohash.zip", None, "small")
    assert sorted(p.name for p in dest.parent.iterdir()) == ["nohash.zip", "small.zip"]  # no temp file left


def test_download_hash_mismatch_leaves_nothing(archive, tmp_path):
    served, _, digest = archive
    dest = tmp_path / "out" / "small.zip"
    wrong = "0" * 64
    with serve(served) as base, pytest.raises(HarnessError) as err:
        download(f"{base}/small.zip", dest, wrong, "small")
    message = str(err.value)
    assert f"{base}/small.zip" in message and wrong in message and digest in message
    assert list(dest.parent.iterdir()) == []


def test_download_connection_refused_gives_offline_hint(tmp_path):
    url = closed_port_url("small.zip")
    hint = placement_hint("small.zip", tmp_path / "data")
    with pytest.raises(HarnessError) as err:
        download(url, tmp_path / "out" / "small.zip", None, "small", offline_hint=hint)
    message = str(err.value)
    assert message.startswith(f"cannot download {url} (")
    assert message.endswith(f"; put small.zip in {tmp_path / 'data'} or pass --data-dir")
    assert "\n" not in message
    assert list((tmp_path / "out").iterdir()) == []


def test_download_http_error(archive, tmp_path):
    served, _, _ = archive
    with serve(served) as base, pytest.raises(HarnessError, match="HTTP 404"):
        download(f"{base}/missing.zip", tmp_path / "missing.zip", None, "missing", offline_hint="hint")


def test_ensure_download_reuses_verified_file(archive, tmp_path):
    _, payload, digest = archive
    dest = tmp_path / "small.zip"
    dest.write_bytes(payload)
    # The URL is unreachable: success proves no network access was attempted.
    assert ensure_download(closed_port_url("small.zip"), dest, digest, "small") == dest
    assert ensure_download(closed_port_url("small.zip"), dest, digest.upper(), "small") == dest  # hex in either case


def test_an_upper_case_expected_hash_is_accepted(archive, tmp_path):
    served, payload, digest = archive
    dest = tmp_path / "small.zip"
    with serve(served) as base:
        assert download(f"{base}/small.zip", dest, digest.upper(), "small") == dest
    assert dest.read_bytes() == payload


def test_ensure_download_replaces_a_corrupt_file(archive, tmp_path):
    served, payload, digest = archive
    dest = tmp_path / "small.zip"
    dest.write_bytes(payload[:-1] + b"!")  # a half-written or altered copy from an earlier run
    with serve(served) as base:
        assert ensure_download(f"{base}/small.zip", dest, digest.upper(), "small") == dest
    assert dest.read_bytes() == payload


def _truncating_server(announced: int, sent: bytes):
    """Announces `announced` bytes, sends `sent` and closes: a connection dropped mid-download."""
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Length", str(announced))
            self.end_headers()
            self.wfile.write(sent)
            self.wfile.flush()
            self.close_connection = True

        def log_message(self, *args):
            pass

    return serve_with(Handler)


def test_a_download_cut_short_without_a_hash_is_refused_and_discarded(tmp_path):
    dest = tmp_path / "out" / "small.zip"
    with _truncating_server(1000, b"x" * 400) as base, pytest.raises(HarnessError) as err:
        download(f"{base}/small.zip", dest, None, "small", offline_hint="hint")
    assert str(err.value) == f"cannot download {base}/small.zip (connection closed after 400 of 1000 bytes); hint"
    assert list(dest.parent.iterdir()) == []


def test_a_silent_server_times_out_with_a_plain_reason(tmp_path):
    with socket.socket() as listener:  # accepts connections (the kernel's backlog) but never answers
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        url = f"http://127.0.0.1:{listener.getsockname()[1]}/small.zip"
        with pytest.raises(HarnessError) as err:
            download(url, tmp_path / "out" / "small.zip", None, "small", offline_hint="hint", timeout_s=0.3)
    assert str(err.value) == f"cannot download {url} (timed out); hint"
    assert list((tmp_path / "out").iterdir()) == []


def test_an_empty_data_dir_option_falls_back_to_the_environment(monkeypatch, tmp_path):
    (tmp_path / "env").mkdir()
    monkeypatch.setenv(datasets.DATA_DIR_ENV, str(tmp_path / "env"))
    assert resolve_data_dir("") == tmp_path / "env"


def test_a_file_is_not_a_data_folder(monkeypatch, tmp_path):
    f = tmp_path / "data.zip"
    f.write_bytes(b"PK")
    with pytest.raises(HarnessError, match=r"--data-dir .*data.zip: no such folder"):
        resolve_data_dir(str(f))
    monkeypatch.setenv(datasets.DATA_DIR_ENV, str(f))
    with pytest.raises(HarnessError, match=r"ML4IOT_DATA_DIR=.*data.zip: no such folder"):
        resolve_data_dir()


def test_an_uncreatable_cache_folder_names_the_variable(monkeypatch, tmp_path):
    (tmp_path / "file").write_text("x")
    monkeypatch.setenv(datasets.CACHE_DIR_ENV, str(tmp_path / "file" / "cache"))
    with pytest.raises(HarnessError, match=r"cannot create cache folder .*file/cache .*; set ML4IOT_CACHE_DIR$"):
        cache_dir()


@pytest.fixture(scope="module")
def _cache_seen_by_a_module_fixture():
    return datasets.cache_dir()


def test_module_fixtures_build_into_the_tests_cache_not_the_users(_cache_seen_by_a_module_fixture, tmp_path_factory):
    """Module fixtures are set up before function-level ones: the isolation must already hold for them."""
    assert _cache_seen_by_a_module_fixture == tmp_path_factory.getbasetemp() / "cache"
