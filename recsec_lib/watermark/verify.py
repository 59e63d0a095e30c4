"""Verifying ownership with black-box access only: send the key's queries, count hits, test.

The suspect is anything with ``answer_batch(account, queries) -> [N, k]`` ranked
item ids and ``num_items`` (a ``BlackBoxRecommender``, a box behind an output
defense, a remote service). Nothing here reads weights or scores.

A hit: the pair's continuation among the first ``cutoff`` ids returned for
the query (random context, then the trigger). The cut-off is 10 by default,
what every user sees and what a box that serves only its top 10 still
returns; a box that returns fewer ids than the cut-off is read to its length.
The same queries of ``key.decoys`` decoy keys are sent too, and the real
hits are tested against them (``statistics.ownership_p_value``): the decoys
are the suspect's own null. All queries go out in one shuffled batch, so the
suspect cannot tell real from decoy queries by their order.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from recsec_lib.watermark.key import WatermarkKey
from recsec_lib.watermark.statistics import ownership_p_value


@dataclass(frozen=True)
class VerifySettings:
    cutoff: int = 10  # a hit = the continuation in the first `cutoff` returned ids
    alpha: float = 0.01  # claim ownership only when p < alpha
    account: str = "owner-verification"  # the account the queries are sent from
    batch_size: int = 4096  # queries per answer_batch call
    seed: int = 0  # order in which the queries are sent

    def __post_init__(self) -> None:
        if self.cutoff < 1:
            raise ValueError(f"verify setting 'cutoff' must be >= 1, got {self.cutoff}")
        if not 0.0 < self.alpha < 1.0:
            raise ValueError(f"verify setting 'alpha' must be in (0, 1), got {self.alpha}")
        if self.batch_size < 1:
            raise ValueError(f"verify setting 'batch_size' must be >= 1, got {self.batch_size}")


@dataclass(frozen=True)
class Verification:
    """The outcome of one verification: the counts, the p-value and the verdict."""

    hits: int  # real queries whose continuation was returned within the cut-off
    queries: int  # real queries sent (= key.num_pairs)
    decoy_hits: int
    decoy_queries: int
    p_value: float
    alpha: float
    cutoff: int  # the cut-off actually read (the box may return fewer ids than asked)
    pair_hits: tuple[bool, ...] = ()  # per real pair, in key order

    @property
    def claimed(self) -> bool:
        """Ownership is claimed only when p < alpha."""
        return self.p_value < self.alpha

    @property
    def hit_rate(self) -> float:
        return self.hits / self.queries if self.queries else float("nan")

    @property
    def decoy_rate(self) -> float:
        return self.decoy_hits / self.decoy_queries if self.decoy_queries else float("nan")

    def summary(self) -> str:
        verdict = "OWNERSHIP CLAIMED" if self.claimed else "not claimed"
        return (f"hits@{self.cutoff}: {self.hits}/{self.queries} watermark queries ({self.hit_rate:.3f}) vs "
                f"{self.decoy_hits}/{self.decoy_queries} decoy queries ({self.decoy_rate:.4f}); "
                f"p = {self.p_value:.3g}; {verdict} (p < {self.alpha:g} needed)")

    def as_dict(self) -> dict:
        return {"hits": self.hits, "queries": self.queries, "decoy_hits": self.decoy_hits,
                "decoy_queries": self.decoy_queries, "hit_rate": self.hit_rate, "decoy_rate": self.decoy_rate,
                "p_value": self.p_value, "alpha": self.alpha, "cutoff": self.cutoff, "claimed": self.claimed}


def check_suspect(box, key: WatermarkKey) -> None:
    """ValueError naming both counts when the suspect's catalogue is not the key's."""
    suspect_items = getattr(box, "num_items", None)
    if suspect_items is None:
        raise ValueError("the suspect box does not say how many items it serves (no 'num_items')")
    if int(suspect_items) != key.num_items:
        raise ValueError(f"the suspect serves {int(suspect_items)} items but the watermark key was made for "
                         f"{key.num_items}: it belongs to another item set")


def count_hits(box, queries: list[np.ndarray], continuations: np.ndarray, settings: VerifySettings
               ) -> tuple[np.ndarray, int]:
    """([N] bool hits, the cut-off read): each query sent to ``box.answer_batch``, the continuation looked up."""
    order = np.random.default_rng(settings.seed).permutation(len(queries))
    hits = np.zeros(len(queries), dtype=bool)
    cutoff = settings.cutoff
    for start in range(0, len(order), settings.batch_size):
        rows = order[start:start + settings.batch_size]
        answers = np.asarray(box.answer_batch(settings.account, [queries[r] for r in rows]))  # [b, k]
        if answers.ndim != 2 or len(answers) != len(rows):
            raise ValueError(f"the suspect box answered {len(rows)} queries with an array of shape {answers.shape}")
        cutoff = min(cutoff, answers.shape[1])
        hits[rows] = (answers[:, : settings.cutoff] == continuations[rows, None]).any(axis=1)
    return hits, cutoff


def verify_ownership(box, key: WatermarkKey, settings: VerifySettings = VerifySettings()) -> Verification:
    """Query ``box`` with the watermark's and the decoys' queries; test the real hits against the decoys'."""
    check_suspect(box, key)
    queries: list[np.ndarray] = []
    continuations, owner = [], []
    for index in range(key.decoys + 1):
        queries += key.queries(index)
        continuations.append(key.pairs(index)[1])
        owner.append(np.full(key.num_pairs, index))
    owner_index = np.concatenate(owner)  # [(D+1) M] 0 = real
    hits, cutoff = count_hits(box, queries, np.concatenate(continuations), settings)
    real = owner_index == 0
    found, decoy_found = int(hits[real].sum()), int(hits[~real].sum())
    p_value = ownership_p_value(found, int(real.sum()), decoy_found, int((~real).sum()))
    return Verification(hits=found, queries=int(real.sum()), decoy_hits=decoy_found,
                        decoy_queries=int((~real).sum()), p_value=p_value, alpha=settings.alpha, cutoff=cutoff,
                        pair_hits=tuple(bool(h) for h in hits[real]))
