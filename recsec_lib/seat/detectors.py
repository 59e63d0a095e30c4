"""Detectors as registered objects: one class each, declared once, found by name.

A detector flags an account once any of its per-account statistics
(``recsec_lib.seat.statistics``) passes its calibrated limit. The class says
which statistics (the first is the main one, reported as the account's score),
how the false-positive budget is shared between them, and what its headline
keys are called; calibration, flagging, online monitors and the accounts-needed
search are the same code for all of them.

Registered here (``DETECTORS``, a ``common.registry.Registry``;
``DEFAULT_DETECTORS`` are the ones the SEAT stage has always run, in its order):

* ``seat-pairs`` — SEAT's own statistic only (close session pairs), at ``fpr``;
* ``seat``       — SEAT with the in-session statistics: close pairs, sessions
  opened and the follow CUSUM, each at ``fpr / 3``;
* ``seat+cap``   — what would be deployed: the three SEAT statistics, the
  lifetime volume cap and the rate cap, each at ``fpr / 5``;
* ``caps``       — the lifetime and rate caps without SEAT, each at ``fpr / 2``;
* ``volume``     — the lifetime cap alone, at ``fpr`` (the baseline);
* ``rate``       — the rate cap alone (queries within ``rate_window_s``), at ``fpr``;
* ``prada``      — PRADA, at ``fpr``;
* ``handoff``    — the cross-account signal alone (``recsec_lib.seat.handoff``);
* ``caps+handoff``, ``seat+cap+handoff`` — the caps (and SEAT) with the
  cross-account signal, with the *union* budget rule (below).

Budget rules. ``equal`` (the first version's): each of k statistics gets
``fpr / k``, so at most ``fpr`` of the calibration accounts are flagged in all
— but when the statistics flag the same accounts, or flag none, most of the
budget is unused and the caps end up looser than a cap alone. ``union``: every
statistic gets the same share s, the largest for which the accounts flagged by
*any* statistic are at most ``fpr`` of the calibration accounts (s >= fpr / k,
so never looser than ``equal``).

Adding a detector = one subclass of ``Detector`` decorated with
``register_detector`` (a toy one is in ``tests/unit/test_detectors.py``).
"""

from __future__ import annotations

import math
from abc import ABC
from collections.abc import Mapping
from typing import ClassVar

import numpy as np

from recsec_lib.common.registry import Registry
from recsec_lib.seat.calibration import Calibration, limit_for_fpr
from recsec_lib.seat.statistics import AccountStatistics, MonitorContext, StatisticSource, source_of

BUDGET_RULES = ("equal", "union")


class Detector(ABC):
    """A calibrated-limit detector over per-account statistics (see the module docstring)."""

    name: ClassVar[str]  # registry name
    key: ClassVar[str]  # prefix of its headline keys, e.g. "seat_plus_cap"
    statistics: ClassVar[tuple[str, ...]]  # compared with limits; the first is the main one
    budget_rule: ClassVar[str] = "equal"  # how the false-positive budget is shared (BUDGET_RULES)
    # False: without its clock the detector is another one (the caps without the rate cap are the volume cap),
    # so clockless attack traffic judges it in closed form (rate) and tables of clockless runs leave it out.
    judged_without_clock: ClassVar[bool] = True

    # --- what it reads ---------------------------------------------------------------------------

    @property
    def main(self) -> str:
        return self.statistics[0]

    def sources(self) -> list[StatisticSource]:
        """The sources of its statistics, each once, in the order of first use."""
        out: list[StatisticSource] = []
        for statistic in self.statistics:
            source = source_of(statistic)
            if source not in out:
                out.append(source)
        return out

    @property
    def needs_threshold(self) -> bool:
        """True when it reads a SEAT statistic (then it needs the distance threshold)."""
        return any(source_of(s).name == "seat" for s in self.statistics)

    @property
    def needs_time(self) -> bool:
        return any(source_of(s).needs_time for s in self.statistics)

    @property
    def slow(self) -> bool:
        return any(source_of(s).slow for s in self.statistics)

    def clock_statistics(self) -> tuple[str, ...]:
        """Its statistics that need query times."""
        return tuple(s for s in self.statistics if source_of(s).needs_time)

    # --- calibration ------------------------------------------------------------------------------

    def limits_at(self, stats: AccountStatistics, share: float) -> dict[str, float]:
        """Each statistic's limit at false-positive share ``share`` on ``stats``."""
        return {s: limit_for_fpr(stats[s], share)[0] for s in self.statistics}

    def calibrate(self, stats: AccountStatistics, target_fpr: float) -> Calibration:
        """Fit on the benign calibration statistics and freeze. Only calibration traffic is read."""
        for statistic in self.statistics:
            stats[statistic]  # a clear error when the calibration traffic lacks one  # noqa: B018
        if self.budget_rule not in BUDGET_RULES:
            raise ValueError(f"detector {self.name!r}: budget_rule must be one of {BUDGET_RULES}, "
                             f"got {self.budget_rule!r}")
        k, n = len(self.statistics), len(stats.names)
        limits = self.limits_at(stats, target_fpr / k)
        if self.budget_rule == "union" and k > 1:
            # Shares that allow a accounts per statistic, from the most to the equal share's: the first whose
            # union stays within the budget (the union only grows with the share).
            for allowed in range(int(math.floor(target_fpr * n)), int(math.floor(target_fpr / k * n)), -1):
                candidate = {s: _limit_allowing(stats[s], allowed) for s in self.statistics}
                if self.flagged(candidate, stats).sum() <= target_fpr * n:
                    limits = candidate
                    break
        flagged = self.flagged(limits, stats)
        return Calibration(detector=self.name, limits=limits,
                           threshold=stats.threshold if self.needs_threshold else None, target_fpr=target_fpr,
                           calibration_fpr=float(flagged.mean()), num_accounts=n, accounts=frozenset(stats.names))

    # --- flagging ---------------------------------------------------------------------------------

    def flagged(self, limits: Calibration | Mapping[str, float | None], stats: AccountStatistics | Mapping,
                skip: tuple[str, ...] = ()) -> np.ndarray:
        """[A] bool: accounts whose final statistics pass a limit (``skip``: statistics judged elsewhere).

        Every statistic only grows with more queries, so this is exactly what the online monitors flag.
        """
        if isinstance(limits, Calibration):
            if isinstance(stats, AccountStatistics):
                limits.check_unseen(stats.names)
            limits = limits.limits
        out = None
        for statistic in self.statistics:
            if statistic in skip:
                continue
            values = stats[statistic]
            if out is None:
                out = np.zeros(len(values), dtype=bool)
            limit = limits.get(statistic)
            if limit is not None:
                out |= values > limit
        if out is None:
            raise ValueError(f"detector {self.name!r}: every statistic was skipped")
        return out

    def monitors(self, calibration: Calibration, context: MonitorContext) -> list[tuple[StatisticSource, object]]:
        """(source, fresh online monitor with the calibrated limits) for each source it reads."""
        return [(source, source.monitor({s: calibration.limits.get(s) for s in source.statistics
                                         if s in self.statistics}, context)) for source in self.sources()]


