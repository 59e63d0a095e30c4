"""The SEAT account monitor, adapted to sequential-recommender traffic.

SEAT counts, per account, the pairs of queries whose encodings are closer than
a threshold and flags the account once the count passes a limit. Applied as is
to a sequential recommender that would flag every real user: a real client
sends one query after each new interaction, so an account's queries are
growing prefixes of one history (each a near-duplicate of the previous one).

The adaptation rests on a *session* relation. A new query continues a session
when it is the session's latest query ("tip") with a few items removed and a
few added (``continues_by_overlap``): new interactions appended, a client that
sends only its newest window, a user who deleted some items, a client that
appended re-ranking candidates, a client that went back. Queries of one
session are never counted as a pair: they are one history changing.

Per account the monitor keeps four statistics, each monotone in the number of
queries, each compared with its own calibrated limit (None: never flags):

* ``count`` — SEAT's statistic: pairs of *sessions* whose encodings are closer
  than ``threshold`` (a pair counts once);
* ``sessions`` — sessions opened: queries that continue none of the account's
  remembered sessions ("the window was wholly replaced"). A benign account
  has one history (a household a few); an extraction attack that sends many
  synthetic walks opens one per walk, similar or not;
* ``follow`` — an in-session signal: does each newly appended item come from
  the service's previous answer list? ``observe`` gets ``follow`` = 1 (yes),
  0 (no) or -1 (not a growth step). The statistic is a CUSUM: s = max(0, s +
  follow - follow_drift), and the score is the largest s seen. A real user
  follows the recommendations now and then; an autoregressive walk always
  does;
* ``queries`` — the lifetime volume (the volume cap is a separate monitor, but
  the count is kept for the outcome tables).

Memory per account is bounded: at most ``max_sessions`` session tips (least
recently used are forgotten), each kept as a bitset of its items [S, W], its
encoding [S, D] and an [S, S] matrix of tip pairs already counted.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np


def common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    """Length of the longest common prefix of two item sequences."""
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


def continues_by_overlap(tip: Sequence[int], query: Sequence[int], max_removed: int = 16, max_added: int = 16,
                         min_overlap: int = 5) -> bool:
    """True when ``query`` is ``tip`` with a few items dropped and a few added.

    Two ways to be "the same history, changed a little":

    * as sets (ML-1M histories never repeat an item): at most
      min(max_removed, |tip| // 2) of the tip's items dropped and at most
      min(max_added, max(1, |query| // 2)) new ones added, and at least
      min(min_overlap, |tip|, |query|) shared, so the two always share most of
      their items and two extraction walks that happen to share a few popular
      items stay apart;
    * as a branch: a common (non-empty) prefix, with at most max_removed items
      after it in the tip and max_added after it in the query — a client that
      re-ranks candidate sets after a short history (history + candidates,
      then the same history + other candidates).

    Examples (max_removed = max_added = 16): a refresh, a prefix grown by one
    item, a 200-item window slid by 10, a history with 3 items deleted, a
    history with 10 re-ranking candidates appended or swapped for 10 others.
    """
    a, b = set(tip), set(query)
    overlap = len(a & b)
    if (overlap >= min(min_overlap, len(a), len(b)) and len(a) - overlap <= min(max_removed, len(a) // 2)
            and len(b) - overlap <= min(max_added, max(1, len(b) // 2))):
        return True
    prefix = common_prefix(tip, query)
    return prefix >= 1 and len(tip) - prefix <= max_removed and len(query) - prefix <= max_added


def continues_session(tip: Sequence[int], query: Sequence[int], max_shift: int = 4, min_overlap: int = 5) -> bool:
    """The strict relation of the first version (kept for comparison): identical, prefix, extension or a
    sliding window shifted by at most ``max_shift`` items with ``min_overlap`` items in common."""
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


def item_bits(query: Sequence[int], words: int) -> np.ndarray:
    """[words] uint64 bitset with bit i set for each item i of ``query`` (ids < 64 * words)."""
    flags = np.zeros(words * 64, dtype=bool)
    flags[np.asarray(query, dtype=np.int64)] = True
    return np.packbits(flags, bitorder="little").view(np.uint64)


@dataclass
class AccountState:
    """What the monitor remembers about one account (bounded by max_sessions)."""

    tips: list  # [S] each remembered session's tip as a tuple (None = empty slot)
    bits: np.ndarray  # [S, W] uint64 items of each remembered session's tip
    sizes: np.ndarray  # [S] distinct items of each tip (0 = empty slot)
    encodings: np.ndarray  # [S, D] encoding of each slot's tip
    last_used: np.ndarray  # [S] query number at which each slot was last touched (-1 = empty)
    paired: np.ndarray  # [S, S] bool: this pair of sessions has already been counted
    queries: int = 0  # queries seen from this account
    sessions: int = 0  # sessions opened so far (not bounded: a plain counter)
    count: int = 0  # close session pairs counted so far
    follow_sum: float = 0.0  # the running CUSUM of (follow - drift)
    follow: float = 0.0  # its largest value so far
    flagged_at: int | None = None  # query number (1-based, within the account) at which it was flagged
    flagged_index: int | None = None  # global log index of that query
    flagged_by: str | None = None  # which statistic passed its limit first: pairs | sessions | follow

    @property
    def score(self) -> float:
        """SEAT's own statistic (close session pairs), compared with ``limit``."""
        return float(self.count)


@dataclass
class SeatMonitor:
    """Online SEAT monitor: call ``observe`` once per query, in log order.

    A limit of None never flags on that statistic (``limit=None`` with the
    others None measures benign statistics for calibration).
    """

    threshold: float  # two encodings closer than this (L2, unit vectors) are "similar"
    limit: int | None  # flag once the count of close session pairs exceeds this
    dim: int  # encoding size
    num_items: int = 4096  # item ids are < num_items + 1 (sizes the bitsets)
    session_limit: int | None = None  # flag once the sessions opened exceed this
    follow_limit: float | None = None  # flag once the follow CUSUM exceeds this
    follow_drift: float = 0.8  # subtracted per growth step: users following less often drift to 0
    max_sessions: int = 64  # session tips remembered per account
    max_removed: int = 16  # see continues_by_overlap
    max_added: int = 16
    min_overlap: int = 5
    accounts: dict[str, AccountState] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.threshold < 0:
            raise ValueError(f"threshold must be >= 0, got {self.threshold}")
        for name in ("limit", "session_limit", "follow_limit"):
            value = getattr(self, name)
            if value is not None and value < 0:
                raise ValueError(f"{name} must be >= 0 or None, got {value}")
        if self.max_sessions < 1:
            raise ValueError(f"max_sessions must be >= 1, got {self.max_sessions}")
        if not 0 < self.follow_drift < 1:
            raise ValueError(f"follow_drift must be in (0, 1), got {self.follow_drift}")
        self._words = (self.num_items + 1 + 63) // 64

    def _state(self, account: str) -> AccountState:
        state = self.accounts.get(account)
        if state is None:
            s = self.max_sessions
            state = AccountState(tips=[None] * s, bits=np.zeros((s, self._words), dtype=np.uint64), sizes=np.zeros(s, dtype=np.int64),
                                 encodings=np.zeros((s, self.dim), dtype=np.float32),
                                 last_used=np.full(s, -1, dtype=np.int64), paired=np.zeros((s, s), dtype=bool))
            self.accounts[account] = state
        return state

    def _find_session(self, state: AccountState, query: tuple[int, ...], bits: np.ndarray, size: int) -> int:
        """Slot of the session the query continues (the one sharing most items), or -1 (``continues_by_overlap``)."""
        used = state.last_used >= 0
        overlap = np.bitwise_count(state.bits & bits).sum(axis=1, dtype=np.int64)  # [S]
        ok = (used & (overlap >= np.minimum(self.min_overlap, np.minimum(state.sizes, size))) & (overlap >= 1)
              & (state.sizes - overlap <= np.minimum(self.max_removed, state.sizes // 2))
              & (size - overlap <= min(self.max_added, max(1, size // 2))))
        if ok.any():
            return int(np.flatnonzero(ok)[np.argmax(overlap[ok])])
        # The branch rule needs a common prefix p with |tip| - p <= max_removed and |query| - p <= max_added;
        # p <= overlap, so only tips sharing that many items are read in order (none, for unrelated walks).
        need = np.maximum(state.sizes - self.max_removed, size - self.max_added)  # [S]
        for slot in np.flatnonzero(used & (overlap >= np.maximum(need, 1))).tolist():
            tip = state.tips[slot]
            prefix = common_prefix(tip, query)
            if prefix >= 1 and len(tip) - prefix <= self.max_removed and len(query) - prefix <= self.max_added:
                return slot
        return -1

    def observe(self, account: str, query: Sequence[int], encoding: np.ndarray, index: int | None = None,
                follow: int = -1) -> bool:
        """Record one query of ``account`` (its encoding: [D] unit vector); True if the account is flagged.

        ``follow``: 1 if the query's first new item was in the service's answer to the account's previous
        query (of which this query is a growth), 0 if not, -1 if this query is not such a growth step.
        """
        state = self._state(account)
        state.queries += 1
        query = tuple(query)
        bits = item_bits(query, self._words)  # [W]
        size = int(np.bitwise_count(bits).sum())
        slot = self._find_session(state, query, bits, size)
        if slot < 0:  # a new session: take an empty slot or forget the least recently used one
            slot = int(np.argmin(state.last_used))
            state.paired[slot, :] = False
            state.paired[:, slot] = False
            state.sessions += 1
        state.tips[slot] = query
        state.bits[slot] = bits
        state.sizes[slot] = size
        state.encodings[slot] = encoding
        state.last_used[slot] = state.queries

        others = (state.last_used >= 0) & ~state.paired[slot]  # [S] sessions not yet paired with this one
        others[slot] = False
        if others.any():
            distances = np.linalg.norm(state.encodings[others] - encoding, axis=1)  # [n_others]
            close = np.flatnonzero(others)[distances < self.threshold]
            if len(close):
                state.count += len(close)
                state.paired[slot, close] = True
                state.paired[close, slot] = True
        if follow >= 0:
            state.follow_sum = max(0.0, state.follow_sum + follow - self.follow_drift)
            state.follow = max(state.follow, state.follow_sum)
        if state.flagged_at is None:
            reason = None
            if self.limit is not None and state.count > self.limit:
                reason = "pairs"
            elif self.session_limit is not None and state.sessions > self.session_limit:
                reason = "sessions"
            elif self.follow_limit is not None and state.follow > self.follow_limit:
                reason = "follow"
            if reason is not None:
                state.flagged_at, state.flagged_index, state.flagged_by = state.queries, index, reason
        return state.flagged_at is not None
