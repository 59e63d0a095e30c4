"""Detectors as registered objects: the registry, a toy detector added in one class, the budget rules, the
statistic sources, and the cross-account handoff signal on a hand-made log."""

from __future__ import annotations

import numpy as np
import pytest

from recsec_lib.seat import detectors as det
from recsec_lib.seat.baselines import RateCapMonitor
from recsec_lib.seat.calibration import Calibration, SeatOptions
from recsec_lib.seat.evaluation import evaluate
from recsec_lib.seat.handoff import HandoffMonitor
from recsec_lib.seat.replay import TrafficFeatures
from recsec_lib.seat.statistics import (SOURCES, AccountStatistics, MonitorContext, StatisticSource,
                                        account_statistics, max_in_window, register_source, source_of)
from recsec_lib.attack.traffic import Traffic

E = np.array([1.0, 0.0], dtype=np.float32)


def test_registry_lists_the_known_detectors_and_refuses_unknown_names():
    assert det.DEFAULT_DETECTORS == ("seat-pairs", "seat", "seat+cap", "caps", "volume", "rate", "prada")
    assert set(det.DEFAULT_DETECTORS) | {"handoff", "caps+handoff", "seat+cap+handoff"} <= set(det.detector_names())
    with pytest.raises(ValueError, match=r"unknown detector 'magic' \(known: seat-pairs, seat, seat\+cap"):
        det.get_detector("magic")
    with pytest.raises(ValueError, match="unknown statistic 'nope'; known: "):
        source_of("nope")
    seat_cap = det.get_detector("seat+cap")
    assert [s.name for s in seat_cap.sources()] == ["seat", "volume", "rate"]
    assert seat_cap.needs_threshold and seat_cap.needs_time and not seat_cap.slow
    assert det.get_detector("prada").slow and not det.get_detector("caps").judged_without_clock


@pytest.fixture
def toy_detector(monkeypatch):
    """The whole change that adds a detector: one class (sessions opened, alone), registered."""
    monkeypatch.setattr(det.DETECTORS, "_classes", dict(det.DETECTORS._classes))  # the toy leaves with the test

    @det.register_detector
    class SessionsOnly(det.Detector):
        name, key = "toy-sessions", "toy_sessions"
        statistics = ("sessions",)

    return det.get_detector("toy-sessions")


def one_account_log(queries: list[tuple[int, ...]], name: str = "a") -> tuple[Traffic, TrafficFeatures]:
    """One account, each query its own source; every encoding E (distance 0 between all)."""
    n = len(queries)
    traffic = Traffic((name,), ("toy",), tuple(np.array(q) for q in queries), np.zeros(n, dtype=np.int64),
                      np.arange(n), np.array([len(q) for q in queries]), max_len=50)
    keys, rows = traffic.unique_keys()
    return traffic, TrafficFeatures(keys, rows, np.tile(E, (len(keys), 1)), np.zeros((len(keys), 1)), 0.0)


def test_a_toy_detector_is_one_class_and_runs_everywhere(toy_detector):
    assert "toy-sessions" in det.detector_names() and toy_detector.main == "sessions"
    stats = AccountStatistics(("u0", "u1", "u2", "u3"), 0.5, {"sessions": np.array([1.0, 1.0, 2.0, 5.0])})
    calibration = det.calibrate("toy-sessions", stats, 0.25)  # one of four accounts may pass: limit 2
    assert calibration.limits == {"sessions": 2.0} and calibration.threshold == 0.5
    assert calibration.calibration_fpr == 0.25
    held_out = AccountStatistics(("t0", "t1"), 0.5, {"sessions": np.array([2.0, 3.0])})
    assert det.benign_frame(calibration, held_out)["flagged"].tolist() == [False, True]
    with pytest.raises(ValueError, match="used to calibrate"):
        det.benign_frame(calibration, stats)
    # online: three unrelated queries open three sessions; the third passes the limit of 2
    traffic, features = one_account_log([(1, 2, 3, 4, 5, 6), (11, 12, 13, 14, 15, 16), (21, 22, 23, 24, 25, 26)])
    fresh = Calibration("toy-sessions", {"sessions": 2.0}, 0.5, 0.25, 0.25, 4, frozenset({"u0"}))
    (outcome,) = evaluate(fresh, traffic, features)
    assert outcome.flagged_at == 3 and outcome.flagged_by == "sessions"


