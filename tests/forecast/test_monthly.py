import numpy as np
import pytest

from tasks.forecast import monthly


def synthetic():
    """Windows in three months; the error per month and feature is known by construction."""
    times = np.array(["2020-01-31T23:50", "2020-01-15T12:00", "2020-02-01T00:00", "2020-02-10T00:00",
                      "2020-02-20T00:00", "2020-04-01T00:10"], dtype="datetime64[ns]")
    month = np.array([0, 0, 1, 1, 1, 2])  # 01, 01, 02, 02, 02, 04: a window counts in its first target's month
    y = np.random.default_rng(0).normal(size=(6, 3, 2)).astype(np.float32) * 10
    model_err = np.array([[0.5, 2.0], [0.25, 1.0], [1.5, 4.0]])[month]  # [window, feature]
    pers_err = np.array([[1.0, 3.0], [2.0, 6.0], [0.5, 0.5]])[month]
    pred = y + model_err[:, None, :] * np.array([1, -1, 1])[None, :, None]  # sign varies: MAE, not ME
    pers = y - pers_err[:, None, :]
    return pred.astype(np.float32), pers.astype(np.float32), y, times


def test_by_month_known_values():
    rows = monthly.by_month(*synthetic())
    assert [r["month"] for r in rows] == ["2020-01", "2020-02", "2020-04"]
    assert [r["windows"] for r in rows] == [2, 3, 1]
    got = np.array([[r["mae_t_degc"], r["mae_rh_pct"], r["persistence_mae_t_degc"], r["persistence_mae_rh_pct"]]
                    for r in rows])
    np.testing.assert_allclose(got, [[0.5, 2.0, 1.0, 3.0], [0.25, 1.0, 2.0, 6.0], [1.5, 4.0, 0.5, 0.5]], atol=1e-5)


def test_by_month_weights_match_the_overall_mae():
    pred, pers, y, times = synthetic()
    rows = monthly.by_month(pred, pers, y, times)
    overall = np.abs(pred.astype(np.float64) - y).mean(axis=(0, 1))
    pooled = sum(r["windows"] * np.array([r["mae_t_degc"], r["mae_rh_pct"]]) for r in rows) / len(y)
    np.testing.assert_allclose(pooled, overall, atol=1e-6)


def test_by_month_rejects_mismatched_lengths():
    pred, pers, y, times = synthetic()
    with pytest.raises(ValueError, match="lengths differ"):
        monthly.by_month(pred, pers, y, times[:-1])


def test_markdown_table_has_units_and_one_row_per_month():
    text = monthly.markdown(monthly.by_month(*synthetic()))
    lines = text.splitlines()
    assert lines[0].startswith("| Month") and "MAE(T) (°C)" in lines[0] and "MAE(RH) (%RH)" in lines[0]
    assert "Persistence MAE(T) (°C)" in lines[0] and "Persistence MAE(RH) (%RH)" in lines[0]
    assert len(lines) == 2 + 3
    cells = [c.strip() for c in lines[3].strip("|").split("|")]
    assert cells == ["2020-02", "3", "0.250", "1.000", "2.000", "6.000"]


def test_plot_writes_a_png(tmp_path):
    import matplotlib.image

    rows = monthly.by_month(*synthetic())
    plain = monthly.plot(rows, None, tmp_path / "plain.png", "test error by month")
    limited = monthly.plot(rows, {"max_mae_t_degc": 0.7, "max_mae_rh_pct": 2.5, "max_size_bytes": 2000},
                           tmp_path / "out" / "limits.png", "test error by month")
    for path in (plain, limited):
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        img = matplotlib.image.imread(path)
        assert img.shape[0] > 300 and img.shape[1] > 300
    assert plain.read_bytes() != limited.read_bytes()  # same title: only the limit lines differ
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["limits.png", "out", "plain.png"]  # no temp files left


def test_persistence_mae_per_month_is_the_mean_over_that_months_windows():
    pred, pers, y, times = synthetic()
    pers = y.copy()
    pers[2:5, :, 0] -= np.array([1.0, 2.0, 6.0])[:, None]  # the three February windows: 1, 2 and 6 °C off
    rows = monthly.by_month(pred, pers, y, times)
    feb = next(r for r in rows if r["month"] == "2020-02")
    assert feb["persistence_mae_t_degc"] == pytest.approx(3.0) and feb["persistence_mae_rh_pct"] == pytest.approx(0.0)


def test_by_month_rejects_a_persistence_forecast_of_another_length():
    pred, pers, y, times = synthetic()
    with pytest.raises(ValueError, match="persistence 5"):
        monthly.by_month(pred, pers[:-1], y, times)


def test_markdown_window_counts_have_thousands_separators():
    row = dict(monthly.by_month(*synthetic())[0], windows=12345)
    cells = [c.strip() for c in monthly.markdown([row]).splitlines()[2].strip("|").split("|")]
    assert cells[1] == "12,345"


def test_each_panel_draws_its_own_limit_and_keeps_it_below_the_frame(monkeypatch):
    from matplotlib.axes import Axes

    seen = {}  # axes -> {"limit": ..., "top": ...}
    real_axhline, real_set_ylim = Axes.axhline, Axes.set_ylim

    def axhline(ax, y, **kw):
        seen.setdefault(ax, {})["limit"] = y
        return real_axhline(ax, y, **kw)

    def set_ylim(ax, *args, **kw):
        if len(args) == 2 and not kw:  # the plot's own call (matplotlib's calls pass a pair and `auto`)
            seen.setdefault(ax, {})["top"] = args[1]
        return real_set_ylim(ax, *args, **kw)

    monkeypatch.setattr(Axes, "axhline", axhline)
    monkeypatch.setattr(Axes, "set_ylim", set_ylim)
    rows = monthly.by_month(*synthetic())  # largest T error 2.0 (persistence), largest RH error 6.0
    monthly.png(rows, {"max_mae_t_degc": 3.0, "max_mae_rh_pct": 2.5}, "test error by month")
    panels = {ax.get_ylabel(): figures for ax, figures in seen.items()}
    assert panels["MAE(T) (°C)"].get("limit") == 3.0 and panels["MAE(RH) (%RH)"].get("limit") == 2.5, panels
    assert panels["MAE(T) (°C)"]["top"] == pytest.approx(3.0 * 1.12)  # the limit is the highest value on the T panel
    assert panels["MAE(RH) (%RH)"]["top"] == pytest.approx(6.0 * 1.12)
