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
# # 04 · The GRO defense against model extraction
# GRO (Zhang et al., WSDM 2024) retrains the target recommender together with a *student* that imitates its
# top-100 lists with the attack's margin loss; a swap loss pushes the target towards the rankings that would teach
# the student worst (L = L_target + L_student + λ·L_swap). This stage trains one defended SASRec per λ from the
# undefended target of the train stage, then attacks None, Random (shuffled lists), Reverse (reversed lists) and
# every GRO target with the same attack (generator and budget) and reports, per defense, the target's utility as
# served (HR@10/NDCG@10 of the returned list, seen items filtered; retention = defended / undefended NDCG@10) and
# the protection (the surrogate's HR@10/NDCG@10 and its Agr@10 with the undefended target). λ is chosen on
# validation figures only; test figures are reported. It writes `gro/defenses.csv|md`,
# `gro/utility_vs_protection.png`, one checkpoint per λ and `gro/metrics.json`.
#
# The **cpu** profile is reduced to fit two CPU cores: the trained target is fine-tuned for a quarter of an epoch
# (12 batches) at λ ∈ {0.1, 0.3, 1}, the student and swap loss use the last 20 positions of each sequence, and the attack
# has 1,000 autoregressive sequences of length 200 (the paper: 5,000), at most 100 s of surrogate training each. The **full** profile uses the
# paper's settings (from scratch, every position, λ ∈ {0.001, 0.01, 0.1, 1, 10}).
#
# Read the cpu profile's GRO rows with care: after 12 batches the defended target has not yet recovered from the
# swap loss, so part of what looks like protection is lost utility. `benchmarks/gro_finetune_tradeoff.py`
# fine-tunes for whole epochs and attacks after each; `-p from_scratch yes -p max_batches_per_epoch 0 -p epochs 200`
# trains as the authors do on ML-1M (about an hour per λ on 2 cores). Every GRO target is early-stopped on its
# validation NDCG@10 (patience 10 epochs, the rule that trained the undefended target; `-p patience 0` keeps the
# last epoch, as the authors' code does) and learns from the same training rows as the undefended target.

# %%
from pathlib import Path

import pandas as pd

from recsec_lib.common import plots
from recsec_lib.study.stage_cache import run_cached
from recsec_lib.study.stages import gro as stage
from recsec_lib.study.stages.context import StudyContext
from recsec_lib.common.tables import read_table

# %% tags=["parameters"]
run_dir: str = "outputs/notebook"  # run folder this stage writes into (run_all.sh sets it)
run_id: str = ""  # id of the run (run_all.sh sets it)
dataset: str = "ml-1m"  # ml-1m | ml-100k | ml-20m | synthetic
data_dir: str = "data"  # downloads and the processed cache
mirror: str = ""  # local MovieLens copy; empty means $RECSEC_DATA_MIRROR, else download
seed: int = 42  # seeds Python, numpy and torch
device: str = "auto"  # auto | cpu | cuda
profile: str = "cpu"  # smoke | cpu | full: chooses the defaults of the settings below
force: bool = False  # recompute even when a cached result exists
epochs: int = 0  # GRO training epochs; 0 means the profile value
lambdas: str = ""  # λ values to compare, e.g. 0.01,0.1,1; empty means the profile values
method: str = ""  # gro | seed-variant (the seeds loss, an ablation); empty means gro
positions_per_sequence: int = -1  # prefixes per sequence for the student and swap loss; 0 means every prefix (the paper); -1 means the profile value
attack_sequences: int = 0  # attack budget in synthetic sequences; 0 means the profile value
max_batches_per_epoch: int = -1  # GRO batches per epoch; 0 means all, -1 the profile value
student_warmup_batches: int = -1  # batches that train only the student before GRO starts; -1 means the profile value
from_scratch: str = ""  # yes: train from scratch (as the authors on ML-1M); no: fine-tune; empty: the profile value
patience: int = -1  # GRO epochs without a better validation NDCG@10 before stopping (best kept); 0 keeps the last; -1 means the profile value

# %%
ctx = StudyContext(run_dir=Path(run_dir), dataset=dataset, data_dir=Path(data_dir), mirror=mirror or None,
                   seed=seed, device=device, profile=profile, force=force)
settings = stage.Settings.for_profile(profile).with_overrides(
    epochs=epochs or None, lambdas=lambdas or None, method=method or None,
    positions_per_sequence=positions_per_sequence if positions_per_sequence >= 0 else None,
    attack_sequences=attack_sequences or None,
    max_batches_per_epoch=max_batches_per_epoch if max_batches_per_epoch >= 0 else None,
    student_warmup_batches=student_warmup_batches if student_warmup_batches >= 0 else None,
    from_scratch=from_scratch or None, patience=patience if patience >= 0 else None)
metrics = run_cached(stage, ctx, settings)  # reuses an identical earlier result unless force

# %% [markdown]
# ## Results
# Test figures in percent, one row per defense (the paper's table layout). "best λ" marks the λ chosen on
# validation: the largest fall of the surrogate's validation NDCG@10 with validation retention >= 95%.

# %%
out = Path(run_dir) / "gro"
print(metrics["lambda_choice"])
print({key: metrics.get(key) for key in ("gro_best_lambda", "gro_constraint_met", "gro_utility_retention",
                                         "gro_surrogate_ndcg10_drop", "gro_agr10", "none_agr10",
                                         "gro_epoch_cost_ratio")})
table = read_table(out / "defenses.csv")  # keeps the row named "None" (pandas would read NaN)
paper = table[["defense", "target_test_hr10", "target_test_ndcg10", "retention_test", "surrogate_test_hr10",
               "surrogate_test_ndcg10", "surrogate_test_ndcg10_drop", "agr10_test"]].copy()
paper.iloc[:, 1:] = (100 * paper.iloc[:, 1:]).round(2)
paper

# %% [markdown]
# Validation figures (what chose λ):

# %%
table[["defense", "target_valid_ndcg10", "retention_valid", "surrogate_valid_ndcg10",
       "surrogate_valid_ndcg10_drop", "agr10_valid"]].round(4)

# %% [markdown]
# ## Utility against protection
# One point per defense and λ: right = more of the target's NDCG@10 kept, up = larger fall of the surrogate's
# NDCG@10. The dotted line is the 95% retention floor.

# %%
plots.utility_vs_protection(table)

# %% [markdown]
# ## GRO training: the three loss terms per epoch
# `valid_score` is the target's validation NDCG@10 after the epoch (early stopping keeps the best epoch's target).

# %%
rows = [{"λ": lam, **row} for lam, history in metrics["gro_histories"].items() for row in history]
pd.DataFrame(rows)

# %%
# The epoch whose target was kept, of how many, and why training stopped (older runs did not record it).
pd.DataFrame([{"λ": lam, **kept} for lam, kept in metrics.get("gro_kept_epochs", {}).items()])

# %% [markdown]
# Cost: a GRO epoch against an undefended epoch of the same loop, measured in this run.

# %%
pd.DataFrame([{"GRO epoch s": metrics["gro_epoch_seconds"], "undefended epoch s": metrics["undefended_epoch_seconds"],
               "ratio": metrics["gro_epoch_cost_ratio"]}])
