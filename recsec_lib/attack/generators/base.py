"""What every query generator is, and the walk they share.

A query generator is the part of an extraction attacker that decides which
queries to send: it spends a query budget against a black box (anything with
``answer_batch(accounts, queries) -> [N, k] ids``, ``num_items``,
``max_query_len`` and ``k``) and returns a ``Collected``: the queries in the
order it sent them (a ``Traffic``, what a detector sees) and the training data
its surrogate learns from (an ``AttackData``).

Each generator is a frozen dataclass whose fields are the attacker's free
parameters (how many chains, how much random mixing, ...). ``choices`` names,
per parameter, the values an attacker may choose among: an evaluation searches
them instead of fixing them (the attacker chooses). Registered in
``GENERATORS``; adding a generator is one class in one file of this package.

``steer`` is shared by every generator that reads the answers to choose its
next item: it draws from the first ``steer`` ranks of each answer (0 = every
rank it receives). An attacker who knows that a defense serves only the top M
exactly (the rest perturbed) steers by those M; one who trains on the top 10
of an undefended box steers by them too.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from recsec_lib.attack.queries import AttackData
from recsec_lib.attack.traffic import Traffic, attack_traffic, concat_traffic
from recsec_lib.common.registry import Registry

GENERATORS: Registry["QueryGenerator"] = Registry("query generator")

MIX_WEIGHTS = ("uniform", "popularity")


@dataclass(frozen=True, eq=False)
class Collected:
    """One attacker's queries (one account, sending order) and its surrogate's training data."""

    name: str  # the generator's registry name
    traffic: Traffic  # what a detector sees: every query, in sending order
    training: AttackData  # what the surrogate trains on

    @property
    def queries(self) -> int:
        """Queries sent (probes included)."""
        return self.traffic.num_queries


@dataclass(frozen=True)
class QueryGenerator(ABC):
    """Base of every registered generator: a frozen dataclass of the attacker's free parameters."""

    name: ClassVar[str] = ""
    # parameter -> the values an attacker may choose among (searched, never fixed by the evaluation)
    choices: ClassVar[dict[str, tuple]] = {}

    def __post_init__(self) -> None:
        steer = getattr(self, "steer", 0)
        if steer < 0:
            raise ValueError(f"{self.name}: parameter 'steer' must be >= 0 (0 = every rank), got {steer}")

    @abstractmethod
    def collect(self, box, budget_queries: int, seq_len: int, seed: int,
                account: str | Sequence[str] = "attacker") -> Collected:
        """Spend ``budget_queries`` queries against ``box``; walks are ``seq_len`` items long.

        ``account`` names the account charged (one name, or one per walk).
        """

    def walks_for(self, budget_queries: int, seq_len: int) -> int:
        """Walks of ``seq_len`` queries a budget buys (every-prefix generators)."""
        if seq_len <= 0:
            raise ValueError(f"parameter 'seq_len' must be positive, got {seq_len}")
        if budget_queries < seq_len:
            raise ValueError(f"{self.name}: a budget of {budget_queries} queries buys no walk of {seq_len}")
        return budget_queries // seq_len


# ---- shared pieces ----------------------------------------------------------------------------------------

def account_list(account: str | Sequence[str], count: int) -> list[str]:
    """One account name per walk."""
    if isinstance(account, str):
        return [account] * count
    names = [str(a) for a in account]
    if len(names) != count:
        raise ValueError(f"parameter 'account' has {len(names)} names for {count} walks")
    return names


