import zipfile

import numpy as np
import pytest

from harness.core.errors import HarnessError
from tasks.forecast import data as jena


def test_weather_2020_duplicates_and_gap_are_detected(jena_2020):
    s = jena.load([jena_2020])
    assert s.rows == 52_696
    assert s.duplicates == 1
    assert s.gaps == [("2020-05-29 09:30:00", 90)]  # 100 minutes between rows = 90 minutes missing
    assert s.sources[0].sha256 == "fe7698028e19d0325bad53cefa883d35d48362b457e62f0b958c9d51ffd134d7"
    assert s.values.dtype == np.float32 and s.values.shape == (52_696, 2)
    dropped = jena.load([jena_2020], duplicates="drop")
    assert dropped.rows == 52_695 and dropped.duplicates == 1


def test_station_half_year_format_cp1252_padded_crlf(jena_2017b):
    s = jena.load([jena_2017b])
    assert s.rows == 26_496 and s.duplicates == 0 and s.gaps == []
    assert str(s.times[0]) .startswith("2017-07-01T00:10")
    assert -30 < s.values[:, 0].min() < s.values[:, 0].max() < 45
    assert 0 < s.values[:, 1].min() and s.values[:, 1].max() <= 100


def test_files_are_joined_in_time_order_whatever_the_argument_order(jena_2017b, jena_2020):
    s = jena.load([jena_2020, jena_2017b])
    assert [f.path for f in s.sources] == [str(jena_2017b), str(jena_2020)]
    assert s.rows == 26_496 + 52_696
    assert (np.diff(s.times) > np.timedelta64(0)).sum() == s.rows - 1 - s.duplicates
    assert len(s.gaps) == 2  # the 2018-2019 hole between the files, and the 2020 gap


def test_plain_csv_is_accepted(tmp_path, jena_2017b):
    with zipfile.ZipFile(jena_2017b) as zf:
        raw = zf.read(zf.namelist()[0])
    p = tmp_path / "slice.csv"
    p.write_bytes(b"\r\n".join(raw.split(b"\r\n")[:101]) + b"\r\n")
    s = jena.load([p])
    assert s.rows == 100


def _csv(tmp_path, text, name="bad.csv"):
    p = tmp_path / name
    p.write_text(text)
    return p


def test_missing_column_names_file_and_column(tmp_path):
    p = _csv(tmp_path, "Date Time,T (degC)\n01.01.2009 00:10:00,1.0\n")
    with pytest.raises(HarnessError, match=r"bad\.csv.*missing column 'rh \(%\)'"):
        jena.load([p])


def test_missing_value_marker_is_an_error(tmp_path):
    p = _csv(tmp_path, "date,T (degC),rh (%)\n2020-01-01 00:10:00,1.0,80\n2020-01-01 00:20:00,-9999,80\n")
    with pytest.raises(HarnessError, match=r"bad\.csv.*1 rows with a missing T/RH value.*data row 2"):
        jena.load([p])


@pytest.mark.parametrize("row,message", [
    ("1e308,80", r"1 rows with 'T \(degC\)' outside \[-80, 60\], first at data row 2 \(2020-01-01 00:20:00: 1e\+308\)"),
    ("1.0,100.5", r"1 rows with 'rh \(%\)' outside \[0, 100\], first at data row 2"),
])
def test_values_no_weather_gives_are_refused_with_their_row(tmp_path, row, message):
    p = _csv(tmp_path, f"date,T (degC),rh (%)\n2020-01-01 00:10:00,1.0,80\n2020-01-01 00:20:00,{row}\n")
    with pytest.raises(HarnessError, match=r"bad\.csv: " + message):
        jena.load([p])



def test_a_text_cell_deep_in_a_long_file_gives_our_line_and_no_pandas_warning(tmp_path, jena_2020):
    """pandas reads a long, wide file in chunks and warns (on stderr) when one chunk holds text in a number column."""
    import warnings

    with zipfile.ZipFile(jena_2020) as z:
        lines = z.read(next(n for n in z.namelist() if n.endswith(".csv"))).decode("latin-1").splitlines()
    cells = lines[-3].split(",")
    cells[2] = "abc"  # T (degC), three rows before the end
    lines[-3] = ",".join(cells)
    p = _csv(tmp_path, "\n".join(lines) + "\n")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a warning would surface as an error here
        with pytest.raises(HarnessError, match=rf"bad\.csv: 1 rows with a missing T/RH value .* first at data row {len(lines) - 3}"):
            jena.load([p])

