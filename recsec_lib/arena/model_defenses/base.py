"""What a model defense is: how its model is made from the undefended target, and the arm that serves it."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

from recsec_lib.arena.arms import Arm
from recsec_lib.common.registry import Registry
from recsec_lib.defenses.output import OutputDefense, parse_output_defense

MODEL_DEFENSES: Registry["ModelDefense"] = Registry("model defense")


@dataclass
class TrainedModel:
    """A model defense's result: its checkpoint and how its training went."""

    checkpoint: Path
    history: list[dict] = field(default_factory=list)  # one dict per epoch
    info: dict = field(default_factory=dict)  # kept epoch, epochs run, why it stopped, seconds


@dataclass(frozen=True)
class ModelDefense(ABC):
    """Base of every registered model defense (a frozen dataclass of its settings)."""

    name: ClassVar[str] = ""
    family: ClassVar[str] = ""

    @property
    @abstractmethod
    def key(self) -> str:
        """The model's key in the matrix (unique among the run's models)."""

    @property
    @abstractmethod
    def label(self) -> str:
        """The arm's label."""

    @property
    @abstractmethod
    def reference(self) -> str:
        """The label of the arm it is compared with."""

    @abstractmethod
    def train(self, undefended, dataset, rows, out_dir: Path, device, progress: bool = False) -> TrainedModel:
        """Make the defended model from the undefended target (a SequentialRecommender) and save it in out_dir."""

    def arm(self, output: OutputDefense | None = None) -> Arm:
        """The arm serving this model (optionally behind an output defense: a combination)."""
        output = output or parse_output_defense("none")
        if output.name == "none":
            return Arm(self.label, self.key, output, self.reference, self.family, **self.arm_fields())
        return Arm(f"{self.label} + {output.label}", self.key, output, self.reference, "combo", **self.arm_fields())

    def arm_fields(self) -> dict:
        """Extra Arm fields (GRO's λ and rule)."""
        return {}
