"""The report's tables, the issues' targets, and the sections that put each stage's figure beside its table.

Everything here is read from the run folder (each stage's ``metrics.json``, the
CSV tables stages save, ``headline.json``); nothing is typed in by hand except
the published reference rows, which are labelled as such, and the targets the
issues set (the report's appendix A). The paper that opens the report (its
sentences, verdict table, limitations) is ``study.paper``; the sections here
are its appendix B: every figure and table of every stage.
"""

from __future__ import annotations

import html
import operator
import re
from dataclasses import dataclass, replace
from pathlib import Path

import pandas as pd
from matplotlib.figure import Figure

from recsec_lib.common import plots

from recsec_lib.study import runs
from recsec_lib.common.tables import html_table, read_table

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
    comparison: str  # ">=", ">" or "<="
    threshold: float
    what: str  # what the target means, for the findings
    profile: str = ""  # applies only to runs of this profile ("" = every run)
    absent: str = "not measured in this run"  # the status when the run has no such figure
    # another headline figure the value must also pass (same comparison), e.g. the training-noise floor a GRO fall
    # counts beyond; "" = none, and a run without that figure is judged on the threshold alone
    beyond: str = ""

    def met(self, value: float, headline: dict | None = None) -> bool:
        compare = {">=": operator.ge, ">": operator.gt, "<=": operator.le}[self.comparison]
        floor = (headline or {}).get(self.beyond) if self.beyond else None
        return compare(value, self.threshold) and (floor is None or compare(value, floor))


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
    Target("gro_utility_retention", ">=", 0.95, "GRO utility retention (NDCG@10 GRO / λ = 0 control)"),
    Target("gro_surrogate_ndcg10_drop", ">=", 0.30,
           "fall of the surrogate's NDCG@10 under GRO (vs the λ = 0 control, worst attacker)"),
    Target("gro_epoch_cost_ratio", "<=", 3.0, "GRO epoch cost relative to an undefended epoch"),
    Target("defense_frontier_target_met", ">=", 1.0,
           "a defense keeping >= 99% of NDCG@10 with a >= 30% surrogate NDCG@10 (or Agr@10) fall, worst attacker"),
    Target("seat_detection_rate_single_account", ">=", 0.99, "SEAT detection of single-account attacks"),
    Target("seat_false_positive_rate", "<=", 0.001, "SEAT false-positive rate on benign accounts"),
    Target("seat_monitor_queries_per_second", ">=", 5000.0, "SEAT monitor queries per second"),
    Target("seat_plus_cap_cost_increase_over_volume_cap", ">=", 4.0,
           "SEAT + caps: worst-case (over the attacker zoo) cost increase over the volume cap"),
    Target("seat_plus_cap_false_positive_rate", "<=", 0.001, "SEAT + caps false-positive rate on benign accounts"),
    # Issue 24: the best detector against an attacker who chooses its own parameters, on held-out benign users.
    Target("detect_best_cost_increase_over_volume_cap", ">=", 2.0,
           "best detector: worst-case accounts needed (attacker chooses) over the volume cap's worst case"),
    Target("detect_best_cost_increase_over_caps", ">", 1.2,
           "best detector: worst-case accounts needed (attacker chooses) over the caps' worst case"),
    Target("detect_best_false_positive_rate_high", "<=", 0.001,
           "best detector: false-positive rate on held-out benign users, 95% upper end"),
    Target("detect_best_worst_form_rate_high", "<=", 0.01,
           "best detector: false-positive rate of its worst benign form, 95% upper end"),
    # Issue 28: the best GRO point (>= 95% of the control's utility kept) against its utility-matched null.
    Target("gro_best_point_fall_vs_null_low", ">", 0.0,
           "best GRO point: surrogate NDCG@10 fall against its utility-matched null, 95% interval's low end "
           "(above 0 and above the training-noise floor gro_noise_floor)",
           absent="no point to judge: gro_no_point_reason says why (or the GRO stage did not run)",
           beyond="gro_noise_floor"),
    Target("watermark_utility_retention", ">=", 0.99, "watermark: NDCG@10 kept (marked / unmarked target)"),
    Target("watermark_utility_retention_low", ">=", 0.98, "watermark: NDCG@10 kept, 95% interval's low end"),
    Target("watermark_verified_share", ">=", 1.0, "watermark: stolen copies with Agr@10 >= 30% verified (p < 0.01)",
           absent="undecided: no stolen copy reached Agr@10 >= 30% (or the watermark stage did not run)"),
    Target("watermark_false_claims", "<=", 0.0, "watermark: false claims among the independent models"),
    Target("watermark_independent_models", ">=", 12.0, "watermark: independent models tested"),
    Target("watermark_cost_in_undefended_epochs", "<=", 1.5, "watermark: embedding cost in undefended epochs"),
    # The runner totals the stage times after the report stage, so a run's own report cannot show these.
    Target("study_wall_seconds", "<=", 7200.0, "whole study (cpu profile) on the 2-core CPU, in seconds",
           profile="cpu", absent=TOTALLED_LATER),
    Target("study_wall_seconds", "<=", 1200.0, "whole study (full profile) on one GPU, in seconds",
           profile="full", absent=TOTALLED_LATER),
)


