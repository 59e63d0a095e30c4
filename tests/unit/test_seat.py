"""SEAT detection: session relation, pair counting, calibration, baselines, encoder, traffic.

Hand-made logs use 2-D unit encodings so every distance can be checked on paper.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from recsec_lib.data.synthetic import make_synthetic_dataset
from recsec_lib.attack.querylog import QueryRecord
from recsec_lib.attack import traffic as tr
from recsec_lib.attack.generators.base import steer_walks
from recsec_lib.seat import benign
from recsec_lib.seat.traffic import UserSplit, split_users
from recsec_lib.seat.baselines import PradaMonitor, VolumeCapMonitor, shapiro_francia
from recsec_lib.seat.calibration import Calibration, limit_for_fpr
from recsec_lib.seat.detectors import calibrate
from recsec_lib.seat.statistics import SOURCES, MonitorContext, benign_statistics
from recsec_lib.seat.encoder import (EncoderConfig, EncoderTraining, SimilarityEncoder, adversarial_edit_step,
                                     adversarial_positives, apply_edit, encode_sequences, load_encoder,
                                     random_edits, save_encoder, train_encoder)
from recsec_lib.seat.evaluation import accounts_sweep, evaluate, roc_auc, roc_curve
from recsec_lib.seat.monitor import SeatMonitor, continues_session
from recsec_lib.seat.replay import featurize, replay

@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """The encoder's matrices are tiny: one thread avoids contention on the shared 2-core machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# --- the session relation --------------------------------------------------------------


def test_continues_session_cases():
    assert continues_session((1, 2, 3), (1, 2, 3))  # refresh
    assert continues_session((1, 2), (1, 2, 3))  # one new interaction
    assert continues_session((1, 2, 3), (1, 2))  # went back
    assert not continues_session((1, 2, 3), (1, 5, 3))  # an edit is another history
    assert not continues_session((4,), (1, 2))
    window = (1, 2, 3, 4, 5, 6)
    assert continues_session(window, (2, 3, 4, 5, 6, 7), max_shift=4, min_overlap=5)  # window slid by 1
    assert continues_session(window, (3, 4, 5, 6, 7, 8), max_shift=4, min_overlap=4)  # slid by 2
    assert not continues_session(window, (3, 4, 5, 6, 7, 8), max_shift=4, min_overlap=5)  # overlap 4 < 5
    assert not continues_session(window, (3, 4, 5, 6, 7, 8), max_shift=1, min_overlap=1)  # shift 2 > 1


# --- pair counting and flagging on a hand-made log ---------------------------------------

E_X = np.array([1.0, 0.0], dtype=np.float32)
E_Y = np.array([0.0, 1.0], dtype=np.float32)
E_NEAR_Y = np.array([0.28, 0.96], dtype=np.float32)  # |E_NEAR_Y - E_Y| = sqrt(0.28^2 + 0.04^2) = 0.283


def test_pair_counting_and_flagging_on_hand_made_log():
    monitor = SeatMonitor(threshold=0.5, limit=2, dim=2)
    log = [
        ((1, 2), E_X),  # session A, tip X; nothing to compare with
        ((1, 2, 3), E_Y),  # continues A, tip becomes Y
        ((1, 2, 3), E_Y),  # refresh of A: same session, no pair
        ((7, 8), E_NEAR_Y),  # session B: 0.283 from A's tip -> pair (A, B), count 1
        ((7, 8, 9), E_Y),  # continues B; (A, B) already counted -> still 1
        ((20,), E_X),  # session C: 1.414 from A and from B -> no pair
        ((20, 21), E_Y),  # continues C: 0 from A and B -> pairs (A, C), (B, C): count 3 > 2 -> flagged
    ]
    flags = [monitor.observe("acct", q, e, index=100 + i) for i, (q, e) in enumerate(log)]
    state = monitor.accounts["acct"]
    assert flags == [False] * 6 + [True]
    assert (state.count, state.sessions, state.queries) == (3, 3, 7)
    assert (state.flagged_at, state.flagged_index) == (7, 106)


def test_growing_prefixes_and_refreshes_never_count():
    monitor = SeatMonitor(threshold=2.1, limit=0, dim=2)  # every distance is below 2.1
    history = list(range(1, 31))
    for t in range(1, 31):
        for _ in range(3):  # each query sent three times (refreshes)
            monitor.observe("user", history[:t], E_X if t % 2 else E_Y)
    assert monitor.accounts["user"].count == 0
    assert monitor.accounts["user"].sessions == 1
    assert monitor.accounts["user"].flagged_at is None


