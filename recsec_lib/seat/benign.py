"""Benign accounts: the traffic real clients of a sequential recommender send.

Each form turns one real user's chronological history (or a few users', for a
household) into one account's queries. The first four forms are the ones the
first version modelled; the others are what real clients also do and what
broke it (GitHub issue 17):

* ``growing``    — one query after each new interaction (growing prefixes);
* ``refresh``    — the same, each query repeated 1 + Poisson(refresh_mean) times;
* ``household``  — 2 or 3 users sharing one account, their queries interleaved;
* ``short``      — a new user: only the first 5..20 interactions;
* ``sparse5`` / ``sparse10`` — a client that asks only after every 5th / 10th
  interaction (and after the last); past 200 items the service refuses longer
  queries, so the client sends its newest 200;
* ``window50``   — a client that always sends only its newest 50 items;
* ``edits``      — the user removes 1..10 items from the history at random
  moments (one item per edit); later queries are of the edited history;
* ``rerank``     — after some interactions (probability ``rerank_prob``) the
  client also asks to re-rank 3..10 candidates: history + candidates;
* ``bulk-rerank`` — once, the client re-ranks 20..50 candidate sets (3..10
  candidates each) for one history, then goes on growing;
* ``household45`` — 4 or 5 users sharing one account;
* ``passes``     — "continue watching": after the full history the client
  goes back to an earlier point and sends the growing prefixes again.

How people use a recommender (GitHub issue 24), ``PEOPLE_FORMS``:

* ``requery``    — growing prefixes; after an interaction (probability
  ``requery_prob``) the client re-sends an old prefix (a page seen earlier),
  some time before the next interaction;
* ``devices``    — two loosely synced devices on one account: one queries after
  every interaction, the other every ``sync_range`` interactions gets the
  history synced and, after an interaction with probability
  ``second_device_prob``, sends its (stale) copy;
* ``binge``      — binge sessions of ``binge_range`` items about
  ``binge_gap_s`` apart (times 0.75..1.25 of it), Exponential(``binge_pause_s``)
  pauses between sessions;
* ``signup-bulk`` — on sign-up the user rates ``signup_range`` items about
  ``signup_gap_s`` apart (0.5..1.5 of it), a query after each, then goes on at
  the time model's pace.

Candidates are drawn by popularity among the given histories (the defender's
own data). Query times (for the rate cap): the processed ML-1M data keeps no
timestamps, so interaction times follow a time model
(``recsec_lib.seat.timing``): by default the first version's stated one — a
query after a new interaction comes an Exponential(``interaction_gap_s``) wait
after the previous query; a query of the same interaction (a refresh, a
re-ranking request) ``burst_gap_s`` later — or, with ``times=DonorTimes(...)``,
the real gaps between ML-100K users' ratings. ``timed_benign_traffic`` builds
accounts from real users' own timestamps (ML-100K).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from recsec_lib.attack.traffic import Traffic
from recsec_lib.seat.timing import ExponentialTimes, TimedHistory, timed_queries

BASE_FORMS = ("growing", "refresh", "household", "short")
CLIENT_FORMS = ("sparse5", "sparse10", "window50", "edits", "rerank", "bulk-rerank", "household45", "passes")
ALL_FORMS = BASE_FORMS + CLIENT_FORMS  # the SEAT stage's forms
PEOPLE_FORMS = ("requery", "devices", "binge", "signup-bulk")
EVERY_FORM = ALL_FORMS + PEOPLE_FORMS


@dataclass(frozen=True)
class BenignShape:
    """Parameters of the benign forms (defaults as in the module docstring)."""

    refresh_mean: float = 1.0
    short_range: tuple[int, int] = (5, 20)
    household_sizes: tuple[int, ...] = (2, 3)
    big_household_sizes: tuple[int, ...] = (4, 5)
    client_window: int = 50
    edit_range: tuple[int, int] = (1, 10)
    rerank_prob: float = 0.2
    candidate_range: tuple[int, int] = (3, 10)
    bulk_sets: tuple[int, int] = (20, 50)
    interaction_gap_s: float = 1800.0  # mean wait between two interactions' queries
    burst_gap_s: float = 2.0  # wait between queries of one interaction
    requery_prob: float = 0.1  # requery: chance of re-sending an old prefix after an interaction
    sync_range: tuple[int, int] = (5, 30)  # devices: interactions between two syncs of the second device
    second_device_prob: float = 0.5  # devices: chance the second device queries after an interaction
    binge_range: tuple[int, int] = (50, 120)  # binge: items per session
    binge_gap_s: float = 40.0  # binge: seconds between two items of a session
    binge_pause_s: float = 86_400.0  # binge: mean pause between sessions
    signup_range: tuple[int, int] = (20, 100)  # signup-bulk: items rated on sign-up
    signup_gap_s: float = 5.0  # signup-bulk: seconds between two of them

    def __post_init__(self) -> None:
        for name in ("rerank_prob", "requery_prob", "second_device_prob"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"BenignShape.{name} must be in [0, 1], got {getattr(self, name)}")
        for name in ("short_range", "edit_range", "candidate_range", "bulk_sets", "sync_range", "binge_range",
                     "signup_range"):
            low, high = getattr(self, name)
            if not 1 <= low <= high:
                raise ValueError(f"BenignShape.{name} must be (low, high) with 1 <= low <= high, got {(low, high)}")


class _Builder:
    """Collects accounts: each a list of sources and its queries (local source, end, same-interaction flag)."""

    def __init__(self, max_len: int, shape: BenignShape, rng: np.random.Generator, times=None) -> None:
        self.max_len, self.shape, self.rng, self.times = max_len, shape, rng, times
        self.names, self.kinds, self.sources, self.widths = [], [], [], []
        self.account, self.source, self.end, self.time = [], [], [], []

    def add(self, name: str, kind: str, sources: Sequence[np.ndarray], queries: Sequence[tuple[int, int, bool]],
            width: int | None = None) -> None:
        """One account; a query flagged True belongs to the same interaction as the one before it."""
        local, ends, burst = (np.array(column) for column in zip(*queries))
        if self.times is None:  # the first version's model (kept draw for draw)
            gaps = np.where(burst, self.shape.burst_gap_s,
                            self.rng.exponential(self.shape.interaction_gap_s, size=len(queries)))
            gaps[0] = 0.0
            moments = np.cumsum(gaps)
        else:
            new = ~burst
            new[0] = True
            interaction = np.cumsum(new) - 1  # [Q] the interaction each query belongs to
            at = self.times.interaction_times(int(new.sum()), self.rng)[interaction]
            starts = np.flatnonzero(new)
            offset = np.arange(len(queries)) - starts[interaction]  # queries since its interaction
            following = self.times_next(at, interaction, len(starts))
            moments = np.minimum(at + offset * self.shape.burst_gap_s, following)  # before the next interaction
        self.add_timed(name, kind, sources, list(zip(local.tolist(), ends.tolist(), moments.tolist())), width)

    @staticmethod
    def times_next(at: np.ndarray, interaction: np.ndarray, count: int) -> np.ndarray:
        """[Q] the time of the interaction after each query's own (infinity after the last)."""
        starts = np.full(count + 1, np.inf)
        starts[interaction] = at  # each interaction's time (every query of it has the same)
        return starts[interaction + 1]

    def add_timed(self, name: str, kind: str, sources: Sequence[np.ndarray],
                  queries: Sequence[tuple[int, int, float]], width: int | None = None) -> None:
        """One account whose queries (local source, end, time) carry their own times (sorted here, stably)."""
        base = len(self.sources)
        self.sources += [np.asarray(s, dtype=np.int64) for s in sources]
        self.widths += [width or self.max_len] * len(sources)
        local, ends, moments = (np.array(column) for column in zip(*queries))
        order = np.argsort(moments, kind="stable")
        local, ends, moments = local[order], ends[order], moments[order] - moments[order][0]
        self.account.append(np.full(len(queries), len(self.names), dtype=np.int64))
        self.source.append(local.astype(np.int64) + base)
        self.end.append(ends.astype(np.int64))
        self.time.append(moments.astype(np.float64))
        self.names.append(name)
        self.kinds.append(kind)

    def traffic(self) -> Traffic:
        if not self.names:
            raise ValueError("no benign account could be built (too few users for the requested forms)")
        return Traffic(tuple(self.names), tuple(self.kinds), tuple(self.sources), np.concatenate(self.account),
                       np.concatenate(self.source), np.concatenate(self.end), self.max_len,
                       np.array(self.widths, dtype=np.int64), np.concatenate(self.time))


