"""GRO's trade-off curve judged point by point: against the λ = 0 control, a utility-matched null, and training noise.

A point of the curve is one GRO target (a zero-gradient rule, a λ, a number of
fine-tuning epochs, the last epoch kept). Every figure here comes from
per-user arrays, so that each carries a bootstrap interval over the users and
the seeds it was measured on (``recommend.intervals``):

* served NDCG@10 per user ([U], or [T, U] for T training seeds) on the
  validation and the test split, the user's history filtered, as served;
* the surrogate's NDCG@10 per attack seed and user ([S, U]).

What is reported for a point (``judge_point``):

* retention — served NDCG@10 / the λ = 0 control's (the control went through
  the same fine-tuning loop without the swap loss, so fine-tuning's own effect
  cancels; None's figures are not the reference);
* fall vs control — 1 − surrogate NDCG@10 / the control's surrogate's;
* fall vs null — 1 − surrogate NDCG@10 / the surrogate's of the point's
  utility-matched null (``gro.null``); the comparison that says whether the
  swap loss did anything a merely weaker model would not;
* the extraction ratio — surrogate NDCG@10 / served NDCG@10 of the same arm
  (``extraction_ratio``): how much of what the box serves the attacker gets.
  A defense that lowers it makes its box worse teaching material; one that
  raises it (GRO at λ = 1 in the published cpu run: .61–.66 against the
  control's .52) is copied more faithfully than an undefended box;
* the training-noise floor (``noise_floor``): the fall of the surrogate's
  NDCG@10 between λ = 0 controls that differ only in their training seed.

"protects" only when all of these hold: the point has a null within the
matching tolerance, the whole 95% interval of its fall vs null is above 0, and
the interval's lower end is also above the noise floor (which needs >= 2
control seeds). Anything else gets the name of the condition that failed. A
rule whose served top-10 lists carry one item far more often than the None
arm's (by ``promotion_rise`` or more of the lists) is said to promote it,
whatever its protection.

Intervals: users are resampled with one draw shared by the two arms compared
(paired); the attack seeds (and training seeds, where an arm has several) of
each arm are resampled separately. They do not include the variance of
training a target again with another seed, except through the noise floor.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from recsec_lib.gro.null import NullMatch
from recsec_lib.recommend.intervals import Interval, bootstrap_interval

DEFAULT_MIN_RETENTION = 0.95  # the utility floor (validation retention against the control) of the best point
DEFAULT_PROMOTION_RISE = 0.05  # a rise of one item's share of served top-10 lists that counts as promoting it

STATUSES = ("protects", "within training noise", "no protection beyond the null", "copied better than its null",
            "no null", "training noise not measured")


def _per_user(values, name: str) -> np.ndarray:
    """[R, U] float array (R seeds) from [U] or [R, U]; NDCG-like values in [0, 1]; raises naming ``name``."""
    array = np.asarray(values, dtype=np.float64)
    if array.ndim == 1:
        array = array[None, :]
    if array.ndim != 2 or array.shape[0] == 0 or array.shape[1] == 0:
        raise ValueError(f"{name} must be per-user values [users] or [seeds, users], got shape {np.shape(values)}")
    if not np.isfinite(array).all() or array.min() < 0 or array.max() > 1:
        raise ValueError(f"{name} must hold finite values in [0, 1] (NDCG@10 per user)")
    return array


@dataclass(frozen=True)
class ArmFigures:
    """Per-user figures of one arm: a GRO point, the λ = 0 control, a null, an undefended target."""

    label: str  # e.g. "GRO keep λ=1"
    served_valid: np.ndarray  # [U_v] or [T, U_v] served NDCG@10 per validation user (per training seed)
    served_test: np.ndarray  # [U] or [T, U] served NDCG@10 per test user
    surrogate_test: np.ndarray  # [S, U] the surrogate's NDCG@10 per attack seed and test user
    surrogate_valid: np.ndarray | None = None  # [S, U_v] the same on validation users (to choose the best point)
    rule: str | None = None  # GRO's zero-gradient rule; None for other arms
    lam: float | None = None  # GRO's λ; None for other arms
    promoted_item: int | None = None  # the item whose share of served top-10 lists rose most over None's
    promoted_share: float = 0.0  # its share of the served top-10 lists (test users)
    promoted_share_none: float = 0.0  # its share in the None arm's lists

    def __post_init__(self) -> None:
        name = f"arm {self.label!r}:"
        for attribute in ("served_valid", "served_test", "surrogate_test", "surrogate_valid"):
            value = getattr(self, attribute)
            if value is not None:
                object.__setattr__(self, attribute, _per_user(value, f"{name} {attribute}"))
        if self.surrogate_test.shape[1] != self.served_test.shape[1]:
            raise ValueError(f"{name} surrogate_test has {self.surrogate_test.shape[1]} users, served_test "
                             f"{self.served_test.shape[1]}")
        if self.surrogate_valid is not None and self.surrogate_valid.shape[1] != self.served_valid.shape[1]:
            raise ValueError(f"{name} surrogate_valid has {self.surrogate_valid.shape[1]} users, served_valid "
                             f"{self.served_valid.shape[1]}")
        for attribute in ("promoted_share", "promoted_share_none"):
            if not 0.0 <= getattr(self, attribute) <= 1.0:
                raise ValueError(f"{name} {attribute} must be a share in [0, 1], got {getattr(self, attribute)}")

    @property
    def valid_ndcg10(self) -> float:
        """Served validation NDCG@10 (mean over seeds and users): the figure the null is matched on."""
        return float(self.served_valid.mean())

    @property
    def promotion_rise(self) -> float:
        return self.promoted_share - self.promoted_share_none


def _same_users(a: np.ndarray, b: np.ndarray, what: str) -> None:
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"{what}: the arms were measured on different users ({a.shape[1]} and {b.shape[1]})")


def extraction_ratio(arm: ArmFigures, replicates: int = 1000, seed: int = 0) -> Interval:
    """Surrogate NDCG@10 / served NDCG@10 of ``arm`` (test users), with its paired-user, seed-resampled interval."""
    return bootstrap_interval(arm.surrogate_test, arm.served_test, "ratio", replicates, seed=seed)


def surrogate_fall(arm: ArmFigures, reference: ArmFigures, replicates: int = 1000, seed: int = 0) -> Interval:
    """1 − the arm's surrogate NDCG@10 / the reference's (test users), with its interval."""
    _same_users(arm.surrogate_test, reference.surrogate_test, f"fall of {arm.label!r} vs {reference.label!r}")
    return bootstrap_interval(arm.surrogate_test, reference.surrogate_test, "drop", replicates, seed=seed)


def retention(arm: ArmFigures, reference: ArmFigures, replicates: int = 1000, seed: int = 0) -> Interval:
    """Served NDCG@10 of the arm / the reference's (test users), with its interval."""
    _same_users(arm.served_test, reference.served_test, f"retention of {arm.label!r} vs {reference.label!r}")
    return bootstrap_interval(arm.served_test, reference.served_test, "ratio", replicates, seed=seed)


