"""``none``: the ranked list as it is (the undefended reference)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from recsec_lib.attack.views import Knowledge, undefended
from recsec_lib.defenses.output.base import OUTPUT_DEFENSES, OutputDefense


@OUTPUT_DEFENSES.register
@dataclass(frozen=True)
class NoDefense(OutputDefense):
    name: ClassVar[str] = "none"

    @property
    def label(self) -> str:
        return "None"

    def knowledge(self, k: int) -> Knowledge:
        return undefended(k)

    def serve(self, lists, rng, num_items, forbidden):
        return lists
