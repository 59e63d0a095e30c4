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
# # 01 · What the data looks like
# Describes the dataset the models are trained on: sequence lengths, how concentrated item popularity is
# (the long tail, which matters for an attacker who samples items), genres and release years; and, where the
# source has them, the rating values and activity over time. Writes PNG figures, `statistics.csv` and the
# per-genre / per-year tables into `analyze/`, and `metrics.json`.

# %%
from pathlib import Path
from typing import Optional

import pandas as pd
from IPython.display import Image, Markdown, display

from recsec_lib.study.stages import analyze as stage
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
top_genres: Optional[int] = None  # genres shown in the genre figure (20: all 18 ML-1M genres)

# %%
ctx = StudyContext(run_dir=Path(run_dir), dataset=dataset, data_dir=Path(data_dir), mirror=mirror or None,
                   seed=seed, device=device, profile=profile, force=force)
settings = stage.Settings.for_profile(profile).with_overrides(top_genres=top_genres)
metrics = run_cached(stage, ctx, settings)  # reuses an identical earlier result unless force
out = ctx.run_dir / "analyze"

# %% [markdown]
# ## Results
# ### Statistics
# Counts before ("raw") and after the 5-core filter, and popularity concentration.

# %%
pd.read_csv(out / "statistics.csv")

# %% [markdown]
# ### Sequence lengths
# Interactions per user; the dashed line is the `max_len` the models read.

# %%
display(Image(filename=str(out / "sequence_lengths.png")))

# %% [markdown]
# ### Item popularity: the long tail
# Left, interactions per item by popularity rank; right, the share of all interactions held by the most
# popular items.

# %%
display(Markdown(f"The top 1% of items hold **{metrics['top1pct_item_share']:.1%}** of interactions, "
                 f"the top 10% hold **{metrics['top10pct_item_share']:.1%}** "
                 f"(Gini {metrics['popularity_gini']:.3f})."))
display(Image(filename=str(out / "long_tail.png")))

# %% [markdown]
# ### Genres and release years
# Interaction share per genre (a movie with several genres counts for each), and items per release year
# parsed from the titles.

# %%
display(Image(filename=str(out / "genres.png")))
pd.read_csv(out / "genres.csv")

# %%
if "release_years" in metrics["figures"]:
    display(Image(filename=str(out / "release_years.png")))
else:
    display(Markdown("No title carries a release year."))

# %% [markdown]
# ### Ratings and activity over time
# Only where the source file has rating values and timestamps (the official ML-1M, ML-100K and ML-20M files
# do; the SASRec-style `ml-1m.txt` keeps only the order of each user's ratings).

# %%
for key, title in (("ratings", "Rating values"), ("over_time", "Interactions per month")):
    if key in metrics["figures"]:
        display(Markdown(f"**{title}**"))
        display(Image(filename=str(out / metrics["figures"][key])))
for what, why in metrics["missing"].items():
    display(Markdown(f"*No {what.replace('_', ' ')}: {why}.*"))