def _mean_ratio(a: np.ndarray, b: np.ndarray) -> float:
    return float(a.mean() / b.mean()) if b.mean() > 0 else math.nan


@dataclass(frozen=True)
class NoiseFloor:
    """The largest fall of the surrogate's NDCG@10 between λ = 0 controls that differ only in their training seed."""

    point: float  # 1 − (lowest control's surrogate NDCG@10) / (highest control's)
    interval: Interval  # that fall with its interval over users and attack seeds
    seeds: int  # training seeds of the control

    def describe(self) -> str:
        return (f"training noise: λ = 0 controls of {self.seeds} training seeds differ by a surrogate fall of "
                f"{self.point:.1%} [{self.interval.low:.1%}, {self.interval.high:.1%}]")


def noise_floor(controls: Sequence[ArmFigures], replicates: int = 1000, seed: int = 0) -> NoiseFloor | None:
    """The fall that fine-tuning alone produces: between the controls (one per training seed) of the lowest and the
    highest surrogate NDCG@10. None with fewer than 2 controls (the floor is then unknown, not 0)."""
    if len(controls) < 2:
        return None
    for a, b in itertools.combinations(controls, 2):
        _same_users(a.surrogate_test, b.surrogate_test, f"controls {a.label!r} and {b.label!r}")
    low = min(controls, key=lambda c: c.surrogate_test.mean())
    high = max(controls, key=lambda c: c.surrogate_test.mean())
    interval = bootstrap_interval(low.surrogate_test, high.surrogate_test, "drop", replicates, seed=seed)
    return NoiseFloor(point=interval.point, interval=interval, seeds=len(controls))


@dataclass(frozen=True)
class PointVerdict:
    """Everything said about one GRO point, with the figures beside each other."""

    label: str
    rule: str | None
    lam: float | None
    retention_valid: float  # validation, against the control (chooses the best point)
    retention_test: Interval  # test, against the control
    fall_vs_control: Interval  # the surrogate's NDCG@10, test
    fall_vs_null: Interval | None  # None without a matched null
    fall_vs_null_valid: float  # validation point figure (chooses the best point); nan without a null
    extraction_ratio: Interval
    null_extraction_ratio: Interval | None
    null: NullMatch
    floor: NoiseFloor | None
    status: str  # one of STATUSES
    promotes: bool
    promoted_item: int | None
    promoted_share: float
    promoted_share_none: float
    words: str = field(default="")

    @property
    def protects(self) -> bool:
        return self.status == "protects"


