"""GRO's defended targets by name, and choosing λ on validation.

* ``checkpoint_name`` — the file of a GRO-loop target (``gro_lam1.pt``,
  ``gro_lowestindex_lam1.pt``, ``gro_lam0.pt`` for the λ = 0 control);
* ``choose_best_lambda`` — the largest validation fall of the surrogate's
  NDCG@10 among the λ whose validation retention is at least
  ``min_retention``, using validation figures only, never test.

Training goes through ``gro.training`` (losses in ``gro.loss``); attacking and
comparing the defended targets is the arena's job (``recsec_lib.arena``), where
every defense faces every attacker.
"""

from __future__ import annotations

import math

import pandas as pd


def checkpoint_name(lam: float, method: str = "gro", rule: str = "keep") -> str:
    """File name of a defended target: gro_lam1.pt (zero-gradient rule "keep"), gro_lowestindex_lam1.pt
    (the authors' rule), or seedvariant_lam5.pt for the ablation."""
    suffix = "" if rule == "keep" else f"_{rule.replace('_', '')}"
    return f"{method.replace('-', '')}{suffix}_lam{lam:g}.pt"


NO_PROTECTIVE_LAMBDA = "no protective λ"


def choose_best_lambda(table: pd.DataFrame, min_retention: float = 0.95) -> dict:
    """The GRO λ > 0 with the largest validation fall of the surrogate's NDCG@10 among those that keep
    validation retention >= ``min_retention`` AND protect on validation; validation figures only, never test.

    "Protect" means a positive validation fall, and when the table carries its
    interval (``surrogate_valid_ndcg10_drop_low``), a fall whose whole 95%
    interval is above 0: a λ that only moves the surrogate within the noise is
    not chosen. λ = 0 (the control) is never a candidate. With a column
    ``worst`` only the worst attacker's rows count.

    Returns {"lam", "constraint_met", "retention_valid", "drop_valid", "reason",
    "shown_lam"}. When no λ protects, "lam" is None and "reason" is
    "no protective λ"; "shown_lam" is then the λ whose figures are reported so
    that the shortfall stays visible (the largest validation fall among the λ
    keeping the floor, else the highest validation retention).
    """
    gro = table[table["lam"].notna() & (table["lam"] > 0)]  # trained-defense rows (GRO or the seed variant)
    if "worst" in gro.columns:
        gro = gro[gro["worst"].astype(bool)]
    empty = {"lam": None, "constraint_met": False, "retention_valid": math.nan, "drop_valid": math.nan,
             "reason": "no GRO λ was trained", "shown_lam": None}
    if gro.empty:
        return empty
    eligible = gro[gro["retention_valid"] >= min_retention]
    protective = eligible[eligible["surrogate_valid_ndcg10_drop"] > 0]
    if "surrogate_valid_ndcg10_drop_low" in protective.columns:
        protective = protective[protective["surrogate_valid_ndcg10_drop_low"] > 0]
    if len(protective):
        chosen = protective.loc[protective["surrogate_valid_ndcg10_drop"].idxmax()]
        return {"lam": float(chosen["lam"]), "constraint_met": True,
                "retention_valid": float(chosen["retention_valid"]),
                "drop_valid": float(chosen["surrogate_valid_ndcg10_drop"]),
                "reason": f"largest protective validation fall with validation retention >= {min_retention:.0%}",
                "shown_lam": float(chosen["lam"])}
    shown = (eligible.loc[eligible["surrogate_valid_ndcg10_drop"].idxmax()] if len(eligible)
             else gro.loc[gro["retention_valid"].idxmax()])
    return {"lam": None, "constraint_met": False, "retention_valid": float(shown["retention_valid"]),
            "drop_valid": float(shown["surrogate_valid_ndcg10_drop"]), "reason": NO_PROTECTIVE_LAMBDA,
            "shown_lam": float(shown["lam"])}
