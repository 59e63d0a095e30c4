"""A per-query suspicion score: how synthetic does one query look? (the scoring half of per-query gating)

Per-query gating is an *output* defense: the service serves a perturbed list
to a query that looks synthetic and the exact list to the rest, so only
suspect queries pay (adaptive misinformation). Wiring it into the served
answers belongs to the defense registry; this module gives the score and the
threshold, so its benign cost (the share of real users' queries that would
get a perturbed list) can be measured here.

The score of a query is the larger of two z-scores, each standardised on the
calibration users' queries:

* *popularity surprise* — the mean of -log p(i) over the query's newest
  ``tail`` items, p the items' smoothed frequency in the defender's own
  calibration histories: real people mostly watch what others watch; a walk
  with uniformly drawn items does not;
* *distance to real queries* — the distance of the query's SEAT encoding to
  its ``neighbours``-th nearest encoding among a reference sample of benign
  calibration queries (skipped when no encodings are given).

The gate threshold is the score that at most ``gate_rate`` of the calibration
queries exceed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from recsec_lib.seat.calibration import limit_for_fpr


@dataclass(frozen=True, eq=False)
class SuspicionModel:
    """A fitted score (``fit_suspicion``)."""

    surprise: np.ndarray  # [num_items + 1] -log p(item); index 0 (padding) unused
    tail: int
    reference: np.ndarray | None  # [R, D] benign encodings (None: popularity surprise only)
    neighbours: int
    centre: tuple[float, float]  # calibration mean of (surprise, distance)
    spread: tuple[float, float]  # calibration std of (surprise, distance)
    threshold: float  # gate queries whose score exceeds this
    gate_rate: float  # share of calibration queries gated


def item_surprise(histories: Sequence[np.ndarray], num_items: int) -> np.ndarray:
    """[num_items + 1] -log of each item's (count + 1) / (total + num_items) in ``histories``."""
    counts = np.bincount(np.concatenate([np.asarray(h, dtype=np.int64) for h in histories] or [np.zeros(0, int)]),
                         minlength=num_items + 1)[:num_items + 1].astype(np.float64)
    counts[0] = 0.0
    p = (counts + 1.0) / (counts[1:].sum() + num_items)
    return -np.log(p)


def popularity_surprise(surprise: np.ndarray, windows: np.ndarray, tail: int) -> np.ndarray:
    """[Q] mean surprise of the newest ``tail`` items of each left-padded query [Q, L] (0 = padding)."""
    newest = np.asarray(windows)[:, -tail:]  # [Q, tail]
    mask = newest > 0
    return (surprise[newest] * mask).sum(1) / np.maximum(mask.sum(1), 1)


def neighbour_distance(encodings: np.ndarray, reference: np.ndarray, neighbours: int,
                       chunk: int = 4096) -> np.ndarray:
    """[Q] distance of each encoding to its ``neighbours``-th nearest reference encoding."""
    if not 1 <= neighbours <= len(reference):
        raise ValueError(f"neighbours must be in 1..{len(reference)}, got {neighbours}")
    out = np.zeros(len(encodings))
    ref_sq = (reference * reference).sum(1)
    for start in range(0, len(encodings), chunk):
        part = encodings[start:start + chunk]
        squared = (part * part).sum(1)[:, None] + ref_sq[None, :] - 2.0 * part @ reference.T  # [c, R]
        out[start:start + chunk] = np.sqrt(np.maximum(np.partition(squared, neighbours - 1, axis=1)[:, neighbours - 1],
                                                      0.0))
    return out


def _parts(model: SuspicionModel, windows: np.ndarray, encodings: np.ndarray | None) -> np.ndarray:
    surprise = popularity_surprise(model.surprise, windows, model.tail)
    if model.reference is None or encodings is None:
        return surprise[:, None]
    return np.stack([surprise, neighbour_distance(encodings, model.reference, model.neighbours)], axis=1)


def suspicion_scores(model: SuspicionModel, windows: np.ndarray, encodings: np.ndarray | None = None) -> np.ndarray:
    """[Q] the score of each query (left-padded items [Q, L], SEAT encodings [Q, D] when the model uses them)."""
    if model.reference is not None and encodings is None:
        raise ValueError("this suspicion model reads SEAT encodings: pass the queries' encodings")
    parts = _parts(model, windows, encodings)
    centre = np.asarray(model.centre[:parts.shape[1]])
    spread = np.asarray(model.spread[:parts.shape[1]])
    return ((parts - centre) / spread).max(axis=1)


def fit_suspicion(histories: Sequence[np.ndarray], num_items: int, windows: np.ndarray,
                  encodings: np.ndarray | None, gate_rate: float, tail: int = 20, reference_size: int = 2000,
                  neighbours: int = 5, seed: int = 0) -> SuspicionModel:
    """Fit on calibration users only: item frequencies from their ``histories``, the z-scoring and the gate
    threshold from their queries (``windows`` [Q, L], ``encodings`` [Q, D] or None), the kNN reference a
    random ``reference_size`` of those queries (scored against the others: its own rows are left out)."""
    if not 0 <= gate_rate < 1:
        raise ValueError(f"gate_rate must be in [0, 1), got {gate_rate}")
    if tail < 1:
        raise ValueError(f"tail must be >= 1, got {tail}")
    surprise = item_surprise(histories, num_items)
    rng = np.random.default_rng(seed)
    reference, keep = None, np.arange(len(windows))
    if encodings is not None:
        if len(windows) <= reference_size:
            raise ValueError(f"{len(windows)} calibration queries leave none beside a reference of {reference_size}")
        chosen = rng.choice(len(windows), size=reference_size, replace=False)
        reference = np.asarray(encodings[chosen], dtype=np.float64)
        keep = np.setdiff1d(keep, chosen)
    probe = SuspicionModel(surprise, tail, reference, neighbours, (0.0, 0.0), (1.0, 1.0), np.inf, gate_rate)
    parts = _parts(probe, windows[keep], None if encodings is None else encodings[keep])
    centre = tuple(float(v) for v in parts.mean(0)) + (0.0,) * (2 - parts.shape[1])
    spread = tuple(float(max(v, 1e-12)) for v in parts.std(0)) + (1.0,) * (2 - parts.shape[1])
    scaled = SuspicionModel(surprise, tail, reference, neighbours, centre, spread, np.inf, gate_rate)
    scores = suspicion_scores(scaled, windows[keep], None if encodings is None else encodings[keep])
    threshold, achieved = limit_for_fpr(scores, gate_rate)
    return SuspicionModel(surprise, tail, reference, neighbours, centre, spread, threshold, achieved)
