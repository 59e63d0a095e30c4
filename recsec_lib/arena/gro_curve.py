"""GRO's trade-off curve read from the arena's matrix: every point judged against the control, its null and the noise.

The matrix (``arena.matrix.evaluate``) attacks every arm with the same attacker
set and keeps the per-user figures its rows summarise (``MatrixResult.utility``,
``MatrixResult.runs``). This module turns them into ``gro.curve``'s per-arm
figures and verdicts:

* ``arm_figures`` — an arm's served NDCG@10 per user (validation, test) and its
  surrogates' NDCG@10 per attack seed and user, at the arm's STRONGEST attacker
  (the matrix's ``worst`` row: the view × generator whose surrogates reach the
  highest test NDCG@10, the same attacker every table of the arena reads);
* ``read_curve`` — each GRO point (family "gro") judged by ``gro.curve.judge_point``
  against the λ = 0 control, its utility-matched null (family "null", matched on
  validation NDCG@10 by ``gro.null``) and the noise floor of the control's
  training seeds (family "control-replica"); the best point per rule and over
  both rules (validation only); the extraction ratio of every arm;
* ``budget_reading`` — ``gro.budget``'s check at each attack budget, on the
  arms made without any aim against extraction (None, the controls, the nulls);
* ``authors_units_rows`` — the authors' units (unfiltered, 100-item lists,
  whole-list Random/Reverse = the arena's ``random``/``reverse`` arms, the
  naive attacker) from the same matrix.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from recsec_lib.arena.matrix import MatrixResult
from recsec_lib.arena.model_defenses.gro import CONTROL_LABEL
from recsec_lib.arena.tables import as_bool
from recsec_lib.gro.budget import (DEFAULT_MIN_ELASTICITY, DEFAULT_MIN_TARGET_GAP, AttackedTarget, BudgetCheck,
                                   budget_check, verdict_budget)
from recsec_lib.gro.curve import (DEFAULT_MIN_RETENTION, DEFAULT_PROMOTION_RISE, ArmFigures, BestPoint, NoiseFloor,
                                  PointVerdict, best_point, extraction_ratio, judge_point, noise_floor,
                                  protective_summary)
from recsec_lib.gro.null import DEFAULT_TOLERANCE, NullCandidate, match_null
from recsec_lib.recommend.intervals import Interval


def _strongest(table: pd.DataFrame, label: str) -> pd.Series:
    rows = table[(table["arm"] == label) & as_bool(table["worst"])]
    if rows.empty:
        raise ValueError(f"the matrix has no row of arm {label!r} (arms: {sorted(set(table['arm']))})")
    return rows.iloc[0]


def arm_figures(matrix: MatrixResult, label: str) -> ArmFigures:
    """``gro.curve.ArmFigures`` of one arm at its strongest attacker (see the module docstring)."""
    row = _strongest(matrix.table, label)
    runs = matrix.runs[label, row["attacker"], row["generator"]]
    utility = matrix.utility[label]
    lam = None if row["lam"] is None or (isinstance(row["lam"], float) and math.isnan(row["lam"])) else float(row["lam"])
    surrogate_valid = np.stack([run["valid_ndcg"] for run in runs]) if "valid_ndcg" in runs[0] else None
    return ArmFigures(label=label, served_valid=utility["valid_ndcg"], served_test=utility["test_ndcg"],
                      surrogate_test=np.stack([run["test_ndcg"] for run in runs]), surrogate_valid=surrogate_valid,
                      rule=row["rule"] or None if row["family"] == "gro" else None,
                      lam=lam if row["family"] in ("gro", "gro-control", "control-replica") else None,
                      promoted_item=int(row["promoted_item"]), promoted_share=float(row["promoted_share"]),
                      promoted_share_none=float(row["promoted_share_none"]))


@dataclass
class CurveReading:
    """Everything said about the curve at one attack budget."""

    verdicts: list[PointVerdict]  # one per GRO point, in table order
    floor: NoiseFloor | None  # the controls' training noise (None with one control seed)
    best: BestPoint  # over both rules, chosen on validation
    best_per_rule: dict[str, BestPoint]
    summaries: dict[str, str]  # rule -> protective λ, or "no protective λ" and the condition that failed
    extraction: pd.DataFrame  # one row per arm: its extraction ratio and interval
    control: ArmFigures
    nulls: dict[str, str] = field(default_factory=dict)  # point label -> the null arm it was judged against

    def verdict(self, label: str) -> PointVerdict | None:
        return next((v for v in self.verdicts if v.label == label), None)


def read_curve(matrix: MatrixResult, candidates: Sequence[NullCandidate], tolerance: float = DEFAULT_TOLERANCE,
               min_retention: float = DEFAULT_MIN_RETENTION, promotion_rise: float = DEFAULT_PROMOTION_RISE,
               replicates: int = 1000, seed: int = 0) -> CurveReading:
    """Judge every GRO point of ``matrix`` (see the module docstring).

    ``candidates``: every null the points could have been matched with (all
    snapshots, not only those attacked), labelled as their null arms are. A
    point's null is matched again here on the matrix's own validation figure;
    the null it picks must be an arm of the matrix (the stage attacked the
    nulls its pre-match picked from the same figures, so it is), else a
    ValueError names it.
    """
    table = matrix.table
    arms = table.drop_duplicates("arm")
    labels = list(arms["arm"])
    if CONTROL_LABEL not in labels:
        raise ValueError(f"the matrix has no {CONTROL_LABEL!r} arm: GRO points are judged against it")
    control = arm_figures(matrix, CONTROL_LABEL)
    replicas = [arm_figures(matrix, label) for label in arms.loc[arms["family"] == "control-replica", "arm"]]
    floor = noise_floor([control, *replicas], replicates, seed)
    verdicts, used = [], {}
    for label in arms.loc[arms["family"] == "gro", "arm"]:
        point = arm_figures(matrix, label)
        match = match_null(point.valid_ndcg10, candidates, tolerance)
        if match.matched and match.candidate.label not in labels:
            # The stage pre-matched on the same validation lists; a near tie measured a hair differently can pick
            # a snapshot that was not attacked: match again among the attacked nulls (the gap stays checked).
            attacked = [c for c in candidates if c.label in labels]
            match = match_null(point.valid_ndcg10, attacked, tolerance)
        null = None
        if match.matched:
            null = arm_figures(matrix, match.candidate.label)
            used[label] = match.candidate.label
        verdicts.append(judge_point(point, control, null, match, floor, promotion_rise, replicates, seed))
    rules = list(dict.fromkeys(v.rule for v in verdicts))
    extraction = pd.DataFrame([{"arm": label, "family": family,
                                **extraction_ratio(arm_figures(matrix, label), replicates, seed)
                                .as_dict("extraction_ratio")}
                               for label, family in zip(arms["arm"], arms["family"])])
    return CurveReading(
        verdicts=verdicts, floor=floor, best=best_point(verdicts, min_retention),
        best_per_rule={rule: best_point([v for v in verdicts if v.rule == rule], min_retention) for rule in rules},
        summaries={rule: protective_summary([v for v in verdicts if v.rule == rule], min_retention)
                   for rule in rules},
        extraction=extraction, control=control, nulls=used)


def shown_point(reading: CurveReading, rule: str) -> PointVerdict | None:
    """The point of ``rule`` measured again at the second budget: its best point (validation retention >= the
    floor, largest validation fall vs its null), else among ITS points with a null the largest validation fall vs
    null (validation only), else None."""
    best = reading.best_per_rule.get(rule)
    if best is not None and best.verdict is not None:
        return best.verdict
    with_null = [v for v in reading.verdicts if v.rule == rule and v.fall_vs_null is not None
                 and not math.isnan(v.fall_vs_null_valid)]
    return max(with_null, key=lambda v: v.fall_vs_null_valid) if with_null else None


# ---- tables ---------------------------------------------------------------------------------------------------

def _cell(interval: Interval | None) -> str:
    if interval is None:
        return "—"
    return f"{100 * interval.point:.1f} [{100 * interval.low:.1f}, {100 * interval.high:.1f}]"


def curve_frame(reading: CurveReading) -> pd.DataFrame:
    """One row per GRO point: the figures (fractions, with interval ends) and the verdict's words."""
    rows = []
    for v in reading.verdicts:
        null = v.null
        rows.append({
            "arm": v.label, "rule": v.rule, "lam": v.lam, "retention_valid": v.retention_valid,
            **v.retention_test.as_dict("retention_test"), **v.fall_vs_control.as_dict("fall_vs_control"),
            "null": null.candidate.label if null.matched else "",
            "null_nearest": null.nearest.label if null.nearest is not None else "",
            "null_gap": null.gap, "point_valid_ndcg10": null.point_valid_ndcg10,
            **(v.fall_vs_null.as_dict("fall_vs_null") if v.fall_vs_null is not None
               else {"fall_vs_null": math.nan, "fall_vs_null_low": math.nan, "fall_vs_null_high": math.nan}),
            "fall_vs_null_valid": v.fall_vs_null_valid,
            **v.extraction_ratio.as_dict("extraction_ratio"),
            **(v.null_extraction_ratio.as_dict("null_extraction_ratio") if v.null_extraction_ratio is not None
               else {"null_extraction_ratio": math.nan, "null_extraction_ratio_low": math.nan,
                     "null_extraction_ratio_high": math.nan}),
            "noise_floor": v.floor.point if v.floor is not None else math.nan,
            "status": v.status, "promotes": v.promotes, "promoted_item": v.promoted_item,
            "promoted_share": v.promoted_share, "promoted_share_none": v.promoted_share_none, "words": v.words})
    return pd.DataFrame(rows) if rows else pd.DataFrame(columns=["arm", "rule", "lam", "status", "words"])


