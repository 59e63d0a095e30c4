"""Measured biases of a recommender's top-k lists: genre, popularity, recency.

The seed project made three observations about its recommender by eye — it
stays within the genres of the input, it favours popular movies, it favours
recent movies. This module turns them into figures that can be compared across
models (target, surrogate, defended target):

* **Genre consistency** (STUDY.md): mean Jaccard similarity between the genre
  set of an input sequence (union over its items) and the genre set of its
  top-k list. For long histories the union covers most genres, so we also
  report ``genre_consistency_recent``, the same figure with only the last k
  input items (equal-sized sets on both sides).
* **Popularity bias**: the share of recommendation slots taken by the most
  popular items (top ``popular_fraction`` of the catalogue by interaction
  count), set against the share of all interactions those items receive. A
  ratio (``popularity_lift``) above 1 means the model concentrates on the head
  even more than users do. ``coverage`` is the share of the catalogue that is
  recommended at least once.
* **Recency bias**: release years of recommended items (each slot counts once)
  against the catalogue (each item once) and the interactions (each
  interaction once): mean, median and the share released after ``year_cut``.
* **Per-genre breakdown**: for inputs dominated by one genre (at least
  ``dominance`` of their items carry it), how consistent the lists stay and
  what share of recommended items carry that genre, against the genre's share
  of the catalogue.

Everything takes plain inputs (the dataset, the input sequences, an [N, k]
array of recommended internal ids) so it works for any model or stand-in.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from recsec_lib.data.dataset import SequenceDataset
from recsec_lib.common.files import atomic_path, write_json_atomic

# Genres with distinctive audiences in MovieLens; the seed looked at these.
FOCUS_GENRES = ("Action", "Children's", "Comedy", "Drama", "Horror", "Sci-Fi")
NO_GENRE = "(no genres listed)"  # MovieLens 20M's label for a movie without genres


@dataclass(frozen=True)
class BiasReport:
    """Flat figures (JSON-ready floats/ints) and the per-genre table."""

    figures: dict[str, float]
    # index genre; columns n_inputs, history_share, recommended_share, catalogue_share, genre_consistency
    per_genre: pd.DataFrame = field(repr=False)

    def save(self, output_dir: str | os.PathLike, prefix: str = "bias") -> list[Path]:
        """Write ``<prefix>.json`` (figures) and ``<prefix>_per_genre.csv``; returns the paths."""
        output_dir = Path(output_dir)
        json_path = output_dir / f"{prefix}.json"
        csv_path = output_dir / f"{prefix}_per_genre.csv"
        write_json_atomic(json_path, self.figures)
        with atomic_path(csv_path) as tmp:
            self.per_genre.to_csv(tmp)
        return [json_path, csv_path]


def genre_matrix(dataset: SequenceDataset) -> tuple[tuple[str, ...], np.ndarray]:
    """(genre names, bool [num_items + 1, G]) with row i = genres of internal item i (row 0 empty)."""
    names = sorted({g for genres in dataset.items["genres"] for g in genres if g != NO_GENRE})
    column = {name: j for j, name in enumerate(names)}
    matrix = np.zeros((dataset.num_items + 1, len(names)), dtype=bool)
    for item, genres in dataset.items["genres"].items():
        for g in genres:
            if g != NO_GENRE:
                matrix[int(item), column[g]] = True
    return tuple(names), matrix


def item_years(dataset: SequenceDataset) -> np.ndarray:
    """float [num_items + 1]: release year of each internal item, NaN where unknown (and for padding)."""
    years = np.full(dataset.num_items + 1, np.nan)
    values = pd.to_numeric(dataset.items["year"], errors="coerce")
    years[dataset.items.index.to_numpy(dtype=np.int64)] = values.astype(float).to_numpy()  # nullable Int64 -> NaN
    return years


def interaction_counts(dataset: SequenceDataset) -> np.ndarray:
    """int [num_items + 1]: how often each item occurs in all users' full sequences."""
    return np.bincount(dataset.items_flat, minlength=dataset.num_items + 1)


def popular_items(counts: np.ndarray, fraction: float) -> np.ndarray:
    """Internal ids of the ceil(fraction * num_items) most interacted items (ties: lower id first)."""
    if not 0 < fraction <= 1:
        raise ValueError(f"parameter 'popular_fraction' must be in (0, 1], got {fraction}")
    num_items = len(counts) - 1
    how_many = max(1, math.ceil(fraction * num_items))
    order = np.argsort(-counts[1:], kind="stable") + 1  # ids by count descending, stable on id
    return order[:how_many]


def jaccard(a: np.ndarray, b: np.ndarray) -> float:
    """Jaccard similarity of two bool membership vectors; two empty sets count as 0."""
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 0.0


def year_summary(years: np.ndarray, year_cut: int) -> tuple[float, float, float]:
    """(mean, median, share > year_cut) of the known years; NaNs when none is known."""
    known = years[~np.isnan(years)]
    if len(known) == 0:
        return math.nan, math.nan, math.nan
    return float(known.mean()), float(np.median(known)), float((known > year_cut).mean())


