"""The attacker chooses: accounts needed per detector as a minimum over the attacker's own parameters.

A detector is judged by the attacker who knows it, and that attacker picks
every free parameter: what its generator does (chains or streams, mixing
distribution, ...), how it deals its queries over accounts (the *split*) and
how slowly it sends them (the *pacing window*). This module searches that
space **on a grid** (every combination is tried; nothing is sampled) and
returns, per detector, the fewest accounts any combination needs with no
account flagged, and the combination that reached it.

It depends on the attack side only through a small interface, so it runs with
any generator: ``collect(parameters) -> AttackSample`` gives one attacker's
traffic for one setting of its parameters (queries in sending order, one
source per stream or walk), with the features the detectors read.

Splits (``SPLITS``) of one attacker's log over N accounts:

* ``contiguous``  — N consecutive, equal chunks of the sending order (a stream
  of a single query — a one-item probe — may go to any account: those are
  dealt round-robin, the rest is chunked);
* ``by-stream``   — whole streams (sources) per account, dealt round-robin
  (stream s to account s mod N; at most one account per stream), so the
  attacker's one-item probes, each its own stream, spread over the accounts;
* ``round-robin`` — query j goes to account j mod N.

Pacing: each account sends its queries evenly over the window (``pace``):
the k-th of its n queries at k * H / n seconds, all accounts in parallel. The
window is the attacker's choice among ``horizons_h`` (24 hours to 30 days);
only statistics that need a clock (the rate cap) depend on it.

For each (parameters, split, window, detector) the accounts needed are the
smallest N of ``evaluation.ACCOUNT_GRID`` plus the split's largest possible N
(then bisected below) at which no
account is flagged (``evaluation.smallest_clean_split``; exact when more
accounts never mean more flags, which holds for the per-account statistics up
to chunk boundaries; the handoff statistic grows with N for a contiguous
split, so such a split is simply never clean). A grid point where every N is
flagged counts as beyond the grid (None).

Follow values: when the sample carries the per-source ``follow_flags`` (was
item t in the service's answer to the items before it), each split gets its
own per-query follow values (a growth step is judged against the *account's*
previous query, ``follow.query_follow``); otherwise the sample's per-query
values are used for every split.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd

from recsec_lib.seat.calibration import Calibration
from recsec_lib.seat.detectors import get_detector
from recsec_lib.seat.evaluation import ACCOUNT_GRID, smallest_clean_split
from recsec_lib.seat.replay import TrafficFeatures
from recsec_lib.seat.statistics import MonitorContext, source_of
from recsec_lib.attack.traffic import Traffic

SPLITS = ("contiguous", "by-stream", "round-robin")
HORIZONS_H = (24.0, 72.0, 168.0, 720.0)  # one day to thirty days


@dataclass(frozen=True, eq=False)
class AttackSample:
    """One attacker's traffic at one setting of its parameters, as the detectors see it."""

    traffic: Traffic  # one account, sending order; each stream / walk is one source
    features: TrafficFeatures | None = None  # SEAT encodings, PRADA vectors, follow (None: statistics needing none)
    follow_flags: Sequence[np.ndarray] | None = None  # per source [len]: item t in the answer after items < t
    fidelity: float | None = None  # e.g. the surrogate's Agr@10 at this setting (None: not measured)


@dataclass(frozen=True)
class AttackSpace:
    """The grid the attacker chooses from."""

    parameters: Mapping[str, tuple] = field(default_factory=dict)  # generator parameter -> values
    splits: tuple[str, ...] = SPLITS
    horizons_h: tuple[float, ...] = HORIZONS_H

    def __post_init__(self) -> None:
        unknown = sorted(set(self.splits) - set(SPLITS))
        if unknown or not self.splits:
            raise ValueError(f"unknown split(s) {unknown}; known: {SPLITS}")
        if not self.horizons_h or min(self.horizons_h) <= 0:
            raise ValueError(f"horizons_h must be positive hours, got {self.horizons_h}")
        for name, values in self.parameters.items():
            if not isinstance(values, tuple) or not values:
                raise ValueError(f"parameter {name!r}: the values to search must be a non-empty tuple, got {values!r}")

    def settings(self) -> list[dict]:
        """Every combination of the generator parameters (one empty dict when there are none)."""
        names = list(self.parameters)
        return [dict(zip(names, values)) for values in itertools.product(*(self.parameters[n] for n in names))]

    @property
    def size(self) -> int:
        return len(self.settings()) * len(self.splits) * len(self.horizons_h)


