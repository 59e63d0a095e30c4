"""The attacker's view of a defense: which ranks it steers by and what it trains on.

Every defense is judged against the attacker who copes with it best, and every
arm of a comparison (the undefended reference included) faces the same set of
views, so that no arm is credited with protection its reference never had to
show. A view is a registered object (``VIEWS``):

* ``naive``          — steers by and trains on every rank it receives;
* ``top-10``         — steers by and trains on the first 10 ranks only: open to
  anyone, and better than the naive view against an undefended box when the
  tail of the list teaches little;
* ``knowing``        — knows the defense (its ``Knowledge``): trains on, and
  steers by, only the ranks served exactly; reads a reversed list backwards;
  ignores the order of a shuffled list (trains on the item set). Against an
  undefended box it is the naive view;
* ``drop-promoted``  — the naive view minus the one item that appears most
  often in its answers' top 10 (a defense that pushes one item into every list,
  such as GRO's zero-gradient rules, shows itself that way; against other boxes
  it drops a popular item).

A view maps what a box serves (``served_len`` ranks, the defense's
``Knowledge``) to a ``Plan``: the ranks its walk is steered by (0 = all it
receives) and how it turns the served answers into training lists. Plans are
written in canonical terms (``exact`` ranks of the model's own ranking where
the defense leaves them exact), so two views that see the same data have equal
plans and their surrogate is trained once.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from recsec_lib.attack.queries import AttackData
from recsec_lib.common.registry import Registry

VIEWS: Registry["AttackerView"] = Registry("attacker view")


@dataclass(frozen=True)
class Knowledge:
    """What a served list is, as an attacker who knows the defense understands it."""

    served_len: int  # ranks served
    exact_ranks: int  # the first `exact_ranks` served ranks are the model's own ranking, in place
    keeps_item_set: bool = True  # the served items are exactly the model's top `served_len` (order aside)
    reversed: bool = False  # the served list is the exact ranking read backwards
    order_free: bool = False  # the served order carries nothing (a shuffle): only the set informs
    spec: str = "none"  # the defense's name and size, e.g. "tail-resample:10" (identifies served lists)

    def __post_init__(self) -> None:
        if not 0 <= self.exact_ranks <= self.served_len:
            raise ValueError(f"Knowledge.exact_ranks must be in 0..served_len ({self.served_len}), "
                             f"got {self.exact_ranks}")


UNDEFENDED = "none"


def undefended(k: int) -> Knowledge:
    """What an undefended box of k ranks serves: its exact ranking."""
    return Knowledge(served_len=k, exact_ranks=k, spec=UNDEFENDED)


@dataclass(frozen=True)
class Lists:
    """Which training lists: ``ranks`` of the exact ranking, or of the served lists (``served``), then a transform."""

    ranks: int  # the first `ranks` of each list
    served: bool = False  # False: of the model's exact ranking; True: of the served (perturbed) lists
    transform: str = ""  # "" | "drop-promoted"
    order_weight: float = 1.0  # weight of the margin loss's order term (0: the order carries nothing)


@dataclass(frozen=True)
class Plan:
    """What one view does against one box: how its walk is steered and what it trains on (canonical, hashable)."""

    steer_exact: bool  # the walk draws from the exact ranking (True) or from the served, perturbed list (False)
    steer: int  # ranks the walk draws from
    lists: Lists


class AttackerView(ABC):
    """Base of every registered view."""

    name: ClassVar[str] = ""

    @abstractmethod
    def plan(self, knowledge: Knowledge) -> Plan:
        """The plan of this view against a box that serves what ``knowledge`` says."""


def steering(knowledge: Knowledge, ranks: int) -> tuple[bool, int]:
    """(draws from the exact ranking?, ranks) for a walk that draws uniformly from the first ``ranks`` served.

    Exact when those ranks are served exactly, or when they are the whole list
    and the defense keeps its item set (a uniform draw from a shuffled or
    reversed list is a uniform draw from the exact one).
    """
    ranks = min(ranks, knowledge.served_len)
    exact = ranks <= knowledge.exact_ranks or (ranks == knowledge.served_len and knowledge.keeps_item_set)
    return exact, ranks


def lists_of(knowledge: Knowledge, ranks: int, **extra) -> Lists:
    """Training lists: the first ``ranks`` served, in canonical terms (exact where the defense left them so)."""
    ranks = min(ranks, knowledge.served_len)
    return Lists(ranks, served=ranks > knowledge.exact_ranks, **extra)


@VIEWS.register
class Naive(AttackerView):
    name: ClassVar[str] = "naive"

    def plan(self, knowledge: Knowledge) -> Plan:
        return Plan(*steering(knowledge, knowledge.served_len), lists_of(knowledge, knowledge.served_len))


@VIEWS.register
class TopTen(AttackerView):
    name: ClassVar[str] = "top-10"
    ranks: ClassVar[int] = 10

    def plan(self, knowledge: Knowledge) -> Plan:
        return Plan(*steering(knowledge, self.ranks), lists_of(knowledge, self.ranks))


@VIEWS.register
class Knowing(AttackerView):
    name: ClassVar[str] = "knowing"

    def plan(self, knowledge: Knowledge) -> Plan:
        k = knowledge.served_len
        if knowledge.reversed:  # read backwards: the exact ranking again
            return Plan(*steering(knowledge, k), Lists(k, served=False))
        if knowledge.order_free:  # only the set informs: train on it, without the order term
            return Plan(*steering(knowledge, k), Lists(k, served=False, order_weight=0.0))
        if 0 < knowledge.exact_ranks < k:  # only the first M are real: steer by and train on them
            return Plan(*steering(knowledge, knowledge.exact_ranks), lists_of(knowledge, knowledge.exact_ranks))
        return Naive().plan(knowledge)


@VIEWS.register
class DropPromoted(AttackerView):
    name: ClassVar[str] = "drop-promoted"

    def plan(self, knowledge: Knowledge) -> Plan:
        naive = Naive().plan(knowledge)
        lists = naive.lists
        return Plan(naive.steer_exact, naive.steer, Lists(lists.ranks, lists.served, "drop-promoted"))


def most_promoted_item(answers: np.ndarray, top: int = 10, answered: np.ndarray | None = None) -> int:
    """The item found most often in the first ``top`` ranks of the answers ([S, L, k]; ``answered`` [S, L] masks)."""
    head = answers[..., :top]
    if answered is not None:
        head = head[answered]
    counts = np.bincount(head.reshape(-1), minlength=2)
    counts[0] = 0  # padding of unanswered rows
    return int(np.argmax(counts))


def drop_item(answers: np.ndarray, item: int) -> np.ndarray:
    """[S, L, k - 1] each list without ``item`` (lists that lack it lose their last rank instead)."""
    keep = answers != item  # [S, L, k]
    k = answers.shape[-1]
    has = ~keep.all(axis=-1)  # [S, L]
    keep[..., k - 1] &= has  # lists without the item drop their last rank
    return answers[keep].reshape(*answers.shape[:-1], k - 1)


def training_data(data: AttackData, lists: Lists) -> AttackData:
    """The training data of ``lists`` from answers that already hold the right ranks (exact or served).

    ``data.answers`` are the answers the plan's lists are cut from; this applies
    the rank cut and the transform (the caller chose exact or served answers).
    """
    answers = data.answers[..., : lists.ranks]
    if lists.transform == "drop-promoted":
        answers = drop_item(answers, most_promoted_item(answers, answered=data.answered))
    return AttackData(data.sequences, np.ascontiguousarray(answers), data.generator, data.num_items, data.seed,
                      data.answered)
