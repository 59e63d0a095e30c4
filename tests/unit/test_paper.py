"""The report as a short paper (issue 26, items 1 and 2), on hand-made metrics.

Each generated sentence carries the facts it states; the checks here read every
fact back from its source (headline, a stage's metrics, a table of the paper),
so a sentence can never say what its table does not.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pandas as pd
import pytest

from recsec_lib.study import paper
from recsec_lib.study.paper import Evidence, build_paper, show

REPO = Path(__file__).resolve().parents[2]


# ---- hand-made metrics ------------------------------------------------------------------------------------------

def matrix_row(arm, family, reference, attacker, retention, ndcg_fall, agr_fall, ndcg_verdict, agr_verdict,
               worst=True, worst_agr=True, promoted=0.05):
    """One row of the GRO stage's matrix (metrics["defenses"]); falls with intervals of ±0.03."""
    return {"arm": arm, "family": family, "reference": reference, "attacker": attacker, "generator": "autoregressive",
            "retention_test": retention, "retention_test_low": retention - 0.01,
            "retention_test_high": retention + 0.01,
            "surrogate_test_ndcg10_drop": ndcg_fall, "surrogate_test_ndcg10_drop_low": ndcg_fall - 0.03,
            "surrogate_test_ndcg10_drop_high": ndcg_fall + 0.03,
            "agr10_test_drop": agr_fall, "agr10_test_drop_low": agr_fall - 0.03, "agr10_test_drop_high": agr_fall + 0.03,
            "verdict": ndcg_verdict, "agr_verdict": agr_verdict, "worst": worst, "worst_agr": worst_agr,
            "promoted_share": promoted, "promoted_share_none": 0.05}


DEFENSES = [
    matrix_row("None", "none", "None", "naive", 1.0, 0.0, 0.0, "reference", "reference"),
    matrix_row("Random", "paper", "None", "knowing", 0.05, 0.30, 0.60, "protects", "protects"),
    matrix_row("top-10 only", "output", "None", "top-10", 1.0, 0.0, 0.0, "no effect", "no effect"),
    # the published contradiction: best on Agr@10 alone, helps the attacker on NDCG@10
    matrix_row("top-10 exact, tail resampled", "output", "None", "knowing", 1.0, -0.10, 0.11, "helps the attacker",
               "protects"),
    matrix_row("GRO λ=0 (control)", "gro-control", "None", "naive", 1.0, 0.02, 0.05, "no effect", "protects"),
    matrix_row("GRO keep λ=1", "gro", "GRO λ=0 (control)", "knowing", 0.666, 0.219, 0.243, "protects", "protects",
               promoted=0.307),
    matrix_row("GRO lowest_index λ=1", "gro", "GRO λ=0 (control)", "knowing", 0.591, 0.251, 0.229, "protects",
               "protects", promoted=0.585),
]
# a weaker attacker's row of one arm: not the strongest, never read
DEFENSES.append({**matrix_row("GRO keep λ=1", "gro", "GRO λ=0 (control)", "naive", 0.666, 0.5, 0.5, "protects",
                              "protects"), "worst": False, "worst_agr": False})

HEADLINE = {
    "profile": "cpu", "dataset": "ml-1m", "git_commit": "abc123", "date": "2026-12-03T11:35:11+00:00",
    "ml1m_users": 6040, "ml1m_items": 3416, "sasrec_test_hr10": 0.3086, "sasrec_test_ndcg10": 0.1734,
    "attack_budget_sequences": 1000, "attack_seq_len": 200,
    "attack_main_generator": "autoregressive", "attack_main_agr10": 0.539, "attack_main_agr10_low": 0.532,
    "attack_main_agr10_high": 0.546, "attack_main_surrogate_ndcg10": 0.1245,
    "attack_main_surrogate_ndcg10_low": 0.119, "attack_main_surrogate_ndcg10_high": 0.130,
    "attack_main_target_ndcg10": 0.1734, "attack_main_target_ndcg10_low": 0.167,
    "attack_main_target_ndcg10_high": 0.180,
    "none_agr10": 0.351, "gro_control_agr10": 0.333, "gro_epoch_cost_ratio": 1.977,
    "defense_frontier_best": "top-10 exact, tail resampled", "defense_frontier_best_fall": 0.11,
    "defense_frontier_best_fall_low": 0.08, "defense_frontier_best_measure": "Agr@10",
    "defense_frontier_best_retention": 1.0, "defense_frontier_target_met": 0.0,
    "seat_plus_cap_accounts_needed": 31.0, "seat_plus_cap_worst_attack": "chain-mix",
    "seat_plus_cap_cost_increase_over_volume_cap": 1.9375, "seat_plus_cap_cost_increase_over_caps": 1.0,
    "volume_cap_accounts_needed": 16.0, "seat_accounts_needed": 4.0, "seat_worst_attack": "chain-mix",
    "seat_cost_increase_over_volume_cap": 0.25, "caps_accounts_needed": 31.0,
    "seat_plus_cap_false_positive_rate": 0.0016666666666666668, "seat_false_positive_rate": 0.0004166666666666667,
    "seat_monitor_queries_per_second": 28410.7,
}

