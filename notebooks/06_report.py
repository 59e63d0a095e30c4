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
# # 06 · Report
# The study's tables, figures and findings, read from every stage's `metrics.json`
# in this run folder. Nothing here is typed in by hand: published figures appear
# only in rows labelled *published*. `run_all.sh` exports this notebook to
# `<run>/report.html` (with code) and `<run>/report_nocode.html`.

# %%
import json
from pathlib import Path

import pandas as pd
from IPython.display import Image, Markdown, display

from recsec_lib.stages import report as stage
from recsec_lib.stages.context import StudyContext

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

# %%
ctx = StudyContext(run_dir=Path(run_dir), dataset=dataset, data_dir=Path(data_dir), mirror=mirror or None,
                   seed=seed, device=device, profile=profile, force=force)
metrics = stage.run(ctx, stage.Settings.for_profile(profile))  # the report is never cached
report_dir = ctx.run_dir / "report"
headline = json.loads((ctx.run_dir / "headline.json").read_text())
pd.set_option("display.max_colwidth", 80)

# %% [markdown]
# ## Findings
# Generated from the numbers of this run.

# %%
display(Markdown((report_dir / "findings.md").read_text()))

# %% [markdown]
# ## Targets
# Each target the project set, beside what this run measured.

# %%
display(pd.read_csv(report_dir / "targets.csv"))

# %% [markdown]
# ## Recommendation quality
# Test split, full ranking over all items with the history's items filtered out (primary); unfiltered
# and sampled-100 figures are labelled. Published rows are from the papers, for comparison.

# %%
display(pd.read_csv(report_dir / "quality.csv"))

# %% [markdown]
# ## Attack, defenses and detection
# The tables each stage saved (missing ones were not run in this run).

# %%
for table in metrics["stage_tables"]:
    display(Markdown(f"### {table['title']}"))
    display(pd.read_csv(report_dir / table["file"]))

# %% [markdown]
# ## Side-by-side recommendations
# What the undefended target, the surrogate stolen from it, the GRO target at the chosen λ and the
# surrogate stolen from that one recommend after the same histories: the most watched movies of a
# genre, and a few real test users (their held-out next movie in bold where a model finds it).
# Models whose checkpoint this run lacks are named at the top and left out.

# %%
comparison = metrics["comparison"]
print("compared:", ", ".join(comparison["columns"]) or "nothing")
display(Markdown((report_dir / comparison["files"]["markdown"]).read_text()))

# %% [markdown]
# ## Headline figures
# The flat `headline.json` of this run (documented in the README).

# %%
display(pd.Series(headline, name="value").to_frame())

# %% [markdown]
# ## Published reference rows
# From the papers cited in STUDY.md, for comparison only; labelled *published*.

# %%
for name in ("published_quality", "published_attack", "published_gro"):
    display(pd.read_csv(report_dir / f"{name}.csv"))

# %% [markdown]
# ## Figures of every stage

# %%
for figure in metrics["figures"]:
    display(Markdown(f"**{figure}**"))
    display(Image(filename=str(ctx.run_dir / figure)))

# %% [markdown]
# ## Time and memory per stage

# %%
display(pd.read_csv(report_dir / "timings.csv"))
