"""Test error by calendar month: does the forecaster (and persistence) do worse in some seasons?

A window belongs to the month of its first target row (profiles.split gives that time per window).
MAE per month is the mean over that month's windows and steps, as windows.mae_per_feature.
"""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from harness.toolkit import atomic

# key -> header; units in the header so the table cells stay plain numbers
HEADERS = {
    "month": "Month",
    "windows": "Windows",
    "mae_t_degc": "MAE(T) (°C)",
    "mae_rh_pct": "MAE(RH) (%RH)",
    "persistence_mae_t_degc": "Persistence MAE(T) (°C)",
    "persistence_mae_rh_pct": "Persistence MAE(RH) (%RH)",
}
# constraint keys (constraints/*.toml), so a suite's limits section can be passed as it is
LIMIT_KEYS = ("max_mae_t_degc", "max_mae_rh_pct")


def by_month(pred: np.ndarray, persistence_pred: np.ndarray, y: np.ndarray, times: np.ndarray) -> list[dict]:
    """pred, persistence_pred, y: [m, K, 2] (°C, %RH); times: [m] first target time -> one dict per month."""
    if not (len(pred) == len(persistence_pred) == len(y) == len(times)):
        raise ValueError(f"lengths differ: pred {len(pred)}, persistence {len(persistence_pred)}, "
                         f"y {len(y)}, times {len(times)}")
    truth = y.astype(np.float64)
    err = np.abs(pred.astype(np.float64) - truth).mean(axis=1)  # [m, 2]: every window has K steps
    perr = np.abs(persistence_pred.astype(np.float64) - truth).mean(axis=1)
    months = np.asarray(times).astype("datetime64[M]")
    rows = []
    for month in np.unique(months):
        sel = months == month
        m, p = err[sel].mean(axis=0), perr[sel].mean(axis=0)
        rows.append({"month": str(month), "windows": int(sel.sum()),
                     "mae_t_degc": float(m[0]), "mae_rh_pct": float(m[1]),
                     "persistence_mae_t_degc": float(p[0]), "persistence_mae_rh_pct": float(p[1])})
    return rows


def markdown(rows: list[dict]) -> str:
    from tabulate import tabulate

    body = [[r["month"], f"{r['windows']:,}", *(f"{r[k]:.3f}" for k in list(HEADERS)[2:])] for r in rows]
    return tabulate(body, headers=list(HEADERS.values()), tablefmt="github",
                    disable_numparse=True, colalign=("left",) + ("right",) * 5)


def plot(rows: list[dict], limits: dict | None, path: str | Path, title: str) -> Path:
    """Write the PNG of `png` to `path` (atomically)."""
    return atomic.write_bytes(path, png(rows, limits, title))


def png(rows: list[dict], limits: dict | None, title: str) -> bytes:
    """Two panels (T, RH): model and persistence MAE per month; a limit, when given, as a line."""
    import matplotlib

    matplotlib.use("Agg")  # no display on the measuring hosts
    import matplotlib.pyplot as plt

    limits = limits or {}
    x = np.arange(len(rows))
    fig, axes = plt.subplots(2, 1, figsize=(8, 6), dpi=110, sharex=True)
    for ax, (key, label, limit_key) in zip(axes, [("mae_t_degc", "MAE(T) (°C)", LIMIT_KEYS[0]),
                                                  ("mae_rh_pct", "MAE(RH) (%RH)", LIMIT_KEYS[1])]):
        ax.plot(x, [r[key] for r in rows], "o-", color="tab:blue", label="model")
        ax.plot(x, [r["persistence_" + key] for r in rows], "s--", color="tab:gray", label="persistence")
        if limits.get(limit_key) is not None:
            ax.axhline(limits[limit_key], color="tab:red", lw=1, label=f"limit {limits[limit_key]:g}")
        ax.set_ylabel(label)
        # headroom so a limit at the top of the data stays visible, not on the frame
        top = max([r[key] for r in rows] + [r["persistence_" + key] for r in rows] + [limits.get(limit_key) or 0])
        ax.set_ylim(0, top * 1.12 or 1)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="best")
    axes[-1].set_xticks(x, [r["month"] for r in rows], rotation=45, ha="right")
    axes[-1].set_xlabel("month of the window's first target (test split)")
    axes[0].set_title(title)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()