STAGES = {
    "train": {"models": {"sasrec": {"best_epoch": 27, "test": {"hr@10": 0.3086, "ndcg@10": 0.1734, "hr@20": 0.4,
                                                                "ndcg@20": 0.2, "mrr": 0.15}},
                         "meanemb": {"best_epoch": 10, "test": {"hr@10": 0.1247, "ndcg@10": 0.0671}}}},
    "attack": {"settings": {"target_model": "sasrec", "generators": ["autoregressive", "random"],
                            "budgets": [250, 500, 1000], "seq_len": 200, "k": 100, "epochs": 20, "patience": 5},
               "budget_curve": [
                   {"generator": g, "budget_sequences": b, "budget_queries": 200 * b, "agr1": a1, "agr10": a10,
                    "surrogate_test_ndcg10": n, "target_test_ndcg10": 0.1734, "epochs_run": 20}
                   for g, b, a1, a10, n in (("autoregressive", 250, 0.25, 0.45, 0.10),
                                            ("autoregressive", 500, 0.30, 0.56, 0.12),
                                            ("autoregressive", 1000, 0.33, 0.539, 0.1245),
                                            ("random", 250, 0.2, 0.40, 0.09), ("random", 500, 0.25, 0.48, 0.11),
                                            ("random", 1000, 0.29, 0.511, 0.1376))]},
    "gro": {"settings": {"target_model": "sasrec", "attack_sequences": 500, "attack_seq_len": 100,
                         "attack_seeds": 3, "views": ["naive", "top-10", "knowing", "drop-promoted"],
                         "surrogate_epochs": 20, "epochs": 1, "from_scratch": False, "min_retention": 0.95},
            "arms": [{"label": row["arm"]} for row in DEFENSES[:7]],
            "defenses": DEFENSES,
            "lambda_choices": {"keep": {"lam": None, "shown_lam": 1.0, "retention_valid": 0.602,
                                        "drop_valid": 0.2, "reason": "no protective λ"},
                               "lowest_index": {"lam": None, "shown_lam": 1.0, "retention_valid": 0.97,
                                                "drop_valid": 0.01, "reason": "no protective λ"}}},
    "seat": {"settings": {"attack_horizon_hours": 24.0, "surrogate_epochs": 30, "surrogate_seconds": 60.0},
             "accounts_needed_per_attack": {"chain-mix/seat+cap": 31, "chain/seat+cap": 40, "chain-mix/seat": 4,
                                            "random/seat": 9, "chain-mix/volume": 16, "random/volume": 16,
                                            "chain-mix/caps": 31},
             "false_positive_rate": {"seat+cap": 0.0016666666666666668, "seat": 0.0004166666666666667,
                                     "caps": 0.0008333333333333334, "volume": 0.0},
             "benign_test_accounts": 2400, "seat_plus_cap_worst_form": "bulk-rerank",
             "seat_plus_cap_worst_form_rate": 0.02},
}


def evidence(headline=None, stages=None) -> Evidence:
    headline = dict(HEADLINE if headline is None else headline)
    stages = STAGES if stages is None else stages
    ev = Evidence(headline, stages)
    return Evidence({**headline, **paper.prevention_keys(ev)}, stages)


# ---- checking every fact against its source ---------------------------------------------------------------------

def check_fact(fact: paper.Fact, ev: Evidence, tables: dict[str, pd.DataFrame], headline: dict | None = None):
    """The fact's value is its source's, and it is shown as the paper formats it."""
    headline = ev.headline if headline is None else headline
    if fact.source == "headline":
        if fact.kind == "interval":
            value = (headline[fact.key], headline[f"{fact.key}_low"], headline[f"{fact.key}_high"])
        else:
            value = headline[fact.key]
        assert tuple(value) == tuple(fact.value) if fact.kind == "interval" else value == fact.value, fact
        assert fact.shown == show(fact.kind, value), fact
    elif fact.source.startswith("stage:"):
        value = paper.dotted(ev.stages[fact.source.removeprefix("stage:")], fact.key)
        assert value == fact.value and fact.shown == show(fact.kind, value), fact
    elif fact.source.startswith("table:"):
        value = paper.cell(tables[fact.source.removeprefix("table:")], fact.key, fact.column)
        assert value == fact.value, fact
        assert fact.shown in ("", paper.cell_shown(value, fact.suffix)), fact
    else:
        raise AssertionError(f"unknown source {fact.source}")


