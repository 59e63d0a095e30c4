"""The paper's data model: formats, facts, sentences, the evidence a question reads, the writer, answers."""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

NOT_MEASURED = "not measured in this run"

# ---- formatting: every number the paper prints goes through FORMATS ------------------------------------------


def _pct_number(value: float) -> str:
    """A fraction as a percent number without the sign: 0.539 -> "53.9", 0.00042 -> "0.042", 1 -> "100.0"."""
    number = 100.0 * float(value)
    if not math.isfinite(number):
        return "n/a"
    if number == 0 or abs(number) >= 1:
        return f"{number:.1f}"
    return f"{number:.2g}"


def _count(value) -> str:
    """A count: 1,000; infinity (beyond the grid) as "more than the grid"."""
    value = float(value)
    if math.isinf(value):
        return "more than the grid"
    return f"{value:,.0f}" if value.is_integer() else f"{value:,.1f}"


FORMATS: dict[str, Callable[[Any], str]] = {
    "percent": lambda v: f"{_pct_number(v)}%",
    "interval": lambda v: cell_shown(interval_cell(*v), "%"),
    "count": _count,
    "ratio": lambda v: f"{float(v):.2f}×",
    "number": lambda v: f"{float(v):g}",
    "p": lambda v: f"{float(v):.2g}",
    "text": lambda v: str(v),
}


def show(kind: str, value) -> str:
    """``value`` as the paper prints a fact of ``kind`` (a key of FORMATS)."""
    if kind not in FORMATS:
        raise ValueError(f"unknown fact kind {kind!r}; known: {sorted(FORMATS)}")
    return FORMATS[kind](value)


def _pct_numbers(*values: float) -> list[str]:
    """Fractions as percent numbers of one precision: one decimal, or two significant digits when all are
    below 1% (a false-positive rate of 0.042% [0.011, 0.1])."""
    if all(math.isfinite(100 * float(v)) and abs(100 * float(v)) < 1 for v in values):
        return [_pct_number(v) for v in values]
    return [f"{100 * float(v):.1f}" if math.isfinite(100 * float(v)) else "n/a" for v in values]


def interval_cell(point: float, low: float, high: float) -> str:
    """A table cell: "66.6 [62.1, 71.0]" (percent, 95% interval)."""
    p, lo, hi = _pct_numbers(point, low, high)
    return f"{p} [{lo}, {hi}]"


_INTERVAL_CELL = re.compile(r"^(\S+) (\[.*\])$")


def cell_shown(value: str, suffix: str = "") -> str:
    """How a sentence writes a table cell: the cell and ``suffix``; an interval cell with the unit after its
    point ("66.6% [62.1, 71.0]", as the headline's intervals are written)."""
    match = _INTERVAL_CELL.match(str(value))
    if match and suffix:
        return f"{match.group(1)}{suffix} {match.group(2)}"
    return f"{value}{suffix}"


# ---- the data model -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Fact:
    """One number or word a sentence states and where it comes from.

    ``source``: "headline" (``key`` is a headline key), "stage:<name>" (``key``
    is a dotted path in that stage's metrics) or "table:<name>" (``key`` is the
    row label, the first column's value, and ``column`` the column). ``value``
    is what was read (a (point, low, high) tuple for intervals), ``shown`` how
    the sentence writes it (``show(kind, value)``, plus ``suffix`` for cells).
    """

    source: str
    key: str
    kind: str
    value: Any
    shown: str
    column: str = ""
    suffix: str = ""


@dataclass(frozen=True)
class Sentence:
    text: str
    facts: tuple[Fact, ...] = ()


@dataclass(frozen=True)
class Evidence:
    """What the questions read: the run's headline, every stage's metrics, the run folder (None in tests)."""

    headline: dict
    stages: dict[str, dict]
    run_dir: Path | None = None

    def has(self, *keys: str) -> bool:
        return all(self.headline.get(key) is not None for key in keys)

    def stage(self, name: str) -> dict:
        return self.stages.get(name) or {}

    def file(self, name: str) -> str:
        """``name`` (relative to the run folder) if the run has it, non-empty, else ""."""
        if self.run_dir is None or not name:
            return ""
        path = Path(self.run_dir) / name
        return name if path.is_file() and path.stat().st_size > 0 else ""

    def first_file(self, *patterns: str) -> str:
        """The first file of the run matching any of ``patterns`` (globs relative to the run folder), else ""."""
        if self.run_dir is None:
            return ""
        for pattern in patterns:
            for path in sorted(Path(self.run_dir).glob(pattern)):
                if path.is_file() and path.stat().st_size > 0:
                    return path.relative_to(self.run_dir).as_posix()
        return ""


