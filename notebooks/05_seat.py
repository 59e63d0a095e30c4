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
# # 05 · SEAT: detecting extraction attacks per account
# Trains SEAT's similarity encoder (adversarially perturbed positives, InfoNCE) on the encoder users' training
# sequences, calibrates SEAT, a per-account query-volume cap and PRADA on benign calibration accounts for one
# false-positive rate, and then — with those settings frozen — measures false positives on held-out benign
# accounts (the first four forms and what real clients also send: sparse querying, client windows, history
# edits, candidate re-ranking, big households, repeated passes) and, for every attacker of the zoo (every-prefix
# walks, chains, interleaved, perturbed, popularity-sampled, one-query-per-walk, mixes), how many accounts it
# needs per detector and the Agr@10 its surrogate reaches. Headline figures are the worst case over the zoo.
# Writes CSV tables, PNG figures, `calibration.json`, `encoder.pt` and `metrics.json` into `seat/`.

# %%
from pathlib import Path
from typing import Optional

import pandas as pd
from IPython.display import display

from recsec_lib.common import plots
from recsec_lib.seat.plots import zoo_costs
from recsec_lib.study.stages import seat as stage
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
workers: int = 1  # cells of a stage run at once; 1 means one after another
cluster: str = ""  # Ray cluster address for the cells (auto, local, ray://HOST:PORT); empty means none
threads: int = 1  # torch threads per cell, the same in every back-end

# This stage's settings (run_all.sh -p NAME VALUE): None means the profile's value. Lists are text such as 10,20.
fpr: Optional[float] = None  # target false-positive rate on benign accounts (all of a detectors statistics together)
pair_quantile: Optional[float] = None  # SEAT threshold: this quantile of cross-user distances
zoo: Optional[str] = None  # attackers the detectors face, by name, e.g. random,chain,one-query (registered in attack.generators.GENERATORS)
attack_sequences: Optional[int] = None  # walks of the every-prefix attackers (sets the budget)
attack_seq_len: Optional[int] = None  # queries per walk
encoder_steps: Optional[int] = None  # encoder training steps

# %%
ctx = StudyContext(run_dir=Path(run_dir), dataset=dataset, data_dir=Path(data_dir), mirror=mirror or None,
                   seed=seed, device=device, profile=profile, force=force,
                   workers=workers, cluster=cluster, threads=threads)
settings = stage.Settings.for_profile(profile).with_overrides(
    fpr=fpr, pair_quantile=pair_quantile, zoo=zoo, attack_sequences=attack_sequences, attack_seq_len=attack_seq_len,
    encoder_steps=encoder_steps)
metrics = run_cached(stage, ctx, settings)  # reuses an identical earlier result unless force
out = ctx.run_dir / "seat"

# %% [markdown]
# ## Results
# ### Headline (worst case over every zoo attacker)
# Accounts needed = the smallest number of accounts over which an attacker's queries can be split with no
# account flagged; each headline count is the minimum over all attackers, and `*_worst_attack` names it.
# `targets` says which of the study's goals are met (a missed target stays missed).

# %%
display(pd.Series({key: metrics.get(key) for key in stage.HEADLINE_KEYS}, name="value").to_frame())
display(pd.Series(metrics["targets"], name="met").to_frame())

# %% [markdown]
# ### The attacker zoo: cost (accounts per detector) and what it buys (surrogate Agr@10)

# %%
zoo = pd.read_csv(out / "zoo.csv")
display(zoo_costs(zoo))
zoo

# %% [markdown]
# ### False positives on held-out benign accounts, per form (calibrated on other users' accounts)

# %%
pd.read_csv(out / "fpr_by_form.csv").pivot(index="kind", columns="detector", values="rate")

# %% [markdown]
# ### Calibration (fitted on calibration accounts only, then frozen)

# %%
pd.DataFrame(metrics["calibration"]).T

# %% [markdown]
# ### Single-account attacks and the ROC of the main per-account statistics

# %%
display(plots.roc_curves(pd.read_csv(out / "roc.csv"), metrics["roc_auc"], settings.fpr))
pd.read_csv(out / "single_account.csv")

# %% [markdown]
# ### The attack stage's own query logs, if any

# %%
pd.read_csv(out / "logged_attacks.csv")
