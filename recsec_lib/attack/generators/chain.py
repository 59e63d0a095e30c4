"""``chain`` and ``chain-mix``: a few very long autoregressive walks, each queried through a sliding window."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from recsec_lib.attack.generators.base import (GENERATORS, Collected, QueryGenerator, account_list, mixing_weights,
                                               steer_walks, with_probes)
from recsec_lib.attack.queries import AttackData
from recsec_lib.attack.traffic import attack_traffic


@GENERATORS.register
@dataclass(frozen=True)
class Chain(QueryGenerator):
    """``chains`` long walks of budget / chains steps; each query is the walk's newest ``box.max_query_len`` items
    (one growing session per walk, like a user with a very long history).

    Training rows: the walks cut into ``seq_len``-item segments whose prefixes carry the answers to the full
    windows (the surrogate sees up to max_query_len items of context less than the box did).
    """

    name: ClassVar[str] = "chain"
    choices: ClassVar[dict[str, tuple]] = {"chains": (1, 2, 5, 20, 50), "random_mix": (0.0, 0.25, 0.5),
                                           "mix_weights": ("uniform", "popularity")}
    chains: int = 20  # walks, each budget / chains steps long
    steer: int = 0  # draw the next item from the first `steer` ranks of each answer; 0 = every rank
    random_mix: float = 0.0  # share of next items drawn from the catalogue instead of the answer
    mix_weights: str = "uniform"  # uniform | popularity
    probe_queries: int = 64  # one-item probes that estimate popularity (only with mix_weights popularity)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.chains < 1:
            raise ValueError(f"{self.name}: parameter 'chains' must be >= 1, got {self.chains}")

    def collect(self, box, budget_queries: int, seq_len: int, seed: int, account="attacker") -> Collected:
        rng = np.random.default_rng(seed)
        first_account = account if isinstance(account, str) else account[0]
        weights, probed = (mixing_weights(self.mix_weights, box, first_account, self.probe_queries, rng)
                           if self.random_mix > 0 else (None, None))
        spent = 0 if probed is None else len(probed)
        steps = (budget_queries - spent) // self.chains
        if steps < seq_len:
            raise ValueError(f"{self.name}: {budget_queries} queries over {self.chains} chains give walks of "
                             f"{steps} steps, shorter than one {seq_len}-item training segment")
        first = rng.integers(1, int(box.num_items) + 1, size=self.chains)
        walks, answers = steer_walks(box, account_list(account, self.chains), first, steps, rng, self.steer,
                                     self.random_mix, weights)
        traffic = with_probes(attack_traffic(list(walks), box.max_query_len, self.name), probed)
        segments = steps // seq_len
        rows = walks[:, :segments * seq_len].reshape(-1, seq_len)
        lists = answers[:, :segments * seq_len].reshape(-1, seq_len, answers.shape[2])
        return Collected(self.name, traffic, AttackData(rows, lists, self.name, int(box.num_items), seed))


@GENERATORS.register
@dataclass(frozen=True)
class ChainMix(Chain):
    """The chain with half of its next items drawn from the catalogue (so the next item is often not from the
    previous answer: aimed at SEAT's follow signal)."""

    name: ClassVar[str] = "chain-mix"
    random_mix: float = 0.5
