"""From raw ratings to the ``SequenceDataset`` every stage uses (protocol in STUDY.md).

Steps, in order:
1. every rating is an implicit interaction (rating values are ignored);
2. chronological order: users by raw id, each user's rows by timestamp with a
   *stable* sort, so rows sharing a timestamp keep their file order (the
   SASRec text file has no timestamps and is already in order);
3. the k-core filter (items >= min_count and users >= min_count), applied
   again and again until nothing changes, because dropping rare items can push
   a user under the limit and vice versa;
4. contiguous internal item ids 1..n assigned in **ascending raw movie id**
   (not first appearance: this way the id of a movie does not depend on which
   user happens to be listed first); internal users 0..U-1 in ascending raw id.

``max_len`` is recorded on the dataset; sequences keep their full length and
models truncate to the last ``max_len`` items.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd

from recsec_lib.data.dataset import SequenceDataset
from recsec_lib.data.formats import RawData

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CoreFilterResult:
    keep: np.ndarray  # [N] bool, rows that survive
    passes: int  # how many (item, user) passes ran, the last one changing nothing


def chronological_order(users: np.ndarray, timestamps: np.ndarray | None) -> np.ndarray:
    """Row order [N]: by user, then timestamp, ties (and missing timestamps) in file order."""
    position = np.arange(len(users))
    if timestamps is None:
        return np.lexsort((position, users))
    return np.lexsort((position, timestamps, users))


def k_core_filter(users: np.ndarray, items: np.ndarray, min_count: int = 5) -> CoreFilterResult:
    """Rows to keep so that every kept item and every kept user has >= ``min_count`` kept rows.

    Each pass first drops rare items, then users left with too few rows;
    passes repeat until one changes nothing.
    """
    if min_count < 1:
        raise ValueError(f"parameter 'min_count' must be >= 1, got {min_count}")
    users = np.asarray(users)
    items = np.asarray(items)
    keep = np.ones(len(users), dtype=bool)
    passes = 0
    while True:
        passes += 1
        before = int(keep.sum())
        item_ids, item_idx = np.unique(items[keep], return_inverse=True)
        rare_items = item_ids[np.bincount(item_idx) < min_count]
        keep[keep] = ~np.isin(items[keep], rare_items)
        user_ids, user_idx = np.unique(users[keep], return_inverse=True)
        rare_users = user_ids[np.bincount(user_idx, minlength=len(user_ids)) < min_count]
        keep[keep] = ~np.isin(users[keep], rare_users)
        if int(keep.sum()) == before:
            return CoreFilterResult(keep=keep, passes=passes)


def build_sequence_dataset(raw: RawData, min_count: int = 5, max_len: int = 200, source: str = "",
                           fingerprint: str = "") -> SequenceDataset:
    """Apply the protocol to ``raw`` and return the SequenceDataset (see module docstring)."""
    if max_len < 1:
        raise ValueError(f"parameter 'max_len' must be >= 1, got {max_len}")
    frame = raw.interactions
    if len(frame) == 0:
        raise ValueError(f"dataset {raw.name!r}: no interactions were read from {[str(f) for f in raw.files]}")
    users = frame["user"].to_numpy(dtype=np.int64)
    items = frame["item"].to_numpy(dtype=np.int64)
    timestamps = None if raw.chronological or "timestamp" not in frame else frame["timestamp"].to_numpy(np.int64)
    order = chronological_order(users, timestamps)
    users, items = users[order], items[order]

    core = k_core_filter(users, items, min_count)
    users, items = users[core.keep], items[core.keep]
    if len(users) == 0:
        raise ValueError(f"dataset {raw.name!r}: the {min_count}-core filter left no interactions "
                         f"(of {len(frame)}); lower 'min_count' or check the source files")
    log.info("%s: %d-core filter kept %d of %d interactions after %d passes",
             raw.name, min_count, len(users), len(frame), core.passes)

    item_raw_ids = np.unique(items)  # ascending raw id -> internal id 1..n
    internal_items = np.searchsorted(item_raw_ids, items) + 1
    user_raw_ids, counts = np.unique(users, return_counts=True)  # rows are sorted by user already
    offsets = np.zeros(len(user_raw_ids) + 1, dtype=np.int64)
    offsets[1:] = np.cumsum(counts)

    return SequenceDataset(
        name=raw.name,
        num_items=len(item_raw_ids),
        max_len=max_len,
        user_raw_ids=user_raw_ids.astype(np.int64),
        item_raw_ids=np.r_[-1, item_raw_ids].astype(np.int64),
        items_flat=internal_items.astype(np.int64),
        offsets=offsets,
        items=item_table(raw.movies, item_raw_ids),
        source=source,
        fingerprint=fingerprint,
    )


def item_table(movies: pd.DataFrame, item_raw_ids: np.ndarray) -> pd.DataFrame:
    """Items table indexed by internal id 1..n (title, year, genres); movies missing from ``movies`` get
    an empty title, no year and no genres (logged)."""
    lookup = movies.drop_duplicates("item").set_index("item")
    found = np.isin(item_raw_ids, lookup.index.to_numpy())
    if not found.all():
        log.warning("%d items have no entry in the movies file (e.g. raw id %d)",
                    int((~found).sum()), int(item_raw_ids[~found][0]))
    table = lookup.reindex(item_raw_ids)
    table["title"] = table["title"].fillna("")
    table["genres"] = [g if isinstance(g, tuple) else () for g in table["genres"]]
    table["year"] = table["year"].astype("Int64")
    table.index = pd.RangeIndex(1, len(item_raw_ids) + 1, name="item")
    return table[["title", "year", "genres"]]
