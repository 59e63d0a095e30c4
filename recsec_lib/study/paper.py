"""The report as a short paper: abstract, one section per question, verdict table, limitations, reproduction.

Every sentence is generated from the run's numbers and carries the facts it
states (``Fact``: a headline key, a value of a stage's metrics, or a cell of a
table the paper shows), so a test can check each claim against its source: a
verdict and a "best" are read from the same row, and the abstract states only
numbers of ``headline.json``. A question whose figures the run lacks says "not
measured in this run"; nothing is filled in.

Adding a question is one entry of ``QUESTIONS``: a ``Question`` whose
``answer(evidence, writer)`` returns its sentences, main figure and table (see
the existing ones). Tables hold display text (percent with 95% intervals as
"66.6 [62.1, 71.0]"), so what the reader sees is what the facts cite.

Words are this module's; numbers are the stages'. The only numbers computed
here are the report's own summaries of the prevention matrix
(``prevention_keys``), which the report stage merges into ``headline.json``
before the abstract is written, and exact binomial intervals of false-positive
counts.
"""

from __future__ import annotations

import html
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from recsec_lib.study.report import PUBLISHED_ATTACK, PUBLISHED_QUALITY
from recsec_lib.arena.tables import worst_rows
from recsec_lib.common.plots import img_html, png_width
from recsec_lib.common.tables import MISSING

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


@dataclass(frozen=True)
class Question:
    key: str  # the section's anchor
    title: str
    answer: Callable[[Evidence, Writer], Answer]


def not_measured(what: str) -> Answer:
    return Answer([Sentence(f"{what}: {NOT_MEASURED}.")], measured=False)


# ---- prevention: the verdict of each arm on both measures ----------------------------------------------------

PROTECTS = "protects"
_VERDICT_ORDER = ("protects", "protects on NDCG@10 only", "protects on Agr@10 only", "no effect",
                  "helps the attacker")
PREVENTION_FAMILIES = {"output": ("output", "paper"), "gro": ("gro",), "combo": ("combo",)}
FAMILY_NAMES = {"output": "Output defenses", "gro": "GRO", "combo": "GRO + output defense"}
REFERENCE_FAMILIES = ("none", "gro-control", "control-replica", "null")
PROMOTION_RISE = 0.10  # an arm whose most-promoted item gains this share of top-10 lists is said to promote it


def combined_verdict(ndcg: str, agr: str) -> str:
    """One verdict from the two measures' verdicts ("protects" | "no effect" | "helps the attacker" | "reference").

    "protects" needs both falls' intervals above 0; a defense that helps the
    attacker on either measure helps the attacker (naming the measure); one
    protected measure with the other at no effect is said to protect that one only.
    """
    if "reference" in (ndcg, agr):
        return "reference"
    if ndcg == agr:
        return ndcg
    if "helps the attacker" in (ndcg, agr):
        return "helps the attacker (" + ("surrogate NDCG@10" if ndcg == "helps the attacker" else "Agr@10") + ")"
    return "protects on NDCG@10 only" if ndcg == PROTECTS else "protects on Agr@10 only"


def _verdict_rank(verdict: str) -> int:
    for rank, start in enumerate(_VERDICT_ORDER):
        if verdict.startswith(start):
            return rank
    return len(_VERDICT_ORDER)


def prevention_frame(evidence: Evidence) -> pd.DataFrame | None:
    """One row per arm at its strongest attacker on each measure, with raw numbers and the combined verdict.

    Read from the GRO stage's metrics (``defenses``: every attacker row of the
    matrix); None when the stage has not run.
    """
    records = evidence.stage("gro").get("defenses")
    if not records:
        return None
    table = pd.DataFrame(records)
    if "worst_agr" not in table or "agr10_test_drop" not in table:
        return None  # a run of the GRO stage before the arena
    ndcg = worst_rows(table, "ndcg").drop_duplicates("arm").set_index("arm", drop=False)
    agr = worst_rows(table, "agr").drop_duplicates("arm").set_index("arm", drop=False).reindex(ndcg.index)
    out = pd.DataFrame({
        "arm": ndcg["arm"], "family": ndcg["family"], "reference": ndcg["reference"],
        "attacker_ndcg": ndcg["attacker"] + ", " + ndcg["generator"],
        "attacker_agr": agr["attacker"] + ", " + agr["generator"],
        **{f"retention{s}": ndcg[f"retention_test{s}"].astype(float) for s in ("", "_low", "_high")},
        **{f"ndcg_fall{s}": ndcg[f"surrogate_test_ndcg10_drop{s}"].astype(float) for s in ("", "_low", "_high")},
        **{f"agr_fall{s}": agr[f"agr10_test_drop{s}"].astype(float) for s in ("", "_low", "_high")},
        "verdict_ndcg": ndcg["verdict"], "verdict_agr": agr["agr_verdict"],
        "promoted_share": ndcg.get("promoted_share", pd.Series(float("nan"), index=ndcg.index)).astype(float),
        "promoted_share_none": ndcg.get("promoted_share_none",
                                        pd.Series(float("nan"), index=ndcg.index)).astype(float),
    }).reset_index(drop=True)
    out["verdict"] = [combined_verdict(a, b) for a, b in zip(out["verdict_ndcg"], out["verdict_agr"])]
    out.loc[out["family"].isin(REFERENCE_FAMILIES), "verdict"] = "reference"
    return out


def strongest_attacker(row) -> str:
    if row["attacker_ndcg"] == row["attacker_agr"]:
        return row["attacker_ndcg"]
    return f"NDCG@10: {row['attacker_ndcg']}; Agr@10: {row['attacker_agr']}"


def prevention_table(frame: pd.DataFrame) -> pd.DataFrame:
    """The prevention section's table: each arm, its strongest attacker, utility kept and both falls (%)."""
    return pd.DataFrame({
        "defense": frame["arm"], "family": frame["family"], "compared with": frame["reference"].replace("", "—"),
        "strongest attacker": [strongest_attacker(row) for _, row in frame.iterrows()],
        "NDCG@10 kept, % [95% CI]": [interval_cell(r.retention, r.retention_low, r.retention_high)
                                     for r in frame.itertuples()],
        "surrogate NDCG@10 fall, % [95% CI]": [interval_cell(r.ndcg_fall, r.ndcg_fall_low, r.ndcg_fall_high)
                                               for r in frame.itertuples()],
        "Agr@10 fall, % [95% CI]": [interval_cell(r.agr_fall, r.agr_fall_low, r.agr_fall_high)
                                    for r in frame.itertuples()],
        "verdict": frame["verdict"],
    })


def family_of(family: str) -> str | None:
    for name, members in PREVENTION_FAMILIES.items():
        if family in members:
            return name
    return None


def representative(rows: pd.DataFrame) -> pd.Series:
    """A family's row for the abstract: the best verdict, then the most utility kept."""
    order = sorted(rows.index, key=lambda i: (_verdict_rank(rows.at[i, "verdict"]), -rows.at[i, "retention"]))
    return rows.loc[order[0]]


def meets_frontier_target(row, min_retention: float = 0.99, min_fall: float = 0.30) -> bool:
    """The issues' goal: protects on both measures, keeps ``min_retention`` of NDCG@10, falls >= ``min_fall``."""
    return (row["verdict"] == PROTECTS and row["retention"] >= min_retention
            and max(row["ndcg_fall"], row["agr_fall"]) >= min_fall)


def prevention_keys(evidence: Evidence) -> dict:
    """The report's headline keys on prevention (merged into headline.json before the abstract is written).

    Per family (output defenses, GRO, GRO + output): how many arms, how many
    protect on both measures, and the family's representative (best verdict,
    then most utility kept) with its utility kept and both falls with their
    intervals; ``prevention_target_met`` from the same rows.
    """
    frame = prevention_frame(evidence)
    if frame is None:
        return {}
    out: dict[str, Any] = {}
    defenses = frame[~frame["family"].isin(REFERENCE_FAMILIES)]
    for name in PREVENTION_FAMILIES:
        rows = defenses[defenses["family"].map(family_of) == name]
        if rows.empty:
            continue
        best = representative(rows)
        prefix = f"prevention_{name}"
        out.update({f"{prefix}_defenses": int(len(rows)),
                    f"{prefix}_protective": int((rows["verdict"] == PROTECTS).sum()),
                    f"{prefix}_defense": best["arm"], f"{prefix}_verdict": best["verdict"]})
        for column, key in (("retention", "retention"), ("ndcg_fall", "ndcg10_fall"), ("agr_fall", "agr10_fall")):
            for suffix in ("", "_low", "_high"):
                out[f"{prefix}_{key}{suffix}"] = float(best[column + suffix])
    out["prevention_target_met"] = bool(any(meets_frontier_target(row) for _, row in defenses.iterrows()))
    return out


# ---- detection: exact binomial intervals of false-positive counts ----------------------------------------------


