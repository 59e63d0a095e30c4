"""Model defenses: a differently trained model behind the same box, one registered class per file.

``MODEL_DEFENSES``: ``gro`` (a GRO-trained target, either zero-gradient rule),
``gro-control`` (λ = 0 through the same loop: the honest reference of every
GRO arm) and ``null`` (a snapshot of the target's own training whose served
utility matches a GRO point's: a measurement, not a defense). Each trains its
model from the undefended target, saves it as a checkpoint and names the arm
that serves it; see ``base``.
"""

from recsec_lib.arena.model_defenses import control, gro, null  # noqa: F401  (registration)
from recsec_lib.arena.model_defenses.base import MODEL_DEFENSES, ModelDefense, TrainedModel

__all__ = ("MODEL_DEFENSES", "ModelDefense", "TrainedModel")
