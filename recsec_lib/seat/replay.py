"""Replaying a query log through a detector, and what each account's outcome was.

Encodings are computed once per distinct query of a ``Traffic`` (batched, the
expensive part) and the monitor then reads the log a query at a time, as it
would online.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import torch

from recsec_lib.seat.baselines import RateCapMonitor, bag_of_items_prefix_features
from recsec_lib.seat.encoder import SimilarityEncoder, encode_sequences
from recsec_lib.seat.monitor import SeatMonitor
from recsec_lib.attack.traffic import Traffic


@dataclass(frozen=True, eq=False)
class TrafficFeatures:
    """Per distinct query of a Traffic: its SEAT encoding and PRADA's bag-of-items vector; per query the
    follow value (see ``recsec_lib.seat.follow``)."""

    keys: np.ndarray  # [U, 2] distinct (source, end)
    rows: np.ndarray  # [Q] row in keys of each query
    seat: np.ndarray  # [U, D] SEAT encodings
    prada: np.ndarray  # [U, P] bag-of-items projections
    encode_seconds: float  # time spent encoding (for the throughput figure)
    follow: np.ndarray | None = None  # [Q] int8 1 / 0 / -1 (None: unknown, the follow signal stays silent)

    def head(self, n: int) -> TrafficFeatures:
        """The features of the traffic's first n queries."""
        return replace(self, rows=self.rows[:n], follow=None if self.follow is None else self.follow[:n])


def featurize(traffic: Traffic, encoder: SimilarityEncoder, num_items: int, device: torch.device | str = "cpu",
              prada_dim: int = 64, seed: int = 0, follow: np.ndarray | None = None) -> TrafficFeatures:
    """Encode every distinct query of ``traffic`` for SEAT and for PRADA (``follow``: [Q], passed through)."""
    import time

    if follow is not None and len(follow) != traffic.num_queries:
        raise ValueError(f"follow has {len(follow)} entries for {traffic.num_queries} queries")
    keys, rows = traffic.unique_keys()
    start = time.perf_counter()
    seat = encode_sequences(encoder, list(traffic.windows(keys, encoder.config.window)), device=device)
    seconds = time.perf_counter() - start
    prada = bag_of_items_prefix_features(traffic.sources, keys, traffic.key_widths(keys), num_items, dim=prada_dim,
                                         seed=seed)
    return TrafficFeatures(keys, rows, seat, prada, seconds, follow)


def prepare_traffic(traffic: Traffic, encoder: SimilarityEncoder, num_items: int, target=None, k: int = 100,
                    filter_seen: bool = True, seed: int = 0, device: torch.device | str = "cpu") -> TrafficFeatures:
    """``featurize`` plus the follow values the service would know from its own answers (``target``: the
    model behind the box; None leaves the follow signal silent)."""
    from recsec_lib.seat.follow import traffic_follow

    follow = None if target is None else traffic_follow(target, traffic, k, filter_seen, device)
    return featurize(traffic, encoder, num_items, seed=seed, follow=follow)


@dataclass(frozen=True)
class AccountOutcome:
    name: str
    kind: str  # benign form or attack label
    queries: int  # queries the account sent
    score: float  # the detector's main statistic for the account
    flagged_at: int | None  # query number (within the account) at which it was flagged, None if never
    sessions: float = 0.0  # SEAT only: sessions opened
    follow: float = 0.0  # SEAT only: largest follow CUSUM
    flagged_by: str | None = None  # SEAT only: which statistic flagged it


def replay(monitor, traffic: Traffic, features: np.ndarray | None, rows: np.ndarray | None,
           follow: np.ndarray | None = None) -> list[AccountOutcome]:
    """Feed ``traffic`` to ``monitor`` in log order; one outcome per account.

    ``features[rows[j]]`` is query j's vector (None for a detector that needs none).
    Only SEAT reads the query items (its session relation) and ``follow`` [Q];
    only the rate cap reads the query times (``traffic.time``, required then).
    """
    names, accounts = traffic.names, traffic.account
    if isinstance(monitor, SeatMonitor):
        for j in range(traffic.num_queries):
            monitor.observe(names[accounts[j]], traffic.query(j), features[rows[j]], j,
                            -1 if follow is None else int(follow[j]))
    elif isinstance(monitor, RateCapMonitor):
        if traffic.time is None:
            raise ValueError("the rate cap needs query times (traffic.time) and this traffic has none")
        for j in range(traffic.num_queries):
            monitor.observe(names[accounts[j]], (), None, j, float(traffic.time[j]))
    else:
        for j in range(traffic.num_queries):
            monitor.observe(names[accounts[j]], (), None if features is None else features[rows[j]], j)
    return outcomes_of(monitor, traffic)


def outcomes_of(monitor, traffic: Traffic) -> list[AccountOutcome]:
    """One outcome per account of ``traffic`` from what ``monitor`` holds after seeing its queries."""
    names = traffic.names
    outcomes = []
    for index, name in enumerate(names):
        state = monitor.accounts.get(name)
        if state is None:  # an account without queries
            outcomes.append(AccountOutcome(name, traffic.kinds[index], 0, 0.0, None))
        elif isinstance(monitor, SeatMonitor):
            outcomes.append(AccountOutcome(name, traffic.kinds[index], state.queries, state.score, state.flagged_at,
                                           float(state.sessions), state.follow, state.flagged_by))
        else:
            outcomes.append(AccountOutcome(name, traffic.kinds[index], state.queries, state.score, state.flagged_at))
    return outcomes
