"""The frontier plot: utility kept against protection, each defense at its strongest attacker."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from recsec_lib.arena.tables import FrontierTarget, worst_rows
from recsec_lib.common.plots import PlotFigure, new_figure, save_png

_MARKERS = {"none": "s", "paper": "D", "output": "o", "gro-control": "P", "gro": "^", "combo": "v", "null": "X",
            "watermark": "*"}


def frontier_figure(table: pd.DataFrame, target: FrontierTarget = FrontierTarget(), title: str = "",
                    measure: str = "ndcg") -> PlotFigure:
    """Utility kept (x) vs the fall at each arm's strongest attacker (y; ``measure`` ndcg or agr), 95% CIs.

    Points are numbered and the legend names them (names written beside the
    points overlap where two defenses coincide, which they often do: a
    defense that changes nothing sits on its reference). The shaded corner is
    the target (kept ≥ ``target.min_retention``, fall ≥ ``target.min_fall``).
    ``table``: every attacker row (``matrix.csv``). A plain ``Figure``.
    """
    key = "surrogate_test_ndcg10_drop" if measure == "ndcg" else "agr10_test_drop"
    rows = worst_rows(table, measure)
    fig = new_figure(8.0, 5.4)
    ax = fig.subplots()
    for number, (_, row) in enumerate(rows.iterrows(), start=1):
        x, y = 100 * float(row["retention_test"]), 100 * float(row[key])
        xerr = [[max(0.0, x - 100 * float(row["retention_test_low"]))],
                [max(0.0, 100 * float(row["retention_test_high"]) - x)]]
        yerr = [[max(0.0, y - 100 * float(row[key + "_low"]))], [max(0.0, 100 * float(row[key + "_high"]) - y)]]
        ax.errorbar([x], [y], xerr=xerr, yerr=yerr, fmt=_MARKERS.get(row["family"], "o"), capsize=2, alpha=0.85,
                    label=f"{number}: {row['arm']} ({row['attacker']})")
        ax.annotate(str(number), (x, y), textcoords="offset points", xytext=(4, 4 + 6 * (number % 2)), fontsize=7)
    ax.axhline(0, color="grey", linewidth=0.8)
    top = max(100.0, ax.get_ylim()[1])
    ax.fill_between([100 * target.min_retention, 101], 100 * target.min_fall, top, color="tab:green", alpha=0.12,
                    label=f"target: ≥{target.min_retention:.0%} kept, ≥{target.min_fall:.0%} fall")
    ax.set_xlabel("utility kept: served NDCG@10, % of the reference arm (test)")
    bottom = ax.get_ylim()[0]
    clipped = bottom < -100  # a fall below -100% is a surrogate twice as good: show the axis to there only
    ax.set_ylim(bottom=max(bottom, -100))
    what = "the surrogate's NDCG@10" if measure == "ndcg" else "Agr@10"
    ax.set_ylabel(f"protection: fall of {what}, %\n(strongest attacker, 95% CI"
                  + (", clipped at -100%)" if clipped else ")"))
    ax.set_title(title or "Defense frontier (upper right is better)", fontsize=9, wrap=True)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0)
    return fig


def plot_frontier(table: pd.DataFrame, path: str | os.PathLike, target: FrontierTarget = FrontierTarget(),
                  title: str = "", measure: str = "ndcg") -> Path:
    """Save ``frontier_figure`` as a PNG, atomically."""
    return save_png(frontier_figure(table, target, title, measure), path)


__all__ = ("frontier_figure", "plot_frontier")
