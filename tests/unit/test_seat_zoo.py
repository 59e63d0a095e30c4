"""SEAT against the attacker zoo and the clients' benign forms: relation, signals, caps, forms, headline.

Everything is small enough to check by hand; the target is a stub whose top-k
after item i is i+1, i+2, ..., i+k.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from recsec_lib.seat import benign
from recsec_lib.attack.generators import GENERATORS
from recsec_lib.seat.baselines import RateCapMonitor, rate_cap_accounts_needed
from recsec_lib.seat.calibration import Calibration, SeatOptions
from recsec_lib.seat.detectors import calibrate
from recsec_lib.seat.statistics import AccountStatistics
from recsec_lib.seat.follow import _chunks, follow_flags, query_follow
from recsec_lib.seat.monitor import SeatMonitor, continues_by_overlap
from recsec_lib.attack.traffic import Traffic, attack_traffic
from recsec_lib.seat.zoo import worst_case_headline

E = np.array([1.0, 0.0], dtype=np.float32)


# --- the session relation ----------------------------------------------------------------


def test_overlap_relation_by_hand():
    history = list(range(1, 41))  # 40 items
    assert continues_by_overlap(history, history)  # refresh
    assert continues_by_overlap(history[:39], history)  # one new interaction
    assert continues_by_overlap(history[:30], history)  # asked again 10 interactions later
    assert continues_by_overlap(history[:20], history[10:30])  # a 20-item window slid by 10
    assert continues_by_overlap(history, [i for i in history if i not in (3, 17, 25)])  # 3 items deleted
    assert continues_by_overlap(history, history + [901, 902, 903, 904, 905])  # + 5 re-ranking candidates
    assert continues_by_overlap(history + [901, 902, 903], history + [904, 905, 906])  # candidates swapped
    assert not continues_by_overlap([1], [2])  # two unrelated one-item queries
    assert not continues_by_overlap([2, 1], [3, 1])  # shares 1 of 2 as sets (1 < min(5, 2)) and no common prefix
    # a 2-item history re-ranked with 10 candidates, then 10 others: too few shared items, but a branch
    assert continues_by_overlap([7, 8] + list(range(901, 911)), [7, 8] + list(range(911, 921)))
    assert continues_by_overlap([1, 2], [1, 3])  # a branch after the common prefix (1,)
    assert not continues_by_overlap([1] + list(range(100, 120)), [1] + list(range(200, 220)))  # 19 > 16 after it
    # two 20-item walks sharing 6 popular items: 14 dropped > 20 // 2 -> separate sessions
    walk_a, walk_b = list(range(100, 114)) + [1, 2, 3, 4, 5, 6], list(range(200, 214)) + [1, 2, 3, 4, 5, 6]
    assert not continues_by_overlap(walk_a, walk_b)
    assert not continues_by_overlap(history, history[20:] + list(range(500, 520)))  # half the window replaced


def test_monitor_relation_matches_the_reference():
    rng = np.random.default_rng(0)
    base = rng.permutation(np.arange(1, 61))
    queries = [base[:30], base[:31], base[5:35], base[40:60], base[:31][::-1], np.r_[base[:31], [70, 71, 72]],
               base[10:12], base[50:52], np.r_[base[:31], [73, 74, 75]]]
    for tip in queries:
        for query in queries:
            monitor = SeatMonitor(threshold=0.0, limit=None, dim=2, num_items=80)
            monitor.observe("a", tip, E)
            monitor.observe("a", query, E)
            expected = continues_by_overlap(tip, query)
            assert (monitor.accounts["a"].sessions == 1) == expected, (tip, query)


def test_client_forms_stay_one_session_and_an_edit_or_rerank_counts_no_pair():
    history = np.arange(1, 301)  # a 300-item history, newest-200 window
    monitor = SeatMonitor(threshold=2.1, limit=0, dim=2, num_items=1000)  # every distance counts as close
    for t in range(5, 301, 5):  # sparse client: every 5th interaction, at most the newest 200
        monitor.observe("sparse", history[max(0, t - 200):t], E)
    edited = np.delete(history, [10, 50, 90])
    for q in (history[:100], edited[:98], edited[:99], edited[:99] + 0, np.r_[edited[:99], [900, 901, 902]]):
        monitor.observe("edits+rerank", q, E)
    for name in ("sparse", "edits+rerank"):
        state = monitor.accounts[name]
        assert (state.sessions, state.count, state.flagged_at) == (1, 0, None)


# --- the in-session follow signal ----------------------------------------------------------


def test_follow_cusum_by_hand():
    monitor = SeatMonitor(threshold=0.1, limit=None, dim=2, num_items=50, follow_limit=1.0, follow_drift=0.8)
    seq = list(range(1, 21))
    follows = [-1, 1, 1, 0, 1, 1, 1, 1, 1, 1]
    flags = [monitor.observe("a", seq[:t + 1], E, t, f) for t, f in enumerate(follows)]
    # s: 0.2, 0.4, 0 (0.4 - 0.8 floored), 0.2, 0.4, 0.6, 0.8, 1.0, 1.2 -> passes 1.0 at the 10th query
    state = monitor.accounts["a"]
    assert state.follow == pytest.approx(1.2)
    assert flags == [False] * 9 + [True] and state.flagged_by == "follow" and state.flagged_at == 10


class NextItemsModel(torch.nn.Module):
    """Stub target: after item i the best items are i+1, i+2, ... (wrapping past num_items)."""

    def __init__(self, num_items: int) -> None:
        super().__init__()
        self.num_items = num_items

    def all_position_scores(self, seqs: torch.Tensor) -> torch.Tensor:
        items = torch.arange(self.num_items + 1)
        gap = (items[None, None, :] - seqs[:, :, None] - 1) % self.num_items  # [B, L, n+1]: 0 for i+1
        return -gap.float()


def test_follow_flags_and_query_follow_by_hand():
    model = NextItemsModel(30)
    # items after 1: 2 (in top-2 of 1), 3 (top-2 of 2), 10 (not), 11 (top-2 of 10), 25 (not)
    source = np.array([1, 2, 3, 10, 11, 25])
    flags = follow_flags(model, [source], [200], k=2, filter_seen=True)[0]
    assert flags.tolist() == [0, 1, 1, 0, 1, 0]
    # a window of 2 items judges position t from source[t-2:t]: the same here (the stub reads the last item)
    assert follow_flags(model, [source], [2], k=2, filter_seen=True)[0].tolist() == [0, 1, 1, 0, 1, 0]
    # one account: ends 2, 3, 5 (growth: judged at the previous end), then 5 again (a refresh: -1)
    traffic = Traffic(("a",), ("user",), (source,), np.zeros(4, dtype=np.int64), np.zeros(4, dtype=np.int64),
                      np.array([2, 3, 5, 5]), 200)
    assert query_follow(traffic, [flags]).tolist() == [-1, 1, 0, -1]


def test_follow_chunks_judge_each_position_once():
    for length, width in ((5, 10), (12, 10), (30, 10), (2, 10), (401, 200)):
        chunks = _chunks(length, width)
        judged = [t for _, stop, first in chunks for t in range(first, stop + 1)]
        assert judged == list(range(1, length))
        assert all(stop - start <= width for start, stop, _ in chunks)


# --- the rate cap ---------------------------------------------------------------------------


def test_rate_cap_by_hand():
    monitor = RateCapMonitor(limit=2, window_seconds=10.0)
    flags = [monitor.observe("a", (), None, j, t) for j, t in enumerate([0.0, 4.0, 11.0, 12.0, 13.0])]
    # windows (t-10, t]: {0}, {0,4}, {4,11}, {4,11,12} -> 3 > 2 at the 4th query; {4,11,12,13} -> 4
    assert flags == [False, False, False, True, True] and monitor.accounts["a"].score == 4
    assert rate_cap_accounts_needed(100_000, 50, 3600, 36_000) == 200  # 10,000 per hour / 50
    assert rate_cap_accounts_needed(100, 50, 3600, 7200) == 1
    with pytest.raises(ValueError, match="window_seconds"):
        RateCapMonitor(limit=1, window_seconds=0)


# --- benign forms ----------------------------------------------------------------------------


HISTORIES = [np.arange(1, 13), np.arange(101, 121), np.arange(201, 216), np.arange(301, 311), np.arange(401, 406)]
USERS = [7, 8, 9, 10, 11]


def form(name: str, **shape) -> Traffic:
    return benign.benign_traffic(HISTORIES, USERS, [name], max_len=8, seed=0, shape=benign.BenignShape(**shape))


def queries_of(traffic: Traffic, account: int = 0) -> list[tuple[int, ...]]:
    return [traffic.query(j) for j in range(traffic.num_queries) if traffic.account[j] == account]


def test_sparse_and_window_forms_by_hand():
    sparse = queries_of(form("sparse5"))  # user 7: 12 items, asks after 5, 10 and the last (12); newest 8
    assert sparse == [(1, 2, 3, 4, 5), (3, 4, 5, 6, 7, 8, 9, 10), (5, 6, 7, 8, 9, 10, 11, 12)]
    assert len(queries_of(form("sparse10"), 1)) == 2  # user 8: 20 items -> after 10 and 20
    window = queries_of(form("window50", client_window=3))
    assert window[:4] == [(1,), (1, 2), (1, 2, 3), (2, 3, 4)] and len(window) == 12


def test_edits_form_removes_one_item_per_edit():
    traffic = form("edits", edit_range=(3, 3))
    queries = queries_of(traffic, 1)  # user 8: 20 items, max_len 8
    assert len(queries) == 20 and len(traffic.sources) == 5 * 4  # each user: the history + 3 edited copies
    last = traffic.sources[4 + 3]  # user 8's history after its 3 edits
    assert len(last) == 17 and set(last) < set(HISTORIES[1])
    assert queries[-1] == tuple(last[-8:])


def test_rerank_forms_append_candidates():
    traffic = form("rerank", rerank_prob=1.0, candidate_range=(3, 3))
    queries = queries_of(traffic, 4)  # user 11: 5 items, a re-ranking request after each
    assert len(queries) == 10
    assert queries[0] == (401,) and queries[1][:1] == (401,) and len(queries[1]) == 4
    assert all(len(set(q[1:]) - set(HISTORIES[4])) == 3 for q in queries[1:2])
    bulk = form("bulk-rerank", bulk_sets=(4, 4), candidate_range=(2, 2))
    assert all(len(queries_of(bulk, a)) == len(HISTORIES[a]) + 4 for a in range(5))


def test_household_and_passes_forms():
    big = form("household45", big_household_sizes=(5,))
    assert len(big.names) == 1 and big.num_queries == sum(len(h) for h in HISTORIES)
    passes = queries_of(form("passes"))
    assert passes[:12] == [tuple(range(max(1, t - 7), t + 1)) for t in range(1, 13)]
    assert len(passes) > 12 and passes[-1] == passes[11]  # the second pass ends at the full history
    times = form("refresh", refresh_mean=3.0, burst_gap_s=2.0).time
    assert times is not None and np.all(np.diff(times[:5]) >= 0)


def test_unknown_form_and_bad_shape():
    with pytest.raises(ValueError, match="unknown benign forms"):
        form("bursty")
    with pytest.raises(ValueError, match="rerank_prob"):
        benign.BenignShape(rerank_prob=2.0)


# --- the zoo and the worst-case headline ----------------------------------------------------


class NextItemsBox:
    """Stub black box: top-k after a query ending in i is i+1..i+k (mod num_items), seen items skipped."""

    def __init__(self, num_items: int = 60, k: int = 4, max_len: int = 10) -> None:
        self.num_items, self.k, self.max_query_len, self.filter_seen = num_items, k, max_len, True

    def answer_batch(self, account, queries) -> np.ndarray:
        out = []
        for q in queries:
            q = list(q)
            listed, item = [], q[-1]
            while len(listed) < self.k:
                item = item % self.num_items + 1
                if item not in q:
                    listed.append(item)
            out.append(listed)
        return np.array(out, dtype=np.int64)


def zoo_table(rows: list[tuple[str, str, float | None]]) -> pd.DataFrame:
    return pd.DataFrame([{"attack": a, "detector": d, "accounts_needed": n} for a, d, n in rows])


def test_worst_case_headline_takes_the_cheapest_attack():
    table = zoo_table([
        ("walks", "seat", 400), ("walks", "seat+cap", 400), ("walks", "volume", 80),
        ("chain", "seat", 8), ("chain", "seat+cap", 17), ("chain", "volume", 17),
        ("odd", "seat", None), ("odd", "seat+cap", None), ("odd", "volume", 85),  # None: never got through
    ])
    head = worst_case_headline(table)
    assert head["seat_accounts_needed"] == 8 and head["seat_worst_attack"] == "chain"
    assert head["seat_cost_increase_over_volume_cap"] == pytest.approx(8 / 17)
    assert head["seat_cheapest_attack_vs_volume_cap"] == "chain"
    assert head["seat_plus_cap_accounts_needed"] == 17
    assert head["seat_plus_cap_cost_increase_over_volume_cap"] == pytest.approx(1.0)
    assert head["seat_plus_cap_cost_increase_worst_attack"] == pytest.approx(1.0)
    assert head["volume_cap_accounts_needed"] == 17
    only_blocked = worst_case_headline(zoo_table([("a", "seat", None), ("a", "volume", 5)]))
    assert only_blocked["seat_accounts_needed"] is None and only_blocked["seat_cost_increase_over_volume_cap"] is None


def test_seat_calibration_splits_the_false_positive_budget():
    names = tuple(f"u{i}" for i in range(300))
    zeros = np.zeros(300)
    stats = AccountStatistics(names, 0.5, {"pairs": np.r_[np.arange(3), np.zeros(297)], "sessions": np.arange(300.0),
                                           "follow": zeros, "volume": np.arange(300.0), "rate": zeros})
    seat = calibrate("seat", stats, 0.03)  # 0.01 per statistic: floor(0.01 * 300) = 3 accounts may pass each
    assert seat.limit == 0 and seat.limits["sessions"] == 296 and seat.limits["follow"] == 0
    assert seat.calibration_fpr == pytest.approx(5 / 300)  # 2 by pairs (scores 1, 2) + 3 by sessions
    plus = calibrate("seat+cap", stats, 0.05)
    assert plus.limits["volume"] == 296 and plus.limits["rate"] == 0
    assert plus.summary()["volume_limit"] == 296 and plus.summary()["session_limit"] == 296
    with pytest.raises(ValueError, match="lack 'prada'"):
        calibrate("prada", stats, 0.01)


def test_an_interleaving_attacker_may_split_by_walk():
    from recsec_lib.seat.zoo import SplitStatistics, accounts_needed

    attack = GENERATORS.build("interleaved", interleave=8).collect(NextItemsBox(num_items=400, max_len=10), 400, 10,
                                                                  seed=0)
    from recsec_lib.seat.replay import TrafficFeatures

    keys, rows = attack.traffic.unique_keys()
    features = TrafficFeatures(keys, rows, np.tile(E, (len(keys), 1)), np.zeros((len(keys), 1)), 0.0)
    cal = Calibration("seat", limits={"pairs": 1e9, "sessions": 2, "follow": None}, threshold=0.0, target_fpr=0.0,
                      calibration_fpr=0.0, num_accounts=0)
    splits = SplitStatistics(attack, features, 0.0, SeatOptions(), 400)
    assert splits.interleaves()
    # 40 walks: dealt 2 per account (20 accounts) none opens more than 2 sessions; contiguous chunks of the
    # interleaved log would need chunks of at most 2 queries (200 accounts)
    assert accounts_needed(cal, attack, features, 3600.0, splits, num_items=400) == 20
