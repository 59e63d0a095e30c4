"""Output defenses, the frontier's per-user figures and the bootstrap intervals, on lists checked by hand."""

from __future__ import annotations

import numpy as np
import pytest

from recsec_lib.attack.queries import AttackData
from recsec_lib.gro.frontier import (best_frontier_arm, per_user_agreement, per_user_hits, promoted_item,
                                         verdict)
from recsec_lib.recommend.intervals import bootstrap_interval
from recsec_lib.gro.output_defenses import (DefendedBox, OutputDefense, defend_attack_data, knowing_view,
                                        parse_output_defense)

LISTS = np.array([[1, 2, 3, 4, 5, 6]])  # one ranked list, best first
RNG = np.random.default_rng(0)


def test_top_k_serves_only_the_first_ranks():
    assert OutputDefense("top", 3).apply(LISTS, RNG).tolist() == [[1, 2, 3]]
    assert OutputDefense("top", 3).served_length(6) == 3
    with pytest.raises(ValueError, match="serves more ranks"):
        OutputDefense("top", 7).apply(LISTS, RNG)


def test_tail_reverse_and_shuffle_keep_the_head_exact():
    assert OutputDefense("tail-reverse", 2).apply(LISTS, RNG).tolist() == [[1, 2, 6, 5, 4, 3]]
    shuffled = OutputDefense("tail-shuffle", 2).apply(np.repeat(LISTS, 50, axis=0), RNG)  # [50, 6]
    assert (shuffled[:, :2] == [1, 2]).all()
    assert all(sorted(row[2:]) == [3, 4, 5, 6] for row in shuffled.tolist())
    assert len({tuple(row) for row in shuffled.tolist()}) > 1  # it does shuffle


def test_tail_resample_draws_outside_the_head_and_the_query():
    # catalogue 1..8; the query holds item 7; head = 1, 2 -> the tail is 4 distinct items of {3, 4, 5, 6, 8}
    served = OutputDefense("tail-resample", 2).apply(np.repeat(LISTS, 40, axis=0), RNG, num_items=8,
                                                     forbidden=np.full((40, 1), 7))
    assert (served[:, :2] == [1, 2]).all()
    for row in served.tolist():
        assert len(set(row[2:])) == 4 and set(row[2:]) <= {3, 4, 5, 6, 8}
    assert {item for row in served.tolist() for item in row[2:]} == {3, 4, 5, 6, 8}  # 8 does get drawn
    with pytest.raises(ValueError, match="num_items"):
        OutputDefense("tail-resample", 2).apply(LISTS, RNG)


def test_paper_baselines_keep_the_item_set():
    assert OutputDefense("reverse").apply(LISTS, RNG).tolist() == [[6, 5, 4, 3, 2, 1]]
    assert sorted(OutputDefense("random").apply(LISTS, RNG)[0].tolist()) == [1, 2, 3, 4, 5, 6]
    assert OutputDefense().apply(LISTS, RNG) is LISTS
    assert [OutputDefense(kind, size).keeps_item_set for kind, size in
            (("none", 0), ("random", 0), ("reverse", 0), ("top", 3), ("tail-shuffle", 2), ("tail-resample", 2))] == [
        True, True, True, False, True, False]


def test_parse_labels_and_errors_name_the_parameter():
    assert parse_output_defense("top:10") == OutputDefense("top", 10)
    assert parse_output_defense("tail-resample:10").label == "top-10 exact, tail resampled"
    assert parse_output_defense("reverse").spec == "reverse"
    with pytest.raises(ValueError, match="needs a size"):
        parse_output_defense("top")
    with pytest.raises(ValueError, match="kind must be one of"):
        parse_output_defense("shuffle-all")
    with pytest.raises(ValueError, match="'size'"):
        OutputDefense("tail-shuffle", 0)
    with pytest.raises(ValueError, match="'kind'"):
        OutputDefense("mix")


def _attack_data() -> AttackData:
    sequences = np.array([[7, 8]])  # one synthetic sequence of 2 queries: (7,) and (7, 8)
    answers = np.array([[[1, 2, 3, 4], [2, 3, 4, 5]]])  # [S=1, L=2, k=4]
    return AttackData(sequences, answers, "autoregressive", num_items=9)


def test_defend_attack_data_and_what_a_knowing_attacker_trains_on():
    data = _attack_data()
    reversed_tail = defend_attack_data(data, OutputDefense("tail-reverse", 2))
    assert reversed_tail.answers.tolist() == [[[1, 2, 4, 3], [2, 3, 5, 4]]]
    assert knowing_view(reversed_tail, OutputDefense("tail-reverse", 2)).answers.tolist() == [[[1, 2], [2, 3]]]
    backwards = defend_attack_data(data, OutputDefense("reverse"))
    assert knowing_view(backwards, OutputDefense("reverse")).answers.tolist() == data.answers.tolist()
    assert knowing_view(data, OutputDefense("top", 2)) is None  # it already trains on the K' it gets
    assert defend_attack_data(data, OutputDefense("top", 3)).answers.shape == (1, 2, 3)
    resampled = defend_attack_data(data, OutputDefense("tail-resample", 2), seed=1).answers  # [1, 2, 4]
    assert not {7} & set(resampled[0, 0, 2:].tolist()) and not {7, 8} & set(resampled[0, 1, 2:].tolist())


class _StubBox:
    """An undefended box that always answers 1..6 for a catalogue of 9 items."""

    defense, num_items, max_query_len, filter_seen, k = "none", 9, 5, True, 6

    def answer_batch(self, accounts, queries, partial=False):
        return np.repeat(LISTS, len(queries), axis=0)


