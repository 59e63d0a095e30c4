"""Replaying a query log through a detector, and what each account's outcome was.

Encodings are computed once per distinct query of a ``Traffic`` (batched, the
expensive part) and the monitor then reads the log a query at a time, as it
would online.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from recsec_lib.seat.baselines import bag_of_items_prefix_features
from recsec_lib.seat.encoder import SimilarityEncoder, encode_sequences
from recsec_lib.seat.monitor import SeatMonitor
from recsec_lib.seat.traffic import Traffic


@dataclass(frozen=True, eq=False)
class TrafficFeatures:
    """Per distinct query of a Traffic: its SEAT encoding and PRADA's bag-of-items vector."""

    keys: np.ndarray  # [U, 2] distinct (source, end)
    rows: np.ndarray  # [Q] row in keys of each query
    seat: np.ndarray  # [U, D] SEAT encodings
    prada: np.ndarray  # [U, P] bag-of-items projections
    encode_seconds: float  # time spent encoding (for the throughput figure)


def featurize(traffic: Traffic, encoder: SimilarityEncoder, num_items: int, device: torch.device | str = "cpu",
              prada_dim: int = 64, seed: int = 0) -> TrafficFeatures:
    """Encode every distinct query of ``traffic`` for SEAT and for PRADA."""
    import time

    keys, rows = traffic.unique_keys()
    start = time.perf_counter()
    seat = encode_sequences(encoder, list(traffic.windows(keys, encoder.config.window)), device=device)
    seconds = time.perf_counter() - start
    prada = bag_of_items_prefix_features(traffic.sources, keys, traffic.max_len, num_items, dim=prada_dim, seed=seed)
    return TrafficFeatures(keys, rows, seat, prada, seconds)


@dataclass(frozen=True)
class AccountOutcome:
    name: str
    kind: str  # benign form or attack label
    queries: int  # queries the account sent
    score: float  # the detector's final score for the account
    flagged_at: int | None  # query number (within the account) at which it was flagged, None if never


def replay(monitor, traffic: Traffic, features: np.ndarray | None, rows: np.ndarray | None) -> list[AccountOutcome]:
    """Feed ``traffic`` to ``monitor`` in log order; one outcome per account.

    ``features[rows[j]]`` is query j's vector (None for a detector that needs none).
    Only SEAT reads the query items themselves (for its session relation).
    """
    needs_query = isinstance(monitor, SeatMonitor)
    names = traffic.names
    accounts = traffic.account
    for j in range(traffic.num_queries):
        query = traffic.query(j) if needs_query else ()
        feature = None if features is None else features[rows[j]]
        monitor.observe(names[accounts[j]], query, feature, j)
    outcomes = []
    for index, name in enumerate(names):
        state = monitor.accounts.get(name)
        if state is None:  # an account without queries
            outcomes.append(AccountOutcome(name, traffic.kinds[index], 0, 0.0, None))
        else:
            outcomes.append(AccountOutcome(name, traffic.kinds[index], state.queries, state.score, state.flagged_at))
    return outcomes