def _binomial_cdf(k: int, n: int, p: float) -> float:
    """P(X <= k), X ~ Binomial(n, p), summed in log space."""
    if p <= 0:
        return 1.0
    if p >= 1:
        return 1.0 if k >= n else 0.0
    total = 0.0
    for i in range(k + 1):
        total += math.exp(math.lgamma(n + 1) - math.lgamma(i + 1) - math.lgamma(n - i + 1)
                          + i * math.log(p) + (n - i) * math.log1p(-p))
    return min(1.0, total)


def clopper_pearson(flagged: int, accounts: int, level: float = 0.95) -> tuple[float, float]:
    """The exact (Clopper–Pearson) interval of a rate of ``flagged`` out of ``accounts``, by bisection."""
    if accounts <= 0 or not 0 <= flagged <= accounts:
        raise ValueError(f"need 0 <= flagged <= accounts and accounts > 0, got {flagged} of {accounts}")
    tail = (1.0 - level) / 2.0

    def solve(target: Callable[[float], float]) -> float:
        lo, hi = 0.0, 1.0
        for _ in range(60):
            mid = (lo + hi) / 2.0
            if target(mid) > 0:
                lo = mid
            else:
                hi = mid
        return (lo + hi) / 2.0

    low = 0.0 if flagged == 0 else solve(lambda p: tail - (1.0 - _binomial_cdf(flagged - 1, accounts, p)))
    high = 1.0 if flagged == accounts else solve(lambda p: _binomial_cdf(flagged, accounts, p) - tail)
    return low, high


# ---- the questions ----------------------------------------------------------------------------------------------

QUALITY = (("hr@10", "HR@10 %"), ("ndcg@10", "NDCG@10 %"), ("hr@20", "HR@20 %"), ("ndcg@20", "NDCG@20 %"),
           ("mrr", "MRR %"))
PUBLISHED_BEST = "SASRec+ (full softmax CE)"  # the strongest published ML-1M row of STUDY.md's table


def target_model(evidence: Evidence) -> str:
    for stage in ("attack", "gro", "train"):
        name = dotted(evidence.stage(stage), "settings.target_model")
        if name:
            return str(name)
    return "sasrec"


def quality_paper_table(evidence: Evidence) -> pd.DataFrame:
    """Test quality of every trained model of the run, then the published rows, in percent."""
    rows = []
    for name, record in (evidence.stage("train").get("models") or {}).items():
        test = record.get("test", {})
        rows.append({"model": name, "source": "this run (test users)",
                     **{label: _pct_cell(test.get(key)) for key, label in QUALITY}})
    for _, row in PUBLISHED_QUALITY.iterrows():
        rows.append({"model": row["model"], "source": f"published: {row['source']}",
                     "HR@10 %": _pct_cell(row["hr@10"]), "NDCG@10 %": _pct_cell(row["ndcg@10"]),
                     "HR@20 %": "—", "NDCG@20 %": "—", "MRR %": "—"})
    return pd.DataFrame(rows, columns=["model", "source", *[label for _, label in QUALITY]])


def _pct_cell(value) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    return _pct_number(value)


def answer_targets(ev: Evidence, w: Writer) -> Answer:
    models = ev.stage("train").get("models") or {}
    if not models:
        return not_measured("The trained targets")
    w.table("quality", quality_paper_table(ev))
    target = target_model(ev)
    sentences = []
    if target in models:
        text = (f"The attacked target, {w.t('quality', target, 'model')}, reaches HR@10 "
                f"{w.t('quality', target, 'HR@10 %', '%')} and NDCG@10 ")
        if ev.has("attack_main_target_ndcg10", "attack_main_target_ndcg10_low"):
            ndcg = w.t("quality", target, "NDCG@10 %", "%")
            interval = w.h("attack_main_target_ndcg10", "interval")
            text += interval if interval.startswith(ndcg) else f"{ndcg} ({interval} when the report scored it)"
            text += " (95% interval over test users)"
        else:
            text += w.t("quality", target, "NDCG@10 %", "%")
        text += (" on the test users (full ranking over all items, items already in the history excluded), against "
                 f"HR@10 {w.t('quality', PUBLISHED_BEST, 'HR@10 %', '%')} and NDCG@10 "
                 f"{w.t('quality', PUBLISHED_BEST, 'NDCG@10 %', '%')} published for SASRec+ on ML-1M.")
        sentences.append(w.sentence(text))
    others = [name for name in models if name != target]
    if others:
        parts = [f"{w.t('quality', name, 'model')} HR@10 {w.t('quality', name, 'HR@10 %', '%')}, NDCG@10 "
                 f"{w.t('quality', name, 'NDCG@10 %', '%')}" for name in others]
        sentences.append(w.sentence("The other models of this run: " + "; ".join(parts) + "."))
    figure = ev.file("train/curves.png")
    best = dotted(ev.stage("train"), f"models.{target}.best_epoch")
    if best is not None:
        sentences.append(w.sentence(
            f"The figure shows each model's training loss and validation HR@10 / NDCG@10 per epoch; the "
            f"checkpoint kept for {target} is that of epoch {w.s('train', f'models.{target}.best_epoch', 'count')}, "
            "its best on validation."))
    return Answer(sentences, figure=figure, table="quality",
                  caption="Training loss and validation HR@10 / NDCG@10 (%) per epoch, one line per model (full "
                          "ranking, seen items filtered). Table: test figures in %, beside the published ones "
                          "(labelled; the seed's row gives only its HR@10).",
                  alt="Training curves: loss and validation HR@10 and NDCG@10 in percent against the epoch, one "
                      "line per model.")


def budget_paper_table(curve: list[dict]) -> pd.DataFrame:
    rows = []
    for row in sorted(curve, key=lambda r: (r["generator"], r["budget_sequences"])):
        target = row.get("target_test_ndcg10") or float("nan")
        rows.append({"attack": f"{row['generator']}, {row['budget_sequences']:,} sequences",
                     "queries": f"{int(row['budget_queries']):,}" if row.get("budget_queries") else "—",
                     "Agr@1 %": _pct_cell(row["agr1"]), "Agr@10 %": _pct_cell(row["agr10"]),
                     "surrogate NDCG@10 %": _pct_cell(row.get("surrogate_test_ndcg10")),
                     "surrogate / target NDCG@10 %": _pct_cell(row["surrogate_test_ndcg10"] / target
                                                               if target and target == target else None),
                     "epochs run": str(row.get("epochs_run", "—"))})
    return pd.DataFrame(rows)


def surrogate_training_words(attack_settings: dict) -> str:
    """How the attack stage trains its surrogates, from its settings: fixed epochs, no wall-clock cap."""
    from recsec_lib.attack.surrogate import SurrogateSettings

    epochs, patience = attack_settings.get("epochs"), attack_settings.get("patience") or 0
    words = f"Each surrogate trains for at most {epochs} epochs with its seed"
    if patience:
        words += (f" (after epoch {SurrogateSettings().min_epochs} it stops once its Agr@10 on the attacker's own "
                  f"held-out synthetic queries has not improved for {patience} epochs)")
    return words + ", never against a wall clock, so a larger budget never trains less"


