"""The questions the paper answers, one function each, and QUESTIONS: adding a question is one entry."""

from __future__ import annotations

import math

import pandas as pd

from recsec_lib.study.paper.detection import DETECTOR_NAMES, _needed, detection_holds_on_cost, seat_detection_table
from recsec_lib.study.paper.model import (NOT_MEASURED, Answer, Evidence, Question, Sentence, Writer, _count, _pct_number,
                                         dotted, interval_cell, not_measured, show)
from recsec_lib.study.paper.prevention import (FAMILY_NAMES, PROTECTS, REFERENCE_FAMILIES, family_of, meets_frontier_target,
                                              prevention_frame, prevention_table, representative)
from recsec_lib.study.paper.verification import answer_verification
from recsec_lib.study.report import PUBLISHED_ATTACK, PUBLISHED_QUALITY, meets

# ---- the questions ----------------------------------------------------------------------------------------------

QUALITY = (("hr@10", "HR@10 %"), ("ndcg@10", "NDCG@10 %"), ("hr@20", "HR@20 %"), ("ndcg@20", "NDCG@20 %"),
           ("mrr", "MRR %"))
PUBLISHED_BEST = "SASRec+ (full softmax CE)"  # the strongest published ML-1M row of STUDY.md's table


MODEL_NAMES = {"sasrec": "SASRec", "bert4rec": "BERT4Rec", "narm": "NARM", "meanemb": "averaged-embedding"}


def model_name(name: str) -> str:
    """How the paper writes an architecture: SASRec, BERT4Rec, NARM, averaged-embedding (others as they are)."""
    return MODEL_NAMES.get(name, name)


def target_model(evidence: Evidence) -> str:
    for stage in ("attack", "gro", "train"):
        name = dotted(evidence.stage(stage), "settings.target_model")
        if name:
            return str(name)
    return "sasrec"


def quality_paper_table(evidence: Evidence) -> pd.DataFrame:
    """Test quality of every trained model of the run, then the published rows, in percent."""
    rows = []
    for name, record in (evidence.stage("train").get("models") or {}).items():
        test = record.get("test", {})
        rows.append({"model": name, "source": "this run (test users)",
                     **{label: _pct_cell(test.get(key)) for key, label in QUALITY}})
    for _, row in PUBLISHED_QUALITY.iterrows():
        rows.append({"model": row["model"], "source": f"published: {row['source']}",
                     "HR@10 %": _pct_cell(row["hr@10"]), "NDCG@10 %": _pct_cell(row["ndcg@10"]),
                     "HR@20 %": "—", "NDCG@20 %": "—", "MRR %": "—"})
    return pd.DataFrame(rows, columns=["model", "source", *[label for _, label in QUALITY]])


def _pct_cell(value) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    return _pct_number(value)


def answer_targets(ev: Evidence, w: Writer) -> Answer:
    models = ev.stage("train").get("models") or {}
    if not models:
        return not_measured("The trained targets")
    w.table("quality", quality_paper_table(ev))
    target = target_model(ev)
    sentences = []
    if target in models:
        text = (f"The attacked target, {w.t('quality', target, 'model')}, reaches HR@10 "
                f"{w.t('quality', target, 'HR@10 %', '%')} and NDCG@10 ")
        if ev.has("attack_main_target_ndcg10", "attack_main_target_ndcg10_low"):
            ndcg = w.t("quality", target, "NDCG@10 %", "%")
            interval = w.h("attack_main_target_ndcg10", "interval")
            text += interval if interval.startswith(ndcg) else f"{ndcg} ({interval} when the report scored it)"
            text += " (95% interval over test users)"
        else:
            text += w.t("quality", target, "NDCG@10 %", "%")
        text += (" on the test users (full ranking over all items, items already in the history excluded), against "
                 f"HR@10 {w.t('quality', PUBLISHED_BEST, 'HR@10 %', '%')} and NDCG@10 "
                 f"{w.t('quality', PUBLISHED_BEST, 'NDCG@10 %', '%')} published for SASRec+ on ML-1M.")
        sentences.append(w.sentence(text))
    others = [name for name in models if name != target]
    if others:
        parts = [f"{w.t('quality', name, 'model')} HR@10 {w.t('quality', name, 'HR@10 %', '%')}, NDCG@10 "
                 f"{w.t('quality', name, 'NDCG@10 %', '%')}" for name in others]
        sentences.append(w.sentence("The other models of this run: " + "; ".join(parts) + "."))
    figure = ev.file("train/curves.png")
    best = dotted(ev.stage("train"), f"models.{target}.best_epoch")
    if best is not None:
        sentences.append(w.sentence(
            f"The figure shows each model's training loss and validation HR@10 / NDCG@10 per epoch; the "
            f"checkpoint kept for {target} is that of epoch {w.s('train', f'models.{target}.best_epoch', 'count')}, "
            "its best on validation."))
    return Answer(sentences, figure=figure, table="quality",
                  caption="Training loss and validation HR@10 / NDCG@10 (%) per epoch, one line per model (full "
                          "ranking, seen items filtered). Table: test figures in %, beside the published ones "
                          "(labelled; the seed's row gives only its HR@10).",
                  alt="Training curves: loss and validation HR@10 and NDCG@10 in percent against the epoch, one "
                      "line per model.")


