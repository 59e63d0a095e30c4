"""Per-account statistics: what every detector compares with its limits, and where each comes from.

A *statistic* is one number per account, monotone in the account's queries
(it never falls as the account sends more), so an account is flagged exactly
when its final value passes the limit: one replay with no limits serves every
detector that reads it. A *source* is the online monitor that produces a few
statistics together; it is registered once here (``SOURCES``) and detectors
(``recsec_lib.seat.detectors``) name only statistics:

===========  ==========================  ==================================================
source       statistics                  monitor
===========  ==========================  ==================================================
``seat``     pairs, sessions, follow     ``monitor.SeatMonitor`` (SEAT encodings, follow)
``volume``   volume                      ``baselines.VolumeCapMonitor`` (lifetime queries)
``rate``     rate                        ``baselines.RateCapMonitor`` (needs query times)
``prada``    prada                       ``baselines.PradaMonitor`` (bag-of-items features; slow)
``handoff``  handoffs                    ``handoff.HandoffMonitor`` (cross-account)
===========  ==========================  ==================================================

Adding a statistic = one ``StatisticSource`` subclass decorated with
``register_source`` (its monitor, how to replay it, how to read its outcomes).
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import ClassVar

import numpy as np

from recsec_lib.seat.baselines import PradaMonitor, RateCapMonitor, VolumeCapMonitor
from recsec_lib.seat.calibration import PradaOptions, SeatOptions, cross_user_threshold
from recsec_lib.seat.handoff import HandoffMonitor
from recsec_lib.seat.monitor import SeatMonitor
from recsec_lib.seat.replay import AccountOutcome, TrafficFeatures, outcomes_of, replay
from recsec_lib.attack.traffic import Traffic


@dataclass(frozen=True)
class MonitorContext:
    """What building a monitor needs besides its limits."""

    threshold: float | None = None  # SEAT's distance threshold (the seat source needs it)
    dim: int = 0  # SEAT encoding size
    num_items: int = 4096
    seat: SeatOptions = SeatOptions()
    prada: PradaOptions = PradaOptions()


def _floor(limit: float | None) -> int | None:
    return None if limit is None else int(math.floor(limit))


class StatisticSource(ABC):
    """An online monitor and the per-account statistics it yields (see the module docstring)."""

    name: ClassVar[str]
    statistics: ClassVar[tuple[str, ...]]
    needs_time: ClassVar[bool] = False  # reads traffic.time (cannot run on a log without a clock)
    slow: ClassVar[bool] = False  # its replay is costly (the study may run it on fewer queries)
    per_account: ClassVar[bool] = True  # an account's values depend on its own queries only
    vectorised: ClassVar[bool] = False  # ``values`` needs no replay (cheap for any traffic)
    flag_label: ClassVar[str | None] = None  # AccountOutcome.flagged_by when it flags (None: the monitor's own)

    @abstractmethod
    def monitor(self, limits: Mapping[str, float | None], context: MonitorContext):
        """A fresh online monitor with these limits (a statistic missing from ``limits``: never flags)."""

    def replay(self, monitor, traffic: Traffic, features: TrafficFeatures | None) -> list[AccountOutcome]:
        """Feed ``traffic`` to ``monitor`` in log order; one outcome per account."""
        return replay(monitor, traffic, None, None)

    def online(self, monitor, account: str, query, index: int, encoding: np.ndarray | None,
               prada_vector: np.ndarray | None, follow: int, time: float) -> bool:
        """Feed one query to ``monitor`` as a deployed service would (each monitor reads what it needs)."""
        return monitor.observe(account, query, None, index)

    @abstractmethod
    def read(self, outcomes: list[AccountOutcome]) -> dict[str, np.ndarray]:
        """{statistic: [A] values} from the outcomes of a replay."""

    def values(self, traffic: Traffic, features: TrafficFeatures | None, context: MonitorContext
               ) -> dict[str, np.ndarray]:
        """{statistic: [A]} for ``traffic`` with no limits (one replay)."""
        return self.read(self.replay(self.monitor({}, context), traffic, features))

    def probe(self, limits: Mapping[str, float | None], traffic: Traffic, features: TrafficFeatures | None,
              context: MonitorContext) -> dict[str, np.ndarray] | None:
        """Feed ``traffic`` to a monitor with ``limits`` and stop at the first flag: None when an account was
        flagged, else {statistic: [A]} (the same values as ``values``: no limit was passed)."""
        monitor = self.monitor(limits, context)
        names, accounts, times = traffic.names, traffic.account, traffic.time
        seat = None if features is None else features.seat
        prada = None if features is None else features.prada
        for j in range(traffic.num_queries):
            row = None if features is None else features.rows[j]
            if self.online(monitor, names[accounts[j]], traffic.query(j), j,
                           None if seat is None else seat[row], None if prada is None else prada[row],
                           -1 if features is None or features.follow is None else int(features.follow[j]),
                           0.0 if times is None else float(times[j])):
                return None
        return self.read(outcomes_of(monitor, traffic))


SOURCES: dict[str, StatisticSource] = {}  # source name -> source
STATISTIC_SOURCE: dict[str, str] = {}  # statistic -> name of its source


def register_source(cls: type[StatisticSource]) -> type[StatisticSource]:
    """Class decorator: register a statistic source under ``cls.name`` (a statistic has one source)."""
    taken = {s: STATISTIC_SOURCE[s] for s in cls.statistics if s in STATISTIC_SOURCE and STATISTIC_SOURCE[s] != cls.name}
    if taken:
        raise ValueError(f"statistic(s) {taken} already come from another source; {cls.name!r} cannot also give them")
    SOURCES[cls.name] = cls()
    for statistic in cls.statistics:
        STATISTIC_SOURCE[statistic] = cls.name
    return cls


def source_of(statistic: str) -> StatisticSource:
    """The source that produces ``statistic`` (unknown: a clear error listing the known statistics)."""
    if statistic not in STATISTIC_SOURCE:
        raise ValueError(f"unknown statistic {statistic!r}; known: {sorted(STATISTIC_SOURCE)}")
    return SOURCES[STATISTIC_SOURCE[statistic]]


@register_source
class SeatSource(StatisticSource):
    name = "seat"
    statistics = ("pairs", "sessions", "follow")

    def monitor(self, limits, context):
        if context.threshold is None or context.dim <= 0:
            raise ValueError("the seat statistics need a distance threshold and the encoding size dim")
        s = context.seat
        return SeatMonitor(threshold=context.threshold, limit=_floor(limits.get("pairs")), dim=context.dim,
                           num_items=context.num_items, session_limit=_floor(limits.get("sessions")),
                           follow_limit=limits.get("follow"), follow_drift=s.follow_drift,
                           max_sessions=s.max_sessions, max_removed=s.max_removed, max_added=s.max_added,
                           min_overlap=s.min_overlap)

    def online(self, monitor, account, query, index, encoding, prada_vector, follow, time):
        return monitor.observe(account, query, encoding, index, follow)

    def replay(self, monitor, traffic, features):
        if features is None:
            raise ValueError("the seat statistics need the traffic's features (SEAT encodings)")
        return replay(monitor, traffic, features.seat, features.rows, features.follow)

    def read(self, outcomes):
        return {"pairs": np.array([o.score for o in outcomes], dtype=np.float64),
                "sessions": np.array([o.sessions for o in outcomes], dtype=np.float64),
                "follow": np.array([o.follow for o in outcomes], dtype=np.float64)}


@register_source
class VolumeSource(StatisticSource):
    name = "volume"
    statistics = ("volume",)
    flag_label = "cap"
    vectorised = True

    def monitor(self, limits, context):
        return VolumeCapMonitor(limit=limits.get("volume"))

    def read(self, outcomes):
        return {"volume": np.array([o.queries for o in outcomes], dtype=np.float64)}

    def values(self, traffic, features, context):
        """Queries per account, counted directly (what the monitor's replay gives)."""
        return {"volume": np.bincount(traffic.account, minlength=len(traffic.names)).astype(np.float64)}


def max_in_window(times: np.ndarray, account: np.ndarray, num_accounts: int, window: float) -> np.ndarray:
    """[A] most queries of each account within any window (t - window, t] of its query times.

    What ``RateCapMonitor`` computes online, vectorised; each account's times must be non-decreasing in log
    order (true of every traffic built here).
    """
    out = np.zeros(num_accounts, dtype=np.float64)
    if len(times) == 0:
        return out
    order = np.argsort(account, kind="stable")  # each account's queries, in log order
    a, t = account[order], np.asarray(times, dtype=np.float64)[order]
    starts = np.r_[0, np.flatnonzero(np.diff(a)) + 1]
    bounds = np.r_[starts, len(a)]
    for lo, hi in zip(bounds[:-1].tolist(), bounds[1:].tolist()):
        block = t[lo:hi]
        if np.any(np.diff(block) < 0):
            raise ValueError(f"account {int(a[lo])}'s query times go backwards; max_in_window needs them in order")
        first_inside = np.searchsorted(block, block - window, side="right")  # first index with time > t - window
        out[int(a[lo])] = float((np.arange(len(block)) - first_inside + 1).max())
    return out


@register_source
class RateSource(StatisticSource):
    name = "rate"
    statistics = ("rate",)
    needs_time = True
    flag_label = "cap"
    vectorised = True

    def monitor(self, limits, context):
        return RateCapMonitor(limit=limits.get("rate"), window_seconds=context.seat.rate_window_s)

    def online(self, monitor, account, query, index, encoding, prada_vector, follow, time):
        return monitor.observe(account, query, None, index, time)

    def read(self, outcomes):
        return {"rate": np.array([o.score for o in outcomes], dtype=np.float64)}

    def values(self, traffic, features, context):
        if traffic.time is None:
            raise ValueError("the rate statistic needs query times (traffic.time) and this traffic has none")
        return {"rate": max_in_window(traffic.time, traffic.account, len(traffic.names), context.seat.rate_window_s)}


@register_source
class PradaSource(StatisticSource):
    name = "prada"
    statistics = ("prada",)
    slow = True

    def monitor(self, limits, context):
        p = context.prada
        return PradaMonitor(limit=limits.get("prada"), min_queries=p.min_queries, test_every=p.test_every,
                            max_growing=p.max_growing, max_distances=p.max_distances)

    def online(self, monitor, account, query, index, encoding, prada_vector, follow, time):
        return monitor.observe(account, query, prada_vector, index)

    def replay(self, monitor, traffic, features):
        if features is None:
            raise ValueError("the prada statistic needs the traffic's features (bag-of-items vectors)")
        return replay(monitor, traffic, features.prada, features.rows)

    def read(self, outcomes):
        return {"prada": np.array([o.score for o in outcomes], dtype=np.float64)}


@register_source
class HandoffSource(StatisticSource):
    """Service-wide, so not per account. Accounts of different *kinds* are replayed as different services:
    the benign forms are alternative versions of the same users (a user's ``growing`` and ``refresh``
    accounts share a history), and a person does not hand off to an alternative version of itself."""

    name = "handoff"
    statistics = ("handoffs",)
    per_account = False

    def monitor(self, limits, context):
        return HandoffMonitor(limit=limits.get("handoffs"), tail=context.seat.handoff_tail,
                              memory=context.seat.handoff_memory)

    def online(self, monitor, account, query, index, encoding, prada_vector, follow, time):
        return monitor.observe(account, query, None, index, time)

    def replay(self, monitor, traffic, features):
        names, accounts, times, kinds = traffic.names, traffic.account, traffic.time, traffic.kinds
        monitors = {kind: monitor if i == 0 else HandoffMonitor(limit=monitor.limit, tail=monitor.tail,
                                                                memory=monitor.memory,
                                                                window_seconds=monitor.window_seconds)
                    for i, kind in enumerate(dict.fromkeys(kinds))}  # one service per kind of account
        for j in range(traffic.num_queries):
            a = int(accounts[j])
            monitors[kinds[a]].observe(names[a], traffic.query(j), None, j, 0.0 if times is None else float(times[j]))
        for other in monitors.values():
            if other is not monitor:
                monitor.accounts.update(other.accounts)
        outcomes = []
        for i, name in enumerate(names):
            state = monitor.accounts.get(name)
            outcomes.append(AccountOutcome(name, traffic.kinds[i], 0, 0.0, None) if state is None else
                            AccountOutcome(name, traffic.kinds[i], state.queries, state.score, state.flagged_at))
        return outcomes

    def read(self, outcomes):
        return {"handoffs": np.array([o.score for o in outcomes], dtype=np.float64)}


@dataclass(frozen=True, eq=False)
class AccountStatistics:
    """Per-account statistics of one traffic (limits off), computed once and read by every detector."""

    names: tuple[str, ...]  # [A]
    threshold: float | None  # SEAT's distance threshold they were computed with (None: no seat statistic)
    values: Mapping[str, np.ndarray] = field(default_factory=dict)  # statistic -> [A]
    kinds: tuple[str, ...] = ()  # [A] benign form or attack label of each account

    def __post_init__(self) -> None:
        if not self.kinds:
            object.__setattr__(self, "kinds", ("",) * len(self.names))
        if len(self.kinds) != len(self.names):
            raise ValueError(f"{len(self.kinds)} kinds for {len(self.names)} accounts")
        for statistic, column in self.values.items():
            if len(column) != len(self.names):
                raise ValueError(f"statistic {statistic!r} has {len(column)} values for {len(self.names)} accounts")
        object.__setattr__(self, "values", MappingProxyType({k: np.asarray(v, dtype=np.float64)
                                                             for k, v in self.values.items()}))

    def __reduce__(self):  # pickle / copy: the read-only view of the values is rebuilt from a plain dict
        return (type(self), (self.names, self.threshold, dict(self.values), self.kinds))

    def __getitem__(self, statistic: str) -> np.ndarray:
        if statistic not in self.values:
            raise ValueError(f"these account statistics lack {statistic!r} (computed: {sorted(self.values)})")
        return self.values[statistic]


def account_statistics(traffic: Traffic, features: TrafficFeatures | None, context: MonitorContext,
                       statistics: Iterable[str]) -> AccountStatistics:
    """The named statistics of every account of ``traffic`` (each source replayed once)."""
    wanted = list(dict.fromkeys(statistics))
    values: dict[str, np.ndarray] = {}
    for statistic in wanted:
        if statistic in values:
            continue
        values.update(source_of(statistic).values(traffic, features, context))
    return AccountStatistics(tuple(traffic.names), context.threshold,
                             {s: values[s] for s in wanted}, tuple(traffic.kinds))


def benign_statistics(traffic: Traffic, features: TrafficFeatures, seat: SeatOptions = SeatOptions(),
                      prada: PradaOptions = PradaOptions(), num_items: int = 4096, seed: int = 0,
                      with_prada: bool = True, threshold: float | None = None,
                      statistics: Iterable[str] | None = None) -> AccountStatistics:
    """Replay benign ``traffic`` once through each source with no limit (``features``: its TrafficFeatures).

    ``threshold`` None sets SEAT's distance threshold from this traffic's
    cross-user distances (calibration); test traffic passes the calibrated one.
    ``statistics`` None computes every registered statistic the traffic allows
    (the rate needs query times; PRADA only ``with_prada``).
    """
    if threshold is None:
        threshold = cross_user_threshold(features.seat, features.keys, seat.pair_quantile, seat.num_pairs, seed)
    if statistics is None:
        statistics = [s for s, name in STATISTIC_SOURCE.items()
                      if not (SOURCES[name].needs_time and traffic.time is None) and (with_prada or name != "prada")]
    context = MonitorContext(threshold, features.seat.shape[1], num_items, seat, prada)
    return account_statistics(traffic, features, context, statistics)
