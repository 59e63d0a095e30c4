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
# # 06 · Watermark: can the owner prove a copy?
# The third defense family: neither stopping nor spotting the theft, but proving it. A secret key (a seed)
# chooses trigger → continuation item pairs; the trained target is fine-tuned so that after a history ending in
# a trigger it ranks the continuation first, while ordinary users' lists stay as the unmarked target ranks them.
# The owner then queries any suspect as a top-k black box with the watermark's queries and those of decoy keys
# (never trained in) and claims ownership only when the exact test says p < alpha. This stage measures what the
# mark costs users (NDCG@10 kept, with its interval), whether it is verified on the surrogates every registered
# attacker (generator × view) extracts through the marked box, and on an attacker who knows the scheme but not
# the key and tries to strip it, and that it clears models that never saw the mark (false claims).
# Writes `key.json`, `marked.pt`, `utility.csv`, `verification.csv`, `p_values.png` and `metrics.json` into
# `watermark/`.

# %%
from pathlib import Path
from typing import Optional

import pandas as pd
from IPython.display import display

from recsec_lib.study.stage_cache import run_cached
from recsec_lib.study.stages import watermark as stage
from recsec_lib.study.stages.context import StudyContext
from recsec_lib.watermark.plots import p_value_figure

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

# This stage's settings (run_all.sh -p NAME VALUE): None means the profile's value. Lists are text such as 1,3.
num_pairs: Optional[int] = None  # watermark pairs the key holds (and verification queries sent)
decoys: Optional[int] = None  # decoy keys the exact test compares the watermark hits with
continuation_pool: Optional[str] = None  # all | rare: items the continuations are drawn from
embed_epochs: Optional[int] = None  # passes of the embedding over the target training rows
alpha: Optional[float] = None  # claim ownership only when p < alpha
generators: Optional[str] = None  # attackers by name, e.g. random,chain (registered in attack.generators.GENERATORS)
views: Optional[str] = None  # how they read the lists, e.g. naive,top-10 (registered in attack.views.VIEWS)
attack_sequences: Optional[int] = None  # walks per attacker; the budget is attack_sequences x attack_seq_len queries
surrogate_epochs: Optional[int] = None  # fixed epochs of every surrogate
rare_fractions: Optional[str] = None  # the knowing attacker drops this share of least seen items, e.g. 0.25,0.5
independent: Optional[str] = None  # models that never saw the mark, arch:seed or arch:seed:even|odd, comma-separated
independent_epochs: Optional[int] = None  # training epochs of each of them

# %%
ctx = StudyContext(run_dir=Path(run_dir), dataset=dataset, data_dir=Path(data_dir), mirror=mirror or None,
                   seed=seed, device=device, profile=profile, force=force,
                   workers=workers, cluster=cluster, threads=threads)
settings = stage.Settings.for_profile(profile).with_overrides(
    num_pairs=num_pairs, decoys=decoys, continuation_pool=continuation_pool, embed_epochs=embed_epochs, alpha=alpha,
    generators=generators, views=views, attack_sequences=attack_sequences, surrogate_epochs=surrogate_epochs,
    rare_fractions=rare_fractions, independent=independent, independent_epochs=independent_epochs)
metrics = run_cached(stage, ctx, settings)  # reuses an identical earlier result unless force
out = ctx.run_dir / "watermark"

# %% [markdown]
# ## Results
# ### Headline
# Worst cases: the largest p-value of any stolen copy, the smallest of any independent model. The verified share
# counts the stolen copies (surrogates and the knowing attacker's) whose Agr@10 with the marked target reaches
# `min_agreement`. `targets` says which of the study's goals are met (a missed target stays missed).

# %%
display(pd.Series({key: metrics.get(key) for key in stage.HEADLINE_KEYS}, name="value").to_frame())
display(pd.Series(metrics["targets"], name="met").to_frame())

# %% [markdown]
# ### What the mark costs users: test NDCG@10 of the unmarked and the marked target (95% interval over users)

# %%
pd.read_csv(out / "utility.csv")

# %% [markdown]
# ### The ownership test on every suspect
# Right of the dashed line ownership is claimed. Stolen copies should be right of it, independent models left.

# %%
verification = pd.read_csv(out / "verification.csv")
display(p_value_figure(verification, settings.alpha))
verification[["group", "suspect", "agr10", "hits", "queries", "decoy_hits", "decoy_queries", "p_value", "claimed"]]