def budget_paper_table(curve: list[dict]) -> pd.DataFrame:
    rows = []
    for row in sorted(curve, key=lambda r: (r["generator"], r["budget_sequences"])):
        target = row.get("target_test_ndcg10") or float("nan")
        rows.append({"attack": f"{row['generator']}, {row['budget_sequences']:,} sequences",
                     "queries": f"{int(row['budget_queries']):,}" if row.get("budget_queries") else "—",
                     "Agr@1 %": _pct_cell(row["agr1"]), "Agr@10 %": _pct_cell(row["agr10"]),
                     "surrogate NDCG@10 %": _pct_cell(row.get("surrogate_test_ndcg10")),
                     "surrogate / target NDCG@10 %": _pct_cell(row["surrogate_test_ndcg10"] / target
                                                               if target and target == target else None),
                     "epochs run": str(row.get("epochs_run", "—"))})
    return pd.DataFrame(rows)


def surrogate_training_words(attack_settings: dict) -> str:
    """How the attack stage trains its surrogates, from its settings: fixed epochs, no wall-clock cap."""
    from recsec_lib.attack.surrogate import SurrogateSettings

    epochs, patience = attack_settings.get("epochs"), attack_settings.get("patience") or 0
    words = f"Each surrogate trains for at most {epochs} epochs with its seed"
    if patience:
        words += (f" (after epoch {SurrogateSettings().min_epochs} it stops once its Agr@10 on the attacker's own "
                  f"held-out synthetic queries has not improved for {patience} epochs)")
    return words + ", never against a wall clock, so a larger budget never trains less"