def test_bad_timestamp_and_bad_zip(tmp_path):
    p = _csv(tmp_path, "date,T (degC),rh (%)\n01/01/2020,1.0,80\n")
    with pytest.raises(HarnessError, match=r"bad\.csv.*'date'"):
        jena.load([p])
    z = tmp_path / "broken.zip"
    z.write_bytes(b"PK\x03\x04 not really")
    with pytest.raises(HarnessError, match=r"broken\.zip.*not a readable zip"):
        jena.load([z])
    with pytest.raises(HarnessError, match="not found"):
        jena.load([tmp_path / "absent.csv"])


def test_zip_with_two_csv_members_is_rejected(tmp_path):
    z = tmp_path / "two.zip"
    with zipfile.ZipFile(z, "w") as zf:
        zf.writestr("a.csv", "x")
        zf.writestr("b.csv", "y")
    with pytest.raises(HarnessError, match="expected one .csv member"):
        jena.load([z])


def test_a_header_only_file_is_one_clear_error(tmp_path):
    import pytest

    from harness.core.errors import HarnessError
    from tasks.forecast import data as jena

    p = tmp_path / "header.csv"
    p.write_text('"Date Time","p (mbar)","T (degC)","rh (%)"\n')
    with pytest.raises(HarnessError, match="header.csv: no data rows"):
        jena.read_file(p)


def test_rows_out_of_order_or_overlapping_files_name_the_files(tmp_path):
    head = "date,T (degC),rh (%)\n"
    p = _csv(tmp_path, head + "2020-01-01 00:20:00,1.0,80\n2020-01-01 00:10:00,1.0,80\n")
    with pytest.raises(HarnessError, match=r"bad\.csv: time goes backwards after 2020-01-01 00:20:00 \(data row 1\)"):
        jena.load([p])
    a = _csv(tmp_path, head + "2020-01-01 00:10:00,1.0,80\n2020-01-01 00:40:00,1.0,80\n", "a.csv")
    b = _csv(tmp_path, head + "2020-01-01 00:20:00,1.0,80\n2020-01-01 00:30:00,1.0,80\n", "b.csv")
    with pytest.raises(HarnessError, match=r"a\.csv and \S*b\.csv overlap in time"):
        jena.load([b, a])


def test_drop_keeps_the_first_row_of_each_duplicated_timestamp(tmp_path):
    head = "date,T (degC),rh (%)\n"
    p = _csv(tmp_path, head + "2020-01-01 00:10:00,1.0,80\n2020-01-01 00:20:00,2.0,81\n"
                              "2020-01-01 00:20:00,3.0,82\n2020-01-01 00:30:00,4.0,83\n")
    kept = jena.load([p])
    assert kept.rows == 4 and kept.duplicates == 1
    dropped = jena.load([p], duplicates="drop")
    assert dropped.rows == 3 and dropped.duplicates == 1 and dropped.gaps == []
    np.testing.assert_array_equal(dropped.values, [[1.0, 80.0], [2.0, 81.0], [4.0, 83.0]])


def test_files_that_meet_at_one_timestamp_are_joined_with_it_counted_as_a_duplicate(tmp_path):
    head = "date,T (degC),rh (%)\n"
    a = _csv(tmp_path, head + "2020-01-01 00:10:00,1.0,80\n2020-01-01 00:20:00,2.0,81\n", "a.csv")
    b = _csv(tmp_path, head + "2020-01-01 00:20:00,3.0,82\n2020-01-01 00:30:00,4.0,83\n", "b.csv")
    s = jena.load([b, a])
    assert [f.path for f in s.sources] == [str(a), str(b)]
    assert s.rows == 4 and s.duplicates == 1 and s.gaps == []
    np.testing.assert_array_equal(jena.load([b, a], duplicates="drop").values[:, 0], [1.0, 2.0, 4.0])
