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
# # 02 · Training the recommenders
# Trains the recommenders of this run (the seed's MeanEmbedding baseline and SASRec on the cpu profile; NARM and
# BERT4Rec as well on the full profile) with early stopping on validation NDCG@10, then ranks every user's held-out
# test item against all items. Writes `train/<model>.pt` checkpoints (resumable), per-epoch histories
# (`train/<model>_history.csv`), `train/curves.png` and `train/metrics.json`. Primary figures: full ranking with
# the user's seen items filtered; unfiltered and sampled (100 negatives) figures are labelled as such.

# %%
from pathlib import Path
from typing import Optional

import pandas as pd
from IPython.display import display

from recsec_lib.common import plots
from recsec_lib.study.stages import train as stage
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
models: Optional[str] = None  # recommenders to train, some of meanemb,sasrec,narm,bert4rec
epochs: Optional[int] = None  # most training epochs per model (early stopping usually ends sooner)
batch_size: Optional[int] = None  # users per batch
lr: Optional[float] = None  # Adam learning rate
weight_decay: Optional[float] = None  # Adam weight decay (0 in the SASRec+ recipe)
patience: Optional[int] = None  # validations without improvement before stopping; 0 never stops early
embedding_dim: Optional[int] = None  # embedding size of the MeanEmbedding baseline
max_train_seconds: Optional[float] = None  # per-model training time cap in seconds; 0 means none
baseline_epochs: Optional[int] = None  # epochs of the meanemb baseline; 0 means the same as epochs
pretrained_dir: Optional[str] = None  # folder of finished checkpoints <model>_<dataset>.pt to reuse; empty means none
windows: Optional[str] = None  # training rows (not the baseline): newest (201 items per user) or all (whole histories)

# %%
ctx = StudyContext(run_dir=Path(run_dir), dataset=dataset, data_dir=Path(data_dir), mirror=mirror or None,
                   seed=seed, device=device, profile=profile, force=force)
settings = stage.Settings.for_profile(profile).with_overrides(
    models=models, epochs=epochs, batch_size=batch_size, lr=lr, weight_decay=weight_decay, patience=patience,
    embedding_dim=embedding_dim, max_train_seconds=max_train_seconds, baseline_epochs=baseline_epochs,
    pretrained_dir=pretrained_dir, windows=windows)
metrics = run_cached(stage, ctx, settings)  # reuses an identical earlier result unless force
train_dir = ctx.run_dir / "train"

# %% [markdown]
# ## Results
# Test metrics of each model: full ranking over all items with seen items filtered (the primary figures), the
# same without filtering (as in GRO's table), and the secondary sampled figures (100 random unseen negatives).

# %%
rows = []
for name, record in metrics["models"].items():
    test = record["test"]
    for label, prefix in (("full, seen filtered", ""), ("full, unfiltered", "unfiltered_"),
                          ("sampled (100 negatives)", "sampled_")):
        if f"{prefix}hr@10" in test:
            rows.append({"model": name, "ranking": label, "HR@1": test[f"{prefix}hr@1"],
                         "HR@10": test[f"{prefix}hr@10"], "NDCG@10": test[f"{prefix}ndcg@10"],
                         "HR@20": test[f"{prefix}hr@20"], "MRR": test[f"{prefix}mrr"]})
pd.DataFrame(rows).round(4)

# %% [markdown]
# Training summary: best validation epoch, why training stopped, seconds per epoch (median), size.

# %%
pd.DataFrame([{"model": name, "best epoch": r["best_epoch"], "epochs run": r["epochs_run"],
               "stopped by": r["stop_reason"], "s / epoch": round(r["epoch_seconds"], 2),
               "valid NDCG@10": round(r["valid"].get("ndcg@10", float("nan")), 4), "parameters": r["parameters"]}
              for name, r in metrics["models"].items()])

# %% [markdown]
# ## Training curves
# Loss and validation HR@10 / NDCG@10 (full ranking, seen filtered) per epoch, from `train/<model>_history.csv`.

# %%
history = pd.concat([pd.read_csv(train_dir / f"{name}_history.csv") for name in metrics["models"]])
plots.training_curves(history)

# %% [markdown]
# ## The seed's observations, measured
# For every test user's top-10 (seen items excluded): genre consistency (Jaccard between the genres of the
# history and of the list; also over the last 10 items only), popularity bias (share of list slots taken by
# the 10% most popular items, against their share of interactions), catalogue coverage and the release years
# recommended against the catalogue's.

# %%
pd.DataFrame({name: record["bias"] for name, record in metrics["models"].items()}).round(4)

# %% [markdown]
# Per genre: for users whose history is dominated by a genre (at least half its movies), how consistent the
# lists are and how much of them is that genre, against the genre's share of the catalogue.

# %%
for name in metrics["models"]:
    print(name)
    display(pd.read_csv(train_dir / f"{name}_bias_per_genre.csv").round(3))

# %% [markdown]
# Stage cost on this machine: wall time and peak memory.

# %%
pd.Series({"device": metrics["device"], "wall seconds": metrics["wall_seconds"],
           "peak memory (MiB)": metrics["peak_memory_mb"]})