def answer_extraction(ev: Evidence, w: Writer) -> Answer:
    attack = ev.stage("attack")
    curve = attack.get("budget_curve") or []
    if not curve:
        return not_measured("Model extraction")
    w.table("budget", budget_paper_table(curve))
    settings = attack.get("settings", {})
    main = int(ev.headline.get("attack_budget_sequences") or max(r["budget_sequences"] for r in curve))
    generator = ev.headline.get("attack_main_generator") or max(
        (r for r in curve if r["budget_sequences"] == main), key=lambda r: r["agr10"])["generator"]
    main_row = f"{generator}, {main:,} sequences"
    sentences = []
    box = f"a box that returns top-{w.s('attack', 'settings.k', 'count')} lists"
    if ev.has("attack_main_agr10", "attack_main_agr10_low", "attack_main_surrogate_ndcg10_low",
              "attack_budget_sequences", "attack_seq_len", "attack_main_generator"):
        sentences.append(w.sentence(
            f"At the main budget, {w.h('attack_budget_sequences', 'count')} synthetic sequences of "
            f"{w.h('attack_seq_len', 'count')} items ({w.t('budget', main_row, 'queries')} queries to {box}), the "
            f"strongest query generator, {w.h('attack_main_generator', 'text')}, trains a surrogate whose top 10 "
            f"shares {w.h('attack_main_agr10', 'interval')} of the target's (Agr@10) and whose own NDCG@10 is "
            f"{w.h('attack_main_surrogate_ndcg10', 'interval')}, "
            f"{w.t('budget', main_row, 'surrogate / target NDCG@10 %', '%')} of the target's (95% intervals "
            "over test users, one attack seed)."))
    else:
        sentences.append(w.sentence(
            f"At the main budget, {w.t('budget', main_row, 'attack')} of {w.s('attack', 'settings.seq_len', 'count')} "
            "items "
            f"({w.t('budget', main_row, 'queries')} queries to {box}), the surrogate's top 10 shares "
            f"{w.t('budget', main_row, 'Agr@10 %', '%')} of the target's (Agr@10) and its NDCG@10 is "
            f"{w.t('budget', main_row, 'surrogate NDCG@10 %', '%')} (no interval: the report found no surrogate "
            "checkpoint to score per user)."))
    steps = sorted((r for r in curve if r["generator"] == generator), key=lambda r: r["budget_sequences"])
    if len(steps) > 1:
        first, last = steps[0], steps[-1]
        first_row = f"{generator}, {first['budget_sequences']:,} sequences"
        moves = "rises" if last["agr10"] > first["agr10"] else "falls" if last["agr10"] < first["agr10"] else "stays"
        falls = [(f"{a['generator']}, {a['budget_sequences']:,} sequences",
                  f"{b['generator']}, {b['budget_sequences']:,} sequences")
                 for a, b in zip(steps, steps[1:]) if b["agr10"] < a["agr10"]]
        text = (f"Over the budgets, Agr@10 {moves} from {w.t('budget', first_row, 'Agr@10 %', '%')} "
                f"({w.t('budget', first_row, 'attack')}) to {w.t('budget', main_row, 'Agr@10 %', '%')} "
                f"({w.t('budget', main_row, 'attack')})")
        if falls:
            text += ", falling from " + " and from ".join(
                f"{w.t('budget', a, 'Agr@10 %', '%')} ({w.t('budget', a, 'attack')}) to "
                f"{w.t('budget', b, 'Agr@10 %', '%')}" for a, b in falls)
        elif moves == "rises":
            text += ", at every step"
        yue = PUBLISHED_ATTACK.set_index("target").loc["SASRec", "autoregressive agr@10"]
        text += (f"; Yue et al. report {_pct_number(yue)}% (autoregressive, SASRec) at 5,000 sequences of 200 "
                 "items (published, not measured here).")
        sentences.append(w.sentence(text))
    notes = [defense_attacker_sentence(ev, w)]
    return Answer(sentences, figure=ev.file("attack/budget_curve.png"), table="budget",
                  caption=("Agr@10 (solid) and Agr@1 (dashed), in % of the target's top-10 (top-1) list, against "
                           "the attack budget in synthetic sequences, per query generator; agreement on the real "
                           f"test users. {surrogate_training_words(settings)}."),
                  alt="Line chart: the surrogate's agreement with the target in percent against the attack "
                      "budget, one colour per query generator.",
                  notes=[n for n in notes if n is not None])


def defense_attacker_sentence(ev: Evidence, w: Writer) -> Sentence | None:
    """Why the defense section's undefended attacker is not the attack stage's (item 2 of issue 26)."""
    gro, attack = ev.stage("gro").get("settings"), ev.stage("attack").get("settings")
    needed = ("attack_sequences", "attack_seq_len", "attack_seeds", "views", "surrogate_epochs")
    if not gro or not attack or not ev.has("none_agr10", "attack_budget_sequences") \
            or any(key not in gro for key in needed) or any(key not in attack for key in ("seq_len", "epochs")):
        return None
    differences = []
    if gro["attack_sequences"] != ev.headline.get("attack_budget_sequences"):
        differences.append(f"{w.s('gro', 'settings.attack_sequences', 'count')} sequences instead of "
                           f"{w.h('attack_budget_sequences', 'count')}")
    if gro["attack_seq_len"] != attack.get("seq_len"):
        differences.append(f"sequences of {w.s('gro', 'settings.attack_seq_len', 'count')} items instead of "
                           f"{w.s('attack', 'settings.seq_len', 'count')}")
    views = gro.get("views") or []
    differences.append(f"each of {w.s('gro', 'settings.attack_seeds', 'count')} seeds and {len(views)} attacker "
                       f"views ({', '.join(views)}) where the attack stage runs one seed, naive")
    if gro.get("surrogate_epochs") != attack.get("epochs"):
        differences.append(f"surrogates of {w.s('gro', 'settings.surrogate_epochs', 'count')} epochs instead of "
                           f"{w.s('attack', 'settings.epochs', 'count')}")
    arms = len(ev.stage("gro").get("arms") or [])
    fewer = (gro["attack_sequences"] * gro["attack_seq_len"]
             < (ev.headline.get("attack_budget_sequences") or 0) * (attack.get("seq_len") or 0))
    why = (f"every one of its {arms} arms faces every attacker, so each attack is made smaller to fit the "
           "profile's time" if fewer else f"every one of its {arms} arms faces every attacker")
    return w.sentence(
        f"The prevention section attacks with a different{', smaller' if fewer else ''} attacker: "
        f"{'; '.join(differences)}. Its strongest attacker of the undefended target reaches Agr@10 "
        f"{w.h('none_agr10')}, against "
        f"{w.h('attack_main_agr10') if ev.has('attack_main_agr10') else 'the figure above'} for the attack "
        f"stage's: {why}.")


