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
# # 00 · The data
# Loads the dataset (from the processed cache, `data_dir`, the local mirror or a verified GroupLens download,
# in that order), turns every rating into an implicit interaction in time order, applies the 5-core filter
# until it is stable and numbers the items 1..n. Writes `data/metrics.json` (counts before and after the
# filter, which source form was read, the dataset fingerprint that checkpoints record, sequence-length
# statistics) and `data/summary.csv`, and adds `<dataset>_users / _items / _interactions` to the headline.

# %%
from pathlib import Path
from typing import Optional

import pandas as pd
from IPython.display import Markdown, display

from recsec_lib.study.stages import data as stage
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
allow_download: Optional[bool] = None  # download from GroupLens when neither data_dir nor the mirror has the data

# %%
ctx = StudyContext(run_dir=Path(run_dir), dataset=dataset, data_dir=Path(data_dir), mirror=mirror or None,
                   seed=seed, device=device, profile=profile, force=force)
settings = stage.Settings.for_profile(profile).with_overrides(allow_download=allow_download)
metrics = run_cached(stage, ctx, settings)  # reuses an identical earlier result unless force

# %% [markdown]
# ## Results
# Counts before and after the filter, and where the data came from. For ML-1M the protocol expects
# 6,040 users, 3,416 items and 999,611 interactions after the 5-core filter.

# %%
display(Markdown(f"**Source:** `{metrics['source']}`  \n**Fingerprint:** `{metrics['fingerprint']}`"))
counts = pd.DataFrame({
    "before filter": [metrics["raw_users"], metrics["raw_items"], metrics["raw_interactions"]],
    "after 5-core filter": [metrics["users"], metrics["items"], metrics["interactions"]],
}, index=["users", "items", "interactions"])
counts

# %% [markdown]
# Sequence lengths (interactions per user). Models read only the most recent `max_len` items; the last row
# is the share of users whose history is longer than that.

# %%
lengths = pd.Series({key: metrics[key] for key in ("seq_len_min", "seq_len_median", "seq_len_mean",
                                                   "seq_len_p90", "seq_len_max", "share_users_over_max_len")},
                    name="value")
lengths.to_frame()

# %% [markdown]
# The first user's history as the models see it (internal item ids, with titles), ending with the
# validation and test targets of the leave-one-out split.

# %%
data = ctx.load_dataset()
sequence = data.sequence(0)
role = ["train"] * (len(sequence) - 2) + ["validation target", "test target"]
history = data.items.loc[sequence, ["title", "genres"]].assign(role=role).reset_index()
history.tail(8)
