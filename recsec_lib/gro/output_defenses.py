"""Output defenses: change what the black box returns, not the model behind it.

Users look at the top 10 of a list; an extraction attacker receives the whole
top-k (k = 100). That gap is room for defenses that cost users nothing:

* ``top:K'``   — serve only the top K' (K' in 10, 20, 50): the attacker learns
  from K' ranks instead of k;
* ``tail-shuffle:M`` / ``tail-reverse:M`` — keep ranks 1..M exact and shuffle or
  reverse ranks M+1..k (the same items, wrong order);
* ``tail-resample:M`` — keep ranks 1..M exact and replace ranks M+1..k by items
  drawn uniformly from the catalogue (never the query's items nor ranks 1..M):
  the tail then carries neither order nor set information;
* ``random`` / ``reverse`` — the GRO paper's baselines: the whole list shuffled
  or reversed (users see the damage).

A defense must be judged against an attacker who knows it. Against ``top:K'``
the attacker simply trains on the K' ids it gets; against ``tail-*:M`` it can
train on ranks 1..M only (``knowing_list_len``); against ``reverse`` it reverses
the list back, which undoes the defense exactly (``inverts_exactly``).

Every defense here maps a ranked list [N, k] to a served list [N, k'] without
looking at the model again, so ``DefendedBox`` wraps an undefended
``BlackBoxRecommender`` and the same collected answers can be transformed
after the fact (``defend_attack_data``) when the defense keeps the list's item
set: an autoregressive attacker draws the next item uniformly from the returned
list, so its queries have the same distribution behind such a defense.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from recsec_lib.attack.queries import AttackData

KINDS = ("none", "random", "reverse", "top", "tail-shuffle", "tail-reverse", "tail-resample")
_NEEDS_SIZE = ("top", "tail-shuffle", "tail-reverse", "tail-resample")


@dataclass(frozen=True)
class OutputDefense:
    """One transform of the returned list. ``size`` is K' for "top", M (ranks kept exact) for "tail-*"."""

    kind: str = "none"
    size: int = 0

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"parameter 'kind' must be one of {KINDS}, got {self.kind!r}")
        if self.kind in _NEEDS_SIZE and self.size <= 0:
            raise ValueError(f"parameter 'size' of output defense {self.kind!r} must be positive, got {self.size}")
        if self.kind not in _NEEDS_SIZE and self.size:
            raise ValueError(f"output defense {self.kind!r} takes no size, got {self.size}")

    @property
    def spec(self) -> str:
        """The text form ``parse_output_defense`` reads back: "none", "top:10", "tail-shuffle:10"."""
        return f"{self.kind}:{self.size}" if self.size else self.kind

    @property
    def label(self) -> str:
        """For tables and plots."""
        return {"none": "None", "random": "Random", "reverse": "Reverse", "top": f"top-{self.size} only",
                "tail-shuffle": f"top-{self.size} exact, tail shuffled",
                "tail-reverse": f"top-{self.size} exact, tail reversed",
                "tail-resample": f"top-{self.size} exact, tail resampled"}[self.kind]

    @property
    def keeps_item_set(self) -> bool:
        """True when the served list holds exactly the ranked list's items (only their order may change)."""
        return self.kind in ("none", "random", "reverse", "tail-shuffle", "tail-reverse")

    @property
    def knowing_list_len(self) -> int:
        """Ranks an attacker who knows the defense trains on (0 = all it receives)."""
        return self.size if self.kind.startswith("tail-") else 0

    @property
    def inverts_exactly(self) -> bool:
        """True when an attacker who knows the defense can undo it exactly (reverse: read the list backwards)."""
        return self.kind == "reverse"

    def served_length(self, k: int) -> int:
        """Length of the served list for a ranked list of length k."""
        if self.kind == "top":
            if self.size > k:
                raise ValueError(f"output defense {self.spec!r} serves more ranks than the box ranks ({k})")
            return self.size
        if self.kind.startswith("tail-") and self.size > k:
            raise ValueError(f"output defense {self.spec!r} keeps more ranks than the box ranks ({k})")
        return k

    def apply(
        self,
        lists: np.ndarray,  # [N, k] ranked item ids, best first
        rng: np.random.Generator,
        num_items: int = 0,  # catalogue size (items 1..num_items); needed by tail-resample
        forbidden: np.ndarray | None = None,  # [N, H] item ids never served (the query's items; 0 = padding)
    ) -> np.ndarray:
        """[N, served_length(k)] the lists as served."""
        lists = np.asarray(lists)
        if lists.ndim != 2:
            raise ValueError(f"parameter 'lists' must be [N, k], got shape {lists.shape}")
        k = lists.shape[1]
        width = self.served_length(k)
        if self.kind == "none":
            return lists
        if self.kind == "random":
            return rng.permuted(lists, axis=1)
        if self.kind == "reverse":
            return np.ascontiguousarray(lists[:, ::-1])
        if self.kind == "top":
            return np.ascontiguousarray(lists[:, :width])
        head, tail = lists[:, : self.size], lists[:, self.size:]  # [N, M], [N, k - M]
        if self.kind == "tail-shuffle":
            tail = rng.permuted(tail, axis=1)
        elif self.kind == "tail-reverse":
            tail = tail[:, ::-1]
        else:
            tail = _resample_tail(head, k - self.size, num_items, forbidden, rng)
        return np.ascontiguousarray(np.concatenate([head, tail], axis=1))


