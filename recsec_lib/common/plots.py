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

import io
import os
from pathlib import Path

import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from recsec_lib.common.files import atomic_path

DPI = 120


class PlotFigure(Figure):
    """A matplotlib figure that IPython displays as a PNG (``image/png`` in the notebook and its HTML)."""

    def _repr_png_(self) -> bytes:
        return png_bytes(self)


def new_figure(width: float, height: float) -> PlotFigure:
    """An empty figure laid out by matplotlib's constrained layout (labels never overlap)."""
    return PlotFigure(figsize=(width, height), layout="constrained")


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

TRAINING_PANELS = (("loss", "training loss"), ("valid_hr@10", "validation HR@10 (full ranking)"),
                   ("valid_ndcg@10", "validation NDCG@10 (full ranking)"))


def training_curves(history: pd.DataFrame) -> PlotFigure:
    """Loss and validation HR@10 / NDCG@10 per epoch, one line per model.

    ``history``: the train stage's ``<model>_history.csv`` files stacked, with
    columns ``model``, ``epoch`` and any of ``loss``, ``valid_hr@10``,
    ``valid_ndcg@10`` (empty on epochs without a validation).
    """
    panels = [(column, title) for column, title in TRAINING_PANELS if column in history]
    fig = new_figure(4.4 * len(panels), 3.6)
    for axis, (column, title) in zip(fig.subplots(1, len(panels), squeeze=False)[0], panels):
        for model, rows in history.dropna(subset=[column]).groupby("model", sort=False):
            axis.plot(rows["epoch"], rows[column], marker="o" if len(rows) < 30 else None, markersize=3,
                      label=model)
        axis.set_title(title)
        axis.set_xlabel("epoch")
        axis.xaxis.set_major_locator(MaxNLocator(integer=True))
        axis.grid(alpha=0.3)
        axis.legend(fontsize=8)
    return fig


# ---- attack stage ------------------------------------------------------------------------------------

def budget_curve(curve: pd.DataFrame) -> PlotFigure:
    """Agr@10 (solid) and Agr@1 (dashed) against the attack budget, one colour per query generator.

    ``curve``: the attack stage's ``budget_curve.csv`` (``generator``,
    ``budget_sequences``, ``agr1``, ``agr10``; agreement on the real test users).
    """
    fig = new_figure(6.4, 4.2)
    axis = fig.subplots()
    for i, (generator, rows) in enumerate(curve.groupby("generator")):
        rows = rows.sort_values("budget_sequences")
        axis.plot(rows["budget_sequences"], rows["agr10"], "o-", color=f"C{i}", label=f"{generator} Agr@10")
        axis.plot(rows["budget_sequences"], rows["agr1"], "s--", color=f"C{i}", label=f"{generator} Agr@1")
    axis.set_xlabel("budget (synthetic sequences)")
    axis.set_ylabel("agreement with the target (test users)")
    axis.set_ylim(0, 1)
    axis.grid(alpha=0.3)
    axis.legend(fontsize=8)
    return fig


def surrogate_training(history: pd.DataFrame) -> PlotFigure:
    """The attacker's own validation signal per epoch: Agr@10 with the box on held-out synthetic queries.

    ``history``: the attack stage's ``training_history.csv`` (``generator``,
    ``budget_sequences``, ``surrogate``, ``epoch``, ``valid_agr10``), one line
    per trained surrogate.
    """
    fig = new_figure(6.8, 4.0)
    axis = fig.subplots()
    for (generator, budget, surrogate), rows in history.groupby(["generator", "budget_sequences", "surrogate"]):
        axis.plot(rows["epoch"], rows["valid_agr10"], label=f"{surrogate}, {generator}, {budget} sequences")
    axis.set_xlabel("epoch")
    axis.set_ylabel("held-out synthetic Agr@10")
    axis.xaxis.set_major_locator(MaxNLocator(integer=True))
    axis.grid(alpha=0.3)
    axis.legend(fontsize=7)
    return fig


# ---- SEAT stage --------------------------------------------------------------------------------------

def roc_curves(roc: pd.DataFrame, aucs: dict[str, float], fpr: float) -> PlotFigure:
    """ROC of each detector's per-account score: benign test accounts against single-account attacks.

    ``roc``: the SEAT stage's ``roc.csv`` (``detector``, ``fpr``, ``tpr``);
    ``aucs``: area under each detector's curve, for the legend; ``fpr``: the
    false-positive rate the detectors were calibrated for (dotted line). The
    x axis is linear below 0.001 and logarithmic above, where the operating
    points are.
    """
    fig = new_figure(5.0, 4.2)
    axis = fig.subplots()
    for detector, rows in roc.groupby("detector"):
        axis.step(rows["fpr"], rows["tpr"], where="post", label=f"{detector} (AUC {aucs[detector]:.3f})")
    axis.axvline(fpr, color="grey", linestyle=":", label=f"target FPR {fpr:g}")
    axis.set_xscale("symlog", linthresh=1e-3)
    axis.set_xlim(0, 1)
    axis.set_xlabel("false-positive rate (benign test accounts)")
    axis.set_ylabel("true-positive rate (single-account attacks)")
    axis.legend(fontsize=8)
    return fig