def _growing(n: int) -> list[tuple[int, int, bool]]:
    return [(0, t, False) for t in range(1, n + 1)]


def _sparse(n: int, every: int) -> list[tuple[int, int, bool]]:
    ends = list(range(every, n + 1, every))
    if not ends or ends[-1] != n:
        ends.append(n)
    return [(0, t, False) for t in ends]


def _edits(history: np.ndarray, count: int, rng: np.random.Generator) -> tuple[list[np.ndarray], list]:
    """Growing prefixes; at ``count`` random interactions one earlier item is removed for good."""
    n = len(history)
    moments = set(rng.choice(np.arange(2, n + 1), size=min(count, n - 1), replace=False).tolist())
    removed: set[int] = set()  # positions (in ``history``) removed so far
    sources, queries = [history], []
    for t in range(1, n + 1):
        if t in moments:
            alive = [p for p in range(t) if p not in removed]
            removed.add(int(rng.choice(alive)))
            sources.append(np.delete(history, sorted(removed)))
        # the query is the first t items of the history minus the removed ones
        queries.append((len(sources) - 1, t - sum(p < t for p in removed), False))
    return sources, queries


def _rerank(history: np.ndarray, points: Sequence[int], sets_per_point: Sequence[int], popular: np.ndarray,
            candidate_range: tuple[int, int], rng: np.random.Generator) -> tuple[list[np.ndarray], list]:
    """Growing prefixes; after interaction t in ``points`` also history[:t] + candidates, several sets."""
    sources, queries = [history], []
    extra = dict(zip(points, sets_per_point))
    for t in range(1, len(history) + 1):
        queries.append((0, t, False))
        for _ in range(extra.get(t, 0)):
            size = int(rng.integers(candidate_range[0], candidate_range[1] + 1))
            candidates = rng.choice(popular, size=size, replace=False)
            sources.append(np.concatenate([history[:t], candidates]))
            queries.append((len(sources) - 1, t + size, True))
    return sources, queries