def _limit_allowing(values: np.ndarray, allowed: int) -> float:
    """The limit that lets exactly the ``allowed`` largest values pass (``limit_for_fpr`` by count)."""
    ordered = np.sort(np.asarray(values, dtype=np.float64))[::-1]
    return float(ordered[min(allowed, len(ordered) - 1)])


DETECTORS: Registry[Detector] = Registry("detector")


def register_detector(cls: type[Detector]) -> type[Detector]:
    """Class decorator: register ``cls`` under ``cls.name`` in ``DETECTORS`` (its statistics must be known)."""
    if not getattr(cls, "statistics", ()):
        raise ValueError(f"detector {cls.__name__} compares no statistic")
    for statistic in cls.statistics:
        source_of(statistic)
    return DETECTORS.register(cls)


def get_detector(name: str) -> Detector:
    """The registered detector ``name``; an unknown name is an error listing the known ones."""
    return DETECTORS.get(name)()


def detector_names() -> tuple[str, ...]:
    return DETECTORS.names()


def calibrate(name: str, stats: AccountStatistics, target_fpr: float) -> Calibration:
    """Fit the registered detector ``name`` on benign calibration statistics and freeze it."""
    return get_detector(name).calibrate(stats, target_fpr)


def flagged_by_statistics(calibration: Calibration, stats: AccountStatistics) -> np.ndarray:
    """[A] bool: accounts the calibrated detector flags (one replay serves every detector)."""
    return get_detector(calibration.detector).flagged(calibration, stats)


def benign_frame(calibration: Calibration, stats: AccountStatistics):
    """One row per benign account: name, kind, detector, score (the main statistic), flagged."""
    import pandas as pd

    return pd.DataFrame({"name": stats.names, "kind": stats.kinds, "detector": calibration.detector,
                         "score": stats[get_detector(calibration.detector).main],
                         "flagged": flagged_by_statistics(calibration, stats)})


# --- the detectors -----------------------------------------------------------------------------


@register_detector
class SeatPairs(Detector):
    name, key = "seat-pairs", "seat_pairs"
    statistics = ("pairs",)


@register_detector
class Seat(Detector):
    name, key = "seat", "seat"
    statistics = ("pairs", "sessions", "follow")


@register_detector
class SeatPlusCaps(Detector):
    name, key = "seat+cap", "seat_plus_cap"
    statistics = ("pairs", "sessions", "follow", "volume", "rate")


@register_detector
class Caps(Detector):
    name, key = "caps", "caps"
    statistics = ("volume", "rate")
    judged_without_clock = False


@register_detector
class VolumeCap(Detector):
    name, key = "volume", "volume_cap"
    statistics = ("volume",)


@register_detector
class RateCap(Detector):
    name, key = "rate", "rate_cap"
    statistics = ("rate",)
    judged_without_clock = False


@register_detector
class Prada(Detector):
    name, key = "prada", "prada"
    statistics = ("prada",)


@register_detector
class Handoff(Detector):
    name, key = "handoff", "handoff"
    statistics = ("handoffs",)


@register_detector
class CapsHandoff(Detector):
    name, key = "caps+handoff", "caps_plus_handoff"
    statistics = ("volume", "rate", "handoffs")
    budget_rule = "union"
    judged_without_clock = False


@register_detector
class SeatCapsHandoff(Detector):
    name, key = "seat+cap+handoff", "seat_plus_cap_plus_handoff"
    statistics = ("pairs", "sessions", "follow", "volume", "rate", "handoffs")
    budget_rule = "union"


DEFAULT_DETECTORS = ("seat-pairs", "seat", "seat+cap", "caps", "volume", "rate", "prada")  # the SEAT stage's set
