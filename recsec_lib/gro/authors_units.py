"""GRO's table in the authors' units: full ranking, nothing filtered, 100-item lists, Random/Reverse over the whole list.

The study's own figures filter the user's history out of every list (a
recommender does not offer a movie the user has rated). The authors' table
(STUDY.md, Zhang et al., WSDM 2024) does not: the target and the surrogate
rank ALL items, and their Random and Reverse baselines transform the whole
100-item list the box returns (Random shuffles it, so the served top-10 are 10
random items of the top-100; Reverse returns it worst first, so the served
top-10 are ranks 100 down to 91). This module reads that table from per-user
lists so that our rows sit beside theirs in the same units:

* target HR@10 / NDCG@10 — of the served list's first 10 items (after the
  whole-list transform), against the held-out item;
* surrogate HR@10 / NDCG@10 — of the surrogate's own unfiltered top-10;
* figures in percent, means over test users (and attack seeds for the surrogate).

The authors' published rows appear only as labelled reference rows
(``PUBLISHED_ML1M``), and every row says how it was made (``setting``), since
theirs come from a different model, training length and attack budget.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

WHOLE_LIST_DEFENSES = ("none", "random", "reverse")
PUBLISHED_SOURCE = "Zhang et al., WSDM 2024 (published; reference only)"
# Their setting, as their public repository and paper state it (STUDY.md; issue 28).
PUBLISHED_SETTING = ("BERT4Rec target and surrogate; targets trained 1,000 epochs from scratch (GRO: λ = 1); attack "
                     "budget 3,000 sequences; full ranking, unfiltered, 100-item lists")
# STUDY.md's table of their ML-1M result, in %: defense -> (target HR@10, target NDCG@10, surrogate HR@10, NDCG@10).
PUBLISHED_ML1M = {
    "None": (20.18, 10.61, 15.11, 7.51),
    "Random": (5.84, 2.70, 11.61, 5.25),
    "Reverse": (1.95, 0.90, 8.61, 4.02),
    "GRO": (18.08, 9.53, 11.46, 5.19),
}
COLUMNS = ("defense", "source", "target HR@10", "target NDCG@10", "surrogate HR@10", "surrogate NDCG@10", "setting")


def serve_whole_list(lists: np.ndarray, defense: str, rng: np.random.Generator) -> np.ndarray:
    """[U, k] the box's whole unfiltered k-item lists as the authors' baselines serve them: unchanged ("none"),
    each list shuffled ("random") or reversed ("reverse")."""
    lists = np.asarray(lists)
    if lists.ndim != 2 or lists.shape[1] == 0:
        raise ValueError(f"parameter 'lists' must be [users, k] (the whole returned list), got shape {lists.shape}")
    if defense not in WHOLE_LIST_DEFENSES:
        raise ValueError(f"parameter 'defense' must be one of {WHOLE_LIST_DEFENSES}, got {defense!r}")
    # The arena's output defenses ``random`` and ``reverse`` (``defenses.output``, a package of this layer that gro
    # does not import) serve the same transforms: one permutation per list, or the list read backwards.
    if defense == "random":
        return rng.permuted(lists, axis=1)
    if defense == "reverse":
        return np.ascontiguousarray(lists[:, ::-1])
    return lists


def hits_at_10(lists: np.ndarray, targets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """([U] HR@10, [U] NDCG@10) per user from ranked lists [U, k]: the held-out item's position among the first 10
    (a list shorter than 10 is read whole)."""
    lists = np.asarray(lists)
    targets = np.asarray(targets)
    if lists.ndim != 2 or lists.shape[1] == 0 or len(lists) != len(targets):
        raise ValueError(f"lists must be [U, k] with U = {len(targets)} targets, got shape {lists.shape}")
    hits = lists[:, :10] == targets[:, None]  # [U, 10]
    found = hits.any(axis=1)
    return found.astype(np.float64), np.where(found, 1.0 / np.log2(hits.argmax(axis=1) + 2.0), 0.0)


@dataclass(frozen=True)
class AuthorsUnitsArm:
    """One of our arms in the authors' units: its served lists and its surrogates' unfiltered top-10."""

    defense: str  # the row's label, e.g. "None", "Random", "GRO keep λ=1 (validation's λ)"
    served: np.ndarray  # [U, k] the served lists after the whole-list transform (``serve_whole_list``)
    surrogate_top10: np.ndarray | Sequence[np.ndarray]  # [U, 10] or [S][U, 10] unfiltered, one per attack seed
    setting: str  # how this row was made, e.g. "SASRec; fine-tuned 1 epoch from the trained target; 500 × 100"


def authors_units_row(arm: AuthorsUnitsArm, targets: np.ndarray) -> dict:
    """The table row of ``arm`` (percent; the surrogate's figures averaged over its attack seeds)."""
    target_hr, target_ndcg = hits_at_10(arm.served, targets)
    surrogates = arm.surrogate_top10
    surrogates = [surrogates] if np.ndim(surrogates) == 2 else list(surrogates)
    if not surrogates:
        raise ValueError(f"arm {arm.defense!r}: no surrogate lists")
    per_seed = [hits_at_10(top10, targets) for top10 in surrogates]
    return {"defense": arm.defense, "source": "this run",
            "target HR@10": 100 * target_hr.mean(), "target NDCG@10": 100 * target_ndcg.mean(),
            "surrogate HR@10": 100 * float(np.mean([hr.mean() for hr, _ in per_seed])),
            "surrogate NDCG@10": 100 * float(np.mean([ndcg.mean() for _, ndcg in per_seed])),
            "setting": arm.setting}


def authors_units_table(arms: Sequence[AuthorsUnitsArm], targets: np.ndarray,
                        published: Mapping[str, tuple[float, float, float, float]] | None = PUBLISHED_ML1M
                        ) -> pd.DataFrame:
    """Our rows, then the authors' published rows labelled as reference (``published=None`` leaves them out).

    Columns: defense, source ("this run" or the paper), target and surrogate
    HR@10 / NDCG@10 in %, and setting (model, training, budget: what differs).
    """
    return authors_units_frame([authors_units_row(arm, targets) for arm in arms], published)


def authors_units_frame(rows: Sequence[Mapping], published: Mapping[str, tuple[float, float, float, float]] | None
                        = PUBLISHED_ML1M) -> pd.DataFrame:
    """Rows already in the authors' units (``COLUMNS``: e.g. read from the arena's matrix, whose unfiltered figures
    are these), then the published rows labelled as reference; a row missing a column raises naming it."""
    rows = [dict(row) for row in rows]
    for index, row in enumerate(rows):
        missing = [column for column in COLUMNS if column not in row]
        if missing:
            raise ValueError(f"authors' units row {index} ({row.get('defense', '?')!r}) lacks {missing}")
    for defense, (t_hr, t_ndcg, s_hr, s_ndcg) in (published or {}).items():
        rows.append({"defense": defense, "source": PUBLISHED_SOURCE, "target HR@10": t_hr, "target NDCG@10": t_ndcg,
                     "surrogate HR@10": s_hr, "surrogate NDCG@10": s_ndcg, "setting": PUBLISHED_SETTING})
    return pd.DataFrame(rows, columns=list(COLUMNS))