def answer_prevention(ev: Evidence, w: Writer) -> Answer:
    frame = prevention_frame(ev)
    if frame is None:
        return not_measured("Prevention defenses")
    w.table("prevention", prevention_table(frame))
    sentences = []
    defenses = frame[~frame["family"].isin(REFERENCE_FAMILIES)]
    for name, label in FAMILY_NAMES.items():
        rows = defenses[defenses["family"].map(family_of) == name]
        if rows.empty:
            continue
        best = representative(rows)
        protective = int((rows["verdict"] == PROTECTS).sum())
        arm = best["arm"]
        by_null = bool(rows["judged_against_null"].any())
        rule = "against their utility-matched null" if by_null else "on both measures"
        head = f"{label}: {protective} of {len(rows)} protect {rule}; " if len(rows) > 1 else f"{label}: "
        if best["verdict"] == PROTECTS:
            w.claim("prevention", arm, "verdict", PROTECTS)
            lead = "the protective one that keeps most utility" if len(rows) > 1 else "it protects"
        else:
            lead = "the closest to protecting" if len(rows) > 1 else "its only defense"
        sentences.append(w.sentence(
            f"{head}{lead}, {w.t('prevention', arm, 'defense')}, keeps "
            f"{w.t('prevention', arm, 'NDCG@10 kept, % [95% CI]', '%')} of NDCG@10 against its strongest attacker, "
            f"whose surrogate's NDCG@10 falls {w.t('prevention', arm, 'surrogate NDCG@10 fall, % [95% CI]', '%')} "
            f"and Agr@10 {w.t('prevention', arm, 'Agr@10 fall, % [95% CI]', '%')}"
            + (f" against {w.t('prevention', arm, 'compared with')} "
               f"({w.t('prevention', arm, 'verdict against the compared arm')}); against its utility-matched "
               f"null (the curve section): {w.t('prevention', arm, 'verdict')}."
               if best["judged_against_null"] else f": {w.t('prevention', arm, 'verdict')}.")))
    for rule, choice in (ev.stage("gro").get("lambda_choices") or {}).items():
        sentence = lambda_sentence(ev, w, rule, choice)
        if sentence is not None:
            sentences.append(sentence)
    notes = [target_sentence(ev, w, frame)]
    if ev.stage("gro").get("settings"):
        from recsec_lib.study.report import gro_training_sentence

        notes.append(w.plain(gro_training_sentence(ev.stage("gro"))))
    stale = headline_best_sentence(ev, w, frame)
    if stale is not None:
        notes.append(stale)
    gro = ev.stage("gro").get("settings") or {}
    notes.append(w.sentence(
        "Each fall is measured against the strongest attacker of the compared arm's model (None for output "
        f"defenses, the λ = 0 control for GRO), with 95% intervals over test users and "
        f"{w.s('gro', 'settings.attack_seeds', 'count')} attack seeds; they do not include training noise."
        if gro else "Falls with 95% intervals over test users and attack seeds."))
    return Answer(sentences, figure=ev.file("gro/frontier.png"), table="prevention", notes=notes, listed=True,
                  caption=("Each defense at its strongest attacker: right = more of the target's NDCG@10 kept for "
                           "users (% of the compared arm), up = a larger fall of the stolen surrogate's NDCG@10 "
                           "(%); bars are 95% intervals. Points are numbered as in the legend; points that "
                           "coincide share a label. The shaded corner is the target (≥ 99% kept, ≥ 30% fall)."),
                  alt="Scatter plot: utility kept against the fall of the surrogate's NDCG@10 for each defense, "
                      "in percent, with 95% intervals.")


