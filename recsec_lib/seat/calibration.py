"""Calibrating detectors on benign accounts, then freezing them.

Every detector flags an account once a monotone per-account statistic passes a
limit. A limit is set on *calibration* accounts only, for a target
false-positive rate: the smallest limit that at most that share of the
calibration accounts exceed. SEAT's distance threshold is set first, also from
calibration traffic only: the ``pair_quantile`` quantile of distances between
queries of *different* real users.

Detectors (``DETECTORS``):

* ``seat-pairs`` — SEAT's own statistic only (close session pairs), at ``fpr``;
* ``seat``       — SEAT with the in-session statistics: close pairs, sessions
  opened and the follow CUSUM, each at ``fpr / 3`` (so at most ``fpr`` of the
  calibration accounts are flagged by any of them);
* ``seat+cap``   — what would be deployed: the three SEAT statistics, the
  lifetime volume cap and the rate cap, each at ``fpr / 5``;
* ``caps``       — the lifetime and rate caps without SEAT, each at ``fpr / 2``
  (what SEAT's own contribution to ``seat+cap`` is measured against);
* ``volume``     — the lifetime cap alone, at ``fpr`` (the baseline);
* ``rate``       — the rate cap alone (queries within ``rate_window_s``), at ``fpr``;
* ``prada``      — PRADA, at ``fpr``.

The result is a frozen ``Calibration`` that remembers which accounts it was
fit on; evaluating it on traffic that contains any of them raises.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

from recsec_lib.seat.baselines import PradaMonitor, RateCapMonitor, VolumeCapMonitor
from recsec_lib.seat.monitor import SeatMonitor

DETECTORS = ("seat-pairs", "seat", "seat+cap", "caps", "volume", "rate", "prada")
SEAT_DETECTORS = ("seat-pairs", "seat", "seat+cap")  # the ones replayed through a SeatMonitor


@dataclass(frozen=True)
class SeatOptions:
    """SEAT monitor settings that are not calibrated."""

    max_sessions: int = 64  # session tips remembered per account
    max_removed: int = 16  # a query continues a session if it drops at most this many of the tip's items
    max_added: int = 16  # ... and adds at most this many
    min_overlap: int = 5  # ... and shares at least this many (or all of the shorter one)
    follow_drift: float = 0.8  # the follow CUSUM subtracts this per growth step
    pair_quantile: float = 0.01  # threshold = this quantile of distances between different users' queries
    num_pairs: int = 200_000  # random cross-user pairs used to estimate that quantile
    rate_window_s: float = 3600.0  # the rate cap counts queries within this many seconds

    def __post_init__(self) -> None:
        if not 0 < self.pair_quantile < 1:
            raise ValueError(f"SeatOptions.pair_quantile must be in (0, 1), got {self.pair_quantile}")
        if not 0 < self.follow_drift < 1:
            raise ValueError(f"SeatOptions.follow_drift must be in (0, 1), got {self.follow_drift}")


@dataclass(frozen=True)
class PradaOptions:
    """PRADA monitor settings that are not calibrated."""

    min_queries: int = 20
    test_every: int = 5
    max_growing: int = 256
    max_distances: int = 512


@dataclass(frozen=True)
class Calibration:
    """A detector's frozen setting. Build it with ``calibrate``; never edit it afterwards."""

    detector: str  # one of DETECTORS
    limit: float | None  # the main statistic's limit (seat*: close pairs; volume: queries; rate: queries per window)
    threshold: float | None  # SEAT's distance threshold (None for the others)
    target_fpr: float  # the false-positive rate asked for
    calibration_fpr: float  # fraction of calibration accounts flagged with these limits
    num_accounts: int  # calibration accounts
    accounts: frozenset[str]  # their names: test traffic must contain none of them
    session_limit: float | None = None  # seat, seat+cap: sessions opened
    follow_limit: float | None = None  # seat, seat+cap: follow CUSUM
    volume_limit: float | None = None  # seat+cap, caps: lifetime queries
    rate_limit: float | None = None  # seat+cap, caps: queries per rate window

    def check_unseen(self, names: Sequence[str]) -> None:
        """Raise if any of ``names`` was a calibration account."""
        seen = self.accounts.intersection(names)
        if seen:
            example = sorted(seen)[0]
            raise ValueError(f"{len(seen)} evaluation account(s) were used to calibrate the {self.detector} "
                             f"detector (e.g. {example!r}); calibration and test accounts must be disjoint")

    def summary(self) -> dict:
        """JSON-ready view (without the account list)."""
        values = asdict(self)
        values.pop("accounts")
        return values


def _floor(limit: float | None) -> int | None:
    return None if limit is None else int(math.floor(limit))


