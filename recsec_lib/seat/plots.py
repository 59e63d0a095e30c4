"""The SEAT stage's own figure: what each zoo attacker pays (accounts) and gets (Agr@10).

Like ``recsec_lib.common.plots``, the function takes the table the stage saves
(``zoo.csv``) and returns a plain matplotlib ``Figure``: the stage saves it with
``plots.save_png`` and the notebook shows it, so no pyplot backend is switched.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from recsec_lib.common.plots import PlotFigure, new_figure

ZOO_DETECTORS = ("seat-pairs", "seat", "seat+cap", "caps", "volume", "rate")  # bars drawn per attacker


def zoo_costs(table: pd.DataFrame, detectors: Sequence[str] = ZOO_DETECTORS) -> PlotFigure:
    """Accounts each zoo attacker needs per detector (log scale) beside its surrogate's Agr@10.

    ``table``: ``zoo.csv`` (one row per attack; ``accounts_<detector>`` columns, ``agr10``).
    """
    attacks = table["attack"].tolist()
    fig = new_figure(11.0, 0.45 * len(attacks) + 1.6)
    left, right = fig.subplots(1, 2, sharey=True)
    height = 0.8 / max(1, len(detectors))
    for i, detector in enumerate(detectors):
        column = f"accounts_{detector}"
        if column in table:
            offset = (i - (len(detectors) - 1) / 2) * height  # the group of bars centred on the attack's tick
            left.barh([a + offset for a in range(len(attacks))], table[column].fillna(0), height=height,
                      label=detector)
    left.set_xscale("log")
    left.set_yticks(range(len(attacks)))
    left.set_yticklabels(attacks)
    left.set_xlabel("accounts needed to stay unflagged (0 = beyond the grid)")
    left.legend(fontsize=7)
    right.barh(range(len(attacks)), table["agr10"], color="grey")
    right.set_xlabel("surrogate Agr@10 (real test inputs)")
    return fig  # constrained layout (new_figure): no tight_layout
