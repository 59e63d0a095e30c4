"""The study's report: tables and findings built from a run's metrics.

Everything here is read from the run folder (each stage's ``metrics.json``, the
CSV tables stages save, ``headline.json``); nothing is typed in by hand except
the published reference rows, which are labelled as such, and the targets the
issues set, which the findings compare against.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from recsec_lib import runs

# Published next-item quality on ML-1M (full ranking, leave-one-out), STUDY.md.
PUBLISHED_QUALITY = pd.DataFrame([
    ("SASRec, BCE with 1 negative", 0.2500, 0.1341, "Klenitskiy & Vasilev, RecSys 2023"),
    ("BERT4Rec", 0.2843, 0.1537, "Klenitskiy & Vasilev, RecSys 2023"),
    ("gSASRec", 0.3003, 0.1726, "Petrov & Macdonald, RecSys 2023"),
    ("SASRec+ (full softmax CE)", 0.3152, 0.1821, "Klenitskiy & Vasilev, RecSys 2023"),
    ("SASRec+ (3000 sampled negatives)", 0.3159, 0.1857, "Klenitskiy & Vasilev, RecSys 2023"),
    ("seed's MeanEmbedding (Hit@10)", 0.048, float("nan"), "the seed project"),
], columns=["model", "hr@10", "ndcg@10", "source"]).assign(kind="published")

# Yue et al. (RecSys 2021), ML-1M, 5k sequences, same architecture for target and surrogate.
PUBLISHED_ATTACK = pd.DataFrame([
    ("NARM", 0.571, 0.747, 0.389, 0.605),
    ("SASRec", 0.454, 0.662, 0.270, 0.516),
    ("BERT4Rec", 0.339, 0.593, 0.241, 0.488),
], columns=["target", "autoregressive agr@1", "autoregressive agr@10", "random agr@1", "random agr@10"]
).assign(source="published: Yue et al., RecSys 2021")

# Zhang et al. (WSDM 2024), ML-1M, BERT4Rec target and surrogate, full ranking, in %.
PUBLISHED_GRO = pd.DataFrame([
    ("None", 20.18, 10.61, 15.11, 7.51),
    ("Random", 5.84, 2.70, 11.61, 5.25),
    ("Reverse", 1.95, 0.90, 8.61, 4.02),
    ("GRO", 18.08, 9.53, 11.46, 5.19),
], columns=["defense", "target HR@10 %", "target NDCG@10 %", "surrogate HR@10 %", "surrogate NDCG@10 %"]
).assign(source="published: Zhang et al., WSDM 2024")


@dataclass(frozen=True)
class Target:
    key: str  # headline key
    comparison: str  # ">=" or "<="
    threshold: float
    what: str  # what the target means, for the findings
    profile: str = ""  # applies only to runs of this profile ("" = every run)
    absent: str = "not measured in this run"  # the status when the run has no such figure

    def met(self, value: float) -> bool:
        return {">=": operator.ge, "<=": operator.le}[self.comparison](value, self.threshold)


# Status of a target on a figure the runner writes only after the report stage (the study's own wall time).
TOTALLED_LATER = "totalled after the report"

# The quality, fidelity, defense and speed targets set by the project's issues.
TARGETS = (
    Target("sasrec_test_hr10", ">=", 0.30, "SASRec test HR@10 (published SASRec+ .3152)"),
    Target("sasrec_test_ndcg10", ">=", 0.17, "SASRec test NDCG@10 (published SASRec+ .1821)"),
    Target("bert4rec_test_hr10", ">=", 0.2018, "BERT4Rec test HR@10 (GRO paper 20.18%)"),
    Target("sasrec_cpu_epoch_seconds", "<=", 40.0, "SASRec seconds per epoch on the 2-core CPU"),
    Target("attack_agr10_autoregressive_5k", ">=", 0.70, "attack Agr@10, autoregressive, 5k sequences (Yue et al. .662)"),
    Target("attack_agr1_autoregressive_5k", ">=", 0.45, "attack Agr@1, autoregressive, 5k sequences (Yue et al. .454)"),
    Target("blackbox_queries_per_second", ">=", 2000.0, "black-box queries per second, batched, CPU"),
    Target("gro_utility_retention", ">=", 0.95, "GRO utility retention (NDCG@10 defended / undefended)"),
    Target("gro_surrogate_ndcg10_drop", ">=", 0.30, "fall of the surrogate's NDCG@10 under GRO"),
    Target("gro_epoch_cost_ratio", "<=", 3.0, "GRO epoch cost relative to an undefended epoch"),
    Target("seat_detection_rate_single_account", ">=", 0.99, "SEAT detection of single-account attacks"),
    Target("seat_false_positive_rate", "<=", 0.001, "SEAT false-positive rate on benign accounts"),
    Target("seat_monitor_queries_per_second", ">=", 5000.0, "SEAT monitor queries per second"),
    Target("seat_plus_cap_cost_increase_over_volume_cap", ">=", 4.0,
           "SEAT + caps: worst-case (over the attacker zoo) cost increase over the volume cap"),
    Target("seat_plus_cap_false_positive_rate", "<=", 0.001, "SEAT + caps false-positive rate on benign accounts"),
    # The runner totals the stage times after the report stage, so a run's own report cannot show these.
    Target("study_wall_seconds", "<=", 7200.0, "whole study (cpu profile) on the 2-core CPU, in seconds",
           profile="cpu", absent=TOTALLED_LATER),
    Target("study_wall_seconds", "<=", 1200.0, "whole study (full profile) on one GPU, in seconds",
           profile="full", absent=TOTALLED_LATER),
)


def collect_stage_metrics(run_dir: Path) -> dict[str, dict]:
    """``{stage: metrics}`` for every ``<run_dir>/<stage>/metrics.json`` present."""
    return {path.parent.name: runs.read_json(path) for path in sorted(Path(run_dir).glob("*/metrics.json"))
            if path.parent.name != "report"}


def timing_table(stage_metrics: dict[str, dict], headline: dict) -> pd.DataFrame:
    """Wall time and peak memory of each stage, as the stages and the runner measured them."""
    rows = []
    for stage, metrics in stage_metrics.items():
        rows.append({"stage": stage,
                     "stage wall seconds (in the library)": metrics.get("wall_seconds"),
                     "notebook seconds (runner)": headline.get(f"stage_seconds_{stage}"),
                     "peak memory MiB": metrics.get("peak_memory_mb")})
    return pd.DataFrame(rows, columns=["stage", "stage wall seconds (in the library)", "notebook seconds (runner)",
                                       "peak memory MiB"])


def target_table(headline: dict) -> pd.DataFrame:
    """Each target of the issues for this run's profile beside the measured value, met or missed (or absent)."""
    rows = []
    for target in TARGETS:
        if target.profile and target.profile != headline.get("profile"):
            continue
        value = headline.get(target.key)
        status = target.absent if value is None else ("met" if target.met(value) else "MISSED")
        rows.append({"figure": target.what, "key": target.key, "target": f"{target.comparison} {target.threshold:g}",
                     "measured": value, "status": status})
    return pd.DataFrame(rows)


