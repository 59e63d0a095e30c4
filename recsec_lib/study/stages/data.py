"""Data stage: prepare the dataset (load, 5-core filter, ids, cache) and record what it holds.

Writes ``data/metrics.json`` (counts before and after the filter, source form,
fingerprint, sequence-length statistics) and ``data/summary.csv``, and merges
``<prefix>_users``, ``<prefix>_items`` and ``<prefix>_interactions`` into the
headline (prefix "ml1m" for ml-1m, "ml100k", "ml20m", "synthetic").

Later stages read the dataset through ``StudyContext.load_dataset()``, which
uses prepare_dataset's defaults (min_count 5, max_len 200): the profiles here
keep those values so every stage sees the same data.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from recsec_lib.common.files import write_csv_atomic
from recsec_lib.common.settings import SettingsBase
from recsec_lib.data import analysis

from recsec_lib.study import runs
from recsec_lib.data.prepare import dataset_manifest, prepare_dataset
from recsec_lib.study.stages.context import StudyContext


@dataclass(frozen=True)
class Settings(SettingsBase):
    min_count: int = 5  # k of the k-core filter (STUDY.md: 5)
    max_len: int = 200  # sequence length the models see (the most recent items)
    allow_download: bool = True  # fetch from GroupLens when neither data_dir nor the mirror has the data

    PROFILES = {"smoke": {}, "cpu": {}, "full": {}}  # the protocol is the same at every scale


def headline_prefix(dataset: str) -> str:
    """"ml-1m" -> "ml1m": the prefix of the dataset's headline keys."""
    return dataset.replace("-", "")


def run(ctx: StudyContext, settings: Settings) -> dict:
    with runs.stage_timer() as timing:
        out = ctx.stage_dir("data")
        dataset = prepare_dataset(ctx.dataset, data_dir=ctx.data_dir, mirror=ctx.mirror,
                                  min_count=settings.min_count, max_len=settings.max_len,
                                  download=settings.allow_download)
        manifest = dataset_manifest(ctx.dataset, ctx.data_dir) or {}
        counts = manifest.get("counts", {})
        lengths = analysis.sequence_lengths(dataset)
        metrics = {
            "dataset": dataset.name,
            "users": dataset.num_users,
            "items": dataset.num_items,
            "interactions": dataset.num_interactions,
            "raw_users": counts.get("raw_users"),
            "raw_items": counts.get("raw_items"),
            "raw_interactions": counts.get("raw_interactions"),
            "source": dataset.source,
            "source_form": manifest.get("form", ""),
            "fingerprint": dataset.fingerprint,
            "min_count": settings.min_count,
            "max_len": dataset.max_len,
            "density": round(dataset.num_interactions / (dataset.num_users * dataset.num_items), 6),
            **analysis.length_stats(lengths, dataset.max_len),
        }
        summary = pd.DataFrame([(k, v) for k, v in metrics.items()], columns=["statistic", "value"])
        write_csv_atomic(out / "summary.csv", summary)
    metrics.update(timing)
    prefix = headline_prefix(dataset.name)
    headline = {f"{prefix}_users": dataset.num_users, f"{prefix}_items": dataset.num_items,
                f"{prefix}_interactions": dataset.num_interactions}
    runs.write_stage_metrics(ctx.run_dir, "data", metrics, headline)
    return metrics
