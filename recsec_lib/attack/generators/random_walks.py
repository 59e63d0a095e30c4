"""``random``: Yue et al.'s random generator, every prefix of walks of uniformly drawn items."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from recsec_lib.attack.generators.base import (GENERATORS, Collected, QueryGenerator, account_list, draw_walks,
                                               every_prefix, query_prefixes)


@GENERATORS.register
@dataclass(frozen=True)
class RandomWalks(QueryGenerator):
    """Walks of ``seq_len`` distinct items drawn uniformly; every prefix is queried, the answers never steer.

    (Yue et al. draw uniformly too; we draw without repeats within a walk
    because real ML-1M histories never repeat a movie.)
    """

    name: ClassVar[str] = "random"

    def collect(self, box, budget_queries: int, seq_len: int, seed: int, account="attacker") -> Collected:
        rng = np.random.default_rng(seed)
        count = self.walks_for(budget_queries, seq_len)
        walks = draw_walks(rng, count, seq_len, int(box.num_items))
        answers = query_prefixes(box, account_list(account, count), walks)
        return every_prefix(self.name, walks, answers, int(box.num_items), seed, box.max_query_len)
