"""Benign users with real timing: a timestamp file replayed, title mapping, the people forms, exact intervals."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from recsec_lib.seat import benign, timing
from recsec_lib.seat.fpr import accounts_to_show, clopper_pearson, rate_table
from recsec_lib.seat.statistics import MonitorContext, account_statistics

# user item rating timestamp: user 7 rates 1 and 2 in one second, 3 a minute later, 4 and 5 together a day
# later (5 is listed first in the file: same second, file order); user 3 rates two movies an hour apart.
U_DATA = "7\t1\t5\t1000\n3\t2\t4\t500\n7\t2\t3\t1000\n7\t3\t4\t1060\n7\t5\t1\t87400\n7\t4\t2\t87400\n3\t9\t1\t4100\n"
U_ITEM = ("1|Toy Story (1995)|01-Jan-1995||http://x|0|0|0|1|1|1|0|0|0|0|0|0|0|0|0|0|0|0|0\n"
          "2|GoldenEye (1995)|01-Jan-1995||http://x|0|1|1|0|0|0|0|0|0|0|0|0|0|0|0|0|1|0|0\n"
          "3|Four Rooms (1995) |01-Jan-1995||http://x|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0|1|0|0\n"
          "4|Unknown Film (1990)|01-Jan-1995||http://x|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0|1|0|0\n"
          "5|Heat (1995)|01-Jan-1995||http://x|0|1|0|0|0|0|0|0|0|0|0|0|0|0|0|0|1|0|0\n"
          "9|Toy Story (1995)|01-Jan-1995||http://x|0|0|0|1|1|1|0|0|0|0|0|0|0|0|0|0|0|0|0\n")


@pytest.fixture
def ml100k(tmp_path):
    (tmp_path / "u.data").write_text(U_DATA)
    (tmp_path / "u.item").write_text(U_ITEM, encoding="latin-1")
    return tmp_path


def test_timestamp_file_is_read_in_time_order(ml100k):
    histories = timing.read_timed_histories(ml100k / "u.data")
    assert [h.user for h in histories] == [3, 7]
    seven = histories[1]
    assert seven.items.tolist() == [1, 2, 3, 5, 4] and seven.times.tolist() == [1000, 1000, 1060, 87400, 87400]
    with pytest.raises(ValueError, match="go backwards"):
        timing.TimedHistory(1, np.array([1, 2]), np.array([5.0, 4.0]))


def test_queries_after_each_rating_or_each_submission():
    times = np.array([1000.0, 1000.0, 1060.0, 87400.0, 87400.0])
    ends, at = timing.timed_queries(times, "each")
    assert ends.tolist() == [1, 2, 3, 4, 5] and at.tolist() == times.tolist()
    ends, at = timing.timed_queries(times, "submission")  # one query after the last rating of each second
    assert ends.tolist() == [2, 3, 5] and at.tolist() == [1000.0, 1060.0, 87400.0]
    with pytest.raises(ValueError, match="burst must be one of"):
        timing.timed_queries(times, "sometimes")
    assert timing.busiest_window(times, 3600.0) == 3 and timing.busiest_window(np.array([]), 60.0) == 0


def test_titles_map_by_exact_title_and_unmapped_ratings_drop(ml100k):
    items = pd.DataFrame({"title": ["Toy Story (1995)", "Heat (1995)", "Four Rooms (1995)"]}, index=[1, 2, 3])
    dataset = SimpleNamespace(items=items)  # internal ids 1..3
    mapping, report = timing.map_to_dataset(dataset, ml100k)
    assert mapping == {1: 1, 9: 1, 5: 2, 3: 3}  # white space ignored; two ML-100K ids of one title
    assert report.source_movies == 6 and report.mapped_to_dataset == 4 and report.mapped_to_catalogue == -1
    assert report.ratings == 7 and report.ratings_mapped == 4  # user 7: 1, 3, 5; user 3: 9
    mapped = timing.map_histories(timing.read_timed_histories(ml100k / "u.data"), mapping)
    seven = mapped[1]
    assert seven.items.tolist() == [1, 3, 2] and seven.times.tolist() == [1000, 1060, 87400]
    assert mapped[0].items.tolist() == [1] and timing.map_histories(mapped, mapping, min_len=2)[0].user == 7


def test_replayed_real_timing_gives_the_rate_statistic_by_hand(ml100k):
    histories = timing.read_timed_histories(ml100k / "u.data")
    traffic = benign.timed_benign_traffic(histories, max_len=3, burst="each")
    assert traffic.names == ("benign/ml100k/3", "benign/ml100k/7")
    seven = [traffic.query(j) for j in range(traffic.num_queries) if traffic.account[j] == 1]
    assert seven == [(1,), (1, 2), (1, 2, 3), (2, 3, 5), (3, 5, 4)]  # newest 3 items
    assert traffic.time[traffic.account == 1].tolist() == [0, 0, 60, 86400, 86400]
    stats = account_statistics(traffic, None, MonitorContext(), ["volume", "rate"])
    assert stats["volume"].tolist() == [2, 5] and stats["rate"].tolist() == [1, 3]  # 3 queries in one hour
    submit = benign.timed_benign_traffic(histories, max_len=3, burst="submission", kind="ml100k-submit")
    rates = account_statistics(submit, None, MonitorContext(), ["rate"])["rate"]
    assert rates.tolist() == [1, 2] and submit.kinds == ("ml100k-submit",) * 2


def test_split_timed_users_and_donor_times():
    histories = [timing.TimedHistory(u, np.arange(3), np.array([0.0, 10.0, 30.0])) for u in (5, 1, 3, 2)]
    calibration, held_out = timing.split_timed_users(histories, 0.5)
    assert [h.user for h in calibration] == [1, 2] and [h.user for h in held_out] == [3, 5]
    with pytest.raises(ValueError, match="two non-empty blocks"):
        timing.split_timed_users(histories[:1], 0.5)
    donors = timing.DonorTimes(tuple(timing.rating_gaps(histories[:1])))  # gaps 10, 20
    assert donors.interaction_times(6, np.random.default_rng(0)).tolist() == [0, 10, 30, 40, 60, 70]
    with pytest.raises(ValueError, match="at least one donor"):
        timing.DonorTimes(())


HISTORIES = [np.arange(1, 161), np.arange(201, 241), np.arange(301, 331)]


def forms(name: str, times=None, **shape):
    return benign.benign_traffic(HISTORIES, [1, 2, 3], [name], max_len=50, seed=0,
                                 shape=benign.BenignShape(**shape), times=times)


def queries_of(traffic, account=0):
    return [traffic.query(j) for j in range(traffic.num_queries) if traffic.account[j] == account]


def test_people_forms():
    requery = forms("requery", requery_prob=1.0)
    first = queries_of(requery)
    assert len(first) == 160 + 159  # after every interaction from the second on: an old prefix
    ends = requery.end[requery.account == 0]
    assert all(ends[i] < ends[i - 1] for i in range(2, len(ends), 2))  # each old prefix ends before the newest
    assert np.all(np.diff(requery.time[requery.account == 0]) >= 0)
    devices = forms("devices", sync_range=(10, 10), second_device_prob=1.0)
    second = queries_of(devices, 1)  # user 2: 40 items; the copy synced at 10, 20, 30, 40
    assert len(second) == 40 + 31 and second[:3] == [(201,), (201, 202), (201, 202, 203)]
    stale = [q for q in second if len(q) in (10, 20, 30)]
    assert len(stale) > 3  # the second device's stale copies repeat
    binge = forms("binge", binge_range=(50, 50), binge_gap_s=40.0, binge_pause_s=1e6)
    gaps = np.diff(binge.time[binge.account == 0])  # user 1: 160 items, sessions of 50
    assert np.all((gaps[:49] >= 30) & (gaps[:49] <= 50)) and gaps[49] > 1000
    signup = forms("signup-bulk", signup_range=(20, 20), signup_gap_s=5.0, interaction_gap_s=1e5)
    at = signup.time[signup.account == 0]
    assert at[19] <= 19 * 7.5 and len(at) == 160
    with pytest.raises(ValueError, match="requery_prob"):
        benign.BenignShape(requery_prob=1.5)


def test_donor_times_drive_the_old_forms_and_none_keeps_the_first_version():
    donors = timing.DonorTimes((np.array([0.0, 0.0, 5.0]),))
    refresh = forms("refresh", times=donors, refresh_mean=1.0, burst_gap_s=2.0)
    t = refresh.time[refresh.account == 2]
    # interactions at 0, 0, 0, 5, 5, 5, 10, ...: a refresh 2 s after its interaction, never after the next one
    assert t[0] == 0 and np.all(np.diff(t) >= 0) and set(np.diff(t).tolist()) <= {0.0, 1.0, 2.0, 3.0, 5.0}
    assert np.all(np.diff(refresh.end[refresh.account == 2]) >= 0)  # the log order is kept
    old = forms("growing")
    assert np.all(np.diff(old.time[old.account == 0]) > 0)  # Exponential gaps


def test_clopper_pearson_by_hand_and_sizes():
    zero = clopper_pearson(0, 10)
    assert zero.low == 0 and zero.high == pytest.approx(1 - 0.025 ** 0.1)  # 0.3085
    half = clopper_pearson(5, 10)
    assert half.low == pytest.approx(0.18709, abs=1e-5) and half.high == pytest.approx(0.81291, abs=1e-5)
    one = clopper_pearson(1, 100)
    assert one.low == pytest.approx(0.000253, abs=1e-6) and one.high == pytest.approx(0.05446, abs=1e-5)
    assert clopper_pearson(10, 10).high == 1.0
    assert accounts_to_show(0.001) == 3688 and accounts_to_show(0.01) == 368
    assert clopper_pearson(0, 3688).high <= 0.001 < clopper_pearson(0, 3687).high
    with pytest.raises(ValueError, match="flagged <= accounts"):
        clopper_pearson(3, 2)
    frame = pd.DataFrame({"detector": ["d"] * 4, "kind": ["a", "a", "b", "b"], "flagged": [True, False, False, False]})
    table = rate_table(frame).set_index("kind")
    assert table.loc["all", "accounts"] == 4 and table.loc["all", "flagged"] == 1
    assert table.loc["a", "rate"] == 0.5 and table.loc["b", "high"] == pytest.approx(1 - 0.025 ** 0.5)


def test_a_population_holds_every_form_and_the_real_users_at_their_own_times():
    from recsec_lib.data.synthetic import make_synthetic_dataset
    from recsec_lib.seat.populations import benign_population

    dataset = make_synthetic_dataset(num_users=40, num_items=60, seed=0)
    real = [timing.TimedHistory(u, np.array([1, 2, 3, 4]), np.array([0.0, 0.0, 40.0, 9000.0])) for u in (1, 2)]
    population = benign_population(dataset, np.arange(10, 20), real, per_form=3, seed=0)
    accounts = population.accounts()
    assert set(accounts) == set(benign.EVERY_FORM) | {"ml100k", "ml100k-submit"}
    assert accounts["ml100k"] == 2 and accounts["growing"] == 3 and population.users == 10
    submit = np.array(population.traffic.kinds)[population.traffic.account] == "ml100k-submit"
    assert submit.sum() == 2 * 3 and population.traffic.time is not None  # seconds 0, 40, 9000 per user
    with pytest.raises(ValueError, match="unknown real-timing forms"):
        benign_population(dataset, np.arange(10, 12), real, real_forms=("ml20m",))