def steer_walks(box, accounts: Sequence[str], first: np.ndarray, length: int, rng: np.random.Generator,
                steer: int = 0, random_mix: float = 0.0, mix_weights: np.ndarray | None = None,
                window: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Autoregressive walks: query each walk so far, draw its next item from the answer. One batched call per step.

    first: [S] the walks' first items. After the t-th query (the walk's items
    before position t, at most ``window`` of the newest: a sliding window once a
    walk outgrows the box's longest query), item t is drawn uniformly from the
    first ``steer`` ranks of the answer (0 = all), or, with probability
    ``random_mix``, from the catalogue (by ``mix_weights``, uniform when None).
    Returns (walks [S, length], answers [S, length, k]); ``answers[s, t]`` is the
    answer to the query ending before position t + 1.
    """
    if not 0.0 <= random_mix <= 1.0:
        raise ValueError(f"parameter 'random_mix' must be in [0, 1], got {random_mix}")
    window = window or box.max_query_len
    count = len(first)
    num_items = int(box.num_items)
    walks = np.zeros((count, length), dtype=np.int64)
    walks[:, 0] = first
    answers: np.ndarray | None = None
    rows = np.arange(count)
    for t in range(1, length + 1):
        step = np.asarray(box.answer_batch(accounts, walks[:, max(0, t - window):t]))  # [S, k]
        if answers is None:
            answers = np.zeros((count, length, step.shape[1]), dtype=np.int64)
        answers[:, t - 1] = step
        if t == length:
            break
        ranks = min(steer, step.shape[1]) if steer else step.shape[1]
        picks = step[rows, rng.integers(ranks, size=count)]
        if random_mix > 0:
            mixed = rng.random(count) < random_mix
            walks[:, t] = np.where(mixed, draw_items(rng, num_items, count, mix_weights), picks)
        else:
            walks[:, t] = picks
    return walks, answers


def draw_items(rng: np.random.Generator, num_items: int, count: int, weights: np.ndarray | None = None) -> np.ndarray:
    """[count] item ids 1..num_items, uniform or by ``weights`` ([num_items], summing to 1)."""
    if weights is None:
        return rng.integers(1, num_items + 1, size=count)
    return rng.choice(num_items, size=count, p=weights) + 1


def draw_walks(rng: np.random.Generator, count: int, length: int, num_items: int,
               weights: np.ndarray | None = None, chunk: int = 1024) -> np.ndarray:
    """[count, length] walks of distinct items, uniform or by ``weights`` ([num_items]; Gumbel top-k).

    Real histories never repeat a movie, so neither do these walks.
    """
    if length > num_items:
        raise ValueError(f"walks of {length} distinct items need at least {length} items, the catalogue has "
                         f"{num_items}")
    out = np.empty((count, length), dtype=np.int64)
    log_weights = np.zeros(num_items) if weights is None else np.log(weights)
    for start in range(0, count, chunk):
        rows = min(chunk, count - start)
        keys = log_weights[None, :] - np.log(-np.log(rng.random((rows, num_items))))  # [rows, n]
        out[start:start + rows] = np.argsort(-keys, axis=1)[:, :length] + 1
    return out


def query_prefixes(box, accounts: Sequence[str], walks: np.ndarray) -> np.ndarray:
    """[S, L, k] the box's answers to every prefix of every walk (walks that do not depend on the answers)."""
    answers = None
    for t in range(1, walks.shape[1] + 1):
        step = np.asarray(box.answer_batch(accounts, walks[:, :t]))  # [S, k]
        if answers is None:
            answers = np.zeros((*walks.shape, step.shape[1]), dtype=np.int64)
        answers[:, t - 1] = step
    return answers


def probe_popularity(box, account: str, probes: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """([num_items] sampling weights, [probes] probed items): how often each item appeared (+1) in the answers
    to ``probes`` one-item queries of random items."""
    num_items = int(box.num_items)
    items = rng.integers(1, num_items + 1, size=probes)
    answers = np.asarray(box.answer_batch(account, items[:, None]))
    counts = np.bincount(answers.reshape(-1), minlength=num_items + 1)[1:] + 1.0
    return counts / counts.sum(), items


def mixing_weights(kind: str, box, account: str, probes: int,
                   rng: np.random.Generator) -> tuple[np.ndarray | None, np.ndarray]:
    """(weights of the mixed-in items, None for uniform; the items probed to estimate them, [0] when none)."""
    if kind not in MIX_WEIGHTS:
        raise ValueError(f"parameter 'mix_weights' must be one of {MIX_WEIGHTS}, got {kind!r}")
    if kind == "uniform":
        return None, np.zeros(0, dtype=np.int64)
    return probe_popularity(box, account, probes, rng)


def every_prefix(name: str, walks: np.ndarray, answers: np.ndarray, num_items: int, seed: int, max_len: int,
                 probed: np.ndarray | None = None) -> Collected:
    """Every prefix of every walk was queried, walk after walk: the traffic and the (exact) training data.

    ``probed``: items of one-item probe queries sent before the walks (counted in the traffic).
    """
    traffic = attack_traffic([np.asarray(w, dtype=np.int64) for w in walks], max_len, name)
    return Collected(name, with_probes(traffic, probed), AttackData(walks, answers, name, num_items, seed))


def with_probes(traffic: Traffic, probed: np.ndarray | None) -> Traffic:
    """The traffic with one-item probe queries of ``probed`` items sent first, by the same (first) account."""
    if probed is None or len(probed) == 0:
        return traffic
    probe = attack_traffic([np.array([item], dtype=np.int64) for item in probed], traffic.max_len, traffic.names[0])
    joined = concat_traffic([probe, traffic])
    account = np.concatenate([np.zeros(probe.num_queries, dtype=np.int64), traffic.account])
    return joined.with_accounts(account, traffic.names, traffic.kinds)
