"""``perturbed``: autoregressive walks whose every query has a few older items replaced by random ones."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from recsec_lib.attack.generators.base import GENERATORS, Collected, QueryGenerator, account_list
from recsec_lib.attack.queries import AttackData
from recsec_lib.attack.traffic import Traffic


@GENERATORS.register
@dataclass(frozen=True)
class Perturbed(QueryGenerator):
    """Walks steered by the answers to perturbed queries: in each query ``perturb_edits`` items older than the
    newest are replaced by uniformly drawn ones, so no query is an exact prefix of another (aimed at
    near-duplicate detectors). Sent walk after walk, each query a source of its own. The surrogate trains on the
    unperturbed walks with the answers to the perturbed queries (what it asked is close to them)."""

    name: ClassVar[str] = "perturbed"
    choices: ClassVar[dict[str, tuple]] = {"perturb_edits": (1, 2, 8)}
    perturb_edits: int = 2  # older items replaced in each query
    steer: int = 0  # draw the next item from the first `steer` ranks of each answer; 0 = every rank

    def collect(self, box, budget_queries: int, seq_len: int, seed: int, account="attacker") -> Collected:
        rng = np.random.default_rng(seed)
        count = self.walks_for(budget_queries, seq_len)
        accounts = account_list(account, count)
        num_items = int(box.num_items)
        walks = np.zeros((count, seq_len), dtype=np.int64)
        walks[:, 0] = rng.integers(1, num_items + 1, size=count)
        answers = None
        sources, source_ids, ends = [], [], []
        rows = np.arange(count)
        for t in range(1, seq_len + 1):
            queries = walks[:, :t].copy()
            if t > 1:
                for _ in range(self.perturb_edits):
                    where = rng.integers(0, t - 1, size=count)
                    queries[rows, where] = rng.integers(1, num_items + 1, size=count)
            step = np.asarray(box.answer_batch(accounts, queries))  # [S, k]
            if answers is None:
                answers = np.zeros((count, seq_len, step.shape[1]), dtype=np.int64)
            answers[:, t - 1] = step
            if t < seq_len:
                ranks = min(self.steer, step.shape[1]) if self.steer else step.shape[1]
                walks[:, t] = step[rows, rng.integers(ranks, size=count)]
            source_ids.append(np.arange(len(sources), len(sources) + count))
            sources += list(queries)
            ends.append(np.full(count, t))
        source = np.stack(source_ids, axis=1).reshape(-1)  # [S * L] walk after walk
        end = np.stack(ends, axis=1).reshape(-1)
        traffic = Traffic((self.name,), (self.name,), tuple(sources), np.zeros(len(source), dtype=np.int64), source,
                          end, box.max_query_len)
        return Collected(self.name, traffic, AttackData(walks, answers, self.name, num_items, seed))
