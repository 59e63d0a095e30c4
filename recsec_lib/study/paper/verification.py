"""Verification in the paper: can the owner prove a copy? The watermark's section and its verdict row.

Words from the watermark stage's numbers: the headline keys ``watermark_*`` and, where the run has them, the
stage's settings (the claim threshold ``alpha``, the Agr@10 a stolen copy needs to count) and its per-suspect
records (``verification``: group, suspect, Agr@10, p-value, claimed), from which the per-group table is drawn.
"""

from __future__ import annotations

import pandas as pd

from recsec_lib.study.paper.model import NOT_MEASURED, Answer, Evidence, Writer, _count, _pct_number, not_measured, show

# The stage's defaults (recsec_lib.study.stages.watermark.Settings), used only for a run whose metrics lack them.
DEFAULT_ALPHA = 0.01
DEFAULT_MIN_AGREEMENT = 0.3
GROUP_NAMES = {"marked": "the marked box", "served": "the marked box behind an output defense",
               "surrogate": "surrogates of every attacker", "knowing": "the attacker who knows the scheme",
               "independent": "independent models"}


def thresholds(ev: Evidence) -> tuple[float, float]:
    """(alpha, min_agreement) of the run's watermark stage (the stage's defaults when its metrics lack them)."""
    settings = ev.stage("watermark").get("settings") or {}
    return (float(settings.get("alpha", DEFAULT_ALPHA)),
            float(settings.get("min_agreement", DEFAULT_MIN_AGREEMENT)))


def group_table(ev: Evidence) -> pd.DataFrame | None:
    """Per group of suspects: how many, how many claimed, the p-values' range, the Agr@10 range (None: no records)."""
    records = ev.stage("watermark").get("verification")
    if not records:
        return None
    frame = pd.DataFrame(records)
    rows = []
    for group, name in GROUP_NAMES.items():
        members = frame[frame["group"] == group]
        if members.empty:
            continue
        agreement = pd.to_numeric(members.get("agr10"), errors="coerce").dropna()
        rows.append({"suspects": name, "models": _count(len(members)),
                     "ownership claimed": _count(int(members["claimed"].astype(bool).sum())),
                     "smallest p": show("p", members["p_value"].min()),
                     "largest p": show("p", members["p_value"].max()),
                     "Agr@10 with the marked target, %": (
                         "—" if agreement.empty else
                         f"{_pct_number(agreement.min())} to {_pct_number(agreement.max())}")})
    return pd.DataFrame(rows)


