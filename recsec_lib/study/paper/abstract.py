"""The abstract: four or five sentences, every number a headline key, and the verdict."""

from __future__ import annotations

from recsec_lib.study.paper.detection import detection_holds_on_cost
from recsec_lib.study.paper.model import NOT_MEASURED, Evidence, Sentence, Writer
from recsec_lib.study.paper.prevention import PROTECTS
from recsec_lib.study.paper.questions import model_name, target_model
from recsec_lib.study.paper.verification import mark_took
from recsec_lib.study.report import meets

# ---- the abstract -------------------------------------------------------------------------------------------


def dataset_size_key(ev: Evidence, what: str) -> str:
    return f"{str(ev.headline.get('dataset', '')).replace('-', '')}_{what}"


def abstract(ev: Evidence, w: Writer) -> list[Sentence]:
    """Four or five sentences, every number a headline key."""
    h = ev.headline
    out = []
    model = target_model(ev)
    users, items = dataset_size_key(ev, "users"), dataset_size_key(ev, "items")
    size = (f" ({w.h(users, 'count')} users, {w.h(items, 'count')} items)" if ev.has(users, items) else "")
    quality = ""
    if ev.has("attack_main_target_ndcg10", "attack_main_target_ndcg10_low"):
        quality = f", test NDCG@10 {w.h('attack_main_target_ndcg10', 'interval')}"
    elif ev.has(f"{model}_test_ndcg10"):
        quality = f", test NDCG@10 {w.h(f'{model}_test_ndcg10')}"
    data = w.h("dataset", "text") if ev.has("dataset") else "its dataset"
    out.append(w.sentence(
        f"We steal a {model_name(model)} recommender trained on {data}{size}{quality}, served as a black "
        "box that answers each viewing history with a ranked list, by the data-free extraction attack of Yue et "
        "al., and judge three defense families (prevention, detection, verification) against the strongest "
        "attacker each one faces."))
    if ev.has("attack_main_agr10", "attack_main_agr10_low", "attack_main_surrogate_ndcg10_low",
              "attack_budget_sequences", "attack_seq_len"):
        out.append(w.sentence(
            f"With {w.h('attack_budget_sequences', 'count')} synthetic sequences of {w.h('attack_seq_len', 'count')} "
            f"items, the surrogate's top-10 list shares {w.h('attack_main_agr10', 'interval')} of the target's "
            f"(Agr@10) and its NDCG@10 is {w.h('attack_main_surrogate_ndcg10', 'interval')}."))
    else:
        out.append(w.plain(f"The attack's fidelity with intervals was {NOT_MEASURED}."))
    parts = []
    for name, label in (("output", "of the output defenses"), ("gro", "of the GRO targets")):
        p = f"prevention_{name}"
        if not ev.has(f"{p}_defense", f"{p}_retention", f"{p}_ndcg10_fall_low", f"{p}_agr10_fall_low"):
            continue
        which = ("the protective one keeping most utility" if ev.headline[f"{p}_verdict"] == PROTECTS
                 else "the closest to protecting")
        parts.append(f"{label}, {which}, {w.h(f'{p}_defense', 'text')}, keeps "
                     f"{w.h(f'{p}_retention', 'interval')} of NDCG@10 while the surrogate's NDCG@10 falls "
                     f"{w.h(f'{p}_ndcg10_fall', 'interval')} and its Agr@10 {w.h(f'{p}_agr10_fall', 'interval')} "
                     f"({w.h(f'{p}_verdict', 'text')})")
    if parts:
        out.append(w.sentence("Each against its strongest attacker: " + "; ".join(parts) + "."))
    else:
        out.append(w.plain(f"Prevention was {NOT_MEASURED}."))
    out.append(detection_and_verification_abstract(ev, w))
    out.append(verdict_sentence(ev, w))
    return out


