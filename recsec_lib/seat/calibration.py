"""Calibrating detectors on benign accounts, then freezing them: the shared pieces.

Every detector flags an account once one of its monotone per-account
statistics passes a limit. A limit is set on *calibration* accounts only, for
a target false-positive rate: the smallest limit that at most that share of
the calibration accounts exceed (``limit_for_fpr``). SEAT's distance threshold
is set first, also from calibration traffic only: the ``pair_quantile``
quantile of distances between queries of *different* real users
(``cross_user_threshold``).

Which statistics a detector compares and how it shares its false-positive
budget between them is the detector's own business: see
``recsec_lib.seat.detectors`` (the registry; ``calibrate`` is there). The
result is a frozen ``Calibration`` that remembers which accounts it was fit
on; evaluating it on traffic that contains any of them raises.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType

import numpy as np

# Calibration.summary() names the limit of these statistics with their first-version keys.
_NAMED_LIMITS = {"sessions": "session_limit", "follow": "follow_limit", "volume": "volume_limit",
                 "rate": "rate_limit"}


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
    handoff_tail: int = 20  # the cross-account handoff signal matches queries on their newest this many items
    handoff_memory: int = 1_000_000  # query tails the service remembers for it (least recently seen forgotten)

    def __post_init__(self) -> None:
        if not 0 < self.pair_quantile < 1:
            raise ValueError(f"SeatOptions.pair_quantile must be in (0, 1), got {self.pair_quantile}")
        if not 0 < self.follow_drift < 1:
            raise ValueError(f"SeatOptions.follow_drift must be in (0, 1), got {self.follow_drift}")
        if self.handoff_tail < 1 or self.handoff_memory < 1:
            raise ValueError(f"SeatOptions.handoff_tail and handoff_memory must be >= 1, got "
                             f"{self.handoff_tail} and {self.handoff_memory}")


@dataclass(frozen=True)
class PradaOptions:
    """PRADA monitor settings that are not calibrated."""

    min_queries: int = 20
    test_every: int = 5
    max_growing: int = 256
    max_distances: int = 512


@dataclass(frozen=True, eq=False)
class Calibration:
    """A detector's frozen setting. Build it with ``detectors.calibrate``; never edit it afterwards.

    ``limits`` maps each statistic the detector compares (``Detector.statistics``,
    the first is its main one) to its limit; None never flags on that statistic.
    """

    detector: str  # a registered detector name (recsec_lib.seat.detectors)
    limits: Mapping[str, float | None]  # statistic -> limit
    threshold: float | None  # SEAT's distance threshold (None for detectors without a SEAT statistic)
    target_fpr: float  # the false-positive rate asked for
    calibration_fpr: float  # fraction of calibration accounts flagged with these limits
    num_accounts: int  # calibration accounts
    accounts: frozenset[str] = field(default_factory=frozenset)  # their names: test traffic must contain none

    def __post_init__(self) -> None:
        if not self.limits:
            raise ValueError(f"a calibration of {self.detector!r} needs at least one statistic's limit")
        object.__setattr__(self, "limits", MappingProxyType(dict(self.limits)))

    def __reduce__(self):  # pickle / copy: the read-only view of the limits is rebuilt from a plain dict
        return (type(self), (self.detector, dict(self.limits), self.threshold, self.target_fpr,
                             self.calibration_fpr, self.num_accounts, self.accounts))

    @property
    def main(self) -> str:
        """The detector's main statistic (the first of ``limits``)."""
        return next(iter(self.limits))

    @property
    def limit(self) -> float | None:
        """The main statistic's limit."""
        return self.limits[self.main]

    def check_unseen(self, names: Sequence[str]) -> None:
        """Raise if any of ``names`` was a calibration account."""
        seen = self.accounts.intersection(names)
        if seen:
            example = sorted(seen)[0]
            raise ValueError(f"{len(seen)} evaluation account(s) were used to calibrate the {self.detector} "
                             f"detector (e.g. {example!r}); calibration and test accounts must be disjoint")

    def summary(self) -> dict:
        """JSON-ready view (without the account list). A detector of several statistics also has each other
        statistic's limit under its first-version key (``session_limit``, ``follow_limit``, ``volume_limit``,
        ``rate_limit``), None where it has none; ``limits`` has them all."""
        out = {"detector": self.detector, "limit": self.limit, "threshold": self.threshold,
               "target_fpr": self.target_fpr, "calibration_fpr": self.calibration_fpr,
               "num_accounts": self.num_accounts}
        several = len(self.limits) > 1
        for statistic, key in _NAMED_LIMITS.items():
            out[key] = self.limits.get(statistic) if several else None
        out["limits"] = dict(self.limits)
        return out


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