def null_table(reading: CurveReading) -> pd.DataFrame:
    """The null comparison, one row per GRO point, in % with 95% intervals, and the verdict per point."""
    rows = []
    for v in reading.verdicts:
        null = v.null
        rows.append({
            "GRO point": v.label, "NDCG@10 kept, % of control [95% CI]": _cell(v.retention_test),
            "validation NDCG@10": f"{null.point_valid_ndcg10:.4f}",
            "null (same validation NDCG@10)": (f"{null.candidate.label} ({null.candidate.valid_ndcg10:.4f}, "
                                               f"{null.gap:+.1%})" if null.matched else
                                               f"none within {null.tolerance:.0%}" + (
                                                   f" (nearest {null.nearest.label}, {null.gap:+.1%})"
                                                   if null.nearest is not None else "")),
            "surrogate fall vs control, % [95% CI]": _cell(v.fall_vs_control),
            "surrogate fall vs null, % [95% CI]": _cell(v.fall_vs_null),
            "extraction ratio [95% CI]": _ratio_cell(v.extraction_ratio),
            "null's extraction ratio": _ratio_cell(v.null_extraction_ratio),
            "noise floor, %": f"{100 * v.floor.point:.1f}" if v.floor is not None else "not measured",
            "verdict": v.status + ("; promotes item " + str(v.promoted_item) if v.promotes else "")})
    return pd.DataFrame(rows, columns=NULL_TABLE_COLUMNS)


