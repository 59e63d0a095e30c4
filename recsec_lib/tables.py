"""Markdown tables for the stages' ``.md`` outputs and the report (no extra package needed)."""

from __future__ import annotations

import math

import pandas as pd


def markdown_table(frame: pd.DataFrame, float_format: str = "{:.4g}") -> str:
    """A DataFrame as a GitHub markdown table; floats through ``float_format``, NaN as an empty cell."""
    if frame.empty:
        return "(no rows)\n"

    def cell(value) -> str:
        if isinstance(value, float):
            return "" if math.isnan(value) else float_format.format(value)
        return str(value).replace("|", "\\|")

    header = "| " + " | ".join(str(c) for c in frame.columns) + " |"
    rule = "| " + " | ".join("---" for _ in frame.columns) + " |"
    body = ["| " + " | ".join(cell(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join([header, rule, *body]) + "\n"
