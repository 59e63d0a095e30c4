# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 04 · Prevention in the arena: GRO, the output defenses, and every attacker
# GRO (Zhang et al., WSDM 2024) retrains the target recommender together with a *student* that imitates its
# top-100 lists with the attack's margin loss; a swap loss pushes the target towards the rankings that would teach
# the student worst (L = L_target + L_student + λ·L_swap). Where the student's gradient g_i is exactly 0 the swap
# matrix needs a rule: **keep** the listed item or **lowest_index**, the authors' code, whose argmax over a row of
# ties sends it to item 1. This stage trains both, plus the honest **control**: λ = 0 through the same loop (same
# optimiser, epochs and kept-epoch rule), against which every GRO arm is compared.
#
# Users see the top 10, the attacker receives the top 100, so **output defenses** (serving only the top K', keeping
# the top 10 exact and perturbing ranks 11..100, the paper's Random and Reverse) share the arena. **Every arm, None
# included, faces the same attackers**: each generator × each view (naive: trains on all it receives; top-10:
# steers by and trains on the first 10; knowing: copes with the defense it knows; drop-promoted: removes the item
# found most often in its answers) × each seed. An arm's protection is read at its **strongest** attacker, against
# the strongest attacker of its reference's model; every fall carries a 95% interval (bootstrap over test users and
# attack seeds), and a fall whose interval holds 0 is **no effect**. Surrogates train for a fixed number of epochs
# with their seed: the same cell twice gives the same numbers.
#
# **The curve.** One GRO point is one rule, one λ, a number of fine-tuning epochs, the last epoch kept. Each point is
# judged three ways: against the λ = 0 control, against its **utility-matched null** (a snapshot of the target's own
# training whose served validation NDCG@10 is nearest: a model equally weak made with no aim against extraction,
# attacked by the same attackers as every arm), and against the **training noise** (the fall between λ = 0 controls
# of different training seeds). A point **protects** only where its surrogate falls more than its null's, with the
# whole 95% interval above 0 and above the noise.
#
# **Scale.** The cpu profile is a reduced-scale check on two CPU cores (printed below); the full profile is the
# paper's design (from scratch, every position, λ ∈ {0.001 … 10} for both rules, 5,000 × 200 queries, both
# generators, every output defense).

# %%
from pathlib import Path
from typing import Optional

import pandas as pd

from recsec_lib.common import plots
from recsec_lib.study.stage_cache import run_cached
from recsec_lib.study.stages import gro as stage
from recsec_lib.study.stages.context import StudyContext
from recsec_lib.common.tables import read_table

# %% tags=["parameters"]
# The runner's own settings: run_all.sh sets them from its flags for every stage. Opened by hand, the
# notebook runs the smoke profile on synthetic data (seconds); set profile and dataset to run the study.
run_dir: str = "outputs/notebook"  # run folder this stage writes into
run_id: str = ""  # id of the run
dataset: str = "synthetic"  # ml-1m | ml-100k | ml-20m | synthetic
data_dir: str = "data"  # downloads and the processed cache
mirror: str = ""  # local MovieLens copy; empty means $RECSEC_DATA_MIRROR, else download
seed: int = 42  # seeds Python, numpy and torch
device: str = "auto"  # auto | cpu | cuda
profile: str = "smoke"  # smoke | cpu | full: chooses the defaults of the settings below
force: bool = False  # recompute even when a cached result exists
workers: int = 1  # cells of a stage run at once; 1 means one after another
cluster: str = ""  # Ray cluster address for the cells (auto, local, ray://HOST:PORT); empty means none
threads: int = 1  # torch threads per cell, the same in every back-end

# This stage's settings (run_all.sh -p NAME VALUE): None means the profile's value. Lists are text such as 0.1,1.
target_model: Optional[str] = None  # architecture to defend, train/<name>.pt: sasrec, or bert4rec (the authors)
lambdas: Optional[str] = None  # GRO λ values to train, e.g. 0.01,0.1,1 (the λ 0 control is always trained)
zero_gradient_rules: Optional[str] = None  # keep,lowest_index (lowest_index is the authors code)
epochs: Optional[int] = None  # GRO training epochs
from_scratch: Optional[bool] = None  # True: train from scratch (as the authors on ML-1M); False: fine-tune
kept_epoch: Optional[str] = None  # best: the best-validating epoch; last: the last one (as the authors)
output_defenses: Optional[str] = None  # output defenses by name, e.g. random,reverse,top:10,tail-resample:10
combinations: Optional[str] = None  # output defenses put on top of the GRO arms, e.g. tail-shuffle:10; empty text for none
generators: Optional[str] = None  # query generators every arm faces, e.g. autoregressive,random
views: Optional[str] = None  # attacker views every arm faces: naive,top-10,knowing,drop-promoted
attack_seeds: Optional[int] = None  # attack seeds per generator (every protection interval spans them)
attack_sequences: Optional[int] = None  # attack budget in synthetic sequences
attack_seq_len: Optional[int] = None  # queries per attack sequence
surrogate_epochs: Optional[int] = None  # epochs of every surrogate (fixed, so reruns are identical)
control_seeds: Optional[int] = None  # λ 0 controls, one per training seed (their spread is the noise floor)
nulls: Optional[bool] = None  # attack the utility-matched null of each point (a snapshot of the training of the target)
null_tolerance: Optional[float] = None  # largest relative gap of validation NDCG@10 between a point and its null
second_budget: Optional[int] = None  # a second, larger attack budget (sequences) for the main points; 0 for none

