"""The verdict table: one row per defense of every family, in percent with 95% intervals."""

from __future__ import annotations

import pandas as pd

from recsec_lib.study.paper.detection import (DETECTOR_NAMES, SEAT_KEYS, _needed, accounts_words, detection_holds_on_cost,
                                             fpr_cell)
from recsec_lib.study.paper.model import Evidence, _count, _pct_number, cell_shown, interval_cell
from recsec_lib.study.paper.verification import verification_verdict_rows
from recsec_lib.study.paper.prevention import (FAMILY_NAMES, PROMOTION_RISE, REFERENCE_FAMILIES, family_of,
                                              prevention_frame, strongest_attacker)

# ---- the verdict table --------------------------------------------------------------------------------------

VERDICT_COLUMNS = ("defense", "family", "worst attacker", "what users keep", "what the attacker loses",
                   "cost to the owner", "verdict")


def verdict_table(ev: Evidence) -> pd.DataFrame:
    """One row per defense of every family, in consistent units (percent with 95% intervals)."""
    rows = []
    frame = prevention_frame(ev)
    if frame is not None:
        ratio = ev.headline.get("gro_epoch_cost_ratio")
        for _, row in frame[~frame["family"].isin(REFERENCE_FAMILIES)].iterrows():
            family = family_of(row["family"]) or row["family"]
            if family == "output":
                cost = "serving only: each list is changed before it is served"
            else:
                cost = (f"training: {ratio:.2f}× the time of an undefended epoch" if ratio else "training")
            rise = row["promoted_share"] - row["promoted_share_none"]
            if rise == rise and rise >= PROMOTION_RISE:
                cost += (f"; promotes one item into {_pct_number(row['promoted_share'])}% of served top-10 lists "
                         f"(None: {_pct_number(row['promoted_share_none'])}%)")
            rows.append({"defense": row["arm"], "family": f"prevention: {FAMILY_NAMES.get(family, family)}",
                         "worst attacker": strongest_attacker(row),
                         "what users keep": "NDCG@10 " + cell_shown(interval_cell(
                             row["retention"], row["retention_low"], row["retention_high"]), "%"),
                         "what the attacker loses": (
                             "surrogate NDCG@10 falls " + cell_shown(interval_cell(
                                 row["ndcg_fall"], row["ndcg_fall_low"], row["ndcg_fall_high"]), "%")
                             + "; Agr@10 falls " + cell_shown(interval_cell(
                                 row["agr_fall"], row["agr_fall_low"], row["agr_fall_high"]), "%")),
                         "cost to the owner": cost, "verdict": row["verdict"]})
    rows += detection_verdict_rows(ev)
    rows += verification_verdict_rows(ev)
    return pd.DataFrame(rows, columns=list(VERDICT_COLUMNS))


def detection_verdict_rows(ev: Evidence) -> list[dict]:
    h = ev.headline
    if "detect_best" in h and h.get("detect_best_accounts_needed_worst") is not None:
        over_volume, over_caps = (h.get("detect_best_cost_increase_over_volume_cap"),
                                  h.get("detect_best_cost_increase_over_caps"))
        holds = detection_holds_on_cost(h)
        flagged = h.get("detect_best_false_positive_rate")
        keep = "—" if flagged is None else f"benign users flagged {_pct_number(flagged)}%" + (
            f" (95% upper end {_pct_number(h['detect_best_false_positive_rate_high'])}%)"
            if h.get("detect_best_false_positive_rate_high") is not None else "")
        loses = f"needs {accounts_words(_needed(h['detect_best_accounts_needed_worst']))}"
        if over_caps is not None:
            loses += f" ({over_caps:.2f}× the caps'"
            loses += f", {over_volume:.2f}× the volume cap's)" if over_volume is not None else ")"
        return [{"defense": str(h["detect_best"]), "family": "detection", "worst attacker":
                 "the attacker's cheapest parameters", "what users keep": keep, "what the attacker loses": loses,
                 "cost to the owner": "a monitor on every query", "verdict": "holds" if holds else "does not hold"}]
    if h.get("seat_plus_cap_accounts_needed") is None:
        return []
    seat = ev.stage("seat")
    fpr = seat.get("false_positive_rate") or {}
    accounts = seat.get("benign_test_accounts")
    volume = h.get("volume_cap_accounts_needed")
    rows = []
    for detector, worst_key, ratio_key in (("seat+cap", "seat_plus_cap_worst_attack",
                                            "seat_plus_cap_cost_increase_over_volume_cap"),
                                           ("seat", "seat_worst_attack", "seat_cost_increase_over_volume_cap")):
        needed = h.get(SEAT_KEYS[detector])
        if needed is None and SEAT_KEYS[detector] not in h:
            continue
        ratio = h.get(ratio_key)
        rate = fpr.get(detector, h.get("seat_plus_cap_false_positive_rate" if detector == "seat+cap"
                                       else "seat_false_positive_rate"))
        holds = ratio is not None and ratio >= 4 and rate is not None and rate <= 0.001
        loses = f"needs {accounts_words(_needed(needed))}"
        if ratio is not None and volume:
            loses += f" ({ratio:.2f}× the volume cap's {_count(volume)})"
        qps = h.get("seat_monitor_queries_per_second")
        rows.append({"defense": DETECTOR_NAMES[detector], "family": "detection",
                     "worst attacker": f"{h.get(worst_key, '—')} (cheapest of the zoo)",
                     "what users keep": f"benign accounts flagged {cell_shown(fpr_cell(rate, accounts), '%')}",
                     "what the attacker loses": loses,
                     "cost to the owner": f"a monitor of {qps:,.0f} queries/s" if qps else "a monitor on every query",
                     "verdict": "holds" if holds else "does not hold"})
    return rows
