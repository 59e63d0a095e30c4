"""Report stage: the study's tables, figures and findings from every stage's metrics.

It computes nothing new about models; it reads the run folder and writes
``report/`` (tables as CSV and markdown, findings) for the report notebook,
which ``run_all.sh`` exports to ``<run>/report.html``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import pandas as pd

from recsec_lib import report, runs
from recsec_lib.tables import markdown_table
from recsec_lib.stages.context import StudyContext


@dataclass(frozen=True)
class Settings:
    figure_glob: str = "*/*.png"  # which figures of the run the report shows

    @classmethod
    def for_profile(cls, profile: str) -> "Settings":
        return cls()

    def with_overrides(self, **values) -> "Settings":
        return replace(self, **{k: v for k, v in values.items() if v is not None})


def run(ctx: StudyContext, settings: Settings) -> dict:
    with runs.stage_timer() as timing:
        out = ctx.stage_dir("report")
        headline_path = ctx.run_dir / "headline.json"
        headline = runs.read_json(headline_path) if headline_path.exists() else {}
        stage_metrics = report.collect_stage_metrics(ctx.run_dir)
        tables = {
            "quality": report.quality_table(stage_metrics),
            "targets": report.target_table(headline),
            "timings": report.timing_table(stage_metrics, headline),
            "published_quality": report.PUBLISHED_QUALITY,
            "published_attack": report.PUBLISHED_ATTACK,
            "published_gro": report.PUBLISHED_GRO,
        }
        for name, table in tables.items():
            save_table(table, out / name)
        shown = []
        for index, (title, table) in enumerate(report.stage_tables(ctx.run_dir)):
            stem = f"stage_table_{index}"
            save_table(table, out / stem)
            shown.append({"title": title, "file": f"{stem}.csv"})
        lines = report.findings(headline, stage_metrics)
        (out / "findings.md").write_text("".join(f"- {line}\n" for line in lines))
        figures = sorted(str(p.relative_to(ctx.run_dir)) for p in ctx.run_dir.glob(settings.figure_glob)
                         if p.parent.name != "report")
    metrics = {"findings": lines, "figures": figures, "tables": sorted(tables), "stage_tables": shown, **timing}
    runs.write_stage_metrics(ctx.run_dir, "report", metrics)
    return metrics


def save_table(table: pd.DataFrame, stem: Path) -> None:
    """A table as CSV (for tools) and markdown (for reading)."""
    table.to_csv(stem.with_suffix(".csv"), index=False)
    stem.with_suffix(".md").write_text(markdown_table(table))