def _interleaved(histories: Sequence[np.ndarray], rng: np.random.Generator) -> list[tuple[int, int, bool]]:
    """Members' growing prefixes, interleaved at random (which member acts at each step)."""
    owner = rng.permutation(np.concatenate([np.full(len(h), m) for m, h in enumerate(histories)]))
    seen = np.zeros(len(histories), dtype=np.int64)
    queries = []
    for m in owner.tolist():
        seen[m] += 1
        queries.append((m, int(seen[m]), False))
    return queries


def _between(at: np.ndarray, t: int, rng: np.random.Generator, after_last: float) -> float:
    """A moment after interaction t (1-based) and before the next one (``after_last`` after the last)."""
    if t < len(at):
        return float(at[t - 1] + rng.random() * (at[t] - at[t - 1]))
    return float(at[t - 1] + after_last)


def _requery(at: np.ndarray, prob: float, burst_gap_s: float, rng: np.random.Generator) -> list:
    """Growing prefixes at the interaction times; now and then an old prefix re-sent before the next one."""
    queries = []
    for t in range(1, len(at) + 1):
        queries.append((0, t, float(at[t - 1])))
        if t >= 2 and rng.random() < prob:
            queries.append((0, int(rng.integers(1, t)), _between(at, t, rng, burst_gap_s)))
    return queries


def _devices(at: np.ndarray, sync_range: tuple[int, int], prob: float, burst_gap_s: float,
             rng: np.random.Generator) -> list:
    """Device one: a query after every interaction. Device two: its copy of the history is synced every
    sync_range interactions; after an interaction (probability ``prob``) it sends that copy."""
    queries, synced = [], 0
    next_sync = int(rng.integers(sync_range[0], sync_range[1] + 1))
    for t in range(1, len(at) + 1):
        queries.append((0, t, float(at[t - 1])))
        if t >= next_sync:
            synced, next_sync = t, t + int(rng.integers(sync_range[0], sync_range[1] + 1))
        if synced and rng.random() < prob:
            queries.append((0, synced, _between(at, t, rng, burst_gap_s)))
    return queries


def _binge_times(n: int, shape: BenignShape, rng: np.random.Generator) -> np.ndarray:
    """[n] interaction times: sessions of binge_range items binge_gap_s apart, pauses between them."""
    gaps = shape.binge_gap_s * rng.uniform(0.75, 1.25, size=n)
    start, low, high = 0, shape.binge_range[0], shape.binge_range[1]
    while start < n:
        gaps[start] = rng.exponential(shape.binge_pause_s)  # the first item of a session
        start += int(rng.integers(low, high + 1))
    gaps[0] = 0.0
    return np.cumsum(gaps)


def _signup_times(n: int, shape: BenignShape, times, rng: np.random.Generator) -> np.ndarray:
    """[n] interaction times: signup_range items signup_gap_s apart, then the time model's pace."""
    bulk = min(n, int(rng.integers(shape.signup_range[0], shape.signup_range[1] + 1)))
    first = np.cumsum(np.r_[0.0, shape.signup_gap_s * rng.uniform(0.5, 1.5, size=bulk - 1)])
    if bulk == n:
        return first
    rest = times.interaction_times(n - bulk + 1, rng)  # starts at 0 = the last sign-up rating
    return np.r_[first, first[-1] + rest[1:]]


