"""The detection verdict: worst-case accounts per detector, the best detector, its false positives, the targets.

Inputs are the search's cheapest point per detector (``search.SearchResult.best``:
accounts needed is the minimum over the attacker's whole grid; None = beyond
the grid, more accounts than its largest N) and the held-out false-positive
table with exact intervals (``fpr.rate_table``). The best detector is the one
whose worst case costs the attacker the most accounts (a tie goes to the lower
held-out false-positive rate). Targets (GitHub issue 24): best >= 2x the volume
cap's worst case and > 1.2x the caps'; FPR <= 0.1% overall on held-out benign
users with real timing and no form above 1% — shown by the interval's upper
end, not only by the point.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import pandas as pd

from recsec_lib.seat.detectors import get_detector
from recsec_lib.seat.fpr import clopper_pearson


def _needed(best: pd.DataFrame, detector: str) -> float | None:
    row = best[best.detector == detector]
    if row.empty:
        return None
    value = row["accounts_needed"].iloc[0]
    return math.inf if value is None or pd.isna(value) else float(value)


def _ratio(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or b == 0 or math.isinf(b):
        return None
    return a / b


def _fpr(fpr: pd.DataFrame, detector: str, kind: str) -> dict | None:
    row = fpr[(fpr.detector == detector) & (fpr.kind == kind)]
    return None if row.empty else row.iloc[0].to_dict()


def detection_headline(best: pd.DataFrame, fpr: pd.DataFrame, candidates: Sequence[str] | None = None,
                       real_forms: Sequence[str] = ("ml100k",), parameters: Sequence[str] = ()) -> dict:
    """The headline keys of the detection verdict (see the module docstring).

    ``candidates``: detectors that may be named best (default: every detector in ``best``);
    ``real_forms``: the forms whose pooled rate is ``benign_real_timing_false_positive_rate_<detector>``;
    ``parameters``: the generator parameters to report with the best detector's worst case.
    """
    names = list(candidates or best["detector"].tolist())
    scored = []
    for name in names:
        needed = _needed(best, name)
        if needed is None:
            continue
        overall = _fpr(fpr, name, "all")
        scored.append((needed, -(overall["rate"] if overall else math.inf), name))
    if not scored:
        raise ValueError(f"none of the candidate detectors {names} was searched")
    _, _, top = max(scored)
    volume, caps, top_needed = _needed(best, "volume"), _needed(best, "caps"), _needed(best, top)
    row = best[best.detector == top].iloc[0]
    out = {"detect_best": top,
           "detect_best_accounts_needed_worst": top_needed,
           "volume_cap_accounts_needed_worst": volume,
           "caps_accounts_needed_worst": caps,
           "detect_best_cost_increase_over_volume_cap": _ratio(top_needed, volume),
           "detect_best_cost_increase_over_caps": _ratio(top_needed, caps),
           "detect_best_worst_point": {key: (None if pd.isna(row[key]) else row[key]) for key in
                                       ("attacker", *parameters, "split", "horizon_h") if key in row.index}}
    overall = _fpr(fpr, top, "all")
    forms = fpr[(fpr.detector == top) & (fpr.kind != "all")]
    worst = forms.sort_values(["rate", "high"], ascending=False).iloc[0] if not forms.empty else None
    out.update({"detect_best_false_positive_rate": None if overall is None else overall["rate"],
                "detect_best_false_positive_rate_high": None if overall is None else overall["high"],
                "detect_best_false_positive_accounts": None if overall is None else int(overall["accounts"]),
                "detect_best_worst_form": None if worst is None else worst["kind"],
                "detect_best_worst_form_rate": None if worst is None else float(worst["rate"]),
                "detect_best_worst_form_rate_high": None if worst is None else float(worst["high"])})
    for name in ("caps", "volume", "rate", top):
        part = fpr[(fpr.detector == name) & fpr.kind.isin(list(real_forms))]
        if part.empty:
            continue
        interval = clopper_pearson(int(part["flagged"].sum()), int(part["accounts"].sum()))
        key = get_key(name)
        out[f"benign_real_timing_false_positive_rate_{key}"] = interval.rate
        out[f"benign_real_timing_false_positive_rate_{key}_high"] = interval.high
    increase_volume, increase_caps = (out["detect_best_cost_increase_over_volume_cap"],
                                      out["detect_best_cost_increase_over_caps"])
    out["targets"] = {
        "best_ge_2x_volume_cap": increase_volume is not None and increase_volume >= 2,
        "best_gt_1.2x_caps": increase_caps is not None and increase_caps > 1.2,
        "fpr_le_0.001_shown": overall is not None and overall["high"] <= 0.001,
        "fpr_le_0.001_point": overall is not None and overall["rate"] <= 0.001,
        "no_form_above_0.01_shown": worst is not None and float(worst["high"]) <= 0.01,
        "no_form_above_0.01_point": worst is not None and float(worst["rate"]) <= 0.01,
    }
    return out


def get_key(name: str) -> str:
    """The headline key prefix of a registered detector."""
    return get_detector(name).key


def verdict_sentence(headline: dict) -> str:
    """One plain sentence that follows the numbers."""
    top, needed = headline["detect_best"], headline["detect_best_accounts_needed_worst"]
    volume, caps = headline["volume_cap_accounts_needed_worst"], headline["caps_accounts_needed_worst"]
    over_volume, over_caps = headline["detect_best_cost_increase_over_volume_cap"], headline[
        "detect_best_cost_increase_over_caps"]
    fmt = lambda v: "beyond the grid" if v is not None and math.isinf(v) else ("n/a" if v is None else f"{v:g}")  # noqa: E731
    ratio = lambda v: "n/a" if v is None else f"{v:.2f}x"  # noqa: E731
    met = headline["targets"]["best_ge_2x_volume_cap"] and headline["targets"]["best_gt_1.2x_caps"]
    head = ("Per-account detection holds against an attacker who chooses its parameters" if met else
            "Per-account detection does NOT hold against an attacker who chooses its pacing and chain count")
    return (f"{head}: the best detector, {top}, needs {fmt(needed)} accounts in the worst case against "
            f"{fmt(volume)} for the volume cap ({ratio(over_volume)}; target >= 2x) and {fmt(caps)} for the caps "
            f"({ratio(over_caps)}; target > 1.2x); its held-out false-positive rate is "
            f"{100 * (headline['detect_best_false_positive_rate'] or 0):.3f}% (95% upper "
            f"{100 * (headline['detect_best_false_positive_rate_high'] or 0):.3f}%; target <= 0.1%), worst form "
            f"{headline['detect_best_worst_form']} at {100 * (headline['detect_best_worst_form_rate'] or 0):.2f}% "
            f"(upper {100 * (headline['detect_best_worst_form_rate_high'] or 0):.2f}%; target <= 1%).")
