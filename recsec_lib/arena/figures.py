"""The frontier plot (utility kept against protection, each defense at its strongest attacker) and GRO's curve."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from recsec_lib.arena.tables import FrontierTarget, worst_rows
from recsec_lib.common.plots import PlotFigure, new_figure, save_png, wrapped

_MARKERS = {"none": "s", "paper": "D", "output": "o", "gro-control": "P", "gro": "^", "combo": "v", "null": "X",
            "watermark": "*", "control-replica": "p", "control-output": "h"}


def frontier_figure(table: pd.DataFrame, target: FrontierTarget = FrontierTarget(), title: str = "",
                    measure: str = "ndcg") -> PlotFigure:
    """Utility kept (x) vs the fall at each arm's strongest attacker (y; ``measure`` ndcg or agr), 95% CIs.

    Points are numbered and the legend beside the axes names them (names
    written beside the points overlap where two defenses coincide, which they
    often do: a defense that changes nothing sits on its reference); points
    that coincide on the page share one label ("1, 4"). The shaded corner is
    the target (kept ≥ ``target.min_retention``, fall ≥ ``target.min_fall``).
    A long ``title`` is wrapped to the figure's width (lines after the first
    are a smaller subtitle). ``table``: every attacker row (``matrix.csv``).
    A plain ``Figure``.
    """
    key = "surrogate_test_ndcg10_drop" if measure == "ndcg" else "agr10_test_drop"
    what = "the surrogate's NDCG@10" if measure == "ndcg" else "Agr@10"
    rows = worst_rows(table, measure)
    width = 9.0
    fig = new_figure(width, 5.6, alt=f"Scatter plot: each defense at its strongest attacker, utility kept (% of the "
                     f"reference's NDCG@10, x) against the fall of {what} (%, y), with 95% intervals; points numbered "
                     "as in the legend.")
    ax = fig.subplots()
    points = []
    for number, (_, row) in enumerate(rows.iterrows(), start=1):
        x, y = 100 * float(row["retention_test"]), 100 * float(row[key])
        xerr = [[max(0.0, x - 100 * float(row["retention_test_low"]))],
                [max(0.0, 100 * float(row["retention_test_high"]) - x)]]
        yerr = [[max(0.0, y - 100 * float(row[key + "_low"]))], [max(0.0, 100 * float(row[key + "_high"]) - y)]]
        ax.errorbar([x], [y], xerr=xerr, yerr=yerr, fmt=_MARKERS.get(row["family"], "o"), capsize=2, alpha=0.85,
                    label=f"{number}: {row['arm']} ({row['attacker']})")
        points.append((x, y, number))
    ax.axhline(0, color="grey", linewidth=0.8)
    top = max(100.0, ax.get_ylim()[1])
    ax.fill_between([100 * target.min_retention, 101], 100 * target.min_fall, top, color="tab:green", alpha=0.12,
                    label=f"target: ≥{target.min_retention:.0%} kept, ≥{target.min_fall:.0%} fall")
    ax.set_xlabel("utility kept: served NDCG@10, % of the reference arm (test users)")
    bottom = ax.get_ylim()[0]
    clipped = bottom < -100  # a fall below -100% is a surrogate twice as good: show the axis to there only
    ax.set_ylim(bottom=max(bottom, -100))
    ax.set_ylabel(f"protection: fall of {what}, %\n(strongest attacker, 95% CI"
                  + (", clipped at -100%)" if clipped else ")"))
    lines = (title or "Defense frontier (upper right is better)").split("\n")
    fig.suptitle(wrapped(lines[0], 0.95 * width, 10), fontsize=10)
    if len(lines) > 1:  # the subtitle (the scale) over the axes, wrapped to their width (the legend takes the rest)
        ax.set_title(wrapped(" ".join(lines[1:]), 0.6 * width, 8), fontsize=8, color="#444")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0)
    _place_labels(fig, ax, _clusters(points, ax))  # last: the layout is fixed once titles and legend are in
    return fig


# Where a point's number may go, in points from the point: right, then left, above, below, then further out.
_OFFSETS = ((5, 3), (5, -10), (-12, 3), (-12, -10), (-3, 8), (-3, -15), (12, 10), (12, -17), (-20, 10),
            (-20, -17), (5, 18), (5, -25))


def _place_labels(fig, ax, clusters: dict[tuple[float, float], list[int]]) -> None:
    """Number each cluster of points where the label covers no marker and no label placed before (the first
    free offset of ``_OFFSETS``; the first offset when none is free)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg  # measuring text only, no backend switch
    from matplotlib.transforms import Bbox

    canvas = FigureCanvasAgg(fig)
    canvas.draw()  # constrained layout places the axes; the labels below stay out of the layout
    renderer = canvas.get_renderer()
    radius = 4 * fig.dpi / 72  # a marker's half width, in pixels
    placed = [Bbox.from_extents(px - radius, py - radius, px + radius, py + radius)
              for px, py in (ax.transData.transform(point) for point in clusters)]
    for (x, y), numbers in clusters.items():
        label = ", ".join(str(n) for n in numbers)
        for dx, dy in _OFFSETS:
            text = ax.annotate(label, (x, y), textcoords="offset points", xytext=(dx, dy), fontsize=7,
                               in_layout=False)
            box = text.get_window_extent(renderer).expanded(1.05, 1.1)
            if not any(box.overlaps(other) for other in placed):
                break
            text.remove()
        else:
            text = ax.annotate(label, (x, y), textcoords="offset points", xytext=_OFFSETS[0], fontsize=7,
                               in_layout=False)
            box = text.get_window_extent(renderer)
        placed.append(box)


