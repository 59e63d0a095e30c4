"""The public-data attacker: real people's histories from another dataset, replayed as extraction queries.

An attacker with no access to the service's data can still send *real*
histories: ML-100K's users, their movies mapped to the service's ML-1M
catalogue by title (``timing.map_to_dataset``). Each history is a stream of
items; the attacker queries every prefix of a stream through the service's
sliding window, so each answer is a training row for its surrogate, and the
queries look exactly like a real user's growing history — SEAT's similarity
and follow statistics have nothing to hold on to.

Its free parameter is ``streams``: how many streams the users are dealt into
(round-robin after a seeded shuffle). One stream is every history glued into
one long sliding session; ``streams`` >= users is one stream per user (each
starts from an empty history). The split over accounts (``search.SPLITS``)
then decides which account sends which stream.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from recsec_lib.attack.traffic import Traffic, attack_traffic


def public_streams(histories: Sequence[np.ndarray], streams: int, seed: int = 0) -> list[np.ndarray]:
    """The histories dealt into ``streams`` streams (at most one per history), each their concatenation."""
    if streams < 1:
        raise ValueError(f"parameter 'streams' must be >= 1, got {streams}")
    kept = [np.asarray(h, dtype=np.int64) for h in histories if len(h)]
    if not kept:
        raise ValueError("public_streams needs at least one non-empty history")
    order = np.random.default_rng(seed).permutation(len(kept))
    count = min(streams, len(kept))
    groups: list[list[np.ndarray]] = [[] for _ in range(count)]
    for position, user in enumerate(order.tolist()):
        groups[position % count].append(kept[user])
    return [np.concatenate(group) for group in groups]


def public_traffic(streams: Sequence[np.ndarray], max_len: int, budget_queries: int | None = None,
                   name: str = "public") -> Traffic:
    """Every prefix of every stream (its newest ``max_len`` items), stream after stream, the first
    ``budget_queries`` queries (None: all)."""
    traffic = attack_traffic(list(streams), max_len, name)
    if budget_queries is not None:
        if budget_queries < 1:
            raise ValueError(f"budget_queries must be >= 1, got {budget_queries}")
        traffic = traffic.head(min(budget_queries, traffic.num_queries))
        used = int(traffic.source.max()) + 1  # streams the budget reaches
        traffic = Traffic(traffic.names, traffic.kinds, traffic.sources[:used], traffic.account, traffic.source,
                          traffic.end, traffic.max_len)
    return traffic


def public_collected(box, streams: Sequence[np.ndarray], budget_queries: int | None, seq_len: int,
                     training_rows: int = 3000, seed: int = 0, account: str = "public"):
    """The public-data attacker's queries sent to ``box`` and its surrogate's training data (``Collected``).

    The queries are those of ``public_traffic`` (every prefix of every stream, its newest ``box.max_query_len``
    items, stream after stream, the first ``budget_queries``). A query of a long stream holds items the
    surrogate's row would not, so rows are built as the one-query attacker builds them: a seeded sample of
    ``training_rows`` queries, each left-padded to ``seq_len`` (its newest ``seq_len`` items) with the box's
    answer at the last position only — every answer the surrogate sees is one the box gave for that row.
    """
    from recsec_lib.attack.generators.base import Collected
    from recsec_lib.attack.queries import AttackData

    if seq_len < 1 or training_rows < 1:
        raise ValueError(f"seq_len and training_rows must be >= 1, got {seq_len} and {training_rows}")
    traffic = public_traffic(streams, box.max_query_len, budget_queries, account)
    width = box.max_query_len
    queries = [traffic.sources[s][max(0, e - width):e] for s, e in zip(traffic.source.tolist(),
                                                                        traffic.end.tolist())]
    answers = np.asarray(box.answer_batch(account, queries))  # [Q, k]
    rng = np.random.default_rng(seed)
    rows = np.sort(rng.choice(len(queries), size=min(len(queries), training_rows), replace=False))
    sequences = np.zeros((len(rows), seq_len), dtype=np.int64)  # [R, L] left-padded, newest item last
    for r, i in enumerate(rows.tolist()):
        newest = queries[i][-seq_len:]
        sequences[r, seq_len - len(newest):] = newest
    lists = np.zeros((len(rows), seq_len, answers.shape[1]), dtype=np.int64)  # [R, L, k]
    lists[:, -1] = answers[rows]
    answered = np.zeros((len(rows), seq_len), dtype=bool)
    answered[:, -1] = True
    return Collected(account, traffic, AttackData(sequences, lists, account, int(box.num_items), seed, answered))
