"""Judging detectors against the attacker zoo: accounts needed, the fidelity they buy, the worst case.

For each zoo attacker (``recsec_lib.attack.generators``) and each calibrated
detector: the smallest number of accounts over which the attacker's traffic
can be split (contiguous chunks) with no account flagged, and the Agr@10 of
the surrogate the attacker trains on that same traffic (splitting changes
which account sends a query, not what the attacker collects). A detector is
judged by the attacker who knows it, so every headline figure is the
*minimum over all attackers*: ``worst_case_headline``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd

from recsec_lib.attack.generators import Collected
from recsec_lib.seat.baselines import rate_cap_accounts_needed
from recsec_lib.seat.calibration import Calibration, PradaOptions, SeatOptions
from recsec_lib.seat.detectors import DETECTORS, get_detector
from recsec_lib.seat.evaluation import ACCOUNT_GRID, accounts_sweep, smallest_clean_split
from recsec_lib.seat.replay import TrafficFeatures
from recsec_lib.seat.statistics import MonitorContext, source_of


class SplitStatistics:
    """The per-account statistics of one attack split over N accounts, computed once per N and source.

    Every statistic only grows as an account sends more, so an account is
    flagged by a detector exactly when its final statistic passes the limit:
    one replay per source with no limits answers every detector at that N.
    Statistics that need a clock are not computed here (attack traffic has
    none: ``accounts_needed`` judges the rate cap in closed form).
    """

    def __init__(self, attack: Collected, features: TrafficFeatures, threshold: float, seat: SeatOptions,
                 num_items: int) -> None:
        self.attack, self.features, self.threshold = attack, features, threshold
        self.seat, self.num_items = seat, num_items
        self.context = MonitorContext(threshold, features.seat.shape[1], num_items, seat)
        self.cache: dict[tuple[int, bool, str], dict[str, np.ndarray]] = {}

    def interleaves(self) -> bool:
        """True when the attack's walks are interleaved (then splitting by walk is an attacker's option too)."""
        traffic = self.attack.traffic
        return len(traffic.sources) < traffic.num_queries and bool(np.any(np.diff(traffic.source) < 0))

    def split(self, n: int, by_source: bool = False):
        """The attack over n accounts: contiguous chunks of queries, or (``by_source``) blocks of walks."""
        traffic = self.attack.traffic
        return (traffic.split_by_source(n, f"{self.attack.name}/w{n}") if by_source
                else traffic.split_contiguous(n, f"{self.attack.name}/n{n}"))

    def at(self, n: int, by_source: bool = False, statistics: tuple[str, ...] = ("pairs", "sessions", "follow",
                                                                                    "volume")) -> dict[str, np.ndarray]:
        """{statistic: [N] per account} for the attack split over n accounts (see ``split``)."""
        out: dict[str, np.ndarray] = {}
        for statistic in statistics:
            source = source_of(statistic)
            key = (n, by_source, source.name)
            if key not in self.cache:
                self.cache[key] = source.values(self.split(n, by_source), self.features, self.context)
            out[statistic] = self.cache[key][statistic]
        return out

    def flagged(self, n: int, calibration: Calibration, by_source: bool = False) -> int:
        """Accounts ``calibration`` flags when the attack is split over n accounts (see ``at``); statistics
        that need a clock are left to the closed form."""
        detector = get_detector(calibration.detector)
        clock = detector.clock_statistics()
        stats = self.at(n, by_source, tuple(s for s in detector.statistics if s not in clock))
        return int(detector.flagged(calibration.limits, stats, skip=clock).sum())


def accounts_needed(calibration: Calibration, attack: Collected, features: TrafficFeatures, horizon_s: float,
                    splits: SplitStatistics | None = None, seat: SeatOptions = SeatOptions(),
                    prada: PradaOptions = PradaOptions(), num_items: int = 4096, grid: Sequence[int] = ACCOUNT_GRID,
                    prada_max_queries: int = 0) -> int | None:
    """Accounts one attacker needs against one detector (None: flagged at every N of the grid).

    Splits are contiguous chunks of the attack's queries, or for an attacker
    that interleaves its walks, also whole walks per account (the cheaper
    counts). The rate cap has no clock in attack traffic: an attacker paces its queries
    evenly over ``horizon_s`` seconds, so the rate cap needs
    ``rate_cap_accounts_needed`` accounts; a detector with a rate statistic
    needs the larger of that and the sweep of its other statistics. The other
    statistics share ``splits`` (one replay per N and source). A slow detector
    (PRADA) is swept through its online monitors, on the first
    ``prada_max_queries`` queries only when that is set.
    """
    queries = attack.traffic.num_queries
    detector = get_detector(calibration.detector)
    clock = detector.clock_statistics()
    closed = [rate_cap_accounts_needed(queries, calibration.limits[s], seat.rate_window_s, horizon_s)
              for s in clock if calibration.limits.get(s) is not None]
    if len(clock) == len(detector.statistics):
        return max(closed) if closed else 1
    if detector.slow:
        traffic, feats = attack.traffic, features
        if prada_max_queries and queries > prada_max_queries:
            traffic, feats = traffic.head(prada_max_queries), features.head(prada_max_queries)
        return accounts_sweep(calibration, traffic, feats, grid, seat, prada, label=attack.name,
                              num_items=num_items)[0]
    if splits is None:
        splits = SplitStatistics(attack, features, calibration.threshold or 0.0, seat, num_items)
    needed = smallest_clean_split(lambda n: splits.flagged(n, calibration), queries, grid)
    if splits.interleaves():  # the attacker may also deal whole walks to accounts: it takes the cheaper split
        by_walk = smallest_clean_split(lambda n: splits.flagged(n, calibration, by_source=True),
                                       len(attack.traffic.sources), grid)
        if by_walk is not None and (needed is None or by_walk < needed):
            needed = by_walk
    if closed and needed is not None:
        needed = max(needed, *closed)
    return needed


def _ratio(a: float | None, b: float | None) -> float | None:
    """a / b with None = beyond the grid (infinite): None when a is, 0 never happens (b >= 1)."""
    if a is None or b is None or (isinstance(a, float) and math.isnan(a)) or (isinstance(b, float) and math.isnan(b)):
        return None
    return a / b


def worst_case_headline(table: pd.DataFrame, baseline: str = "volume") -> dict:
    """Headline keys from a zoo table with columns attack, detector, accounts_needed (None/NaN = not found
    within the grid, i.e. more than its largest N), agr10.

    Each ``<detector>_accounts_needed`` is the minimum over every attacker (the
    cheapest way through), named in ``..._worst_attack``; each cost increase is
    the minimum over attackers of (detector / baseline) accounts for the same
    attacker. A detector no attacker got through within the grid gets None
    and its worst attack None.
    """
    keys = {name: DETECTORS.get(name).key for name in DETECTORS}
    out: dict = {}
    pivot = table.pivot_table(index="attack", columns="detector", values="accounts_needed", aggfunc="first",
                              dropna=False)
    for detector, key in keys.items():
        if detector not in pivot.columns:
            continue
        column = pivot[detector].dropna()
        out[f"{key}_accounts_needed"] = None if column.empty else float(column.min())
        out[f"{key}_worst_attack"] = None if column.empty else str(column.idxmin())
        if detector != baseline and baseline in pivot.columns:
            ratios = {attack: _ratio(pivot.at[attack, detector], pivot.at[attack, baseline]) for attack in pivot.index}
            known = {a: r for a, r in ratios.items() if r is not None}
            out[f"{key}_cost_increase_over_volume_cap"] = min(known.values()) if known else None
            out[f"{key}_cheapest_attack_vs_volume_cap"] = min(known, key=known.get) if known else None
    if "seat_plus_cap_cost_increase_over_volume_cap" in out:  # the name the first version used
        out["seat_plus_cap_cost_increase_worst_attack"] = out["seat_plus_cap_cost_increase_over_volume_cap"]
    if "seat+cap" in pivot.columns and "caps" in pivot.columns:  # what SEAT adds to the caps on their own
        ratios = {a: _ratio(pivot.at[a, "seat+cap"], pivot.at[a, "caps"]) for a in pivot.index}
        known = {a: r for a, r in ratios.items() if r is not None}
        out["seat_plus_cap_cost_increase_over_caps"] = min(known.values()) if known else None
        out["seat_plus_cap_cheapest_attack_vs_caps"] = min(known, key=known.get) if known else None
    return out


def fidelity_table(table: pd.DataFrame, fidelity: pd.DataFrame) -> pd.DataFrame:
    """One row per attacker: queries, surrogate Agr@1/Agr@10, accounts needed per detector."""
    wide = table.pivot_table(index="attack", columns="detector", values="accounts_needed", aggfunc="first",
                             dropna=False)
    wide.columns = [f"accounts_{c}" for c in wide.columns]
    return fidelity.set_index("attack").join(wide).reset_index()


def zoo_surrogate(attack: Collected, target_model, dataset, arch: str, settings, device="cpu") -> dict:
    """Train the attacker's surrogate on its own collected answers; Agr@1/Agr@10 with the target on real
    test inputs (``recsec_lib.attack.agreement``)."""
    from recsec_lib.attack.agreement import evaluate_extraction
    from recsec_lib.models.registry import build_model
    from recsec_lib.attack.surrogate import fit_surrogate

    import torch

    torch.manual_seed(settings.seed)
    model = build_model(arch, num_items=dataset.num_items, max_len=target_model.max_len)
    result = fit_surrogate(attack.training, model, settings, device=device, progress=False)
    figures = evaluate_extraction(target_model, result.model, dataset, device=device)
    return {"attack": attack.name, "queries": attack.queries, "training_rows": attack.training.num_sequences,
            "agr1": figures["agr@1"], "agr10": figures["agr@10"], "surrogate_test_hr10": figures["surrogate_hr@10"],
            "epochs": len(result.history), "stopped": result.stopped}


def grid_max(queries: int, grid: Sequence[int] = ACCOUNT_GRID) -> int:
    """The largest N of the grid an attack of ``queries`` queries can be split over."""
    return max(n for n in grid if n <= max(1, queries))


__all__ = ("accounts_needed", "fidelity_table", "grid_max", "worst_case_headline", "zoo_surrogate")