def _clusters(points: list[tuple[float, float, int]], ax) -> dict[tuple[float, float], list[int]]:
    """Points closer than about 2% of the axes' span, grouped: {(x, y) of the first: [numbers]}."""
    (x0, x1), (y0, y1) = ax.get_xlim(), ax.get_ylim()
    tol_x, tol_y = 0.012 * max(x1 - x0, 1e-9), 0.02 * max(y1 - y0, 1e-9)
    groups: dict[tuple[float, float], list[int]] = {}
    for x, y, number in points:
        for (gx, gy), members in groups.items():
            if abs(gx - x) <= tol_x and abs(gy - y) <= tol_y:
                members.append(number)
                break
        else:
            groups[(x, y)] = [number]
    return groups


def plot_frontier(table: pd.DataFrame, path: str | os.PathLike, target: FrontierTarget = FrontierTarget(),
                  title: str = "", measure: str = "ndcg") -> Path:
    """Save ``frontier_figure`` as a PNG, atomically."""
    return save_png(frontier_figure(table, target, title, measure), path)


CURVE_COLUMNS = ("number", "arm", "family", "rule", "lam", "reference", "attacker", "x", "x_low", "x_high", "y",
                 "y_low", "y_high")


def curve_points(table: pd.DataFrame) -> pd.DataFrame:
    """The curve figure's points from the matrix (every attacker row, ``matrix.csv``): each arm at its strongest
    attacker, x = served NDCG@10 kept against its reference (test, 95% CI), y = the fall of its surrogate's
    NDCG@10 against the reference's strongest attacker (95% CI), numbered in table order. Fractions."""
    rows = worst_rows(table, "ndcg")
    out = pd.DataFrame({
        "number": range(1, len(rows) + 1), "arm": rows["arm"].to_numpy(), "family": rows["family"].to_numpy(),
        "rule": rows["rule"].fillna("").to_numpy(), "lam": rows["lam"].to_numpy(),
        "reference": rows["reference"].to_numpy(), "attacker": (rows["attacker"] + ", " + rows["generator"]).to_numpy(),
        **{f"x{s}": rows[f"retention_test{s}"].astype(float).to_numpy() for s in ("", "_low", "_high")},
        **{f"y{s}": rows[f"surrogate_test_ndcg10_drop{s}"].astype(float).to_numpy() for s in ("", "_low", "_high")}})
    return out[list(CURVE_COLUMNS)]