def parse_output_defense(text: str) -> OutputDefense:
    """"none" | "random" | "reverse" | "top:K" | "tail-shuffle:M" | "tail-reverse:M" | "tail-resample:M"."""
    kind, _, size = str(text).strip().partition(":")
    if kind not in KINDS:
        raise ValueError(f"output defense {text!r}: the kind must be one of {KINDS}")
    if kind in _NEEDS_SIZE and not size.strip().isdigit():
        raise ValueError(f"output defense {text!r}: {kind} needs a size, e.g. '{kind}:10'")
    return OutputDefense(kind, int(size) if size.strip() else 0)


def _resample_tail(head: np.ndarray, width: int, num_items: int, forbidden: np.ndarray | None,
                   rng: np.random.Generator, chunk: int = 2048) -> np.ndarray:
    """[N, width] items drawn uniformly without repeats from 1..num_items minus the head and the forbidden ids."""
    if num_items <= 0:
        raise ValueError("parameter 'num_items' is needed to resample a tail")
    rows = head.shape[0]
    out = np.empty((rows, width), dtype=np.int64)
    for start in range(0, rows, chunk):
        stop = min(start + chunk, rows)
        keys = rng.random((stop - start, num_items + 1))  # [c, C] a random order of the catalogue per row
        blocked = np.zeros_like(keys, dtype=bool)
        blocked[:, 0] = True  # padding
        np.put_along_axis(blocked, head[start:stop], True, axis=1)
        if forbidden is not None:
            np.put_along_axis(blocked, np.asarray(forbidden[start:stop], dtype=np.int64), True, axis=1)
        if (~blocked).sum(axis=1).min() < width:
            raise ValueError(f"fewer than {width} items are left to resample a tail from")
        keys[blocked] = np.inf
        out[start:stop] = np.argpartition(keys, width - 1, axis=1)[:, :width]
    return out


def _prefix_matrix(sequences: np.ndarray, t: int) -> np.ndarray:
    """[S, t + 1] the queries of step t (each sequence's first t + 1 items)."""
    return sequences[:, : t + 1]


def defend_attack_data(data: AttackData, defense: OutputDefense, seed: int = 0) -> AttackData:
    """The answers of ``data`` as a box with ``defense`` would have served them (same queries).

    Exact for the answers; for the queries it is exact when the defense keeps
    the item set (``keeps_item_set``) or when the queries do not depend on the
    answers (the "random" generator). ``seed`` drives the defense's randomness.
    """
    if defense.kind == "none":
        return data
    rng = np.random.default_rng(seed)
    num_seqs, length, k = data.answers.shape
    served = np.empty((num_seqs, length, defense.served_length(k)), dtype=np.int64)
    for t in range(length):
        forbidden = _prefix_matrix(data.sequences, t) if defense.kind == "tail-resample" else None
        served[:, t] = defense.apply(data.answers[:, t], rng, data.num_items, forbidden)
    return AttackData(data.sequences, served, data.generator, data.num_items, data.seed)


def knowing_view(data: AttackData, defense: OutputDefense) -> AttackData | None:
    """What an attacker who knows ``defense`` trains on, or None when that is the data as received.

    tail-*:M → only ranks 1..M; reverse → the lists read backwards (the undefended answers again).
    """
    if defense.knowing_list_len:
        return AttackData(data.sequences, np.ascontiguousarray(data.answers[:, :, : defense.knowing_list_len]),
                          data.generator, data.num_items, data.seed)
    if defense.inverts_exactly:
        return AttackData(data.sequences, np.ascontiguousarray(data.answers[:, :, ::-1]), data.generator,
                          data.num_items, data.seed)
    return None


class DefendedBox:
    """An undefended ``BlackBoxRecommender`` whose answers pass through an ``OutputDefense``.

    Exposes what ``generate_queries`` and ``run_attack`` use (``answer_batch``,
    ``num_items``, ``max_query_len``, ``k``, ``filter_seen``); ``k`` is the
    served length.
    """

    def __init__(self, box, defense: OutputDefense, seed: int = 0):
        if getattr(box, "defense", "none") != "none":
            raise ValueError("parameter 'box' must be undefended (defense 'none'); the output defense is added here")
        self._box = box
        self.defense = defense
        self.num_items = box.num_items
        self.max_query_len = box.max_query_len
        self.filter_seen = box.filter_seen
        self.k = defense.served_length(box.k)
        self._rng = np.random.default_rng(seed)

    def answer_batch(self, accounts, queries, partial: bool = False) -> np.ndarray:
        """[N, k'] the box's answers after the defense (queries as in ``BlackBoxRecommender.answer_batch``)."""
        answers = self._box.answer_batch(accounts, queries, partial=partial)  # [N, k]
        forbidden = None
        if self.defense.kind == "tail-resample":
            rows = [np.asarray(q, dtype=np.int64) for q in queries]
            width = max(len(q) for q in rows)
            forbidden = np.zeros((len(rows), width), dtype=np.int64)
            for row, query in enumerate(rows):
                forbidden[row, : len(query)] = query
        return self.defense.apply(answers, self._rng, self.num_items, forbidden)
