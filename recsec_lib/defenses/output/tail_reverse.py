"""``tail-reverse:M``: keep the top M exact and reverse ranks M+1..k."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from recsec_lib.defenses.output.base import OUTPUT_DEFENSES, TailDefense


@OUTPUT_DEFENSES.register
@dataclass(frozen=True)
class TailReverse(TailDefense):
    name: ClassVar[str] = "tail-reverse"

    @property
    def label(self) -> str:
        return f"top-{self.size} exact, tail reversed"

    def perturb_tail(self, head, tail, rng, num_items, forbidden):
        return tail[:, ::-1]