NULL_TABLE_COLUMNS = ("GRO point", "NDCG@10 kept, % of control [95% CI]", "validation NDCG@10",
                      "null (same validation NDCG@10)", "surrogate fall vs control, % [95% CI]",
                      "surrogate fall vs null, % [95% CI]", "extraction ratio [95% CI]", "null's extraction ratio",
                      "noise floor, %", "verdict")


def _ratio_cell(interval: Interval | None) -> str:
    if interval is None:
        return "—"
    return f"{interval.point:.3f} [{interval.low:.3f}, {interval.high:.3f}]"


def extraction_table(reading: CurveReading) -> pd.DataFrame:
    """Every arm's extraction ratio (surrogate NDCG@10 / served NDCG@10, test, strongest attacker) with its
    interval (bootstrap over test users, paired, and over attack seeds)."""
    frame = reading.extraction
    return pd.DataFrame({"arm": frame["arm"], "family": frame["family"],
                         "extraction ratio [95% CI]": [
                             _ratio_cell(Interval(r.extraction_ratio, r.extraction_ratio_low,
                                                  r.extraction_ratio_high)) for r in frame.itertuples()]})


# ---- budgets --------------------------------------------------------------------------------------------------

UNAIMED_FAMILIES = ("none", "gro-control", "control-replica", "null")  # models made with no aim against extraction


