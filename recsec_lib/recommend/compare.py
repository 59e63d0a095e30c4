"""Side-by-side top-k lists of several recommenders on the same example histories.

The seed's ``show_recommendations.py`` printed what one model recommends after a
few hand-picked histories. Here any set of recommenders (target, surrogate,
defended target, a popularity baseline) is compared on

* **themed histories**: the most watched movies of a genre (action/sci-fi,
  children's, drama, comedy, horror), picked from the dataset itself so they
  exist in any MovieLens version and in the synthetic data; and
* **real test users**: a few users' test inputs, with their held-out next
  movie marked when a model finds it.

A recommender is a plain function ``recommend_fn(histories, k) -> [N, k]``
internal ids, best first; ``checkpoint_recommender`` and
``popularity_recommender`` build one from a checkpoint or from the data.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from recsec_lib.recommend.bias import BiasReport, bias_report, genre_matrix, interaction_counts
from recsec_lib.data.dataset import SequenceDataset
from recsec_lib.common.files import atomic_path, write_text_atomic

# recommend_fn(histories, k) -> [N, k] internal item ids, best first.
RecommendFn = Callable[[list[np.ndarray], int], np.ndarray]

# (label, genres an item must all carry to belong to the theme)
THEMES = (
    ("action/sci-fi", ("Action", "Sci-Fi")),
    ("children's", ("Children's",)),
    ("drama", ("Drama",)),
    ("comedy", ("Comedy",)),
    ("horror", ("Horror",)),
)


@dataclass(frozen=True)
class Example:
    """One history to recommend after."""

    label: str  # e.g. "horror" or "user 4169"
    history: tuple[int, ...]  # internal item ids, oldest first
    target: int | None = None  # a real user's held-out next item (internal id)


# ---- recommenders ---------------------------------------------------------------------------------

def popularity_recommender(dataset: SequenceDataset) -> RecommendFn:
    """The most interacted items (training part), skipping each history's items."""
    order = np.argsort(-dataset.item_popularity()[1:], kind="stable") + 1  # [num_items] ids, most popular first

    def recommend(histories: list[np.ndarray], k: int) -> np.ndarray:
        out = np.zeros((len(histories), k), dtype=np.int64)
        for row, history in enumerate(histories):
            unseen = order[~np.isin(order, history)][:k]
            if len(unseen) < k:
                raise ValueError(f"cannot return {k} unseen items: history {row} has {len(history)} of "
                                 f"{dataset.num_items} items")
            out[row] = unseen
        return out

    return recommend


def checkpoint_recommender(path: str | os.PathLike, dataset: SequenceDataset,
                           device: str = "cpu") -> tuple[str, RecommendFn]:
    """(model name, recommend_fn) of a saved model; refuses a checkpoint trained on other data."""
    from recsec_lib.recommend.checkpoints import load_checkpoint
    from recsec_lib.recommend.evaluation import recommend

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    loaded = load_checkpoint(path, dataset=dataset, device=device)
    model = loaded.model

    def recommend_fn(histories: list[np.ndarray], k: int) -> np.ndarray:
        return recommend(model, histories, k, exclude_seen=True, device=device)

    return loaded.model_name, recommend_fn


def resolve_device(device: str) -> str:
    """'auto' -> 'cuda' when available else 'cpu'; 'cpu'/'cuda' unchanged."""
    if device not in ("auto", "cpu", "cuda"):
        raise ValueError(f"parameter 'device' must be auto, cpu or cuda, got {device!r}")
    if device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def unseen_top_k(recommend_fn: RecommendFn, histories: Sequence[Sequence[int]], k: int,
                 num_items: int) -> list[list[int]]:
    """Each history's top-k internal ids with the history's own items removed.

    A recommender that already filters seen items answers in one call; one that
    does not is asked again for k + len(history) items so that k remain.
    Fewer than k come back only when the catalogue has fewer unseen items.
    """
    histories = [np.asarray(h, dtype=np.int64) for h in histories]
    if not histories:
        return []
    first = np.asarray(recommend_fn(histories, k))  # [N, k]
    if first.shape != (len(histories), k):
        raise ValueError(f"the recommender returned shape {first.shape}, expected {(len(histories), k)}")
    results = []
    for history, ranked in zip(histories, first):
        seen = set(history.tolist())
        kept = [int(i) for i in ranked if 1 <= i <= num_items and int(i) not in seen]
        if len(kept) < k and len(kept) < num_items - len(seen):
            want = min(num_items, k + len(seen))
            ranked = np.asarray(recommend_fn([history], want))[0]  # [want]
            kept = [int(i) for i in ranked if 1 <= i <= num_items and int(i) not in seen]
        results.append(kept[:k])
    return results