def findings(headline: dict, stage_metrics: dict[str, dict]) -> list[str]:
    """Sentences generated from the numbers: targets met and missed, and what wins at what cost."""
    lines = []
    targets = target_table(headline)
    targets = targets[targets.status != TOTALLED_LATER]  # the study's own time, known only later
    met = targets[targets.status == "met"]
    missed = targets[targets.status == "MISSED"]
    absent = targets[targets.status == "not measured in this run"]
    lines.append(f"{len(met)} of {len(targets)} targets met, {len(missed)} missed, "
                 f"{len(absent)} not measured in this run ({headline.get('profile')} profile, "
                 f"{headline.get('dataset')}).")
    for _, row in missed.iterrows():
        lines.append(f"Missed: {row['figure']}: measured {row['measured']:.4g}, target {row['target']}.")
    if "sasrec_test_hr10" in headline and "meanemb_test_hr10" in headline:
        lines.append(f"SASRec reaches HR@10 {headline['sasrec_test_hr10']:.4f} against "
                     f"{headline['meanemb_test_hr10']:.4f} for the seed's averaged-embedding baseline.")
    if "none_agr10" in headline and "gro_agr10" in headline:
        none, gro = headline["none_agr10"], headline["gro_agr10"]
        moves = (f"falls from {none:.3f} to {gro:.3f}" if gro < none
                 else f"rises from {none:.3f} to {gro:.3f}" if gro > none else f"stays at {gro:.3f}")
        lines.append(f"Under GRO (λ = {headline.get('gro_best_lambda')}) the attacker's Agr@10 {moves}, "
                     f"at a utility retention of "
                     f"{headline.get('gro_utility_retention', float('nan')):.1%}.")
    if stage_metrics.get("gro", {}).get("settings"):
        lines.append(gro_training_sentence(stage_metrics["gro"]))
    lines += seat_findings(headline, stage_metrics.get("seat", {}))
    return lines