def check_paper(document: paper.Paper, ev: Evidence) -> int:
    checked = 0
    for sentence in document.sentences():
        for fact in sentence.facts:
            check_fact(fact, ev, document.tables)
            assert fact.shown in sentence.text
            checked += 1
    return checked


def test_every_sentence_states_what_its_sources_say():
    ev = evidence()
    document = build_paper(ev)
    assert check_paper(document, ev) > 60
    assert [q.key for q, _ in document.sections] == ["targets", "extraction", "prevention", "gro-curve", "detection",
                                                      "verification", "robustness"]


def numbers_left(text: str, facts) -> list[str]:
    """The numbers of ``text`` that no fact accounts for (metric names such as Agr@10 and top-10 are names)."""
    for shown in sorted((f.shown for f in facts if f.shown), key=len, reverse=True):
        text = text.replace(shown, " ")
    text = re.sub(r"(@|top-)\d+", " ", text)
    return re.findall(r"\d+(?:[.,]\d+)*", text)


def test_the_abstract_states_only_headline_numbers():
    ev = evidence()
    document = build_paper(ev)
    assert 4 <= len(document.abstract) <= 5
    for sentence in document.abstract:
        assert numbers_left(sentence.text, sentence.facts) == [], sentence.text
        assert all(f.source == "headline" or f.kind == "text" for f in sentence.facts), sentence.text
    text = " ".join(s.text for s in document.abstract)
    assert "53.9% [53.2, 54.6]" in text and "12.4% [11.9, 13.0]" in text  # Agr@10 and NDCG@10, with intervals
    assert "1,000 synthetic sequences of 200 items" in text  # at the budget named


def test_a_best_and_its_verdict_never_disagree():
    """The published report named 'top-10 exact, tail resampled' best beside its own 'HELPS THE ATTACKER'."""
    ev = evidence()
    document = build_paper(ev)
    verdicts = document.tables["verdicts"].set_index("defense")["verdict"]
    assert verdicts["top-10 exact, tail resampled"] == "helps the attacker (surrogate NDCG@10)"
    assert verdicts["GRO keep λ=1"] == "protects" and verdicts["Random"] == "protects"
    assert "None" not in verdicts.index and "GRO λ=0 (control)" not in verdicts.index  # references, not defenses
    for sentence in document.sentences():
        if sentence in document.abstract:  # each family's part names its verdict, in brackets
            for part in sentence.text.split(";"):
                if "protective one" in part:
                    assert part.rstrip(".").endswith("(protects)"), part
        elif re.search(r"protective one|it protects|Meets the target", sentence.text):
            claimed = [f for f in sentence.facts if f.column == "verdict"]
            assert claimed and all(f.value == "protects" for f in claimed), sentence.text
        assert "best defense" not in sentence.text
    # the headline key that judged on one measure is named, with the verdict on both
    notes = " ".join(s.text for _, a in document.sections for s in a.notes)
    assert ("defense_frontier_best names top-10 exact, tail resampled for its Agr@10 fall alone; judged on both "
            "measures its verdict is helps the attacker (surrogate NDCG@10)") in notes
    keys = paper.prevention_keys(ev)
    assert keys["prevention_output_defense"] == "Random" and keys["prevention_output_verdict"] == "protects"
    assert keys["prevention_gro_defense"] == "GRO keep λ=1"  # protects, and keeps more than lowest_index
    assert keys["prevention_target_met"] is False
    assert keys["prevention_output_defenses"] == 3 and keys["prevention_output_protective"] == 1


