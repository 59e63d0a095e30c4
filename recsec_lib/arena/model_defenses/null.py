"""``null``: the utility-matched null, a snapshot of the undefended target's own training served as it is.

Not a defense: a weaker model made with no anti-extraction aim, whose served
validation NDCG@10 matches a GRO point's (``gro.null``'s rule, validation only).
A GRO point protects only where its surrogate falls more than its null's. The
null is attacked by the same attacker set as every arm; its family ("null") is
a measurement (``arms.NOT_DEFENSES``), never a "best defense".

Candidates are the train stage's snapshots beside the target checkpoint
(``<model>_epoch<N>.pt``, ``TrainConfig.snapshot_epochs``), each with the
validation NDCG@10 it was saved with (full ranking, the user's history filtered:
what a user is served).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from recsec_lib.arena.model_defenses.base import MODEL_DEFENSES, ModelDefense, TrainedModel
from recsec_lib.arena.model_defenses.gro import CONTROL_LABEL
from recsec_lib.gro.null import DEFAULT_TOLERANCE, NullCandidate, NullMatch, match_null
from recsec_lib.recommend.training import snapshot_record

_SNAPSHOT = re.compile(r"_epoch(\d+)\.pt$")


@MODEL_DEFENSES.register
@dataclass(frozen=True)
class UtilityNull(ModelDefense):
    """A snapshot of the target's training (``snapshot``: its file) served as it is; compared with the λ = 0 control.

    ``train`` makes nothing: the snapshot is the model (it was saved by the train
    stage, after epoch ``epoch``, with ``valid_ndcg10``).
    """

    name: ClassVar[str] = "null"
    family: ClassVar[str] = "null"
    snapshot: str = ""
    epoch: int = 0
    valid_ndcg10: float = 0.0
    model_name: str = "sasrec"

    def __post_init__(self) -> None:
        if not self.snapshot or self.epoch < 1:
            raise ValueError(f"a null needs a snapshot file and its epoch >= 1, got {self.snapshot!r}, {self.epoch}")

    @property
    def key(self) -> str:
        return f"null epoch {self.epoch}"

    @property
    def label(self) -> str:
        return f"Null: {self.model_name} epoch {self.epoch}"

    @property
    def reference(self) -> str:
        return CONTROL_LABEL

    def candidate(self) -> NullCandidate:
        return NullCandidate(self.label, self.valid_ndcg10, self.epoch)

    def train(self, undefended, dataset, rows, out_dir, device, progress=False) -> TrainedModel:
        path = Path(self.snapshot)
        if not path.is_file():
            raise FileNotFoundError(f"null {self.label!r}: the snapshot {path} does not exist")
        return TrainedModel(path, [], {"epoch": self.epoch, "valid_ndcg10": self.valid_ndcg10, "snapshot": str(path),
                                       "trained": "nothing: a snapshot of the target's training"})


def snapshot_nulls(target_checkpoint: str | Path, model_name: str = "sasrec") -> list[UtilityNull]:
    """One null per snapshot file beside ``target_checkpoint`` (``<stem>_epoch<N>.pt``), by epoch."""
    target = Path(target_checkpoint)
    nulls = []
    for path in sorted(target.parent.glob(f"{target.stem}_epoch*.pt")):
        found = _SNAPSHOT.search(path.name)
        if found is None or path.name != f"{target.stem}_epoch{found.group(1)}.pt":
            continue
        record = snapshot_record(path)
        nulls.append(UtilityNull(snapshot=str(path), epoch=record["epoch"], valid_ndcg10=record["valid_ndcg10"],
                                 model_name=model_name))
    return sorted(nulls, key=lambda null: null.epoch)


def match_nulls(points: Mapping[str, float], nulls: Sequence[UtilityNull], tolerance: float = DEFAULT_TOLERANCE
                ) -> tuple[dict[str, NullMatch], list[UtilityNull]]:
    """({point label: its match}, the distinct nulls some point matched, by epoch) by ``gro.null.match_null``.

    ``points``: each GRO point's served VALIDATION NDCG@10 (never a test figure).
    """
    by_label = {null.label: null for null in nulls}
    candidates = [null.candidate() for null in nulls]
    matches = {label: match_null(value, candidates, tolerance) for label, value in points.items()}
    chosen = {match.candidate.label for match in matches.values() if match.matched}
    return matches, sorted((by_label[label] for label in chosen), key=lambda null: null.epoch)


__all__ = ("UtilityNull", "match_nulls", "snapshot_nulls")