def test_accounts_are_counted_separately_and_memory_is_bounded():
    monitor = SeatMonitor(threshold=0.5, limit=None, dim=2, max_sessions=2)
    for i in range(5):  # five unrelated one-item sessions, all with the same encoding
        monitor.observe("a", (100 + i,), E_X)
    monitor.observe("b", (1,), E_X)
    state = monitor.accounts["a"]
    # session i pairs with the (at most 1) other remembered session: 0 + 1 + 1 + 1 + 1
    assert state.count == 4 and state.sessions == 5
    assert len(state.tips) == 2 and state.bits.shape[0] == 2 and state.encodings.shape == (2, 2)
    assert monitor.accounts["b"].count == 0


def test_monitor_rejects_bad_settings():
    with pytest.raises(ValueError, match="threshold"):
        SeatMonitor(threshold=-1.0, limit=1, dim=2)
    with pytest.raises(ValueError, match="limit"):
        SeatMonitor(threshold=0.5, limit=-1, dim=2)
    with pytest.raises(ValueError, match="max_sessions"):
        SeatMonitor(threshold=0.5, limit=1, dim=2, max_sessions=0)


# --- baselines ----------------------------------------------------------------------------


def test_volume_cap_flags_after_limit():
    monitor = VolumeCapMonitor(limit=3)
    flags = [monitor.observe("a", (i,)) for i in range(1, 6)]
    assert flags == [False, False, False, True, True]
    assert monitor.accounts["a"].flagged_at == 4


def test_shapiro_francia_values():
    from statistics import NormalDist

    n = 20
    normal_scores = [NormalDist().inv_cdf((i - 0.375) / (n + 0.25)) for i in range(1, n + 1)]
    assert shapiro_francia(normal_scores) == pytest.approx(1.0)  # perfectly "normal" sample
    assert shapiro_francia([0.5] * 10) == 0.0  # constant: maximally non-normal
    skewed = [0.0] * 18 + [1.0, 5.0]
    assert shapiro_francia(skewed) < 0.6
    with pytest.raises(ValueError, match="at least 3"):
        shapiro_francia([1.0, 2.0])


def test_prada_flags_constant_distances_and_validates():
    monitor = PradaMonitor(limit=0.5, min_queries=5, test_every=1)
    for i in range(10):  # the same query again and again: every min distance is 0
        monitor.observe("a", (1,), E_X)
    assert monitor.accounts["a"].flagged_at is not None
    with pytest.raises(ValueError, match="min_queries"):
        PradaMonitor(limit=0.5, min_queries=2)


# --- calibration ---------------------------------------------------------------------------


def test_limit_for_fpr_by_hand():
    # sorted descending 9, 5, 1, 0, 0; fpr 0.2 of 5 accounts lets floor(1.0) = 1 exceed the limit
    assert limit_for_fpr([0, 5, 1, 9, 0], 0.2) == (5.0, 0.2)
    assert limit_for_fpr([0, 5, 1, 9, 0], 0.0) == (9.0, 0.0)
    assert limit_for_fpr([0, 0, 0], 0.5) == (0.0, 0.0)
    with pytest.raises(ValueError, match="zero accounts"):
        limit_for_fpr([], 0.1)
    with pytest.raises(ValueError, match="fpr"):
        limit_for_fpr([1.0], 1.5)


def test_monitor_errors():
    with pytest.raises(ValueError, match=r"unknown detector 'magic' \(known: seat-pairs, seat"):
        calibrate("magic", None, 0.01)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="threshold"):
        SOURCES["seat"].monitor({"pairs": 1.0}, MonitorContext(threshold=None, dim=2))


def test_user_split_is_disjoint_and_checked():
    split = split_users(100, 0.5, 0.25)
    assert (len(split.encoder), len(split.calibration), len(split.test)) == (50, 25, 25)
    assert split.encoder[-1] < split.calibration[0] and split.calibration[-1] < split.test[0]
    with pytest.raises(ValueError, match="overlap"):
        UserSplit(np.arange(5), np.arange(4, 8), np.arange(8, 10))
    with pytest.raises(ValueError, match="empty"):
        UserSplit(np.arange(5), np.arange(0), np.arange(8, 10))
    with pytest.raises(ValueError, match="sum to less than 1"):
        split_users(100, 0.8, 0.3)


# --- traffic --------------------------------------------------------------------------------


