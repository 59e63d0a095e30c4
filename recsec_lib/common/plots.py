"""The study's figures, drawn from the tables the stages save.

Each function takes the table a stage writes (a DataFrame read from its CSV)
and returns a figure; the stage saves it as a PNG with ``save_png`` and the
notebook draws the same figure again from the same CSV. So a notebook never
reads a PNG back and never depends on the stage having drawn anything.

Why no pyplot: ``matplotlib.use("Agg")`` (which a pyplot figure in a
headless stage needs) swaps the notebook's inline backend for one that
displays nothing, so every ``plt.show()`` after a stage had run drew an empty
cell. The figures here are plain ``Figure`` objects, which need no backend to
be saved, and ``PlotFigure`` tells IPython how to show itself as a PNG, so a
notebook cell that ends with ``plots.budget_curve(curve)`` shows the figure
whatever backend is active.
"""

from __future__ import annotations

import base64
import html
import io
import os
import textwrap
from pathlib import Path

import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, MaxNLocator

from recsec_lib.common.files import atomic_path

DPI = 120


class PlotFigure(Figure):
    """A matplotlib figure that IPython displays as a PNG (``image/png`` in the notebook and its HTML).

    It also offers an HTML form, an ``<img>`` at the PNG's natural width with
    alternative text (``alt_text``): nbconvert's HTML template writes no alt
    attribute for a bare ``image/png`` output, and a notebook's style sheet
    shrinks images to the cell's width.
    """

    alt: str = ""  # what the figure shows, for readers who cannot see it; "" = described from its axes

    def _repr_png_(self) -> bytes:
        return png_bytes(self)

    def _repr_html_(self) -> str:
        return img_html(png_bytes(self), alt_text(self))


def new_figure(width: float, height: float, alt: str = "") -> PlotFigure:
    """An empty figure laid out by matplotlib's constrained layout (labels never overlap); ``alt`` describes it."""
    fig = PlotFigure(figsize=(width, height), layout="constrained")
    fig.alt = alt
    return fig


def alt_text(fig: Figure) -> str:
    """The figure's alternative text: its ``alt`` if set, else each panel's title and axis labels."""
    given = getattr(fig, "alt", "")
    if given:
        return given
    panels = []
    for axis in fig.get_axes():
        parts = [axis.get_title(), axis.get_xlabel() and f"x: {axis.get_xlabel()}",
                 axis.get_ylabel() and f"y: {axis.get_ylabel()}"]
        text = "; ".join(" ".join(part.split()) for part in parts if part)
        if text:
            panels.append(text)
    return "Figure: " + (" | ".join(panels) if panels else "a chart")


def img_html(png: bytes, alt: str) -> str:
    """An ``<img>`` of PNG data at its natural width (never stretched; shrunk only on a page narrower than it)."""
    data = base64.b64encode(png).decode("ascii")
    width = png_width(png)
    return (f'<img src="data:image/png;base64,{data}" alt="{html.escape(alt, quote=True)}" width="{width}" '
            f'style="width:{width}px;max-width:100%;height:auto">')


def png_width(png: bytes) -> int:
    """Width in pixels of a PNG, from its header (the IHDR chunk follows the 8-byte signature)."""
    return int.from_bytes(png[16:20], "big")


def wrapped(text: str, width_inches: float, fontsize: float = 10.0) -> str:
    """``text`` with each line wrapped to fit ``width_inches`` at ``fontsize`` points (a title never clipped).

    An average character is about 0.55 of the font size wide; lines already
    broken by the caller stay broken.
    """
    chars = max(20, int(width_inches * 72 / (0.55 * fontsize)))
    return "\n".join(textwrap.fill(line, chars) if line else line for line in text.split("\n"))


