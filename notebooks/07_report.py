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
# *The study's report: a short paper generated from this run's numbers (every sentence and table; published
# figures only in rows labelled published), then appendices. `run_all.sh` exports this notebook to
# `<run>/report.html` (with code) and `<run>/report_nocode.html` (without).*

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
workers: int = 1  # cells of a stage run at once; 1 means one after another
cluster: str = ""  # Ray cluster address for the cells (auto, local, ray://HOST:PORT); empty means none
threads: int = 1  # torch threads per cell, the same in every back-end

# %%
ctx = StudyContext(run_dir=Path(run_dir), dataset=dataset, data_dir=Path(data_dir), mirror=mirror or None,
                   seed=seed, device=device, profile=profile, force=force,
                   workers=workers, cluster=cluster, threads=threads)
metrics = stage.run(ctx, stage.Settings.for_profile(profile))  # the report is never cached
report_dir = ctx.run_dir / "report"
headline = json.loads((ctx.run_dir / "headline.json").read_text())

# %%
display(HTML((report_dir / "paper.html").read_text()))

# %% [markdown]
# ## Appendix A. Targets set by the issues
# Each target the project set, beside what this run measured.

# %%
display(HTML(html_table(read_table(report_dir / "targets.csv"))))

# %% [markdown]
# ## Appendix B. Every figure and table of the run, stage by stage
# Each figure beside the table it was drawn from, with a caption (a figure the paper shows keeps only its table
# here); the line under each names the files of the run folder it came from. Stages this run did not run are
# left out.

# %%
in_paper = set(metrics["paper"]["figures"])  # shown once, in the paper; their sections keep their tables here
for heading, sections in report.stage_groups(report.appendix_sections(ctx.run_dir, in_paper)):
    display(Markdown(f"### {heading}"))
    for section in sections:
        display(HTML(report.section_html(ctx.run_dir, section)))

# %% [markdown]
# ## Appendix C. Side-by-side recommendations
# What the undefended target, the surrogate stolen from it and the GRO target recommend after the same
# histories: the most watched movies of a genre, and a few real test users (their held-out next movie in bold
# where a model finds it). Models whose checkpoint this run lacks are named at the top and left out.

# %%
comparison = metrics["comparison"]
display(Markdown(report.demote_headings((report_dir / comparison["files"]["markdown"]).read_text(), levels=2)))

# %% [markdown]
# ## Appendix D. Published reference rows
# From the papers cited in STUDY.md, for comparison only; labelled *published*.

# %%
for name, title in (("published_quality", "Next-item quality on ML-1M"),
                    ("published_attack", "Model extraction on ML-1M, 5,000 sequences (Yue et al.)"),
                    ("published_gro", "Defenses on ML-1M, BERT4Rec target and surrogate (Zhang et al.)")):
    display(Markdown(f"### {title}"))
    display(HTML(html_table(read_table(report_dir / f"{name}.csv"))))

# %% [markdown]
# ## Appendix E. Headline figures
# The flat `headline.json` of this run (documented in the README); the keys `attack_main_*` and `prevention_*`
# are the report's own summaries.

# %%
display(HTML(html_table(pd.DataFrame({"key": list(headline), "value": [str(v) for v in headline.values()]}))))

# %% [markdown]
# ## Appendix F. Time and memory per stage

# %%
display(HTML(html_table(read_table(report_dir / "timings.csv"))))