# --- SEAT findings (GitHub issue 17): whether the detector protects, at what cost, against which attacker ---

def seat_findings(headline: dict, seat: dict) -> list[str]:
    """SEAT sentences led by the worst case over the attacker zoo; a missed target is said to be MISSED."""
    if "seat_plus_cap_accounts_needed" not in headline:  # a run of the first version: no zoo
        if "seat_accounts_needed" in headline and "volume_cap_accounts_needed" in headline:
            return [f"To stay undetected the attacker needs {_count(headline['seat_accounts_needed'])} accounts "
                    f"against SEAT and {_count(headline['volume_cap_accounts_needed'])} against a volume cap alone.",
                    "These counts cover the random and autoregressive attackers only: no attacker that knows the "
                    "detector was measured in this run."]
        return []
    plus = headline.get("seat_plus_cap_cost_increase_over_volume_cap")
    alone = headline.get("seat_cost_increase_over_volume_cap")
    protects = plus is not None and plus >= 4
    verdict = ("protects" if protects else "does NOT protect (MISSED: target >= 4x the volume cap's cost)")
    zoo = {row["attack"]: row for row in seat.get("zoo", [])}
    worst = headline.get("seat_plus_cap_worst_attack")
    agr = zoo.get(worst, {}).get("agr10")
    lines = [f"SEAT with the caps {verdict} against the worst attacker of the zoo: '{worst}' gets through with "
             f"{_count(headline.get('seat_plus_cap_accounts_needed'))} accounts"
             + (f" and trains a surrogate of Agr@10 {agr:.3f}" if agr is not None else "")
             + f", against {_count(headline.get('volume_cap_accounts_needed'))} accounts for the cheapest attacker "
             f"under a volume cap alone (worst-case cost increase {plus if plus is None else f'{plus:.2f}'}x; "
             f"SEAT without the caps: {alone if alone is None else f'{alone:.2f}'}x, worst attacker "
             f"'{headline.get('seat_worst_attack')}' with {_count(headline.get('seat_accounts_needed'))} accounts)."]
    over_caps = headline.get("seat_plus_cap_cost_increase_over_caps")
    if over_caps is not None:
        lines.append(f"Against the lifetime and rate caps without SEAT (same false-positive budget), SEAT's own "
                     f"worst-case contribution is {over_caps:.2f}x; the rate cap assumes the attacker paces its "
                     f"queries evenly over {seat.get('settings', {}).get('attack_horizon_hours', '?')} h.")
    fpr = headline.get("seat_plus_cap_false_positive_rate")
    form, form_rate = seat.get("seat_plus_cap_worst_form"), seat.get("seat_plus_cap_worst_form_rate")
    if fpr is not None:
        ok = fpr <= 0.001 and (form_rate or 0.0) <= 0.01
        lines.append(f"On held-out benign accounts SEAT with the caps flags {fpr:.2%} "
                     f"({'met' if ok else 'MISSED'}: target <= 0.1% overall, no form above 1%); the worst form is "
                     f"'{form}' at {form_rate:.2%}.")
    return lines


