"""The attacker zoo: extraction attackers that know SEAT and shape their queries around it.

Every attacker spends the same query budget against the study's black box
(``box.answer_batch``, the only thing it touches besides the item-id range) and
returns what a detector sees — its queries in sending order, as one account's
``Traffic`` — and what it trains its surrogate on (an ``AttackData``). The
detectors then decide how many accounts the attacker must spread that traffic
over, and the surrogate says what fidelity that buys: the zoo table reads
"cost to reach fidelity X".

Attackers (``ZOO``):

* ``random`` / ``autoregressive`` — Yue et al.'s generators, every prefix of
  each 200-item walk queried (the study's attack);
* ``adaptive-mix`` — autoregressive walks where each next item is, with
  probability ``random_mix``, drawn uniformly instead (spreads the walks apart);
* ``chain`` — a few very long autoregressive walks, each queried through a
  sliding window of the newest 200 items: one growing session per walk;
* ``chain-mix`` — the chain with ``random_mix`` uniform items (so the next item
  is often *not* from the previous answer: aimed at the follow signal);
* ``interleaved`` — autoregressive walks advanced ``interleave`` at a time,
  their queries alternating (no two consecutive queries from one walk);
* ``perturbed`` — autoregressive walks whose every query has ``perturb_edits``
  older items replaced by random ones (no query is an exact prefix of another);
* ``popularity`` — every prefix of walks whose items are drawn by popularity,
  estimated from the answers to ``probe_queries`` one-item probes;
* ``one-query`` — popularity walks of random length, each sent once (every
  query its own session; training sees one answer per walk).

Training data: every-prefix attackers are exact. The chain's windows are cut
into 200-item segments whose prefixes carry the answers to the full windows
(the surrogate sees up to 200 items of context less than the box did); the
perturbed attacker trains on its unperturbed walks with the answers to the
perturbed queries (what it asked is close to them); one-query rows are
left-padded walks with one answered position (a random
``one_query_training_rows`` of them).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from recsec_lib.attack.queries import AttackData
from recsec_lib.seat.traffic import Traffic, attack_traffic

ZOO = ("random", "autoregressive", "adaptive-mix", "chain", "chain-mix", "interleaved", "perturbed", "popularity",
       "one-query")


@dataclass(frozen=True)
class ZooSettings:
    """How each zoo attacker spends its budget."""

    budget_queries: int = 50_000  # every attacker sends this many queries (rounded down to whole walks)
    seq_len: int = 200  # walk length of the every-prefix attackers (= the box's longest query)
    chain_count: int = 20  # chains of the chain attackers (each budget / chain_count long)
    random_mix: float = 0.5  # share of uniform items in adaptive-mix and chain-mix walks
    interleave: int = 8  # walks advanced together by the interleaved attacker
    perturb_edits: int = 2  # older items replaced in each query of the perturbed attacker
    probe_queries: int = 64  # one-item probes the popularity attackers estimate popularity from
    one_query_lengths: tuple[int, int] = (20, 200)  # walk lengths of the one-query attacker
    # The one-query attacker's surrogate trains on this many of its (walk, answer) pairs, drawn at random:
    # each pair costs a forward pass over a whole walk for one answer (and [rows, length, k] of memory), so a
    # time-capped training reads no more than a few thousand anyway.
    one_query_training_rows: int = 3000

    def __post_init__(self) -> None:
        if self.budget_queries < self.seq_len:
            raise ValueError(f"ZooSettings.budget_queries ({self.budget_queries}) buys no walk of {self.seq_len}")
        for name in ("chain_count", "interleave", "probe_queries", "one_query_training_rows"):
            if getattr(self, name) < 1:
                raise ValueError(f"ZooSettings.{name} must be >= 1, got {getattr(self, name)}")
        if not 0 <= self.random_mix <= 1:
            raise ValueError(f"ZooSettings.random_mix must be in [0, 1], got {self.random_mix}")
        low, high = self.one_query_lengths
        if not 1 <= low <= high <= self.seq_len:
            raise ValueError(f"ZooSettings.one_query_lengths must satisfy 1 <= low <= high <= seq_len, got {(low, high)}")


@dataclass(frozen=True, eq=False)
class ZooAttack:
    """One attacker's traffic (one account, sending order) and its surrogate's training data."""

    name: str
    traffic: Traffic
    training: AttackData
    queries: int  # queries sent (= traffic.num_queries)


def _steer(box, account: str, walks: np.ndarray, t: int, window: int, rng: np.random.Generator, num_items: int,
           random_mix: float) -> np.ndarray:
    """Query the windows ending before t; return [N, k] answers and write each walk's next item at t."""
    answers = np.asarray(box.answer_batch(account, walks[:, max(0, t - window):t]))  # [N, k]
    picks = answers[np.arange(len(walks)), rng.integers(answers.shape[1], size=len(walks))]
    if t < walks.shape[1]:
        uniform = rng.integers(1, num_items + 1, size=len(walks))
        walks[:, t] = np.where(rng.random(len(walks)) < random_mix, uniform, picks)
    return answers