def split_traffic(traffic: Traffic, split: str, n: int, prefix: str = "attack") -> Traffic:
    """The attacker's log dealt over (at most) n accounts (see the module docstring)."""
    if n < 1:
        raise ValueError(f"the number of accounts must be >= 1, got {n}")
    if split == "contiguous":
        single = np.bincount(traffic.source, minlength=len(traffic.sources))[traffic.source] == 1  # [Q]
        if not single.any() or single.all():
            return traffic.split_contiguous(n, prefix)
        count = min(n, traffic.num_queries)
        account = np.zeros(traffic.num_queries, dtype=np.int64)
        rest = np.flatnonzero(~single)
        account[rest] = (np.arange(len(rest)) * count) // len(rest)
        account[single] = np.arange(int(single.sum())) % count
        return traffic.with_accounts(account, [f"{prefix}/{i}" for i in range(count)], [prefix] * count)
    if split == "by-stream":
        count = min(n, len(traffic.sources))
        return traffic.with_accounts(traffic.source % count, [f"{prefix}/{i}" for i in range(count)],
                                     [prefix] * count)
    if split == "round-robin":
        count = min(n, traffic.num_queries)
        return traffic.with_accounts(np.arange(traffic.num_queries) % count, [f"{prefix}/{i}" for i in range(count)],
                                     [prefix] * count)
    raise ValueError(f"unknown split {split!r}; known: {SPLITS}")


def max_accounts(traffic: Traffic, split: str) -> int:
    """The most accounts a split can use (one query, or one stream, each)."""
    return len(traffic.sources) if split == "by-stream" else traffic.num_queries


def pace(traffic: Traffic, horizon_s: float) -> Traffic:
    """The same log with query times: each account's n queries evenly over ``horizon_s`` (k * H / n)."""
    if horizon_s <= 0:
        raise ValueError(f"horizon_s must be positive, got {horizon_s}")
    counts = np.bincount(traffic.account, minlength=len(traffic.names))  # [A]
    order = np.argsort(traffic.account, kind="stable")
    rank = np.empty(traffic.num_queries, dtype=np.int64)
    starts = np.r_[0, np.cumsum(counts)[:-1]]
    rank[order] = np.arange(traffic.num_queries) - np.repeat(starts, counts)  # k: the query's place in its account
    return replace(traffic, time=rank * (horizon_s / np.maximum(counts[traffic.account], 1)))


def account_slice(traffic: Traffic, features: TrafficFeatures | None, account: int
                  ) -> tuple[Traffic, TrafficFeatures | None]:
    """One account's queries alone (in log order), with their features."""
    mask = traffic.account == account
    part = replace(traffic, names=(traffic.names[account],), kinds=(traffic.kinds[account],),
                   account=np.zeros(int(mask.sum()), dtype=np.int64), source=traffic.source[mask],
                   end=traffic.end[mask], time=None if traffic.time is None else traffic.time[mask])
    if features is None:
        return part, None
    return part, replace(features, rows=features.rows[mask],
                         follow=None if features.follow is None else features.follow[mask])


