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

import pandas as pd

from recsec_lib.common import plots
from recsec_lib.study.stages import attack as stage
from recsec_lib.study.stage_cache import run_cached
from recsec_lib.study.stages.context import StudyContext

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
epochs: int = 0  # surrogate training epochs (upper bound, early stopping); 0 means the profile value
target_model: str = ""  # architecture of the target read from <run>/train/<name>.pt; empty means sasrec
surrogate_models: str = ""  # surrogate architectures at the main budget, e.g. sasrec,narm; empty means the profile
generators: str = ""  # autoregressive,random or one of them; empty means both
budgets: str = ""  # budgets in synthetic sequences, e.g. 500,1000,3000,5000; empty means the profile values
seq_len: int = 0  # items (that is queries) per synthetic sequence; 0 means the profile value
k: int = 0  # length of the returned lists; 0 means the profile value (100)
surrogate_max_seconds: float = -1.0  # training time cap per surrogate in seconds; 0 means none, -1 the profile value (150 on cpu)

# %%
ctx = StudyContext(run_dir=Path(run_dir), dataset=dataset, data_dir=Path(data_dir), mirror=mirror or None,
                   seed=seed, device=device, profile=profile, force=force)
settings = stage.Settings.for_profile(profile).with_overrides(
    epochs=epochs or None, target_model=target_model or None, surrogate_models=surrogate_models or None,
    generators=generators or None, budgets=budgets or None, seq_len=seq_len or None, k=k or None,
    max_train_seconds=None if surrogate_max_seconds < 0 else surrogate_max_seconds)
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