def test_a_gro_point_on_the_curve_is_judged_against_its_utility_matched_null():
    """Against the λ = 0 control both GRO arms 'protect' (they lose utility, and a weaker model is copied worse);
    where the stage measured the curve, the paper's verdict for a point is the one against its null."""
    stages = {**STAGES, "gro": {**STAGES["gro"], "curve": [
        {"arm": "GRO keep λ=1", "rule": "keep", "lam": 1.0, "status": "no protection beyond the null"},
        {"arm": "GRO lowest_index λ=1", "rule": "lowest_index", "lam": 1.0, "status": "copied better than its null"},
    ]}}
    ev = evidence(stages=stages)
    document = build_paper(ev)
    check_paper(document, ev)
    verdicts = document.tables["verdicts"].set_index("defense")["verdict"]
    assert verdicts["GRO keep λ=1"] == "no protection beyond the null"
    assert verdicts["GRO lowest_index λ=1"] == "copied better than its null"
    assert verdicts["Random"] == "protects"  # output defenses keep their verdict against None
    table = document.tables["prevention"].set_index("defense")
    assert table.at["GRO keep λ=1", "verdict against the compared arm"] == "protects"
    text = " ".join(s.text for s in document.sentences())
    assert "GRO: 0 of 2 protect against their utility-matched null" in text
    assert "against its utility-matched null (the curve section): no protection beyond the null" in text
    keys = paper.prevention_keys(ev)
    assert keys["prevention_gro_verdict"] != "protects"


def test_no_protective_lambda_says_which_condition_failed():
    """'PROTECTS' was printed beside 'no protective λ on validation' with no reason."""
    document = build_paper(evidence())
    prevention = dict((q.key, a) for q, a in document.sections)["prevention"]
    text = " ".join(s.text for s in prevention.sentences)
    assert ("GRO, rule keep: no λ passes the validation rule (λ = 1 keeps 60.2% of the control's validation "
            "NDCG@10, below the 95.0% floor)") in text
    assert "GRO, rule lowest_index: no λ passes the validation rule (λ = 1's validation fall of the surrogate's " \
           "NDCG@10, 1.0%, is not above 0 with 95% confidence)" in text


def test_the_defense_attacker_is_said_to_differ_and_why():
    """Agr@10 .539 in the attack stage and .351 in the defense section, with nothing reconciling the two."""
    document = build_paper(evidence())
    extraction = dict((q.key, a) for q, a in document.sections)["extraction"]
    note = " ".join(s.text for s in extraction.notes)
    assert note.startswith("The prevention section attacks with a different, smaller attacker: 500 sequences "
                           "instead of 1,000; sequences of 100 items instead of 200; each of 3 seeds and 4 attacker "
                           "views (naive, top-10, knowing, drop-promoted)")
    assert "reaches Agr@10 35.1%, against 53.9% for the attack stage's" in note
    assert "so each attack is made smaller to fit the profile's time" in note
    caption = extraction.caption
    assert "at most 20 epochs" in caption and "never against a wall clock" in caption


def test_the_budget_curve_sentence_follows_its_table():
    stages = json.loads(json.dumps(STAGES))
    for row in stages["attack"]["budget_curve"]:  # the published curve fell from 500 to 1,000 sequences
        if row["generator"] == "autoregressive" and row["budget_sequences"] == 1000:
            row["agr10"] = 0.50
    ev = evidence({**HEADLINE, "attack_main_agr10": 0.50, "attack_main_agr10_low": 0.49,
                   "attack_main_agr10_high": 0.51}, stages)
    document = build_paper(ev)
    check_paper(document, ev)
    text = " ".join(s.text for q, a in document.sections if q.key == "extraction" for s in a.sentences)
    assert ("Agr@10 rises from 45.0% (autoregressive, 250 sequences) to 50.0% (autoregressive, 1,000 sequences), "
            "falling from 56.0% (autoregressive, 500 sequences) to 50.0%") in text


def test_questions_a_run_did_not_measure_say_so():
    ev = evidence()
    answers = dict((q.key, a) for q, a in build_paper(ev).sections)
    for key in ("gro-curve", "verification"):
        assert not answers[key].measured and answers[key].sentences[0].text.endswith("not measured in this run.")
    empty = build_paper(Evidence({}, {}))
    assert all(not answer.measured for _, answer in empty.sections)
    assert len(empty.tables["verdicts"]) == 0
    text = " ".join(s.text for s in empty.abstract)
    assert "not measured in this run" in text and not re.search(r"\d", text.replace("Agr@10", ""))


DETECTION = {"detect_best": "seat+cap+handoff", "detect_best_accounts_needed_worst": 14.0,
             "volume_cap_accounts_needed_worst": 16.0, "caps_accounts_needed_worst": 14.0,
             "detect_best_cost_increase_over_volume_cap": 0.875, "detect_best_cost_increase_over_caps": 1.0,
             "detect_best_false_positive_rate": 0.0012, "detect_best_false_positive_rate_high": 0.0025,
             "benign_real_timing_false_positive_rate_caps": 0.405}