def meets(key: str, headline: dict) -> bool:
    """Whether ``headline`` meets the issues' target on ``key`` (False when the run lacks the figure): the paper's
    words read the same thresholds as the targets table, so the two cannot disagree."""
    value = headline.get(key)
    target = next(t for t in TARGETS if t.key == key)
    return value is not None and target.met(value, headline)


# The study's stages in the order they run (and the order the report tells them in).
STAGE_ORDER = ("data", "analyze", "train", "attack", "gro", "seat", "watermark", "report")


def stage_rank(stage: str) -> int:
    """Position of a stage in STAGE_ORDER; a stage the list does not know yet goes after the known ones."""
    return STAGE_ORDER.index(stage) if stage in STAGE_ORDER else len(STAGE_ORDER)


def collect_stage_metrics(run_dir: Path) -> dict[str, dict]:
    """``{stage: metrics}`` for every ``<run_dir>/<stage>/metrics.json`` present, in stage order."""
    paths = sorted(Path(run_dir).glob("*/metrics.json"), key=lambda p: (stage_rank(p.parent.name), p.parent.name))
    return {path.parent.name: runs.read_json(path) for path in paths if path.parent.name != "report"}


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
        status = target.absent if value is None else ("met" if target.met(value, headline) else "MISSED")
        rows.append({"figure": target.what, "key": target.key, "target": f"{target.comparison} {target.threshold:g}",
                     "measured": value, "status": status})
    return pd.DataFrame(rows)


def _count(value) -> str:
    """A count read back from JSON (384.0) printed as one (384); anything else (inf, text) as it is."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def counted(value, noun: str, plural: str = "") -> str:
    """A count with its noun in the right number: "1 account", "384 accounts", "inf accounts".

    ``plural`` is for nouns that do not just take an "s" ("batch", "batches").
    """
    return f"{_count(value)} {noun if value == 1 else plural or noun + 's'}"


def _arm_name(key: str) -> str:
    """A GRO run's key as the stage wrote it: a bare λ ("0.1", older runs) or an arm name ("gro keep λ=1")."""
    try:
        return f"λ={float(key):g}"
    except ValueError:
        return key


def gro_training_sentence(gro: dict) -> str:
    """How this run's GRO targets were trained: from scratch or fine-tuned, how long, which epoch was kept."""
    settings = gro["settings"]
    how = ("trained from scratch" if settings.get("from_scratch")
           else "fine-tuned from the undefended target")
    batches = settings.get("max_batches_per_epoch") or 0
    span = f"{counted(batches, 'batch', 'batches')} per epoch" if batches else "whole epochs"
    positions = settings.get("positions_per_sequence") or 0
    where = (("the last position" if positions == 1 else f"the last {positions} positions") + " of each row"
             if positions else "every position")
    kept = gro.get("gro_kept_epochs") or {}
    # A utility-matched null is a snapshot of the target's own training: it has an epoch, not a kept GRO epoch.
    trained = {key: row for key, row in kept.items() if "best_epoch" in row}
    snapshots = sorted({int(row["epoch"]) for row in kept.values() if "best_epoch" not in row and "epoch" in row})
    epochs = "; ".join(f"{_arm_name(lam)}: epoch {row['best_epoch']} of {row['epochs_run']} kept ({row['stop_reason']})"
                       for lam, row in trained.items())
    most = settings.get("epochs")
    nulls = (f" The utility-matched nulls were not trained here: they are snapshots of the target's own training "
             f"({'epoch' if len(snapshots) == 1 else 'epochs'} {', '.join(map(str, snapshots))})." if snapshots else "")
    return (f"GRO targets were {how} ({span}, at most {counted(most, 'epoch')}; student and swap loss on "
            f"{where})" + (f": {epochs}." if epochs else ".") + nulls)


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


