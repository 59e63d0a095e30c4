"""Prevention in the paper: one verdict per defense from both measures, each family's representative, the
report's prevention_* headline keys."""

from __future__ import annotations

from typing import Any

import pandas as pd

from recsec_lib.arena.tables import worst_rows
from recsec_lib.study.paper.model import Evidence, interval_cell

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
    # A GRO point on the measured curve is judged against its utility-matched null, not the λ = 0 control:
    # against the control a point that only loses utility would "protect" (a weaker model is copied worse).
    out["verdict_vs_compared"] = out["verdict"]
    statuses = null_statuses(evidence)
    on_curve = out["arm"].isin(list(statuses)) & ~out["family"].isin(REFERENCE_FAMILIES)
    out.loc[on_curve, "verdict"] = [statuses[arm] for arm in out.loc[on_curve, "arm"]]
    out["judged_against_null"] = on_curve
    return out


def null_statuses(evidence: Evidence) -> dict[str, str]:
    """arm -> its verdict against its utility-matched null (``gro.curve`` statuses), for the GRO stage's curve
    points; empty when the stage measured no curve."""
    return {str(record["arm"]): str(record["status"]) for record in evidence.stage("gro").get("curve") or []
            if record.get("arm") and record.get("status")}


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
        **({"verdict against the compared arm": frame["verdict_vs_compared"]}
           if frame["judged_against_null"].any() else {}),
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
