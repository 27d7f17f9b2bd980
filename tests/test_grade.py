"""`grade`: a folder of team submissions -> leaderboards; a submission that crashes or hangs never stops the batch."""
import json
import shutil
from pathlib import Path

import pytest

from harness.core import task as tasks
from harness.core.errors import HarnessError
from harness.core.task import Context
from harness.pipeline import grade, run

TOY = Path(__file__).parent / "toy_task"


@pytest.fixture(scope="module")
def toy_artifact(tmp_path_factory):
    tasks._REGISTRY["toy"] = "tests.toy_task.task"
    out = tmp_path_factory.mktemp("toyrun")
    run.run_version(Context(data_dir=out, log=lambda m: None), "toy", "a", out_dir=out, constraints_dir=TOY / "constraints")
    yield out / "toy" / "version-a" / "toy" / "model.tflite.zlib"
    tasks._REGISTRY.pop("toy", None)


def _team(root: Path, name: str, file: str, blob: bytes, misbehave: str | None = None) -> None:
    (root / name).mkdir(parents=True)
    (root / name / file).write_bytes(blob)
    if misbehave:
        (root / name / "misbehave.txt").write_text(misbehave)


def test_a_crash_or_a_hang_fails_one_row_and_the_batch_goes_on(toy_artifact, tmp_path):
    blob = toy_artifact.read_bytes()
    subs = tmp_path / "subs"
    _team(subs, "A", "a.tflite.zlib", blob)
    _team(subs, "B", "b.tflite.zlib", blob, "segfault")  # kills the measuring process, as an interpreter bug can
    _team(subs, "C", "c.tflite.zlib", blob, "hang")
    _team(subs, "D", "d.tflite", b"not a flatbuffer at all")
    _team(subs, "E", "e.tflite.zlib", blob)  # measured by the fresh worker started after the crash and the hang
    (subs / "F").mkdir()  # a team that sent nothing
    ctx = Context(data_dir=tmp_path, log=lambda m: None)
    res = grade.grade(ctx, subs, "toy", None, tmp_path / "out", constraints_dir=TOY / "constraints", timeout_s=5)
    board = res["boards"][0]
    rows = {r["team"]: r for r in board["rows"]}
    assert rows["A"]["rep"] and rows["E"]["rep"], (rows["A"].get("reason"), rows["E"].get("reason"))
    assert rows["A"]["rep"]["passed"] and rows["E"]["rep"]["passed"]
    assert rows["A"]["rank"] == rows["E"]["rank"] == 1  # the same file: a tie
    assert rows["B"]["rep"] is None and "crashed" in rows["B"]["reason"] and "SIGSEGV" in rows["B"]["reason"]
    assert rows["C"]["rep"] is None and "no answer within 5 s" in rows["C"]["reason"]
    assert rows["D"]["rep"] is None and "does not load" in rows["D"]["reason"]
    assert rows["F"]["rep"] is None and "no model file" in rows["F"]["reason"]
    assert [r["team"] for r in board["rows"]][:2] == ["A", "E"]  # measured rows first
    folder = tmp_path / "out" / "toy" / "grade-subs"
    assert sorted(p.name for p in folder.iterdir()) == ["leaderboard-a-toy.json", "leaderboard-a-toy.md", "leaderboard-a-toy.tex"]
    md = (folder / "leaderboard-a-toy.md").read_text()
    assert "FAIL: the model crashed the measuring process (killed by SIGSEGV)" in md
    assert json.loads((folder / "leaderboard-a-toy.json").read_text())["rows"][0]["rep"]["passed"]


def test_ranking_follows_the_editions_rule(toy_artifact, tmp_path):
    """Every limit met first; then the task's objectives (here: the worst metric/limit ratio, then size)."""
    import zlib

    blob = toy_artifact.read_bytes()
    raw = zlib.decompress(blob)
    subs = tmp_path / "subs"
    _team(subs, "small", "m.tflite.zlib", blob)
    _team(subs, "big", "m.tflite", raw)  # same model, larger file: same MAE, ranked after
    ctx = Context(data_dir=tmp_path, log=lambda m: None)
    board = grade.grade(ctx, subs, "toy", None, tmp_path / "out", constraints_dir=TOY / "constraints")["boards"][0]
    assert [r["team"] for r in board["rows"]] == ["small", "big"] and [r["rank"] for r in board["rows"]] == [1, 2]
    assert "then the worst metric / limit ratio (lower first), then Size of the submitted file (lower first)" in board["rank_rule"]


