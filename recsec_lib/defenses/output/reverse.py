"""``reverse``: the GRO paper's Reverse baseline, each list served worst first."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from recsec_lib.attack.views import Knowledge
from recsec_lib.defenses.output.base import OUTPUT_DEFENSES, OutputDefense


@OUTPUT_DEFENSES.register
@dataclass(frozen=True)
class Reverse(OutputDefense):
    """The top k, worst first: an attacker who knows it reads the list backwards and has the exact ranking."""

    name: ClassVar[str] = "reverse"

    @property
    def label(self) -> str:
        return "Reverse"

    def knowledge(self, k: int) -> Knowledge:
        return Knowledge(served_len=k, exact_ranks=0, keeps_item_set=True, reversed=True, spec=self.spec)

    def serve(self, lists, rng, num_items, forbidden):
        return lists[:, ::-1]