class SplitCache:
    """One sample's per-account statistics per (split, N) — and per pacing window for clock statistics.

    Statistics that need a replay and depend on an account's own queries only
    (SEAT, PRADA) are computed one account at a time, on demand: deciding that
    a split is flagged stops at the first flagged account (``any_flagged``),
    so only the clean splits cost a whole replay.
    """

    def __init__(self, sample: AttackSample, context: MonitorContext) -> None:
        self.sample, self.context = sample, context
        self.cache: dict[tuple, dict[str, np.ndarray]] = {}  # whole-split values of cheap / service-wide sources
        self.lazy: dict[tuple, dict[int, dict[str, float]]] = {}  # (split, n, source) -> account -> values
        self.splits: dict[tuple[str, int], tuple[Traffic, TrafficFeatures | None]] = {}
        self.replays = 0  # accounts (or whole splits) replayed

    def split(self, split: str, n: int) -> tuple[Traffic, TrafficFeatures | None]:
        key = (split, n)
        if key not in self.splits:
            traffic = split_traffic(self.sample.traffic, split, n)
            features, flags = self.sample.features, self.sample.follow_flags
            if features is not None and flags is not None:
                from recsec_lib.seat.follow import query_follow

                features = replace(features, follow=query_follow(traffic, list(flags)))
            self.splits = {key: (traffic, features)}  # keep one split in memory
        return self.splits[key]

    def _whole(self, split: str, n: int, statistic: str, horizon_s: float) -> np.ndarray:
        source = source_of(statistic)
        key = (split, n, source.name, horizon_s if source.needs_time else None)
        if key not in self.cache:
            traffic, features = self.split(split, n)
            timed = pace(traffic, horizon_s) if source.needs_time else traffic
            self.cache[key] = source.values(timed, features, self.context)
            self.replays += 1
        return self.cache[key][statistic]

    def _one(self, split: str, n: int, statistic: str, account: int) -> float:
        source = source_of(statistic)
        done = self.lazy.setdefault((split, n, source.name), {})
        if account not in done:
            part, features = account_slice(*self.split(split, n), account)
            done[account] = {k: float(v[0]) for k, v in source.values(part, features, self.context).items()}
            self.replays += 1
        return done[account][statistic]

    @staticmethod
    def _is_lazy(statistic: str) -> bool:
        source = source_of(statistic)
        return source.per_account and not source.vectorised and not source.needs_time

    def any_flagged(self, detector, limits, split: str, n: int, horizon_s: float) -> bool:
        """True when some account of the split passes one of the detector's limits."""
        whole = {s: self._whole(split, n, s, horizon_s) for s in detector.statistics if not self._is_lazy(s)}
        if whole and detector.flagged(limits, whole, skip=tuple(s for s in detector.statistics
                                                                   if self._is_lazy(s))).any():
            return True
        lazy = [s for s in detector.statistics if self._is_lazy(s) and limits.get(s) is not None]
        if not lazy:
            return False
        accounts = len(self.split(split, n)[0].names)
        by_source: dict[str, list[str]] = {}
        for statistic in lazy:
            by_source.setdefault(source_of(statistic).name, []).append(statistic)
        for a in range(accounts):
            for name, statistics in by_source.items():
                done = self.lazy.setdefault((split, n, name), {})
                if a not in done:  # replay the account with the limits on, stopping at its first flag
                    part, features = account_slice(*self.split(split, n), a)
                    values = source_of(statistics[0]).probe({s: limits[s] for s in statistics}, part, features,
                                                            self.context)
                    self.replays += 1
                    if values is None:
                        return True
                    done[a] = {k: float(v[0]) for k, v in values.items()}
                if any(done[a][s] > limits[s] for s in statistics):
                    return True
        return False

    def values(self, split: str, n: int, statistics: Sequence[str], horizon_s: float) -> dict[str, np.ndarray]:
        """{statistic: [A]} for every account of the split (every account replayed)."""
        out = {}
        for statistic in statistics:
            if self._is_lazy(statistic):
                accounts = len(self.split(split, n)[0].names)
                out[statistic] = np.array([self._one(split, n, statistic, a) for a in range(accounts)])
            else:
                out[statistic] = self._whole(split, n, statistic, horizon_s)
        return out


