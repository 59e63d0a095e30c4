"""Is the attack budget-bound? Whether a surrogate still gets better as the attacked target gets better.

A defense's fall is only readable where the attack is not capped by its own
budget: if every target from NDCG@10 .124 up yields a surrogate of about .10
(the cpu attack of 500 × 100 queries on early checkpoints of the same SASRec
training, issue 28), then any defense that keeps the target above .124 shows no
fall whatever it does, and one that pushes it below shows a fall whatever it
does. The check: attack targets of different quality (the undefended target
and earlier snapshots of its training) with the same attack at each budget,
and ask whether the surrogate of the best target is above that of a clearly
weaker one.

Rule (``budget_check``): the top target is the one of highest NDCG@10; the
weaker one is the best target whose NDCG@10 is at least ``min_target_gap``
(relative, default 10%) below it. The surrogate's rise = its NDCG@10 on the
top target / on the weaker one − 1, with a paired-user, seed-resampled 95%
interval; the target's rise likewise (a point figure). The surrogate is
budget-bound when either

* the lower end of its rise is not above 0 (no evidence that it still rises), or
* the upper end of its rise is below ``min_elasticity`` (default 0.5) times the
  target's rise: it keeps less than half of the target's gain. An attack that
  is not capped copies a better model of its own architecture into a
  proportionally better surrogate (on ML-1M from SASRec epoch 3 to 4, +14.7%
  of target NDCG@10 gave +12.2% of surrogate NDCG@10); one that follows at
  less than half that pace is mostly measuring its own ceiling.

With one attack seed per target the interval holds the users' variation only,
not the seeds' (``BudgetCheck.seeds`` says so in its words). The verdict uses
the smallest budget at which the surrogate of the undefended target is NOT
budget-bound (``verdict_budget``); when every budget is bound, the largest,
said to be capped.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from recsec_lib.recommend.intervals import Interval, bootstrap_interval

DEFAULT_MIN_TARGET_GAP = 0.10
DEFAULT_MIN_ELASTICITY = 0.5


@dataclass(frozen=True)
class AttackedTarget:
    """One target attacked at one budget: its NDCG@10 and its surrogates' NDCG@10 per attack seed and test user."""

    label: str  # e.g. "SASRec epoch 4"
    target_ndcg10: float  # the target's (served) NDCG@10
    surrogate: np.ndarray  # [S, U] or [U] the surrogate's NDCG@10 per attack seed and test user


@dataclass(frozen=True)
class BudgetCheck:
    budget: int  # the attack budget (e.g. sequences, or queries)
    top: str
    weaker: str
    target_rise: float  # top target NDCG@10 / weaker target's − 1
    surrogate_rise: Interval  # top surrogate NDCG@10 / weaker surrogate's − 1
    bound: bool
    min_elasticity: float = DEFAULT_MIN_ELASTICITY
    seeds: int = 1  # the fewest attack seeds of the two targets compared

    def describe(self) -> str:
        rise = self.surrogate_rise
        if not self.bound:
            state = "not budget-bound: the surrogate still rises with the target"
        elif not rise.low > 0:
            state = "budget-bound: no evidence that the surrogate still rises with the target"
        else:
            state = (f"budget-bound: the surrogate keeps less than {self.min_elasticity:.0%} of the target's gain")
        seeds = " (1 attack seed: the interval holds the users' variation only)" if self.seeds < 2 else ""
        return (f"budget {self.budget}: {self.top} is {self.target_rise:+.1%} above {self.weaker} in NDCG@10, its "
                f"surrogate {rise.point:+.1%} [{rise.low:+.1%}, {rise.high:+.1%}]{seeds}: {state}")


def budget_check(budget: int, targets: Sequence[AttackedTarget], min_target_gap: float = DEFAULT_MIN_TARGET_GAP,
                 min_elasticity: float = DEFAULT_MIN_ELASTICITY, replicates: int = 1000, seed: int = 0) -> BudgetCheck:
    """Whether the surrogate is budget-bound at ``budget``; see the module docstring for the rule."""
    if not (math.isfinite(min_target_gap) and 0 < min_target_gap < 1):
        raise ValueError(f"parameter 'min_target_gap' must be in (0, 1), got {min_target_gap}")
    if not (math.isfinite(min_elasticity) and 0 <= min_elasticity <= 1):
        raise ValueError(f"parameter 'min_elasticity' must be in [0, 1], got {min_elasticity}")
    if len(targets) < 2:
        raise ValueError(f"budget {budget}: needs targets of at least 2 qualities, got {len(targets)}")
    top = max(targets, key=lambda t: t.target_ndcg10)
    if top.target_ndcg10 <= 0:
        raise ValueError(f"budget {budget}: every target has NDCG@10 0")
    weaker_ones = [t for t in targets if t.target_ndcg10 <= top.target_ndcg10 * (1 - min_target_gap)]
    if not weaker_ones:
        raise ValueError(f"budget {budget}: no target is {min_target_gap:.0%} or more below {top.label!r} "
                         f"(NDCG@10 {top.target_ndcg10:.4f}); add a weaker one")
    weaker = max(weaker_ones, key=lambda t: t.target_ndcg10)
    top_s, weak_s = np.atleast_2d(np.asarray(top.surrogate, float)), np.atleast_2d(np.asarray(weaker.surrogate, float))
    if top_s.shape[1] != weak_s.shape[1]:
        raise ValueError(f"budget {budget}: {top.label!r} and {weaker.label!r} were scored on different users "
                         f"({top_s.shape[1]} and {weak_s.shape[1]})")
    ratio = bootstrap_interval(top_s, weak_s, "ratio", replicates, seed=seed)
    rise = Interval(ratio.point - 1.0, ratio.low - 1.0, ratio.high - 1.0, ratio.level)
    target_rise = top.target_ndcg10 / weaker.target_ndcg10 - 1.0 if weaker.target_ndcg10 > 0 else math.inf
    bound = not rise.low > 0 or rise.high < min_elasticity * target_rise
    return BudgetCheck(budget=budget, top=top.label, weaker=weaker.label, target_rise=target_rise,
                       surrogate_rise=rise, bound=bool(bound), min_elasticity=min_elasticity,
                       seeds=min(len(top_s), len(weak_s)))


def verdict_budget(checks: Mapping[int, BudgetCheck]) -> tuple[int, str]:
    """(the budget the verdict uses, why): the smallest budget that is not budget-bound, else the largest (capped)."""
    if not checks:
        raise ValueError("parameter 'checks' is empty: no budget was measured")
    free = sorted(b for b, check in checks.items() if not check.bound)
    if free:
        return free[0], f"budget {free[0]} is the smallest at which the surrogate still rises with the target"
    largest = max(checks)
    return largest, (f"the surrogate is budget-bound at every budget measured ({', '.join(map(str, sorted(checks)))}); "
                     f"figures at {largest} say where the attack's ceiling sits more than what the defense does")