def answer_extraction(ev: Evidence, w: Writer) -> Answer:
    attack = ev.stage("attack")
    curve = attack.get("budget_curve") or []
    if not curve:
        return not_measured("Model extraction")
    w.table("budget", budget_paper_table(curve))
    settings = attack.get("settings", {})
    main = int(ev.headline.get("attack_budget_sequences") or max(r["budget_sequences"] for r in curve))
    generator = ev.headline.get("attack_main_generator") or max(
        (r for r in curve if r["budget_sequences"] == main), key=lambda r: r["agr10"])["generator"]
    main_row = f"{generator}, {main:,} sequences"
    sentences = []
    box = f"a box that returns top-{w.s('attack', 'settings.k', 'count')} lists"
    if ev.has("attack_main_agr10", "attack_main_agr10_low", "attack_main_surrogate_ndcg10_low",
              "attack_budget_sequences", "attack_seq_len", "attack_main_generator"):
        sentences.append(w.sentence(
            f"At the main budget, {w.h('attack_budget_sequences', 'count')} synthetic sequences of "
            f"{w.h('attack_seq_len', 'count')} items ({w.t('budget', main_row, 'queries')} queries to {box}), the "
            f"strongest query generator, {w.h('attack_main_generator', 'text')}, trains a surrogate whose top 10 "
            f"shares {w.h('attack_main_agr10', 'interval')} of the target's (Agr@10) and whose own NDCG@10 is "
            f"{w.h('attack_main_surrogate_ndcg10', 'interval')}, "
            f"{w.t('budget', main_row, 'surrogate / target NDCG@10 %', '%')} of the target's (95% intervals "
            "over test users, one attack seed)."))
    else:
        sentences.append(w.sentence(
            f"At the main budget, {w.t('budget', main_row, 'attack')} of {w.s('attack', 'settings.seq_len', 'count')} "
            "items "
            f"({w.t('budget', main_row, 'queries')} queries to {box}), the surrogate's top 10 shares "
            f"{w.t('budget', main_row, 'Agr@10 %', '%')} of the target's (Agr@10) and its NDCG@10 is "
            f"{w.t('budget', main_row, 'surrogate NDCG@10 %', '%')} (no interval: the report found no surrogate "
            "checkpoint to score per user)."))
    steps = sorted((r for r in curve if r["generator"] == generator), key=lambda r: r["budget_sequences"])
    if len(steps) > 1:
        first, last = steps[0], steps[-1]
        first_row = f"{generator}, {first['budget_sequences']:,} sequences"
        moves = "rises" if last["agr10"] > first["agr10"] else "falls" if last["agr10"] < first["agr10"] else "stays"
        falls = [(f"{a['generator']}, {a['budget_sequences']:,} sequences",
                  f"{b['generator']}, {b['budget_sequences']:,} sequences")
                 for a, b in zip(steps, steps[1:]) if b["agr10"] < a["agr10"]]
        text = (f"Over the budgets, Agr@10 {moves} from {w.t('budget', first_row, 'Agr@10 %', '%')} "
                f"({w.t('budget', first_row, 'attack')}) to {w.t('budget', main_row, 'Agr@10 %', '%')} "
                f"({w.t('budget', main_row, 'attack')})")
        if falls:
            text += ", falling from " + " and from ".join(
                f"{w.t('budget', a, 'Agr@10 %', '%')} ({w.t('budget', a, 'attack')}) to "
                f"{w.t('budget', b, 'Agr@10 %', '%')}" for a, b in falls)
        elif moves == "rises":
            text += ", at every step"
        yue = PUBLISHED_ATTACK.set_index("target").loc["SASRec", "autoregressive agr@10"]
        text += (f"; Yue et al. report {_pct_number(yue)}% (autoregressive, SASRec) at 5,000 sequences of 200 "
                 "items (published, not measured here).")
        sentences.append(w.sentence(text))
    notes = [defense_attacker_sentence(ev, w)]
    return Answer(sentences, figure=ev.file("attack/budget_curve.png"), table="budget",
                  caption=("Agr@10 (solid) and Agr@1 (dashed), in % of the target's top-10 (top-1) list, against "
                           "the attack budget in synthetic sequences, per query generator; agreement on the real "
                           f"test users. {surrogate_training_words(settings)}."),
                  alt="Line chart: the surrogate's agreement with the target in percent against the attack "
                      "budget, one colour per query generator.",
                  notes=[n for n in notes if n is not None])


def defense_attacker_sentence(ev: Evidence, w: Writer) -> Sentence | None:
    """Why the defense section's undefended attacker is not the attack stage's (item 2 of issue 26)."""
    gro, attack = ev.stage("gro").get("settings"), ev.stage("attack").get("settings")
    needed = ("attack_sequences", "attack_seq_len", "attack_seeds", "views", "surrogate_epochs")
    if not gro or not attack or not ev.has("none_agr10", "attack_budget_sequences") \
            or any(key not in gro for key in needed) or any(key not in attack for key in ("seq_len", "epochs")):
        return None
    differences = []
    if gro["attack_sequences"] != ev.headline.get("attack_budget_sequences"):
        differences.append(f"{w.s('gro', 'settings.attack_sequences', 'count')} sequences instead of "
                           f"{w.h('attack_budget_sequences', 'count')}")
    if gro["attack_seq_len"] != attack.get("seq_len"):
        differences.append(f"sequences of {w.s('gro', 'settings.attack_seq_len', 'count')} items instead of "
                           f"{w.s('attack', 'settings.seq_len', 'count')}")
    views = gro.get("views") or []
    differences.append(f"each of {w.s('gro', 'settings.attack_seeds', 'count')} seeds and {len(views)} attacker "
                       f"views ({', '.join(views)}) where the attack stage runs one seed, naive")
    if gro.get("surrogate_epochs") != attack.get("epochs"):
        differences.append(f"surrogates of {w.s('gro', 'settings.surrogate_epochs', 'count')} epochs instead of "
                           f"{w.s('attack', 'settings.epochs', 'count')}")
    arms = len(ev.stage("gro").get("arms") or [])
    fewer = (gro["attack_sequences"] * gro["attack_seq_len"]
             < (ev.headline.get("attack_budget_sequences") or 0) * (attack.get("seq_len") or 0))
    why = (f"every one of its {arms} arms faces every attacker, so each attack is made smaller to fit the "
           "profile's time" if fewer else f"every one of its {arms} arms faces every attacker")
    return w.sentence(
        f"The prevention section attacks with a different{', smaller' if fewer else ''} attacker: "
        f"{'; '.join(differences)}. Its strongest attacker of the undefended target reaches Agr@10 "
        f"{w.h('none_agr10')}, against "
        f"{w.h('attack_main_agr10') if ev.has('attack_main_agr10') else 'the figure above'} for the attack "
        f"stage's: {why}.")


def answer_prevention(ev: Evidence, w: Writer) -> Answer:
    frame = prevention_frame(ev)
    if frame is None:
        return not_measured("Prevention defenses")
    w.table("prevention", prevention_table(frame))
    sentences = []
    defenses = frame[~frame["family"].isin(REFERENCE_FAMILIES)]
    for name, label in FAMILY_NAMES.items():
        rows = defenses[defenses["family"].map(family_of) == name]
        if rows.empty:
            continue
        best = representative(rows)
        protective = int((rows["verdict"] == PROTECTS).sum())
        arm = best["arm"]
        head = f"{label}: {protective} of {len(rows)} protect on both measures; " if len(rows) > 1 else f"{label}: "
        if best["verdict"] == PROTECTS:
            w.claim("prevention", arm, "verdict", PROTECTS)
            lead = "the protective one that keeps most utility" if len(rows) > 1 else "it protects"
        else:
            lead = "the closest to protecting" if len(rows) > 1 else "its only defense"
        sentences.append(w.sentence(
            f"{head}{lead}, {w.t('prevention', arm, 'defense')}, keeps "
            f"{w.t('prevention', arm, 'NDCG@10 kept, % [95% CI]', '%')} of NDCG@10 against its strongest attacker, "
            f"whose surrogate's NDCG@10 falls {w.t('prevention', arm, 'surrogate NDCG@10 fall, % [95% CI]', '%')} "
            f"and Agr@10 {w.t('prevention', arm, 'Agr@10 fall, % [95% CI]', '%')}: "
            f"{w.t('prevention', arm, 'verdict')}."))
    for rule, choice in (ev.stage("gro").get("lambda_choices") or {}).items():
        sentence = lambda_sentence(ev, w, rule, choice)
        if sentence is not None:
            sentences.append(sentence)
    notes = [target_sentence(ev, w, frame)]
    if ev.stage("gro").get("settings"):
        from recsec_lib.study.report import gro_training_sentence

        notes.append(w.plain(gro_training_sentence(ev.stage("gro"))))
    stale = headline_best_sentence(ev, w, frame)
    if stale is not None:
        notes.append(stale)
    gro = ev.stage("gro").get("settings") or {}
    notes.append(w.sentence(
        "Each fall is measured against the strongest attacker of the compared arm's model (None for output "
        f"defenses, the λ = 0 control for GRO), with 95% intervals over test users and "
        f"{w.s('gro', 'settings.attack_seeds', 'count')} attack seeds; they do not include training noise."
        if gro else "Falls with 95% intervals over test users and attack seeds."))
    return Answer(sentences, figure=ev.file("gro/frontier.png"), table="prevention", notes=notes,
                  caption=("Each defense at its strongest attacker: right = more of the target's NDCG@10 kept for "
                           "users (% of the compared arm), up = a larger fall of the stolen surrogate's NDCG@10 "
                           "(%); bars are 95% intervals. Points are numbered as in the legend; points that "
                           "coincide share a label. The shaded corner is the target (≥ 99% kept, ≥ 30% fall)."),
                  alt="Scatter plot: utility kept against the fall of the surrogate's NDCG@10 for each defense, "
                      "in percent, with 95% intervals.")


def lambda_sentence(ev: Evidence, w: Writer, rule: str, choice: dict) -> Sentence | None:
    """GRO's λ choice on validation for one zero-gradient rule, naming the condition that failed."""
    if choice.get("lam") is not None:
        return w.sentence(f"GRO, rule {rule}: λ = {w.s('gro', f'lambda_choices.{rule}.lam', 'number')} was chosen "
                          "on validation (its validation fall is above 0 and it keeps the utility floor).")
    if choice.get("shown_lam") is None:
        return w.plain(f"GRO, rule {rule}: {choice.get('reason', 'no λ')}.")
    floor = dotted(ev.stage("gro"), "settings.min_retention")
    kept = choice.get("retention_valid")
    shown = w.s("gro", f"lambda_choices.{rule}.shown_lam", "number")
    if floor is not None and kept is not None and kept < floor:
        why = (f"λ = {shown} keeps {w.s('gro', f'lambda_choices.{rule}.retention_valid', 'percent')} of the "
               f"control's validation NDCG@10, below the {w.s('gro', 'settings.min_retention', 'percent')} floor")
    else:
        why = (f"λ = {shown}'s validation fall of the surrogate's NDCG@10, "
               f"{w.s('gro', f'lambda_choices.{rule}.drop_valid', 'percent')}, is not above 0 with 95% confidence")
    return w.sentence(f"GRO, rule {rule}: no λ passes the validation rule ({why}); the test figures above are "
                      f"λ = {shown}'s.")