def make_monitor(detector: str, limit: float | None, threshold: float | None = None, dim: int = 0,
                 seat: SeatOptions = SeatOptions(), prada: PradaOptions = PradaOptions(), num_items: int = 4096,
                 session_limit: float | None = None, follow_limit: float | None = None):
    """A fresh online monitor of the named detector (limits None: never flags, for calibration).

    For ``seat+cap`` this is its SEAT part; the caps are separate monitors (``component_monitors``).
    """
    if detector in SEAT_DETECTORS:
        if threshold is None or dim <= 0:
            raise ValueError("the seat detectors need a distance threshold and the encoding size dim")
        return SeatMonitor(threshold=threshold, limit=_floor(limit), dim=dim, num_items=num_items,
                           session_limit=_floor(session_limit), follow_limit=follow_limit,
                           follow_drift=seat.follow_drift, max_sessions=seat.max_sessions,
                           max_removed=seat.max_removed, max_added=seat.max_added, min_overlap=seat.min_overlap)
    if detector == "volume":
        return VolumeCapMonitor(limit=limit)
    if detector == "rate":
        return RateCapMonitor(limit=limit, window_seconds=seat.rate_window_s)
    if detector == "prada":
        return PradaMonitor(limit=limit, min_queries=prada.min_queries, test_every=prada.test_every,
                            max_growing=prada.max_growing, max_distances=prada.max_distances)
    raise ValueError(f"unknown detector {detector!r}; expected one of {DETECTORS}")


def component_monitors(calibration: Calibration, dim: int, num_items: int, seat: SeatOptions = SeatOptions(),
                       prada: PradaOptions = PradaOptions()) -> list:
    """The monitors a calibrated detector runs (seat+cap: its SEAT part, the volume cap and the rate cap)."""
    c = calibration
    if c.detector == "caps":
        return [VolumeCapMonitor(limit=c.volume_limit),
                RateCapMonitor(limit=c.rate_limit, window_seconds=seat.rate_window_s)]
    monitors = [make_monitor(c.detector, c.limit, c.threshold, dim, seat, prada, num_items, c.session_limit,
                             c.follow_limit)]
    if c.detector == "seat+cap":
        monitors += [VolumeCapMonitor(limit=c.volume_limit),
                     RateCapMonitor(limit=c.rate_limit, window_seconds=seat.rate_window_s)]
    return monitors


def limit_for_fpr(scores: Sequence[float], fpr: float) -> tuple[float, float]:
    """(limit, achieved rate): the smallest limit that at most ``fpr`` of ``scores`` exceed.

    With n scores, floor(fpr * n) accounts may lie above the limit; the limit is
    then the (floor(fpr * n) + 1)-th largest score.
    """
    if not 0 <= fpr < 1:
        raise ValueError(f"fpr must be in [0, 1), got {fpr}")
    if len(scores) == 0:
        raise ValueError("cannot calibrate on zero accounts")
    ordered = np.sort(np.asarray(scores, dtype=np.float64))[::-1]
    allowed = int(math.floor(fpr * len(ordered)))
    limit = float(ordered[min(allowed, len(ordered) - 1)])
    return limit, float((ordered > limit).mean())


def cross_user_threshold(features: np.ndarray, keys: np.ndarray, quantile: float, num_pairs: int,
                         seed: int) -> float:
    """The ``quantile`` of distances between random pairs of queries from different sources (users).

    ``features`` [U, D] are the encodings of the distinct queries ``keys`` [U, 2]
    = (source, end) of the calibration traffic.
    """
    if len(np.unique(keys[:, 0])) < 2:
        raise ValueError("the calibration traffic needs queries of at least two users to set a threshold")
    rng = np.random.default_rng(seed)
    a = rng.integers(len(keys), size=num_pairs)
    b = rng.integers(len(keys), size=num_pairs)
    keep = keys[a, 0] != keys[b, 0]
    distances = np.linalg.norm(features[a[keep]] - features[b[keep]], axis=1)
    return float(np.quantile(distances, quantile))


@dataclass(frozen=True)
class BenignStatistics:
    """Every detector's per-account statistics on one benign traffic (limits off), computed once."""

    names: tuple[str, ...]
    threshold: float
    pairs: np.ndarray  # [A] close session pairs
    sessions: np.ndarray  # [A] sessions opened
    follow: np.ndarray  # [A] largest follow CUSUM
    volume: np.ndarray  # [A] queries
    rate: np.ndarray  # [A] most queries in one rate window
    prada: np.ndarray | None  # [A] PRADA's 1 - W' (None: not computed)
    kinds: tuple[str, ...] = ()  # [A] benign form of each account