def _walks(box, name: str, count: int, length: int, window: int, num_items: int, rng: np.random.Generator,
           random_mix: float) -> tuple[np.ndarray, np.ndarray]:
    """Autoregressive walks [count, length] and the answers [count, length, k] to every window before t+1."""
    walks = np.zeros((count, length), dtype=np.int64)
    walks[:, 0] = rng.integers(1, num_items + 1, size=count)
    answers = None
    for t in range(1, length + 1):
        step = _steer(box, name, walks, t, window, rng, num_items, random_mix)
        if answers is None:
            answers = np.zeros((count, length, step.shape[1]), dtype=np.int64)
        answers[:, t - 1] = step
    return walks, answers


def _popularity(box, name: str, probes: int, num_items: int, rng: np.random.Generator) -> np.ndarray:
    """[num_items] sampling weights: how often each item appeared in the answers to one-item probes (+1)."""
    answers = np.asarray(box.answer_batch(name, rng.integers(1, num_items + 1, size=(probes, 1))))
    counts = np.bincount(answers.reshape(-1), minlength=num_items + 1)[1:] + 1.0
    return counts / counts.sum()


def _draw_walks(weights: np.ndarray, count: int, length: int, rng: np.random.Generator) -> np.ndarray:
    """[count, length] walks of distinct items drawn by ``weights`` (Gumbel top-k, without repeats)."""
    keys = np.log(weights)[None, :] - np.log(-np.log(rng.random((count, len(weights)))))  # [count, n]
    return np.argsort(-keys, axis=1)[:, :length].astype(np.int64) + 1


def _every_prefix(walks: np.ndarray, answers: np.ndarray, name: str, max_len: int) -> ZooAttack:
    traffic = attack_traffic(list(walks), max_len, name)
    return ZooAttack(name, traffic, AttackData(walks, answers, name, 0, answered=np.ones(walks.shape, bool)),
                     traffic.num_queries)


