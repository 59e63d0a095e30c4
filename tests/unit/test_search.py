"""The attacker's parameter search: splits, pacing, and the cheapest setting of a hand-made attacker."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from recsec_lib.seat import detectors as det
from recsec_lib.seat.calibration import Calibration, SeatOptions
from recsec_lib.seat.search import (AttackSample, AttackSpace, combine, pace, search_attacker, split_traffic)
from recsec_lib.seat.statistics import MonitorContext
from recsec_lib.attack.traffic import attack_traffic


def hand_made(parameters: dict) -> AttackSample:
    """120 queries: ``streams`` streams of 120 / streams items, every prefix, one stream after another."""
    streams = parameters["streams"]
    walks = [np.arange(1000 * s + 1, 1000 * s + 1 + 120 // streams) for s in range(streams)]
    return AttackSample(attack_traffic(walks, max_len=10, name="toy"))


def calibration(name: str, **limits) -> Calibration:
    return Calibration(name, limits, None, 0.01, 0.0, 100, frozenset({"benign/0"}))


@pytest.fixture
def volume_and_handoff(monkeypatch):
    monkeypatch.setattr(det.DETECTORS, "_classes", dict(det.DETECTORS._classes))  # the toy leaves with the test

    @det.register_detector
    class VolumeHandoff(det.Detector):
        name, key, statistics = "toy-volume+handoff", "toy", ("volume", "handoffs")


CONTEXT = MonitorContext(seat=SeatOptions(handoff_tail=5, rate_window_s=3600.0))


def test_splits_and_pacing_by_hand():
    traffic = hand_made({"streams": 4}).traffic  # 4 streams of 30
    assert split_traffic(traffic, "contiguous", 4).account.tolist()[::30] == [0, 1, 2, 3]
    assert np.array_equal(split_traffic(traffic, "by-stream", 2).account, traffic.source % 2)  # streams dealt
    assert split_traffic(traffic, "round-robin", 3).account[:5].tolist() == [0, 1, 2, 0, 1]
    assert len(split_traffic(traffic, "by-stream", 10).names) == 4  # one account per stream at most
    with pytest.raises(ValueError, match="unknown split 'sideways'"):
        split_traffic(traffic, "sideways", 2)
    probed = attack_traffic([np.array([7]), np.array([8]), np.array([9]), np.arange(1, 10)], max_len=5, name="p")
    assert split_traffic(probed, "contiguous", 3).account.tolist() == [0, 1, 2] + [0] * 3 + [1] * 3 + [2] * 3
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


def test_per_account_replay_equals_the_whole_split_and_stops_at_the_first_flag():
    from recsec_lib.seat.replay import TrafficFeatures
    from recsec_lib.seat.search import SplitCache
    from recsec_lib.seat.statistics import account_statistics

    rng = np.random.default_rng(0)
    walks = [rng.permutation(np.arange(1, 61))[:12] for _ in range(6)]
    traffic = attack_traffic(walks, max_len=10, name="w")
    keys, rows = traffic.unique_keys()
    encodings = rng.normal(size=(len(keys), 2)).astype(np.float32)
    encodings /= np.linalg.norm(encodings, axis=1, keepdims=True)
    features = TrafficFeatures(keys, rows, encodings, np.zeros((len(keys), 1)), 0.0,
                               follow=rng.integers(-1, 2, size=traffic.num_queries).astype(np.int8))
    context = MonitorContext(threshold=0.5, dim=2, num_items=64)
    cache = SplitCache(AttackSample(traffic, features), context)
    for split in ("contiguous", "round-robin", "by-stream"):
        whole = account_statistics(split_traffic(traffic, split, 4), features, context, ["pairs", "sessions", "follow"])
        lazy = cache.values(split, 4, ("pairs", "sessions", "follow"), 3600.0)
        for statistic in ("pairs", "sessions", "follow"):
            assert lazy[statistic].tolist() == whole[statistic].tolist()
    from recsec_lib.seat.statistics import SOURCES

    part = split_traffic(traffic, "contiguous", 3)
    whole = SOURCES["seat"].values(part, features, context)
    probed = SOURCES["seat"].probe({"sessions": 1e9}, part, features, context)  # never passed: the same values
    assert all(probed[k].tolist() == whole[k].tolist() for k in whole)
    assert SOURCES["seat"].probe({"sessions": 0.0}, part, features, context) is None  # the first query passes it
    fresh = SplitCache(AttackSample(traffic, features), context)
    seat = det.get_detector("seat")
    assert fresh.any_flagged(seat, {"pairs": None, "sessions": 0.0, "follow": None}, "contiguous", 4, 3600.0)
    assert fresh.replays == 1  # the first account opens a session: no other account replayed


def test_handoffs_are_counted_within_one_kind_of_account():
    from recsec_lib.seat.statistics import account_statistics
    from recsec_lib.attack.traffic import concat_traffic

    walk = [np.arange(1, 31)]
    a = attack_traffic(walk, max_len=10, name="growing")
    b = attack_traffic(walk, max_len=10, name="refresh")  # the same user's history as another form's account
    stats = account_statistics(concat_traffic([a, b]), None, CONTEXT, ["handoffs"])
    assert stats["handoffs"].tolist() == [0.0, 0.0]
    split = a.split_contiguous(2, "x")  # one kind: the second half continues the first
    assert account_statistics(split, None, CONTEXT, ["handoffs"])["handoffs"].tolist() == [0.0, 1.0]


def test_detection_headline_names_the_best_detector_and_the_targets():
    from recsec_lib.seat.verdict import detection_headline, verdict_sentence

    best = pd.DataFrame([
        {"detector": "volume", "accounts_needed": 16, "attacker": "chain", "chains": 1, "split": "contiguous",
         "horizon_h": 720.0},
        {"detector": "caps", "accounts_needed": 17, "attacker": "chain", "chains": 1, "split": "contiguous",
         "horizon_h": 720.0},
        {"detector": "seat+cap", "accounts_needed": 14, "attacker": "chain", "chains": 1, "split": "by-stream",
         "horizon_h": 72.0},
        {"detector": "handoff", "accounts_needed": None, "attacker": "chain", "chains": 1, "split": "contiguous",
         "horizon_h": 24.0}])
    fpr = pd.DataFrame([
        {"detector": "caps", "kind": "all", "accounts": 4000, "flagged": 2, "rate": 0.0005, "low": 0.0, "high": 0.0018},
        {"detector": "caps", "kind": "ml100k", "accounts": 400, "flagged": 1, "rate": 0.0025, "low": 0.0,
         "high": 0.0139},
        {"detector": "caps", "kind": "growing", "accounts": 400, "flagged": 0, "rate": 0.0, "low": 0.0, "high": 0.009},
        {"detector": "volume", "kind": "all", "accounts": 4000, "flagged": 3, "rate": 0.00075, "low": 0.0,
         "high": 0.002}])
    head = detection_headline(best, fpr, candidates=["volume", "caps", "seat+cap"], parameters=["chains"])
    assert head["detect_best"] == "caps" and head["detect_best_accounts_needed_worst"] == 17
    assert head["detect_best_cost_increase_over_volume_cap"] == pytest.approx(17 / 16)
    assert head["detect_best_cost_increase_over_caps"] == 1.0
    assert head["detect_best_worst_point"] == {"attacker": "chain", "chains": 1, "split": "contiguous",
                                               "horizon_h": 720.0}
    assert head["detect_best_false_positive_rate"] == 0.0005 and head["detect_best_worst_form"] == "ml100k"
    assert head["benign_real_timing_false_positive_rate_caps"] == 0.0025
    assert head["targets"] == {"best_ge_2x_volume_cap": False, "best_gt_1.2x_caps": False,
                               "fpr_le_0.001_shown": False, "fpr_le_0.001_point": True,
                               "no_form_above_0.01_shown": False, "no_form_above_0.01_point": True}
    assert verdict_sentence(head).startswith("Per-account detection does NOT hold")
    # a detector never got through within the grid is the best, at infinite cost
    assert detection_headline(best, fpr)["detect_best"] == "handoff"


def test_registered_generators_plug_into_the_search():
    from recsec_lib.seat.search import GeneratorCollector, generator_space
    from test_seat_zoo import NextItemsBox

    space = generator_space("chain", splits=("contiguous", "by-stream"), horizons_h=(24.0,), chains=(1, 5),
                            random_mix=(0.0,))
    assert space.parameters["chains"] == (1, 5) and "mix_weights" in space.parameters
    with pytest.raises(ValueError, match="not among its choices"):
        generator_space("chain", chains=(3,))
    with pytest.raises(ValueError, match="offers no choice of 'colour'"):
        generator_space("chain", colour=("red",))
    collect = GeneratorCollector("chain", NextItemsBox(num_items=400, max_len=10), 500, 10, seed=0,
                                 sample=AttackSample)
    result = search_attacker(collect, space, {"volume": calibration("volume", volume=100.0)}, CONTEXT,
                             grid=(1, 2, 5, 10))
    assert result.minimum("volume") == 5  # 500 queries, at most 100 per account
    # mix_weights cannot matter without mixing: one collection per chain count, both kept
    assert len(collect.collected) == 2 and set(result.table["chains"]) == {1, 5}
    by_stream = result.table[(result.table.split == "by-stream") & (result.table.chains == 1)]
    assert by_stream["accounts_needed"].isna().all()  # one chain cannot be dealt over accounts


def test_the_splits_largest_account_count_is_tried_even_off_the_grid():
    from recsec_lib.seat.search import accounts_needed_for

    sample = hand_made({"streams": 3})  # 3 streams of 40: by stream, 3 accounts at most
    volume = calibration("volume", volume=40.0)
    assert accounts_needed_for(sample, volume, "by-stream", 3600.0, CONTEXT, grid=(1, 2, 5)) == 3
    assert accounts_needed_for(sample, calibration("volume", volume=39.0), "by-stream", 3600.0, CONTEXT,
                               grid=(1, 2, 5)) is None


def test_a_setting_the_generator_ignores_reuses_the_samples_answers(monkeypatch):
    """collect returning the very sample of the setting before (mix_weights at random_mix 0): no second search,
    the same accounts needed, each row labelled with its own setting."""
    import recsec_lib.seat.search as search

    calls = []
    real = search.accounts_needed_for
    monkeypatch.setattr(search, "accounts_needed_for", lambda *a, **k: calls.append(1) or real(*a, **k))
    sample = hand_made({"streams": 2})
    space = AttackSpace(parameters={"weights": ("uniform", "popularity")}, splits=("contiguous",),
                        horizons_h=(1.0,))
    result = search_attacker(lambda setting: sample, space, {"volume": calibration("volume", volume=30.0)}, CONTEXT,
                             grid=(1, 2, 4, 8))
    assert len(calls) == 1  # searched once
    table = result.table.set_index("weights")
    assert table.loc["uniform", "accounts_needed"] == table.loc["popularity", "accounts_needed"] == 4
    assert table.loc["popularity", "setting"] == "weights=popularity"
