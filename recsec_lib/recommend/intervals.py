"""95% intervals for figures that vary with the test users AND with the attack's seed.

A defense's protection is read from surrogates, and a surrogate depends on its
attack seed (which queries were sent, how the surrogate was initialised and
shuffled). One seed and a point figure cannot tell a real fall of the
surrogate's NDCG@10 from a lucky draw, so every protection figure here is a
mean over S seeds and U test users, with an interval from a two-level
bootstrap:

* users: U test users drawn with replacement (the same draw for the arm and for
  its reference, so a paired comparison stays paired);
* seeds: S seeds drawn with replacement, separately for the arm and its
  reference (they are independent attacks).

Each replicate recomputes the statistic on the resampled means; the interval is
the 2.5% and 97.5% quantiles. A fall whose interval contains 0 is "no effect".
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

STATISTICS = ("mean", "ratio", "drop")  # mean(arm); mean(arm) / mean(ref); 1 - mean(arm) / mean(ref)


@dataclass(frozen=True)
class Interval:
    """A point figure and its bootstrap interval."""

    point: float
    low: float
    high: float
    level: float = 0.95

    @property
    def excludes_zero(self) -> bool:
        """True when the whole interval is on one side of 0 (an effect, not noise)."""
        return self.low > 0 or self.high < 0

    def as_dict(self, prefix: str) -> dict[str, float]:
        """{prefix: point, prefix_low: low, prefix_high: high} for a table row."""
        return {prefix: self.point, f"{prefix}_low": self.low, f"{prefix}_high": self.high}


def _as_seed_user_matrix(values, name: str) -> np.ndarray:
    """[S, U] float array from one user vector [U] (one seed) or a matrix [S, U]; raises naming ``name``."""
    array = np.asarray(values, dtype=np.float64)
    if array.ndim == 1:
        array = array[None, :]
    if array.ndim != 2 or array.shape[0] == 0 or array.shape[1] == 0:
        raise ValueError(f"parameter {name!r} must be [seeds, users] (or [users]), got shape {np.shape(values)}")
    return array


def _statistic(kind: str, arm_mean: np.ndarray, reference_mean: np.ndarray | None) -> np.ndarray:
    if kind == "mean":
        return arm_mean
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(reference_mean > 0, arm_mean / reference_mean, np.nan)
    return ratio if kind == "ratio" else 1.0 - ratio


def bootstrap_interval(
    arm,  # [S_a, U] per-seed, per-user values of the arm (e.g. the surrogate's NDCG@10 per test user)
    reference=None,  # [S_r, U] the same figure of the arm it is compared with (same users, same order)
    kind: str = "mean",  # mean | ratio | drop (see STATISTICS)
    replicates: int = 1000,
    level: float = 0.95,
    seed: int = 0,
) -> Interval:
    """The statistic on the seed-and-user means, with its two-level bootstrap interval.

    The point figure uses every seed and user: mean(arm) for "mean",
    mean(arm) / mean(reference) for "ratio" and 1 − that for "drop".
    """
    if kind not in STATISTICS:
        raise ValueError(f"parameter 'kind' must be one of {STATISTICS}, got {kind!r}")
    if replicates <= 0:
        raise ValueError(f"parameter 'replicates' must be positive, got {replicates}")
    if not 0.0 < level < 1.0:
        raise ValueError(f"parameter 'level' must be in (0, 1), got {level}")
    arm = _as_seed_user_matrix(arm, "arm")
    ref = None
    if kind != "mean":
        if reference is None:
            raise ValueError(f"parameter 'reference' is needed for kind {kind!r}")
        ref = _as_seed_user_matrix(reference, "reference")
        if ref.shape[1] != arm.shape[1]:
            raise ValueError(f"parameter 'reference' has {ref.shape[1]} users, 'arm' has {arm.shape[1]}")
    users = arm.shape[1]
    point = float(_statistic(kind, np.array([arm.mean()]), None if ref is None else np.array([ref.mean()]))[0])

    rng = np.random.default_rng(seed)
    # Users: one multinomial draw per replicate, shared by arm and reference (a paired bootstrap).
    weights = rng.multinomial(users, np.full(users, 1.0 / users), size=replicates) / users  # [B, U]
    arm_seed_means = weights @ arm.T  # [B, S_a] each seed's mean over the resampled users
    arm_mean = _resampled_seed_mean(arm_seed_means, rng)  # [B]
    ref_mean = None if ref is None else _resampled_seed_mean(weights @ ref.T, rng)  # [B]
    values = _statistic(kind, arm_mean, ref_mean)  # [B]
    values = values[np.isfinite(values)]
    if not len(values):
        return Interval(point, float("nan"), float("nan"), level)
    tail = (1.0 - level) / 2.0
    low, high = np.quantile(values, [tail, 1.0 - tail])
    return Interval(point, float(low), float(high), level)


def _resampled_seed_mean(seed_means: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """[B, S] per-seed means -> [B] the mean over S seeds drawn with replacement in each replicate."""
    replicates, seeds = seed_means.shape
    picks = rng.integers(0, seeds, size=(replicates, seeds))  # [B, S]
    return np.take_along_axis(seed_means, picks, axis=1).mean(axis=1)