def benign_traffic(histories: Sequence[np.ndarray], user_ids: Sequence[int], forms: Sequence[str], max_len: int,
                   seed: int, shape: BenignShape = BenignShape(),
                   max_accounts_per_form: int | None = None, times=None) -> Traffic:
    """Benign accounts built from real users' chronological histories (``histories[i]`` is user
    ``user_ids[i]``'s). Each user gives one account per form (households take several users).
    ``max_accounts_per_form`` keeps only the first accounts of each form (users in the given order).
    ``times``: the time model of the interactions (``timing.ExponentialTimes`` / ``DonorTimes``); None keeps
    the first version's draws (the people forms then use ``ExponentialTimes(shape.interaction_gap_s)``)."""
    unknown = set(forms) - set(EVERY_FORM)
    if unknown:
        raise ValueError(f"unknown benign forms {sorted(unknown)}; expected some of {EVERY_FORM}")
    if len(histories) != len(user_ids):
        raise ValueError("histories and user_ids must have the same length")
    rng = np.random.default_rng(seed)
    histories = [np.asarray(h, dtype=np.int64) for h in histories]
    counts = np.bincount(np.concatenate(histories)) if histories else np.zeros(1)
    popular = np.argsort(-counts[1:])[:max(200, shape.candidate_range[1])] + 1  # candidate pool: popular items
    build = _Builder(max_len, shape, rng, times)
    model = times if times is not None else ExponentialTimes(shape.interaction_gap_s)
    for form in forms:
        limit = max_accounts_per_form if max_accounts_per_form is not None else len(histories)
        if form in ("household", "household45"):
            sizes = shape.household_sizes if form == "household" else shape.big_household_sizes
            shuffled, pos, made = rng.permutation(len(histories)), 0, 0
            while pos + min(sizes) <= len(shuffled) and made < limit:
                size = int(rng.choice(sizes))
                members = shuffled[pos:pos + size].tolist()
                pos += size
                build.add(f"benign/{form}/{'+'.join(str(user_ids[m]) for m in members)}", form,
                          [histories[m] for m in members], _interleaved([histories[m] for m in members], rng))
                made += 1
            continue
        for i, history in enumerate(histories[:limit]):
            n, name = len(history), f"benign/{form}/{user_ids[i]}"
            if form == "growing":
                build.add(name, form, [history], _growing(n))
            elif form == "refresh":
                queries = [(0, t, r > 0) for t in range(1, n + 1) for r in range(1 + rng.poisson(shape.refresh_mean))]
                build.add(name, form, [history], queries)
            elif form == "short":
                length = min(n, int(rng.integers(shape.short_range[0], shape.short_range[1] + 1)))
                build.add(name, form, [history], _growing(length))
            elif form in ("sparse5", "sparse10"):
                build.add(name, form, [history], _sparse(n, 5 if form == "sparse5" else 10))
            elif form == "window50":
                build.add(name, form, [history], _growing(n), width=shape.client_window)
            elif form == "edits":
                count = int(rng.integers(shape.edit_range[0], shape.edit_range[1] + 1))
                build.add(name, form, *_edits(history, count, rng))
            elif form == "rerank":
                points = np.flatnonzero(rng.random(n) < shape.rerank_prob) + 1
                build.add(name, form, *_rerank(history, points.tolist(), [1] * len(points), popular,
                                               shape.candidate_range, rng))
            elif form == "requery":
                build.add_timed(name, form, [history], _requery(model.interaction_times(n, rng), shape.requery_prob,
                                                                shape.burst_gap_s, rng))
            elif form == "devices":
                build.add_timed(name, form, [history], _devices(model.interaction_times(n, rng), shape.sync_range,
                                                                shape.second_device_prob, shape.burst_gap_s, rng))
            elif form in ("binge", "signup-bulk"):
                at = _binge_times(n, shape, rng) if form == "binge" else _signup_times(n, shape, model, rng)
                build.add_timed(name, form, [history], [(0, t, float(at[t - 1])) for t in range(1, n + 1)])
            elif form == "bulk-rerank":
                point = int(rng.integers(1, n + 1))
                sets = int(rng.integers(shape.bulk_sets[0], shape.bulk_sets[1] + 1))
                build.add(name, form, *_rerank(history, [point], [sets], popular, shape.candidate_range, rng))
            else:  # passes
                start = int(rng.integers(1, n + 1))
                build.add(name, form, [history], _growing(n) + [(0, t, False) for t in range(start, n + 1)])
    return build.traffic()


def timed_benign_traffic(histories: Sequence[TimedHistory], max_len: int, burst: str = "each",
                         kind: str = "ml100k") -> Traffic:
    """One account per real user, its queries at its own rating times (``timing.timed_queries``: one query
    after each rating, or one per ``submission`` second), growing prefixes of its (mapped) history."""
    if not histories:
        raise ValueError("timed_benign_traffic needs at least one history")
    build = _Builder(max_len, BenignShape(), np.random.default_rng(0))
    for h in histories:
        if len(h.items) == 0:
            continue
        ends, moments = timed_queries(h.times, burst)
        build.add_timed(f"benign/{kind}/{h.user}", kind, [h.items],
                        [(0, int(e), float(t)) for e, t in zip(ends.tolist(), moments.tolist())])
    return build.traffic()