def benign_statistics(traffic, features, seat: SeatOptions = SeatOptions(), prada: PradaOptions = PradaOptions(),
                      num_items: int = 4096, seed: int = 0, with_prada: bool = True,
                      threshold: float | None = None) -> BenignStatistics:
    """Replay benign ``traffic`` once through each monitor with no limit (``features``: its TrafficFeatures).

    ``threshold`` None sets SEAT's distance threshold from this traffic's
    cross-user distances (calibration); test traffic passes the calibrated one.
    """
    from recsec_lib.seat.replay import replay  # replay imports the monitors; keep this module light

    if threshold is None:
        threshold = cross_user_threshold(features.seat, features.keys, seat.pair_quantile, seat.num_pairs, seed)
    monitor = make_monitor("seat", None, threshold, features.seat.shape[1], seat, prada, num_items)
    seat_out = replay(monitor, traffic, features.seat, features.rows, features.follow)
    rate_out = replay(make_monitor("rate", None, seat=seat), traffic, None, None)
    prada_scores = None
    if with_prada:
        prada_scores = np.array([o.score for o in replay(make_monitor("prada", None, prada=prada), traffic,
                                                         features.prada, features.rows)])
    return BenignStatistics(tuple(traffic.names), threshold, np.array([o.score for o in seat_out]),
                            np.array([o.sessions for o in seat_out]), np.array([o.follow for o in seat_out]),
                            np.array([o.queries for o in seat_out], dtype=np.float64),
                            np.array([o.score for o in rate_out]), prada_scores, tuple(traffic.kinds))


PARTS = {"seat-pairs": ("pairs",), "seat": ("pairs", "sessions", "follow"),
         "seat+cap": ("pairs", "sessions", "follow", "volume", "rate"), "caps": ("volume", "rate"),
         "volume": ("volume",), "rate": ("rate",), "prada": ("prada",)}  # the statistics each detector compares


def limits_of(calibration: Calibration) -> dict[str, float | None]:
    """{statistic: limit} of a calibrated detector."""
    c = calibration
    named = {"pairs": c.limit, "sessions": c.session_limit, "follow": c.follow_limit,
             "volume": c.volume_limit if c.detector in ("seat+cap", "caps") else c.limit,
             "rate": c.rate_limit if c.detector in ("seat+cap", "caps") else c.limit, "prada": c.limit}
    return {part: named[part] for part in PARTS[c.detector]}


def flagged_by_statistics(calibration: Calibration, stats: BenignStatistics) -> np.ndarray:
    """[A] bool: accounts the calibrated detector flags. Every statistic only grows with more queries, so an
    account is flagged exactly when a final statistic passes its limit; one replay serves every detector."""
    calibration.check_unseen(stats.names)
    flagged = np.zeros(len(stats.names), dtype=bool)
    for part, limit in limits_of(calibration).items():
        values = getattr(stats, part)
        if values is None:
            raise ValueError(f"the benign statistics lack {part!r} (computed with with_prada=False?)")
        if limit is not None:
            flagged |= values > limit
    return flagged


def benign_frame(calibration: Calibration, stats: BenignStatistics):
    """One row per benign account: name, kind, detector, score (the detector's main statistic), flagged."""
    import pandas as pd

    main = getattr(stats, PARTS[calibration.detector][0])
    return pd.DataFrame({"name": stats.names, "kind": stats.kinds, "detector": calibration.detector,
                         "score": main, "flagged": flagged_by_statistics(calibration, stats)})


def calibrate(detector: str, stats: BenignStatistics, target_fpr: float) -> Calibration:
    """Fit one detector on the benign calibration statistics and freeze it.

    Only calibration traffic is read: the test accounts do not exist yet when this runs in the stage.
    """
    if detector not in DETECTORS:
        raise ValueError(f"unknown detector {detector!r}; expected one of {DETECTORS}")
    parts = PARTS[detector]
    if detector == "prada" and stats.prada is None:
        raise ValueError("the benign statistics were computed without PRADA (with_prada=False)")
    share = target_fpr / len(parts)
    limits = {part: limit_for_fpr(getattr(stats, part), share)[0] for part in parts}
    flagged = np.zeros(len(stats.names), dtype=bool)
    for part, limit in limits.items():
        flagged |= getattr(stats, part) > limit
    main = {"seat-pairs": "pairs", "seat": "pairs", "seat+cap": "pairs", "caps": "volume"}.get(detector, parts[0])
    return Calibration(detector=detector, limit=limits[main],
                       threshold=stats.threshold if detector in SEAT_DETECTORS else None,
                       target_fpr=target_fpr, calibration_fpr=float(flagged.mean()), num_accounts=len(stats.names),
                       accounts=frozenset(stats.names), session_limit=limits.get("sessions"),
                       follow_limit=limits.get("follow"),
                       volume_limit=limits.get("volume") if detector in ("seat+cap", "caps") else None,
                       rate_limit=limits.get("rate") if detector in ("seat+cap", "caps") else None)