# ---- examples -------------------------------------------------------------------------------------

def themed_examples(dataset: SequenceDataset, length: int = 5,
                    themes: Sequence[tuple[str, Sequence[str]]] = THEMES) -> list[Example]:
    """One history per theme: ``length`` of its most watched movies, most watched first.

    Movies are taken in three tiers, each by popularity: first those carrying
    all the theme's genres and none of the other themes' genres (so that the
    "drama" history is not Star Wars, which MovieLens also tags Drama), then
    those carrying all the theme's genres, then those carrying any of them
    (small catalogues). Themes whose genres the dataset lacks are skipped.
    """
    if length < 1:
        raise ValueError(f"parameter 'length' must be >= 1, got {length}")
    names, genres = genre_matrix(dataset)  # genres: [num_items + 1, G]
    order = np.argsort(-interaction_counts(dataset)[1:], kind="stable") + 1  # ids, most watched first
    ranked = genres[order]  # [num_items, G] genre rows in popularity order
    examples = []
    for label, theme in themes:
        columns = [names.index(g) for g in theme if g in names]
        if not columns:
            continue
        others = [names.index(g) for _, other in themes for g in other if g in names and g not in theme]
        has_all = ranked[:, columns].all(axis=1)
        pure = has_all & ~ranked[:, others].any(axis=1)
        has_any = ranked[:, columns].any(axis=1)
        picked: list[int] = []
        for tier in (pure, has_all & ~pure, has_any & ~has_all):
            picked += [int(i) for i in order[tier][: length - len(picked)]]
        if picked:
            examples.append(Example(label, tuple(picked)))
    return examples


def user_examples(dataset: SequenceDataset, n_users: int = 3, seed: int = 0) -> list[Example]:
    """``n_users`` random users' test inputs (their history before the last movie), with that movie as target."""
    if n_users < 0:
        raise ValueError(f"parameter 'n_users' must be >= 0, got {n_users}")
    rng = np.random.default_rng(seed)
    users = np.sort(rng.choice(dataset.num_users, size=min(n_users, dataset.num_users), replace=False))
    examples = []
    for user in users:
        sequence = dataset.sequence(int(user))
        examples.append(Example(f"user {int(dataset.user_raw_ids[user])}", tuple(int(i) for i in sequence[:-1]),
                                target=int(sequence[-1])))
    return examples


# ---- the comparison -------------------------------------------------------------------------------

def item_label(dataset: SequenceDataset, item: int) -> str:
    """The title as MovieLens writes it ("Toy Story (1995)")."""
    return str(dataset.items.loc[item, "title"])


def compare_recommendations(dataset: SequenceDataset, models: Mapping[str, RecommendFn],
                            examples: Sequence[Example], k: int = 10) -> pd.DataFrame:
    """One row per (example, rank): each model's title at that rank, and its MovieLens id.

    Columns: example, rank, then for each label ``<label>`` (title) and
    ``<label> id`` (original MovieLens id), and ``<label> hit`` (True where
    the item is the example's held-out target).
    """
    if not models:
        raise ValueError("parameter 'models' is empty: give at least one recommender")
    if not examples:
        raise ValueError("parameter 'examples' is empty: nothing to recommend after")
    if not 1 <= k <= dataset.num_items:
        raise ValueError(f"parameter 'k' must be in 1..{dataset.num_items}, got {k}")
    frame = pd.DataFrame({"example": [e.label for e in examples for _ in range(k)],
                          "rank": [r for _ in examples for r in range(1, k + 1)]})
    histories = [list(e.history) for e in examples]
    for label, recommend_fn in models.items():
        lists = unseen_top_k(recommend_fn, histories, k, dataset.num_items)
        titles, ids, hits = [], [], []
        for example, items in zip(examples, lists):
            padded = items + [None] * (k - len(items))
            titles += [item_label(dataset, i) if i else "" for i in padded]
            ids += [int(dataset.item_raw_ids[i]) if i else pd.NA for i in padded]
            hits += [i is not None and i == example.target for i in padded]
        frame[label] = titles
        frame[f"{label} id"] = pd.array(ids, dtype="Int64")
        frame[f"{label} hit"] = hits
    return frame


