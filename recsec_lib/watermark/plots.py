"""The watermark's figure: p-values of the ownership test, stolen copies beside models that never saw the mark."""

from __future__ import annotations

import numpy as np
import pandas as pd

from recsec_lib.common.plots import PlotFigure, new_figure

# Groups of a verification table, top to bottom; the first ones should be claimed, "independent" never.
GROUP_LABELS = {"marked": "the marked box", "served": "marked box behind an output defense",
                "surrogate": "surrogates of the marked box", "knowing": "attacker who knows the scheme",
                "independent": "independent models"}
P_FLOOR = 1e-300  # an exact p-value that underflows to 0 is drawn here (the table keeps 0)


def p_value_figure(table: pd.DataFrame, alpha: float) -> PlotFigure:
    """One dot per suspect: -log10 p by group (log scale of p), the claim threshold ``alpha`` as a line.

    ``table``: the stage's ``verification.csv`` (``group``, ``suspect``, ``p_value``, optional ``agr10``).
    Surrogates whose Agr@10 is below 30% are drawn hollow (the headline's verified share leaves them out).
    """
    groups = [g for g in GROUP_LABELS if g in set(table["group"])]
    fig = new_figure(7.0, 0.9 + 0.55 * max(1, len(groups)),
                     alt="p-values of the ownership test, one dot per suspect model, grouped: stolen copies of the "
                         "marked target against independent models; the dashed line is the claim threshold.")
    axis = fig.subplots()
    rng = np.random.default_rng(0)  # vertical jitter only, so dots of equal p stay visible
    for row, group in enumerate(groups):
        rows = table[table["group"] == group]
        score = -np.log10(np.maximum(rows["p_value"].astype(float).to_numpy(), P_FLOOR))
        y = len(groups) - 1 - row + rng.uniform(-0.18, 0.18, size=len(rows))
        weak = rows["agr10"].astype(float).to_numpy() < 0.3 if "agr10" in rows and group in ("surrogate", "knowing") \
            else np.zeros(len(rows), dtype=bool)
        color = "tab:green" if group == "independent" else "tab:red"
        axis.scatter(score[~weak], y[~weak], color=color, s=28, alpha=0.8, label=None)
        if weak.any():
            axis.scatter(score[weak], y[weak], facecolors="none", edgecolors=color, s=28, alpha=0.8)
    axis.axvline(-np.log10(alpha), color="black", linestyle="--", linewidth=1,
                 label=f"claim threshold p < {alpha:g}")
    axis.set_yticks(range(len(groups)))
    axis.set_yticklabels([GROUP_LABELS[g] for g in reversed(groups)], fontsize=8)
    axis.set_xscale("symlog", linthresh=1.0)
    axis.set_xlabel("-log10 p of the exact test (right of the line: ownership claimed; hollow: Agr@10 < 30%)")
    axis.set_title("Ownership test: stolen copies against independent models", fontsize=10)
    axis.grid(alpha=0.3, axis="x")
    axis.legend(fontsize=8, loc="lower right")
    return fig