def clipped_texts(fig: Figure, tolerance: float = 1.0) -> list[str]:
    """The visible texts of ``fig`` that reach outside it once drawn (titles, labels, legends): [] for none."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg  # drawing only, no backend switch

    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    renderer = canvas.get_renderer()
    box = fig.bbox
    # tick labels outside the view exist as artists but are never drawn: only the ones in view count
    hidden = set()
    for axis in (a for ax in fig.get_axes() for a in (ax.xaxis, ax.yaxis)):
        low, high = sorted(axis.get_view_interval())
        for tick in axis.get_major_ticks() + axis.get_minor_ticks():
            loc = tick.get_loc()
            if loc is None or not low - 1e-9 * abs(high - low) <= loc <= high + 1e-9 * abs(high - low):
                hidden |= {id(tick.label1), id(tick.label2)}
    out = []
    for text in fig.findobj(lambda artist: hasattr(artist, "get_text") and hasattr(artist, "get_window_extent")):
        if id(text) in hidden or not text.get_visible() or not str(text.get_text()).strip():
            continue
        extent = text.get_window_extent(renderer)
        if (extent.x0 < box.x0 - tolerance or extent.y0 < box.y0 - tolerance or extent.x1 > box.x1 + tolerance
                or extent.y1 > box.y1 + tolerance):
            out.append(str(text.get_text()))
    return out


def png_bytes(fig: Figure) -> bytes:
    """The figure as PNG data."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI)
    return buffer.getvalue()


