"""The SEAT account monitor, adapted to sequential-recommender traffic.

SEAT counts, per account, the pairs of queries whose encodings are closer than
a threshold and flags the account once the count passes a limit. Applied as is
to a sequential recommender that would flag every real user: a real client
sends one query after each new interaction, so an account's queries are
growing prefixes of one history (each a near-duplicate of the previous one),
and page refreshes repeat a query exactly.

The adaptation here rests on a *session* relation. A new query continues a
session when the session's latest query ("tip") is identical to it, a prefix of
it, an extension of it (the user went back), or the same history shifted by at
most ``max_shift`` items (a client that sends only the most recent window).
Queries of one session are never counted as a pair: they are one history
growing. What is counted is pairs of *sessions*: a pair counts once, the first
time a query of one comes within ``threshold`` of the other's tip. A benign
account has one session (two or three for a shared household account); an
extraction attack sends thousands of synthetic walks, each its own session,
and the walks are mutually similar because they follow the model's own top-k
(autoregressive) or average out to the same point (uniformly random items).

Memory per account is bounded: at most ``max_sessions`` session tips (least
recently used are forgotten), their encodings and a [S, S] matrix of which tip
pairs were already counted.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np


def continues_session(tip: Sequence[int], query: Sequence[int], max_shift: int = 4, min_overlap: int = 5) -> bool:
    """True when ``query`` is the same history as ``tip``, grown, cut back or shifted.

    * identical, ``tip`` a prefix of ``query`` (new interactions), or ``query``
      a prefix of ``tip`` (the client went back);
    * ``tip[k:]`` a prefix of ``query`` for 1 <= k <= max_shift, when at least
      ``min_overlap`` items overlap (a sliding window that dropped its oldest
      items as new ones arrived).
    """
    tip, query = tuple(tip), tuple(query)
    if len(tip) <= len(query):
        if query[:len(tip)] == tip:
            return True
    elif tip[:len(query)] == query:
        return True
    for shift in range(1, max_shift + 1):
        overlap = len(tip) - shift
        if overlap < min_overlap:
            break
        if overlap <= len(query) and query[:overlap] == tip[shift:]:
            return True
    return False


@dataclass
class AccountState:
    """What the monitor remembers about one account (bounded by max_sessions)."""

    tips: list[tuple[int, ...] | None]  # [S] latest query of each remembered session slot
    encodings: np.ndarray  # [S, D] encoding of each slot's tip
    last_used: np.ndarray  # [S] query number at which each slot was last touched (-1 = empty)
    paired: np.ndarray  # [S, S] bool: this pair of sessions has already been counted
    queries: int = 0  # queries seen from this account
    sessions: int = 0  # sessions opened so far (not bounded: a plain counter)
    count: int = 0  # close session pairs counted so far
    flagged_at: int | None = None  # query number (1-based, within the account) at which it was flagged
    flagged_index: int | None = None  # global log index of that query
    last_slot: int = -1  # slot touched by the previous query (checked first)

    @property
    def score(self) -> float:
        """The statistic compared with the limit: close session pairs counted so far."""
        return float(self.count)


@dataclass
class SeatMonitor:
    """Online SEAT monitor: call ``observe`` once per query, in log order.

    ``limit=None`` never flags (used to measure benign counts for calibration).
    """

    threshold: float  # two encodings closer than this (L2, unit vectors) are "similar"
    limit: int | None  # flag an account once its count of close session pairs exceeds this
    dim: int  # encoding size
    max_sessions: int = 64  # session tips remembered per account
    max_shift: int = 4  # see continues_session
    min_overlap: int = 5
    accounts: dict[str, AccountState] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.threshold < 0:
            raise ValueError(f"threshold must be >= 0, got {self.threshold}")
        if self.limit is not None and self.limit < 0:
            raise ValueError(f"limit must be >= 0 or None, got {self.limit}")
        if self.max_sessions < 1:
            raise ValueError(f"max_sessions must be >= 1, got {self.max_sessions}")

    def _state(self, account: str) -> AccountState:
        state = self.accounts.get(account)
        if state is None:
            s = self.max_sessions
            state = AccountState(tips=[None] * s, encodings=np.zeros((s, self.dim), dtype=np.float32),
                                 last_used=np.full(s, -1, dtype=np.int64), paired=np.zeros((s, s), dtype=bool))
            self.accounts[account] = state
        return state

    def _find_session(self, state: AccountState, query: tuple[int, ...]) -> int:
        """Slot of the session ``query`` continues, or -1. The previous query's slot is tried first."""
        last = state.last_slot
        if last >= 0 and continues_session(state.tips[last], query, self.max_shift, self.min_overlap):
            return last
        for slot in np.argsort(-state.last_used).tolist():
            tip = state.tips[slot]
            if slot != last and tip is not None and continues_session(tip, query, self.max_shift, self.min_overlap):
                return slot
        return -1

    def observe(self, account: str, query: Sequence[int], encoding: np.ndarray, index: int | None = None) -> bool:
        """Record one query of ``account`` (its encoding: [D] unit vector); True if the account is flagged."""
        state = self._state(account)
        query = tuple(query)
        state.queries += 1
        slot = self._find_session(state, query)
        if slot < 0:  # a new session: take an empty slot or forget the least recently used one
            slot = int(np.argmin(state.last_used))
            state.tips[slot] = query
            state.encodings[slot] = encoding
            state.paired[slot, :] = False
            state.paired[:, slot] = False
            state.sessions += 1
        elif len(query) >= len(state.tips[slot]):  # the session grew (or was refreshed): new tip
            state.tips[slot] = query
            state.encodings[slot] = encoding
        state.last_used[slot] = state.queries
        state.last_slot = slot

        others = (state.last_used >= 0) & ~state.paired[slot]  # [S] sessions not yet paired with this one
        others[slot] = False
        if others.any():
            distances = np.linalg.norm(state.encodings[others] - encoding, axis=1)  # [n_others]
            close = np.flatnonzero(others)[distances < self.threshold]
            if len(close):
                state.count += len(close)
                state.paired[slot, close] = True
                state.paired[close, slot] = True
        if self.limit is not None and state.flagged_at is None and state.count > self.limit:
            state.flagged_at = state.queries
            state.flagged_index = index
        return state.flagged_at is not None
