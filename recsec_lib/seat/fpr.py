"""False-positive rates with exact binomial (Clopper–Pearson) intervals, and how many accounts can show one.

A benign account is flagged or not; k flagged of n is a binomial count, and
its exact two-sided 95% interval is Clopper–Pearson's: the lower end is the p
with P(X >= k | n, p) = 2.5% (0 when k = 0), the upper end the p with
P(X <= k | n, p) = 2.5% (1 when k = n). With no account flagged the upper end
is 1 - 0.025^(1/n), so a held-out set "shows FPR <= r" only when it has at
least ``accounts_to_show(r)`` accounts: 3,688 for 0.1%, 368 for 1%
(200 accounts cannot get below 1.83%). The bounds are found by bisection on
the binomial distribution function (no SciPy needed).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class RateInterval:
    flagged: int
    accounts: int
    rate: float
    low: float
    high: float
    level: float = 0.95


def _log_choose(k: int, n: int) -> np.ndarray:
    """[k + 1] log C(n, j) for j = 0..k."""
    log_fact = np.r_[0.0, np.cumsum(np.log(np.arange(1, n + 1, dtype=np.float64)))]  # [n + 1] log j!
    j = np.arange(k + 1)
    return log_fact[n] - log_fact[j] - log_fact[n - j]


def _log_cdf(log_choose: np.ndarray, n: int, p: float) -> float:
    """log P(X <= k) for X ~ Binomial(n, p), 0 < p < 1, k = len(log_choose) - 1."""
    j = np.arange(len(log_choose), dtype=np.float64)
    logs = log_choose + j * math.log(p) + (n - j) * math.log1p(-p)
    top = logs.max()
    return float(top + np.log(np.exp(logs - top).sum()))


def _solve(target_log: float, k: int, n: int, lower_tail: bool) -> float:
    """p with log P(X <= k) = target (lower_tail) or log P(X >= k) = target (bisection; both monotone in p)."""
    log_choose = _log_choose(k if lower_tail else k - 1, n)
    low, high = 0.0, 1.0
    for _ in range(80):
        middle = (low + high) / 2
        if lower_tail:  # P(X <= k) falls as p grows
            value = _log_cdf(log_choose, n, middle)
            low, high = (middle, high) if value > target_log else (low, middle)
        else:  # P(X >= k) = 1 - P(X <= k - 1) rises as p grows
            value = math.log(max(1e-300, -math.expm1(_log_cdf(log_choose, n, middle))))
            low, high = (low, middle) if value > target_log else (middle, high)
    return (low + high) / 2


def clopper_pearson(flagged: int, accounts: int, level: float = 0.95) -> RateInterval:
    """The exact binomial interval of ``flagged`` / ``accounts`` (see the module docstring)."""
    if accounts < 1 or not 0 <= flagged <= accounts:
        raise ValueError(f"clopper_pearson needs 0 <= flagged <= accounts and accounts >= 1, "
                         f"got {flagged} of {accounts}")
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    tail = math.log((1 - level) / 2)
    low = 0.0 if flagged == 0 else _solve(tail, flagged, accounts, lower_tail=False)
    high = 1.0 if flagged == accounts else _solve(tail, flagged, accounts, lower_tail=True)
    return RateInterval(int(flagged), int(accounts), flagged / accounts, low, high, level)


def accounts_to_show(max_rate: float, level: float = 0.95) -> int:
    """Fewest accounts whose interval, with none flagged, lies at or below ``max_rate``."""
    if not 0 < max_rate < 1:
        raise ValueError(f"max_rate must be in (0, 1), got {max_rate}")
    n = max(1, int(math.floor(math.log((1 - level) / 2) / math.log1p(-max_rate))))
    while 1 - ((1 - level) / 2) ** (1 / n) > max_rate:
        n += 1
    return n


def rate_table(frame: pd.DataFrame, by: tuple[str, ...] = ("detector", "kind"), level: float = 0.95) -> pd.DataFrame:
    """Per group of ``frame`` (rows with a bool ``flagged`` column; groups ``by``, plus kind "all" per
    detector): accounts, flagged, rate and its Clopper–Pearson interval (low, high)."""
    rows = []
    groups = [(keys if isinstance(keys, tuple) else (keys,), part) for keys, part in frame.groupby(list(by))]
    if "kind" in by and len(by) > 1:
        outer = [b for b in by if b != "kind"]
        for keys, part in frame.groupby(outer):
            keys = keys if isinstance(keys, tuple) else (keys,)
            named = dict(zip(outer, keys), kind="all")
            groups.append((tuple(named[b] for b in by), part))
    for keys, part in groups:
        interval = clopper_pearson(int(part["flagged"].sum()), len(part), level)
        rows.append({**dict(zip(by, keys)), "accounts": interval.accounts, "flagged": interval.flagged,
                     "rate": interval.rate, "low": interval.low, "high": interval.high})
    return pd.DataFrame(rows)
