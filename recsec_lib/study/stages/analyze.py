"""Analysis stage: what the dataset looks like, as figures, a statistics table and metrics.

Writes into ``analyze/``: ``sequence_lengths.png``, ``long_tail.png``,
``genres.png``, ``release_years.png``, and where the source has them
``ratings.png`` and ``over_time.png``; ``statistics.csv`` and the per-genre /
per-year / per-rating tables as CSV; ``metrics.json``. When the source lacks
ratings or timestamps (the SASRec-style ML-1M file) the figure is skipped and
``metrics["missing"]`` says why, so the notebook can say so instead of failing.

Sequence, popularity, genre and year figures describe the processed data (what
the models see); rating and time figures describe the raw ratings, since the
processed data keeps neither.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from recsec_lib.common.settings import SettingsBase
from recsec_lib.data import analysis

from recsec_lib.study import runs
from recsec_lib.data.prepare import load_raw
from recsec_lib.study.stages.context import StudyContext
from recsec_lib.study.stages.data import headline_prefix


@dataclass(frozen=True)
class Settings(SettingsBase):
    top_genres: int = 20  # genres shown in the genre figure (all 18 ML-1M genres fit)

    PROFILES = {"smoke": {}, "cpu": {}, "full": {}}  # cheap at every scale


def _save_csv(table: pd.DataFrame, path, index: bool = True) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    table.to_csv(tmp, index=index)
    tmp.replace(path)


def run(ctx: StudyContext, settings: Settings) -> dict:
    if settings.top_genres < 1:
        raise ValueError(f"setting 'top_genres' must be >= 1, got {settings.top_genres}")
    with runs.stage_timer() as timing:
        out = ctx.stage_dir("analyze")
        dataset = ctx.load_dataset()
        raw = load_raw(ctx.dataset, data_dir=ctx.data_dir, mirror=ctx.mirror)
        name = dataset.name
        lengths = analysis.sequence_lengths(dataset)
        counts = analysis.item_counts(dataset)[1:]
        figures = {
            "sequence_lengths": analysis.save_length_histogram(
                lengths, dataset.max_len, out / "sequence_lengths.png", f"{name}: interactions per user"),
            "long_tail": analysis.save_long_tail(counts, out / "long_tail.png", f"{name}: item popularity"),
        }
        genres = analysis.genre_table(dataset)
        _save_csv(genres, out / "genres.csv")
        figures["genres"] = analysis.save_bar(
            genres["interaction_share"].head(settings.top_genres) * 100, out / "genres.png", "genre",
            "share of interactions (%)", f"{name}: interactions by genre", horizontal=True)
        years = analysis.year_table(dataset)
        _save_csv(years, out / "release_years.csv")
        if len(years):
            full_range = years.reindex(range(years.index.min(), years.index.max() + 1), fill_value=0)
            figures["release_years"] = analysis.save_line(
                full_range["items"], out / "release_years.png", "release year", "items",
                f"{name}: items by release year (from titles)")
        ratings = analysis.rating_table(raw)
        if ratings is not None:
            _save_csv(ratings, out / "ratings.csv")
            figures["ratings"] = analysis.save_bar(ratings["share"] * 100, out / "ratings.png", "rating",
                                                   "share of ratings (%)", f"{name}: rating values (raw)")
        monthly = analysis.monthly_table(raw)
        if monthly is not None:
            _save_csv(monthly, out / "over_time.csv")
            figures["over_time"] = analysis.save_line(monthly["interactions"], out / "over_time.png", "month",
                                                      "interactions", f"{name}: interactions per month (raw)")
        statistics = analysis.statistics_table(dataset, raw)
        _save_csv(statistics, out / "statistics.csv", index=False)
        top1, top10 = analysis.top_share(counts, 0.01), analysis.top_share(counts, 0.10)
    metrics = {
        "dataset": name,
        "source": raw.source,
        "statistics": {row.statistic: row.value for row in statistics.itertuples()},
        "top1pct_item_share": round(top1, 4),
        "top10pct_item_share": round(top10, 4),
        "popularity_gini": round(analysis.gini(counts), 4),
        "has_ratings": raw.has_ratings,
        "has_timestamps": raw.has_timestamps,
        "missing": analysis.missing_reasons(raw),
        "figures": {key: path.name for key, path in figures.items()},
        "top_genres": genres["interaction_share"].head(5).to_dict(),
        **analysis.length_stats(lengths, dataset.max_len),
        **timing,
    }
    prefix = headline_prefix(name)
    runs.write_stage_metrics(ctx.run_dir, "analyze", metrics, {
        f"{prefix}_top1pct_item_share": metrics["top1pct_item_share"],
        f"{prefix}_top10pct_item_share": metrics["top10pct_item_share"],
    })
    return metrics