def test_benign_forms_by_hand():
    histories = [np.array([1, 2, 3]), np.array([4, 5, 6, 7]), np.array([8, 9, 10, 11, 12])]
    traffic = benign.benign_traffic(histories, [10, 11, 12], ["growing"], max_len=2, seed=0)
    assert traffic.names == ("benign/growing/10", "benign/growing/11", "benign/growing/12")
    first = [traffic.query(j) for j in range(traffic.num_queries) if traffic.account[j] == 0]
    assert first == [(1,), (1, 2), (2, 3)]  # at most max_len = 2 most recent items
    refresh = benign.benign_traffic(histories, [10, 11, 12], ["refresh"], max_len=5, seed=0,
                                shape=benign.BenignShape(refresh_mean=2.0))
    assert refresh.num_queries > 12  # 3 + 4 + 5 distinct queries, repeated
    house = benign.benign_traffic(histories, [10, 11, 12], ["household"], max_len=5, seed=0,
                              shape=benign.BenignShape(household_sizes=(3,)))
    assert len(house.names) == 1 and house.num_queries == 12
    short = benign.benign_traffic(histories, [10, 11, 12], ["short"], max_len=5, seed=0,
                              shape=benign.BenignShape(short_range=(2, 2)))
    assert short.num_queries == 6
    with pytest.raises(ValueError, match="unknown benign forms"):
        benign.benign_traffic(histories, [10, 11, 12], ["bursty"], max_len=5, seed=0)


def test_attack_traffic_and_contiguous_split():
    walks = [np.array([1, 2, 3]), np.array([4, 5, 6])]
    traffic = tr.attack_traffic(walks, max_len=10, name="att", walks_per_account=1)
    assert traffic.names == ("att/0", "att/1")
    assert [traffic.query(j) for j in range(3)] == [(1,), (1, 2), (1, 2, 3)]
    split = traffic.split_contiguous(3, "n3")
    assert split.account.tolist() == [0, 0, 1, 1, 2, 2]
    with pytest.raises(ValueError, match="num_accounts"):
        traffic.split_contiguous(0, "x")


def test_traffic_from_records_folds_prefix_chains():
    records = [QueryRecord("a", 0, (1,), None), QueryRecord("a", 1, (1, 2), None),
               QueryRecord("b", 2, (9,), None), QueryRecord("a", 3, (1, 2), None),
               QueryRecord("a", 4, (5, 6), None)]
    traffic = tr.traffic_from_records(records, max_len=10)
    assert traffic.names == ("a", "b")
    assert [traffic.query(j) for j in range(5)] == [(1,), (1, 2), (9,), (1, 2), (5, 6)]
    assert len(traffic.sources) == 3  # chain (1, 2), chain (9,), chain (5, 6)
    with pytest.raises(ValueError, match="empty"):
        tr.traffic_from_records([], max_len=10)


# --- encoder ---------------------------------------------------------------------------------


def test_apply_edit_by_hand():
    assert apply_edit([1, 2, 3], "replace", 1, 9) == [1, 9, 3]
    assert apply_edit([1, 2, 3], "insert", 3, 9) == [1, 2, 3, 9]
    assert apply_edit([1, 2, 3], "delete", 0, 0) == [2, 3]
    assert apply_edit([4], "delete", 0, 7) == [7]  # never empties a sequence
    with pytest.raises(ValueError, match="edit kind"):
        apply_edit([1], "swap", 0, 1)
    with pytest.raises(ValueError, match="position"):
        apply_edit([1], "replace", 5, 1)


def test_adversarial_step_picks_the_farthest_candidate():
    torch.manual_seed(0)
    encoder = SimilarityEncoder(EncoderConfig(num_items=30, window=8, dim=8, hidden=16))
    seqs = [[1, 2, 3, 4], [5, 6, 7], [8, 9, 10, 11, 12]]
    anchors = torch.as_tensor(encode_sequences(encoder, seqs))
    chosen, distances = adversarial_edit_step(encoder, anchors, seqs, num_candidates=6,
                                              rng=np.random.default_rng(3))
    # the same candidates again (same seed), measured independently
    rng = np.random.default_rng(3)
    for row, seq in enumerate(seqs):
        candidates = random_edits(seq, 6, 30, rng)
        cand_dist = np.linalg.norm(encode_sequences(encoder, candidates) - anchors[row].numpy(), axis=1)
        assert distances[row] == pytest.approx(cand_dist.max(), abs=1e-5)
        assert chosen[row] == candidates[int(cand_dist.argmax())]