def _interval_words(interval: Interval) -> str:
    return f"{interval.point:.1%} [{interval.low:.1%}, {interval.high:.1%}]"


def _status(match: NullMatch, fall_vs_null: Interval | None, floor: NoiseFloor | None) -> str:
    if fall_vs_null is None or not match.matched:
        return "no null"
    if fall_vs_null.high < 0:
        return "copied better than its null"
    if not fall_vs_null.low > 0:
        return "no protection beyond the null"
    if floor is None:
        return "training noise not measured"
    if not fall_vs_null.low > floor.point:
        return "within training noise"
    return "protects"


def promotion_words(arm: ArmFigures, threshold: float = DEFAULT_PROMOTION_RISE) -> str:
    """"promotes item X (in a% of served top-10 lists; b% under None)" when the rise is >= threshold, else ""."""
    if arm.promoted_item is None or arm.promotion_rise < threshold:
        return ""
    return (f"promotes item {arm.promoted_item} (in {arm.promoted_share:.1%} of served top-10 lists; "
            f"{arm.promoted_share_none:.1%} without defense)")


def judge_point(point: ArmFigures, control: ArmFigures, null: ArmFigures | None, match: NullMatch,
                floor: NoiseFloor | None, promotion_rise: float = DEFAULT_PROMOTION_RISE,
                replicates: int = 1000, seed: int = 0) -> PointVerdict:
    """The verdict of one GRO point (see the module docstring); ``null`` is the attacked model ``match`` chose
    (None when ``match`` found none)."""
    if abs(match.point_valid_ndcg10 - point.valid_ndcg10) > 1e-9:
        raise ValueError(f"point {point.label!r}: the match was made for validation NDCG@10 "
                         f"{match.point_valid_ndcg10:.4f}, the point serves {point.valid_ndcg10:.4f}")
    if match.matched and null is None:
        raise ValueError(f"point {point.label!r}: the match chose {match.candidate.label!r} but no null figures "
                         "were given")
    usable_null = null if match.matched else None
    fall_vs_null = surrogate_fall(point, usable_null, replicates, seed) if usable_null is not None else None
    fall_vs_null_valid = math.nan
    if usable_null is not None and point.surrogate_valid is not None and usable_null.surrogate_valid is not None:
        fall_vs_null_valid = 1.0 - _mean_ratio(point.surrogate_valid, usable_null.surrogate_valid)
    status = _status(match, fall_vs_null, floor)
    verdict = PointVerdict(
        label=point.label, rule=point.rule, lam=point.lam,
        retention_valid=_mean_ratio(point.served_valid, control.served_valid),
        retention_test=retention(point, control, replicates, seed),
        fall_vs_control=surrogate_fall(point, control, replicates, seed),
        fall_vs_null=fall_vs_null, fall_vs_null_valid=fall_vs_null_valid,
        extraction_ratio=extraction_ratio(point, replicates, seed),
        null_extraction_ratio=extraction_ratio(usable_null, replicates, seed) if usable_null is not None else None,
        null=match, floor=floor, status=status, promotes=bool(promotion_words(point, promotion_rise)),
        promoted_item=point.promoted_item, promoted_share=point.promoted_share,
        promoted_share_none=point.promoted_share_none)
    return _with_words(verdict, promotion_words(point, promotion_rise), control.label)


def _with_words(v: PointVerdict, promotes: str, control_label: str) -> PointVerdict:
    name = v.label if v.rule is None or "λ" in v.label else f"{v.label} (rule {v.rule}, λ = {v.lam:g})"
    parts = [f"{name}: keeps {_interval_words(v.retention_test)} of the {control_label}'s NDCG@10 "
             f"(validation {v.retention_valid:.1%}); its surrogate's NDCG@10 falls {_interval_words(v.fall_vs_control)} "
             f"against the {control_label}'s"]
    if v.fall_vs_null is not None:
        parts.append(f" and {_interval_words(v.fall_vs_null)} against its null of the same utility, "
                     f"{v.null.candidate.label} ({v.null.gap:+.1%} validation NDCG@10)")
    else:
        parts.append(f"; {v.null.describe()}")
    parts.append(f"; extraction ratio {_interval_words(v.extraction_ratio)}"
                 + (f" (null's {_interval_words(v.null_extraction_ratio)})" if v.null_extraction_ratio else ""))
    parts.append(f"; {v.floor.describe()}" if v.floor is not None else "; training noise not measured "
                 "(needs the λ = 0 control with >= 2 training seeds)")
    parts.append(f": {v.status.upper() if v.protects else v.status}")
    if promotes:
        parts.append(f"; {promotes}")
    return PointVerdict(**{**v.__dict__, "words": "".join(parts) + "."})


