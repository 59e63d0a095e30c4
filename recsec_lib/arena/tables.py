"""Reading the matrix: each arm at its strongest attacker, verdicts, the best defense, the saved tables.

``frontier_table`` gives one row per arm: utility kept, and per measure
(surrogate NDCG@10, Agr@10) the fall at the arm's strongest attacker with its
interval and verdict. ``best_frontier_arm`` picks the defense that keeps
``min_retention`` of NDCG@10 with the largest protective fall; reference arms
(None, the λ = 0 control) are never chosen. Percent everywhere, intervals as
"point [low, high]".
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from recsec_lib.arena.arms import NOT_DEFENSES
from recsec_lib.common.files import write_text_atomic
from recsec_lib.common.tables import markdown_table


@dataclass(frozen=True)
class FrontierTarget:
    """The goal for a defense: keep users' NDCG@10 and take protection from the attacker."""

    min_retention: float = 0.99  # NDCG@10 retention, test, vs the arm's reference
    min_fall: float = 0.30  # fall of the surrogate's NDCG@10 (or of its Agr@10) at the strongest attacker, test


def interval_text(row, key: str) -> str:
    """"12.3 [10.1, 14.5]": a fraction and its interval, in percent."""
    return f"{100 * row[key]:.1f} [{100 * row[key + '_low']:.1f}, {100 * row[key + '_high']:.1f}]"


def as_bool(column: pd.Series) -> pd.Series:
    """A bool column, also when read back from CSV as text."""
    return column.astype(str).str.lower() == "true"


def worst_rows(table: pd.DataFrame, measure: str = "ndcg") -> pd.DataFrame:
    """Each arm's row at its strongest attacker for ``measure`` ("ndcg": surrogate NDCG@10; "agr": Agr@10)."""
    column = "worst" if measure == "ndcg" else "worst_agr"
    return table[as_bool(table[column])]


def frontier_table(table: pd.DataFrame) -> pd.DataFrame:
    """One row per arm: retention, and per measure the strongest attacker, the fall (95% CI) and the verdict."""
    ndcg = worst_rows(table, "ndcg").set_index("arm", drop=False)
    agr = worst_rows(table, "agr").set_index("arm", drop=False).loc[ndcg.index]
    return pd.DataFrame({
        "defense": ndcg["arm"].to_numpy(), "family": ndcg["family"].to_numpy(),
        "utility kept % [95% CI]": [interval_text(row, "retention_test") for _, row in ndcg.iterrows()],
        "strongest attacker (NDCG@10)": (ndcg["attacker"] + ", " + ndcg["generator"]).to_numpy(),
        "surrogate NDCG@10 fall % [95% CI]": [interval_text(row, "surrogate_test_ndcg10_drop")
                                              for _, row in ndcg.iterrows()],
        "verdict (NDCG@10)": ndcg["verdict"].to_numpy(),
        "strongest attacker (Agr@10)": (agr["attacker"] + ", " + agr["generator"]).to_numpy(),
        "Agr@10 fall % [95% CI]": [interval_text(row, "agr10_test_drop") for _, row in agr.iterrows()],
        "verdict (Agr@10)": agr["agr_verdict"].to_numpy(),
        "compared with": ndcg["reference"].to_numpy(),
    }).reset_index(drop=True)