def test_adversarial_positives_are_farther_than_random_edits():
    torch.manual_seed(1)
    encoder = SimilarityEncoder(EncoderConfig(num_items=40, window=10, dim=8, hidden=16))
    rng = np.random.default_rng(0)
    seqs = [rng.integers(1, 41, size=6).tolist() for _ in range(40)]
    anchors = encode_sequences(encoder, seqs)
    adversarial = adversarial_positives(encoder, seqs, [2] * 40, num_candidates=8, rng=np.random.default_rng(1))
    rng = np.random.default_rng(2)
    random_two = [random_edits(random_edits(s, 1, 40, rng)[0], 1, 40, rng)[0] for s in seqs]
    adv_dist = np.linalg.norm(encode_sequences(encoder, adversarial) - anchors, axis=1).mean()
    rand_dist = np.linalg.norm(encode_sequences(encoder, random_two) - anchors, axis=1).mean()
    assert adv_dist > rand_dist


def test_encoder_training_lowers_loss_and_round_trips(tmp_path):
    dataset = make_synthetic_dataset(num_users=80, num_items=40)
    config = EncoderConfig(num_items=40, window=10, dim=16, hidden=32)
    encoder, losses = train_encoder([dataset.sequence(u) for u in range(80)], config,
                                    EncoderTraining(steps=40, batch_size=32, seed=0), progress=False)
    assert losses[-1] < losses[0]
    path = tmp_path / "enc.pt"
    save_encoder(encoder, path)
    again = load_encoder(path)
    seqs = [dataset.sequence(u)[:8].tolist() for u in range(5)]
    assert np.allclose(encode_sequences(again, seqs), encode_sequences(encoder, seqs))
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_encoder(tmp_path / "missing.pt")
    torch.save({"something": 1}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="not a SEAT encoder"):
        load_encoder(tmp_path / "other.pt")


def test_encoder_settings_validate():
    with pytest.raises(ValueError, match="dim"):
        EncoderConfig(num_items=10, dim=0)
    with pytest.raises(ValueError, match="batch_size"):
        EncoderTraining(batch_size=1)


# --- calibrated detection on synthetic data -------------------------------------------------


@pytest.fixture(scope="module")
def synthetic_setup():
    """A tiny world: encoder, calibration and test accounts from disjoint users, a stub target."""
    dataset = make_synthetic_dataset(num_users=300, num_items=80, seed=0)
    split = split_users(dataset.num_users, 0.4, 0.3)
    encoder, _ = train_encoder([dataset.sequence(int(u))[:-2] for u in split.encoder],
                               EncoderConfig(num_items=80, window=20, dim=16, hidden=32),
                               EncoderTraining(steps=60, batch_size=64, seed=0), progress=False)
    histories = lambda users: [dataset.sequence(int(u)) for u in users]  # noqa: E731
    cal = benign.benign_traffic(histories(split.calibration), split.calibration.tolist(), benign.BASE_FORMS, 50, seed=1)
    test = benign.benign_traffic(histories(split.test), split.test.tolist(), benign.BASE_FORMS, 50, seed=2)
    cal_features = featurize(cal, encoder, 80)
    popular = np.argsort(-dataset.item_popularity()[1:]) + 1  # all items, most popular first

    class PopularBox:  # stub target: the 5 most popular items not in the query
        num_items, max_query_len, k = 80, 50, 5

        def answer_batch(self, account, seqs):
            return np.stack([[i for i in popular if i not in row][:5] for row in seqs])

    walks, _ = steer_walks(PopularBox(), ["a"] * 60, np.random.default_rng(5).integers(1, 81, size=60), 15,
                           np.random.default_rng(5))
    walks = list(walks)
    return dict(dataset=dataset, split=split, encoder=encoder, cal=cal, test=test, cal_features=cal_features,
                walks=walks)


def test_calibration_never_sees_test_accounts(synthetic_setup, monkeypatch):
    import recsec_lib.seat.statistics as replay_module  # the sources replay through the name it imported

    seen: list[str] = []
    original = replay_module.replay

    def spy(monitor, traffic, *args):
        seen.extend(traffic.names)
        return original(monitor, traffic, *args)

    monkeypatch.setattr(replay_module, "replay", spy)
    s = synthetic_setup
    calibration = calibrate("seat", benign_statistics(s["cal"], s["cal_features"], num_items=80), 0.01)
    assert seen and set(seen) <= set(s["cal"].names)
    assert not set(seen) & set(s["test"].names)
    assert calibration.accounts == frozenset(s["cal"].names)
    # the frozen calibration refuses traffic containing a calibration account
    with pytest.raises(ValueError, match="used to calibrate"):
        evaluate(calibration, s["cal"], s["cal_features"])
    with pytest.raises(Exception):  # frozen: cannot be edited after calibration
        calibration.limit = 1e9  # type: ignore[misc]