def test_register_refuses_a_taken_name_or_an_unknown_statistic(monkeypatch):
    monkeypatch.setattr(det.DETECTORS, "_classes", dict(det.DETECTORS._classes))  # the toy leaves with the test
    with pytest.raises(ValueError, match="registered twice"):
        @det.register_detector
        class Again(det.Detector):
            name, key, statistics = "seat", "again", ("pairs",)
    with pytest.raises(ValueError, match="unknown statistic 'colour'"):
        @det.register_detector
        class Colour(det.Detector):
            name, key, statistics = "colour", "colour", ("colour",)
    with pytest.raises(ValueError, match="already come from another source"):
        @register_source
        class Twice(StatisticSource):
            name, statistics = "twice", ("volume",)


def test_calibrations_and_statistics_pickle():
    import pickle

    stats = AccountStatistics(("a", "b"), 0.5, {"volume": np.array([3.0, 4.0])}, ("x", "y"))
    again = pickle.loads(pickle.dumps(stats))
    assert again.values["volume"].tolist() == [3.0, 4.0] and again.kinds == ("x", "y")
    calibration = det.calibrate("volume", stats, 0.5)
    copy = pickle.loads(pickle.dumps(calibration))
    assert copy.limits == {"volume": 3.0} and copy.accounts == frozenset({"a", "b"})
    with pytest.raises(TypeError):
        copy.limits["volume"] = 1.0  # read-only


def test_missing_statistic_is_a_clear_error():
    stats = AccountStatistics(("a",), None, {"volume": np.array([3.0])})
    with pytest.raises(ValueError, match=r"lack 'rate' \(computed: \['volume'\]\)"):
        det.calibrate("caps", stats, 0.01)
    with pytest.raises(ValueError, match="has 2 values for 1 accounts"):
        AccountStatistics(("a",), None, {"volume": np.array([3.0, 4.0])})


def test_equal_and_union_budget_rules_by_hand(monkeypatch):
    # ten accounts; volume and rate flag the SAME accounts (the busiest ones), so the equal rule wastes budget
    stats = AccountStatistics(tuple(f"u{i}" for i in range(10)), None,
                              {"volume": np.arange(10.0), "rate": np.arange(10.0), "handoffs": np.zeros(10)})
    caps = det.calibrate("caps", stats, 0.2)  # equal: 0.1 each -> one account may pass each -> limits 8
    assert caps.limits == {"volume": 8.0, "rate": 8.0} and caps.calibration_fpr == pytest.approx(0.1)
    monkeypatch.setattr(det.DETECTORS, "_classes", dict(det.DETECTORS._classes))  # the toy leaves with the test

    @det.register_detector
    class UnionCaps(det.Detector):
        name, key, statistics, budget_rule = "union-caps", "union_caps", ("volume", "rate"), "union"

    union = det.calibrate("union-caps", stats, 0.2)  # share 0.2 each: two pass each, the same two: 0.2 in all
    assert union.limits == {"volume": 7.0, "rate": 7.0} and union.calibration_fpr == pytest.approx(0.2)
    both = det.calibrate("caps+handoff", stats, 0.3)  # handoffs all 0: its limit 0 flags no one
    assert both.limits["volume"] == 6.0 and both.limits["handoffs"] == 0.0 and both.calibration_fpr == 0.3


def test_max_in_window_matches_the_rate_cap_monitor():
    rng = np.random.default_rng(0)
    account = rng.integers(0, 4, size=300)
    times = np.zeros(300)
    for a in range(4):  # non-decreasing per account, with ties
        mine = account == a
        times[mine] = np.cumsum(rng.choice([0.0, 1.0, 30.0, 200.0], size=mine.sum()))
    monitor = RateCapMonitor(limit=None, window_seconds=60.0)
    for j in range(300):
        monitor.observe(str(account[j]), (), None, j, float(times[j]))
    expected = [monitor.accounts[str(a)].score for a in range(4)]
    assert max_in_window(times, account, 4, 60.0).tolist() == expected
    with pytest.raises(ValueError, match="go backwards"):
        max_in_window(np.array([5.0, 1.0]), np.array([0, 0]), 1, 60.0)


# --- the cross-account handoff signal ----------------------------------------------------------------------


def test_handoff_on_a_hand_made_log():
    """tail = 3. Account a grows a walk 1 2 3 4; account b continues it; c sends a different history."""
    monitor = HandoffMonitor(limit=0, tail=3)
    log = [("a", (1, 2, 3)), ("a", (1, 2, 3, 4)),  # a's tails: (1,2,3), (2,3,4)
           ("b", (1, 2, 3, 4, 5)),  # its items before the newest end (2, 3, 4) = a's last tail: a handoff
           ("b", (2, 3, 4, 5, 6)),  # continues b's own query (tail (3,4,5) is b's): not a handoff
           ("c", (9, 3, 4, 5, 7)),  # (3, 4, 5) was b's tail but the order of c's own history: still a handoff
           ("c", (8, 8)),  # too short to be judged
           ("a", (1, 2, 3, 4))]  # a refresh of a's own query: nothing
    flags = [monitor.observe(who, q, None, j) for j, (who, q) in enumerate(log)]
    counts = {who: state.handoffs for who, state in monitor.accounts.items()}
    assert counts == {"a": 0, "b": 1, "c": 1}
    assert flags == [False, False, True, True, True, True, False]
    assert monitor.accounts["b"].flagged_at == 1 and monitor.accounts["c"].flagged_index == 4


