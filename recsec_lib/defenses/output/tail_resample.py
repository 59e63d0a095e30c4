"""``tail-resample:M``: keep the top M exact and replace ranks M+1..k by items drawn from the catalogue."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from recsec_lib.defenses.output.base import OUTPUT_DEFENSES, TailDefense


@OUTPUT_DEFENSES.register
@dataclass(frozen=True)
class TailResample(TailDefense):
    """Ranks M+1..k become items drawn uniformly without repeats from the catalogue minus the head and the
    query's own items: the tail then carries neither order nor set information."""

    name: ClassVar[str] = "tail-resample"
    keeps_item_set: ClassVar[bool] = False

    @property
    def label(self) -> str:
        return f"top-{self.size} exact, tail resampled"

    def perturb_tail(self, head, tail, rng, num_items, forbidden):
        return resample(head, tail.shape[1], num_items, forbidden, rng)


def resample(head: np.ndarray, width: int, num_items: int, forbidden: np.ndarray | None,
             rng: np.random.Generator, chunk: int = 2048) -> np.ndarray:
    """[N, width] items drawn uniformly without repeats from 1..num_items minus the head and the forbidden ids."""
    if num_items <= 0:
        raise ValueError("parameter 'num_items' is needed to resample a tail")
    rows = head.shape[0]
    out = np.empty((rows, width), dtype=np.int64)
    for start in range(0, rows, chunk):
        stop = min(start + chunk, rows)
        keys = rng.random((stop - start, num_items + 1))  # [c, C] a random order of the catalogue per row
        blocked = np.zeros_like(keys, dtype=bool)
        blocked[:, 0] = True  # padding
        np.put_along_axis(blocked, head[start:stop], True, axis=1)
        if forbidden is not None:
            np.put_along_axis(blocked, np.asarray(forbidden[start:stop], dtype=np.int64), True, axis=1)
        if (~blocked).sum(axis=1).min() < width:
            raise ValueError(f"fewer than {width} items are left to resample a tail from")
        keys[blocked] = np.inf
        out[start:stop] = np.argpartition(keys, width - 1, axis=1)[:, :width]
    return out