def accounts_needed_for(sample: AttackSample, calibration: Calibration, split: str, horizon_s: float,
                        context: MonitorContext, grid: Sequence[int] = ACCOUNT_GRID,
                        cache: SplitCache | None = None) -> int | None:
    """Fewest accounts (grid, then bisection) at which ``calibration`` flags none of the split, paced log."""
    detector = get_detector(calibration.detector)
    cache = cache or SplitCache(sample, context)
    limits = dict(calibration.limits)
    most = max_accounts(sample.traffic, split)
    grid = sorted(set(grid) | ({most} if most <= max(grid) else set()))  # the split's largest N is tried too
    return smallest_clean_split(lambda n: int(cache.any_flagged(detector, limits, split, n, horizon_s)), most, grid)


@dataclass(frozen=True, eq=False)
class SearchResult:
    """Every grid point's accounts needed, and per detector the cheapest point."""

    table: pd.DataFrame  # attacker, <parameters>, split, horizon_h, detector, accounts_needed, queries, sources
    # (streams / walks the sample had), fidelity, setting (the parameters as one label)
    best: pd.DataFrame  # one row per detector: the minimum over the grid and the point that reached it

    def minimum(self, detector: str) -> float | None:
        row = self.best[self.best.detector == detector]
        if row.empty:
            raise ValueError(f"no result for detector {detector!r}; searched: {sorted(self.best.detector)}")
        value = row["accounts_needed"].iloc[0]
        return None if value is None or (isinstance(value, float) and math.isnan(value)) else float(value)


def cheapest(table: pd.DataFrame) -> pd.DataFrame:
    """Per detector, the grid point with the fewest accounts needed (beyond the grid counts as infinite; a tie
    goes to the point with the higher fidelity, then to the first searched)."""
    rows = []
    for detector, part in table.groupby("detector", sort=False):
        needed = part["accounts_needed"].astype(float).fillna(np.inf)
        fidelity = part["fidelity"].astype(float).fillna(-np.inf) if "fidelity" in part else np.zeros(len(part))
        order = np.lexsort((np.arange(len(part)), -np.asarray(fidelity), needed.to_numpy()))
        rows.append(part.iloc[order[0]])
    return pd.DataFrame(rows).reset_index(drop=True)


def search_attacker(collect: Callable[[dict], AttackSample], space: AttackSpace,
                    calibrations: Mapping[str, Calibration], context: MonitorContext,
                    grid: Sequence[int] = ACCOUNT_GRID, label: str = "attacker",
                    progress: Callable[[str], None] | None = None) -> SearchResult:
    """Search one attacker's grid against every calibrated detector (see the module docstring).

    ``collect`` is called once per setting of the generator parameters; the
    splits and windows reuse its sample, and a setting whose ``collect`` returns
    the very sample of the setting before (a parameter the generator ignores,
    such as ``mix_weights`` at ``random_mix`` 0) reuses that setting's answers. Detectors whose statistics need no
    clock get one answer per split, reported for every window.
    """
    rows = []
    previous: tuple[AttackSample, list[dict]] | None = None  # the last sample searched and its rows
    for setting in space.settings():
        sample = collect(dict(setting))
        if previous is not None and sample is previous[0]:  # a setting the generator ignores: the same traffic
            label_of = ", ".join(f"{k}={v}" for k, v in setting.items())
            rows += [{**row, **setting, "setting": label_of} for row in previous[1]]
            continue
        cache = SplitCache(sample, context)
        first = len(rows)
        for split in space.splits:
            for name, calibration in calibrations.items():
                detector = get_detector(name)
                timed = bool(detector.clock_statistics())
                answer = None
                for hours in space.horizons_h:
                    if timed or answer is None:
                        answer = accounts_needed_for(sample, calibration, split, hours * 3600.0, context, grid,
                                                     cache)
                    rows.append({"attacker": label, **setting, "split": split, "horizon_h": hours, "detector": name,
                                 "accounts_needed": answer, "queries": sample.traffic.num_queries,
                                 "sources": len(sample.traffic.sources), "fidelity": sample.fidelity,
                                 "setting": ", ".join(f"{k}={v}" for k, v in setting.items())})
        previous = (sample, rows[first:])
        if progress is not None:
            progress(f"{label} {setting}: {cache.replays} replays")
    table = pd.DataFrame(rows)
    return SearchResult(table, cheapest(table))


