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
# Then the attacker who chooses its own parameters (issue 24): per detector, the fewest accounts over a grid of
# every registered generator's own choices (chains, mixing), the split of its queries over accounts and the
# pacing window (24 h to 30 days), plus a public-data attacker replaying ML-100K histories; benign users with
# real timing (ML-100K timestamps) calibrate on one set of users and are measured on another, with exact 95%
# intervals. Without ML-100K in the mirror (synthetic data) those real-timing parts are skipped, and the
# metrics say so. Writes CSV tables, PNG figures, `calibration.json`, `encoder.pt` and `metrics.json` into `seat/`.

# %%
from pathlib import Path
from typing import Optional

import pandas as pd
from IPython.display import display

from recsec_lib.common import plots
from recsec_lib.seat.plots import search_costs, zoo_costs
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
search_attackers: Optional[str] = None  # generators the attacker who chooses may use, e.g. chain,autoregressive
real_timing: Optional[bool] = None  # benign users with the real ML-100K timing when the mirror has ML-100K

# %%
ctx = StudyContext(run_dir=Path(run_dir), dataset=dataset, data_dir=Path(data_dir), mirror=mirror or None,
                   seed=seed, device=device, profile=profile, force=force,
                   workers=workers, cluster=cluster, threads=threads)
settings = stage.Settings.for_profile(profile).with_overrides(
    fpr=fpr, pair_quantile=pair_quantile, zoo=zoo, attack_sequences=attack_sequences, attack_seq_len=attack_seq_len,
    encoder_steps=encoder_steps, search_attackers=search_attackers, real_timing=real_timing)
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
# ### The attacker who chooses its parameters: worst case per detector
# Each bar is the minimum over the attacker's whole grid, labelled with the point that reached it; `agr10` is
# its surrogate's Agr@10 there (cost to fidelity). The verdict sentence is written from these numbers.

# %%
print(metrics["detection_verdict"])
for key in ("real_timing_skipped", "public_data_attacker_skipped"):
    if metrics.get(key):
        print(f"{key}: {metrics[key]}")
best = pd.read_csv(out / "search_best.csv")
display(search_costs(best))
best

# %% [markdown]
# ### Benign users (real timing where available): false positives per form with exact 95% intervals
# `can_show`: the held-out set is big enough for its interval to show the target (0.1% overall, 1% per form).

# %%
intervals = pd.read_csv(out / "fpr_intervals.csv")
intervals[intervals.detector == metrics["detect_best"]]

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