WATERMARK = {"watermark_utility_retention": 0.995, "watermark_verified_share": 1.0, "watermark_false_claims": 0,
             "watermark_independent_models": 12, "watermark_min_p_independent": 0.08,
             "watermark_max_p_surrogate": 0.0004, "watermark_knowing_attacker_verified": False}
CURVE = {"gro_best_point": "GRO keep λ=0.1", "gro_best_point_retention": 0.962, "gro_best_point_fall_vs_null": 0.04,
         "gro_best_point_fall_vs_null_low": -0.01, "gro_best_point_status": "no protection beyond the null",
         "gro_extraction_ratio_control": 0.52, "gro_extraction_ratio_best": 0.55}


def test_detection_verification_and_curve_sections_read_their_keys():
    ev = evidence({**HEADLINE, **DETECTION, **WATERMARK, **CURVE})
    document = build_paper(ev)
    check_paper(document, ev)
    answers = dict((q.key, a) for q, a in document.sections)
    assert all(answers[k].measured for k in ("detection", "verification", "gro-curve"))
    detection = " ".join(s.text for s in answers["detection"].sentences)
    assert ("the strongest detector, seat+cap+handoff, makes it spread its queries over 14 accounts in the worst "
            "case, against 16 for a volume cap and 14 for the caps (0.88× the volume cap's, 1.00× the caps'): "
            "per-account detection does not hold against an attacker who chooses its own pacing and chain count"
            ) in detection
    assert "flags 0.12% of held-out benign users (95% upper end 0.25%; target ≤ 0.1%: not shown)" in detection
    assert "not measured" not in detection  # the stage measured the searched attacker

    verification = " ".join(s.text for s in answers["verification"].sentences)
    assert "verified (p < 0.01) on 100.0% of the surrogates" in verification
    assert "falsely claims 0 of 12 independent models" in verification and "strips it" in verification
    curve = " ".join(s.text for s in answers["gro-curve"].sentences)
    assert "falls 4.0% (95% interval from -1.0%): no protection beyond the null" in curve
    verdicts = document.tables["verdicts"].set_index("defense")
    assert verdicts.loc["seat+cap+handoff", "verdict"] == "does not hold"
    assert verdicts.loc["watermark", "verdict"] == "proves a copy"
    assert verdicts.loc["watermark", "family"] == "verification"
    abstract = " ".join(s.text for s in document.abstract)
    assert "a watermark is verified on 100.0% of the surrogates with 0 false claims among 12" in abstract
    assert "verification met" in abstract and "detection missed" in abstract
    for sentence in document.abstract:
        assert numbers_left(sentence.text, sentence.facts) == [], sentence.text


def test_detection_is_met_only_when_every_fpr_interval_shows_its_target():
    """Run seat1207: the worst form's rate 0.6% is under 1% but its upper end is 2.1%; that does not show the
    target, as the overall rate's upper end must show 0.1%."""
    from recsec_lib.study.paper.abstract import family_status

    holds = {**DETECTION, "detect_best_cost_increase_over_volume_cap": 2.5, "detect_best_cost_increase_over_caps": 1.5,
             "detect_best_false_positive_rate": 0.0, "detect_best_false_positive_rate_high": 0.0008,
             "detect_best_worst_form": "household45", "detect_best_worst_form_rate": 0.006,
             "detect_best_worst_form_rate_high": 0.0008}
    assert family_status(evidence({**HEADLINE, **holds}))["detection"] == "met"
    wide = {**holds, "detect_best_worst_form_rate_high": 0.021}
    assert family_status(evidence({**HEADLINE, **wide}))["detection"] == "missed"
    detection = " ".join(s.text for s in dict((q.key, a) for q, a in build_paper(evidence({**HEADLINE, **wide}))
                                              .sections)["detection"].sentences)
    assert "household45, at 0.6% (upper end 2.1%; target ≤ 1%: not shown)" in detection