def target_sentence(ev: Evidence, w: Writer, frame: pd.DataFrame) -> Sentence:
    defenses = frame[~frame["family"].isin(REFERENCE_FAMILIES)]
    met = [row["arm"] for _, row in defenses.iterrows() if meets_frontier_target(row)]
    if not met:
        return w.plain("No defense meets the target: protecting on both measures while keeping ≥ 99% of NDCG@10 "
                       "with a fall of ≥ 30%.")
    names = ", ".join(w.t("prevention", arm, "defense") for arm in met)
    return w.sentence(f"Meets the target (protects on both measures, keeps ≥ 99% of NDCG@10, falls ≥ 30%): {names}.")


def headline_best_sentence(ev: Evidence, w: Writer, frame: pd.DataFrame) -> Sentence | None:
    """The GRO stage's headline "best defense" judged on one measure; said plainly when this paper disagrees."""
    best = ev.headline.get("defense_frontier_best")
    if not best or best not in set(frame["arm"]) or ev.headline.get("defense_frontier_best_fall", 0) <= 0:
        return None
    verdict = frame.loc[frame["arm"] == best, "verdict"].iloc[0]
    if verdict == PROTECTS:
        return None
    return w.sentence(
        f"The GRO stage's headline key defense_frontier_best names {w.h('defense_frontier_best', 'text')} for its "
        f"{w.h('defense_frontier_best_measure', 'text')} fall alone; judged on both measures its verdict is "
        f"{w.t('prevention', best, 'verdict')}, so this report does not count it as protecting.")


def answer_gro_curve(ev: Evidence, w: Writer) -> Answer:
    if not ev.has("gro_extraction_ratio_control") and not ev.has("gro_no_point_reason") \
            and not ev.has("gro_best_point_retention"):
        return not_measured("GRO's trade-off curve against a utility-matched null")
    rows = []
    for key, what, kind in (("gro_best_point", "best point (validation)", "text"),
                            ("gro_best_point_retention", "NDCG@10 kept, %", "percent"),
                            ("gro_best_point_fall_vs_null", "surrogate NDCG@10 fall against the null, %", "percent"),
                            ("gro_best_point_fall_vs_null_low", "its 95% interval's low end, %", "percent"),
                            ("gro_best_point_status", "status", "text"),
                            ("gro_extraction_ratio_control", "extraction ratio, λ = 0 control", "number"),
                            ("gro_extraction_ratio_best", "extraction ratio, best point", "number"),
                            ("gro_scratch_utility_retention", "from scratch: NDCG@10 kept, %", "percent"),
                            ("gro_scratch_surrogate_ndcg10_drop", "from scratch: surrogate NDCG@10 fall, %",
                             "percent"),
                            ("gro_no_point_reason", "why there is no best point", "text")):
        if ev.has(key):
            value = ev.headline[key]
            rows.append({"figure": what, "value": _pct_number(value) if kind == "percent" else show(kind, value)})
    w.table("gro_curve", pd.DataFrame(rows, columns=["figure", "value"]))
    sentences = []
    if ev.has("gro_best_point_retention", "gro_best_point_fall_vs_null", "gro_best_point_fall_vs_null_low"):
        sentences.append(w.sentence(
            f"The best GRO point chosen on validation, {w.h('gro_best_point', 'text') if ev.has('gro_best_point') else 'unnamed'}, "
            f"keeps {w.h('gro_best_point_retention')} of the control's NDCG@10; against a model of the same "
            f"utility trained with no defensive aim, its surrogate's NDCG@10 falls "
            f"{w.h('gro_best_point_fall_vs_null')} (95% interval from {w.h('gro_best_point_fall_vs_null_low')})"
            + (f": {w.h('gro_best_point_status', 'text')}." if ev.has("gro_best_point_status") else ".")))
    elif ev.has("gro_no_point_reason"):
        sentences.append(w.sentence(f"No GRO point is reported: {w.h('gro_no_point_reason', 'text')}."))
    if ev.has("gro_extraction_ratio_control"):
        text = (f"The extraction ratio (surrogate NDCG@10 / served NDCG@10) is "
                f"{w.h('gro_extraction_ratio_control', 'number')} for the λ = 0 control")
        if ev.has("gro_extraction_ratio_best"):
            text += f" and {w.h('gro_extraction_ratio_best', 'number')} for the best point"
        sentences.append(w.sentence(text + "; a higher ratio means the defended box is copied more faithfully."))
    if ev.has("gro_scratch_utility_retention", "gro_scratch_surrogate_ndcg10_drop"):
        sentences.append(w.sentence(
            f"Trained from scratch, GRO keeps {w.h('gro_scratch_utility_retention')} of NDCG@10 for a "
            f"{w.h('gro_scratch_surrogate_ndcg10_drop')} fall of the surrogate's NDCG@10."))
    return Answer(sentences, figure=ev.first_file("gro/curve.png", "gro/*curve*.png"), table="gro_curve",
                  caption="Served NDCG@10 kept against the surrogate's NDCG@10 fall for each GRO point, with the "
                          "output defenses and the utility-matched null on the same axes (95% intervals).",
                  alt="GRO's trade-off curve: utility kept against the surrogate's fall, one line per rule.")


DETECTOR_NAMES = {"seat+cap": "SEAT + caps", "seat": "SEAT", "seat-pairs": "SEAT (pairs only)", "caps": "caps",
                  "volume": "volume cap", "rate": "rate cap", "prada": "PRADA"}
SEAT_KEYS = {"seat+cap": "seat_plus_cap_accounts_needed", "seat": "seat_accounts_needed", "caps": "caps_accounts_needed",
             "volume": "volume_cap_accounts_needed", "rate": "rate_cap_accounts_needed",
             "prada": "prada_accounts_needed"}


def accounts_words(value: float) -> str:
    """"1 account", "4 accounts", "more accounts than the grid"."""
    if math.isinf(value):
        return "more accounts than the grid tried"
    return f"{_count(value)} account" + ("" if value == 1 else "s")


def _needed(value) -> float:
    """Accounts needed read back from JSON: None (beyond the grid) as infinity."""
    return math.inf if value is None else float(value)


def fpr_cell(rate: float | None, accounts: int | None) -> str:
    """"0.17 [0.05, 0.43]": a false-positive rate in % with its exact interval (or the point alone)."""
    if rate is None:
        return "—"
    if not accounts:
        return _pct_number(rate)
    flagged = int(round(rate * accounts))
    low, high = clopper_pearson(flagged, accounts)
    return interval_cell(rate, low, high)


def seat_detection_table(ev: Evidence) -> pd.DataFrame:
    """Each detector's cheapest zoo attacker, the accounts it needs, the ratio to the volume cap, benign FPR (%)."""
    seat = ev.stage("seat")
    per_attack = seat.get("accounts_needed_per_attack") or {}
    fpr = seat.get("false_positive_rate") or {}
    accounts = seat.get("benign_test_accounts")
    volume = ev.headline.get("volume_cap_accounts_needed")
    rows = []
    for detector, key in SEAT_KEYS.items():
        if key not in ev.headline:
            continue
        needed = _needed(ev.headline[key])
        attacks = {name.split("/")[0]: _needed(v) for name, v in per_attack.items() if name.endswith(f"/{detector}")}
        cheapest = [name for name, v in attacks.items() if v == needed]
        ratio = needed / volume if volume and math.isfinite(needed) else None
        rows.append({"detector": DETECTOR_NAMES[detector], "cheapest zoo attacker": ", ".join(cheapest) or "—",
                     "accounts needed": _count(needed), "× volume cap": "—" if ratio is None else f"{ratio:.2f}",
                     "benign accounts flagged, % [95% CI]": fpr_cell(fpr.get(detector), accounts)})
    return pd.DataFrame(rows)