def test_benign_prefix_and_refresh_accounts_stay_unflagged_attack_is_flagged(synthetic_setup):
    s = synthetic_setup
    calibration = calibrate("seat-pairs", benign_statistics(s["cal"], s["cal_features"], num_items=80), 0.01)
    assert isinstance(calibration, Calibration) and calibration.calibration_fpr <= 0.01
    test = s["test"]
    outcomes = evaluate(calibration, test, featurize(test, s["encoder"], 80), num_items=80)
    for form in ("growing", "refresh"):
        accounts = [o for o in outcomes if o.kind == form]
        assert accounts and all(o.flagged_at is None and o.score == 0 for o in accounts)
    attack = tr.attack_traffic(s["walks"], max_len=50, name="ar")
    attack_outcomes = evaluate(calibration, attack, featurize(attack, s["encoder"], 80), num_items=80)
    assert len(attack_outcomes) == 1 and attack_outcomes[0].flagged_at is not None
    assert attack_outcomes[0].flagged_at < attack.num_queries  # caught before the end


def test_accounts_sweep_and_volume_cap(synthetic_setup):
    s = synthetic_setup
    attack = tr.attack_traffic(s["walks"], max_len=50, name="ar")  # 60 walks x 15 queries = 900
    features = featurize(attack, s["encoder"], 80)
    volume = Calibration("volume", limits={"volume": 100.0}, threshold=None, target_fpr=0.01, calibration_fpr=0.0,
                         num_accounts=1, accounts=frozenset({"x"}))
    needed, table = accounts_sweep(volume, attack, features, grid=(1, 2, 5, 10, 20), refine=False)
    assert needed == 10  # 900 / 10 = 90 queries per account <= 100; 900 / 5 = 180 > 100
    assert table["accounts"].tolist() == [1, 2, 5, 10]
    # bisection between 5 (flagged) and 10 (clean): 900 / 9 = 100 queries is the first N with none over 100
    needed, table = accounts_sweep(volume, attack, features, grid=(1, 2, 5, 10, 20))
    assert needed == 9
    assert table["accounts"].tolist() == [1, 2, 5, 7, 8, 9, 10]


def test_roc_curve_by_hand():
    curve = roc_curve([0, 1], [1, 2])
    points = set(zip(curve["fpr"], curve["tpr"]))
    assert points == {(1.0, 1.0), (0.5, 1.0), (0.0, 0.5), (0.0, 0.0)}
    assert roc_auc(curve) == pytest.approx(0.875)
    with pytest.raises(ValueError, match="at least one"):
        roc_curve([], [1])


def test_replay_reports_accounts_without_queries():
    traffic = tr.attack_traffic([np.array([1, 2])], max_len=5, name="a")
    traffic = traffic.with_accounts(np.array([0, 0]), ["a/0", "idle"], ["a", "a"])
    outcomes = replay(VolumeCapMonitor(limit=None), traffic, None, None)
    assert [(o.name, o.queries) for o in outcomes] == [("a/0", 2), ("idle", 0)]


def test_prefix_bag_features_match_the_windowed_ones():
    from recsec_lib.seat.baselines import bag_of_items_features, bag_of_items_prefix_features
    from recsec_lib.recommend.sequences import pad_left

    sources = [np.array([3, 1, 4, 1, 5]), np.array([9, 2, 6])]
    keys = np.array([[0, 1], [0, 5], [1, 3], [0, 4], [1, 1]])
    windows = pad_left([sources[s][max(0, e - 3):e] for s, e in keys], 3)
    expected = bag_of_items_features(windows, num_items=10, dim=8, seed=1)
    got = bag_of_items_prefix_features(sources, keys, max_len=3, num_items=10, dim=8, seed=1)
    assert np.allclose(got, expected, atol=1e-5)


def test_stage_reads_attack_logs_and_skips_other_files(tmp_path):
    from recsec_lib.attack.querylog import save_log
    from recsec_lib.seat.inputs import logged_attacks as _logged_attacks

    save_log([QueryRecord("x", 0, (1,), (2, 3)), QueryRecord("x", 1, (1, 2), (3, 4))], tmp_path / "log.jsonl")
    np.savez(tmp_path / "pairs.npz", sequences=np.zeros((2, 2)))  # collected pairs, not a query log
    (tmp_path / "broken.jsonl").write_text("{not json\n")
    found = _logged_attacks(tmp_path, max_len=10)
    assert [name for name, _ in found] == ["log.jsonl"]
    assert found[0][1].num_queries == 2 and len(found[0][1].sources) == 1
    assert _logged_attacks(tmp_path / "missing", max_len=10) == []
