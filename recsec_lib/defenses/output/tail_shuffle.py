"""``tail-shuffle:M``: keep the top M exact and shuffle ranks M+1..k (same items, wrong order)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from recsec_lib.defenses.output.base import OUTPUT_DEFENSES, TailDefense


@OUTPUT_DEFENSES.register
@dataclass(frozen=True)
class TailShuffle(TailDefense):
    name: ClassVar[str] = "tail-shuffle"

    @property
    def label(self) -> str:
        return f"top-{self.size} exact, tail shuffled"

    def perturb_tail(self, head, tail, rng, num_items, forbidden):
        return rng.permuted(tail, axis=1)
