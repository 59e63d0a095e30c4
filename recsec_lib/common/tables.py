"""Tables for the stages' ``.md`` outputs and for the report's HTML (no extra package needed).

``markdown_table`` writes the ``.md`` files the stages save. ``html_table``
is what the report shows: every row and column (pandas' notebook display
elides the middle of wide tables with "..."), no index column, an empty cell
as a dash rather than "NaN", counts as whole numbers (a column that holds one
missing value is read back from CSV as floats, so 384 would show as 384.0),
and other numbers to four significant figures.
"""

from __future__ import annotations

import html
import math
import numbers
import re

import numpy as np
import pandas as pd

MISSING = "—"  # what an empty cell shows in the report
_NUMBER = re.compile(r"^-?\d+(\.\d+)?([eE][-+]?\d+)?$")  # a number stored as text (a mixed CSV column)


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


def format_cell(value) -> str:
    """One cell as the report prints it (see the module docstring); text is returned unescaped."""
    if value is None or value is pd.NA or value is pd.NaT:
        return MISSING
    if isinstance(value, (bool, np.bool_)):
        return "yes" if value else "no"
    if isinstance(value, str):
        return format_number(float(value)) if _NUMBER.match(value.strip()) else value
    if isinstance(value, numbers.Integral):
        return str(int(value))
    if isinstance(value, numbers.Real):
        return format_number(float(value))
    return str(value)


def format_number(value: float) -> str:
    """A whole number as an integer (384, 1995), else four significant figures, never in e-notation above 1000."""
    if math.isnan(value):
        return MISSING
    if math.isinf(value):
        return "∞" if value > 0 else "−∞"
    if value.is_integer():
        return str(int(value))
    if abs(value) >= 1000:
        return f"{value:.0f}"
    return f"{value:.4g}"


def read_table(path) -> pd.DataFrame:
    """A CSV a stage saved, with only empty cells read as missing (pandas would also turn the text "None",
    the name of the undefended row of the defenses table, into NaN)."""
    return pd.read_csv(path, keep_default_na=False, na_values=[""])


def html_table(frame: pd.DataFrame, columns: tuple[str, ...] | list[str] = ()) -> str:
    """Every row of ``frame`` as an HTML table without its index; ``columns`` picks and orders columns."""
    if columns:
        frame = frame[[c for c in columns if c in frame.columns]]
    if frame.empty:
        return '<p class="recsec-empty">(no rows)</p>'
    numeric = [pd.api.types.is_numeric_dtype(frame[c]) and not pd.api.types.is_bool_dtype(frame[c])
               for c in frame.columns]
    align = ['style="text-align:right"' if n else 'style="text-align:left"' for n in numeric]
    head = "".join(f"<th {a}>{html.escape(str(c))}</th>" for c, a in zip(frame.columns, align))
    rows = "".join("<tr>" + "".join(f"<td {a}>{html.escape(format_cell(v))}</td>" for v, a in zip(row, align))
                   + "</tr>" for row in frame.itertuples(index=False))
    return f'<table class="recsec-table"><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>'
