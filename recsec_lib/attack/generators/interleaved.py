"""``interleaved``: autoregressive walks sent a few at a time, their queries alternating."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import ClassVar

import numpy as np

from recsec_lib.attack.generators.autoregressive import AutoregressiveWalks
from recsec_lib.attack.generators.base import GENERATORS, Collected


@GENERATORS.register
@dataclass(frozen=True)
class Interleaved(AutoregressiveWalks):
    """The autoregressive walks, sent in groups of ``interleave`` walks advanced one step each in turn: no two
    consecutive queries come from one walk (aimed at detectors that follow one session at a time)."""

    name: ClassVar[str] = "interleaved"
    choices: ClassVar[dict[str, tuple]] = {"interleave": (2, 8, 32)}
    interleave: int = 8  # walks advanced together

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.interleave < 1:
            raise ValueError(f"{self.name}: parameter 'interleave' must be >= 1, got {self.interleave}")

    def collect(self, box, budget_queries: int, seq_len: int, seed: int, account="attacker") -> Collected:
        collected = super().collect(box, budget_queries, seq_len, seed, account)
        traffic = collected.traffic
        group = traffic.source // self.interleave
        order = np.lexsort((traffic.source, traffic.end, group))
        sent = replace(traffic, account=traffic.account[order], source=traffic.source[order], end=traffic.end[order],
                       time=None)
        return Collected(self.name, sent, collected.training)
