"""A cross-account signal over the service's own traffic: queries that continue another account's query.

Per-account detection has a blind spot the attacker can choose: cut one
extraction stream (a chain queried through a sliding window, a walk's growing
prefixes) over many accounts, so each account sends a short, innocent-looking
piece. Every cut leaves a mark only the service sees: the first query of the
next piece *continues* the last query of the previous one — its items before
the newest are the newest items of a query another account just sent (and the
newest item was, for an autoregressive walk, in the answer served to that
other account). Real users never do this: two people's newest ``tail`` (20)
items are not the same sequence in the same order.

``HandoffMonitor`` keeps, service-wide, the newest ``tail`` items of every
query it has seen (bounded: the ``memory`` most recently seen tails, each with
the account that sent it, when, and optionally the answer it got). A query of
at least ``tail + 1`` items whose ``tail`` items before the newest equal a
remembered tail of a *different* account is a *handoff*; when the answer to
that remembered query is known, the query's newest item must also be in it
(the service knows what it served). With ``window_seconds`` a remembered tail
older than that does not count. Per account the statistic is the number of
handoffs it received, monotone in the number of queries, so it is calibrated
like any other (``recsec_lib.seat.detectors``: ``handoff``).

An attacker who gives each account whole streams of its own (``split by
stream``) leaves no handoff: this signal closes the contiguous and round-robin
splits, not that one.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np


@dataclass
class HandoffState:
    queries: int = 0
    handoffs: int = 0  # queries of this account that continued another account's query
    flagged_at: int | None = None
    flagged_index: int | None = None

    @property
    def score(self) -> float:
        return float(self.handoffs)


@dataclass
class HandoffMonitor:
    """Flag an account once more than ``limit`` of its queries continue another account's query (None: never)."""

    limit: float | None
    tail: int = 20  # items compared (the newest ones before the query's newest item)
    memory: int = 1_000_000  # tails remembered service-wide (least recently seen forgotten)
    window_seconds: float | None = None  # a remembered tail older than this does not count (None: any)
    accounts: dict[str, HandoffState] = field(default_factory=dict)
    _seen: OrderedDict = field(default_factory=OrderedDict, repr=False)  # tail -> (account, time, answer set)

    def __post_init__(self) -> None:
        if self.tail < 1 or self.memory < 1:
            raise ValueError(f"tail and memory must be >= 1, got {self.tail} and {self.memory}")
        if self.window_seconds is not None and self.window_seconds <= 0:
            raise ValueError(f"window_seconds must be positive or None, got {self.window_seconds}")

    def observe(self, account: str, query: Sequence[int], feature: np.ndarray | None = None,
                index: int | None = None, time: float = 0.0, answer: Sequence[int] | None = None) -> bool:
        """Record one query (``answer``: what the service returned for it, if known); True if flagged."""
        state = self.accounts.get(account)
        if state is None:
            state = self.accounts[account] = HandoffState()
        state.queries += 1
        query = tuple(query)
        t = self.tail
        if len(query) > t:
            hit = self._seen.get(query[-t - 1:-1])
            if hit is not None:
                other, when, served = hit
                if (other != account and (self.window_seconds is None or time - when <= self.window_seconds)
                        and (served is None or query[-1] in served)):
                    state.handoffs += 1
        if len(query) >= t:
            key = query[-t:]
            self._seen[key] = (account, time, None if answer is None else frozenset(answer))
            self._seen.move_to_end(key)
            if len(self._seen) > self.memory:
                self._seen.popitem(last=False)
        if self.limit is not None and state.flagged_at is None and state.handoffs > self.limit:
            state.flagged_at, state.flagged_index = state.queries, index
        return state.flagged_at is not None