def generator_space(name: str, splits: tuple[str, ...] = SPLITS, horizons_h: tuple[float, ...] = HORIZONS_H,
                    **narrowed: tuple) -> AttackSpace:
    """The registered generator ``name``'s own ``choices`` as the grid; ``narrowed`` replaces a parameter's
    values (a reduced grid: every value must be one the generator offers)."""
    from recsec_lib.attack.generators import GENERATORS

    choices = dict(GENERATORS.get(name).choices)
    for parameter, values in narrowed.items():
        if parameter not in choices:
            raise ValueError(f"generator {name!r} offers no choice of {parameter!r}; its choices: {sorted(choices)}")
        outside = [v for v in values if v not in choices[parameter]]
        if outside:
            raise ValueError(f"generator {name!r}: {parameter}={outside} is not among its choices "
                             f"{choices[parameter]}")
        choices[parameter] = tuple(values)
    return AttackSpace(choices, splits, horizons_h)


class GeneratorCollector:
    """``collect(parameters)`` for the search from a registered query generator (``attack.generators``).

    Each setting builds the generator with those parameters, spends ``budget_queries`` against ``box`` and
    turns the traffic into an ``AttackSample`` with ``sample`` (features, follow flags). Settings that a
    generator ignores (its mixing distribution when it mixes nothing) collect once and are reused. The
    generator's ``Collected`` (its surrogate's training data) of each setting is kept in ``collected``, so
    the fidelity of the settings that won can be measured afterwards.
    """

    def __init__(self, name: str, box, budget_queries: int, seq_len: int, seed: int,
                 sample: Callable[[Traffic], AttackSample], keep: bool = True) -> None:
        self.name, self.box, self.budget, self.seq_len, self.seed = name, box, budget_queries, seq_len, seed
        self.sample, self.keep = sample, keep
        self.collected: dict[tuple, object] = {}
        self._samples: dict[tuple, AttackSample] = {}

    def key(self, parameters: Mapping[str, object]) -> tuple:
        """The setting with parameters that cannot matter dropped (mix_weights when random_mix is 0)."""
        values = dict(parameters)
        if values.get("random_mix", 1) == 0:
            values.pop("mix_weights", None)
        return tuple(sorted(values.items()))

    def __call__(self, parameters: Mapping[str, object]) -> AttackSample:
        from recsec_lib.attack.generators import GENERATORS

        key = self.key(parameters)
        if key not in self._samples:
            collected = GENERATORS.build(self.name, **dict(parameters)).collect(self.box, self.budget, self.seq_len,
                                                                               self.seed, account=self.name)
            if self.keep:
                self.collected[key] = collected
            self._samples = {key: self.sample(collected.traffic)}  # one sample in memory at a time
        return self._samples[key]


def combine(results: Sequence[SearchResult]) -> SearchResult:
    """Several attackers' searches as one (the headline takes the minimum over all of them)."""
    table = pd.concat([r.table for r in results], ignore_index=True)
    return SearchResult(table, cheapest(table))


def featured_sample(traffic: Traffic, encoder, num_items: int, target=None, k: int = 100, filter_seen: bool = True,
                    device="cpu", seed: int = 0) -> AttackSample:
    """An ``AttackSample`` of ``traffic`` with SEAT / PRADA features and, given the ``target`` behind the box,
    the per-source follow flags (so every split gets its own follow values); ``target`` None leaves the follow
    statistic silent."""
    from recsec_lib.seat.follow import follow_flags, query_follow
    from recsec_lib.seat.replay import featurize

    if target is None:
        return AttackSample(traffic, featurize(traffic, encoder, num_items, device=device, seed=seed))
    flags = follow_flags(target, list(traffic.sources), [traffic.width(s) for s in range(len(traffic.sources))],
                         k, filter_seen, device=device)
    features = featurize(traffic, encoder, num_items, device=device, seed=seed,
                         follow=query_follow(traffic, flags))
    return AttackSample(traffic, features, flags)