def build_attack(name: str, box, num_items: int, settings: ZooSettings, seed: int) -> ZooAttack:
    """Run one zoo attacker against ``box``; returns its traffic and training data."""
    if name not in ZOO:
        raise ValueError(f"unknown zoo attacker {name!r}; expected one of {ZOO}")
    rng = np.random.default_rng(seed)
    max_len, length = box.max_query_len, settings.seq_len
    walks_count = settings.budget_queries // length
    account = f"zoo/{name}"
    attack: ZooAttack
    if name in ("random", "popularity"):
        probe = name == "popularity"
        weights = (_popularity(box, account, settings.probe_queries, num_items, rng) if probe
                   else np.full(num_items, 1.0 / num_items))
        walks = _draw_walks(weights, walks_count - (1 if probe else 0), length, rng)
        answers = np.stack([np.asarray(box.answer_batch(account, walks[:, :t])) for t in range(1, length + 1)], 1)
        attack = _every_prefix(walks, answers, name, max_len)
    elif name in ("autoregressive", "adaptive-mix", "interleaved"):
        mix = settings.random_mix if name == "adaptive-mix" else 0.0
        walks, answers = _walks(box, account, walks_count, length, max_len, num_items, rng, mix)
        attack = _every_prefix(walks, answers, name, max_len)
        if name == "interleaved":  # same queries, sent in groups of `interleave` walks, one step each in turn
            group = attack.traffic.source // settings.interleave
            order = np.lexsort((attack.traffic.source, attack.traffic.end, group))
            traffic = Traffic(attack.traffic.names, attack.traffic.kinds, attack.traffic.sources,
                              attack.traffic.account[order], attack.traffic.source[order], attack.traffic.end[order],
                              max_len)
            attack = ZooAttack(name, traffic, attack.training, traffic.num_queries)
    elif name in ("chain", "chain-mix"):
        mix = settings.random_mix if name == "chain-mix" else 0.0
        steps = settings.budget_queries // settings.chain_count
        walks, answers = _walks(box, account, settings.chain_count, steps, max_len, num_items, rng, mix)
        traffic = attack_traffic(list(walks), max_len, name)
        segments = steps // length  # training rows: 200-item segments, answers of the full windows
        seq = walks[:, :segments * length].reshape(-1, length)
        ans = answers[:, :segments * length].reshape(-1, length, answers.shape[2])
        attack = ZooAttack(name, traffic, AttackData(seq, ans, name, 0, answered=np.ones(seq.shape, bool)),
                           traffic.num_queries)
    elif name == "perturbed":
        walks = np.zeros((walks_count, length), dtype=np.int64)
        walks[:, 0] = rng.integers(1, num_items + 1, size=walks_count)
        answers = np.zeros((walks_count, length, box.k), dtype=np.int64)
        sources, source_ids, ends = [], [], []
        for t in range(1, length + 1):
            queries = walks[:, :t].copy()
            if t > 1:  # replace `perturb_edits` items older than the newest one
                for _ in range(settings.perturb_edits):
                    where = rng.integers(0, t - 1, size=walks_count)
                    queries[np.arange(walks_count), where] = rng.integers(1, num_items + 1, size=walks_count)
            step = np.asarray(box.answer_batch(account, queries))
            answers[:, t - 1] = step
            if t < length:
                walks[:, t] = step[np.arange(walks_count), rng.integers(step.shape[1], size=walks_count)]
            source_ids.append(np.arange(len(sources), len(sources) + walks_count))
            sources += list(queries)
            ends.append(np.full(walks_count, t))
        # sending order: walk after walk, each query a source of its own
        source = np.stack(source_ids, axis=1).reshape(-1)  # [walks * length], walk-major
        end = np.stack(ends, axis=1).reshape(-1)
        traffic = Traffic((name,), (name,), tuple(sources), np.zeros(len(source), dtype=np.int64), source, end,
                          max_len)
        attack = ZooAttack(name, traffic, AttackData(walks, answers, name, 0, answered=np.ones(walks.shape, bool)),
                           traffic.num_queries)
    else:  # one-query
        weights = _popularity(box, account, settings.probe_queries, num_items, rng)
        count = settings.budget_queries - settings.probe_queries
        low, high = settings.one_query_lengths
        lengths = rng.integers(low, high + 1, size=count)
        walks = _draw_walks(weights, count, high, rng)
        queries = [walks[i, :lengths[i]] for i in range(count)]
        answers = np.asarray(box.answer_batch(account, queries))  # [count, k]
        rows = np.sort(rng.choice(count, size=min(count, settings.one_query_training_rows), replace=False))
        seq = np.zeros((len(rows), high), dtype=np.int64)  # left-padded: the walk ends at the last column
        for r, i in enumerate(rows.tolist()):
            seq[r, high - len(queries[i]):] = queries[i]
        ans = np.zeros((len(rows), high, answers.shape[1]), dtype=np.int64)
        ans[:, -1] = answers[rows]
        answered = np.zeros((len(rows), high), dtype=bool)
        answered[:, -1] = True
        traffic = Traffic((name,), (name,), tuple(queries), np.zeros(count, dtype=np.int64), np.arange(count),
                          lengths.astype(np.int64), max_len)
        attack = ZooAttack(name, traffic, AttackData(seq, ans, name, 0, answered=answered), count)
    return ZooAttack(attack.name, attack.traffic,
                     AttackData(attack.training.sequences, attack.training.answers, name, num_items, seed,
                                attack.training.answered), attack.queries)
