"""The utility-matched null: for each point of GRO's curve, an undefended model of the same served utility.

Why: any weaker model yields a weaker surrogate. A GRO target that serves
NDCG@10 .113 instead of .170 is expected to be copied into a weaker surrogate
even if the swap loss did nothing against extraction. The question GRO must
answer is whether its surrogate falls MORE than that of a model of the same
utility made without any anti-extraction aim: the null.

Which null: a snapshot of the undefended target's own training at an earlier
epoch (``TrainConfig.snapshot_epochs``; the weights after epoch N, not the best
so far). It has the target's architecture, data, recipe and seed, and differs
only in having trained less: its only aim is the training objective. (The
alternative, fine-tuning the target with a loss that degrades utility without
aiming at extraction, e.g. label noise or a weight perturbation, has to choose
HOW to degrade, and each choice shapes the lists differently; an earlier epoch
is the degradation the training itself produces, with no free choice. The
fine-tuned λ = 0 control is a null too, at the control's utility.)

The matching rule (``match_null``), on VALIDATION figures only, never test:

* the point's served validation NDCG@10 v (full ranking, the user's history
  filtered: what a user is served) against each candidate's validation
  NDCG@10 v_c measured the same way;
* the candidate with the smallest relative gap |v_c − v| / v is chosen; on a
  tie the one of lower utility (it tends to give the weaker surrogate, so
  GRO's fall against it is the smaller: the conservative choice);
* it is accepted only when that gap is at most ``tolerance`` (default 5%:
  about twice the sampling error of a validation NDCG@10 over ML-1M's 6,040
  users, ~2%); otherwise the point has NO null: its verdict cannot be
  "protects", and the match names the nearest candidate and its gap, so the
  reader sees which utility needs a snapshot (``epochs_to_snapshot`` reads the
  epochs nearest to each point's utility from the training history: saving
  them, or regenerating them with ``training.regenerate_snapshots``, closes
  the gap).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

DEFAULT_TOLERANCE = 0.05  # largest accepted relative gap of validation NDCG@10 between a point and its null


@dataclass(frozen=True)
class NullCandidate:
    """A model that could serve as a null: its label and its served validation NDCG@10."""

    label: str  # e.g. "SASRec epoch 4"
    valid_ndcg10: float  # served validation NDCG@10 (full ranking, history filtered)
    epoch: int | None = None  # the training epoch of a snapshot (None for another kind of null)


@dataclass(frozen=True)
class NullMatch:
    """The null chosen for one point (``candidate`` None when none is close enough)."""

    point_valid_ndcg10: float
    candidate: NullCandidate | None  # the accepted null, or None
    nearest: NullCandidate | None  # the nearest candidate (the accepted one, or the one that was too far)
    gap: float  # (v_nearest - v_point) / v_point, signed; nan without candidates
    tolerance: float

    @property
    def matched(self) -> bool:
        return self.candidate is not None

    def describe(self) -> str:
        """One line: which null, at which utility, or why there is none."""
        v = self.point_valid_ndcg10
        if self.nearest is None:
            return f"no null: no candidate model was measured (point at validation NDCG@10 {v:.4f})"
        n = self.nearest
        where = f"{n.label} (validation NDCG@10 {n.valid_ndcg10:.4f} against the point's {v:.4f}, {self.gap:+.1%})"
        if self.matched:
            return f"null: {where}"
        return (f"no null within {self.tolerance:.0%} of the point's validation NDCG@10: the nearest is {where}; "
                f"a snapshot of an epoch of that utility is missing")


def _check_ndcg(value: float, name: str) -> float:
    value = float(value)
    if not math.isfinite(value) or not 0.0 <= value <= 1.0:
        raise ValueError(f"parameter {name!r} must be an NDCG@10 in [0, 1], got {value}")
    return value


def match_null(point_valid_ndcg10: float, candidates: Sequence[NullCandidate],
               tolerance: float = DEFAULT_TOLERANCE) -> NullMatch:
    """The candidate of the nearest validation NDCG@10 (relative gap), accepted within ``tolerance``; see the module
    docstring for the rule. ``point_valid_ndcg10`` must be the point's VALIDATION figure, never a test one."""
    v = _check_ndcg(point_valid_ndcg10, "point_valid_ndcg10")
    if v <= 0:
        raise ValueError("parameter 'point_valid_ndcg10' is 0: a point that serves nothing has no utility to match")
    if not (math.isfinite(tolerance) and tolerance >= 0):
        raise ValueError(f"parameter 'tolerance' must be >= 0, got {tolerance}")
    for index, candidate in enumerate(candidates):
        _check_ndcg(candidate.valid_ndcg10, f"candidates[{index}].valid_ndcg10")
    if not candidates:
        return NullMatch(v, None, None, math.nan, tolerance)
    nearest = min(candidates, key=lambda c: (abs(c.valid_ndcg10 - v), c.valid_ndcg10))
    gap = (nearest.valid_ndcg10 - v) / v
    accepted = nearest if abs(gap) <= tolerance + 1e-12 else None
    return NullMatch(v, accepted, nearest, gap, tolerance)


def candidates_from_history(history: Sequence[Mapping], label: str = "epoch") -> list[NullCandidate]:
    """One candidate per epoch of a training history (``TrainResult.history`` rows with ``valid_ndcg@10``)."""
    return [NullCandidate(f"{label} {int(row['epoch'])}", float(row["valid_ndcg@10"]), int(row["epoch"]))
            for row in history if row.get("valid_ndcg@10") is not None]


def candidates_from_snapshots(records: Sequence[Mapping], model: str = "") -> list[NullCandidate]:
    """One candidate per snapshot record (``training.snapshot_record`` / the train stage's metrics "snapshots":
    epoch, valid_ndcg10), labelled "<model> epoch N"."""
    prefix = f"{model} " if model else ""
    return [NullCandidate(f"{prefix}epoch {int(r['epoch'])}", float(r["valid_ndcg10"]), int(r["epoch"]))
            for r in records]


def epochs_to_snapshot(history: Sequence[Mapping], point_valid_ndcg10: Sequence[float],
                       tolerance: float = DEFAULT_TOLERANCE) -> list[int]:
    """The training epochs whose snapshots would be the nulls of these points (by the same matching rule on the
    history's validation NDCG@10), ascending; points no epoch of the history matches add none."""
    candidates = candidates_from_history(history)
    epochs = {match.candidate.epoch for v in point_valid_ndcg10
              if (match := match_null(v, candidates, tolerance)).matched}
    return sorted(epochs)