def test_detection_words_follow_the_search_point_and_say_what_was_skipped():
    """The searched attacker's point, its Agr@10, the worst benign form and the parts the run could not do."""
    extra = {"detect_best_worst_point_text": "chain (chains=1, random_mix=0.5), contiguous split, paced over 72 h",
             "detect_best_worst_point_agr10": 0.301, "detect_best_worst_form": "binge",
             "detect_best_worst_form_rate": 0.02, "detect_best_worst_form_rate_high": 0.045,
             "detect_best_fpr_interval_can_show_target": False,
             "real_timing_skipped": "no data mirror (RECSEC_DATA_MIRROR unset), so no ML-100K timestamps"}
    ev = evidence({**HEADLINE, **DETECTION, **extra})
    document = build_paper(ev)
    check_paper(document, ev)
    detection = " ".join(s.text for s in dict((q.key, a) for q, a in document.sections)["detection"].sentences)
    assert ("That worst case is reached by chain (chains=1, random_mix=0.5), contiguous split, paced over 72 h, where "
            "the attacker's surrogate reaches Agr@10 30.1%.") in detection
    assert "its worst kind of benign user, binge, at 2.0% (upper end 4.5%; target ≤ 1%: not shown)" in detection
    assert "too small for its exact interval to show" in detection
    assert ("Benign users with real timing are not measured in this run: no data mirror (RECSEC_DATA_MIRROR unset), "
            "so no ML-100K timestamps.") in detection
    without_agr = build_paper(evidence({**HEADLINE, **DETECTION, **extra, "detect_best_worst_point_agr10": None}))
    text = " ".join(s.text for s in dict((q.key, a) for q, a in without_agr.sections)["detection"].sentences)
    assert "the surrogate's Agr@10 at that point is not measured in this run" in text


def test_the_verdict_table_is_in_percent_with_intervals():
    table = build_paper(evidence()).tables["verdicts"]
    assert list(table.columns) == list(paper.VERDICT_COLUMNS)
    gro = table.set_index("defense").loc["GRO keep λ=1"]
    assert gro["what users keep"] == "NDCG@10 66.6% [65.6, 67.6]"
    assert gro["what the attacker loses"] == ("surrogate NDCG@10 falls 21.9% [18.9, 24.9]; Agr@10 falls 24.3% "
                                              "[21.3, 27.3]")
    assert gro["cost to the owner"].startswith("training: 1.98× the time of an undefended epoch; promotes one item "
                                               "into 30.7% of served top-10 lists (None: 5.0%)")
    seat = table.set_index("defense").loc["SEAT + caps"]
    assert seat["what users keep"] == "benign accounts flagged 0.17% [0.045, 0.43]"  # 4 of 2,400, exact interval
    assert seat["what the attacker loses"] == "needs 31 accounts (1.94× the volume cap's 16)"
    assert seat["verdict"] == "does not hold"


@pytest.mark.parametrize("flagged, accounts, low, high", [(0, 10, 0.0, 0.30850), (1, 10, 0.00253, 0.44502),
                                                          (10, 10, 0.69150, 1.0), (4, 2400, 0.000454, 0.004263)])
def test_exact_binomial_intervals(flagged, accounts, low, high):
    got = paper.clopper_pearson(flagged, accounts)
    assert got == pytest.approx((low, high), abs=2e-5)


def test_clopper_pearson_refuses_impossible_counts():
    with pytest.raises(ValueError, match="0 <= flagged <= accounts"):
        paper.clopper_pearson(3, 2)


@pytest.mark.parametrize("ndcg, agr, combined", [
    ("protects", "protects", "protects"), ("no effect", "no effect", "no effect"),
    ("protects", "no effect", "protects on NDCG@10 only"), ("no effect", "protects", "protects on Agr@10 only"),
    ("helps the attacker", "protects", "helps the attacker (surrogate NDCG@10)"),
    ("no effect", "helps the attacker", "helps the attacker (Agr@10)"), ("reference", "reference", "reference")])
def test_one_verdict_from_both_measures(ndcg, agr, combined):
    assert paper.combined_verdict(ndcg, agr) == combined


def test_a_sentence_cannot_leave_out_or_contradict_its_facts():
    w = paper.Writer(Evidence({"none_agr10": 0.351}, {}))
    w.h("none_agr10")
    with pytest.raises(AssertionError, match="does not show its facts"):
        w.sentence("Agr@10 is about a third.")
    w.table("t", pd.DataFrame({"defense": ["Random"], "verdict": ["no effect"]}))
    with pytest.raises(AssertionError, match="says 'no effect', not 'protects'"):
        w.claim("t", "Random", "verdict", "protects")
    with pytest.raises(ValueError, match="row labels"):
        w.table("u", pd.DataFrame({"defense": ["a", "a"]}))