def answer_detection(ev: Evidence, w: Writer) -> Answer:
    if ev.has("detect_best", "detect_best_accounts_needed_worst"):
        return detection_against_choosing_attackers(ev, w)
    if not ev.has("seat_plus_cap_accounts_needed", "volume_cap_accounts_needed", "seat_plus_cap_worst_attack",
                  "seat_plus_cap_cost_increase_over_volume_cap"):
        return not_measured("Detection")
    w.table("detection", seat_detection_table(ev))
    seat_settings = ev.stage("seat").get("settings") or {}
    sentences = [w.sentence(
        f"Against the cheapest attacker of the zoo, {w.h('seat_plus_cap_worst_attack', 'text')}, SEAT with the caps "
        f"makes the attacker spread its queries over {w.h('seat_plus_cap_accounts_needed', 'count')} accounts, "
        f"{w.h('seat_plus_cap_cost_increase_over_volume_cap', 'ratio')} the "
        f"{w.h('volume_cap_accounts_needed', 'count')} a volume cap alone forces (target ≥ 4×: "
        f"{'met' if ev.headline['seat_plus_cap_cost_increase_over_volume_cap'] >= 4 else 'missed'})"
        + (f"; over the caps alone SEAT adds {w.h('seat_plus_cap_cost_increase_over_caps', 'ratio')}."
           if ev.has("seat_plus_cap_cost_increase_over_caps") else "."))]
    if ev.has("seat_plus_cap_false_positive_rate"):
        row = DETECTOR_NAMES["seat+cap"]
        text = (f"On held-out benign accounts SEAT with the caps flags "
                f"{w.t('detection', row, 'benign accounts flagged, % [95% CI]', '%')} (target ≤ 0.1%: "
                f"{'met' if ev.headline['seat_plus_cap_false_positive_rate'] <= 0.001 else 'missed'})")
        if ev.stage("seat").get("seat_plus_cap_worst_form"):
            text += (f"; its worst kind of benign account, {w.s('seat', 'seat_plus_cap_worst_form')}, at "
                     f"{w.s('seat', 'seat_plus_cap_worst_form_rate', 'percent')}")
        sentences.append(w.sentence(text + "."))
    horizon = seat_settings.get("attack_horizon_hours")
    notes = [w.sentence(
        "The zoo's attackers have fixed parameters (their chain counts, one way of splitting queries over "
        f"accounts, pacing over {w.s('seat', 'settings.attack_horizon_hours', 'number')} h): an attacker who "
        f"chooses them against the detector is {NOT_MEASURED}, so these counts are the defender's best case."
        if horizon is not None else
        f"An attacker who chooses its own parameters against the detector is {NOT_MEASURED}.")]
    if seat_settings.get("surrogate_seconds"):
        notes.append(w.sentence(
            f"The zoo's surrogates train for at most {w.s('seat', 'settings.surrogate_epochs', 'count')} epochs or "
            f"{w.s('seat', 'settings.surrogate_seconds', 'number')} s, whichever comes first (a time cap: their "
            "Agr@10 depends on the machine's speed)."))
    return Answer(sentences, figure=ev.file("seat/zoo.png"), table="detection", notes=notes,
                  caption="Left: the fewest accounts over which each attacker of the zoo can split its queries "
                          "with no account flagged, per detector (log scale; a hatched bar: flagged at every count "
                          "tried). Right: the Agr@10 (%) of the surrogate that attacker trains. Table: per "
                          "detector the cheapest attacker, and the false-positive rate on held-out benign accounts "
                          "with its exact 95% interval.",
                  alt="Bar chart: accounts each zoo attacker needs per detector, log scale, beside its "
                      "surrogate's Agr@10 in percent.")


def detection_against_choosing_attackers(ev: Evidence, w: Writer) -> Answer:
    rows = []
    for label, key, rate, high in (
            (str(ev.headline["detect_best"]), "detect_best_accounts_needed_worst",
             "detect_best_false_positive_rate", "detect_best_false_positive_rate_high"),
            ("caps", "caps_accounts_needed_worst", "benign_real_timing_false_positive_rate_caps",
             "benign_real_timing_false_positive_rate_caps_high"),
            ("volume cap", "volume_cap_accounts_needed_worst", "", "")):
        if key not in ev.headline:
            continue
        flagged = ev.headline.get(rate) if rate else None
        upper = ev.headline.get(high) if high else None
        rows.append({"detector": label, "accounts needed (worst case)": _count(_needed(ev.headline[key])),
                     "benign flagged, %": "—" if flagged is None else _pct_number(flagged),
                     "its 95% upper end, %": "—" if upper is None else _pct_number(upper)})
    w.table("detection", pd.DataFrame(rows))
    over_volume = ev.headline.get("detect_best_cost_increase_over_volume_cap")
    over_caps = ev.headline.get("detect_best_cost_increase_over_caps")
    holds = (over_volume is not None and over_volume >= 2 and over_caps is not None and over_caps > 1.2)
    text = (f"Against an attacker who chooses its own parameters, the strongest detector, "
            f"{w.h('detect_best', 'text')}, "
            f"makes it spread its queries over {w.h('detect_best_accounts_needed_worst', 'count')} accounts in the "
            "worst case")
    if ev.has("volume_cap_accounts_needed_worst"):
        text += f", against {w.h('volume_cap_accounts_needed_worst', 'count')} for a volume cap"
    if ev.has("caps_accounts_needed_worst"):
        text += f" and {w.h('caps_accounts_needed_worst', 'count')} for the caps"
    if ev.has("detect_best_cost_increase_over_caps"):
        text += f" ({w.h('detect_best_cost_increase_over_caps', 'ratio')} the caps')"
    text += (": per-account detection " + ("holds" if holds else "does not hold") + " against such an attacker "
             "(target ≥ 2× the volume cap and > 1.2× the caps).")
    sentences = [w.sentence(text)]
    if ev.has("detect_best_false_positive_rate"):
        fpr = f"It flags {w.h('detect_best_false_positive_rate')} of held-out benign users"
        if ev.has("detect_best_false_positive_rate_high"):
            fpr += f" (95% upper end {w.h('detect_best_false_positive_rate_high')})"
        if ev.has("benign_real_timing_false_positive_rate_caps"):
            fpr += (f"; the caps alone flag {w.h('benign_real_timing_false_positive_rate_caps')} of users replayed "
                    "with their real timing")
        sentences.append(w.sentence(fpr + "."))
    figure = ev.first_file("seat/accounts_needed*.png", "seat/search*.png", "seat/zoo.png")
    return Answer(sentences, figure=figure, table="detection",
                  caption="The fewest accounts the attacker needs per detector, minimised over its own "
                          "parameters (chains, split over accounts, pacing), and the false-positive rate on "
                          "held-out benign users with an exact 95% interval.",
                  alt="Accounts needed per detector over the attacker's parameter space.")


def answer_verification(ev: Evidence, w: Writer) -> Answer:
    if not ev.has("watermark_verified_share"):
        return not_measured("Ownership verification (a watermark)")
    rows = []
    for key, what, kind in (("watermark_utility_retention", "NDCG@10 kept by the watermarked target, %", "percent"),
                            ("watermark_verified_share", "surrogates with Agr@10 ≥ 30% verified (p < 0.01), %",
                             "percent"),
                            ("watermark_max_p_surrogate", "largest p-value on a surrogate", "p"),
                            ("watermark_independent_models", "independent models tested", "count"),
                            ("watermark_false_claims", "false claims among them", "count"),
                            ("watermark_min_p_independent", "smallest p-value on an independent model", "p"),
                            ("watermark_knowing_attacker_verified", "verified against the attacker who knows the "
                                                                    "scheme", "text")):
        if ev.has(key):
            value = ev.headline[key]
            text = (_pct_number(value) if kind == "percent" else
                    ("yes" if value else "no") if isinstance(value, bool) else show(kind, value))
            rows.append({"figure": what, "value": text})
    w.table("verification", pd.DataFrame(rows, columns=["figure", "value"]))
    sentences = []
    text = f"The watermark is verified (p < 0.01) on {w.h('watermark_verified_share')} of the surrogates whose Agr@10 " \
           "is at least 30%"
    if ev.has("watermark_max_p_surrogate"):
        text += f" (largest p-value {w.h('watermark_max_p_surrogate', 'p')})"
    if ev.has("watermark_utility_retention"):
        text += f", at {w.h('watermark_utility_retention')} of the target's NDCG@10 kept"
    sentences.append(w.sentence(text + "."))
    if ev.has("watermark_false_claims", "watermark_independent_models"):
        text = (f"It falsely claims {w.h('watermark_false_claims', 'count')} of "
                f"{w.h('watermark_independent_models', 'count')} independent models")
        if ev.has("watermark_min_p_independent"):
            text += f" (smallest p-value {w.h('watermark_min_p_independent', 'p')})"
        sentences.append(w.sentence(text + "."))
    if "watermark_knowing_attacker_verified" in ev.headline:
        knowing = ev.headline["watermark_knowing_attacker_verified"]
        sentences.append(w.plain("Against an attacker who knows the scheme but not the key, the watermark is "
                                 + ("still verified." if knowing else "NOT verified: that attacker strips it.")))
    return Answer(sentences, figure=ev.first_file("watermark/p_values.png", "watermark/*.png"),
                  table="verification",
                  caption="p-values of the ownership test on the watermarked target's surrogates and on independent "
                          "models (log scale); the line is the decision threshold.",
                  alt="p-values of the watermark test for surrogates and independent models.")


SETTLED = "settled on both measures"


