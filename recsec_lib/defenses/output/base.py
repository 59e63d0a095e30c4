"""What an output defense is: a transform of the ranked list, and what it tells an attacker who knows it.

Users look at the top 10 of a list; an extraction attacker receives the whole
top-k (k = 100). An output defense changes only what the box serves:
``apply`` maps ranked lists [N, k] (best first) to served lists [N, k'] without
looking at the model again. ``knowledge(k)`` says what the served list is to an
attacker who knows the defense (``attack.views.Knowledge``): which ranks are
still exact, whether the items are the same, whether the order was reversed or
shuffled. Registered in ``OUTPUT_DEFENSES``; adding one is one class in one
file of this package (plus its test).

``DefendedBox`` serves a box's answers through a defense; ``serve_attack_data``
transforms answers that were collected from the undefended box, which is exact
for the answers (and for the queries when the walk did not depend on the
perturbed ranks, see ``attack.views.steering``).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from recsec_lib.attack.queries import AttackData
from recsec_lib.attack.views import Knowledge
from recsec_lib.common.registry import Registry

OUTPUT_DEFENSES: Registry["OutputDefense"] = Registry("output defense")


@dataclass(frozen=True)
class OutputDefense(ABC):
    """Base of every registered output defense (a frozen dataclass; ``size`` where the defense has one)."""

    name: ClassVar[str] = ""
    takes_size: ClassVar[bool] = False  # its text form is "name:size"

    @property
    def spec(self) -> str:
        """The text form ``parse_output_defense`` reads back: "none", "top:10", "tail-shuffle:10"."""
        return f"{self.name}:{self.size}" if self.takes_size else self.name  # type: ignore[attr-defined]

    @property
    @abstractmethod
    def label(self) -> str:
        """For tables and plots."""

    def served_length(self, k: int) -> int:
        """Length of the served list for a ranked list of length k."""
        return k

    @abstractmethod
    def knowledge(self, k: int) -> Knowledge:
        """What the served list is to an attacker who knows this defense (for ranked lists of length k)."""

    @abstractmethod
    def serve(self, lists: np.ndarray, rng: np.random.Generator, num_items: int,
              forbidden: np.ndarray | None) -> np.ndarray:
        """[N, served_length(k)] from [N, k] ranked lists (``forbidden`` [N, H]: the queries' items, 0-padded)."""

    def apply(self, lists: np.ndarray, rng: np.random.Generator, num_items: int = 0,
              forbidden: np.ndarray | None = None) -> np.ndarray:
        """[N, served_length(k)] the lists as served; checks the shape first."""
        lists = np.asarray(lists)
        if lists.ndim != 2:
            raise ValueError(f"parameter 'lists' must be [N, k], got shape {lists.shape}")
        self.served_length(lists.shape[1])  # raises when the defense does not fit k
        return np.ascontiguousarray(self.serve(lists, rng, num_items, forbidden))


@dataclass(frozen=True)
class SizedDefense(OutputDefense):
    """An output defense with a size (K' served, or M ranks kept exact)."""

    takes_size: ClassVar[bool] = True
    size: int = 10

    def __post_init__(self) -> None:
        if self.size <= 0:
            raise ValueError(f"parameter 'size' of output defense {self.name!r} must be positive, got {self.size}")

    def served_length(self, k: int) -> int:
        if self.size > k:
            raise ValueError(f"output defense {self.spec!r} needs lists of at least {self.size} ranks, "
                             f"the box ranks {k}")
        return k


@dataclass(frozen=True)
class TailDefense(SizedDefense):
    """Keep ranks 1..M (``size``) exact and perturb ranks M+1..k (``perturb_tail``): what users see is intact."""

    def knowledge(self, k: int) -> Knowledge:
        return Knowledge(served_len=k, exact_ranks=self.size, keeps_item_set=self.keeps_item_set, spec=self.spec)

    keeps_item_set: ClassVar[bool] = True

    @abstractmethod
    def perturb_tail(self, head: np.ndarray, tail: np.ndarray, rng: np.random.Generator, num_items: int,
                     forbidden: np.ndarray | None) -> np.ndarray:
        """[N, k - M] the served tail, from the exact head [N, M] and tail [N, k - M]."""

    def serve(self, lists, rng, num_items, forbidden):
        head, tail = lists[:, : self.size], lists[:, self.size:]  # [N, M], [N, k - M]
        return np.concatenate([head, self.perturb_tail(head, tail, rng, num_items, forbidden)], axis=1)


def parse_output_defense(text: str) -> OutputDefense:
    """"none" | "random" | "reverse" | "top:K" | "tail-shuffle:M" | "tail-reverse:M" | "tail-resample:M" | ..."""
    name, _, size = str(text).strip().partition(":")
    cls = OUTPUT_DEFENSES.get(name)
    if cls.takes_size:
        if not size.strip().isdigit():
            raise ValueError(f"output defense {text!r}: {name} needs a size, e.g. '{name}:10'")
        return OUTPUT_DEFENSES.build(name, size=int(size))
    if size.strip():
        raise ValueError(f"output defense {text!r}: {name} takes no size")
    return OUTPUT_DEFENSES.build(name)


def padded_queries(queries) -> np.ndarray:
    """[N, H] the queries' items right-padded with 0 (used only as a set of items never to serve)."""
    rows = [np.asarray(q, dtype=np.int64) for q in queries]
    out = np.zeros((len(rows), max(len(q) for q in rows)), dtype=np.int64)
    for row, query in enumerate(rows):
        out[row, : len(query)] = query
    return out


class DefendedBox:
    """A ``BlackBoxRecommender`` whose answers pass through an output defense.

    Exposes what the query generators use (``answer_batch``, ``num_items``,
    ``max_query_len``, ``k``, ``filter_seen``); ``k`` is the served length.
    """

    def __init__(self, box, defense: OutputDefense, seed: int = 0):
        self._box = box
        self.defense = defense
        self.num_items = box.num_items
        self.max_query_len = box.max_query_len
        self.filter_seen = box.filter_seen
        self.k = defense.served_length(box.k)
        self._rng = np.random.default_rng(seed)

    @property
    def log(self):
        """The wrapped box's query log (the operator's view)."""
        return self._box.log

    def answer_batch(self, accounts, queries, partial: bool = False) -> np.ndarray:
        """[N, k'] the box's answers after the defense (queries as in ``BlackBoxRecommender.answer_batch``)."""
        answers = self._box.answer_batch(accounts, queries, partial=partial)  # [N, k]
        return self.defense.apply(answers, self._rng, self.num_items, padded_queries(queries))


def serve_attack_data(data: AttackData, defense: OutputDefense, seed: int = 0) -> AttackData:
    """The answers of ``data`` (collected from the undefended box) as ``defense`` would have served them."""
    if defense.name == "none":
        return data
    rng = np.random.default_rng(seed)
    num_seqs, length, k = data.answers.shape
    served = np.empty((num_seqs, length, defense.served_length(k)), dtype=np.int64)
    for t in range(length):
        served[:, t] = defense.apply(data.answers[:, t], rng, data.num_items, data.sequences[:, : t + 1])
    return AttackData(data.sequences, served, data.generator, data.num_items, data.seed, data.answered)
