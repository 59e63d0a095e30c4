"""The README's results section, regenerated from ``results/headline.json`` when a run is published.

The README shows the headline figures of the published run between two
marker comments; nothing between them is written by hand, so the README can
never disagree with ``results/``.
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from recsec_lib.study.report import TARGETS, target_table
from recsec_lib.common.files import write_text_atomic
from recsec_lib.common.tables import markdown_table

START = "<!-- results-table:start -->"
END = "<!-- results-table:end -->"
ABOUT = ("profile", "dataset", "git_commit", "date")
# Keys of the defense stages (GRO, SEAT and their baselines). When the main run has a family's keys, a run
# published beside it adds none of that family: the main run judges each defense with its own attackers and
# controls, and an older run's defense figure (e.g. a gro_best_lambda the main run found no λ for) would
# read as the main run's.
DEFENSE_FAMILIES = ("gro_", "defense_frontier_", "none_agr", "seat_", "volume_cap_", "rate_cap_", "caps_",
                    "prada_")


def _fmt(value) -> str:
    if isinstance(value, float):
        if math.isnan(value):
            return "n/a"
        return f"{value:.4g}"
    return str(value)


def added_figures(name: str, headline: dict, main: dict) -> list[str]:
    """README lines for a run published beside the main one (results/<name>/): the figures it adds.

    Only the keys the main run lacks are listed (e.g. the 5k-sequence attack
    keys), with the issue's target where one exists; figures both runs share
    are the main run's to show, and so is every defense family the main run
    measured (``DEFENSE_FAMILIES``).
    """
    measured = [family for family in DEFENSE_FAMILIES if any(key.startswith(family) for key in main)]
    about = ", ".join(f"{key} `{headline.get(key)}`" for key in ABOUT if key != "dataset")
    targets = {target.key: target for target in TARGETS}
    rows = []
    for key, value in sorted(headline.items()):
        if key in main or key in ABOUT or key.startswith("stage_seconds_") or key == "study_wall_seconds":
            continue
        if any(key.startswith(family) for family in measured):
            continue
        target = targets.get(key)
        rows.append({"key": f"`{key}`", "value": _fmt(value),
                     "target": f"{target.comparison} {target.threshold:g}" if target else "",
                     "status": ("met" if target.met(value) else "MISSED") if target else ""})
    if not rows:
        return []
    return ["", f"Figures added by [`results/{name}/`](results/{name}/) ({about}), a run published beside "
                "this one (that folder holds its headline, metrics, figures and, if it ran the report stage, "
                "its report):", "",
            markdown_table(pd.DataFrame(rows)).rstrip("\n")]


def results_block(headline: dict, extra_runs: dict[str, dict] | None = None) -> str:
    """Markdown for the README: where the figures come from, the targets table, every headline key.

    ``extra_runs`` (folder name -> headline) are runs published beside the main
    one, e.g. a paper-budget attack too long for the cpu profile; the figures
    they add get a table of their own.
    """
    about = ", ".join(f"{key} `{headline.get(key)}`" for key in ABOUT)
    targets = target_table(headline)
    targets["measured"] = targets["measured"].map(lambda v: "" if v is None else _fmt(v))
    extra_lines = [line for name, extra in sorted((extra_runs or {}).items())
                   for line in added_figures(name, extra, headline)]
    figures = "\n".join(f"| `{key}` | {_fmt(value)} |" for key, value in sorted(headline.items()) if key not in ABOUT)
    return "\n".join([
        START,
        "Generated from [`results/headline.json`](results/headline.json) by `./run_all.sh` when it publishes "
        f"a run ({about}). The report of that run, without code cells, is [`results/report.html`](results/report.html); "
        "every stage's metrics are in [`results/metrics.json`](results/metrics.json) and the figures in "
        "[`results/figures/`](results/figures/).",
        "",
        "Targets set by the issues, against this run (keys named `_5k` are measured only at the full "
        "profile's 5,000-sequence budget; the cpu profile's smaller budget has its own keys below):",
        "",
        markdown_table(targets).rstrip("\n"),
        *extra_lines,
        "",
        "<details><summary>Every headline figure of this run</summary>",
        "",
        "| key | value |",
        "| --- | --- |",
        figures,
        "",
        "</details>",
        END,
    ])


def update_readme(readme: Path, headline: dict, extra_runs: dict[str, dict] | None = None) -> bool:
    """Replace the README's results section; False (README untouched) when its markers are missing."""
    text = readme.read_text(encoding="utf-8")
    start, end = text.find(START), text.find(END)
    if start < 0 or end < start:
        return False
    write_text_atomic(readme, text[:start] + results_block(headline, extra_runs) + text[end + len(END):])
    return True
