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
# # 04 · Defenses against model extraction: GRO and the output-defense frontier
# GRO (Zhang et al., WSDM 2024) retrains the target recommender together with a *student* that imitates its
# top-100 lists with the attack's margin loss; a swap loss pushes the target towards the rankings that would teach
# the student worst (L = L_target + L_student + λ·L_swap). Where the student's gradient g_i is exactly 0 (most
# entries once it has learnt the lists) the swap matrix needs a rule: **keep** the listed item (GRO then goes
# idle) or **lowest_index**, the authors' code, whose argmax over a row of ties sends it to item 1 (one fixed item is
# promoted into the served lists). This stage trains both, plus the honest **control**: λ = 0 through the same loop
# (same optimiser, epochs and kept-epoch rule), against which every GRO arm is compared.
#
# Users see the top 10, the attacker receives the top 100, so the stage also puts **output defenses** on one
# frontier: serving only the top K', keeping the top 10 exact and shuffling / resampling ranks 11..100, the paper's
# Random and Reverse, and GRO combined with a tail perturbation. Each arm faces every attacker the stage has (attack
# seeds × generators, and an attacker who knows the defense: it trains on the exact top 10 only, or reads a reversed
# list backwards); an arm's protection is its **worst** attacker's. Every fall carries a 95% interval (bootstrap over
# test users and attack seeds); a fall whose interval holds 0 is reported as **no effect**. λ is chosen on validation
# only, and "no protective λ" is said when no λ lowers the surrogate beyond the noise.
#
# **Scale.** The cpu profile is a REDUCED-SCALE check on two CPU cores: the trained SASRec is fine-tuned for one
# whole epoch per GRO arm (λ = 0 control and λ = 1 per rule), student and swap loss on the last 10 positions, and
# each attack is 500 autoregressive sequences of length 100 (the paper: 5,000 × 200) with at most 30 s of surrogate
# training, 3 seeds; the output defenses are top-10 only, the top 10 exact with a resampled tail, Random and
# Reverse, without GRO + tail combinations. The attack is weaker than the attack stage's, so the falls are relative
# to a weaker surrogate than a real attacker would train. The
# full profile is the paper's design (from scratch, every position, λ ∈ {0.001 … 10} for both
# rules, 5,000 × 200 queries, both generators, every output defense); `-p target_model bert4rec` runs it on a
# BERT4Rec target, student and surrogate as the authors do. The exact scale of this run is printed below.

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

# This stage's settings (run_all.sh -p NAME VALUE): None means the profile's value. Lists are text such as 10,20.
lambdas: Optional[str] = None  # GRO λ values to train, e.g. 0.01,0.1,1 (the λ 0 control is always trained)
zero_gradient_rules: Optional[str] = None  # keep,lowest_index (lowest_index is the authors code)
method: Optional[str] = None  # gro | seed-variant (the seeds loss, an ablation)
epochs: Optional[int] = None  # GRO training epochs
from_scratch: Optional[bool] = None  # True: train from scratch (as the authors on ML-1M); False: fine-tune
positions_per_sequence: Optional[int] = None  # prefixes per sequence for student and swap loss; 0 means all (the paper)
max_batches_per_epoch: Optional[int] = None  # GRO batches per epoch; 0 means all
student_warmup_batches: Optional[int] = None  # batches that train only the student before GRO starts
patience: Optional[int] = None  # GRO epochs without a better validation NDCG@10 before stopping; 0 runs every epoch
kept_epoch: Optional[str] = None  # best: the best-validating epoch; last: the last one (as the authors)
min_retention: Optional[float] = None  # utility floor for choosing λ on validation (0.95 keeps 95%)
attack_sequences: Optional[int] = None  # attack budget in synthetic sequences
attack_seq_len: Optional[int] = None  # queries per attack sequence
attack_generators: Optional[str] = None  # attackers every arm faces: autoregressive,random or one of them
attack_seeds: Optional[int] = None  # attack seeds per generator (every protection interval spans them)
surrogate_epochs: Optional[int] = None  # most epochs of each surrogate
surrogate_max_seconds: Optional[float] = None  # cap on the training seconds of each surrogate; 0 means none
paper_baselines: Optional[bool] = None  # the Random and Reverse arms of the paper
served_ks: Optional[str] = None  # list lengths of the serve-only-the-top arms, e.g. 10,20,50
tail_defenses: Optional[str] = None  # tail-shuffle,tail-reverse,tail-resample (top tail_keep exact, the rest perturbed)
tail_keep: Optional[int] = None  # ranks the tail defenses keep exact (what users see)
combinations: Optional[str] = None  # tail defenses added on top of the GRO arms, e.g. tail-shuffle; empty text for none

# %%
ctx = StudyContext(run_dir=Path(run_dir), dataset=dataset, data_dir=Path(data_dir), mirror=mirror or None,
                   seed=seed, device=device, profile=profile, force=force)
settings = stage.Settings.for_profile(profile).with_overrides(
    lambdas=lambdas, zero_gradient_rules=zero_gradient_rules, method=method, epochs=epochs,
    from_scratch=from_scratch, positions_per_sequence=positions_per_sequence,
    max_batches_per_epoch=max_batches_per_epoch, student_warmup_batches=student_warmup_batches, patience=patience,
    kept_epoch=kept_epoch, min_retention=min_retention, attack_sequences=attack_sequences,
    attack_seq_len=attack_seq_len, attack_generators=attack_generators, attack_seeds=attack_seeds,
    surrogate_epochs=surrogate_epochs, surrogate_max_seconds=surrogate_max_seconds, paper_baselines=paper_baselines,
    served_ks=served_ks, tail_defenses=tail_defenses, tail_keep=tail_keep, combinations=combinations)
metrics = run_cached(stage, ctx, settings)  # reuses an identical earlier result unless force

# %% [markdown]
# ## Results
# The scale this run measured at, the λ chosen per zero-gradient rule (validation only), and the headline: the
# protection figures are the worst attacker's.

# %%
from IPython.display import display

from recsec_lib.gro.frontier import frontier_figure, frontier_table, gro_arms_table, read_frontier_rows

out = Path(run_dir) / "gro"
print(metrics["scale"])
print(metrics["lambda_choice"])
print(metrics["lambda_choices"])
{key: value for key, value in metrics.items() if key.startswith(("gro_", "none_", "defense_frontier"))
 and key not in ("gro_histories", "gro_kept_epochs")}

# %% [markdown]
# ## The defense frontier
# One point per defense at its worst attacker: right = more of the users' NDCG@10 kept (against the arm the defense
# is compared with), up = a larger fall of the surrogate's NDCG@10; bars are 95% intervals. The green corner is the
# target (≥ 99% kept, ≥ 30% fall). The table gives the same rows with the Agr@10 fall and the share of served top-10
# lists holding the most-promoted item.

# %%
rows = read_frontier_rows(out / "frontier_all.csv")
display(frontier_figure(rows, title=f"Defense frontier (upper right is better)\n{metrics['scale']}"))
frontier_table(rows)

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