def attacked_targets(matrix: MatrixResult) -> list[AttackedTarget]:
    """The matrix's models made without any aim against extraction, served as they are, each at its strongest
    attacker: (label, served test NDCG@10, [S, U] surrogate test NDCG@10)."""
    table = matrix.table
    arms = table.drop_duplicates("arm")
    out = []
    for label, family, output in zip(arms["arm"], arms["family"], arms["output"]):
        if family in UNAIMED_FAMILIES and output == "none":
            figures = arm_figures(matrix, label)
            out.append(AttackedTarget(label, float(figures.served_test.mean()), figures.surrogate_test))
    return out


@dataclass
class BudgetReading:
    checks: dict[int, BudgetCheck]  # budget (sequences) -> the check
    problems: dict[int, str]  # budget -> why it could not be checked
    budget: int  # the budget the verdict uses
    reason: str


def budget_reading(matrices: Mapping[int, MatrixResult], min_target_gap: float = DEFAULT_MIN_TARGET_GAP,
                   min_elasticity: float = DEFAULT_MIN_ELASTICITY, replicates: int = 1000,
                   seed: int = 0) -> BudgetReading:
    """``gro.budget.budget_check`` at each budget (sequences -> its matrix), then ``verdict_budget``.

    A budget whose targets cannot be checked (no target far enough below the
    best) is left out of the verdict's choice and said why; when no budget
    could be checked, the verdict uses the smallest, said to be unchecked.
    """
    checks, problems = {}, {}
    for budget, matrix in sorted(matrices.items()):
        try:
            checks[budget] = budget_check(budget, attacked_targets(matrix), min_target_gap, min_elasticity,
                                          replicates, seed)
        except ValueError as exc:
            problems[budget] = str(exc)
    if checks:
        budget, reason = verdict_budget(checks)
    else:
        budget = min(matrices)
        reason = (f"no budget could be checked for a budget-bound surrogate ({'; '.join(problems.values())}); "
                  f"the verdict uses budget {budget}, unchecked")
    return BudgetReading(checks, problems, budget, reason)


# ---- the authors' units ---------------------------------------------------------------------------------------

def authors_units_rows(matrix: MatrixResult, arms: Mapping[str, str], settings_words: Mapping[str, str],
                       view: str = "naive") -> list[dict]:
    """The authors' units of the matrix's arms (``arms``: arm label -> the row's name), at attacker ``view``:
    target HR@10 / NDCG@10 of the served list unfiltered (after the whole-list transform of Random/Reverse),
    surrogate HR@10 / NDCG@10 of its unfiltered top-10, in %, means over test users and attack seeds.
    ``settings_words``: arm label -> how the row was made (what differs from the authors' setting)."""
    table = matrix.table
    rows = []
    for label, name in arms.items():
        part = table[(table["arm"] == label) & (table["attacker"] == view)]
        if part.empty:
            raise ValueError(f"the matrix has no {view!r} row of arm {label!r}")
        runs = [run for (arm, v, _), seeds in matrix.runs.items() if arm == label and v == view for run in seeds]
        utility = matrix.utility[label]
        rows.append({"defense": name, "source": "this run",
                     "target HR@10": 100 * float(utility["test_hr_unf"].mean()),
                     "target NDCG@10": 100 * float(utility["test_ndcg_unf"].mean()),
                     "surrogate HR@10": 100 * float(np.mean([run["test_hr_unf"].mean() for run in runs])),
                     "surrogate NDCG@10": 100 * float(np.mean([run["test_ndcg_unf"].mean() for run in runs])),
                     "setting": settings_words[label]})
    return rows


__all__ = ("CurveReading", "BudgetReading", "arm_figures", "attacked_targets", "authors_units_rows",
           "budget_reading", "curve_frame", "extraction_table", "null_table", "read_curve", "shown_point")
