"""The attacker's parameter search: splits, pacing, and the cheapest setting of a hand-made attacker."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from recsec_lib.seat import detectors as det
from recsec_lib.seat.calibration import Calibration, SeatOptions
from recsec_lib.seat.search import (AttackSample, AttackSpace, combine, pace, search_attacker, split_traffic)
from recsec_lib.seat.statistics import MonitorContext
from recsec_lib.seat.traffic import attack_traffic


def hand_made(parameters: dict) -> AttackSample:
    """120 queries: ``streams`` streams of 120 / streams items, every prefix, one stream after another."""
    streams = parameters["streams"]
    walks = [np.arange(1000 * s + 1, 1000 * s + 1 + 120 // streams) for s in range(streams)]
    return AttackSample(attack_traffic(walks, max_len=10, name="toy"))


def calibration(name: str, **limits) -> Calibration:
    return Calibration(name, limits, None, 0.01, 0.0, 100, frozenset({"benign/0"}))


@pytest.fixture
def volume_and_handoff(monkeypatch):
    monkeypatch.setattr(det, "REGISTRY", dict(det.REGISTRY))

    @det.register_detector
    class VolumeHandoff(det.Detector):
        name, key, statistics = "toy-volume+handoff", "toy", ("volume", "handoffs")


CONTEXT = MonitorContext(seat=SeatOptions(handoff_tail=5, rate_window_s=3600.0))


def test_splits_and_pacing_by_hand():
    traffic = hand_made({"streams": 4}).traffic  # 4 streams of 30
    assert split_traffic(traffic, "contiguous", 4).account.tolist()[::30] == [0, 1, 2, 3]
    assert np.array_equal(split_traffic(traffic, "by-stream", 2).account, traffic.source // 2)
    assert split_traffic(traffic, "round-robin", 3).account[:5].tolist() == [0, 1, 2, 0, 1]
    assert len(split_traffic(traffic, "by-stream", 10).names) == 4  # one account per stream at most
    with pytest.raises(ValueError, match="unknown split 'sideways'"):
        split_traffic(traffic, "sideways", 2)
    paced = pace(split_traffic(traffic, "contiguous", 2), 3600.0)  # 60 queries per account over one hour
    assert paced.time[:3].tolist() == [0.0, 60.0, 120.0] and paced.time[60] == 0.0
    with pytest.raises(ValueError, match="non-empty tuple"):
        AttackSpace(parameters={"streams": [1, 2]})


def test_search_finds_the_hand_made_attackers_cheapest_setting(volume_and_handoff):
    space = AttackSpace(parameters={"streams": (1, 2, 4)}, horizons_h=(1.0, 12.0))
    calibrations = {"volume": calibration("volume", volume=30.0),
                    "toy-volume+handoff": calibration("toy-volume+handoff", volume=30.0, handoffs=0.0),
                    "handoff": calibration("handoff", handoffs=0.0),
                    "rate": calibration("rate", rate=10.0)}
    result = search_attacker(hand_made, space, calibrations, CONTEXT, grid=(1, 2, 4, 8, 16, 32))
    best = result.best.set_index("detector")
    # volume: 120 queries, at most 30 per account -> 4 accounts, whatever the streams
    assert result.minimum("volume") == 4
    # volume + handoff: a cut inside a stream is a handoff, so only 4 streams of 30, one per account, get through
    assert result.minimum("toy-volume+handoff") == 4 and best.loc["toy-volume+handoff", "streams"] == 4
    table = result.table
    rows = table[(table.detector == "toy-volume+handoff") & (table.horizon_h == 1.0)]
    both = rows.set_index(["streams", "split"])["accounts_needed"]
    assert all(pd.isna(both[key]) for key in [(1, "contiguous"), (1, "by-stream"), (2, "by-stream"),
                                               (4, "round-robin")])  # beyond the grid: always flagged
    assert both[(4, "contiguous")] == 4 and both[(4, "by-stream")] == 4
    # handoff alone: one account sends everything and hands nothing off
    assert result.minimum("handoff") == 1
    # rate, 10 per hour: paced over 1 h an account may send 10 queries (12 accounts); over 12 h one account's
    # 120 queries are 6 minutes apart, 10 in any hour: 1 account
    rate = table[table.detector == "rate"].set_index(["streams", "split", "horizon_h"])["accounts_needed"]
    assert rate[(1, "contiguous", 1.0)] == 12 and rate[(1, "contiguous", 12.0)] == 1
    assert result.minimum("rate") == 1 and best.loc["rate", "horizon_h"] == 12.0
    both_searches = combine([result, result])
    assert both_searches.minimum("volume") == 4 and len(both_searches.table) == 2 * len(table)
    with pytest.raises(ValueError, match="no result for detector 'seat'"):
        result.minimum("seat")


def test_public_data_streams_and_traffic():
    from recsec_lib.seat.public_data import public_streams, public_traffic

    histories = [np.array([1, 2, 3]), np.array([4, 5]), np.array([6]), np.array([], dtype=np.int64)]
    one = public_streams(histories, 1, seed=0)
    assert len(one) == 1 and sorted(one[0].tolist()) == [1, 2, 3, 4, 5, 6]
    per_user = public_streams(histories, 10, seed=0)
    assert sorted(map(len, per_user)) == [1, 2, 3]  # one stream per (non-empty) history
    traffic = public_traffic([np.array([1, 2, 3]), np.array([4, 5])], max_len=2, budget_queries=4)
    assert [traffic.query(j) for j in range(traffic.num_queries)] == [(1,), (1, 2), (2, 3), (4,)]
    assert len(traffic.sources) == 2 and public_traffic([np.array([1, 2])], 5, 1).num_queries == 1
    with pytest.raises(ValueError, match="'streams' must be >= 1"):
        public_streams(histories, 0)
