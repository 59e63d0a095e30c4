"""The processed dataset every stage works on, and its leave-one-out split.

Items have contiguous internal ids 1..num_items (0 is padding). Each user's
full chronological sequence is kept; the split is a view on it (protocol in
STUDY.md):

    train input / target sequence : s[:-2]
    validation                    : input s[:-2], target s[-2]
    test                          : input s[:-1], target s[-1]
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

SPLITS = ("valid", "test")


@dataclass(frozen=True, eq=False)
class SequenceDataset:
    """One preprocessed dataset (after the 5-core filter and id remapping).

    Sequences are stored flat (``items_flat``) with ``offsets`` so that the
    cache is two arrays; ``sequence(u)`` returns user u's items.
    """

    name: str  # e.g. "ml-1m"
    num_items: int  # internal item ids are 1..num_items
    max_len: int  # models see at most the last max_len items
    user_raw_ids: np.ndarray  # [U] original user id of each internal user 0..U-1
    item_raw_ids: np.ndarray  # [num_items + 1] original movie id of each internal id; [0] = -1 (padding)
    items_flat: np.ndarray  # [total interactions] internal item ids, users concatenated
    offsets: np.ndarray  # [U + 1] user u's items are items_flat[offsets[u]:offsets[u+1]]
    items: pd.DataFrame = field(repr=False)  # index = internal id 1..num_items; columns title, year, genres (tuple[str, ...])
    source: str = ""  # which source form was loaded, e.g. "mirror:ml-1m.txt"
    fingerprint: str = ""  # hash of the cache manifest: checkpoints record it

    @property
    def num_users(self) -> int:
        return len(self.offsets) - 1

    @property
    def num_interactions(self) -> int:
        return int(self.offsets[-1])

    def sequence(self, user: int) -> np.ndarray:
        """User ``user``'s full chronological item sequence (internal ids)."""
        return self.items_flat[self.offsets[user]:self.offsets[user + 1]]

    def train_sequences(self) -> list[np.ndarray]:
        """Training part of every user's sequence: all but the last two items."""
        return [self.sequence(u)[:-2] for u in range(self.num_users)]

    def split(self, which: str) -> tuple[list[np.ndarray], np.ndarray]:
        """(inputs, targets) of the 'valid' or 'test' split, one per user.

        Inputs are full histories (truncate with ``pad_left(…, max_len)``);
        targets is an int64 array [U].
        """
        if which not in SPLITS:
            raise ValueError(f"unknown split {which!r}; expected one of {SPLITS}")
        cut = 2 if which == "valid" else 1
        inputs = [self.sequence(u)[:-cut] for u in range(self.num_users)]
        targets = np.array([self.sequence(u)[-cut] for u in range(self.num_users)], dtype=np.int64)
        return inputs, targets

    def item_popularity(self) -> np.ndarray:
        """[num_items + 1] interaction count of each item in the training part (index 0 = 0)."""
        counts = np.zeros(self.num_items + 1, dtype=np.int64)
        for seq in self.train_sequences():
            np.add.at(counts, seq, 1)
        return counts
