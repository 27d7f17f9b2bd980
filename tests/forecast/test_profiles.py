import numpy as np
import pytest

from harness.core.errors import HarnessError
from tasks.forecast import data, profiles, windows

STEP = np.timedelta64(10, "m")

DATES = """kind = "dates"
[train]
start = "2021-01-01"
end = "2021-01-02"
[val]
start = "2021-03-01"
end = "2021-03-01"
[test]
start = "2021-03-02"
end = "2021-03-03"
"""


def write(tmp_path, text, name="p.toml"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def series(times, values=None):
    times = np.asarray(times, dtype="datetime64[ns]")
    if values is None:  # column 0 = row index, so a window's values name its rows
        values = np.stack([np.arange(len(times)), np.zeros(len(times))], axis=1)
    return data.Series(values=np.asarray(values, np.float32), times=times, sources=[], duplicates=0)


def two_files():
    """'File' A: 300 rows from 2021-01-01 00:10 (to 01-03 02:00); 'file' B: from 2021-03-01 00:00 to
    03-03 18:30 with a hole on 03-01 and a duplicated timestamp on 03-02, as the station's files have."""
    a = np.datetime64("2021-01-01T00:10") + STEP * np.arange(300)
    b = list(np.datetime64("2021-03-01T00:00") + STEP * np.arange(400))
    b = b[:100] + b[103:]  # hole after 03-01 16:30: 3 rows missing (a 40-min step)
    b.insert(200, b[199])  # duplicate of the previous timestamp
    return series(np.concatenate([a, np.array(b)]))


# -- validation ------------------------------------------------------------------------------

@pytest.mark.parametrize("text, key", [
    ("colour = 1\n" + DATES, "'colour'"),
    (DATES.replace('end = "2021-01-02"', 'end = "2021-01-02"\nstep = 1'), "'train.step'"),
    (DATES.replace('start = "2021-01-01"', "start = 5"), "'train.start'"),
    (DATES.replace('start = "2021-01-01"', 'start = "2021-1-1"'), "'train.start'"),
    (DATES.replace('start = "2021-01-01"', "start = 2021-01-01T10:00:00"), "'train.start'"),
    (DATES.replace('start = "2021-03-01"\nend = "2021-03-01"', 'start = "2021-03-01"\nend = "2021-03-02"'), "'test.start'"),
    (DATES.replace('start = "2021-03-02"', 'start = "2020-12-01"'), "'train.start'"),  # test contains train
    (DATES.replace('end = "2021-01-02"', 'end = "2020-12-31"'), "'train.end'"),  # start > end
    (DATES.split("[test]")[0], "'test'"),
    ('kind = "fractions"\ntrain = 0.7\nval = nan\n', "'val' must be a finite number"),
    ('kind = "fractions"\ntrain = inf\nval = 0.2\n', "'train' must be a finite number"),
    ('kind = "fractions"\ntrain = "0.7"\nval = 0.2\n', "'train'"),
    ('kind = "fractions"\ntrain = 0.7\nval = 0.3\n', "'val'"),  # nothing left for test
    ('kind = "fractions"\ntrain = 0.7\nval = 0.2\n[test]\nstart = "2021-01-01"\n', "'test'"),
    ('kind = "weeks"\n', "'kind'"),
])
def test_bad_profiles_are_one_error_naming_file_and_key(tmp_path, text, key):
    path = write(tmp_path, text)
    with pytest.raises(HarnessError) as e:
        profiles.load(path)
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith(f"{path}:") and key in msg, msg


def test_unknown_name_lists_the_known_profiles():
    with pytest.raises(HarnessError, match="unknown evaluation profile 'nope'.*course.*full-season"):
        profiles.load("nope")


def test_shipped_profiles():
    course = profiles.load("course")
    assert course.kind == "fractions" and course.fractions == {"train": 0.7, "val": 0.2}
    full = profiles.load("full-season")
    assert full.kind == "dates" and full.files == ("mpi_roof_2017b.zip", "weather_2020.zip")
    assert [str(d) for r in full.ranges.values() for d in r] == [
        "2017-07-01", "2017-12-31", "2020-01-01", "2020-03-15", "2020-03-16", "2020-12-31"]


def test_range_without_data_names_the_key_and_the_covered_range(tmp_path):
    s = two_files()
    late = write(tmp_path, DATES.replace('start = "2021-03-02"\nend = "2021-03-03"', 'start = "2022-01-01"\nend = "2022-01-02"'))
    with pytest.raises(HarnessError, match=r"p\.toml: key 'test\.start'.*2021-01-01.*2021-03-03") as e:
        profiles.split(s, profiles.load(late), 6, 3)
    assert "\n" not in str(e.value)
    early = write(tmp_path, DATES.replace('start = "2021-01-01"\nend = "2021-01-02"', 'start = "2020-01-01"\nend = "2020-01-02"'))
    with pytest.raises(HarnessError, match=r"key 'train\.end'"):
        profiles.split(s, profiles.load(early), 6, 3)
    in_gap = write(tmp_path, DATES.replace('start = "2021-03-01"\nend = "2021-03-01"', 'start = "2021-02-01"\nend = "2021-02-10"'))
    with pytest.raises(HarnessError, match=r"key 'val\.start'"):
        profiles.split(s, profiles.load(in_gap), 6, 3)


def test_split_without_a_complete_window_is_an_error(tmp_path):
    # val (2021-03-01) has 141 rows, enough for a 110-row window but for the hole that cuts it 100 + 41
    with pytest.raises(HarnessError, match=r"p\.toml: key 'val' has no complete window: 141 rows in 2 continuous"):
        profiles.split(two_files(), profiles.load(write(tmp_path, DATES)), 60, 50)


# -- splitting -------------------------------------------------------------------------------

@pytest.mark.parametrize("n, i, o", [(20, 1, 1), (50, 1, 1), (1000, 6, 9), (1001, 6, 3), (420_551, 1, 1)])
def test_course_profile_reproduces_windows_build(n, i, o):
    rng = np.random.default_rng(n)
    values = rng.normal(size=(n, 2)).astype(np.float32)
    times = np.datetime64("2009-01-01T00:10") + STEP * np.arange(n)
    times[n // 3 :] += np.timedelta64(7, "D")  # a gap: the course's windows span it
    w, info = profiles.split(series(times, values), profiles.load("course"), i, o)
    ref = windows.build(values, i, o)
    assert w.bounds == ref.bounds == windows.split_bounds(n)
    for s in ("train", "val", "test"):
        np.testing.assert_array_equal(w.x[s], ref.x[s])
        np.testing.assert_array_equal(w.y[s], ref.y[s])
        a, b = ref.bounds[s]
        np.testing.assert_array_equal(w.times[s], times[a + i : b - o + 1])
        assert info.windows[s] == len(ref.x[s]) and info.rows[s] == b - a
    np.testing.assert_array_equal(w.mean, ref.mean)
    np.testing.assert_array_equal(w.std, ref.std)


def test_dates_windows_never_cross_a_split_or_a_gap(tmp_path):
    s = two_files()
    i, o = 6, 3
    w, info = profiles.split(s, profiles.load(write(tmp_path, DATES)), i, o)
    for name, (a, b) in w.bounds.items():
        rows = np.concatenate([w.x[name][..., 0], w.y[name][..., 0]], axis=1).astype(int)  # [m, i + o]
        assert (np.diff(rows, axis=1) == 1).all(), name
        assert rows.min() >= a and rows.max() < b, name
        steps = np.diff(s.times[rows], axis=1)
        assert ((steps == STEP) | (steps == np.timedelta64(0))).all(), name  # duplicates kept, no jump
        np.testing.assert_array_equal(w.times[name], s.times[rows[:, i]])  # time of the first target
    # train = file A's whole days 01-01 00:10..01-02 23:50 (287 rows; its 01-03 rows are in no split);
    # val = 03-01: 144 rows less the 3-row hole, in two segments (100 + 41 rows);
    # test = the rest of B, with the duplicated timestamp (which does not break a segment)
    assert info.rows == {"train": 287, "val": 141, "test": 400 - 3 + 1 - 141}
    assert [len(v) for v in info.segments.values()] == [1, 2, 1]
    assert info.windows == {"train": 287 - 8, "val": (100 - 8) + (41 - 8), "test": 257 - 8}
    assert info.gaps == {"train": 0, "val": 1, "test": 0}
    np.testing.assert_array_equal(w.mean, s.values[:287].mean(axis=0))  # statistics from train rows only
    line = profiles.describe(profiles.load(write(tmp_path, DATES)), info)
    assert "\n" not in line
    assert "p: train 2021-01-01..2021-01-02 (287 rows, 279 windows)" in line
    assert "val 2021-03-01..2021-03-01 (141 rows, 125 windows, 2 segments)" in line


def test_full_season_on_the_real_files(jena_2017b, jena_2020):
    s = data.load([jena_2017b, jena_2020])
    w, info = profiles.split(s, profiles.load("full-season"), 6, 6)
    expected = {"train": ("2017-07-01", "2018-01-01"), "val": ("2020-01-01", "2020-03-16"),
                "test": ("2020-03-16", "2021-01-01")}
    for name, (lo, hi) in expected.items():
        a, b = w.bounds[name]
        assert s.times[a] >= np.datetime64(lo) and s.times[b - 1] < np.datetime64(hi), name
        # the rows just outside the split are outside its days (the range took all it could)
        assert a == 0 or s.times[a - 1] < np.datetime64(lo), name
        assert b == s.rows or s.times[b] >= np.datetime64(hi), name
        assert (w.times[name] >= np.datetime64(lo)).all() and (w.times[name] < np.datetime64(hi)).all()
    # 184 days of 2017 H2 less the 00:00 row the station files under 2018-01-01; 75 days less
    # 2020-01-01 00:00; 291 days with a 90-minute hole (9 rows) and one duplicated timestamp
    assert info.rows == {"train": 184 * 144 - 1, "val": 75 * 144 - 1, "test": 291 * 144 - 9 + 1}
    assert info.windows == {"train": 26_495 - 11, "val": 10_799 - 11, "test": 41_896 - 2 * 11}
    assert info.covered["train"] == ("2017-07-01 00:10", "2017-12-31 23:50")
    assert 10 < w.mean[0] < 15 and 60 < w.mean[1] < 90  # °C and %RH, from 2017 H2 rows only
