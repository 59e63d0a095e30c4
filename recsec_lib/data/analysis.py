"""Describing a dataset: the numbers and figures of the analysis stage.

Two inputs: the processed ``SequenceDataset`` (after the 5-core filter: what
the models see) and the ``RawData`` it came from (for what preprocessing drops:
rating values and timestamps). Computations return plain numbers, Series and
DataFrames; ``save_*`` functions draw one figure each into a PNG with
matplotlib's object API (no pyplot state, no display needed).

Where the source lacks a column (the SASRec-style ML-1M file has neither
ratings nor timestamps) the functions return None and the caller records why.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from recsec_lib.data.dataset import SequenceDataset
from recsec_lib.data.formats import RawData

DPI = 120


# --------------------------------------------------------------------------- numbers


def sequence_lengths(dataset: SequenceDataset) -> np.ndarray:
    """[U] number of interactions of each user."""
    return np.diff(dataset.offsets)


def length_stats(lengths: np.ndarray, max_len: int) -> dict[str, float]:
    """Summary of sequence lengths, and how many users the max_len truncation touches."""
    lengths = np.asarray(lengths)
    if len(lengths) == 0:
        raise ValueError("length_stats: no sequences")
    return {
        "seq_len_min": int(lengths.min()),
        "seq_len_median": float(np.median(lengths)),
        "seq_len_mean": round(float(lengths.mean()), 3),
        "seq_len_p90": float(np.percentile(lengths, 90)),
        "seq_len_max": int(lengths.max()),
        "share_users_over_max_len": round(float((lengths > max_len).mean()), 4),
    }


def item_counts(dataset: SequenceDataset) -> np.ndarray:
    """[num_items + 1] interactions per internal item id over whole sequences (index 0 = 0)."""
    return np.bincount(dataset.items_flat, minlength=dataset.num_items + 1)


def top_share(counts: np.ndarray, fraction: float) -> float:
    """Share of all interactions held by the ceil(fraction * n) most popular of the n items.

    ``counts`` holds one count per item (no padding slot).
    """
    if not 0 < fraction <= 1:
        raise ValueError(f"parameter 'fraction' must be in (0, 1], got {fraction}")
    counts = np.sort(np.asarray(counts))[::-1]
    if counts.sum() == 0:
        raise ValueError("top_share: no interactions")
    k = max(1, math.ceil(fraction * len(counts)))
    return float(counts[:k].sum() / counts.sum())


def gini(counts: np.ndarray) -> float:
    """Gini coefficient of item popularity (0 = all items equally popular, towards 1 = a few take all)."""
    values = np.sort(np.asarray(counts, dtype=np.float64))
    n = len(values)
    if n == 0 or values.sum() == 0:
        raise ValueError("gini: no interactions")
    ranks = np.arange(1, n + 1)
    return float((2 * (ranks * values).sum()) / (n * values.sum()) - (n + 1) / n)


def genre_table(dataset: SequenceDataset) -> pd.DataFrame:
    """Per genre: number of items, number of interactions, and interaction share.

    An item with several genres counts once for each, so shares add up to more
    than 1; items with no genre are counted under "(none)".
    """
    counts = item_counts(dataset)
    items: dict[str, int] = {}
    interactions: dict[str, int] = {}
    for item, genres in dataset.items["genres"].items():
        for genre in genres or ("(none)",):
            items[genre] = items.get(genre, 0) + 1
            interactions[genre] = interactions.get(genre, 0) + int(counts[item])
    table = pd.DataFrame({"items": pd.Series(items), "interactions": pd.Series(interactions)})
    table["interaction_share"] = (table["interactions"] / dataset.num_interactions).round(4)
    table.index.name = "genre"
    return table.sort_values(["interactions", "items"], ascending=False)


def year_table(dataset: SequenceDataset) -> pd.DataFrame:
    """Per release year (parsed from the titles): number of items and of interactions."""
    counts = item_counts(dataset)
    frame = pd.DataFrame({"year": dataset.items["year"], "interactions": counts[dataset.items.index]})
    frame = frame.dropna(subset=["year"])
    table = frame.groupby("year").agg(items=("interactions", "size"), interactions=("interactions", "sum"))
    table.index = table.index.astype(int)
    return table


def rating_table(raw: RawData) -> pd.DataFrame | None:
    """Number and share of ratings per rating value (raw data, before filtering); None without ratings."""
    if not raw.has_ratings:
        return None
    counts = raw.interactions["rating"].value_counts().sort_index()
    return pd.DataFrame({"ratings": counts, "share": (counts / counts.sum()).round(4)}).rename_axis("rating")


def monthly_table(raw: RawData) -> pd.DataFrame | None:
    """Interactions per calendar month (UTC, raw data); None without timestamps."""
    if not raw.has_timestamps:
        return None
    months = pd.to_datetime(raw.interactions["timestamp"], unit="s", utc=True).dt.strftime("%Y-%m")
    counts = months.value_counts().sort_index()
    return pd.DataFrame({"interactions": counts}).rename_axis("month")


def missing_reasons(raw: RawData) -> dict[str, str]:
    """Which analyses the source cannot support, and why (shown by the notebook instead of a figure)."""
    reasons = {}
    where = raw.source or raw.form
    if not raw.has_ratings:
        reasons["rating_distribution"] = f"the source ({where}) has no rating values"
    if not raw.has_timestamps:
        reasons["interactions_over_time"] = f"the source ({where}) has no timestamps"
    return reasons


def statistics_table(dataset: SequenceDataset, raw: RawData) -> pd.DataFrame:
    """The short table of dataset statistics (statistic, value), before and after the filter."""
    counts = item_counts(dataset)[1:]
    lengths = sequence_lengths(dataset)
    rows = [
        ("users (raw)", int(raw.interactions["user"].nunique())),
        ("items (raw)", int(raw.interactions["item"].nunique())),
        ("interactions (raw)", len(raw.interactions)),
        ("users", dataset.num_users),
        ("items", dataset.num_items),
        ("interactions", dataset.num_interactions),
        ("density", round(dataset.num_interactions / (dataset.num_users * dataset.num_items), 5)),
        ("mean sequence length", round(float(lengths.mean()), 2)),
        ("median sequence length", float(np.median(lengths))),
        ("median interactions per item", float(np.median(counts))),
        ("interaction share of top 1% items", round(top_share(counts, 0.01), 4)),
        ("interaction share of top 10% items", round(top_share(counts, 0.10), 4)),
        ("popularity Gini", round(gini(counts), 4)),
        ("has ratings", raw.has_ratings),
        ("has timestamps", raw.has_timestamps),
    ]
    return pd.DataFrame(rows, columns=["statistic", "value"])


# --------------------------------------------------------------------------- figures


def _save(fig: Figure, path: Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp{path.suffix}")
    fig.savefig(tmp, dpi=DPI, bbox_inches="tight")
    tmp.replace(path)
    return path


def save_length_histogram(lengths: np.ndarray, max_len: int, path: Path, title: str = "") -> Path:
    fig = Figure(figsize=(6, 3.5))
    ax = fig.subplots()
    ax.hist(lengths, bins=50, color="#4c72b0")
    ax.axvline(max_len, color="#c44e52", linestyle="--", label=f"max_len = {max_len}")
    ax.set_yscale("log")
    ax.set_xlabel("interactions per user")
    ax.set_ylabel("users (log scale)")
    ax.set_title(title or "Sequence lengths")
    ax.legend()
    return _save(fig, path)


def save_long_tail(counts: np.ndarray, path: Path, title: str = "") -> Path:
    """Items by popularity rank, and the cumulative interaction share (the long tail)."""
    ordered = np.sort(np.asarray(counts))[::-1]
    rank_share = np.arange(1, len(ordered) + 1) / len(ordered)
    cumulative = np.cumsum(ordered) / ordered.sum()
    fig = Figure(figsize=(10, 3.5))
    left, right = fig.subplots(1, 2)
    left.plot(np.arange(1, len(ordered) + 1), ordered, color="#4c72b0")
    left.set_yscale("log")
    left.set_xlabel("item popularity rank")
    left.set_ylabel("interactions (log scale)")
    left.set_title("Item popularity")
    right.plot(rank_share * 100, cumulative * 100, color="#55a868")
    for fraction in (0.01, 0.10):
        share = top_share(ordered, fraction)
        right.scatter([fraction * 100], [share * 100], color="#c44e52", zorder=3)
        right.annotate(f"top {fraction:.0%}: {share:.1%}", (fraction * 100, share * 100),
                       textcoords="offset points", xytext=(8, -12))
    right.set_xlabel("share of items, most popular first (%)")
    right.set_ylabel("share of interactions (%)")
    right.set_title("Cumulative share (long tail)")
    if title:
        fig.suptitle(title)
    return _save(fig, path)


def save_bar(series: pd.Series, path: Path, xlabel: str, ylabel: str, title: str, horizontal: bool = False) -> Path:
    fig = Figure(figsize=(7, 4 if not horizontal else max(3, 0.28 * len(series))))
    ax = fig.subplots()
    labels = [str(v) for v in series.index]
    if horizontal:
        ax.barh(labels[::-1], series.to_numpy()[::-1], color="#4c72b0")
        ax.set_xlabel(ylabel)
        ax.set_ylabel(xlabel)
    else:
        ax.bar(labels, series.to_numpy(), color="#4c72b0")
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
    ax.set_title(title)
    return _save(fig, path)


def save_line(series: pd.Series, path: Path, xlabel: str, ylabel: str, title: str) -> Path:
    fig = Figure(figsize=(8, 3.5))
    ax = fig.subplots()
    ax.plot(np.arange(len(series)), series.to_numpy(), color="#4c72b0", marker="." if len(series) < 60 else None)
    step = max(1, len(series) // 12)
    ax.set_xticks(np.arange(0, len(series), step))
    ax.set_xticklabels([str(v) for v in series.index[::step]], rotation=45, ha="right")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    return _save(fig, path)
