"""Tiny synthetic datasets for tests and the smoke profile.

Users walk through "chains" of items: after item i the next item is usually
i + 1 within the same chain (a planted sequential pattern a sequential model can
learn and a popularity ranking cannot), otherwise a random item. Popularity is
skewed so that popularity baselines are not trivially bad.
"""

from __future__ import annotations

import os
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd

from recsec_lib.data.dataset import SequenceDataset
from recsec_lib.data.formats import GENRES_100K
from recsec_lib.common.files import give_normal_permissions

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


# --------------------------------------------------------------------------- files in the MovieLens formats
# The writers below produce tiny datasets in every format the loaders read, so
# that the whole path (files -> loader -> preprocessing -> cache) can be tested
# without MovieLens. Raw movie ids are ``item * 10 + 7`` (not 1..n) so that the
# remapping to contiguous ids is exercised; raw user ids are ``user + 1000``.
# Rows of a user are written in a shuffled order with timestamps that give the
# true order back, as in the official ratings files.

SYNTHETIC_FORMATS = ("ml-1m", "ml-1m-sasrec", "ml-1m-zip", "ml-100k", "ml-20m")


def raw_item_id(item: int) -> int:
    """Raw movie id the file writers use for synthetic item ``item``."""
    return int(item) * 10 + 7


def raw_user_id(user: int) -> int:
    """Raw user id the file writers use for synthetic user ``user`` (0-based)."""
    return int(user) + 1000


def _synthetic_rows(sequences: list[np.ndarray], seed: int) -> list[tuple[int, int, int, int]]:
    """(raw user, raw item, rating, timestamp) rows, each user's rows shuffled in file order."""
    rng = np.random.default_rng(seed + 2)
    rows = []
    for user, seq in enumerate(sequences):
        start = 956_703_932 + 1000 * user
        user_rows = [(raw_user_id(user), raw_item_id(item), int(rng.integers(1, 6)), start + 60 * pos)
                     for pos, item in enumerate(seq)]
        for index in rng.permutation(len(user_rows)):
            rows.append(user_rows[index])
    return rows


def _write_text(path: Path, text: str, encoding: str) -> None:
    """Write a text file atomically (temporary name, then rename)."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding=encoding, newline="") as handle:
            handle.write(text)
        give_normal_permissions(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_synthetic_files(folder: Path, fmt: str = "ml-1m", num_users: int = 40, num_items: int = 20,
                          seed: int = 0, **kwargs) -> Path:
    """Write a tiny dataset in MovieLens format ``fmt`` into ``folder``; returns the path written.

    Formats: "ml-1m" (ratings.dat, movies.dat), "ml-1m-sasrec" (ml-1m.txt,
    movies.dat), "ml-1m-zip" (``folder/ml-1m.zip`` holding ``ml-1m/ratings.dat``
    and ``ml-1m/movies.dat``, returns the zip's path), "ml-100k" (u.data,
    u.item, u.genre), "ml-20m" (ratings.csv, movies.csv). Extra keyword
    arguments go to ``synthetic_sequences``.
    """
    if fmt not in SYNTHETIC_FORMATS:
        raise ValueError(f"parameter 'fmt' must be one of {SYNTHETIC_FORMATS}, got {fmt!r}")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    sequences = synthetic_sequences(num_users=num_users, num_items=num_items, seed=seed, **kwargs)
    items = synthetic_items(num_items, seed)
    rows = _synthetic_rows(sequences, seed)

    movies_dat = "".join(f"{raw_item_id(i)}::{r.title}::{'|'.join(r.genres)}\n" for i, r in items.iterrows())
    ratings_dat = "".join(f"{u}::{i}::{r}::{t}\n" for u, i, r, t in rows)
    if fmt == "ml-1m":
        _write_text(folder / "ratings.dat", ratings_dat, "latin-1")
        _write_text(folder / "movies.dat", movies_dat, "latin-1")
        return folder
    if fmt == "ml-1m-sasrec":
        lines = "".join(f"{raw_user_id(u)} {raw_item_id(i)}\n" for u, seq in enumerate(sequences) for i in seq)
        _write_text(folder / "ml-1m.txt", lines, "ascii")
        _write_text(folder / "movies.dat", movies_dat, "latin-1")
        return folder
    if fmt == "ml-1m-zip":
        path = folder / "ml-1m.zip"
        with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            archive.writestr("ml-1m/ratings.dat", ratings_dat.encode("latin-1"))
            archive.writestr("ml-1m/movies.dat", movies_dat.encode("latin-1"))
        return path
    if fmt == "ml-100k":
        _write_text(folder / "u.data", "".join(f"{u}\t{i}\t{r}\t{t}\n" for u, i, r, t in rows), "latin-1")
        item_lines = []
        for i, r in items.iterrows():
            flags = "|".join("1" if g in r.genres else "0" for g in GENRES_100K)
            item_lines.append(f"{raw_item_id(i)}|{r.title}|01-Jan-{r.year}||http://example.org/{i}|{flags}\n")
        _write_text(folder / "u.item", "".join(item_lines), "latin-1")
        _write_text(folder / "u.genre", "".join(f"{g}|{k}\n" for k, g in enumerate(GENRES_100K)), "latin-1")
        return folder
    # ml-20m: CSV with header, half-star ratings, a title with a comma to exercise quoting
    lines = ["userId,movieId,rating,timestamp\n"] + [f"{u},{i},{r - 0.5},{t}\n" for u, i, r, t in rows]
    _write_text(folder / "ratings.csv", "".join(lines), "utf-8")
    movie_lines = ["movieId,title,genres\n"]
    for i, r in items.iterrows():
        title = f'"{r.title.replace(" (", ", The (", 1)}"' if i == 1 else r.title
        movie_lines.append(f"{raw_item_id(i)},{title},{'|'.join(r.genres) or '(no genres listed)'}\n")
    _write_text(folder / "movies.csv", "".join(movie_lines), "utf-8")
    return folder