def _count(value) -> str:
    """A count read back from JSON (384.0) printed as one (384); anything else (inf, text) as it is."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def gro_training_sentence(gro: dict) -> str:
    """How this run's GRO targets were trained: from scratch or fine-tuned, how long, which epoch was kept."""
    settings = gro["settings"]
    how = ("trained from scratch" if settings.get("from_scratch")
           else "fine-tuned from the undefended target")
    batches = settings.get("max_batches_per_epoch") or 0
    span = f"{batches} batches per epoch" if batches else "whole epochs"
    positions = settings.get("positions_per_sequence") or 0
    where = f"the last {positions} positions of each row" if positions else "every position"
    kept = gro.get("gro_kept_epochs") or {}
    epochs = "; ".join(f"λ={lam}: epoch {row['best_epoch']} of {row['epochs_run']} kept ({row['stop_reason']})"
                       for lam, row in kept.items())
    most = settings.get("epochs")
    return (f"GRO targets were {how} ({span}, at most {most} epoch{'' if most == 1 else 's'}; student and swap loss on "
            f"{where})" + (f": {epochs}." if epochs else "."))


# Tables the stages save, shown in the report in this order: (stage, file, title).
STAGE_TABLES = (
    ("attack", "budget_curve.csv", "Attack fidelity per budget and generator"),
    ("attack", "architectures.csv", "Attack: target × surrogate architectures"),
    ("gro", "defenses.csv", "Defenses: None, Random, Reverse and GRO per λ"),
    ("seat", "single_account.csv", "SEAT: single-account attacks"),
    ("seat", "fpr_by_form.csv", "SEAT: false positives per benign form (held-out accounts)"),
    ("seat", "zoo.csv", "SEAT attacker zoo: accounts needed per detector and the surrogate's Agr@10"),
    ("seat", "logged_attacks.csv", "The attack stage's own query logs through the detectors"),
)
QUALITY_COLUMNS = ("hr@1", "hr@5", "hr@10", "hr@20", "ndcg@1", "ndcg@5", "ndcg@10", "ndcg@20", "mrr",
                   "unfiltered_hr@10", "unfiltered_ndcg@10", "sampled_hr@10", "sampled_ndcg@10")


def quality_table(stage_metrics: dict[str, dict]) -> pd.DataFrame:
    """Test quality of every trained model (full ranking; unfiltered and sampled labelled), then published rows."""
    models = stage_metrics.get("train", {}).get("models", {})
    rows = []
    for name, record in models.items():
        test = record.get("test", {})
        rows.append({"model": name, "kind": "measured (this run)", "best epoch": record.get("best_epoch"),
                     "epoch seconds (training)": record.get("epoch_seconds"),
                     "epoch seconds (this run)": record.get("epoch_seconds_here", record.get("epoch_seconds")),
                     **{column: test.get(column) for column in QUALITY_COLUMNS}})
    published = PUBLISHED_QUALITY.rename(columns={"source": "source"}).assign(kind="published")
    return pd.concat([pd.DataFrame(rows), published], ignore_index=True)


def stage_tables(run_dir: Path) -> list[tuple[str, pd.DataFrame]]:
    """(title, table) for every table of STAGE_TABLES that this run produced."""
    found = []
    for stage, name, title in STAGE_TABLES:
        path = Path(run_dir) / stage / name
        if path.exists() and path.stat().st_size:
            found.append((title, pd.read_csv(path)))
    return found
