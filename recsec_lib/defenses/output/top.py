"""``top:K'``: serve only the top K' ranks (the attacker learns from K' ranks instead of k)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from recsec_lib.attack.views import Knowledge
from recsec_lib.defenses.output.base import OUTPUT_DEFENSES, SizedDefense


@OUTPUT_DEFENSES.register
@dataclass(frozen=True)
class TopOnly(SizedDefense):
    """Serve the first ``size`` ranks. Nothing to see through: the served ranks are exact, the rest absent, so the
    attacker who knows it is the naive one (it trains on the K' it gets)."""

    name: ClassVar[str] = "top"

    @property
    def label(self) -> str:
        return f"top-{self.size} only"

    def served_length(self, k: int) -> int:
        super().served_length(k)
        return self.size

    def knowledge(self, k: int) -> Knowledge:
        return Knowledge(served_len=self.size, exact_ranks=self.size, spec=self.spec)

    def serve(self, lists, rng, num_items, forbidden):
        return lists[:, : self.size]