def bias_report(
    dataset: SequenceDataset,
    inputs: Sequence[Sequence[int]],  # N input sequences of internal item ids
    recommendations: np.ndarray,  # [N, k] recommended internal ids, best first
    popular_fraction: float = 0.1,  # "popular" = this top share of the catalogue by interactions
    year_cut: int = 1990,  # recency: share of items released after this year
    focus_genres: Sequence[str] = FOCUS_GENRES,  # genres of the per-genre breakdown (unknown ones skipped)
    dominance: float = 0.5,  # an input is dominated by a genre when this share of its items carries it
) -> BiasReport:
    """Genre, popularity and recency figures of the lists ``recommendations`` made for ``inputs``."""
    recs = _check_recommendations(dataset, inputs, recommendations)
    if not 0 < dominance <= 1:
        raise ValueError(f"parameter 'dominance' must be in (0, 1], got {dominance}")
    n, k = recs.shape
    names, genres = genre_matrix(dataset)  # genres: [num_items + 1, G]
    years = item_years(dataset)  # [num_items + 1]
    counts = interaction_counts(dataset)  # [num_items + 1]

    # Genre consistency, per input: whole history and its last k items.
    consistency = np.empty(n)
    consistency_recent = np.empty(n)
    history_shares = np.empty((n, len(names)))  # share of each input's items carrying each genre
    recommended_shares = np.empty((n, len(names)))  # share of each list's items carrying each genre
    for row, seq in enumerate(inputs):
        seq = np.asarray(seq, dtype=np.int64)
        rec_genres = genres[recs[row]]  # [k, G]
        consistency[row] = jaccard(genres[seq].any(axis=0), rec_genres.any(axis=0))
        consistency_recent[row] = jaccard(genres[seq[-k:]].any(axis=0), rec_genres.any(axis=0))
        history_shares[row] = genres[seq].mean(axis=0)
        recommended_shares[row] = rec_genres.mean(axis=0)

    # Popularity: slots taken by the head of the catalogue vs its share of interactions.
    head = np.zeros(dataset.num_items + 1, dtype=bool)
    head[popular_items(counts, popular_fraction)] = True
    share_recommended = float(head[recs].mean())
    share_interactions = float(counts[head].sum() / counts.sum())

    rec_year = year_summary(years[recs].ravel(), year_cut)
    catalogue_year = year_summary(years[1:], year_cut)
    interaction_year = year_summary(years[dataset.items_flat], year_cut)

    figures = {
        "n_inputs": n,
        "k": k,
        "genre_consistency": float(consistency.mean()),
        "genre_consistency_recent": float(consistency_recent.mean()),
        "popular_fraction": popular_fraction,
        "popular_share_recommended": share_recommended,
        "popular_share_interactions": share_interactions,
        "popularity_lift": share_recommended / share_interactions if share_interactions else math.nan,
        "coverage": float(len(np.unique(recs)) / dataset.num_items),
        "year_cut": year_cut,
    }
    for prefix, (mean, median, after) in (("recommended", rec_year), ("catalogue", catalogue_year),
                                          ("interactions", interaction_year)):
        figures[f"{prefix}_year_mean"] = mean
        figures[f"{prefix}_year_median"] = median
        figures[f"{prefix}_share_after_{year_cut}"] = after

    rows = []
    for genre in focus_genres:
        if genre not in names:
            continue
        j = names.index(genre)
        group = history_shares[:, j] >= dominance  # [N] inputs dominated by this genre
        rows.append({
            "genre": genre,
            "n_inputs": int(group.sum()),
            "history_share": _mean_or_nan(history_shares[group, j]),
            "recommended_share": _mean_or_nan(recommended_shares[group, j]),
            "catalogue_share": float(genres[1:, j].mean()),
            "genre_consistency": _mean_or_nan(consistency[group]),
        })
    per_genre = pd.DataFrame(rows, columns=["genre", "n_inputs", "history_share", "recommended_share",
                                            "catalogue_share", "genre_consistency"]).set_index("genre")
    return BiasReport(figures=figures, per_genre=per_genre)


def _mean_or_nan(values: np.ndarray) -> float:
    return float(values.mean()) if len(values) else math.nan


def _check_recommendations(dataset: SequenceDataset, inputs: Sequence[Sequence[int]],
                           recommendations: np.ndarray) -> np.ndarray:
    """The recommendations as int64 [N, k], after checking they fit the inputs and the catalogue."""
    recs = np.asarray(recommendations)
    if recs.ndim != 2 or recs.shape[1] == 0:
        raise ValueError(f"parameter 'recommendations' must be a 2-D array [N, k] with k >= 1, "
                         f"got shape {recs.shape}")
    if not np.issubdtype(recs.dtype, np.integer):
        raise ValueError(f"parameter 'recommendations' must hold integer item ids, got dtype {recs.dtype}")
    if len(inputs) != len(recs):
        raise ValueError(f"parameters 'inputs' ({len(inputs)} sequences) and 'recommendations' "
                         f"({len(recs)} rows) must have the same length")
    if len(recs) == 0:
        raise ValueError("parameter 'inputs' is empty: nothing to measure")
    bad = (recs < 1) | (recs > dataset.num_items)
    if bad.any():
        row, col = np.argwhere(bad)[0]
        raise ValueError(f"parameter 'recommendations'[{row}, {col}] = {recs[row, col]} is not an item id "
                         f"1..{dataset.num_items}")
    for row, seq in enumerate(inputs):
        seq = np.asarray(seq)
        if len(seq) == 0:
            raise ValueError(f"parameter 'inputs'[{row}] is an empty sequence")
        if ((seq < 1) | (seq > dataset.num_items)).any():
            raise ValueError(f"parameter 'inputs'[{row}] holds an item id outside 1..{dataset.num_items}")
    return recs.astype(np.int64)
