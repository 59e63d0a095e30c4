"""The README's results section, regenerated from ``results/headline.json`` when a run is published.

The README shows the headline figures of the published run between two
marker comments; nothing between them is written by hand, so the README can
never disagree with ``results/``.
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from recsec_lib.report import target_table
from recsec_lib.runs import write_text_atomic
from recsec_lib.tables import markdown_table

START = "<!-- results-table:start -->"
END = "<!-- results-table:end -->"
ABOUT = ("profile", "dataset", "git_commit", "date")


def _fmt(value) -> str:
    if isinstance(value, float):
        if math.isnan(value):
            return "n/a"
        return f"{value:.4g}"
    return str(value)


def extra_targets(extra_runs: dict[str, dict]) -> pd.DataFrame:
    """The targets measured by runs published beside the main one (results/<name>/), one row each, with the run."""
    rows = []
    for name, headline in sorted(extra_runs.items()):
        measured = target_table(headline)
        measured = measured[measured["measured"].notna()]
        about = ", ".join(f"{key} `{headline.get(key)}`" for key in ABOUT if key != "dataset")
        for row in measured.to_dict(orient="records"):
            rows.append({"run": f"[`results/{name}/`](results/{name}/) ({about})", **row})
    return pd.DataFrame(rows)


def results_block(headline: dict, extra_runs: dict[str, dict] | None = None) -> str:
    """Markdown for the README: where the figures come from, the targets table, every headline key.

    ``extra_runs`` (folder name -> headline) are runs published beside the main
    one, e.g. a paper-budget attack too long for the cpu profile; the targets
    they measured get a table of their own, each row naming its run.
    """
    about = ", ".join(f"{key} `{headline.get(key)}`" for key in ABOUT)
    targets = target_table(headline)
    targets["measured"] = targets["measured"].map(lambda v: "" if v is None else _fmt(v))
    extra = extra_targets(extra_runs or {})
    extra_lines = []
    if not extra.empty:
        extra["measured"] = extra["measured"].map(_fmt)
        extra_lines = ["", "Targets measured by other runs published beside it (each directory has that run's "
                           "headline, metrics and figures):", "", markdown_table(extra).rstrip("\n")]
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