def best_frontier_arm(table: pd.DataFrame, target: FrontierTarget = FrontierTarget()) -> dict:
    """Among defenses keeping ``min_retention``, the one with the largest protective fall at its strongest attacker.

    The fall counted is the larger of the NDCG@10 and the Agr@10 falls, each only
    when its interval is above 0 (a fall inside the noise counts as none).
    Returns {"arm", "retention", "fall", "fall_low", "measure", "target_met"};
    "arm" is None when no defense keeps the retention. Measurements are never
    chosen (``arms.NOT_DEFENSES``: None, the λ = 0 control and its replicas,
    utility-matched nulls): fine-tuning alone can move Agr@10, which is the
    control's noise, not protection.
    """
    best = {"arm": None, "retention": float("nan"), "fall": 0.0, "fall_low": float("nan"), "measure": "",
            "target_met": False}
    for measure, key, rows in (("surrogate NDCG@10", "surrogate_test_ndcg10_drop", worst_rows(table, "ndcg")),
                               ("Agr@10", "agr10_test_drop", worst_rows(table, "agr"))):
        kept = rows[~rows["family"].isin(NOT_DEFENSES) & (rows["retention_test"] >= target.min_retention)]
        for _, row in kept.iterrows():
            fall = float(row[key]) if row[f"{key}_low"] > 0 else 0.0
            if best["arm"] is None or fall > best["fall"]:
                best = {"arm": row["arm"], "retention": float(row["retention_test"]), "fall": fall,
                        "fall_low": float(row[f"{key}_low"]), "measure": measure,
                        "target_met": fall >= target.min_fall}
    return best


GRO_ARM_COLUMNS = {
    "arm": "arm", "rule": "zero-gradient rule", "lam": "λ", "attacker": "attacker", "generator": "generator",
    "seeds": "seeds", "target_test_ndcg10": "target NDCG@10 %", "target_test_ndcg10_unfiltered":
    "target NDCG@10 unfiltered %", "surrogate_test_ndcg10": "surrogate NDCG@10 %",
    "surrogate_test_ndcg10_unfiltered": "surrogate NDCG@10 unfiltered %", "agr10_test": "Agr@10 %",
    "promoted_share": "lists with the most-promoted item %",
}


def gro_arms_table(table: pd.DataFrame) -> pd.DataFrame:
    """None, the λ = 0 control and each GRO arm, every attacker: test figures in %, falls with intervals."""
    part = table[table["family"].isin(["none", "gro-control", "control-replica", "gro", "null"])]
    out = part[list(GRO_ARM_COLUMNS)].rename(columns=GRO_ARM_COLUMNS).copy()
    for column in list(GRO_ARM_COLUMNS.values())[6:]:
        out[column] = (100 * out[column].astype(float)).round(2)
    out["utility kept % [95% CI]"] = [interval_text(row, "retention_test") for _, row in part.iterrows()]
    out["surrogate NDCG@10 fall % [95% CI]"] = [interval_text(row, "surrogate_test_ndcg10_drop")
                                                for _, row in part.iterrows()]
    out["Agr@10 fall % [95% CI]"] = [interval_text(row, "agr10_test_drop") for _, row in part.iterrows()]
    out["compared with"] = part["reference"].to_numpy()
    out["verdict"] = part["verdict"].to_numpy()
    return out.reset_index(drop=True)


def read_matrix_rows(path: str | os.PathLike) -> pd.DataFrame:
    """matrix.csv as written: the arm called "None" stays the text "None" (pandas would read it as missing)."""
    return pd.read_csv(path, keep_default_na=False, na_values=[""])


def save_matrix_tables(table: pd.DataFrame, out_dir: str | os.PathLike) -> dict[str, Path]:
    """matrix.csv (every attacker row), frontier.csv|md (each arm at its strongest attacker), gro_arms.csv|md."""
    out_dir = Path(out_dir)
    paths = {"matrix_csv": out_dir / "matrix.csv", "frontier_csv": out_dir / "frontier.csv",
             "frontier_markdown": out_dir / "frontier.md", "gro_csv": out_dir / "gro_arms.csv",
             "gro_markdown": out_dir / "gro_arms.md"}
    write_text_atomic(paths["matrix_csv"], table.to_csv(index=False))
    frontier = frontier_table(table)
    write_text_atomic(paths["frontier_csv"], frontier.to_csv(index=False))
    write_text_atomic(paths["frontier_markdown"], markdown_table(frontier))
    gro = gro_arms_table(table)
    write_text_atomic(paths["gro_csv"], gro.to_csv(index=False))
    write_text_atomic(paths["gro_markdown"], markdown_table(gro, float_format="{:.2f}"))
    return paths