# ---- the report as a story: each figure beside the table it explains, stage by stage ---------------------

@dataclass(frozen=True)
class Section:
    """One step of the report: a table, the figure drawn from it, and a caption that says what they show.

    Paths are relative to the run folder, so the report never prints where the
    run lives on this machine. A section whose files a run lacks (a stage that
    did not run) is left out; one with only its table or only its figure shows
    what there is. To put a new figure or table in the report, add a Section to
    SECTIONS under its stage.
    """

    stage: str  # the stage the section belongs to; sections are shown in STAGE_ORDER, then in SECTIONS order
    title: str
    caption: str  # what the figure (else the table) shows and how to read it, in a sentence or two
    table: str = ""  # CSV file, e.g. "attack/budget_curve.csv"; "" = no table
    figure: str = ""  # PNG file, e.g. "attack/budget_curve.png"; "" = no figure
    columns: tuple[str, ...] = ()  # the table's columns shown, in this order; () = all (the CSV keeps every column)
    view: str = ""  # a name of TABLE_VIEWS: how the table is reshaped to fit the page ("" = as saved)


# Headings of the report's stage groups.
STAGE_TITLES = {
    "data": "Data", "analyze": "The data", "train": "Recommenders", "attack": "Model extraction",
    "gro": "Defense: GRO", "seat": "Detection: SEAT", "watermark": "Verification: watermark",
}


def _percent(frame: pd.DataFrame, columns: dict[str, str]) -> pd.DataFrame:
    """``frame`` with the fraction columns named in ``columns`` turned into % (rounded to 0.1) and renamed."""
    out = frame.copy()
    for column, label in columns.items():
        if column in out:
            out[column] = (100 * pd.to_numeric(out[column], errors="coerce")).round(1)
    return out.rename(columns=columns)


def _fpr_by_form(frame: pd.DataFrame) -> pd.DataFrame:
    """fpr_by_form.csv (detector × kind, long) as one row per kind of benign account, one column per detector (%)."""
    wide = frame.assign(rate=(100 * frame["rate"].astype(float)).round(2)).pivot_table(
        index="kind", columns="detector", values="rate", sort=False)
    accounts = frame.groupby("kind", sort=False)["accounts"].max()
    wide.columns = [f"{detector} %" for detector in wide.columns]
    return wide.reset_index().assign(accounts=accounts.reindex(wide.index).to_numpy()).rename(
        columns={"kind": "benign accounts"})


def _zoo(frame: pd.DataFrame) -> pd.DataFrame:
    accounts = [c for c in frame.columns if c.startswith("accounts_")]
    out = _percent(frame[["attack", "queries", "agr10", *accounts]], {"agr10": "Agr@10 %"})
    return out.rename(columns={c: c.removeprefix("accounts_") + " accounts" for c in accounts})


def _single_account(frame: pd.DataFrame) -> pd.DataFrame:
    """single_account.csv (detector × generator × budget, long) as one row per detector and generator, one column
    per budget: "detected of runs" there."""
    cells = frame.assign(cell=[f"{int(d)} of {int(r)}" for d, r in zip(frame["detected"], frame["runs"])])
    wide = cells.pivot_table(index=["detector", "generator"], columns="budget", values="cell", aggfunc="first",
                             sort=False)
    wide.columns = [f"detected at {int(budget):,} sequences" for budget in wide.columns]
    return wide.reset_index()


# Named reshapes of a saved table for the page (percent, fewer columns, long tables pivoted); the CSV is unchanged.
TABLE_VIEWS = {
    "quality": lambda f: _percent(f, {c: c.replace("_", " ").replace("hr@", "HR@").replace("ndcg@", "NDCG@")
                                      .replace("mrr", "MRR") + " %" for c in QUALITY_COLUMNS}),
    "budget": lambda f: _percent(f, {"agr1": "Agr@1 %", "agr10": "Agr@10 %", "surrogate_test_hr10":
                                     "surrogate HR@10 %", "surrogate_test_ndcg10": "surrogate NDCG@10 %",
                                     "target_test_ndcg10": "target NDCG@10 %"}),
    "fpr_by_form": _fpr_by_form,
    "watermark_utility": lambda f: _percent(f, {"ndcg10": "NDCG@10 %", "kept": "kept %", "kept_low": "kept low %",
                                                "kept_high": "kept high %"}),
    "watermark_verification": lambda f: _percent(
        f[[c for c in ("group", "suspect", "agr10", "hits", "queries", "decoy_hits", "decoy_queries", "p_value",
                       "claimed") if c in f.columns]], {"agr10": "Agr@10 %"}),
    "zoo": _zoo,
    "single_account": _single_account,
}