def test_adding_a_question_is_one_entry():
    def answer(ev, w):
        w.table("extra", pd.DataFrame({"figure": ["x"], "value": ["1.0"]}))
        return paper.Answer([w.sentence(f"The new figure is {w.t('extra', 'x', 'value', '%')}.")], table="extra")

    question = paper.Question("new", "Is there a new question?", answer)
    document = build_paper(evidence(), questions=(*paper.QUESTIONS, question))
    assert document.sections[-1][0].key == "new"
    assert document.sections[-1][1].sentences[0].text == "The new figure is 1.0%."
    html = paper.paper_html(document, Path("."), HEADLINE)
    assert 'data-question="new"' in html and "8. Is there a new question?" in html


def test_every_answer_shows_its_figure_and_table_listed_or_not(tmp_path):
    from recsec_lib.common import plots

    fig = plots.new_figure(2.0, 1.0)
    fig.subplots().plot([0, 1])
    (tmp_path / "gro").mkdir()
    plots.save_png(fig, tmp_path / "gro" / "frontier.png")
    ev = evidence()
    document = build_paper(Evidence(ev.headline, ev.stages, tmp_path))
    prevention = dict((q.key, a) for q, a in document.sections)["prevention"]
    assert prevention.listed and prevention.figure == "gro/frontier.png"
    page = paper.paper_html(document, tmp_path, HEADLINE)
    section = page[page.index('data-question="prevention"'):page.index('data-question="gro-curve"')]
    assert "<ul><li>Output defenses:" in section and "<img " in section and "<table" in section


def test_the_paper_page_has_every_section_and_cites_tables_verbatim():
    document = build_paper(evidence(), params={"common": {"profile": "cpu", "dataset": "ml-1m", "seed": 42,
                                                           "device": "auto"}, "overrides": {"epochs": "5"}},
                           environment={"git_commit": "abc123", "platform": "Linux-x86_64", "python": "3.11.7",
                                        "packages": {"torch": "2.13.0+cpu"}})
    page = paper.paper_html(document, Path("."), HEADLINE)
    for heading in ("Abstract", "1. How good are the targets?", "8. Verdicts", "9. Limitations", "10. Reproduction"):
        assert f">{heading}<" in page
    assert "<code>./run_all.sh --profile cpu -p epochs 5</code>" in page
    assert "No GPU run" in page and "Linux-x86_64" in page
    assert ">83.0<" not in page and ">30.9<" in page  # cells verbatim: 30.9, never re-rounded to 31
    assert "NaN" not in page and "nan" not in page


# ---- the published run ------------------------------------------------------------------------------------------

@pytest.mark.skipif(not (REPO / "results" / "headline.json").is_file(), reason="no published run in results/")
def test_the_abstract_of_the_published_run_states_its_headline():
    headline = json.loads((REPO / "results" / "headline.json").read_text())
    stages = json.loads((REPO / "results" / "metrics.json").read_text())
    stages.pop("report", None)
    ev = Evidence(headline, stages)
    document = build_paper(ev)
    check_paper(document, ev)
    for sentence in document.abstract:
        assert numbers_left(sentence.text, sentence.facts) == [], sentence.text
        for fact in sentence.facts:
            if fact.source == "headline":
                check_fact(fact, ev, document.tables, headline=headline)
    assert not math.isnan(len(document.abstract))


# ---- verification: the watermark stage's section and verdict row ---------------------------------------------

WATERMARK_STAGE = {"settings": {"alpha": 0.001, "min_agreement": 0.25, "attack_sequences": 200, "attack_seq_len": 200,
                                 "surrogate_epochs": 20, "independent_epochs": 2}, "verification": [
    {"group": "marked", "suspect": "the marked box", "agr10": None, "p_value": 1e-40, "claimed": True},
    {"group": "surrogate", "suspect": "random · naive", "agr10": 0.41, "p_value": 1e-9, "claimed": True},
    {"group": "surrogate", "suspect": "chain · top-10", "agr10": 0.12, "p_value": 0.2, "claimed": False},
    {"group": "knowing", "suspect": "autoregressive · drop-rare", "agr10": 0.33, "p_value": 0.004,
     "claimed": False},
    {"group": "independent", "suspect": "sasrec seed 1", "agr10": 0.2, "p_value": 0.5, "claimed": False},
    {"group": "independent", "suspect": "narm seed 1", "agr10": 0.1, "p_value": 0.03, "claimed": False},
]}
WATERMARK_RUN = {"watermark_utility_retention": 0.985, "watermark_utility_retention_low": 0.975,
                 "watermark_utility_retention_high": 0.995, "watermark_verified_share": 0.5,
                 "watermark_false_claims": 0, "watermark_independent_models": 2, "watermark_min_p_independent": 0.03,
                 "watermark_max_p_surrogate": 0.2, "watermark_knowing_attacker_verified": False,
                 "watermark_cost_in_undefended_epochs": 0.9}


