"""Output defenses (one registry), what each tells a knowing attacker, and the per-user figures, by hand."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import pandas as pd
import pytest

from recsec_lib.arena.matrix import promoted_item, verdict
from recsec_lib.arena.tables import best_frontier_arm
from recsec_lib.attack.queries import AttackData
from recsec_lib.attack.views import Knowledge
from recsec_lib.defenses.output import (OUTPUT_DEFENSES, DefendedBox, OutputDefense, parse_output_defense,
                                        serve_attack_data)
from recsec_lib.recommend.intervals import bootstrap_interval
from recsec_lib.recommend.metrics import per_user_agreement, per_user_hits

LISTS = np.array([[1, 2, 3, 4, 5, 6]])  # one ranked list, best first
RNG = np.random.default_rng(0)


def test_every_defense_is_registered_in_table_order():
    assert OUTPUT_DEFENSES.names() == ("none", "top", "tail-shuffle", "tail-reverse", "tail-resample", "random",
                                       "reverse")


def test_top_k_serves_only_the_first_ranks():
    assert parse_output_defense("top:3").apply(LISTS, RNG).tolist() == [[1, 2, 3]]
    assert parse_output_defense("top:3").served_length(6) == 3
    with pytest.raises(ValueError, match="needs lists of at least 7 ranks"):
        parse_output_defense("top:7").apply(LISTS, RNG)


def test_tail_reverse_and_shuffle_keep_the_head_exact():
    assert parse_output_defense("tail-reverse:2").apply(LISTS, RNG).tolist() == [[1, 2, 6, 5, 4, 3]]
    shuffled = parse_output_defense("tail-shuffle:2").apply(np.repeat(LISTS, 50, axis=0), RNG)  # [50, 6]
    assert (shuffled[:, :2] == [1, 2]).all()
    assert all(sorted(row[2:]) == [3, 4, 5, 6] for row in shuffled.tolist())
    assert len({tuple(row) for row in shuffled.tolist()}) > 1  # it does shuffle


def test_tail_resample_draws_outside_the_head_and_the_query():
    # catalogue 1..8; the query holds item 7; head = 1, 2 -> the tail is 4 distinct items of {3, 4, 5, 6, 8}
    served = parse_output_defense("tail-resample:2").apply(np.repeat(LISTS, 40, axis=0), RNG, num_items=8,
                                                           forbidden=np.full((40, 1), 7))
    assert (served[:, :2] == [1, 2]).all()
    for row in served.tolist():
        assert len(set(row[2:])) == 4 and set(row[2:]) <= {3, 4, 5, 6, 8}
    assert {item for row in served.tolist() for item in row[2:]} == {3, 4, 5, 6, 8}  # 8 does get drawn
    with pytest.raises(ValueError, match="num_items"):
        parse_output_defense("tail-resample:2").apply(LISTS, RNG)


def test_paper_baselines_keep_the_item_set():
    assert parse_output_defense("reverse").apply(LISTS, RNG).tolist() == [[6, 5, 4, 3, 2, 1]]
    assert sorted(parse_output_defense("random").apply(LISTS, RNG)[0].tolist()) == [1, 2, 3, 4, 5, 6]
    assert parse_output_defense("none").apply(LISTS, RNG).tolist() == LISTS.tolist()


def test_what_each_defense_tells_the_attacker_who_knows_it():
    k = 100
    know = {spec: parse_output_defense(spec).knowledge(k) for spec in
            ("none", "top:10", "tail-shuffle:10", "tail-resample:10", "random", "reverse")}
    assert know["none"] == Knowledge(100, 100, spec="none")
    assert (know["top:10"].served_len, know["top:10"].exact_ranks) == (10, 10)
    assert know["tail-shuffle:10"].exact_ranks == 10 and know["tail-shuffle:10"].keeps_item_set
    assert know["tail-resample:10"].exact_ranks == 10 and not know["tail-resample:10"].keeps_item_set
    assert know["random"].order_free and know["random"].exact_ranks == 0
    assert know["reverse"].reversed and know["reverse"].keeps_item_set


def test_parse_labels_and_errors_name_the_parameter():
    assert parse_output_defense("top:10") == OUTPUT_DEFENSES.build("top", size=10)
    assert parse_output_defense("tail-resample:10").label == "top-10 exact, tail resampled"
    assert parse_output_defense("reverse").spec == "reverse" and parse_output_defense("top:5").spec == "top:5"
    with pytest.raises(ValueError, match="needs a size"):
        parse_output_defense("top")
    with pytest.raises(ValueError, match=r"unknown output defense 'shuffle-all'; did you mean 'tail-shuffle'\? \(known: none, top"):
        parse_output_defense("shuffle-all")
    with pytest.raises(ValueError, match="takes no size"):
        parse_output_defense("random:3")
    with pytest.raises(ValueError, match="'size'"):
        parse_output_defense("tail-shuffle:0")


def test_serve_attack_data_transforms_collected_answers():
    data = AttackData(np.array([[7, 8]]), np.array([[[1, 2, 3, 4], [2, 3, 4, 5]]]), "autoregressive", num_items=9)
    assert serve_attack_data(data, parse_output_defense("tail-reverse:2")).answers.tolist() == [
        [[1, 2, 4, 3], [2, 3, 5, 4]]]
    assert serve_attack_data(data, parse_output_defense("top:3")).answers.shape == (1, 2, 3)
    assert serve_attack_data(data, parse_output_defense("none")) is data
    resampled = serve_attack_data(data, parse_output_defense("tail-resample:2"), seed=1).answers  # [1, 2, 4]
    assert not {7} & set(resampled[0, 0, 2:].tolist()) and not {7, 8} & set(resampled[0, 1, 2:].tolist())


class _StubBox:
    """An undefended box that always answers 1..6 for a catalogue of 9 items."""

    num_items, max_query_len, filter_seen, k = 9, 5, True, 6

    def answer_batch(self, accounts, queries, partial=False):
        return np.repeat(LISTS, len(queries), axis=0)


def test_defended_box_serves_the_defended_list_and_never_the_query_items():
    box = DefendedBox(_StubBox(), parse_output_defense("tail-resample:2"), seed=0)
    answers = box.answer_batch("a", [[7, 8], [9]])  # [2, 6]
    assert box.k == 6 and (answers[:, :2] == [1, 2]).all()
    assert not {7, 8} & set(answers[0, 2:].tolist()) and 9 not in answers[1, 2:]
    assert DefendedBox(_StubBox(), parse_output_defense("top:4")).answer_batch("a", [[7]]).tolist() == [[1, 2, 3, 4]]


def test_a_new_output_defense_is_one_class_in_one_file():
    """The toy addition: serve every other rank (a defense nobody should deploy). One class; nothing else."""
    from recsec_lib.defenses.output.base import SizedDefense

    @OUTPUT_DEFENSES.register
    @dataclass(frozen=True)
    class EveryOther(SizedDefense):
        name: ClassVar[str] = "toy-every-other"

        @property
        def label(self) -> str:
            return f"every other rank of the top {2 * self.size}"

        def served_length(self, k: int) -> int:
            super().served_length(2 * self.size)
            return self.size

        def knowledge(self, k: int) -> Knowledge:
            return Knowledge(served_len=self.size, exact_ranks=1, keeps_item_set=False, spec=self.spec)

        def serve(self, lists, rng, num_items, forbidden):
            return lists[:, : 2 * self.size : 2]

    try:
        defense = parse_output_defense("toy-every-other:3")
        assert defense.apply(LISTS, RNG).tolist() == [[1, 3, 5]] and defense.spec == "toy-every-other:3"
        assert DefendedBox(_StubBox(), defense).k == 3
    finally:
        OUTPUT_DEFENSES.unregister("toy-every-other")


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


def _row(arm, retention, fall, low, agr_fall=0.0, agr_low=-0.1, family="output"):
    return {"arm": arm, "family": family, "worst": True, "worst_agr": True, "retention_test": retention,
            "surrogate_test_ndcg10_drop": fall, "surrogate_test_ndcg10_drop_low": low,
            "agr10_test_drop": agr_fall, "agr10_test_drop_low": agr_low}


def test_best_frontier_arm_counts_only_falls_outside_the_noise():
    table = pd.DataFrame([_row("None", 1.0, 0.0, -0.1, family="none"), _row("noisy", 1.0, 0.5, -0.05),
                          _row("small", 0.995, 0.1, 0.02), _row("costly", 0.5, 0.9, 0.8)])
    best = best_frontier_arm(table)
    assert (best["arm"], best["fall"], best["target_met"]) == ("small", 0.1, False)
    table.loc[1, "surrogate_test_ndcg10_drop_low"] = 0.2
    assert best_frontier_arm(table)["target_met"] is True


def test_best_frontier_arm_never_picks_a_measurement():
    # The λ = 0 control's Agr@10 moved by fine-tuning alone (seen on a 1-epoch BERT4Rec): not a defense;
    # nor are a second seed of the control or a utility-matched null.
    table = pd.DataFrame([_row("None", 1.0, 0.0, -0.05, family="none"),
                          _row("GRO λ=0 (control)", 1.03, 0.0, -0.05, 0.26, 0.24, family="gro-control"),
                          _row("control seed +1", 1.03, 0.0, -0.05, 0.3, 0.28, family="control-replica"),
                          _row("epoch-3 null", 1.0, 0.4, 0.3, family="null"),
                          _row("top-10 only", 1.0, 0.0, -0.05, 0.07, 0.05)])
    assert best_frontier_arm(table)["arm"] == "top-10 only"
    assert best_frontier_arm(table[table["family"] != "output"])["arm"] is None