def test_a_file_name_that_says_no_version_fails_with_the_expected_pattern(tmp_path):
    subs = tmp_path / "subs"
    _team(subs, "G", "model.tflite", b"x")
    found = grade.discover(subs, "ml4iot-2022", ["a", "b"], grade.constraints.CONSTRAINTS_DIR)
    assert found[0].problem and "<team>_<task>_<version>" in found[0].problem
    _team(subs, "H", "H_kws_z.tflite", b"x")
    assert "expected" in grade.discover(subs, "ml4iot-2022", ["a"], grade.constraints.CONSTRAINTS_DIR)[1].problem
    with pytest.raises(HarnessError, match="not a folder"):
        grade.grade(Context(data_dir=tmp_path), tmp_path / "missing", "toy", None, tmp_path / "out",
                    constraints_dir=TOY / "constraints")
    shutil.rmtree(subs)



def test_one_version_picked_from_several_grades_its_own_files_and_no_unnamed_one(tmp_path):
    """--version c on a three-version suite: a file named for version a belongs to a's board, and a file that
    names no version is not taken for c (only a suite with one version and one task may leave it out)."""
    subs = tmp_path / "subs"
    _team(subs, "T2", "T2_kws_a.tflite", b"x")
    (subs / "T2" / "T2_kws_x.tflite.zlib").write_bytes(b"x")
    _team(subs, "T3", "model.tflite.zlib", b"x")
    _team(subs, "T4", "T4_kws_c.tflite.zlib", b"x")
    found = grade.discover(subs, "ml4iot-2022", ["c"], grade.constraints.CONSTRAINTS_DIR)
    assert [s.path.name for s in found] == ["T2_kws_x.tflite.zlib", "model.tflite.zlib", "T4_kws_c.tflite.zlib"]
    assert all("<team>_<task>_<version>" in s.problem for s in found[:2])
    assert (found[2].task, found[2].version) == ("kws", "c")

def test_per_limit_grading_ranks_by_limits_met_before_the_objectives():
    """An edition that grades one point per limit ranks a file meeting one limit of two above one meeting none, even
    when the second is better on the objectives; under all-limits both fail alike and the objectives decide."""
    tasks._REGISTRY["toy"] = "tests.toy_task.task"
    try:
        task = tasks.get("toy")
        section = {"max_mae": 0.5, "max_size_bytes": 5000}

        def rep(mae, size):
            return {"passed": False, "checks": [{"metric": "mae", "measured": mae, "passed": mae < 0.5},
                                                {"metric": "size_bytes", "measured": size, "passed": size < 5000}]}
        one_limit, no_limit = rep(0.9, 4000), rep(0.6, 6000)  # the second is closer to the MAE limit
        per = [grade._rank_key(task, section, r, "per-limit") for r in (one_limit, no_limit)]
        every = [grade._rank_key(task, section, r, "all-limits") for r in (one_limit, no_limit)]
        assert per[0] < per[1] and every[1] < every[0]
        assert grade.rank_rule(task, section, "per-limit").startswith("points (one per limit met")
    finally:
        tasks._REGISTRY.pop("toy", None)


def test_discover_reads_the_version_in_either_case_skips_hidden_files_and_refuses_a_task_the_version_lacks(tmp_path):
    subs = tmp_path / "subs"
    _team(subs, "G2", "Group2_kws_B.tflite.zlib", b"x")  # the version letter in upper case
    (subs / "G2" / "._Group2_kws_B.tflite.zlib").write_bytes(b"macOS metadata")  # a hidden copy is not a submission
    _team(subs, "G3", "Group3_th_c.tflite", b"x")  # version c has no forecaster
    found = grade.discover(subs, "ml4iot-2022", ["a", "b", "c"], grade.constraints.CONSTRAINTS_DIR)
    assert [(s.team, s.path.name) for s in found] == [("G2", "Group2_kws_B.tflite.zlib"), ("G3", "Group3_th_c.tflite")]
    assert (found[0].task, found[0].version) == ("kws", "b")  # its only problem: the args file it did not send
    assert "no preprocessing arguments for Group2_kws_B.tflite.zlib" in found[0].problem
    assert found[1].problem == "ml4iot-2022 version c has no forecast task"


def _rep(mae: float, size: int, assumptions=()) -> dict:
    checks = [{"metric": "mae", "measured": mae, "measured_text": f"{mae:.4f}", "passed": mae <= 0.5},
              {"metric": "size_bytes", "measured": size, "measured_text": f"{size:,}", "passed": size <= 5000}]
    return {"passed": all(c["passed"] for c in checks), "checks": checks, "assumptions": list(assumptions)}