def test_verification_section_reads_the_stage_words_from_numbers():
    ev = evidence({**HEADLINE, **WATERMARK_RUN}, {**STAGES, "watermark": WATERMARK_STAGE})
    document = build_paper(ev)
    check_paper(document, ev)
    answer = dict((q.key, a) for q, a in document.sections)["verification"]
    text = " ".join(s.text for s in answer.sentences + answer.notes)
    # the thresholds are the run's settings, not the defaults
    assert "verified (p < 0.001) on 50.0% of the surrogates whose Agr@10 is at least 25.0%" in text
    assert "98.5% [97.5, 99.5] of the target's NDCG@10 kept (target ≥ 99%, interval's low end ≥ 98%: missed)" in text
    assert "falsely claims 0 of 2 independent models (smallest p-value 0.03); fewer than the 12" in text
    assert "that attacker strips it" in text and "0.90× the time of an undefended training epoch" in text
    groups = document.tables["verification"].set_index("suspects")
    assert groups.loc["surrogates of every attacker", "models"] == "2"
    assert groups.loc["surrogates of every attacker", "ownership claimed"] == "1"
    assert groups.loc["independent models", "smallest p"] == "0.03"
    assert groups.loc["surrogates of every attacker", "Agr@10 with the marked target, %"] == "12.0 to 41.0"
    row = document.tables["verdicts"].set_index("defense").loc["watermark"]
    assert row["verdict"] == "does not prove every copy" and row["what users keep"] == "NDCG@10 98.5% [97.5, 99.5]"
    assert "0.90× an undefended epoch" in row["cost to the owner"] and "p < 0.001" in row["cost to the owner"]
    limits = " ".join(s.text for s in document.limitations)
    assert "stolen copies come from 200 × 200 queries with surrogates of 20 epochs" in limits
    assert "independent models are trained for 2 epochs, weaker than the target" in limits


def test_a_mark_that_did_not_take_is_said_before_anything_it_would_explain():
    """Run study1206c: the marked box itself scored p = 1, so 'the knowing attacker strips it' was a false story."""
    run = {**WATERMARK_RUN, "watermark_verified_share": 0.0, "watermark_marked_box_p_value": 1.0,
           "watermark_marked_box_verified": False}
    ev = evidence({**HEADLINE, **run}, {**STAGES, "watermark": WATERMARK_STAGE})
    document = build_paper(ev)
    check_paper(document, ev)
    answer = dict((q.key, a) for q, a in document.sections)["verification"]
    text = " ".join(s.text for s in answer.sentences)
    assert answer.sentences[0].text.startswith("The mark did not take: the marked target itself")
    assert "(p = 1, a claim needs p < 0.001)" in text
    assert "strips it" not in text and "has no mark to strip" in text
    row = document.tables["verdicts"].set_index("defense").loc["watermark"]
    assert row["verdict"] == "proves no copy: the mark did not take" and "strips" not in row["worst attacker"]
    abstract = " ".join(s.text for s in document.abstract)
    assert "the mark did not take: the marked target itself is not verified, p = 1" in abstract
    took = evidence({**HEADLINE, **run, "watermark_marked_box_p_value": 1e-40, "watermark_marked_box_verified": True},
                    {**STAGES, "watermark": WATERMARK_STAGE})
    answer = dict((q.key, a) for q, a in build_paper(took).sections)["verification"]
    assert "did not take" not in " ".join(s.text for s in answer.sentences)
    assert "that attacker strips it" in " ".join(s.text for s in answer.sentences)


def test_verification_without_a_strong_copy_says_so_and_without_the_stage_is_not_measured():
    run = {**WATERMARK_RUN, "watermark_verified_share": None}
    ev = evidence({**HEADLINE, **run}, {**STAGES, "watermark": WATERMARK_STAGE})
    document = build_paper(ev)
    check_paper(document, ev)
    answer = dict((q.key, a) for q, a in document.sections)["verification"]
    assert answer.measured and "No stolen copy reached an Agr@10 of 25.0%" in answer.sentences[0].text
    row = document.tables["verdicts"].set_index("defense").loc["watermark"]
    assert row["verdict"] == "undecided: no strong copy to verify"
    bare = build_paper(evidence())
    answer = dict((q.key, a) for q, a in bare.sections)["verification"]
    assert not answer.measured and "not measured in this run" in answer.sentences[0].text
    assert "watermark" not in set(bare.tables["verdicts"]["defense"])