def test_handoff_checks_the_served_answer_the_time_window_and_the_memory():
    served = HandoffMonitor(limit=None, tail=2)
    served.observe("a", (1, 2), answer=(7, 8))
    served.observe("b", (1, 2, 9))  # 9 was not in the answer served to a: not a handoff
    served.observe("c", (1, 2, 7))  # 7 was
    assert [served.accounts[x].handoffs for x in "abc"] == [0, 0, 1]
    timed = HandoffMonitor(limit=None, tail=2, window_seconds=10.0)
    timed.observe("a", (1, 2), time=0.0)
    timed.observe("b", (1, 2, 3), time=11.0)  # too late
    timed.observe("c", (4, 5), time=20.0)
    timed.observe("d", (4, 5, 6), time=25.0)  # in time
    assert timed.accounts["b"].handoffs == 0 and timed.accounts["d"].handoffs == 1
    small = HandoffMonitor(limit=None, tail=2, memory=1)
    small.observe("a", (1, 2))
    small.observe("a", (3, 4))  # (1, 2) forgotten
    small.observe("b", (1, 2, 5))
    assert small.accounts["b"].handoffs == 0
    with pytest.raises(ValueError, match="tail and memory"):
        HandoffMonitor(limit=None, tail=0)


def test_handoff_statistic_separates_a_contiguous_split_from_a_split_by_stream():
    from recsec_lib.attack.traffic import attack_traffic

    walks = [np.arange(1, 41), np.arange(101, 141)]  # two 40-item streams, all prefixes, stream after stream
    attack = attack_traffic(walks, max_len=10, name="x")
    context = MonitorContext(seat=SeatOptions(handoff_tail=5))
    contiguous = account_statistics(attack.split_contiguous(4, "c"), None, context, ["handoffs"])
    # 80 queries in chunks of 20: chunks 1 and 3 start inside a stream (a handoff each); chunk 2 starts stream 2
    assert contiguous["handoffs"].tolist() == [0.0, 1.0, 0.0, 1.0]
    by_stream = account_statistics(attack.split_by_source(2, "s"), None, context, ["handoffs"])
    assert by_stream["handoffs"].tolist() == [0.0, 0.0]
    assert set(SOURCES) >= {"seat", "volume", "rate", "prada", "handoff"}


def test_final_statistics_flag_exactly_the_accounts_the_online_monitors_flag():
    """Calibrated on one benign population, every registered detector flags the same accounts of another
    whether judged from one limit-free replay (statistics) or by its online monitors with limits."""
    from recsec_lib.seat.benign import EVERY_FORM, benign_traffic
    from recsec_lib.seat.statistics import benign_statistics
    from recsec_lib.seat.timing import DonorTimes

    rng = np.random.default_rng(0)
    histories = [rng.permutation(np.arange(1, 81))[:int(rng.integers(8, 30))] for _ in range(24)]
    donors = DonorTimes((np.array([0.0, 0.0, 30.0, 5000.0, 10.0]),))

    def population(users, seed):
        traffic = benign_traffic([histories[u] for u in users], users, EVERY_FORM, 30, seed=seed, times=donors)
        keys, rows = traffic.unique_keys()
        seat = rng.normal(size=(len(keys), 3)).astype(np.float32)
        seat /= np.linalg.norm(seat, axis=1, keepdims=True)
        prada = rng.normal(size=(len(keys), 4)).astype(np.float32)
        features = TrafficFeatures(keys, rows, seat, prada, 0.0,
                                   follow=rng.integers(-1, 2, size=traffic.num_queries).astype(np.int8))
        return traffic, features

    cal, cal_features = population(list(range(12)), 1)
    test, test_features = population(list(range(12, 24)), 2)
    options = SeatOptions(handoff_tail=3, max_sessions=8)
    stats = benign_statistics(cal, cal_features, options, num_items=80)
    held_out = benign_statistics(test, test_features, options, num_items=80, threshold=stats.threshold)
    for name in det.detector_names():
        calibration = det.calibrate(name, stats, 0.2)
        offline = det.flagged_by_statistics(calibration, held_out)
        online = [o.flagged_at is not None for o in evaluate(calibration, test, test_features, options, num_items=80)]
        assert offline.tolist() == online, name
        assert 0 < offline.sum() < len(offline) or name in ("handoff",), name  # the limits bite somewhere