def lambda_sentence(ev: Evidence, w: Writer, rule: str, choice: dict) -> Sentence | None:
    """GRO's λ choice on validation for one zero-gradient rule, naming the condition that failed."""
    if choice.get("lam") is not None:
        return w.sentence(f"GRO, rule {rule}: λ = {w.s('gro', f'lambda_choices.{rule}.lam', 'number')} was chosen "
                          "on validation (its validation fall is above 0 and it keeps the utility floor).")
    if choice.get("shown_lam") is None:
        return w.plain(f"GRO, rule {rule}: {choice.get('reason', 'no λ')}.")
    floor = dotted(ev.stage("gro"), "settings.min_retention")
    kept = choice.get("retention_valid")
    shown = w.s("gro", f"lambda_choices.{rule}.shown_lam", "number")
    if floor is not None and kept is not None and kept < floor:
        why = (f"λ = {shown} keeps {w.s('gro', f'lambda_choices.{rule}.retention_valid', 'percent')} of the "
               f"control's validation NDCG@10, below the {w.s('gro', 'settings.min_retention', 'percent')} floor")
    else:
        why = (f"λ = {shown}'s validation fall of the surrogate's NDCG@10, "
               f"{w.s('gro', f'lambda_choices.{rule}.drop_valid', 'percent')}, is not above 0 with 95% confidence")
    return w.sentence(f"GRO, rule {rule}: no λ passes the validation rule ({why}); the test figures above are "
                      f"λ = {shown}'s.")


def target_sentence(ev: Evidence, w: Writer, frame: pd.DataFrame) -> Sentence:
    defenses = frame[~frame["family"].isin(REFERENCE_FAMILIES)]
    met = [row["arm"] for _, row in defenses.iterrows() if meets_frontier_target(row)]
    if not met:
        return w.plain("No defense meets the target: protecting on both measures while keeping ≥ 99% of NDCG@10 "
                       "with a fall of ≥ 30%.")
    names = ", ".join(w.t("prevention", arm, "defense") for arm in met)
    return w.sentence(f"Meets the target (protects on both measures, keeps ≥ 99% of NDCG@10, falls ≥ 30%): {names}.")


def headline_best_sentence(ev: Evidence, w: Writer, frame: pd.DataFrame) -> Sentence | None:
    """The GRO stage's headline "best defense" judged on one measure; said plainly when this paper disagrees."""
    best = ev.headline.get("defense_frontier_best")
    if not best or best not in set(frame["arm"]) or ev.headline.get("defense_frontier_best_fall", 0) <= 0:
        return None
    verdict = frame.loc[frame["arm"] == best, "verdict"].iloc[0]
    if verdict == PROTECTS:
        return None
    return w.sentence(
        f"The GRO stage's headline key defense_frontier_best names {w.h('defense_frontier_best', 'text')} for its "
        f"{w.h('defense_frontier_best_measure', 'text')} fall alone; judged on both measures its verdict is "
        f"{w.t('prevention', best, 'verdict')}, so this report does not count it as protecting.")


def answer_gro_curve(ev: Evidence, w: Writer) -> Answer:
    if not ev.has("gro_extraction_ratio_control") and not ev.has("gro_no_point_reason") \
            and not ev.has("gro_best_point_retention"):
        return not_measured("GRO's trade-off curve against a utility-matched null")
    rows = []
    for key, what, kind in (("gro_best_point", "best point (validation)", "text"),
                            ("gro_best_point_retention", "NDCG@10 kept, %", "percent"),
                            ("gro_best_point_fall_vs_null", "surrogate NDCG@10 fall against the null, %", "percent"),
                            ("gro_best_point_fall_vs_null_low", "its 95% interval's low end, %", "percent"),
                            ("gro_best_point_status", "status", "text"),
                            ("gro_extraction_ratio_control", "extraction ratio, λ = 0 control", "number"),
                            ("gro_extraction_ratio_best", "extraction ratio, best point", "number"),
                            ("gro_scratch_utility_retention", "from scratch: NDCG@10 kept, %", "percent"),
                            ("gro_scratch_surrogate_ndcg10_drop", "from scratch: surrogate NDCG@10 fall, %",
                             "percent"),
                            ("gro_no_point_reason", "why there is no best point", "text")):
        if ev.has(key):
            value = ev.headline[key]
            rows.append({"figure": what, "value": _pct_number(value) if kind == "percent" else show(kind, value)})
    w.table("gro_curve", pd.DataFrame(rows, columns=["figure", "value"]))
    sentences = []
    if ev.has("gro_best_point_retention", "gro_best_point_fall_vs_null", "gro_best_point_fall_vs_null_low"):
        sentences.append(w.sentence(
            f"The best GRO point chosen on validation, {w.h('gro_best_point', 'text') if ev.has('gro_best_point') else 'unnamed'}, "
            f"keeps {w.h('gro_best_point_retention')} of the control's NDCG@10; against a model of the same "
            f"utility trained with no defensive aim, its surrogate's NDCG@10 falls "
            f"{w.h('gro_best_point_fall_vs_null')} (95% interval from {w.h('gro_best_point_fall_vs_null_low')})"
            + (f": {w.h('gro_best_point_status', 'text')}." if ev.has("gro_best_point_status") else ".")))
    elif ev.has("gro_no_point_reason"):
        sentences.append(w.sentence(f"No GRO point is reported: {w.h('gro_no_point_reason', 'text')}."))
    if ev.has("gro_extraction_ratio_control"):
        text = (f"The extraction ratio (surrogate NDCG@10 / served NDCG@10) is "
                f"{w.h('gro_extraction_ratio_control', 'number')} for the λ = 0 control")
        if ev.has("gro_extraction_ratio_best"):
            text += f" and {w.h('gro_extraction_ratio_best', 'number')} for the best point"
        sentences.append(w.sentence(text + "; a higher ratio means the defended box is copied more faithfully."))
    if ev.has("gro_scratch_utility_retention", "gro_scratch_surrogate_ndcg10_drop"):
        sentences.append(w.sentence(
            f"Trained from scratch, GRO keeps {w.h('gro_scratch_utility_retention')} of NDCG@10 for a "
            f"{w.h('gro_scratch_surrogate_ndcg10_drop')} fall of the surrogate's NDCG@10."))
    return Answer(sentences, figure=ev.first_file("gro/curve.png", "gro/*curve*.png"), table="gro_curve",
                  caption="Served NDCG@10 kept against the surrogate's NDCG@10 fall for each GRO point, with the "
                          "output defenses and the utility-matched null on the same axes (95% intervals).",
                  alt="GRO's trade-off curve: utility kept against the surrogate's fall, one line per rule.")