SECTIONS = (
    Section("analyze", "Dataset statistics and sequence lengths",
            "Histogram of the number of interactions per user; the dashed line is the longest history the models "
            "read (max_len). The table counts users, items and interactions before (raw) and after the 5-core "
            "filter.",
            table="analyze/statistics.csv", figure="analyze/sequence_lengths.png"),
    Section("analyze", "Item popularity: the long tail",
            "Left: interactions per item, items sorted from most to least popular. Right: the share of all "
            "interactions held by the most popular items.",
            figure="analyze/long_tail.png"),
    Section("analyze", "Genres",
            "Share of interactions per genre (a movie with several genres counts for each).",
            table="analyze/genres.csv", figure="analyze/genres.png"),
    Section("analyze", "Release years",
            "Number of items per release year, parsed from the titles.",
            figure="analyze/release_years.png"),
    Section("analyze", "Rating values",
            "Share of each rating value in the raw file (only sources with ratings).",
            table="analyze/ratings.csv", figure="analyze/ratings.png"),
    Section("analyze", "Activity over time",
            "Interactions per month in the raw file (only sources with timestamps).",
            figure="analyze/over_time.png"),
    Section("train", "Training and test quality",
            "Training loss and validation HR@10 / NDCG@10 (%) per epoch, one line per model (full ranking, seen "
            "items filtered). The table gives each model's test figures in % (full ranking, seen items filtered; "
            "unfiltered and sampled-100 figures are labelled) beside the published ones.",
            table="report/quality.csv", figure="train/curves.png",
            columns=("model", "kind", "best epoch", "epoch seconds (this run)", "HR@10 %", "NDCG@10 %", "HR@20 %",
                     "NDCG@20 %", "MRR %", "unfiltered HR@10 %", "unfiltered NDCG@10 %", "sampled HR@10 %",
                     "sampled NDCG@10 %"), view="quality"),
    Section("attack", "Fidelity of the stolen model against the attack budget",
            "How often the surrogate's top-1 (Agr@1, dashed) and top-10 (Agr@10, solid) agree with the target's on "
            "the real test users (%), against the number of synthetic sequences the attacker queried, per query "
            "generator. Surrogates train for a fixed number of epochs with their seed (early stopping on the "
            "attacker's own held-out synthetic queries may end them sooner), never against a wall clock. The table "
            "adds the surrogate's own test quality and its training cost.",
            table="attack/budget_curve.csv", figure="attack/budget_curve.png",
            columns=("generator", "budget_sequences", "budget_queries", "Agr@1 %", "Agr@10 %", "surrogate HR@10 %",
                     "surrogate NDCG@10 %", "target NDCG@10 %", "epochs_run", "train_seconds"), view="budget"),
    Section("attack", "Target × surrogate architectures",
            "Fidelity at the main budget (autoregressive queries), in %, for each pair of target and surrogate "
            "architecture.",
            table="attack/architectures.csv",
            columns=("target", "surrogate", "budget_sequences", "Agr@1 %", "Agr@10 %", "surrogate HR@10 %",
                     "surrogate NDCG@10 %"), view="budget"),
    Section("gro", "The defense frontier: utility kept against protection",
            "One point per defense at its worst attacker (the attacker who knows the defense, over every generator "
            "and seed): right = more of the target's NDCG@10 kept (test), up = a larger fall of the stolen "
            "surrogate's NDCG@10; bars are 95% intervals over test users and attack seeds. The output defenses are "
            "compared with no defense, the GRO arms with the λ = 0 control trained through the same loop; the "
            "control itself is compared with no defense, so its verdict is what fine-tuning alone does. A fall "
            "whose interval reaches 0 is no effect.",
            table="gro/frontier.csv", figure="gro/frontier.png",
            columns=("defense", "utility kept % [95% CI]", "strongest attacker (NDCG@10)",
                     "surrogate NDCG@10 fall % [95% CI]", "verdict (NDCG@10)", "strongest attacker (Agr@10)",
                     "Agr@10 fall % [95% CI]", "verdict (Agr@10)")),
    Section("gro", "GRO arms: both zero-gradient rules and the λ = 0 control",
            "Per GRO arm and attacker: the served and the surrogate's NDCG@10 (%), Agr@10 (%), the share of "
            "served top-10 lists holding the most-promoted item (%), and the falls with their 95% intervals.",
            table="gro/gro_arms.csv",
            columns=("arm", "attacker", "generator", "target NDCG@10 %", "surrogate NDCG@10 %", "Agr@10 %",
                     "lists with the most-promoted item %", "utility kept % [95% CI]",
                     "surrogate NDCG@10 fall % [95% CI]", "Agr@10 fall % [95% CI]", "verdict")),
    Section("seat", "Single-account attacks",
            "ROC of each detector's per-account score, in %: benign held-out accounts against single-account "
            "attacks (x: symmetric log scale, linear below 0.1%); the dotted line is the false-positive rate the "
            "detectors were calibrated for. The table gives, per detector and query generator, how many "
            "single-account attacks of each budget were flagged.",
            table="seat/single_account.csv", figure="seat/roc.png", view="single_account"),
    Section("seat", "False positives per kind of benign account",
            "Share (%) of held-out benign accounts each detector flags, one row per kind of traffic (growing "
            "histories, page refreshes, households, new users, sparse querying of long histories, client windows, "
            "history edits, candidate re-ranking, repeated passes), with the detectors' calibration frozen.",
            table="seat/fpr_by_form.csv", view="fpr_by_form"),
    Section("seat", "The attacker zoo: what staying unflagged costs, and what it buys",
            "Left: the fewest accounts over which each attacker of the zoo (every-prefix walks, chains, interleaved, "
            "perturbed, popularity-sampled, one-query-per-walk, mixes) can split its queries with no account "
            "flagged, per detector, PRADA included (log scale; a hatched bar marked 'beyond': flagged at every "
            "count tried, so more than the bar's end). Right: the Agr@10 (%) of the surrogate that attacker trains "
            "on its queries (the SEAT stage's surrogates may stop on a time cap). The headline takes the cheapest "
            "attacker per detector.",
            table="seat/zoo.csv", figure="seat/zoo.png", view="zoo"),
    Section("seat", "The attack stage's own query logs",
            "The query logs the attack stage recorded, sent through each detector: accounts flagged of those "
            "that queried.",
            table="seat/logged_attacks.csv"),
    Section("watermark", "What the watermark costs users",
            "Test NDCG@10 (%) of the unmarked and the watermarked target (full ranking, seen items filtered) and "
            "the share kept with its 95% paired-bootstrap interval over test users (not over embedding seeds).",
            table="watermark/utility.csv", view="watermark_utility"),
    Section("watermark", "The ownership test on stolen copies and on independent models",
            "Each dot is one suspect queried as a top-k black box with the watermark's and the decoy keys' "
            "queries: -log10 of the exact test's p-value (right of the dashed line: ownership claimed). Red: the "
            "marked box (also behind output defenses), surrogates extracted through it by every generator × view, "
            "and the attacker who knows the scheme (hollow: Agr@10 below 30%); green: models that never saw the "
            "mark, which must all stay left of the line.",
            table="watermark/verification.csv", figure="watermark/p_values.png", view="watermark_verification"),
)

