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
# The study's findings, then each stage's figures beside the tables they explain, in the order the stages run,
# all read from this run folder. Nothing here is typed in by hand: published figures appear only in rows
# labelled *published*. `run_all.sh` exports this notebook to `<run>/report.html` (with code) and
# `<run>/report_nocode.html`.

# %%
import json
from pathlib import Path

import pandas as pd
from IPython.display import HTML, Markdown, display

from recsec_lib.study import report
from recsec_lib.study.stages import report as stage
from recsec_lib.study.stages.context import StudyContext
from recsec_lib.common.tables import html_table, read_table

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

# %%
ctx = StudyContext(run_dir=Path(run_dir), dataset=dataset, data_dir=Path(data_dir), mirror=mirror or None,
                   seed=seed, device=device, profile=profile, force=force)
metrics = stage.run(ctx, stage.Settings.for_profile(profile))  # the report is never cached
report_dir = ctx.run_dir / "report"
headline = json.loads((ctx.run_dir / "headline.json").read_text())

# %% [markdown]
# ## Findings
# Generated from the numbers of this run.

# %%
display(Markdown((report_dir / "findings.md").read_text()))

# %% [markdown]
# ## Targets
# Each target the project set, beside what this run measured.

# %%
display(HTML(html_table(read_table(report_dir / "targets.csv"))))

# %% [markdown]
# ## The study, stage by stage
# Each figure sits beside the table it was drawn from, with a caption saying what it shows; the line under
# each says which files of the run folder it came from. Stages this run did not run are left out.

# %%
for heading, sections in report.stage_groups(report.present_sections(ctx.run_dir)):
    display(Markdown(f"### {heading}"))
    for section in sections:
        display(HTML(report.section_html(ctx.run_dir, section)))

# %% [markdown]
# ## Side-by-side recommendations
# What the undefended target, the surrogate stolen from it, the GRO target at the chosen λ and the
# surrogate stolen from that one recommend after the same histories: the most watched movies of a
# genre, and a few real test users (their held-out next movie in bold where a model finds it).
# Models whose checkpoint this run lacks are named at the top and left out.

# %%
comparison = metrics["comparison"]
display(Markdown(report.demote_headings((report_dir / comparison["files"]["markdown"]).read_text(), levels=2)))

# %% [markdown]
# ## Published reference rows
# From the papers cited in STUDY.md, for comparison only; labelled *published*.

# %%
for name, title in (("published_quality", "Next-item quality on ML-1M"),
                    ("published_attack", "Model extraction on ML-1M, 5,000 sequences (Yue et al.)"),
                    ("published_gro", "Defenses on ML-1M, BERT4Rec target and surrogate (Zhang et al.)")):
    display(Markdown(f"### {title}"))
    display(HTML(html_table(read_table(report_dir / f"{name}.csv"))))

# %% [markdown]
# ## Headline figures
# The flat `headline.json` of this run (documented in the README).

# %%
display(HTML(html_table(pd.DataFrame({"key": list(headline), "value": list(headline.values())}))))

# %% [markdown]
# ## Time and memory per stage

# %%
display(HTML(html_table(read_table(report_dir / "timings.csv"))))