def answer_detection(ev: Evidence, w: Writer) -> Answer:
    if ev.has("detect_best", "detect_best_accounts_needed_worst"):
        return detection_against_choosing_attackers(ev, w)
    if not ev.has("seat_plus_cap_accounts_needed", "volume_cap_accounts_needed", "seat_plus_cap_worst_attack",
                  "seat_plus_cap_cost_increase_over_volume_cap"):
        return not_measured("Detection")
    w.table("detection", seat_detection_table(ev))
    seat_settings = ev.stage("seat").get("settings") or {}
    sentences = [w.sentence(
        f"Against the cheapest attacker of the zoo, {w.h('seat_plus_cap_worst_attack', 'text')}, SEAT with the caps "
        f"makes the attacker spread its queries over {w.h('seat_plus_cap_accounts_needed', 'count')} accounts, "
        f"{w.h('seat_plus_cap_cost_increase_over_volume_cap', 'ratio')} the "
        f"{w.h('volume_cap_accounts_needed', 'count')} a volume cap alone forces (target ≥ 4×: "
        f"{'met' if ev.headline['seat_plus_cap_cost_increase_over_volume_cap'] >= 4 else 'missed'})"
        + (f"; over the caps alone SEAT adds {w.h('seat_plus_cap_cost_increase_over_caps', 'ratio')}."
           if ev.has("seat_plus_cap_cost_increase_over_caps") else "."))]
    if ev.has("seat_plus_cap_false_positive_rate"):
        row = DETECTOR_NAMES["seat+cap"]
        text = (f"On held-out benign accounts SEAT with the caps flags "
                f"{w.t('detection', row, 'benign accounts flagged, % [95% CI]', '%')} (target ≤ 0.1%: "
                f"{'met' if ev.headline['seat_plus_cap_false_positive_rate'] <= 0.001 else 'missed'})")
        if ev.stage("seat").get("seat_plus_cap_worst_form"):
            text += (f"; its worst kind of benign account, {w.s('seat', 'seat_plus_cap_worst_form')}, at "
                     f"{w.s('seat', 'seat_plus_cap_worst_form_rate', 'percent')}")
        sentences.append(w.sentence(text + "."))
    horizon = seat_settings.get("attack_horizon_hours")
    notes = [w.sentence(
        "The zoo's attackers have fixed parameters (their chain counts, one way of splitting queries over "
        f"accounts, pacing over {w.s('seat', 'settings.attack_horizon_hours', 'number')} h): an attacker who "
        f"chooses them against the detector is {NOT_MEASURED}, so these counts are the defender's best case."
        if horizon is not None else
        f"An attacker who chooses its own parameters against the detector is {NOT_MEASURED}.")]
    if seat_settings.get("surrogate_seconds"):
        notes.append(w.sentence(
            f"The zoo's surrogates train for at most {w.s('seat', 'settings.surrogate_epochs', 'count')} epochs or "
            f"{w.s('seat', 'settings.surrogate_seconds', 'number')} s, whichever comes first (a time cap: their "
            "Agr@10 depends on the machine's speed)."))
    return Answer(sentences, figure=ev.file("seat/zoo.png"), table="detection", notes=notes,
                  caption="Left: the fewest accounts over which each attacker of the zoo can split its queries "
                          "with no account flagged, per detector (log scale; a hatched bar: flagged at every count "
                          "tried). Right: the Agr@10 (%) of the surrogate that attacker trains. Table: per "
                          "detector the cheapest attacker, and the false-positive rate on held-out benign accounts "
                          "with its exact 95% interval.",
                  alt="Bar chart: accounts each zoo attacker needs per detector, log scale, beside its "
                      "surrogate's Agr@10 in percent.")


