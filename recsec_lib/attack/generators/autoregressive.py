"""``autoregressive`` and ``adaptive-mix``: walks steered by the box's own answers, every prefix queried."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from recsec_lib.attack.generators.base import (GENERATORS, Collected, QueryGenerator, account_list, every_prefix,
                                               mixing_weights, steer_walks)


@GENERATORS.register
@dataclass(frozen=True)
class AutoregressiveWalks(QueryGenerator):
    """Yue et al.'s autoregressive generator: start at a uniformly drawn item; after each prefix query, the next
    item is drawn uniformly from the answer (its first ``steer`` ranks; 0 = all). With seen-item filtering in the
    box a walk never repeats an item.

    ``random_mix`` > 0 is an adaptive attacker: that share of next items is drawn from the catalogue instead
    (uniformly, or by popularity estimated from ``probe_queries`` one-item probes), which spreads the walks apart.
    """

    name: ClassVar[str] = "autoregressive"
    choices: ClassVar[dict[str, tuple]] = {"random_mix": (0.0, 0.25, 0.5), "mix_weights": ("uniform", "popularity")}
    steer: int = 0  # draw the next item from the first `steer` ranks of each answer; 0 = every rank
    random_mix: float = 0.0  # share of next items drawn from the catalogue instead of the answer
    mix_weights: str = "uniform"  # uniform | popularity: how mixed-in items are drawn
    probe_queries: int = 64  # one-item probes that estimate popularity (only with mix_weights popularity)

    def collect(self, box, budget_queries: int, seq_len: int, seed: int, account="attacker") -> Collected:
        rng = np.random.default_rng(seed)
        first_account = account if isinstance(account, str) else account[0]
        weights, probed = (mixing_weights(self.mix_weights, box, first_account, self.probe_queries, rng)
                           if self.random_mix > 0 else (None, None))
        count = self.walks_for(budget_queries - (0 if probed is None else len(probed)), seq_len)
        accounts = account_list(account, count)
        first = rng.integers(1, int(box.num_items) + 1, size=count)
        walks, answers = steer_walks(box, accounts, first, seq_len, rng, self.steer, self.random_mix, weights)
        return every_prefix(self.name, walks, answers, int(box.num_items), seed, box.max_query_len, probed)


@GENERATORS.register
@dataclass(frozen=True)
class AdaptiveMix(AutoregressiveWalks):
    """Autoregressive walks with half of the next items drawn uniformly from the catalogue."""

    name: ClassVar[str] = "adaptive-mix"
    random_mix: float = 0.5
