"""What a build records of the machine that made it: enough to tell whether another machine should give its bytes."""
import json

import pytest

from harness.toolkit import hostinfo
from tests.test_reliability import _run

CPUINFO = """processor\t: 0
vendor_id\t: AuthenticAMD
cpu family\t: 25
model\t\t: 17
model name\t: AMD EPYC
stepping\t: 1
cache size\t: 1024 KB
flags\t\t: fpu sse4_2 avx avx2

processor\t: 1
vendor_id\t: GenuineIntel
cpu family\t: 6
model\t\t: 143
stepping\t: 8
"""


def _cache(root, index, level, kind, size):
    d = root / f"index{index}"
    d.mkdir(parents=True)
    for name, value in (("level", level), ("type", kind), ("size", size)):
        (d / name).write_text(f"{value}\n")


def test_the_cpu_identity_is_the_first_processors_family_model_stepping_and_caches(tmp_path):
    (tmp_path / "cpuinfo").write_text(CPUINFO)
    caches = tmp_path / "cache"
    for i, (level, kind, size) in enumerate([(1, "Data", "32K"), (1, "Instruction", "32K"), (2, "Unified", "1024K"),
                                             (3, "Unified", "32768K")]):
        _cache(caches, i, level, kind, size)
    got = hostinfo.cpu_identity.__wrapped__(tmp_path / "cpuinfo", caches)
    assert got == {"vendor": "AuthenticAMD", "family": "25", "model": "17", "stepping": "1",
                   "cache_kib": {"L1d": 32, "L1i": 32, "L2": 1024, "L3": 32768}}
    # unreadable sources give what could be read, never an error
    assert hostinfo.cpu_identity.__wrapped__(tmp_path / "missing", tmp_path / "none") == {}


def test_every_build_records_the_cpu_that_made_it_and_the_table_names_it(tmp_path, jena_slice):  # noqa: F811
    out = tmp_path / "results"
    _run(tmp_path, jena_slice, out)
    version = out / "ml4iot-2022" / "version-a"
    seed = json.loads((version / "report.json").read_text())["tasks"][0]["seeds"][0]
    built = seed["built_on"]
    assert built["cpu_id"] == hostinfo.cpu_identity() and built["cpu_flags"] == hostinfo.cpu_flags()
    assert built["env"] == hostinfo.numeric_pins() and built["versions"]["tensorflow"]
    assert built["openblas_core"] == hostinfo.openblas_core()
    table = (version / "report.md").read_text()
    line = next(x for x in table.splitlines() if x.startswith("- Built on: "))
    cpu_id = hostinfo.cpu_identity()
    if "family" in cpu_id:  # a Linux host
        assert f"family {cpu_id['family']} model {cpu_id['model']}" in line
    if built["openblas_core"]:
        assert line.endswith(f"; numpy's OpenBLAS kernels: {built['openblas_core']}.")


def test_numpy_runs_the_openblas_kernels_the_harness_pins():
    """OPENBLAS_CORETYPE acts only if set before numpy loads: under pytest too (a plugin or an ini filter that
    imports numpy first would silently drop the pin, and tests and benchmarks would time other kernels)."""
    import os

    pinned = os.environ.get("OPENBLAS_CORETYPE")
    core = hostinfo.openblas_core()
    if not pinned or core is None:
        pytest.skip("no OpenBLAS pin on this host, or numpy's OpenBLAS does not report its kernels")
    assert core.lower() == pinned.lower()


def test_cache_sizes_not_in_kib_and_unreadable_entries_are_left_out(tmp_path):
    (tmp_path / "cpuinfo").write_text(CPUINFO)
    caches = tmp_path / "cache"
    _cache(caches, 0, 1, "Data", "48K")
    _cache(caches, 1, 2, "Unified", "2M")  # not the kernel's KiB form: not guessed at
    (caches / "index2").mkdir()
    (caches / "index2" / "level").write_text("3\n")
    (caches / "index2" / "type").write_text("Unified\n")
    (caches / "index2" / "size").mkdir()  # unreadable (not merely missing)
    got = hostinfo.cpu_identity.__wrapped__(tmp_path / "cpuinfo", caches)
    assert got["cache_kib"] == {"L1d": 48}


def test_arm_cpus_list_their_features_under_another_key(monkeypatch):
    monkeypatch.setattr(hostinfo, "_cpuinfo", lambda path=None: {"Features": "fp asimd evtstrm sve"})
    assert hostinfo.cpu_flags.__wrapped__() == ["asimd", "sve"]
    monkeypatch.setattr(hostinfo, "_cpuinfo", lambda path=None: {"flags": "fpu sse4_2 avx avx2 fma"})
    assert hostinfo.cpu_flags.__wrapped__() == ["sse4_2", "avx", "avx2", "fma"]


def test_a_process_of_another_user_counts_as_alive(monkeypatch):
    """Signal 0 to another user's process is refused, but the process runs: its folders must be left alone."""
    import os

    def refused(pid, sig):
        raise PermissionError(1, "Operation not permitted")

    def gone(pid, sig):
        raise ProcessLookupError(3, "No such process")

    assert hostinfo.pid_alive(os.getpid())
    monkeypatch.setattr(os, "kill", refused)  # pid_alive imports os itself
    assert hostinfo.pid_alive(12345) is True
    monkeypatch.setattr(os, "kill", gone)
    assert hostinfo.pid_alive(12345) is False


def test_the_host_line_names_cpu_machine_cores_and_system():
    h = hostinfo.host()
    assert hostinfo.host_line() == (f"{h['cpu']} ({h['machine']}, {h['cores']} cores, {h['system']}), "
                                    f"Python {h['python']}, 1 interpreter thread")
    assert h["cores"] >= 1 and h["system"].strip() and h["python"].count(".") == 2
