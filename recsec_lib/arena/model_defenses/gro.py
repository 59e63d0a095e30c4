"""``gro``: a target trained with GRO's swap loss (Zhang et al., WSDM 2024), either zero-gradient rule."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import ClassVar

from recsec_lib.arena.model_defenses.base import MODEL_DEFENSES, ModelDefense, TrainedModel
from recsec_lib.gro.defenses import checkpoint_name
from recsec_lib.gro.training import GROConfig, defend_target
from recsec_lib.recommend.checkpoints import save_checkpoint
from recsec_lib.recommend.evaluation import evaluate_model

CONTROL_LABEL = "GRO λ=0 (control)"


@MODEL_DEFENSES.register
@dataclass(frozen=True)
class GROTarget(ModelDefense):
    """GRO fine-tuned from (or trained from scratch beside) the undefended target; compared with the λ = 0 control.

    ``config`` holds λ, the zero-gradient rule (keep | lowest_index), epochs and
    the kept-epoch rule; the loss itself is ``recsec_lib.gro.loss``.
    """

    name: ClassVar[str] = "gro"
    family: ClassVar[str] = "gro"
    config: GROConfig = GROConfig()
    from_scratch: bool = False

    def __post_init__(self) -> None:
        if self.config.lam <= 0:
            raise ValueError(f"a GRO target needs λ > 0, got {self.config.lam} (λ = 0 is the gro-control defense)")

    @property
    def key(self) -> str:
        return f"gro {self.config.zero_gradient_rule} λ={self.config.lam:g}"

    @property
    def label(self) -> str:
        return f"GRO {self.config.zero_gradient_rule} λ={self.config.lam:g}"

    @property
    def reference(self) -> str:
        return CONTROL_LABEL

    def arm_fields(self) -> dict:
        return {"lam": float(self.config.lam), "rule": self.config.zero_gradient_rule}

    def checkpoint_name(self) -> str:
        return checkpoint_name(self.config.lam, self.config.method, self.config.zero_gradient_rule)

    def train(self, undefended, dataset, rows, out_dir, device, progress=False) -> TrainedModel:
        return train_gro_model(self.config, self.from_scratch, undefended, dataset, rows, Path(out_dir),
                               self.checkpoint_name(), device, progress)


def train_gro_model(config: GROConfig, from_scratch: bool, undefended, dataset, rows, out_dir: Path, file_name: str,
                    device, progress: bool) -> TrainedModel:
    """Train one target through the GRO loop (``gro.training.defend_target``), save it as ``out_dir/file_name``.

    Resumable: the training state goes to ``out_dir/state/file_name``. With
    ``config.patience > 0`` or ``kept_epoch == "best"`` the target is validated
    after each epoch on its validation NDCG@10 as served.
    """

    def validate(model) -> float:
        return evaluate_model(model, dataset, "valid", device=device, ks=(10,), sampled=False,
                              unfiltered=False)["ndcg@10"]

    needs_validation = config.patience or config.kept_epoch == "best"
    result = defend_target(undefended, rows, config, device=device, from_scratch=from_scratch,
                           state_path=out_dir / "state" / file_name, progress=progress,
                           validate=validate if needs_validation else None)
    info = {"best_epoch": result.best_epoch, "epochs_run": len(result.history), "stop_reason": result.stop_reason,
            # the epochs' own times, as each was measured when it ran (a resumed run that finds the training
            # finished does not record the few seconds it took to load the state as the training's time)
            "seconds": round(sum(row.get("seconds", 0.0) for row in result.history), 1)}
    path = save_checkpoint(out_dir / file_name, result.target, None, dataset,
                           metrics={"lam": float(config.lam), "method": config.method, "config": asdict(config),
                                    "from_scratch": from_scratch, "history": result.history, **info})
    return TrainedModel(path, result.history, info)


__all__ = ("CONTROL_LABEL", "GROTarget", "train_gro_model")