def test_defended_box_serves_the_defended_list_and_never_the_query_items():
    box = DefendedBox(_StubBox(), OutputDefense("tail-resample", 2), seed=0)
    answers = box.answer_batch("a", [[7, 8], [9]])  # [2, 6]
    assert box.k == 6 and (answers[:, :2] == [1, 2]).all()
    assert not {7, 8} & set(answers[0, 2:].tolist()) and 9 not in answers[1, 2:]
    assert DefendedBox(_StubBox(), OutputDefense("top", 4)).answer_batch("a", [[7]]).tolist() == [[1, 2, 3, 4]]


def test_per_user_hits_agreement_and_promoted_item_by_hand():
    lists = np.array([[5, 6, 7], [1, 2, 3]])
    hr, ndcg = per_user_hits(lists, np.array([6, 9]), k=3)
    assert hr.tolist() == [1.0, 0.0] and ndcg == pytest.approx([1 / np.log2(3), 0.0])
    assert per_user_agreement(lists, np.array([[7, 5, 1], [4, 5, 6]]), k=3).tolist() == [2 / 3, 0.0]
    none = np.array([[2, 3], [3, 4]])
    served = np.array([[1, 2], [1, 3]])  # item 1 enters both lists
    assert promoted_item(served, none, num_items=4) == (1, 1.0, 0.0)
    assert promoted_item(none, none, num_items=4) == (3, 1.0, 1.0)  # no rise: the most served item


def test_interval_of_constants_collapses_and_a_drop_by_hand():
    arm, ref = np.full((3, 50), 0.5), np.full((3, 50), 1.0)
    mean = bootstrap_interval(arm, kind="mean")
    assert (mean.point, mean.low, mean.high) == pytest.approx((0.5, 0.5, 0.5))
    drop = bootstrap_interval(arm, ref, "drop")
    assert (drop.point, drop.low, drop.high) == pytest.approx((0.5, 0.5, 0.5)) and drop.excludes_zero
    assert bootstrap_interval(arm, ref, "ratio").point == pytest.approx(0.5)


def test_interval_spans_the_spread_over_seeds():
    # users agree, seeds do not: seed means 0.4 and 0.6 -> resampled means in {0.4, 0.5, 0.6}
    arm = np.stack([np.full(100, 0.4), np.full(100, 0.6)])
    interval = bootstrap_interval(arm, kind="mean", replicates=2000)
    assert interval.point == pytest.approx(0.5) and interval.low == pytest.approx(0.4)
    assert interval.high == pytest.approx(0.6)


def test_interval_over_users_matches_the_normal_approximation():
    values = np.random.default_rng(1).binomial(1, 0.3, size=4000).astype(float)  # one seed, 4,000 users
    interval = bootstrap_interval(values, kind="mean", replicates=2000)
    half = 1.96 * values.std() / np.sqrt(len(values))
    assert interval.low == pytest.approx(values.mean() - half, abs=0.004)
    assert interval.high == pytest.approx(values.mean() + half, abs=0.004)


def test_interval_errors_name_the_parameter():
    with pytest.raises(ValueError, match="'kind'"):
        bootstrap_interval([1.0], kind="median")
    with pytest.raises(ValueError, match="'reference'"):
        bootstrap_interval([1.0], kind="drop")
    with pytest.raises(ValueError, match="'reference' has 2 users"):
        bootstrap_interval([1.0], [1.0, 2.0], kind="drop")
    with pytest.raises(ValueError, match="'arm'"):
        bootstrap_interval(np.zeros((1, 1, 1)))


def test_verdict_reads_the_interval():
    assert verdict(0.01, 0.4) == "protects"
    assert verdict(-0.01, 0.4) == "no effect"
    assert verdict(-0.3, -0.1) == "helps the attacker"
    assert verdict(-1, 1, is_reference=True) == "reference"


def test_best_frontier_arm_counts_only_falls_outside_the_noise():
    import pandas as pd

    def row(arm, retention, fall, low, agr_fall=0.0, agr_low=-0.1, family="output"):
        return {"arm": arm, "family": family, "worst": True, "retention_test": retention,
                "surrogate_test_ndcg10_drop": fall, "surrogate_test_ndcg10_drop_low": low,
                "agr10_test_drop": agr_fall, "agr10_test_drop_low": agr_low}

    table = pd.DataFrame([row("None", 1.0, 0.0, -0.1, family="none"), row("noisy", 1.0, 0.5, -0.05),
                          row("small", 0.995, 0.1, 0.02), row("costly", 0.5, 0.9, 0.8)])
    best = best_frontier_arm(table)
    assert (best["arm"], best["fall"], best["target_met"]) == ("small", 0.1, False)
    table.loc[1, "surrogate_test_ndcg10_drop_low"] = 0.2
    assert best_frontier_arm(table)["target_met"] is True


def test_best_frontier_arm_never_picks_a_reference_arm():
    import pandas as pd

    def row(arm, family, agr_fall):
        return {"arm": arm, "family": family, "worst": True, "retention_test": 1.03,
                "surrogate_test_ndcg10_drop": 0.0, "surrogate_test_ndcg10_drop_low": -0.05,
                "agr10_test_drop": agr_fall, "agr10_test_drop_low": agr_fall - 0.02}

    # The λ = 0 control's Agr@10 moved by fine-tuning alone (seen on a 1-epoch BERT4Rec): not a defense.
    table = pd.DataFrame([row("None", "none", 0.0), row("GRO λ=0 (control)", "gro-control", 0.26),
                          row("top-10 only", "output", 0.07)])
    assert best_frontier_arm(table)["arm"] == "top-10 only"
    assert best_frontier_arm(table[table["family"] != "output"])["arm"] is None