@dataclass(frozen=True)
class BestPoint:
    """The point a headline reports: the largest validation fall vs null among the points keeping the utility
    floor on validation (chosen on validation only), or None with the reason."""

    verdict: PointVerdict | None
    reason: str  # why there is no best point ("" when there is one)


def best_point(verdicts: Sequence[PointVerdict], min_retention: float = DEFAULT_MIN_RETENTION) -> BestPoint:
    """Among GRO points (λ > 0) with validation retention >= ``min_retention`` and a null, the one with the largest
    validation fall of the surrogate's NDCG@10 against its null. Validation figures only: test never chooses."""
    gro = [v for v in verdicts if v.lam is not None and v.lam > 0]
    if not gro:
        return BestPoint(None, "no GRO point (λ > 0) was measured")
    eligible = [v for v in gro if v.retention_valid >= min_retention]
    if not eligible:
        top = max(gro, key=lambda v: v.retention_valid)
        return BestPoint(None, f"no GRO point keeps validation retention >= {min_retention:.0%} of the λ = 0 "
                               f"control (the highest: {top.label} at {top.retention_valid:.1%})")
    matched = [v for v in eligible if v.fall_vs_null is not None]
    if not matched:
        return BestPoint(None, f"no GRO point keeping validation retention >= {min_retention:.0%} has a "
                               f"utility-matched null ({'; '.join(f'{v.label}: {v.null.describe()}' for v in eligible)})")
    missing = [v.label for v in matched if math.isnan(v.fall_vs_null_valid)]
    if missing:
        raise ValueError(f"points {missing} lack validation surrogate figures (surrogate_valid of the point and of "
                         "its null): the best point is chosen on validation only")
    return BestPoint(max(matched, key=lambda v: v.fall_vs_null_valid), "")


def protective_summary(verdicts: Sequence[PointVerdict], min_retention: float = DEFAULT_MIN_RETENTION) -> str:
    """One line: the protective λ (test verdict "protects" and validation retention >= the floor), or "no
    protective λ" with the condition each candidate failed."""
    gro = [v for v in verdicts if v.lam is not None and v.lam > 0]
    if not gro:
        return "no protective λ: no GRO point (λ > 0) was measured"
    kept = [v for v in gro if v.retention_valid >= min_retention]
    good = [v for v in kept if v.protects]
    if good:
        return "protective λ: " + "; ".join(f"{v.label} (validation retention {v.retention_valid:.1%}, fall vs null "
                                            f"{_interval_words(v.fall_vs_null)})" for v in good)
    if not kept:
        reasons = [f"no GRO point keeps validation retention >= {min_retention:.0%} of the λ = 0 control"]
        reasons += [f"{v.label} protects but keeps only {v.retention_valid:.1%} (< {min_retention:.0%})"
                    for v in gro if v.protects]
        return "no protective λ: " + "; ".join(reasons)
    # Every point, in the curve's order, with the condition it failed (a point may fail both).
    return "no protective λ: " + "; ".join(
        f"{v.label} keeps {v.retention_valid:.1%} but: {v.status}" if v.retention_valid >= min_retention
        else f"{v.label} protects but keeps only {v.retention_valid:.1%} (< {min_retention:.0%})" if v.protects
        else f"{v.label} keeps only {v.retention_valid:.1%} (< {min_retention:.0%}) and: {v.status}" for v in gro)


def curve_headline(best: BestPoint, control: ArmFigures, replicates: int = 1000, seed: int = 0) -> dict:
    """The issue's headline keys: gro_best_point_retention, gro_best_point_fall_vs_null(_low) or
    gro_no_point_reason; gro_extraction_ratio_control and gro_extraction_ratio_best (when there is a best point)."""
    out: dict[str, object] = {"gro_extraction_ratio_control": round(extraction_ratio(control, replicates, seed).point, 4)}
    if best.verdict is None:
        out["gro_no_point_reason"] = best.reason
        return out
    v = best.verdict
    out.update({"gro_best_point": v.label, "gro_best_point_retention": round(v.retention_test.point, 4),
                "gro_best_point_fall_vs_null": round(v.fall_vs_null.point, 4),
                "gro_best_point_fall_vs_null_low": round(v.fall_vs_null.low, 4),
                "gro_best_point_status": v.status,
                "gro_extraction_ratio_best": round(v.extraction_ratio.point, 4)})
    return out
