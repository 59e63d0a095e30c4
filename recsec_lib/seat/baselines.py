"""The detectors SEAT is compared with, at the same false-positive rate.

* ``VolumeCapMonitor``: flag an account once it has sent more than ``limit``
  queries. The simplest defence; an attacker beats it by splitting its queries
  over ceil(total / limit) accounts.
* ``PradaMonitor``: PRADA (Juuti et al., EuroS&P 2019). For each new query of an
  account, the minimum distance to the account's earlier queries (its "growing
  set") is recorded; benign queries are assumed to give normally distributed
  minimum distances, so the account is flagged when a normality statistic of
  these distances drops below a limit. We use the Shapiro–Francia statistic W'
  (the squared correlation between the sorted distances and normal scores; a
  close, simpler relative of Shapiro–Wilk's W that needs no coefficient
  tables), and as PRADA's "raw input space" a bag-of-items vector of the whole
  query, reduced to ``dim`` numbers by a fixed random projection
  (Johnson–Lindenstrauss) so distances are cheap. A query joins the growing
  set when its minimum distance exceeds mean - std of the distances so far, as
  in PRADA. PRADA is applied as published: it knows nothing of sessions.

Both expose the interface of ``SeatMonitor``: ``observe(account, query,
feature, index) -> flagged`` and per-account states with ``queries``,
``flagged_at`` and a monotone ``score`` compared with the limit.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from statistics import NormalDist

import numpy as np


def shapiro_francia(values: Sequence[float]) -> float:
    """Shapiro–Francia W' in [0, 1]: near 1 for normal samples, lower otherwise.

    W' = (sum m_i x_(i))^2 / (sum m_i^2 * sum (x_i - mean)^2), with m_i the normal
    quantile of (i - 3/8) / (n + 1/4) (Blom scores). A constant sample (zero
    variance) is as far from normal as it gets: W' = 0.
    """
    x = np.sort(np.asarray(values, dtype=np.float64))
    n = len(x)
    if n < 3:
        raise ValueError(f"shapiro_francia needs at least 3 values, got {n}")
    spread = ((x - x.mean()) ** 2).sum()
    if spread <= 1e-12 * max(1.0, float(np.abs(x).max()) ** 2):
        return 0.0
    m = _blom_scores(n)
    return float((m @ x) ** 2 / ((m @ m) * spread))


@lru_cache(maxsize=1024)
def _blom_scores(n: int) -> np.ndarray:
    """Normal scores m_i = Phi^-1((i - 3/8) / (n + 1/4)), i = 1..n (cached: the monitor reuses them)."""
    return np.array([NormalDist().inv_cdf((i - 0.375) / (n + 0.25)) for i in range(1, n + 1)])


def item_projection(num_items: int, dim: int = 64, seed: int = 0) -> np.ndarray:
    """[num_items + 1, dim] fixed random vectors, one per item; row 0 (padding) is zero."""
    rng = np.random.default_rng(seed)
    projection = rng.standard_normal((num_items + 1, dim)).astype(np.float32) / np.sqrt(dim)
    projection[0] = 0.0
    return projection


def bag_of_items_features(windows: np.ndarray, num_items: int, dim: int = 64, seed: int = 0,
                          projection: np.ndarray | None = None) -> np.ndarray:
    """[U, L] left-padded queries -> [U, dim] unit vectors: random projection of the item multiset.

    Summed with ``torch.nn.functional.embedding_bag`` (no [U, L, dim] temporary: this is what a deployed
    PRADA computes per query). ``projection``: ``item_projection(num_items, dim, seed)``, if already built.
    """
    import torch

    if projection is None:
        projection = item_projection(num_items, dim, seed)
    with torch.no_grad():
        bags = torch.nn.functional.embedding_bag(torch.as_tensor(np.asarray(windows, dtype=np.int64)),
                                                 torch.as_tensor(projection), mode="sum", padding_idx=0)
    return _unit(bags.numpy())


def bag_of_items_prefix_features(sources: Sequence[np.ndarray], keys: np.ndarray, max_len: int | np.ndarray,
                                 num_items: int, dim: int = 64, seed: int = 0) -> np.ndarray:
    """The same vectors as ``bag_of_items_features`` for queries given as (source, end) keys [U, 2].

    A query is the last ``max_len`` items of ``sources[s][:end]`` (``max_len``: one
    number, or [U] one per key for clients with their own window); its bag is a
    difference of two running sums over the source, so each source costs one
    pass however many of its prefixes are queried.
    """
    projection = item_projection(num_items, dim, seed)
    widths = np.broadcast_to(np.asarray(max_len, dtype=np.int64), (len(keys),))  # [U]
    out = np.zeros((len(keys), dim), dtype=np.float32)
    order = np.argsort(keys[:, 0], kind="stable")
    boundaries = np.flatnonzero(np.diff(keys[order, 0])) + 1
    for rows in np.split(order, boundaries):
        if len(rows) == 0:
            continue
        source = sources[int(keys[rows[0], 0])]
        running = np.zeros((len(source) + 1, dim), dtype=np.float64)
        np.cumsum(projection[source], axis=0, out=running[1:])
        ends = keys[rows, 1]
        out[rows] = running[ends] - running[np.maximum(0, ends - widths[rows])]
    return _unit(out)


def _unit(vectors: np.ndarray) -> np.ndarray:
    return vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)


@dataclass
class VolumeState:
    queries: int = 0
    flagged_at: int | None = None
    flagged_index: int | None = None

    @property
    def score(self) -> float:
        return float(self.queries)


@dataclass
class VolumeCapMonitor:
    """Flag an account once it has sent more than ``limit`` queries (None: never)."""

    limit: float | None
    accounts: dict[str, VolumeState] = field(default_factory=dict)

    def observe(self, account: str, query: Sequence[int], feature: np.ndarray | None = None,
                index: int | None = None) -> bool:
        state = self.accounts.setdefault(account, VolumeState())
        state.queries += 1
        if self.limit is not None and state.flagged_at is None and state.queries > self.limit:
            state.flagged_at, state.flagged_index = state.queries, index
        return state.flagged_at is not None


@dataclass
class RateState:
    times: deque  # times of the queries inside the current window
    queries: int = 0
    score: float = 0.0  # most queries seen inside any window of window_seconds
    flagged_at: int | None = None
    flagged_index: int | None = None


@dataclass
class RateCapMonitor:
    """Flag an account once more than ``limit`` of its queries fall within ``window_seconds`` (None: never).

    The lifetime cap bounds what one account can ever send; this bounds how
    fast. Against an attacker who paces its queries evenly over a horizon of
    H seconds it binds when the attack's queries per account per window
    exceed the limit (``rate_cap_accounts_needed``).
    """

    limit: float | None
    window_seconds: float = 3600.0
    accounts: dict[str, RateState] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.window_seconds <= 0:
            raise ValueError(f"window_seconds must be positive, got {self.window_seconds}")

    def observe(self, account: str, query: Sequence[int], feature: np.ndarray | None = None,
                index: int | None = None, time: float = 0.0) -> bool:
        state = self.accounts.get(account)
        if state is None:
            state = self.accounts[account] = RateState(times=deque())
        state.queries += 1
        state.times.append(time)
        while state.times[0] <= time - self.window_seconds:
            state.times.popleft()
        state.score = max(state.score, float(len(state.times)))
        if self.limit is not None and state.flagged_at is None and state.score > self.limit:
            state.flagged_at, state.flagged_index = state.queries, index
        return state.flagged_at is not None


def rate_cap_accounts_needed(total_queries: int, limit: float, window_seconds: float, horizon_seconds: float) -> int:
    """Accounts an attacker pacing ``total_queries`` evenly over ``horizon_seconds`` needs under a rate cap.

    With N accounts each sends total/N queries at even spacing, so at most
    ceil(total / N * window / horizon) fall in one window; that must not exceed
    ``limit`` (hand check: 100,000 queries, limit 50 per hour, a 10-hour
    horizon: 10,000 per hour in all, 200 accounts).
    """
    if min(window_seconds, horizon_seconds) <= 0:
        raise ValueError("window_seconds and horizon_seconds must be positive")
    if limit < 1:
        raise ValueError(f"a rate cap below 1 query per window lets no one through (limit={limit})")
    per_window = total_queries * min(1.0, window_seconds / horizon_seconds)  # queries of all accounts per window
    return max(1, int(np.ceil(per_window / np.floor(limit))))


@dataclass
class PradaState:
    growing: np.ndarray  # [max_growing, P] ring buffer of the growing set's features
    distances: np.ndarray  # [max_distances] ring buffer of the last minimum distances (order does not matter)
    count: int = 0  # distances held
    oldest: int = 0  # position of the oldest distance once the buffer is full
    total: float = 0.0  # running sum of the held distances (for PRADA's mean - std rule)
    total_sq: float = 0.0  # running sum of their squares
    size: int = 0  # features stored in `growing` (at most max_growing)
    added: int = 0  # features ever added (the ring buffer's write position)
    queries: int = 0
    score: float = 0.0  # max over tests of 1 - W' (monotone, compared with the limit)
    flagged_at: int | None = None
    flagged_index: int | None = None


@dataclass
class PradaMonitor:
    """PRADA with a Shapiro–Francia test; flags when 1 - W' exceeds ``limit`` (None: never)."""

    limit: float | None
    min_queries: int = 20  # PRADA tests only once it has this many distances
    test_every: int = 5  # recompute W' every this many queries (it is the costly part)
    max_growing: int = 256  # bounded memory per account
    max_distances: int = 512
    accounts: dict[str, PradaState] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.min_queries < 3:
            raise ValueError(f"min_queries must be >= 3 (a normality test needs 3 values), got {self.min_queries}")

    def _add(self, state: PradaState, feature: np.ndarray) -> None:
        state.growing[state.added % self.max_growing] = feature
        state.added += 1
        state.size = min(state.size + 1, self.max_growing)

    def observe(self, account: str, query: Sequence[int], feature: np.ndarray, index: int | None = None) -> bool:
        state = self.accounts.get(account)
        if state is None:
            state = PradaState(growing=np.zeros((self.max_growing, len(feature)), dtype=np.float32),
                               distances=np.zeros(self.max_distances, dtype=np.float64))
            self.accounts[account] = state
        state.queries += 1
        if state.size == 0:
            self._add(state, feature)
            return state.flagged_at is not None
        gap = state.growing[:state.size] - feature  # [size, P]
        d_min = float(np.sqrt(np.add.reduce(gap * gap, axis=1).min()))  # = min of the rows' L2 norms
        n = state.count
        if n:
            mean = state.total / n
            std = max(state.total_sq / n - mean * mean, 0.0) ** 0.5
            if d_min > mean - std:
                self._add(state, feature)
        else:
            self._add(state, feature)
        if n == self.max_distances:  # the oldest distance leaves the window; the new one takes its place
            dropped = float(state.distances[state.oldest])
            state.total -= dropped
            state.total_sq -= dropped * dropped
            state.distances[state.oldest] = d_min
            state.oldest = (state.oldest + 1) % self.max_distances
        else:
            state.distances[n] = d_min
            state.count += 1
        state.total += d_min
        state.total_sq += d_min * d_min
        if state.count >= self.min_queries and state.queries % self.test_every == 0:
            state.score = max(state.score, 1.0 - shapiro_francia(state.distances[:state.count]))
            if self.limit is not None and state.flagged_at is None and state.score > self.limit:
                state.flagged_at, state.flagged_index = state.queries, index
        return state.flagged_at is not None