# The caption of a figure a stage saved that no Section describes yet (it is still shown, in its stage).
UNCAPTIONED = "No caption has been written for this figure yet: add a Section for it to recsec_lib/study/report.py."


def present_sections(run_dir: Path, sections: tuple[Section, ...] = SECTIONS) -> list[Section]:
    """The sections this run has files for, in stage order, then any figure of a stage no section names.

    Empty files count as missing. A figure without a section still appears,
    with the UNCAPTIONED caption, so that a new plot is never silently lost.
    """
    run_dir = Path(run_dir)

    def has(name: str) -> bool:
        return bool(name) and (run_dir / name).is_file() and (run_dir / name).stat().st_size > 0

    found = []
    for section in sections:
        kept = replace(section, table=section.table if has(section.table) else "",
                       figure=section.figure if has(section.figure) else "")
        if kept.table or kept.figure:
            found.append(kept)
    named = {section.figure for section in sections}
    for png in sorted(run_dir.glob("*/*.png")):
        name = png.relative_to(run_dir).as_posix()
        if name not in named and png.parent.name != "report":
            found.append(Section(png.parent.name, png.stem.replace("_", " ").capitalize(), UNCAPTIONED,
                                 figure=name))
    return sorted(found, key=lambda section: stage_rank(section.stage))  # stable: SECTIONS order within a stage


