"""Detection in the paper: exact binomial intervals of false-positive counts, accounts in words, the SEAT table."""

from __future__ import annotations

import math
from collections.abc import Callable

import pandas as pd

from recsec_lib.study.paper.model import Evidence, _count, _pct_number, interval_cell
from recsec_lib.study.report import meets

# ---- detection: exact binomial intervals of false-positive counts ----------------------------------------------


def _binomial_cdf(k: int, n: int, p: float) -> float:
    """P(X <= k), X ~ Binomial(n, p), summed in log space."""
    if p <= 0:
        return 1.0
    if p >= 1:
        return 1.0 if k >= n else 0.0
    total = 0.0
    for i in range(k + 1):
        total += math.exp(math.lgamma(n + 1) - math.lgamma(i + 1) - math.lgamma(n - i + 1)
                          + i * math.log(p) + (n - i) * math.log1p(-p))
    return min(1.0, total)


def clopper_pearson(flagged: int, accounts: int, level: float = 0.95) -> tuple[float, float]:
    """The exact (Clopper–Pearson) interval of a rate of ``flagged`` out of ``accounts``, by bisection."""
    if accounts <= 0 or not 0 <= flagged <= accounts:
        raise ValueError(f"need 0 <= flagged <= accounts and accounts > 0, got {flagged} of {accounts}")
    tail = (1.0 - level) / 2.0

    def solve(target: Callable[[float], float]) -> float:
        lo, hi = 0.0, 1.0
        for _ in range(60):
            mid = (lo + hi) / 2.0
            if target(mid) > 0:
                lo = mid
            else:
                hi = mid
        return (lo + hi) / 2.0

    low = 0.0 if flagged == 0 else solve(lambda p: tail - (1.0 - _binomial_cdf(flagged - 1, accounts, p)))
    high = 1.0 if flagged == accounts else solve(lambda p: _binomial_cdf(flagged, accounts, p) - tail)
    return low, high


DETECTOR_NAMES = {"seat+cap": "SEAT + caps", "seat": "SEAT", "seat-pairs": "SEAT (pairs only)", "caps": "caps",
                  "volume": "volume cap", "rate": "rate cap", "prada": "PRADA"}
SEAT_KEYS = {"seat+cap": "seat_plus_cap_accounts_needed", "seat": "seat_accounts_needed", "caps": "caps_accounts_needed",
             "volume": "volume_cap_accounts_needed", "rate": "rate_cap_accounts_needed",
             "prada": "prada_accounts_needed"}


def accounts_words(value: float) -> str:
    """"1 account", "4 accounts", "more accounts than the grid"."""
    if math.isinf(value):
        return "more accounts than the grid tried"
    return f"{_count(value)} account" + ("" if value == 1 else "s")


def _needed(value) -> float:
    """Accounts needed read back from JSON: None (beyond the grid) as infinity."""
    return math.inf if value is None else float(value)


def fpr_cell(rate: float | None, accounts: int | None) -> str:
    """"0.17 [0.05, 0.43]": a false-positive rate in % with its exact interval (or the point alone)."""
    if rate is None:
        return "—"
    if not accounts:
        return _pct_number(rate)
    flagged = int(round(rate * accounts))
    low, high = clopper_pearson(flagged, accounts)
    return interval_cell(rate, low, high)


def seat_detection_table(ev: Evidence) -> pd.DataFrame:
    """Each detector's cheapest zoo attacker, the accounts it needs, the ratio to the volume cap, benign FPR (%)."""
    seat = ev.stage("seat")
    per_attack = seat.get("accounts_needed_per_attack") or {}
    fpr = seat.get("false_positive_rate") or {}
    accounts = seat.get("benign_test_accounts")
    volume = ev.headline.get("volume_cap_accounts_needed")
    rows = []
    for detector, key in SEAT_KEYS.items():
        if key not in ev.headline:
            continue
        needed = _needed(ev.headline[key])
        attacks = {name.split("/")[0]: _needed(v) for name, v in per_attack.items() if name.endswith(f"/{detector}")}
        cheapest = [name for name, v in attacks.items() if v == needed]
        ratio = needed / volume if volume and math.isfinite(needed) else None
        rows.append({"detector": DETECTOR_NAMES[detector], "cheapest zoo attacker": ", ".join(cheapest) or "—",
                     "accounts needed": _count(needed), "× volume cap": "—" if ratio is None else f"{ratio:.2f}",
                     "benign accounts flagged, % [95% CI]": fpr_cell(fpr.get(detector), accounts)})
    return pd.DataFrame(rows)


def detection_holds_on_cost(headline: dict) -> bool:
    """The best detector's worst case against an attacker who chooses meets both cost targets of issue 24 (over the
    volume cap's worst case and over the caps'), as the targets table judges them."""
    return (meets("detect_best_cost_increase_over_volume_cap", headline)
            and meets("detect_best_cost_increase_over_caps", headline))