def save_png(fig: Figure, path: str | os.PathLike) -> Path:
    """Write the figure to ``path`` atomically (a reader never sees half a file); returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=DPI)
    return path


# ---- train stage -------------------------------------------------------------------------------------

TRAINING_PANELS = (("loss", "training loss", 1.0), ("valid_hr@10", "validation HR@10, % (full ranking)", 100.0),
                   ("valid_ndcg@10", "validation NDCG@10, % (full ranking)", 100.0))
# Line styles and markers that tell curves apart where they overlap or in grey print.
LINE_STYLES = ("-", "--", "-.", ":")
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")


def training_curves(history: pd.DataFrame) -> PlotFigure:
    """Loss and validation HR@10 / NDCG@10 (%) per epoch, one line per model.

    ``history``: the train stage's ``<model>_history.csv`` files stacked, with
    columns ``model``, ``epoch`` and any of ``loss``, ``valid_hr@10``,
    ``valid_ndcg@10`` (empty on epochs without a validation).
    """
    panels = [(column, title, scale) for column, title, scale in TRAINING_PANELS if column in history]
    models = list(dict.fromkeys(history["model"]))
    fig = new_figure(3.4 * len(panels), 3.4,
                     alt=f"Training curves of {', '.join(models)}: " + ", ".join(t for _, t, _ in panels)
                     + " against the epoch.")
    for axis, (column, title, scale) in zip(fig.subplots(1, len(panels), squeeze=False)[0], panels):
        for i, (model, rows) in enumerate(history.dropna(subset=[column]).groupby("model", sort=False)):
            axis.plot(rows["epoch"], scale * rows[column], linestyle=LINE_STYLES[i % len(LINE_STYLES)],
                      marker=MARKERS[i % len(MARKERS)] if len(rows) < 30 else None, markersize=3, label=model)
        axis.set_title(wrapped(title, 3.4, 10), fontsize=10)
        axis.set_xlabel("epoch")
        axis.xaxis.set_major_locator(MaxNLocator(integer=True))
        axis.grid(alpha=0.3)
        axis.legend(fontsize=8)
    return fig


# ---- attack stage ------------------------------------------------------------------------------------

def budget_curve(curve: pd.DataFrame) -> PlotFigure:
    """Agr@10 (solid) and Agr@1 (dashed), in %, against the attack budget (log scale), one colour per generator.

    ``curve``: the attack stage's ``budget_curve.csv`` (``generator``,
    ``budget_sequences``, ``agr1``, ``agr10``, and ``seq_len`` when recorded;
    agreement on the real test users).
    """
    seq_len = int(curve["seq_len"].iloc[0]) if "seq_len" in curve and len(curve) else None
    fig = new_figure(6.4, 4.2, alt="Line chart: the surrogate's agreement with the target (Agr@10 solid, Agr@1 "
                     "dashed, %) against the attack budget in synthetic sequences, one colour per query generator.")
    axis = fig.subplots()
    for i, (generator, rows) in enumerate(curve.groupby("generator")):
        rows = rows.sort_values("budget_sequences")
        axis.plot(rows["budget_sequences"], 100 * rows["agr10"], "o-", color=f"C{i}", label=f"{generator} Agr@10")
        axis.plot(rows["budget_sequences"], 100 * rows["agr1"], "s--", color=f"C{i}", label=f"{generator} Agr@1")
    budgets = sorted(curve["budget_sequences"].unique()) if len(curve) else []
    if len(budgets) > 1 and budgets[-1] / budgets[0] >= 4:
        axis.set_xscale("log")
        scale = ", log scale"
    else:
        scale = ""
    axis.set_xticks(budgets, [f"{b:,}" for b in budgets])
    axis.minorticks_off()
    each = f"; each sequence = {seq_len} queries" if seq_len else ""
    axis.set_xlabel(wrapped(f"attack budget: synthetic sequences{scale}{each}", 6.0, 10))
    axis.set_ylabel("agreement with the target, % (test users)")
    axis.set_ylim(0, 100)
    axis.set_title("Extraction fidelity against the attack budget", fontsize=10)
    axis.grid(alpha=0.3)
    axis.legend(fontsize=8)
    return fig


def surrogate_training(history: pd.DataFrame) -> PlotFigure:
    """The attacker's own validation signal per epoch: Agr@10 (%) with the box on held-out synthetic queries.

    ``history``: the attack stage's ``training_history.csv`` (``generator``,
    ``budget_sequences``, ``surrogate``, ``epoch``, ``valid_agr10``), one line
    per trained surrogate.
    """
    fig = new_figure(6.8, 4.0, alt="Line chart: each surrogate's Agr@10 (%) on the attacker's held-out synthetic "
                     "queries against the training epoch.")
    axis = fig.subplots()
    groups = history.groupby(["generator", "budget_sequences", "surrogate"])
    for i, ((generator, budget, surrogate), rows) in enumerate(groups):
        axis.plot(rows["epoch"], 100 * rows["valid_agr10"], linestyle=LINE_STYLES[i % len(LINE_STYLES)],
                  label=f"{surrogate}, {generator}, {budget:,} sequences")
    axis.set_xlabel("epoch")
    axis.set_ylabel("held-out synthetic Agr@10, %")
    axis.set_title("The attacker's own stopping signal", fontsize=10)
    axis.xaxis.set_major_locator(MaxNLocator(integer=True))
    axis.grid(alpha=0.3)
    axis.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0)
    return fig


# ---- SEAT stage --------------------------------------------------------------------------------------

def roc_curves(roc: pd.DataFrame, aucs: dict[str, float], fpr: float) -> PlotFigure:
    """ROC of each detector's per-account score: benign test accounts against single-account attacks.

    ``roc``: the SEAT stage's ``roc.csv`` (``detector``, ``fpr``, ``tpr``);
    ``aucs``: area under each detector's curve, for the legend; ``fpr``: the
    false-positive rate the detectors were calibrated for (dotted line). Both
    axes in %; the x axis is linear below 0.1% and logarithmic above, where the
    operating points are. Each detector has its own line style and markers, so
    curves that coincide stay visible.
    """
    fig = new_figure(6.4, 4.4, alt="ROC curves: true-positive rate on single-account attacks against the "
                     "false-positive rate on benign test accounts (%), one line style per detector.")
    axis = fig.subplots()
    for i, (detector, rows) in enumerate(roc.groupby("detector")):
        axis.step(100 * rows["fpr"], 100 * rows["tpr"], where="post", linestyle=LINE_STYLES[i % len(LINE_STYLES)],
                  marker=MARKERS[i % len(MARKERS)], markevery=max(1, len(rows) // 6), markersize=5,
                  linewidth=1.6, alpha=0.85, label=f"{detector} (AUC {aucs[detector]:.3f})")
    axis.axvline(100 * fpr, color="grey", linestyle=":", label=f"calibrated FPR {100 * fpr:g}%")
    axis.set_xscale("symlog", linthresh=0.1)
    axis.set_xlim(0, 100)
    axis.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
    axis.set_ylim(-2, 102)
    axis.set_xlabel("false-positive rate, % of benign test accounts\n(linear below 0.1%, log scale above)")
    axis.set_ylabel("true-positive rate, % of single-account attacks")
    axis.set_title("Single-account detection", fontsize=10)
    axis.grid(alpha=0.3)
    axis.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0)
    return fig
