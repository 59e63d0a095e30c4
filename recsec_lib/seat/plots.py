"""The SEAT stage's own figure: what each zoo attacker pays (accounts) and gets (Agr@10).

Like ``recsec_lib.common.plots``, the function takes the table the stage saves
(``zoo.csv``) and returns a plain matplotlib ``Figure``: the stage saves it with
``plots.save_png`` and the notebook shows it, so no pyplot backend is switched.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from matplotlib.ticker import FuncFormatter

from recsec_lib.common.plots import PlotFigure, new_figure
from recsec_lib.seat.zoo import grid_max

# bars drawn per attacker, in this order (a detector the table lacks is left out)
ZOO_DETECTORS = ("seat-pairs", "seat", "seat+cap", "caps", "volume", "rate", "prada")
_HATCH = "////"  # an attacker flagged at every account count of the grid: the bar runs to the grid's end, hatched


def zoo_costs(table: pd.DataFrame, detectors: Sequence[str] = ZOO_DETECTORS) -> PlotFigure:
    """Accounts each zoo attacker needs per detector (log scale) beside its surrogate's Agr@10 (%).

    ``table``: ``zoo.csv`` (one row per attack; ``accounts_<detector>`` columns,
    ``agr10``, and ``queries`` when recorded). A missing count means the
    attacker was flagged at every account count of the grid: its bar runs to
    the largest count the grid tried for that attack (``seat.zoo.grid_max`` of
    its queries), hatched and marked "beyond", never drawn as 0 on a log axis.
    """
    attacks = table["attack"].tolist()
    shown = [d for d in detectors if f"accounts_{d}" in table]
    fig = new_figure(10.0, max(3.0, 0.09 * len(attacks) * max(1, len(shown)) + 2.2),
                     alt="Bar chart: the fewest accounts each zoo attacker needs to stay unflagged, per detector "
                     "(log scale), beside the Agr@10 (%) of the surrogate it trains.")
    left, right = fig.subplots(1, 2, sharey=True, width_ratios=(3, 1))
    height = 0.8 / max(1, len(shown))
    if "queries" in table:
        limits = [grid_max(int(q)) for q in table["queries"]]
    else:  # an older table: the largest count any attacker reached stands for the grid's end
        counts = table[[f"accounts_{d}" for d in shown]].to_numpy(dtype=float)
        limits = [float(np.nanmax(counts)) if np.isfinite(counts).any() else 1.0] * len(attacks)
    beyond_drawn = False
    for i, detector in enumerate(shown):
        values = table[f"accounts_{detector}"].to_numpy(dtype=float)
        offset = (i - (len(shown) - 1) / 2) * height  # the group of bars centred on the attack's tick
        positions = np.arange(len(attacks)) + offset
        within = ~np.isnan(values)
        bars = left.barh(positions[within], values[within], height=height, color=f"C{i}", label=detector)
        if (~within).any():
            ends = np.array(limits, dtype=float)[~within]
            left.barh(positions[~within], ends, height=height, color=bars.patches[0].get_facecolor()
                      if bars.patches else f"C{i}", alpha=0.35, hatch=_HATCH, edgecolor=f"C{i}")
            for y, x in zip(positions[~within], ends):
                left.annotate("beyond", (x, y), xytext=(2, 0), textcoords="offset points", va="center", fontsize=6)
            beyond_drawn = True
    left.set_xscale("log")
    left.set_xlim(left=0.5)  # a bar of 1 account stays visible
    left.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:,.0f}" if value >= 1 else f"{value:g}"))
    left.set_yticks(range(len(attacks)))
    left.set_yticklabels(attacks)
    left.invert_yaxis()
    left.set_xlabel("accounts needed to stay unflagged (log scale)"
                    + ("\nhatched: flagged at every count tried (more than the bar's end)" if beyond_drawn else ""))
    left.set_title("What staying unflagged costs", fontsize=10)
    left.grid(axis="x", alpha=0.3)
    fig.legend(*left.get_legend_handles_labels(), loc="outside lower center", ncols=min(len(shown), 7), fontsize=7,
               title="detector", title_fontsize=7)
    right.barh(range(len(attacks)), 100 * table["agr10"].astype(float), color="grey")
    right.set_xlabel("surrogate Agr@10, %\n(real test inputs)")
    right.set_title("What it buys", fontsize=10)
    right.set_xlim(0, 100)
    right.grid(axis="x", alpha=0.3)
    return fig  # constrained layout (new_figure): no tight_layout


def search_costs(best: pd.DataFrame) -> PlotFigure:
    """Per detector, the fewest accounts the attacker who chooses its parameters needs (log scale), labelled
    with the point that reached it.

    ``best``: ``search_best.csv`` (``seat.search.cheapest``: one row per detector with ``accounts_needed``,
    ``attacker``, ``setting``, ``split``, ``horizon_h`` and ``queries``). A missing count (flagged at every N
    tried) is drawn hatched to the grid's end for its queries and marked "beyond", never as 0.
    """
    detectors = best["detector"].tolist()
    values = best["accounts_needed"].to_numpy(dtype=float)
    ends = np.array([grid_max(int(q)) for q in best["queries"]], dtype=float)
    fig = new_figure(9.0, max(2.5, 0.35 * len(detectors) + 1.5),
                     alt="Bar chart: per detector, the fewest accounts an attacker that chooses its own parameters "
                     "needs to stay unflagged (log scale), with the attacker setting that reached it.")
    axis = fig.subplots()
    within = ~np.isnan(values)
    positions = np.arange(len(detectors))
    axis.barh(positions[within], values[within], color="C0")
    if (~within).any():
        axis.barh(positions[~within], ends[~within], color="C0", alpha=0.35, hatch=_HATCH, edgecolor="C0")
    for y, row in enumerate(best.itertuples(index=False)):
        x = values[y] if within[y] else ends[y]
        label = f"{row.attacker} {row.setting} · {row.split} · {row.horizon_h:g} h".replace("  ", " ")
        axis.annotate(("beyond · " if not within[y] else "") + label, (x, y), xytext=(3, 0),
                      textcoords="offset points", va="center", fontsize=6)
    axis.set_xscale("log")
    axis.set_xlim(left=0.5)
    axis.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:,.0f}" if value >= 1 else f"{value:g}"))
    axis.set_yticks(positions)
    axis.set_yticklabels(detectors)
    axis.invert_yaxis()
    axis.set_xlabel("accounts needed to stay unflagged, minimum over the attacker's parameters (log scale)")
    axis.set_title("The attacker who chooses: worst case per detector", fontsize=10)
    axis.grid(axis="x", alpha=0.3)
    return fig