def detection_and_verification_abstract(ev: Evidence, w: Writer) -> Sentence:
    if ev.has("detect_best", "detect_best_accounts_needed_worst", "volume_cap_accounts_needed_worst"):
        detection = (f"the strongest detector, {w.h('detect_best', 'text')}, makes an attacker who chooses its own "
                     f"parameters use {w.h('detect_best_accounts_needed_worst', 'count')} accounts against "
                     f"{w.h('volume_cap_accounts_needed_worst', 'count')} for a volume cap")
    elif ev.has("seat_plus_cap_accounts_needed", "volume_cap_accounts_needed", "seat_plus_cap_worst_attack"):
        detection = (f"SEAT with the caps makes the cheapest attacker of a fixed zoo "
                     f"({w.h('seat_plus_cap_worst_attack', 'text')}) use "
                     f"{w.h('seat_plus_cap_accounts_needed', 'count')} accounts against "
                     f"{w.h('volume_cap_accounts_needed', 'count')} for a volume cap alone")
        if ev.has("seat_plus_cap_false_positive_rate"):
            detection += f", flagging {w.h('seat_plus_cap_false_positive_rate')} of benign accounts"
    else:
        detection = f"detection was {NOT_MEASURED}"
    if ev.has("watermark_verified_share"):
        verification = f"a watermark is verified on {w.h('watermark_verified_share')} of the surrogates"
        if ev.has("watermark_false_claims", "watermark_independent_models"):
            verification += (f" with {w.h('watermark_false_claims', 'count')} false claims among "
                             f"{w.h('watermark_independent_models', 'count')} independent models")
        if mark_took(ev) is False:
            verification += (f" (the mark did not take: the marked target itself is not verified, p = "
                             f"{w.h('watermark_marked_box_p_value', 'p')})")
    else:
        verification = f"ownership verification was {NOT_MEASURED}"
    return w.sentence(f"For detection, {detection}; {verification}.")


def family_status(ev: Evidence) -> dict[str, str]:
    """Each family's target: "met", "missed" or NOT_MEASURED, from headline keys only."""
    h = ev.headline
    status = {}
    status["prevention"] = (NOT_MEASURED if "prevention_target_met" not in h
                            else "met" if h["prevention_target_met"] else "missed")
    if h.get("detect_best_accounts_needed_worst") is not None:
        met = (detection_holds_on_cost(h) and meets("detect_best_false_positive_rate_high", h)
               and meets("detect_best_worst_form_rate_high", h))
        status["detection"] = "met" if met else "missed"
    elif h.get("seat_plus_cap_cost_increase_over_volume_cap") is not None:
        met = (h["seat_plus_cap_cost_increase_over_volume_cap"] >= 4
               and (h.get("seat_plus_cap_false_positive_rate") or 1.0) <= 0.001)
        status["detection"] = "met" if met else "missed"
    else:
        status["detection"] = NOT_MEASURED
    if h.get("watermark_verified_share") is not None:
        met = (h["watermark_verified_share"] >= 1.0 and h.get("watermark_false_claims") == 0
               and (h.get("watermark_utility_retention") or 0.0) >= 0.99)
        status["verification"] = "met" if met else "missed"
    else:
        status["verification"] = NOT_MEASURED
    return status


def verdict_sentence(ev: Evidence, w: Writer) -> Sentence:
    status = family_status(ev)
    met = [family for family, s in status.items() if s == "met"]
    if ev.has("attack_main_agr10"):
        works = (f"Verdict: the stolen copy shares {w.h('attack_main_agr10')} of the target's top-10 list (Agr@10) at this "
                 "scale, and ")
    else:
        works = "Verdict: "
    if not met:
        head = "no defense family meets its target"
    else:
        head = " and ".join(met) + (" meets its target" if len(met) == 1 else " meet their targets")
    detail = ", ".join(f"{family} {s}" for family, s in status.items())
    return w.sentence(f"{works}{head} ({detail}).")
