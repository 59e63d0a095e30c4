"""Tiny synthetic datasets for tests and the smoke profile.

Users walk through "chains" of items: after item i the next item is usually
i + 1 within the same chain (a planted sequential pattern a sequential model can
learn and a popularity ranking cannot), otherwise a random item. Popularity is
skewed so that popularity baselines are not trivially bad.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from recsec_lib.data.dataset import SequenceDataset

GENRES = ("Action", "Comedy", "Drama", "Children's", "Horror", "Sci-Fi")


def synthetic_sequences(num_users: int = 200, num_items: int = 60, min_len: int = 8, max_len: int = 30,
                        follow_prob: float = 0.8, seed: int = 0) -> list[np.ndarray]:
    """Item sequences (ids 1..num_items, no repeats within a user) with the planted pattern."""
    rng = np.random.default_rng(seed)
    popularity = 1.0 / np.arange(1, num_items + 1) ** 0.7
    popularity /= popularity.sum()
    sequences = []
    for _ in range(num_users):
        length = int(rng.integers(min_len, max_len + 1))
        length = min(length, num_items)
        seen: list[int] = []
        current = int(rng.choice(num_items, p=popularity)) + 1
        while len(seen) < length:
            if current not in seen:
                seen.append(current)
            if rng.random() < follow_prob:
                current = current % num_items + 1
            else:
                current = int(rng.choice(num_items, p=popularity)) + 1
        sequences.append(np.array(seen, dtype=np.int64))
    return sequences


def synthetic_items(num_items: int, seed: int = 0) -> pd.DataFrame:
    """Titles "Movie <id> (<year>)", a year and one or two genres per item."""
    rng = np.random.default_rng(seed + 1)
    rows = []
    for item in range(1, num_items + 1):
        year = int(rng.integers(1950, 2001))
        genres = tuple(sorted(set(rng.choice(GENRES, size=int(rng.integers(1, 3))).tolist())))
        rows.append({"item": item, "title": f"Movie {item} ({year})", "year": year, "genres": genres})
    return pd.DataFrame(rows).set_index("item")


def make_synthetic_dataset(num_users: int = 200, num_items: int = 60, max_len: int = 50,
                           seed: int = 0, **kwargs) -> SequenceDataset:
    """An in-memory SequenceDataset (no files), for unit tests."""
    sequences = synthetic_sequences(num_users=num_users, num_items=num_items, seed=seed, **kwargs)
    offsets = np.zeros(num_users + 1, dtype=np.int64)
    offsets[1:] = np.cumsum([len(s) for s in sequences])
    return SequenceDataset(
        name="synthetic",
        num_items=num_items,
        max_len=max_len,
        user_raw_ids=np.arange(1, num_users + 1, dtype=np.int64),
        item_raw_ids=np.r_[-1, np.arange(1, num_items + 1)].astype(np.int64),
        items_flat=np.concatenate(sequences),
        offsets=offsets,
        items=synthetic_items(num_items, seed),
        source="in-memory synthetic",
        fingerprint=f"synthetic-{num_users}-{num_items}-{seed}",
    )