def dotted(metrics: dict, path: str):
    """``metrics["a"]["b"]`` for path "a.b"; None where any step is missing."""
    value: Any = metrics
    for part in path.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


class Writer:
    """Builds sentences whose facts are recorded as they are formatted.

    ``h(key)`` formats a headline value, ``s(stage, path)`` a value of a
    stage's metrics, ``t(table, row, column)`` a cell of a registered table;
    each returns the text to put in the sentence and records the fact;
    ``sentence(text)`` closes the sentence with the facts recorded since the
    last one (each must appear in the text).
    """

    def __init__(self, evidence: Evidence) -> None:
        self.evidence = evidence
        self.tables: dict[str, pd.DataFrame] = {}
        self._facts: list[Fact] = []

    def table(self, name: str, frame: pd.DataFrame) -> pd.DataFrame:
        """Register ``frame`` under ``name`` (its first column labels its rows) so that sentences can cite it."""
        first = frame.columns[0]
        if frame[first].duplicated().any():
            raise ValueError(f"table {name!r}: row labels (column {first!r}) must be unique")
        self.tables[name] = frame
        return frame

    def _record(self, fact: Fact) -> str:
        self._facts.append(fact)
        return fact.shown

    def h(self, key: str, kind: str = "percent") -> str:
        headline = self.evidence.headline
        if kind == "interval":
            value = (headline[key], headline[f"{key}_low"], headline[f"{key}_high"])
        else:
            value = headline[key]
        return self._record(Fact("headline", key, kind, value, show(kind, value)))

    def s(self, stage: str, path: str, kind: str = "text") -> str:
        value = dotted(self.evidence.stage(stage), path)
        if value is None:
            raise KeyError(f"stage {stage!r} has no {path!r}")
        return self._record(Fact(f"stage:{stage}", path, kind, value, show(kind, value)))

    def t(self, table: str, row: str, column: str, suffix: str = "") -> str:
        value = cell(self.tables[table], row, column)
        return self._record(Fact(f"table:{table}", row, "text", value, cell_shown(value, suffix), column, suffix))

    def claim(self, table: str, row: str, column: str, expected: str) -> None:
        """Record that the sentence being written rests on a cell holding ``expected`` (not printed verbatim);
        raises if the cell says otherwise, so words and table cannot disagree."""
        value = cell(self.tables[table], row, column)
        if value != expected:
            raise AssertionError(f"table {table!r}, row {row!r}, column {column!r} says {value!r}, not {expected!r}")
        self._facts.append(Fact(f"table:{table}", row, "text", value, "", column))

    def sentence(self, text: str) -> Sentence:
        facts, self._facts = tuple(self._facts), []
        missing = [fact.shown for fact in facts if fact.shown and fact.shown not in text]
        if missing:
            raise AssertionError(f"sentence {text!r} does not show its facts {missing}")
        return Sentence(text, facts)

    def plain(self, text: str) -> Sentence:
        """A sentence that cites nothing (facts recorded since the last sentence are an error)."""
        if self._facts:
            raise AssertionError(f"sentence {text!r} left facts unstated: {[f.shown for f in self._facts]}")
        return Sentence(text)


def cell(frame: pd.DataFrame, row: str, column: str) -> str:
    """The display text of a table cell, the row found by its label (the first column)."""
    rows = frame[frame[frame.columns[0]].astype(str) == str(row)]
    if rows.empty:
        raise KeyError(f"no row {row!r} in the table (labels: {frame[frame.columns[0]].tolist()})")
    return str(rows.iloc[0][column])


@dataclass
class Answer:
    """A question's answer: two or three sentences, the main figure with its caption, its table."""

    sentences: list[Sentence]
    figure: str = ""  # run-relative PNG path; "" = none
    caption: str = ""  # how to read the figure (or the table, without a figure)
    alt: str = ""  # alternative text of the figure
    table: str = ""  # name of the table (a key of Writer.tables); "" = none
    measured: bool = True
    notes: list[Sentence] = field(default_factory=list)  # further sentences under the table
    listed: bool = False  # the sentences read better as a list (one per defense family, say) than as a paragraph


@dataclass(frozen=True)
class Question:
    key: str  # the section's anchor
    title: str
    answer: Callable[[Evidence, Writer], Answer]


def not_measured(what: str) -> Answer:
    return Answer([Sentence(f"{what}: {NOT_MEASURED}.")], measured=False)