def test_a_leaderboard_ranks_measured_files_marks_misses_and_keeps_paths_inside_the_graded_folder(toy, tmp_path):
    root = tmp_path / "subs"
    subs = [grade.Submission("A", root / "A" / "a.tflite"), grade.Submission("B", root / "B" / "b.tflite"),
            grade.Submission("C", root / "C" / "c.tflite")]
    results = [{"ok": True, "rep": _rep(0.2, 900, [f"inputs as {root / 'A' / 'args.json'} defines them"]), "seconds": 1.0},
               {"ok": True, "rep": _rep(0.7, 900), "seconds": 1.0},
               {"ok": False, "reason": f"{root.resolve() / 'C' / 'c.tflite'}: cannot unpack | bad", "seconds": 0.1}]
    board = grade.leaderboard("toy", "a", "toy", subs, results, TOY / "constraints", root)
    rows = {r["team"]: r for r in board["rows"]}
    assert [r["team"] for r in board["rows"]] == ["A", "B", "C"]
    assert (rows["A"]["rank"], rows["B"]["rank"], rows["C"]["rank"]) == (1, 2, None)  # an unmeasured file has no rank
    assert rows["C"]["reason"] == "subs/C/c.tflite: cannot unpack | bad"  # no grader's absolute path
    assert rows["A"]["rep"]["assumptions"] == ["inputs as subs/A/args.json defines them"]
    md = grade.board_markdown(board, "subs")
    lines = {line.split("|")[2].strip(): line for line in md.splitlines() if line.startswith("| ") and "Team" not in line}
    assert [c.strip() for c in lines["A"].split("|")[1:3]] == ["1", "A"] and " ✗" not in lines["A"]
    assert "0.7000 ✗" in lines["B"] and "900 ✗" not in lines["B"]  # the missed limit, and only it, is marked
    assert lines["C"].strip().endswith("| FAIL: subs/C/c.tflite: cannot unpack \\| bad |")  # the '|' does not split the cell
    assert [c.strip() for c in lines["C"].split("|")[1:3]] == ["—", "C"]
    assert len(lines["C"].split("|")) == len(lines["A"].split("|")) + 1  # one escaped '|', no extra cell
    assert "- A (`a.tflite`): inputs as subs/A/args.json defines them." in md
    assert "- Submissions: `subs` (3 file(s)); constraints " in md
    # an edition graded per limit counts the limits that apply (a reported-only row is no point to miss)
    rows["B"]["rep"]["checks"].append({"metric": "latency_ms", "measured": 1.0, "measured_text": "1.0", "passed": None})
    assert grade._cells(dict(board, grading="per-limit"), rows["B"])[-1] == "FAIL (1/2 points)"
    assert grade._cells(dict(board, grading="per-limit"), rows["A"])[-1] == "PASS (2/2 points)"
    assert grade._cells(board, rows["A"])[-1] == "PASS"
    # a PASS whose interval reaches a limit keeps its mark on the board, as in the check's own table
    rows["A"]["rep"]["checks"][0]["marginal"] = True
    assert grade._cells(board, rows["A"])[-1] == "PASS, marginal"
    assert grade._cells(dict(board, grading="per-limit"), rows["A"])[-1] == "PASS, marginal (2/2 points)"
    assert "*marginal*: a PASS whose 95 % interval reaches a limit" in grade.board_markdown(board, "subs")
    rows["B"]["rep"]["checks"][0]["marginal"] = True  # only a PASS is marginal
    assert grade._cells(board, rows["B"])[-1] == "FAIL"


def test_a_link_to_nothing_and_a_bad_flags_file_are_named_on_their_rows(tmp_path):
    subs = tmp_path / "subs"
    (subs / "G1").mkdir(parents=True)
    (subs / "G1" / "Group1_kws_a.tflite").symlink_to(tmp_path / "gone.tflite")
    _team(subs, "G2", "Group2_kws_b.tflite", b"x")
    (subs / "G2" / "kws_flags.txt").write_text("--mfcc --rate eight")
    found = grade.discover(subs, "ml4iot-2022", ["a", "b"], grade.constraints.CONSTRAINTS_DIR)
    assert [(s.team, s.path.name) for s in found] == [("G1", "Group1_kws_a.tflite"), ("G2", "Group2_kws_b.tflite")]
    assert found[0].problem == f"Group1_kws_a.tflite is a link to {tmp_path / 'gone.tflite'}, which is not there"
    assert found[1].problem.startswith(f"{subs / 'G2' / 'kws_flags.txt'}: not the flags of kws_latency.py (")
    assert "invalid int value: 'eight'" in found[1].problem


def test_the_grade_command_counts_passes_and_marginal_ones(tmp_path, monkeypatch, capsys):
    from harness import cli

    rows = [{"rep": {"passed": True, "checks": [{"marginal": True}, {"marginal": False}]}},  # marginal on one limit
            {"rep": {"passed": True, "checks": [{}]}},
            {"rep": {"passed": False, "checks": [{"marginal": True}]}}, {"rep": None}]  # only a PASS is marginal
    monkeypatch.setenv("HARNESS_VERBOSE", "1")
    monkeypatch.setattr(grade, "grade", lambda *a, **k: {"folder": "out", "boards": [
        {"version": "a", "task": "kws", "rows": rows}, {"version": "b", "task": "kws", "rows": rows[1:]}]})
    assert cli.main(["grade", str(tmp_path), "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "version a (kws): 2/4 submission(s) pass (1 marginal)\n" in out
    assert "version b (kws): 1/3 submission(s) pass\n" in out
