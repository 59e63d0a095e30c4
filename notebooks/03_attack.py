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
# # 03 · Model extraction through the black box
# The trained target is served as a black box that returns only the top-100 item ids of a query (items already
# in the query are filtered out; every query is logged per account). The attacker knows nothing but the box and
# the item-id range: it generates synthetic sequences, either **random** (uniform items) or **autoregressive**
# (the next item is drawn from the box's own answer), queries every prefix (a sequence of L items costs L
# queries) and trains a surrogate on the returned lists with the pairwise margin loss of Yue et al. (RecSys 2021),
# validating only on held-out synthetic queries. We then measure, on the real test users, how often the
# surrogate's top-1 and top-10 agree with the target's (Agr@1, Agr@10, full ranking, seen items excluded) and
# the surrogate's own HR@10 / NDCG@10. The stage writes the collected queries and the query logs (read by the
# SEAT stage), the surrogate checkpoints, `budget_curve.csv|png`, `architectures.csv|md`,
# `training_history.csv` and `metrics.json` into `attack/`.
#
# The **cpu** profile is reduced to fit two CPU cores in about half an hour: budgets of 250 / 500 / 1,000
# sequences of the paper's length 200 (the paper: up to 5,000), a SASRec surrogate of the SASRec target (and a
# MeanEmbedding one at the main budget), at most 60 epochs (early stopping on held-out synthetic agreement) and
# 120 s of training per surrogate. The headline keys are named after the budget actually used (`_1k` for 1,000
# sequences). The **full** profile is the paper's setting (5,000 sequences of length 200, all surrogate
# architectures) for a GPU.

# %%
from pathlib import Path
from typing import Optional

import pandas as pd

from recsec_lib.common import plots
from recsec_lib.study.stages import attack as stage
from recsec_lib.study.stage_cache import run_cached
from recsec_lib.study.stages.context import StudyContext

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
target_model: Optional[str] = None  # architecture of the target read from <run>/train/<name>.pt (sasrec)
budgets: Optional[str] = None  # attack budgets in synthetic sequences, e.g. 500,1000,5000 (the largest is the main one)
generators: Optional[str] = None  # how the attacker makes its queries: autoregressive,random or one of them
surrogate_models: Optional[str] = None  # surrogate architectures at the main budget, e.g. sasrec,narm
seq_len: Optional[int] = None  # items (that is queries) per synthetic sequence
k: Optional[int] = None  # length of the returned lists
epochs: Optional[int] = None  # surrogate training epochs (upper bound, early stopping)
surrogate_max_seconds: Optional[float] = None  # training time cap per surrogate in seconds; 0 means none

# %%
ctx = StudyContext(run_dir=Path(run_dir), dataset=dataset, data_dir=Path(data_dir), mirror=mirror or None,
                   seed=seed, device=device, profile=profile, force=force)
settings = stage.Settings.for_profile(profile).with_overrides(
    target_model=target_model, budgets=budgets, generators=generators, surrogate_models=surrogate_models,
    seq_len=seq_len, k=k, epochs=epochs, max_train_seconds=surrogate_max_seconds)
metrics = run_cached(stage, ctx, settings)  # reuses an identical earlier result unless force

# %% [markdown]
# ## Results
# Headline figures (named after the main budget) and the budget note.

# %%
print(metrics["budget_note"])
pd.Series(metrics["headline"], name="value").to_frame()

# %% [markdown]
# ### Agreement against budget
# Solid: Agr@10, dashed: Agr@1, on the real test users. Yue et al. report for SASRec on ML-1M at 5,000 sequences
# of length 200: autoregressive .454 / .662, random .270 / .516 (Agr@1 / Agr@10).

# %%
stage_dir = Path(run_dir) / "attack"
curve = pd.read_csv(stage_dir / "budget_curve.csv")
display_columns = ["generator", "budget_sequences", "budget_queries", "agr1", "agr10", "surrogate_test_hr10",
                   "surrogate_test_ndcg10", "target_test_ndcg10", "epochs_run", "train_seconds"]
curve[display_columns]

# %%
plots.budget_curve(curve)

# %% [markdown]
# ### Target × surrogate architectures (main budget, autoregressive)

# %%
pd.read_csv(stage_dir / "architectures.csv")[["target", "surrogate", "budget_sequences", "agr1", "agr10",
                                             "surrogate_test_hr10", "surrogate_test_ndcg10"]]

# %% [markdown]
# ### Surrogate training: held-out synthetic Agr@10 per epoch
# The attacker's own validation signal (agreement with the box on held-out synthetic prefixes), which it uses
# for early stopping; it never sees real data.

# %%
history = pd.read_csv(stage_dir / "training_history.csv")
plots.surrogate_training(history)
