"""Measuring calibrated detectors: false positives, detection, accounts an attacker needs, ROC.

All functions take a frozen ``Calibration`` and refuse traffic that contains a
calibration account (``Calibration.check_unseen``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace

import numpy as np
import pandas as pd

from recsec_lib.attack.traffic import Traffic
from recsec_lib.seat.calibration import Calibration, PradaOptions, SeatOptions
from recsec_lib.seat.detectors import get_detector
from recsec_lib.seat.replay import AccountOutcome, TrafficFeatures
from recsec_lib.seat.statistics import MonitorContext

ACCOUNT_GRID = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 20000, 50000)


def evaluate(calibration: Calibration, traffic: Traffic, features: TrafficFeatures,
             seat: SeatOptions = SeatOptions(), prada: PradaOptions = PradaOptions(),
             num_items: int = 4096) -> list[AccountOutcome]:
    """Replay ``traffic`` through fresh monitors with the calibrated setting; one outcome per account.

    A detector of several sources (``seat+cap``: its SEAT part, the volume cap
    and, when the traffic has query times, the rate cap) runs one monitor per
    source; an account's flag is the earliest of theirs. Attack traffic carries
    no times: the zoo accounts for the rate cap in closed form
    (``baselines.rate_cap_accounts_needed``).
    """
    calibration.check_unseen(traffic.names)
    detector = get_detector(calibration.detector)
    context = MonitorContext(calibration.threshold, features.seat.shape[1], num_items, seat, prada)
    results = []
    for source, monitor in detector.monitors(calibration, context):
        if source.needs_time and traffic.time is None:
            continue
        results.append((source, source.replay(monitor, traffic, features)))
    if not results:
        raise ValueError(f"the {calibration.detector} detector needs query times and this traffic has none")
    merged = results[0][1]
    for source, other in results[1:]:  # a later source's flag names it (flag_label) unless its monitor says more
        label = source.flag_label or source.name
        merged = [first if second.flagged_at is None or (first.flagged_at is not None
                                                         and first.flagged_at <= second.flagged_at)
                  else replace(first, flagged_at=second.flagged_at, flagged_by=second.flagged_by or label)
                  for first, second in zip(merged, other)]
    return merged


def outcomes_frame(outcomes: Sequence[AccountOutcome], detector: str) -> pd.DataFrame:
    frame = pd.DataFrame([o.__dict__ for o in outcomes])
    frame["flagged"] = frame["flagged_at"].notna()
    frame["detector"] = detector
    return frame


def false_positive_table(benign: pd.DataFrame) -> pd.DataFrame:
    """Per detector and benign form (plus kind "all"): accounts, flagged, rate (rows with detector, kind, flagged)."""
    grouped = benign.groupby(["detector", "kind"])
    table = grouped.agg(accounts=("name", "size"), flagged=("flagged", "sum")).reset_index()
    table["rate"] = table["flagged"] / table["accounts"]
    grouped = benign.groupby("detector")
    overall = pd.DataFrame({"detector": list(grouped.groups), "kind": "all", "accounts": grouped.size().values,
                            "flagged": grouped["flagged"].sum().values, "rate": grouped["flagged"].mean().values})
    return pd.concat([table, overall], ignore_index=True)


def smallest_clean_split(flagged_accounts: Callable[[int], int], max_accounts: int,
                         grid: Sequence[int] = ACCOUNT_GRID, refine: bool = True) -> int | None:
    """The smallest N with ``flagged_accounts(N) == 0``: walk ``grid`` upwards (N <= max_accounts) to the
    first clean N, then bisect the gap below it (``refine``). None if every N tried was flagged.

    Exact when more accounts never means more flags (true for these monotone
    per-account statistics, up to chunk boundaries).
    """
    needed, last_flagged = None, None
    for n in sorted(set(grid)):
        if n > max_accounts:
            break
        if flagged_accounts(n) == 0:
            needed = n
            break
        last_flagged = n
    if refine and needed is not None and last_flagged is not None:
        low, high = last_flagged, needed  # low is flagged, high is clean
        while high - low > 1:
            middle = (low + high) // 2
            if flagged_accounts(middle) == 0:
                high = middle
            else:
                low = middle
        needed = high
    return needed


def accounts_sweep(calibration: Calibration, attack: Traffic, features: TrafficFeatures,
                   grid: Sequence[int] = ACCOUNT_GRID, seat: SeatOptions = SeatOptions(),
                   prada: PradaOptions = PradaOptions(), label: str = "attack",
                   refine: bool = True, num_items: int = 4096) -> tuple[int | None, pd.DataFrame]:
    """Split one attack's queries over N accounts (contiguous chunks) for N in ``grid``.

    Returns (the smallest N at which no account is flagged, or None if every N
    tried had one flagged; a table N -> flagged accounts); see ``smallest_clean_split``.
    """
    rows: dict[int, dict] = {}

    def flagged_at(n: int) -> int:
        split = attack.split_contiguous(n, f"{label}/n{n}")
        outcomes = evaluate(calibration, split, features, seat, prada, num_items)
        flagged = sum(o.flagged_at is not None for o in outcomes)
        rows[n] = {"detector": calibration.detector, "attack": label, "accounts": n,
                   "queries_per_account": attack.num_queries / n, "flagged_accounts": flagged,
                   "flagged_fraction": flagged / n, "any_flagged": flagged > 0,
                   "max_score": max(o.score for o in outcomes)}
        return flagged

    needed = smallest_clean_split(flagged_at, attack.num_queries, grid, refine)
    return needed, pd.DataFrame([rows[n] for n in sorted(rows)])


def single_account_outcomes(attacks: dict, calibrations: dict, budgets: Sequence[int], seat_options: SeatOptions,
                            prada_options: PradaOptions, num_items: int, prada_max_queries: int) -> pd.DataFrame:
    """Disjoint runs of ``budget`` walks of each given attacker, each run one account; one outcome row per run
    and detector. ``attacks``: {name: (Collected, TrafficFeatures)}. The rate caps are skipped (attack
    traffic has no clock); PRADA sees only about ``prada_max_queries`` queries per budget when that is set."""
    frames = []
    for generator, (attack, features) in attacks.items():
        traffic = attack.traffic
        for budget in budgets:
            runs_count = len(traffic.sources) // budget
            if runs_count == 0:
                continue
            head = traffic.head(int(np.searchsorted(traffic.source, runs_count * budget)))
            runs_traffic = head.with_accounts(head.source // budget,
                                              [f"{generator}/b{budget}/{i}" for i in range(runs_count)],
                                              [f"{generator}/b{budget}"] * runs_count)
            for d, c in calibrations.items():
                detector = get_detector(d)
                if not detector.judged_without_clock:  # attack traffic has no clock: judged in closed form
                    continue
                part = runs_traffic
                if detector.slow and prada_max_queries:  # PRADA is the slow one: fewer runs
                    keep = max(1, prada_max_queries // max(1, head.num_queries // runs_count))
                    part = runs_traffic.head(int(np.searchsorted(head.source, keep * budget)))
                frame = outcomes_frame(evaluate(c, part, features.head(part.num_queries), seat_options,
                                                prada_options, num_items), d)
                frame = frame[frame.queries > 0]
                frames.append(frame.assign(generator=generator, budget=budget))
    return pd.concat(frames)


def roc_curve(benign_scores: Sequence[float], attack_scores: Sequence[float]) -> pd.DataFrame:
    """Flag-when-score-exceeds-limit ROC: one row per distinct limit (plus -inf), sorted by FPR."""
    benign = np.asarray(benign_scores, dtype=np.float64)
    attack = np.asarray(attack_scores, dtype=np.float64)
    if len(benign) == 0 or len(attack) == 0:
        raise ValueError("roc_curve needs at least one benign and one attack score")
    limits = np.r_[-np.inf, np.unique(np.r_[benign, attack])]
    fpr = np.array([(benign > t).mean() for t in limits])
    tpr = np.array([(attack > t).mean() for t in limits])
    return pd.DataFrame({"limit": limits, "fpr": fpr, "tpr": tpr}).sort_values(["fpr", "tpr"]).reset_index(drop=True)


def roc_auc(curve: pd.DataFrame) -> float:
    """Area under the ROC curve (trapezoids over the (fpr, tpr) points, with (0,0) and (1,1))."""
    fpr = np.r_[0.0, curve["fpr"].to_numpy(), 1.0]
    tpr = np.r_[0.0, curve["tpr"].to_numpy(), 1.0]
    return float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2))


def measure_throughput(encoder, calibration: Calibration, traffic: Traffic, max_queries: int = 20_000,
                       batch_size: int = 1024, seat: SeatOptions = SeatOptions(), device="cpu",
                       follow: np.ndarray | None = None, prada: PradaOptions = PradaOptions()) -> dict[str, float]:
    """Queries per second through a calibrated detector, as deployed: every query's features computed (no
    de-duplication) in batches of ``batch_size`` — the SEAT encoding when the detector reads a SEAT
    statistic, PRADA's bag-of-items vector when it reads PRADA's — then each query fed to each of the
    detector's monitors one by one (``follow``: [Q] per-query follow values, as a deployed service would know
    them from its own answers; query times from ``traffic.time``, 0 when it has none). ``queries_per_second``
    is wall time; ``queries_per_cpu_second`` counts the process's CPU time only (one core's work, the figure
    that does not move with other programs on a shared machine)."""
    import time

    from recsec_lib.seat.baselines import bag_of_items_features
    from recsec_lib.seat.encoder import encode_sequences
    from recsec_lib.recommend.sequences import pad_left

    detector = get_detector(calibration.detector)
    n = min(max_queries, traffic.num_queries)
    if n == 0:
        raise ValueError("measure_throughput needs a non-empty traffic")
    if detector.needs_threshold and encoder is None:
        raise ValueError(f"the {detector.name} detector reads SEAT statistics: measure_throughput needs the encoder")
    num_items = encoder.config.num_items if encoder is not None else int(max(int(s.max()) for s in traffic.sources))
    dim = encoder.config.dim if encoder is not None else 0
    context = MonitorContext(calibration.threshold, dim, num_items, seat, prada)
    monitors = detector.monitors(calibration, context)
    names = {source.name for source, _ in monitors}
    queries = [traffic.query(j) for j in range(n)]
    feature_seconds = monitor_seconds = 0.0
    cpu_start = time.process_time()
    for start in range(0, n, batch_size):
        chunk = queries[start:start + batch_size]
        t0 = time.perf_counter()
        encodings = (encode_sequences(encoder, chunk, batch_size=batch_size, device=device)  # [b, D]
                     if "seat" in names else None)
        vectors = (bag_of_items_features(pad_left(chunk, traffic.max_len), num_items)  # [b, P]
                   if "prada" in names else None)
        t1 = time.perf_counter()
        for offset, query in enumerate(chunk):
            j = start + offset
            account = traffic.names[traffic.account[j]]
            moment = 0.0 if traffic.time is None else float(traffic.time[j])
            for source, monitor in monitors:
                source.online(monitor, account, query, j, None if encodings is None else encodings[offset],
                              None if vectors is None else vectors[offset],
                              -1 if follow is None else int(follow[j]), moment)
        monitor_seconds += time.perf_counter() - t1
        feature_seconds += t1 - t0
    total = feature_seconds + monitor_seconds
    cpu = time.process_time() - cpu_start  # CPU time of this process: what one core spends, whatever the load
    return {"queries": n, "queries_per_second": n / total, "queries_per_cpu_second": n / max(cpu, 1e-9),
            "encode_queries_per_second": n / feature_seconds if feature_seconds > 0 else float("inf"),
            "monitor_queries_per_second": n / monitor_seconds}