def appendix_sections(run_dir: Path, in_paper: set[str] | frozenset[str] = frozenset(),
                      sections: tuple[Section, ...] = SECTIONS) -> list[Section]:
    """``present_sections`` without the figures the paper already shows (each figure appears once in the report).

    A section whose figure is in the paper keeps its table (the appendix's
    table has more columns than the paper's); one left with nothing is dropped.
    """
    out = []
    for section in present_sections(run_dir, sections):
        if section.figure in in_paper:
            section = replace(section, figure="")
            if not section.table:
                continue
        out.append(section)
    return out


def stage_groups(sections: list[Section]) -> list[tuple[str, list[Section]]]:
    """(heading, sections) per stage, in the order the sections come."""
    groups: dict[str, list[Section]] = {}
    for section in sections:
        groups.setdefault(section.stage, []).append(section)
    return [(STAGE_TITLES.get(stage, stage), members) for stage, members in groups.items()]


def section_html(run_dir: Path, section: Section) -> str:
    """The section as one HTML block (``figure_table_html``), read from its files in the run folder."""
    run_dir = Path(run_dir)
    frame = read_table(run_dir / section.table) if section.table else None
    saved = frame
    if frame is not None and section.view:
        frame = TABLE_VIEWS[section.view](frame)
    png = (run_dir / section.figure).read_bytes() if section.figure else None
    shown = [c for c in section.columns if frame is not None and c in frame.columns]
    hidden = max(0, len(saved.columns) - len(shown)) if saved is not None and section.columns else 0
    source = ", ".join(name for name in (section.table, section.figure) if name)
    if hidden:
        source += f" (the CSV has {counted(hidden, 'more column')})"
    return figure_table_html(section.title, section.caption, table=frame, figure=png, columns=section.columns,
                             source=source, stage=section.stage)


def figure_table_html(title: str, caption: str, table: pd.DataFrame | None = None,
                      figure: bytes | Figure | None = None, columns: tuple[str, ...] = (), source: str = "",
                      stage: str = "") -> str:
    """A titled block: the figure (PNG data or a matplotlib figure) with its caption, then its table.

    The figure is embedded (base64) at its natural width with alternative text
    (the title and caption), so an exported page is one self-contained file and
    no figure is shrunk; its table follows below it, at the page's full width,
    and is never cut (a table wider than the page scrolls). Without a figure
    the caption goes under the table. ``source`` names the files the
    block was read from (relative paths only), ``stage`` tags the block so
    readers and tests can tell which stage it shows.
    """
    title_html, caption_html = html.escape(title), html.escape(caption)
    parts = []
    if figure is not None:
        png = figure if isinstance(figure, bytes) else plots.png_bytes(figure)
        width = plots.png_width(png)
        parts.append(f'<figure class="recsec-figure" style="margin:0;max-width:100%">'
                     f"{plots.img_html(png, f'{title}. {caption}')}"
                     f'<figcaption style="font-size:0.9em;max-width:{max(width, 480)}px">{caption_html}</figcaption>'
                     "</figure>")
    if table is not None:
        below = "" if figure is not None else f'<p class="recsec-caption" style="font-size:0.9em">{caption_html}</p>'
        parts.append(f'<div class="recsec-table-box" style="max-width:100%;overflow-x:auto">'
                     f"{html_table(table, columns)}{below}</div>")
    if not parts:
        parts.append(f'<p class="recsec-caption">{caption_html}</p>')
    footer = f'<p style="font-size:0.8em;color:#666">From {html.escape(source)}.</p>' if source else ""
    return (f'<section class="recsec-section" data-stage="{html.escape(stage)}"><h4>{title_html}</h4>'
            f'<div style="display:flex;flex-direction:column;gap:0.8em;align-items:flex-start">{"".join(parts)}</div>'
            f"{footer}</section>")


def png_width(png: bytes) -> int:
    """Width in pixels of a PNG (``plots.png_width``; kept here for callers of the report module)."""
    return plots.png_width(png)


def demote_headings(markdown: str, levels: int) -> str:
    """``markdown`` with every heading ``levels`` deeper (at most ``######``).

    For a page written to stand alone (``compare.md`` opens with a ``#``
    title) shown inside a section of the report, under the report's own
    headings.
    """
    return re.sub(r"^(#{1,6}) ", lambda match: "#" * min(6, len(match.group(1)) + levels) + " ", markdown,
                  flags=re.M)