def answer_verification(ev: Evidence, w: Writer) -> Answer:
    ran = ev.has("watermark_independent_models")
    if not ev.has("watermark_verified_share") and not ran:
        return not_measured("Ownership verification (a watermark)")
    alpha, min_agreement = thresholds(ev)
    strong = f"whose Agr@10 is at least {_pct_number(min_agreement)}%"
    sentences = []
    took = mark_took(ev)
    if took is False:
        sentences.append(w.sentence(
            f"The mark did not take: the marked target itself, queried as a black box with the key, is not verified "
            f"(p = {w.h('watermark_marked_box_p_value', 'p')}, a claim needs p < {alpha:g}), so no copy of it can "
            "carry the mark."))
    if ev.has("watermark_verified_share"):
        text = (f"The watermark is verified (p < {alpha:g}) on {w.h('watermark_verified_share')} of the surrogates "
                f"{strong}")
    else:
        text = f"No stolen copy reached an Agr@10 of {_pct_number(min_agreement)}%, so none is counted"
    if ev.has("watermark_max_p_surrogate"):
        text += f" (largest p-value of any stolen copy {w.h('watermark_max_p_surrogate', 'p')})"
    if ev.has("watermark_utility_retention", "watermark_utility_retention_low", "watermark_utility_retention_high"):
        text += f", at {w.h('watermark_utility_retention', 'interval')} of the target's NDCG@10 kept"
        low = ev.headline["watermark_utility_retention_low"]
        kept = ev.headline["watermark_utility_retention"]
        text += (" (target ≥ 99%, interval's low end ≥ 98%: "
                 + ("met" if kept >= 0.99 and low >= 0.98 else "missed") + ")")
    elif ev.has("watermark_utility_retention"):
        text += f", at {w.h('watermark_utility_retention')} of the target's NDCG@10 kept"
    sentences.append(w.sentence(text + "."))
    if ev.has("watermark_false_claims", "watermark_independent_models"):
        text = (f"It falsely claims {w.h('watermark_false_claims', 'count')} of "
                f"{w.h('watermark_independent_models', 'count')} independent models")
        if ev.has("watermark_min_p_independent"):
            text += f" (smallest p-value {w.h('watermark_min_p_independent', 'p')})"
        if ev.headline["watermark_independent_models"] < 12:
            text += "; fewer than the 12 the study asks for"
        sentences.append(w.sentence(text + "."))
    if "watermark_knowing_attacker_verified" in ev.headline:
        knowing = ev.headline["watermark_knowing_attacker_verified"]
        if took is False and not knowing:
            sentences.append(w.plain("The attacker who knows the scheme but not the key has no mark to strip."))
        else:
            sentences.append(w.plain(
                "Against an attacker who knows the scheme but not the key, the watermark is "
                + (f"{NOT_MEASURED}." if knowing is None else "still verified." if knowing
                   else "NOT verified on every copy: that attacker strips it.")))
    notes = []
    if ev.has("watermark_cost_in_undefended_epochs"):
        notes.append(w.sentence(f"Embedding it costs {w.h('watermark_cost_in_undefended_epochs', 'ratio')} the time "
                                "of an undefended training epoch (target ≤ 1.5×: "
                                + ("met" if ev.headline["watermark_cost_in_undefended_epochs"] <= 1.5 else "missed")
                                + ")."))
    groups = group_table(ev)
    if groups is not None:
        w.table("verification", groups)
        caption = ("Per group of suspects: models tested, ownership claimed, the range of the exact test's p-values "
                   "and of their Agr@10 with the marked target. The figure: p-values by group (log scale); the line "
                   "is the claim threshold.")
    else:
        rows = [{"figure": what, "value": show(kind, ev.headline[key])}
                for key, what, kind in (("watermark_verified_share", "stolen copies verified", "percent"),
                                        ("watermark_independent_models", "independent models", "count"),
                                        ("watermark_false_claims", "false claims", "count"))
                if ev.has(key)]
        w.table("verification", pd.DataFrame(rows, columns=["figure", "value"]))
        caption = ("p-values of the ownership test on the watermarked target's surrogates and on independent "
                   "models (log scale); the line is the decision threshold.")
    return Answer(sentences, figure=ev.first_file("watermark/p_values.png", "watermark/*.png"),
                  table="verification", notes=notes, caption=caption,
                  alt="p-values of the watermark test for stolen copies and independent models.")


def mark_took(ev: Evidence) -> bool | None:
    """Whether the marked box itself is verified (None: a run that did not record it)."""
    value = ev.headline.get("watermark_marked_box_verified")
    return None if value is None else bool(value)


def verification_verdict_rows(ev: Evidence) -> list[dict]:
    """The verdict table's verification row (none when the watermark stage did not run)."""
    h = ev.headline
    if h.get("watermark_verified_share") is None and h.get("watermark_independent_models") is None:
        return []
    alpha, min_agreement = thresholds(ev)
    share, false_claims = h.get("watermark_verified_share"), h.get("watermark_false_claims")
    if share is None:
        loses = f"no stolen copy reached Agr@10 ≥ {_pct_number(min_agreement)}%"
        verdict = "undecided: no strong copy to verify"
    else:
        loses = f"copies verified: {_pct_number(share)}% of surrogates with Agr@10 ≥ {_pct_number(min_agreement)}%"
        verdict = "proves a copy" if share >= 1.0 and false_claims == 0 else "does not prove every copy"
    if false_claims is not None:
        loses += f"; {_count(false_claims)} false claims of {_count(h.get('watermark_independent_models', 0))}"
    knowing = h.get("watermark_knowing_attacker_verified")
    worst = "the attacker who knows the scheme" + (
        "" if knowing is None else (": still verified" if knowing else ": strips it"))
    if mark_took(ev) is False:
        worst = "any: the mark did not take (the marked box itself is not verified)"
        verdict = "proves no copy: the mark did not take"
    keep = "—"
    if h.get("watermark_utility_retention") is not None:
        keep = "NDCG@10 " + _pct_number(h["watermark_utility_retention"]) + "%"
        low, high = h.get("watermark_utility_retention_low"), h.get("watermark_utility_retention_high")
        if low is not None and high is not None:
            keep += f" [{_pct_number(low)}, {_pct_number(high)}]"
    cost = "one fine-tuning with the watermark"
    if h.get("watermark_cost_in_undefended_epochs") is not None:
        cost += f": {h['watermark_cost_in_undefended_epochs']:.2f}× an undefended epoch"
    return [{"defense": "watermark", "family": "verification",
             "worst attacker": worst,
             "what users keep": keep, "what the attacker loses": loses,
             "cost to the owner": cost + f"; a claim needs p < {alpha:g}", "verdict": verdict}]
