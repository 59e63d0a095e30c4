"""Calibrating detectors on benign accounts, then freezing them.

Every detector flags an account once a monotone per-account score passes a
limit (SEAT: close session pairs; volume cap: queries; PRADA: 1 - W'). The
limit is set on *calibration* accounts only, for a target false-positive rate:
the smallest limit that at most ``fpr`` of the calibration accounts exceed.
SEAT's distance threshold is set first, also from calibration traffic only: the
``pair_quantile`` quantile of distances between queries of *different* real
users (so two unrelated users' queries are "similar" with that probability).

The result is a frozen ``Calibration`` that remembers which accounts it was fit
on; evaluating it on traffic that contains any of them raises, so a test
account can never have been seen during calibration.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

from recsec_lib.seat.baselines import PradaMonitor, VolumeCapMonitor
from recsec_lib.seat.monitor import SeatMonitor

DETECTORS = ("seat", "volume", "prada")


@dataclass(frozen=True)
class SeatOptions:
    """SEAT monitor settings that are not calibrated."""

    max_sessions: int = 64  # session tips remembered per account
    max_shift: int = 4  # a query may drop up to this many oldest items and still continue a session
    min_overlap: int = 5  # ... if at least this many items overlap
    pair_quantile: float = 0.01  # threshold = this quantile of distances between different users' queries
    num_pairs: int = 200_000  # random cross-user pairs used to estimate that quantile

    def __post_init__(self) -> None:
        if not 0 < self.pair_quantile < 1:
            raise ValueError(f"SeatOptions.pair_quantile must be in (0, 1), got {self.pair_quantile}")


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
    limit: float  # flag when the account's score exceeds this
    threshold: float | None  # SEAT's distance threshold (None for the others)
    target_fpr: float  # the false-positive rate asked for
    calibration_fpr: float  # fraction of calibration accounts above the limit
    num_accounts: int  # calibration accounts
    accounts: frozenset[str]  # their names: test traffic must contain none of them

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


def make_monitor(detector: str, limit: float | None, threshold: float | None = None, dim: int = 0,
                 seat: SeatOptions = SeatOptions(), prada: PradaOptions = PradaOptions()):
    """A fresh online monitor of the named detector (limit None: never flags, for calibration)."""
    if detector == "seat":
        if threshold is None or dim <= 0:
            raise ValueError("the seat detector needs a distance threshold and the encoding size dim")
        return SeatMonitor(threshold=threshold, limit=None if limit is None else int(math.floor(limit)), dim=dim,
                           max_sessions=seat.max_sessions, max_shift=seat.max_shift, min_overlap=seat.min_overlap)
    if detector == "volume":
        return VolumeCapMonitor(limit=limit)
    if detector == "prada":
        return PradaMonitor(limit=limit, min_queries=prada.min_queries, test_every=prada.test_every,
                            max_growing=prada.max_growing, max_distances=prada.max_distances)
    raise ValueError(f"unknown detector {detector!r}; expected one of {DETECTORS}")


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


def calibrate(detector: str, traffic, features, target_fpr: float, seat: SeatOptions = SeatOptions(),
              prada: PradaOptions = PradaOptions(), seed: int = 0) -> Calibration:
    """Fit one detector on benign calibration ``traffic`` (a Traffic) and freeze it.

    ``features`` is the TrafficFeatures of that same traffic. Only this traffic
    is read: the test accounts do not exist yet when this runs in the stage.
    """
    from recsec_lib.seat.replay import replay  # replay imports the monitors; keep this module light

    threshold = None
    vectors = None
    if detector == "seat":
        threshold = cross_user_threshold(features.seat, features.keys, seat.pair_quantile, seat.num_pairs, seed)
        vectors = features.seat
    elif detector == "prada":
        vectors = features.prada
    monitor = make_monitor(detector, None, threshold, dim=features.seat.shape[1], seat=seat, prada=prada)
    outcomes = replay(monitor, traffic, vectors, features.rows)
    limit, achieved = limit_for_fpr([o.score for o in outcomes], target_fpr)
    return Calibration(detector=detector, limit=limit, threshold=threshold, target_fpr=target_fpr,
                       calibration_fpr=achieved, num_accounts=len(outcomes), accounts=frozenset(traffic.names))