def examples_table(dataset: SequenceDataset, examples: Sequence[Example]) -> pd.DataFrame:
    """The example histories, one row per movie: example, position (1 = oldest), id, title, genres; targets last."""
    rows = []
    for example in examples:
        for position, item in enumerate(example.history, 1):
            rows.append({"example": example.label, "position": position, "role": "history",
                         "id": int(dataset.item_raw_ids[item]), "title": item_label(dataset, item),
                         "genres": "|".join(dataset.items.loc[item, "genres"])})
        if example.target is not None:
            rows.append({"example": example.label, "position": len(example.history) + 1, "role": "held-out target",
                         "id": int(dataset.item_raw_ids[example.target]),
                         "title": item_label(dataset, example.target),
                         "genres": "|".join(dataset.items.loc[example.target, "genres"])})
    return pd.DataFrame(rows, columns=["example", "position", "role", "id", "title", "genres"])


def comparison_markdown(dataset: SequenceDataset, frame: pd.DataFrame, examples: Sequence[Example],
                        labels: Sequence[str], show_last: int = 5, notes: Sequence[str] = ()) -> str:
    """A markdown page: per example its last ``show_last`` history titles, then a rank x model table.

    A model's held-out-target hit is in bold; below each table, the overlap of
    every model's list with the first model's (Agr@k for this one example).
    ``notes`` are paragraphs shown under the title (e.g. which models are
    missing), so a reader of a partial comparison knows what is not there.
    """
    lines = ["# Recommendations side by side", ""]
    for note in notes:
        lines += [note, ""]
    for example in examples:
        rows = frame[frame["example"] == example.label]
        lines.append(f"## {example.label}")
        shown = example.history[-show_last:]
        more = len(example.history) - len(shown)
        lines.append(f"History ({len(example.history)} movies{', last ' + str(len(shown)) if more else ''}, "
                     f"oldest first): " + "; ".join(item_label(dataset, i) for i in shown))
        if example.target is not None:
            lines.append(f"Held-out next movie: {item_label(dataset, example.target)}")
        lines.append("")
        lines.append("| rank | " + " | ".join(labels) + " |")
        lines.append("| ---: | " + " | ".join("---" for _ in labels) + " |")
        for _, row in rows.iterrows():
            cells = [f"**{row[label]}**" if row[f"{label} hit"] else _escape(row[label]) for label in labels]
            lines.append(f"| {row['rank']} | " + " | ".join(cells) + " |")
        if len(labels) > 1:
            first = set(rows[f"{labels[0]} id"].dropna())
            overlaps = [f"{label}: {len(first & set(rows[f'{label} id'].dropna()))}/{len(rows)}"
                        for label in labels[1:]]
            lines.append("")
            lines.append(f"Overlap with {labels[0]}: " + ", ".join(overlaps))
        lines.append("")
    return "\n".join(lines)


def _escape(text: str) -> str:
    return str(text).replace("|", "\\|")


def save_comparison(dataset: SequenceDataset, frame: pd.DataFrame, examples: Sequence[Example],
                    labels: Sequence[str], output_dir: str | os.PathLike) -> list[Path]:
    """Write recommendations.csv, examples.csv and recommendations.md; returns the paths."""
    output_dir = Path(output_dir)
    paths = [output_dir / "recommendations.csv", output_dir / "examples.csv", output_dir / "recommendations.md"]
    with atomic_path(paths[0]) as tmp:
        frame.to_csv(tmp, index=False)
    with atomic_path(paths[1]) as tmp:
        examples_table(dataset, examples).to_csv(tmp, index=False)
    write_text_atomic(paths[2], comparison_markdown(dataset, frame, examples, labels))
    return paths


# ---- bias of a recommender on the test users ------------------------------------------------------

def bias_on_test_users(dataset: SequenceDataset, recommend_fn: RecommendFn, k: int = 10,
                    max_users: int | None = None, seed: int = 0) -> BiasReport:
    """``bias_report`` of the top-k lists for the test inputs of all (or ``max_users`` random) users."""
    inputs, _ = dataset.split("test")
    if max_users is not None and max_users < len(inputs):
        if max_users < 1:
            raise ValueError(f"parameter 'max_users' must be >= 1, got {max_users}")
        chosen = np.sort(np.random.default_rng(seed).choice(len(inputs), size=max_users, replace=False))
        inputs = [inputs[u] for u in chosen]
    # Users who have seen all but a few movies (possible in tiny catalogues) cannot get k unseen ones.
    inputs = [history for history in inputs if dataset.num_items - len(np.unique(history)) >= k]
    if not inputs:
        raise ValueError(f"no test user has k={k} unseen items to recommend")
    lists = unseen_top_k(recommend_fn, inputs, k, dataset.num_items)
    return bias_report(dataset, inputs, np.array(lists, dtype=np.int64))


def bias_summary(reports: Mapping[str, BiasReport]) -> pd.DataFrame:
    """The flat figures of several reports side by side: one row per figure, one column per model."""
    return pd.DataFrame({label: report.figures for label, report in reports.items()})