# %%
ctx = StudyContext(run_dir=Path(run_dir), dataset=dataset, data_dir=Path(data_dir), mirror=mirror or None,
                   seed=seed, device=device, profile=profile, force=force,
                   workers=workers, cluster=cluster, threads=threads)
settings = stage.Settings.for_profile(profile).with_overrides(
    target_model=target_model,
    lambdas=lambdas, zero_gradient_rules=zero_gradient_rules, epochs=epochs, from_scratch=from_scratch,
    kept_epoch=kept_epoch, output_defenses=output_defenses, combinations=combinations, generators=generators,
    views=views, attack_seeds=attack_seeds, attack_sequences=attack_sequences, attack_seq_len=attack_seq_len,
    surrogate_epochs=surrogate_epochs, control_seeds=control_seeds, nulls=nulls, null_tolerance=null_tolerance,
    second_budget=second_budget)
metrics = run_cached(stage, ctx, settings)  # reuses an identical earlier result unless force

# %% [markdown]
# ## Results
# The scale this run measured at, the λ chosen per zero-gradient rule (validation only), and the headline: the
# protection figures are the strongest attacker's.

# %%
from IPython.display import display

from recsec_lib.arena.figures import frontier_figure
from recsec_lib.arena.tables import frontier_table, gro_arms_table, read_matrix_rows

out = Path(run_dir) / "gro"
print(metrics["scale"])
print(metrics["lambda_choice"])
print(metrics["lambda_choices"])
{key: value for key, value in metrics.items() if key.startswith(("gro_", "none_", "defense_frontier"))
 and key not in ("gro_histories", "gro_kept_epochs")}

# %% [markdown]
# ## The defense frontier
# One point per defense at its strongest attacker: right = more of the users' NDCG@10 kept (against the arm the
# defense is compared with), up = a larger fall of the surrogate's NDCG@10; bars are 95% intervals. The green corner
# is the target (≥ 99% kept, ≥ 30% fall). The table gives each arm's strongest attacker per measure (surrogate
# NDCG@10 and Agr@10), the falls with their intervals and the verdicts.

# %%
rows = read_matrix_rows(out / "matrix.csv")
display(frontier_figure(rows, title=f"Defense frontier (upper right is better)\n{metrics['scale']}"))
frontier_table(rows)

# %% [markdown]
# ## GRO's trade-off curve against the null and the noise
# x: served NDCG@10 kept against the λ = 0 control; y: the fall of the surrogate's NDCG@10 at the strongest attacker;
# one line per rule (λ rising), the nulls joined by a dotted line, the grey band the 95% interval of the fall between
# λ = 0 controls of different training seeds (the training noise).
# A GRO point below the null line at the same x did no more than a weaker model would.

# %%
from recsec_lib.arena.figures import curve_figure

display(curve_figure(read_table(out / "curve_points.csv"), metrics.get("noise_floor_interval"),
                     title=f"GRO's trade-off curve (upper right is better)\n{metrics['scale']}"))
print(metrics["curve_rule"])
print(metrics["noise_floor"] or "training noise not measured (one control seed)")
for line in metrics["curve_words"]:
    print("-", line)
{key: metrics.get(key) for key in ("gro_best_point", "gro_best_point_retention", "gro_best_point_fall_vs_null",
                                    "gro_best_point_fall_vs_null_low", "gro_no_point_reason",
                                    "gro_extraction_ratio_control", "gro_extraction_ratio_best", "gro_verdict_budget")
 if key in metrics}

# %% [markdown]
# The null comparison per point (which snapshot, at which validation NDCG@10), and every arm's extraction ratio
# (surrogate NDCG@10 / served NDCG@10: how much of what the box serves the attacker gets).

# %%
display(read_table(out / "nulls.csv"))
read_table(out / "extraction.csv")

# %% [markdown]
# ## Attack budgets and the authors' units
# Whether the surrogate was budget-bound (its NDCG@10 no longer rising with the target's) at each budget measured;
# the verdict uses the smallest budget at which it is not. Then the authors' units (unfiltered, 100-item lists,
# whole-list Random/Reverse, the naive attacker) beside their published ML-1M rows, labelled as reference.

# %%
print(metrics["budget_reason"])
for budget, words in {**metrics["budget_checks"], **metrics["budget_problems"]}.items():
    print(f"- {budget}: {words}")
if (out / "budgets.csv").is_file():
    display(read_table(out / "budgets.csv"))
if (out / "authors_units.csv").is_file():
    display(read_table(out / "authors_units.csv"))

# %% [markdown]
# ## GRO arms: both zero-gradient rules against the λ = 0 control
# Test figures in %, seen items filtered and unfiltered (GRO's paper ranks all items without filtering), every
# attacker; the falls are against the control.

# %%
gro_arms_table(rows)

# %% [markdown]
# ## GRO training: the three loss terms per epoch
# `valid_score` is the target's validation NDCG@10 after the epoch; `zero_gradient_share` is the share of the
# student's listed-score gradients that are exactly 0 (where the zero-gradient rule decides the swap).

# %%
pd.DataFrame([{"arm": arm, **row} for arm, history in metrics["gro_histories"].items() for row in history])

# %%
# The epoch whose target was kept, of how many, and why training stopped (older runs did not record it).
pd.DataFrame([{"arm": arm, **kept} for arm, kept in metrics.get("gro_kept_epochs", {}).items()])

# %% [markdown]
# Cost: a GRO epoch against an undefended epoch of the same loop, measured in this run.

# %%
pd.DataFrame([{"GRO s/batch": metrics["gro_batch_seconds"], "undefended s/batch": metrics["undefended_batch_seconds"],
               "ratio": metrics["gro_epoch_cost_ratio"]}])