def _shown(key: str, ev: Evidence) -> str:
    """Whether an interval's end shows its target, in the targets table's own words of judgement."""
    return "shown" if meets(key, ev.headline) else "not shown"


def detection_against_choosing_attackers(ev: Evidence, w: Writer) -> Answer:
    rows = []
    for label, key, rate, high in (
            (str(ev.headline["detect_best"]), "detect_best_accounts_needed_worst",
             "detect_best_false_positive_rate", "detect_best_false_positive_rate_high"),
            ("caps", "caps_accounts_needed_worst", "benign_real_timing_false_positive_rate_caps",
             "benign_real_timing_false_positive_rate_caps_high"),
            ("volume cap", "volume_cap_accounts_needed_worst", "", "")):
        if key not in ev.headline:
            continue
        flagged = ev.headline.get(rate) if rate else None
        upper = ev.headline.get(high) if high else None
        rows.append({"detector": label, "accounts needed (worst case)": _count(_needed(ev.headline[key])),
                     "benign flagged, %": "—" if flagged is None else _pct_number(flagged),
                     "its 95% upper end, %": "—" if upper is None else _pct_number(upper)})
    w.table("detection", pd.DataFrame(rows))
    holds = detection_holds_on_cost(ev.headline)
    text = (f"Against an attacker who chooses its own parameters, the strongest detector, "
            f"{w.h('detect_best', 'text')}, "
            f"makes it spread its queries over {w.h('detect_best_accounts_needed_worst', 'count')} accounts in the "
            "worst case")
    if ev.has("volume_cap_accounts_needed_worst"):
        text += f", against {w.h('volume_cap_accounts_needed_worst', 'count')} for a volume cap"
    if ev.has("caps_accounts_needed_worst"):
        text += f" and {w.h('caps_accounts_needed_worst', 'count')} for the caps"
    ratios = []
    if ev.has("detect_best_cost_increase_over_volume_cap"):
        ratios.append(f"{w.h('detect_best_cost_increase_over_volume_cap', 'ratio')} the volume cap's")
    if ev.has("detect_best_cost_increase_over_caps"):
        ratios.append(f"{w.h('detect_best_cost_increase_over_caps', 'ratio')} the caps'")
    if ratios:
        text += f" ({', '.join(ratios)})"
    text += (": on cost, per-account detection holds against such an attacker" if holds else
             ": per-account detection does not hold against an attacker who chooses its own pacing and chain count")
    text += " (target ≥ 2× the volume cap and > 1.2× the caps)."
    sentences = [w.sentence(text)]
    if ev.has("detect_best_worst_point_text"):
        point = f"That worst case is reached by {w.h('detect_best_worst_point_text', 'text')}"
        if ev.has("detect_best_worst_point_agr10"):
            point += f", where the attacker's surrogate reaches Agr@10 {w.h('detect_best_worst_point_agr10')}"
        else:
            point += f"; the surrogate's Agr@10 at that point is {NOT_MEASURED}"
        sentences.append(w.sentence(point + "."))
    if ev.has("detect_best_false_positive_rate"):
        fpr = f"It flags {w.h('detect_best_false_positive_rate')} of held-out benign users"
        if ev.has("detect_best_false_positive_rate_high"):
            fpr += (f" (95% upper end {w.h('detect_best_false_positive_rate_high')}; target ≤ 0.1%: "
                    + _shown("detect_best_false_positive_rate_high", ev) + ")")
        if ev.has("detect_best_worst_form", "detect_best_worst_form_rate"):
            fpr += (f"; its worst kind of benign user, {w.h('detect_best_worst_form', 'text')}, at "
                    f"{w.h('detect_best_worst_form_rate')}")
            if ev.has("detect_best_worst_form_rate_high"):
                fpr += (f" (upper end {w.h('detect_best_worst_form_rate_high')}; target ≤ 1%: "
                        + _shown("detect_best_worst_form_rate_high", ev) + ")")
        if ev.has("benign_real_timing_false_positive_rate_caps"):
            fpr += (f"; the caps alone flag {w.h('benign_real_timing_false_positive_rate_caps')} of users replayed "
                    "with their real timing")
        sentences.append(w.sentence(fpr + "."))
        if ev.headline.get("detect_best_fpr_interval_can_show_target") is False:
            sentences.append(w.plain("The held-out benign set is too small for its exact interval to show a "
                                     "false-positive rate of 0.1% even with no account flagged."))
    if ev.has("real_timing_skipped"):
        sentences.append(w.sentence(f"Benign users with real timing are {NOT_MEASURED}: "
                                    f"{w.h('real_timing_skipped', 'text')}."))
    if ev.has("public_data_attacker_skipped"):
        sentences.append(w.sentence(f"The public-data attacker is {NOT_MEASURED}: "
                                    f"{w.h('public_data_attacker_skipped', 'text')}."))
    figure = ev.first_file("seat/accounts_needed*.png", "seat/search*.png", "seat/zoo.png")
    return Answer(sentences, figure=figure, table="detection",
                  caption="The fewest accounts the attacker needs per detector, minimised over its own "
                          "parameters (chains, split over accounts, pacing), and the false-positive rate on "
                          "held-out benign users with an exact 95% interval.",
                  alt="Accounts needed per detector over the attacker's parameter space.")


