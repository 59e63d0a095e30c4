"""Turning variable-length item sequences into padded tensors.

All models read *left-padded* sequences: the most recent item is always in the
last column, padding (item id 0) fills the left. That way "the next item after
this history" is always read at position -1, whatever the history's length.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

PAD = 0  # item id reserved for padding; real items are 1..num_items


def pad_left(sequences: Sequence[Sequence[int]], max_len: int) -> np.ndarray:
    """Keep the last ``max_len`` items of each sequence and left-pad with 0.

    Returns an int64 array of shape [len(sequences), max_len].
    """
    if max_len <= 0:
        raise ValueError(f"max_len must be positive, got {max_len}")
    out = np.zeros((len(sequences), max_len), dtype=np.int64)
    for row, seq in enumerate(sequences):
        tail = np.asarray(seq, dtype=np.int64)[-max_len:]
        if len(tail):
            out[row, max_len - len(tail):] = tail
    return out


def batches(n: int, batch_size: int) -> list[slice]:
    """Contiguous slices covering range(n) in chunks of ``batch_size``."""
    if batch_size <= 0:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    return [slice(start, min(start + batch_size, n)) for start in range(0, n, batch_size)]