def curve_figure(points: pd.DataFrame, noise_floor: float | tuple[float, float] | None = None,
                 title: str = "") -> PlotFigure:
    """GRO's trade-off curve: served NDCG@10 kept (x) against the fall of the surrogate's NDCG@10 (y), 95% CIs.

    ``points``: ``curve_points``' frame. One line per zero-gradient rule through
    its GRO points in order of λ; the λ = 0 control (and its other training
    seeds), the utility-matched nulls, None and the output defenses are points
    on the same axes. GRO points, control seeds and nulls are measured against
    the λ = 0 control, output defenses against None (each arm's own reference,
    as in every table). ``noise_floor`` (a fraction) is drawn as a band around
    0: falls inside it are what training seeds alone give. Points are numbered
    as in the legend beside the axes. A (low, high) pair draws the 95% interval of the fall between
    the control's seeds instead, made symmetric around 0 (a seed may land on either side).
    """
    width = 9.5
    fig = new_figure(width, 5.8, alt="GRO's trade-off curve: served NDCG@10 kept (% of the reference arm, x) against "
                     "the fall of the surrogate's NDCG@10 (%, y) with 95% intervals; one line per zero-gradient rule "
                     "through its λ values, the control, nulls and output defenses as points; numbered as in the "
                     "legend.")
    ax = fig.subplots()
    if isinstance(noise_floor, (tuple, list)):
        low, high = (100 * float(v) for v in noise_floor)
        ax.axhspan(min(low, -abs(high)), max(high, abs(low)), color="grey", alpha=0.15,
                   label=f"training noise: fall between λ = 0 control seeds, 95% CI [{low:.1f}%, {high:.1f}%], "
                         "mirrored around 0")
    elif noise_floor is not None and noise_floor == noise_floor:
        band = 100 * abs(noise_floor)
        ax.axhspan(-band, band, color="grey", alpha=0.15, label=f"training noise of the λ = 0 control: ±{band:.1f}%")
    placed = []
    for rule, part in points[points["family"] == "gro"].groupby("rule", sort=False):
        part = part.sort_values("lam")
        ax.plot(100 * part["x"], 100 * part["y"], "-", linewidth=1.0, alpha=0.6, label=f"GRO, rule {rule} (λ ↑)")
    nulls = points[points["family"] == "null"].sort_values("x")
    if len(nulls) > 1:
        ax.plot(100 * nulls["x"], 100 * nulls["y"], ":", color="black", linewidth=1.0, alpha=0.7,
                label="utility-matched nulls (earlier epochs of the target's training)")
    for _, row in points.iterrows():
        x, y = 100 * float(row["x"]), 100 * float(row["y"])
        xerr = [[max(0.0, x - 100 * float(row["x_low"]))], [max(0.0, 100 * float(row["x_high"]) - x)]]
        yerr = [[max(0.0, y - 100 * float(row["y_low"]))], [max(0.0, 100 * float(row["y_high"]) - y)]]
        reference = "" if row["reference"] in ("", row["arm"]) else f" vs {row['reference']}"
        ax.errorbar([x], [y], xerr=xerr, yerr=yerr, fmt=_MARKERS.get(row["family"], "o"), capsize=2, alpha=0.85,
                    label=f"{int(row['number'])}: {row['arm']}{reference}")
        placed.append((x, y, int(row["number"])))
    ax.axhline(0, color="grey", linewidth=0.8)
    ax.set_xlabel("served NDCG@10 kept, % of the reference arm (test users)")
    bottom = ax.get_ylim()[0]
    clipped = bottom < -100
    ax.set_ylim(bottom=max(bottom, -100))
    ax.set_ylabel("fall of the surrogate's NDCG@10, %\n(strongest attacker, 95% CI" + (", clipped at -100%)"
                                                                                      if clipped else ")"))
    lines = (title or "GRO's trade-off curve (upper right is better)").split("\n")
    fig.suptitle(wrapped(lines[0], 0.95 * width, 10), fontsize=10)
    if len(lines) > 1:
        ax.set_title(wrapped(" ".join(lines[1:]), 0.55 * width, 8), fontsize=8, color="#444")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0)
    _place_labels(fig, ax, _clusters(placed, ax))
    return fig


def plot_curve(points: pd.DataFrame, path: str | os.PathLike, noise_floor: float | tuple[float, float] | None = None,
               title: str = "") -> Path:
    """Save ``curve_figure`` as a PNG, atomically."""
    return save_png(curve_figure(points, noise_floor, title), path)


__all__ = ("curve_figure", "curve_points", "frontier_figure", "plot_curve", "plot_frontier")