SETTLED = "settled on both measures"


def robustness_table(frame: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for _, row in frame[~frame["family"].isin(REFERENCE_FAMILIES)].iterrows():
        settled = all(row[f"{k}_low"] > 0 or row[f"{k}_high"] < 0 for k in ("ndcg_fall", "agr_fall"))
        rows.append({"defense": row["arm"],
                     "surrogate NDCG@10 fall, % [95% CI]": interval_cell(row["ndcg_fall"], row["ndcg_fall_low"],
                                                                         row["ndcg_fall_high"]),
                     "Agr@10 fall, % [95% CI]": interval_cell(row["agr_fall"], row["agr_fall_low"],
                                                              row["agr_fall_high"]),
                     SETTLED: "yes" if settled else "no"})
    return pd.DataFrame(rows, columns=["defense", "surrogate NDCG@10 fall, % [95% CI]", "Agr@10 fall, % [95% CI]",
                                       SETTLED])


def answer_robustness(ev: Evidence, w: Writer) -> Answer:
    frame = prevention_frame(ev)
    if frame is None:
        return not_measured("Robustness of the findings")
    table = w.table("robustness", robustness_table(frame))
    sentences = []
    for answer, words in (("yes", "Settled at this scale on both measures (each 95% interval excludes 0)"),
                          ("no", "Not distinguishable from no effect on at least one measure")):
        names = table.loc[table[SETTLED] == answer, "defense"].tolist()
        if not names and answer == "no":
            continue
        for name in names:
            w.claim("robustness", name, SETTLED, answer)
        cited = ", ".join(w.t("robustness", name, "defense") for name in names)
        sentences.append(w.sentence(f"{words}: {cited or 'no defense'}."))
    if ev.has("none_agr10", "gro_control_agr10"):
        sentences.append(w.sentence(
            f"Fine-tuning alone moves the strongest attacker's Agr@10 from {w.h('none_agr10')} (None) to "
            f"{w.h('gro_control_agr10')} (the λ = 0 control): the intervals cover test users and attack seeds but "
            "not training seeds, so a GRO fall of that size or smaller is not settled."))
    return Answer(sentences, table="robustness",
                  caption="Each defense's falls with their 95% intervals, and whether both intervals exclude 0.")


QUESTIONS: tuple[Question, ...] = (
    Question("targets", "How good are the targets?", answer_targets),
    Question("extraction", "How well does extraction work, and how does it grow with the budget?",
             answer_extraction),
    Question("prevention", "What does each prevention defense cost, and what does it buy?", answer_prevention),
    Question("gro-curve", "Does GRO protect more than a weaker model of the same utility?", answer_gro_curve),
    Question("detection", "Does detection hold against attackers who know it?", answer_detection),
    Question("verification", "Can the owner prove a copy?", answer_verification),
    Question("robustness", "What is robust, and what is not?", answer_robustness),
)
