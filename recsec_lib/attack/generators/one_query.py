"""``one-query``: popularity walks of random length, each sent once (every query its own session)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from recsec_lib.attack.generators.base import GENERATORS, Collected, QueryGenerator, draw_walks, probe_popularity
from recsec_lib.attack.queries import AttackData
from recsec_lib.attack.traffic import Traffic


@GENERATORS.register
@dataclass(frozen=True)
class OneQuery(QueryGenerator):
    """After ``probe_queries`` one-item probes, each remaining query is a fresh popularity-drawn walk of a length
    uniform in ``min_length``..seq_len, sent once. Training rows are the walks left-padded, with one answered
    position each (a random ``training_rows`` of them: each costs a forward pass over a whole walk for one
    answer)."""

    name: ClassVar[str] = "one-query"
    probe_queries: int = 64
    min_length: int = 20  # shortest walk (capped at seq_len)
    training_rows: int = 3000  # (walk, answer) pairs the surrogate trains on

    def collect(self, box, budget_queries: int, seq_len: int, seed: int, account="attacker") -> Collected:
        if not isinstance(account, str):
            raise ValueError(f"{self.name}: one account name is expected (each query is a walk of its own)")
        rng = np.random.default_rng(seed)
        weights, probed = probe_popularity(box, account, self.probe_queries, rng)
        count = budget_queries - len(probed)
        if count < 1:
            raise ValueError(f"{self.name}: a budget of {budget_queries} queries leaves none after the probes")
        low = min(self.min_length, seq_len)
        lengths = rng.integers(low, seq_len + 1, size=count)
        walks = draw_walks(rng, count, seq_len, int(box.num_items), weights)
        queries = [walks[i, :lengths[i]] for i in range(count)]
        answers = np.asarray(box.answer_batch(account, queries))  # [count, k]
        rows = np.sort(rng.choice(count, size=min(count, self.training_rows), replace=False))
        seq = np.zeros((len(rows), seq_len), dtype=np.int64)  # left-padded: the walk ends at the last column
        for r, i in enumerate(rows.tolist()):
            seq[r, seq_len - len(queries[i]):] = queries[i]
        lists = np.zeros((len(rows), seq_len, answers.shape[1]), dtype=np.int64)
        lists[:, -1] = answers[rows]
        answered = np.zeros((len(rows), seq_len), dtype=bool)
        answered[:, -1] = True
        sources = tuple([np.array([item], dtype=np.int64) for item in probed] + queries)
        ends = np.concatenate([np.ones(len(probed), dtype=np.int64), lengths.astype(np.int64)])
        traffic = Traffic((self.name,), (self.name,), sources, np.zeros(len(sources), dtype=np.int64),
                          np.arange(len(sources)), ends, box.max_query_len)
        return Collected(self.name, traffic, AttackData(seq, lists, self.name, int(box.num_items), seed, answered))
