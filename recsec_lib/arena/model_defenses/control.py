"""``gro-control``: λ = 0 through the GRO loop, the reference every GRO arm is measured against."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import ClassVar

from recsec_lib.arena.model_defenses.base import MODEL_DEFENSES, ModelDefense, TrainedModel
from recsec_lib.arena.model_defenses.gro import CONTROL_LABEL, train_gro_model
from recsec_lib.gro.training import GROConfig


@MODEL_DEFENSES.register
@dataclass(frozen=True)
class GROControl(ModelDefense):
    """The same optimiser, student, epochs and kept-epoch rule as a GRO target, with λ = 0: the swap loss is
    computed but weighs nothing, so what differs between a GRO arm and this one is the swap loss's doing.

    ``replica`` > 0 trains another copy with another seed (``config.seed + replica``): the spread between
    replicas is the noise floor of fine-tuning that a GRO fall must clear. Replica 0 is the reference arm;
    the others are arms compared with it.
    """

    name: ClassVar[str] = "gro-control"
    family: ClassVar[str] = "gro-control"
    config: GROConfig = GROConfig(lam=0.0)
    from_scratch: bool = False
    replica: int = 0

    @property
    def key(self) -> str:
        return "gro λ=0" if self.replica == 0 else f"gro λ=0 replica {self.replica}"

    @property
    def label(self) -> str:
        return CONTROL_LABEL if self.replica == 0 else f"GRO λ=0 (control, seed +{self.replica})"

    @property
    def reference(self) -> str:
        return "None" if self.replica == 0 else CONTROL_LABEL

    def arm_fields(self) -> dict:
        return {"lam": 0.0, "rule": ""}

    def arm(self, output=None):
        arm = super().arm(output)
        # a second replica is a noise measurement, not a defense: its own family keeps it out of "best defense"
        return arm if self.replica == 0 else replace(arm, family="control-replica")

    def checkpoint_name(self) -> str:
        return "gro_lam0.pt" if self.replica == 0 else f"gro_lam0_replica{self.replica}.pt"

    def train(self, undefended, dataset, rows, out_dir, device, progress=False) -> TrainedModel:
        config = replace(self.config, lam=0.0, seed=self.config.seed + self.replica)
        return train_gro_model(config, self.from_scratch, undefended, dataset, rows, Path(out_dir),
                               self.checkpoint_name(), device, progress)


__all__ = ("GROControl",)
