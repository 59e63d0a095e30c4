"""``random``: the GRO paper's Random baseline, each list shuffled whole (users see the damage)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from recsec_lib.attack.views import Knowledge
from recsec_lib.defenses.output.base import OUTPUT_DEFENSES, OutputDefense


@OUTPUT_DEFENSES.register
@dataclass(frozen=True)
class RandomOrder(OutputDefense):
    """The served items are the top k, in a random order: an attacker who knows it trains on the set alone."""

    name: ClassVar[str] = "random"

    @property
    def label(self) -> str:
        return "Random"

    def knowledge(self, k: int) -> Knowledge:
        return Knowledge(served_len=k, exact_ranks=0, keeps_item_set=True, order_free=True, spec=self.spec)

    def serve(self, lists, rng, num_items, forbidden):
        return rng.permuted(lists, axis=1)