def robustness_table(frame: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for _, row in frame[~frame["family"].isin(REFERENCE_FAMILIES)].iterrows():
        settled = all(row[f"{k}_low"] > 0 or row[f"{k}_high"] < 0 for k in ("ndcg_fall", "agr_fall"))
        rows.append({"defense": row["arm"],
                     "surrogate NDCG@10 fall, % [95% CI]": interval_cell(row["ndcg_fall"], row["ndcg_fall_low"],
                                                                         row["ndcg_fall_high"]),
                     "Agr@10 fall, % [95% CI]": interval_cell(row["agr_fall"], row["agr_fall_low"],
                                                              row["agr_fall_high"]),
                     SETTLED: "yes" if settled else "no"})
    return pd.DataFrame(rows, columns=["defense", "surrogate NDCG@10 fall, % [95% CI]", "Agr@10 fall, % [95% CI]",
                                       SETTLED])


def answer_robustness(ev: Evidence, w: Writer) -> Answer:
    frame = prevention_frame(ev)
    if frame is None:
        return not_measured("Robustness of the findings")
    table = w.table("robustness", robustness_table(frame))
    sentences = []
    for answer, words in (("yes", "Settled at this scale on both measures (each 95% interval excludes 0)"),
                          ("no", "Not distinguishable from no effect on at least one measure")):
        names = table.loc[table[SETTLED] == answer, "defense"].tolist()
        if not names and answer == "no":
            continue
        for name in names:
            w.claim("robustness", name, SETTLED, answer)
        cited = ", ".join(w.t("robustness", name, "defense") for name in names)
        sentences.append(w.sentence(f"{words}: {cited or 'no defense'}."))
    if ev.has("none_agr10", "gro_control_agr10"):
        sentences.append(w.sentence(
            f"Fine-tuning alone moves the strongest attacker's Agr@10 from {w.h('none_agr10')} (None) to "
            f"{w.h('gro_control_agr10')} (the λ = 0 control): the intervals cover test users and attack seeds but "
            "not training seeds, so a GRO fall of that size or smaller is not settled."))
    return Answer(sentences, table="robustness",
                  caption="Each defense's falls with their 95% intervals, and whether both intervals exclude 0.")


QUESTIONS: tuple[Question, ...] = (
    Question("targets", "How good are the targets?", answer_targets),
    Question("extraction", "How well does extraction work, and how does it grow with the budget?",
             answer_extraction),
    Question("prevention", "What does each prevention defense cost, and what does it buy?", answer_prevention),
    Question("gro-curve", "Does GRO protect more than a weaker model of the same utility?", answer_gro_curve),
    Question("detection", "Does detection hold against attackers who know it?", answer_detection),
    Question("verification", "Can the owner prove a copy?", answer_verification),
    Question("robustness", "What is robust, and what is not?", answer_robustness),
)


# ---- the verdict table --------------------------------------------------------------------------------------

VERDICT_COLUMNS = ("defense", "family", "worst attacker", "what users keep", "what the attacker loses",
                   "cost to the owner", "verdict")


def verdict_table(ev: Evidence) -> pd.DataFrame:
    """One row per defense of every family, in consistent units (percent with 95% intervals)."""
    rows = []
    frame = prevention_frame(ev)
    if frame is not None:
        ratio = ev.headline.get("gro_epoch_cost_ratio")
        for _, row in frame[~frame["family"].isin(REFERENCE_FAMILIES)].iterrows():
            family = family_of(row["family"]) or row["family"]
            if family == "output":
                cost = "serving only: each list is changed before it is served"
            else:
                cost = (f"training: {ratio:.2f}× the time of an undefended epoch" if ratio else "training")
            rise = row["promoted_share"] - row["promoted_share_none"]
            if rise == rise and rise >= PROMOTION_RISE:
                cost += (f"; promotes one item into {_pct_number(row['promoted_share'])}% of served top-10 lists "
                         f"(None: {_pct_number(row['promoted_share_none'])}%)")
            rows.append({"defense": row["arm"], "family": f"prevention: {FAMILY_NAMES.get(family, family)}",
                         "worst attacker": strongest_attacker(row),
                         "what users keep": "NDCG@10 " + cell_shown(interval_cell(
                             row["retention"], row["retention_low"], row["retention_high"]), "%"),
                         "what the attacker loses": (
                             "surrogate NDCG@10 falls " + cell_shown(interval_cell(
                                 row["ndcg_fall"], row["ndcg_fall_low"], row["ndcg_fall_high"]), "%")
                             + "; Agr@10 falls " + cell_shown(interval_cell(
                                 row["agr_fall"], row["agr_fall_low"], row["agr_fall_high"]), "%")),
                         "cost to the owner": cost, "verdict": row["verdict"]})
    rows += detection_verdict_rows(ev)
    rows += verification_verdict_rows(ev)
    return pd.DataFrame(rows, columns=list(VERDICT_COLUMNS))


def detection_verdict_rows(ev: Evidence) -> list[dict]:
    h = ev.headline
    if "detect_best" in h and h.get("detect_best_accounts_needed_worst") is not None:
        over_volume, over_caps = (h.get("detect_best_cost_increase_over_volume_cap"),
                                  h.get("detect_best_cost_increase_over_caps"))
        holds = over_volume is not None and over_volume >= 2 and over_caps is not None and over_caps > 1.2
        flagged = h.get("detect_best_false_positive_rate")
        keep = "—" if flagged is None else f"benign users flagged {_pct_number(flagged)}%" + (
            f" (95% upper end {_pct_number(h['detect_best_false_positive_rate_high'])}%)"
            if h.get("detect_best_false_positive_rate_high") is not None else "")
        loses = f"needs {accounts_words(_needed(h['detect_best_accounts_needed_worst']))}"
        if over_caps is not None:
            loses += f" ({over_caps:.2f}× the caps'"
            loses += f", {over_volume:.2f}× the volume cap's)" if over_volume is not None else ")"
        return [{"defense": str(h["detect_best"]), "family": "detection", "worst attacker":
                 "the attacker's cheapest parameters", "what users keep": keep, "what the attacker loses": loses,
                 "cost to the owner": "a monitor on every query", "verdict": "holds" if holds else "does not hold"}]
    if h.get("seat_plus_cap_accounts_needed") is None:
        return []
    seat = ev.stage("seat")
    fpr = seat.get("false_positive_rate") or {}
    accounts = seat.get("benign_test_accounts")
    volume = h.get("volume_cap_accounts_needed")
    rows = []
    for detector, worst_key, ratio_key in (("seat+cap", "seat_plus_cap_worst_attack",
                                            "seat_plus_cap_cost_increase_over_volume_cap"),
                                           ("seat", "seat_worst_attack", "seat_cost_increase_over_volume_cap")):
        needed = h.get(SEAT_KEYS[detector])
        if needed is None and SEAT_KEYS[detector] not in h:
            continue
        ratio = h.get(ratio_key)
        rate = fpr.get(detector, h.get("seat_plus_cap_false_positive_rate" if detector == "seat+cap"
                                       else "seat_false_positive_rate"))
        holds = ratio is not None and ratio >= 4 and rate is not None and rate <= 0.001
        loses = f"needs {accounts_words(_needed(needed))}"
        if ratio is not None and volume:
            loses += f" ({ratio:.2f}× the volume cap's {_count(volume)})"
        qps = h.get("seat_monitor_queries_per_second")
        rows.append({"defense": DETECTOR_NAMES[detector], "family": "detection",
                     "worst attacker": f"{h.get(worst_key, '—')} (cheapest of the zoo)",
                     "what users keep": f"benign accounts flagged {cell_shown(fpr_cell(rate, accounts), '%')}",
                     "what the attacker loses": loses,
                     "cost to the owner": f"a monitor of {qps:,.0f} queries/s" if qps else "a monitor on every query",
                     "verdict": "holds" if holds else "does not hold"})
    return rows


def verification_verdict_rows(ev: Evidence) -> list[dict]:
    h = ev.headline
    if h.get("watermark_verified_share") is None:
        return []
    share, false_claims = h["watermark_verified_share"], h.get("watermark_false_claims")
    proves = share >= 1.0 and false_claims == 0
    loses = f"copies verified: {_pct_number(share)}% of surrogates with Agr@10 ≥ 30%"
    if false_claims is not None:
        loses += f"; {_count(false_claims)} false claims of {_count(h.get('watermark_independent_models', 0))}"
    knowing = h.get("watermark_knowing_attacker_verified")
    return [{"defense": "watermark", "family": "verification",
             "worst attacker": "the attacker who knows the scheme" + (
                 "" if knowing is None else (": still verified" if knowing else ": strips it")),
             "what users keep": ("NDCG@10 " + _pct_number(h["watermark_utility_retention"]) + "%"
                                 if h.get("watermark_utility_retention") is not None else "—"),
             "what the attacker loses": loses, "cost to the owner": "one fine-tuning with the watermark",
             "verdict": "proves a copy" if proves else "does not prove every copy"}]


# ---- the abstract -------------------------------------------------------------------------------------------


def dataset_size_key(ev: Evidence, what: str) -> str:
    return f"{str(ev.headline.get('dataset', '')).replace('-', '')}_{what}"


def abstract(ev: Evidence, w: Writer) -> list[Sentence]:
    """Four or five sentences, every number a headline key."""
    h = ev.headline
    out = []
    model = target_model(ev)
    users, items = dataset_size_key(ev, "users"), dataset_size_key(ev, "items")
    size = (f" ({w.h(users, 'count')} users, {w.h(items, 'count')} items)" if ev.has(users, items) else "")
    quality = ""
    if ev.has("attack_main_target_ndcg10", "attack_main_target_ndcg10_low"):
        quality = f", test NDCG@10 {w.h('attack_main_target_ndcg10', 'interval')}"
    elif ev.has(f"{model}_test_ndcg10"):
        quality = f", test NDCG@10 {w.h(f'{model}_test_ndcg10')}"
    data = w.h("dataset", "text") if ev.has("dataset") else "its dataset"
    out.append(w.sentence(
        f"We steal a {model} recommender trained on {data}{size}{quality}, served as a black "
        "box that answers each viewing history with a ranked list, by the data-free extraction attack of Yue et "
        "al., and judge three defense families (prevention, detection, verification) against the strongest "
        "attacker each one faces."))
    if ev.has("attack_main_agr10", "attack_main_agr10_low", "attack_main_surrogate_ndcg10_low",
              "attack_budget_sequences", "attack_seq_len"):
        out.append(w.sentence(
            f"With {w.h('attack_budget_sequences', 'count')} synthetic sequences of {w.h('attack_seq_len', 'count')} "
            f"items, the surrogate's top-10 list shares {w.h('attack_main_agr10', 'interval')} of the target's "
            f"(Agr@10) and its NDCG@10 is {w.h('attack_main_surrogate_ndcg10', 'interval')}."))
    else:
        out.append(w.plain(f"The attack's fidelity with intervals was {NOT_MEASURED}."))
    parts = []
    for name, label in (("output", "of the output defenses"), ("gro", "of the GRO targets")):
        p = f"prevention_{name}"
        if not ev.has(f"{p}_defense", f"{p}_retention", f"{p}_ndcg10_fall_low", f"{p}_agr10_fall_low"):
            continue
        which = ("the protective one keeping most utility" if ev.headline[f"{p}_verdict"] == PROTECTS
                 else "the closest to protecting")
        parts.append(f"{label}, {which}, {w.h(f'{p}_defense', 'text')}, keeps "
                     f"{w.h(f'{p}_retention', 'interval')} of NDCG@10 while the surrogate's NDCG@10 falls "
                     f"{w.h(f'{p}_ndcg10_fall', 'interval')} and its Agr@10 {w.h(f'{p}_agr10_fall', 'interval')} "
                     f"({w.h(f'{p}_verdict', 'text')})")
    if parts:
        out.append(w.sentence("Each against its strongest attacker: " + "; ".join(parts) + "."))
    else:
        out.append(w.plain(f"Prevention was {NOT_MEASURED}."))
    out.append(detection_and_verification_abstract(ev, w))
    out.append(verdict_sentence(ev, w))
    return out


def detection_and_verification_abstract(ev: Evidence, w: Writer) -> Sentence:
    if ev.has("detect_best", "detect_best_accounts_needed_worst", "volume_cap_accounts_needed_worst"):
        detection = (f"the strongest detector, {w.h('detect_best', 'text')}, makes an attacker who chooses its own "
                     f"parameters use {w.h('detect_best_accounts_needed_worst', 'count')} accounts against "
                     f"{w.h('volume_cap_accounts_needed_worst', 'count')} for a volume cap")
    elif ev.has("seat_plus_cap_accounts_needed", "volume_cap_accounts_needed", "seat_plus_cap_worst_attack"):
        detection = (f"SEAT with the caps makes the cheapest attacker of a fixed zoo "
                     f"({w.h('seat_plus_cap_worst_attack', 'text')}) use "
                     f"{w.h('seat_plus_cap_accounts_needed', 'count')} accounts against "
                     f"{w.h('volume_cap_accounts_needed', 'count')} for a volume cap alone")
        if ev.has("seat_plus_cap_false_positive_rate"):
            detection += f", flagging {w.h('seat_plus_cap_false_positive_rate')} of benign accounts"
    else:
        detection = f"detection was {NOT_MEASURED}"
    if ev.has("watermark_verified_share"):
        verification = f"a watermark is verified on {w.h('watermark_verified_share')} of the surrogates"
        if ev.has("watermark_false_claims", "watermark_independent_models"):
            verification += (f" with {w.h('watermark_false_claims', 'count')} false claims among "
                             f"{w.h('watermark_independent_models', 'count')} independent models")
    else:
        verification = f"ownership verification was {NOT_MEASURED}"
    return w.sentence(f"For detection, {detection}; {verification}.")


def family_status(ev: Evidence) -> dict[str, str]:
    """Each family's target: "met", "missed" or NOT_MEASURED, from headline keys only."""
    h = ev.headline
    status = {}
    status["prevention"] = (NOT_MEASURED if "prevention_target_met" not in h
                            else "met" if h["prevention_target_met"] else "missed")
    if h.get("detect_best_accounts_needed_worst") is not None:
        over_volume, over_caps = (h.get("detect_best_cost_increase_over_volume_cap"),
                                  h.get("detect_best_cost_increase_over_caps"))
        high = h.get("detect_best_false_positive_rate_high")
        met = (over_volume is not None and over_volume >= 2 and over_caps is not None and over_caps > 1.2
               and high is not None and high <= 0.001)
        status["detection"] = "met" if met else "missed"
    elif h.get("seat_plus_cap_cost_increase_over_volume_cap") is not None:
        met = (h["seat_plus_cap_cost_increase_over_volume_cap"] >= 4
               and (h.get("seat_plus_cap_false_positive_rate") or 1.0) <= 0.001)
        status["detection"] = "met" if met else "missed"
    else:
        status["detection"] = NOT_MEASURED
    if h.get("watermark_verified_share") is not None:
        met = (h["watermark_verified_share"] >= 1.0 and h.get("watermark_false_claims") == 0
               and (h.get("watermark_utility_retention") or 0.0) >= 0.99)
        status["verification"] = "met" if met else "missed"
    else:
        status["verification"] = NOT_MEASURED
    return status


def verdict_sentence(ev: Evidence, w: Writer) -> Sentence:
    status = family_status(ev)
    met = [family for family, s in status.items() if s == "met"]
    if ev.has("attack_main_agr10"):
        works = f"Verdict: extraction works at this scale (Agr@10 {w.h('attack_main_agr10')}); "
    else:
        works = "Verdict: "
    if not met:
        head = "no defense family meets its target"
    else:
        head = " and ".join(met) + (" meets its target" if len(met) == 1 else " meet their targets")
    detail = ", ".join(f"{family} {s}" for family, s in status.items())
    return w.sentence(f"{works}{head} ({detail}).")


# ---- limitations and reproduction ---------------------------------------------------------------------------


def limitations(ev: Evidence, w: Writer, params: dict, environment: dict, device: str) -> list[Sentence]:
    out = []
    attack, gro = ev.stage("attack").get("settings") or {}, ev.stage("gro").get("settings") or {}
    profile = ev.headline.get("profile", "?")
    if attack and ev.has("profile", "attack_budget_sequences"):
        text = (f"Scale: this is the {w.h('profile', 'text')} profile; the attack stage's main budget is "
                f"{w.h('attack_budget_sequences', 'count')} sequences where Yue et al. use 5,000 (published)")
        if all(key in gro for key in ("attack_sequences", "attack_seq_len", "epochs")):
            text += (f", the defense matrix attacks with {w.s('gro', 'settings.attack_sequences', 'count')} × "
                     f"{w.s('gro', 'settings.attack_seq_len', 'count')} queries, and GRO is "
                     + ("trained from scratch" if gro.get("from_scratch") else "fine-tuned from the undefended "
                                                                               "target")
                     + f" for at most {w.s('gro', 'settings.epochs', 'count')} epochs where the authors train "
                     "from scratch for 1,000 epochs (published)")
        out.append(w.sentence(text + "."))
    else:
        out.append(w.plain(f"Scale: the {profile} profile; the attack stage's scale is {NOT_MEASURED}."))
    where = environment.get("platform", "an unrecorded platform")
    out.append(w.plain(
        ("No GPU run: " if device != "cuda" else "GPU run: ") + f"the study ran with device '{params.get('device', device)}'"
        + (f" (resolved to {device} where the report ran)" if params.get("device") in (None, "auto") else "")
        + f" on {where}; times in this report are that machine's."))
    seeds = gro.get("attack_seeds")
    out.append(w.plain(
        "Intervals are 95% bootstrap intervals over test users"
        + (f", and over the {seeds} attack seeds of the defense matrix" if seeds else "")
        + "; the attack stage's use one attack seed, the false-positive rates are exact binomial intervals over "
          "benign accounts, and none includes training noise: each target is trained once, with one seed."))
    return out


def reproduction(ev: Evidence, params: dict, environment: dict) -> list[str]:
    """Markdown lines: the command, the commit(s), the machine."""
    common = params.get("common", {})
    command = ["./run_all.sh", "--profile", str(common.get("profile", ev.headline.get("profile", "cpu")))]
    if common.get("dataset", "ml-1m") != "ml-1m":
        command += ["--dataset", str(common["dataset"])]
    if common.get("seed", 42) != 42:
        command += ["--seed", str(common["seed"])]
    if common.get("device") not in (None, "auto"):
        command += ["--device", str(common["device"])]
    for name, value in (params.get("overrides") or {}).items():
        command += ["-p", str(name), str(value)]
    commit = str(ev.headline.get("git_commit", "unknown"))
    started = str(environment.get("git_commit", commit))
    lines = [f"- Commands: `git checkout {commit.removesuffix('-dirty')}`, then `{' '.join(command)}` "
             "(`--publish` copies the run into `results/`)."]
    if commit.endswith("-dirty"):
        lines.append("- The commit had local changes when the run was stamped (`-dirty`): the code that ran is "
                     "not exactly that commit.")
    lines.append(f"- Commit: `{commit}` (stamped {ev.headline.get('date', '?')})"
                 + (f"; the run was started at `{started}` and resumed at this commit." if started != commit else "."))
    packages = environment.get("packages") or {}
    versions = ", ".join(f"{name} {version}" for name, version in packages.items() if version)
    lines.append(f"- Machine: {environment.get('platform', 'not recorded')}, Python "
                 f"{environment.get('python', '?')}; {versions}.")
    return lines


# ---- the whole paper ------------------------------------------------------------------------------------------


@dataclass
class Paper:
    title: str
    abstract: list[Sentence]
    sections: list[tuple[Question, Answer]]
    limitations: list[Sentence]
    reproduction: list[str]
    tables: dict[str, pd.DataFrame]

    def sentences(self) -> list[Sentence]:
        out = list(self.abstract)
        for _, answer in self.sections:
            out += answer.sentences + answer.notes
        return out + list(self.limitations)

    def figures(self) -> list[str]:
        return [answer.figure for _, answer in self.sections if answer.figure]


def answered(question: Question, ev: Evidence, w: Writer) -> Answer:
    """The question's answer; one whose figures this run records only in part says which one it lacks."""
    try:
        return question.answer(ev, w)
    except KeyError as missing:
        w._facts = []  # the half-written sentence's facts
        return Answer([Sentence(f"{question.title} {NOT_MEASURED.capitalize()} in full: the run lacks "
                                f"{missing.args[0]}.")], measured=False)


def build_paper(ev: Evidence, params: dict | None = None, environment: dict | None = None,
                device: str = "cpu", questions: tuple[Question, ...] = QUESTIONS) -> Paper:
    """The paper of a run: every sentence from ``ev`` (see the module docstring)."""
    params, environment = params or {}, environment or {}
    w = Writer(ev)
    w.table("verdicts", verdict_table(ev))
    sections = [(question, answered(question, ev, w)) for question in questions]
    summary = abstract(ev, w)
    limits = limitations(ev, w, params.get("common", {}), environment, device)
    model = target_model(ev)
    title = (f"Stealing a {model} recommender through its top-k answers, and what prevention, detection and "
             f"verification do about it")
    return Paper(title, summary, sections, limits, reproduction(ev, params, environment), w.tables)


# ---- HTML -----------------------------------------------------------------------------------------------------

PAPER_STYLE = """<style>
.recsec-paper { max-width: 1320px; font-size: 15px; line-height: 1.5; }
.recsec-paper h1 { font-size: 1.6em; }
.recsec-paper .recsec-abstract { background: #f6f6f6; padding: 0.6em 1em; border-left: 3px solid #888; }
.recsec-paper figure { margin: 0.8em 0; }
.recsec-paper figure img { display: block; }
.recsec-paper figcaption { font-size: 0.9em; color: #333; max-width: 1000px; }
.recsec-paper table.recsec-table { font-size: 13px; border-collapse: collapse; margin: 0.5em 0; }
.recsec-paper table.recsec-table td, .recsec-paper table.recsec-table th {
  padding: 2px 8px; border-bottom: 1px solid #ddd; vertical-align: top; white-space: normal; max-width: 360px; }
.recsec-paper .recsec-not-measured { color: #666; font-style: italic; }
.recsec-paper .recsec-note { font-size: 0.9em; color: #333; }
</style>"""


def figure_html(run_dir: Path, figure: str, caption: str, alt: str) -> str:
    png = (Path(run_dir) / figure).read_bytes()
    return (f'<figure class="recsec-figure" style="margin:0.8em 0">{img_html(png, alt or caption)}'
            f'<figcaption>{html.escape(caption)} <span style="color:#666">(From {html.escape(figure)}, '
            f'{png_width(png)} px wide.)</span></figcaption></figure>')


def paragraph(sentences: list[Sentence], css: str = "") -> str:
    if not sentences:
        return ""
    attribute = f' class="{css}"' if css else ""
    return f"<p{attribute}>" + " ".join(html.escape(s.text) for s in sentences) + "</p>"


def paper_html(paper: Paper, run_dir: Path, headline: dict) -> str:
    """The paper as one HTML block (figures embedded), for the report notebook."""
    parts = [PAPER_STYLE, '<article class="recsec-paper">', f"<h1>{html.escape(paper.title)}</h1>",
             f"<p style=\"color:#555\">{html.escape(str(headline.get('profile', '?')))} profile, "
             f"{html.escape(str(headline.get('dataset', '?')))}, commit {html.escape(str(headline.get('git_commit', '?'))[:12])}, "
             f"{html.escape(str(headline.get('date', '?')))}. Every sentence below is generated from this run's "
             "numbers.</p>",
             "<h2>Abstract</h2>", paragraph(paper.abstract, "recsec-abstract")]
    for number, (question, answer) in enumerate(paper.sections, start=1):
        parts.append(f'<section class="recsec-question" data-question="{question.key}" id="{question.key}">'
                     f"<h2>{number}. {html.escape(question.title)}</h2>")
        if not answer.measured:
            parts.append(paragraph(answer.sentences, "recsec-not-measured"))
        else:
            parts.append(paragraph(answer.sentences))
            if answer.figure:
                parts.append(figure_html(run_dir, answer.figure, answer.caption, answer.alt))
            if answer.table:
                if not answer.figure:
                    parts.append(f'<p class="recsec-note">{html.escape(answer.caption)}</p>')
                parts.append(table_html(paper.tables[answer.table]))
            parts.append(paragraph(answer.notes, "recsec-note"))
        parts.append("</section>")
    parts += ['<section class="recsec-question" data-question="verdicts" id="verdicts">',
              f"<h2>{len(paper.sections) + 1}. Verdicts</h2>",
              "<p>One row per defense, each against its worst attacker. Percent with 95% intervals as "
              "\"point [low, high]\"; a fall is what the attacker's surrogate loses against the compared arm "
              "(negative: the attacker gains). \"protects\" needs both falls' intervals above 0.</p>",
              table_html(paper.tables["verdicts"]) if len(paper.tables["verdicts"])
              else f'<p class="recsec-not-measured">No defense was {NOT_MEASURED}.</p>', "</section>",
              f"<h2>{len(paper.sections) + 2}. Limitations</h2>", "<ul>",
              *[f"<li>{html.escape(s.text)}</li>" for s in paper.limitations], "</ul>",
              f"<h2>{len(paper.sections) + 3}. Reproduction</h2>", "<ul>",
              *[f"<li>{_inline_code(line.removeprefix('- '))}</li>" for line in paper.reproduction], "</ul>",
              "</article>"]
    return "".join(parts)


_NUMERIC = re.compile(r"^[-−]?\d[\d,]*(\.\d+)?( \[.*\])?%?$")


def table_html(frame: pd.DataFrame) -> str:
    """A paper table as the reader sees it: every cell's text verbatim (the text the sentences cite), a column of
    numbers right-aligned, no index."""
    if frame.empty:
        return '<p class="recsec-empty">(no rows)</p>'

    def text(value) -> str:
        return MISSING if value is None or value == "" else str(value)

    numeric = [all(_NUMERIC.match(text(v)) or text(v) == MISSING for v in frame[c]) for c in frame.columns]
    align = ["right" if n else "left" for n in numeric]
    head = "".join(f'<th style="text-align:{a}">{html.escape(str(c))}</th>' for c, a in zip(frame.columns, align))
    body = "".join("<tr>" + "".join(f'<td style="text-align:{a}">{html.escape(text(v))}</td>'
                                    for v, a in zip(row, align)) + "</tr>" for row in frame.itertuples(index=False))
    return f'<table class="recsec-table"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _inline_code(text: str) -> str:
    """Markdown `code` spans as <code>, the rest escaped."""
    return re.sub(r"`([^`]*)`", lambda m: f"<code>{m.group(1)}</code>", html.escape(text))

