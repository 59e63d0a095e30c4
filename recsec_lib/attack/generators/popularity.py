"""``popularity``: every prefix of walks whose items are drawn by popularity estimated from probes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from recsec_lib.attack.generators.base import (GENERATORS, Collected, QueryGenerator, account_list, draw_walks,
                                               every_prefix, probe_popularity, query_prefixes)


@GENERATORS.register
@dataclass(frozen=True)
class PopularityWalks(QueryGenerator):
    """``probe_queries`` one-item probes estimate item popularity from the answers; then walks of distinct items
    drawn by it, every prefix queried (the answers never steer: realistic-looking histories, not the model's)."""

    name: ClassVar[str] = "popularity"
    probe_queries: int = 64

    def collect(self, box, budget_queries: int, seq_len: int, seed: int, account="attacker") -> Collected:
        rng = np.random.default_rng(seed)
        first_account = account if isinstance(account, str) else account[0]
        weights, probed = probe_popularity(box, first_account, self.probe_queries, rng)
        count = self.walks_for(budget_queries - len(probed), seq_len)
        walks = draw_walks(rng, count, seq_len, int(box.num_items), weights)
        answers = query_prefixes(box, account_list(account, count), walks)
        return every_prefix(self.name, walks, answers, int(box.num_items), seed, box.max_query_len, probed)
