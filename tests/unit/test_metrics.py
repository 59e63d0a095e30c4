"""Ranking metrics on a 4-item catalogue small enough to check on paper."""

import math

import numpy as np
import pytest
import torch

from recsec_lib.recommend.metrics import (agreement_at_k, rank_of_targets, ranking_metrics, sample_negatives_for_eval,
                                sampled_rank_of_targets, topk_items)

NEG = -math.inf
# Items 1..4; column 0 is padding. Row 0 ranks the items 3 > 1 > 4 > 2, row 1 ranks 2 > 4 > 1 > 3.
SCORES = torch.tensor([
    [NEG, 0.5, 0.1, 0.9, 0.3],
    [NEG, 0.2, 0.8, 0.0, 0.4],
])


def test_rank_of_targets_full_ranking():
    # Row 0: target 4 has items 3 and 1 above it -> rank 2. Row 1: target 2 is first -> rank 0.
    assert rank_of_targets(SCORES, torch.tensor([4, 2])).tolist() == [2, 0]


def test_rank_of_targets_filters_seen_items_but_never_the_target():
    # Row 0 has seen item 3 (and padding 0): only item 1 is left above target 4 -> rank 1.
    # Row 1 has seen items 2 and 4; its target 1 then beats everything left (item 3) -> rank 0.
    exclude = torch.tensor([[0, 3], [2, 4]])
    assert rank_of_targets(SCORES, torch.tensor([4, 1]), exclude).tolist() == [1, 0]
    # A target inside the history is still ranked (row 0: target 3 seen, nothing above it).
    assert rank_of_targets(SCORES, torch.tensor([3, 3]), torch.tensor([[3, 1], [0, 0]])).tolist() == [0, 3]


def test_ties_count_against_the_target():
    flat = torch.tensor([[NEG, 1.0, 1.0, 1.0, 1.0]])
    assert rank_of_targets(flat, torch.tensor([2])).tolist() == [3]


def test_ranking_metrics_by_hand():
    # Ranks 0 and 2: HR@1 = 1/2, HR@5 = 1; NDCG@5 = (1/log2(2) + 1/log2(4)) / 2 = (1 + 0.5) / 2;
    # NDCG@1 = (1 + 0) / 2; MRR = (1 + 1/3) / 2.
    metrics = ranking_metrics(torch.tensor([0, 2]), ks=(1, 5))
    assert metrics["hr@1"] == pytest.approx(0.5)
    assert metrics["hr@5"] == pytest.approx(1.0)
    assert metrics["ndcg@1"] == pytest.approx(0.5)
    assert metrics["ndcg@5"] == pytest.approx(0.75)
    assert metrics["mrr"] == pytest.approx(2 / 3)
    assert set(ranking_metrics([1], ks=(1,), prefix="unfiltered_")) == {"unfiltered_hr@1", "unfiltered_ndcg@1",
                                                                        "unfiltered_mrr"}


def test_topk_items_skips_padding_and_seen():
    assert topk_items(SCORES, 2).tolist() == [[3, 1], [2, 4]]
    assert topk_items(SCORES, 2, exclude=torch.tensor([[3, 0], [2, 1]])).tolist() == [[1, 4], [4, 3]]


def test_agreement_at_k_by_hand():
    a = np.array([[1, 2, 3], [4, 3, 2]])
    b = np.array([[3, 1, 4], [1, 2, 3]])
    # k=1: row 0 {1} vs {3} -> 0, row 1 {4} vs {1} -> 0. k=2: {1,2}&{3,1} = 1, {4,3}&{1,2} = 0 -> (1/2 + 0)/2.
    # k=3: {1,2,3}&{3,1,4} = 2, {4,3,2}&{1,2,3} = 2 -> 2/3.
    assert agreement_at_k(a, b, 1) == pytest.approx(0.0)
    assert agreement_at_k(a, b, 2) == pytest.approx(0.25)
    assert agreement_at_k(a, b, 3) == pytest.approx(2 / 3)
    assert agreement_at_k(torch.tensor(a), torch.tensor(a), 3) == pytest.approx(1.0)


def test_sampled_rank_and_negatives():
    # Row 0: target 1 (0.5) vs negatives 2 (0.1), 4 (0.3) -> rank 0; row 1: target 3 (0.0) vs 1, 4 -> rank 2.
    ranks = sampled_rank_of_targets(SCORES, torch.tensor([1, 3]), torch.tensor([[2, 4], [1, 4]]))
    assert ranks.tolist() == [0, 2]
    negatives = sample_negatives_for_eval(4, [[1], [2, 3]], [2, 4], num_negatives=1, seed=0)
    assert negatives[0, 0] in (3, 4) and negatives[1, 0] == 1


@pytest.mark.parametrize("call, message", [
    (lambda: rank_of_targets(SCORES[0], torch.tensor([1])), "scores must be a"),
    (lambda: rank_of_targets(SCORES, torch.tensor([1])), "targets must have shape"),
    (lambda: rank_of_targets(SCORES, torch.tensor([0, 1])), "targets must be item ids"),
    (lambda: rank_of_targets(SCORES, torch.tensor([1, 5])), "targets must be item ids"),
    (lambda: rank_of_targets(SCORES, torch.tensor([1, 2]), torch.tensor([1, 2])), "exclude must be"),
    (lambda: ranking_metrics([]), "at least one rank"),
    (lambda: ranking_metrics([-1]), "non-negative"),
    (lambda: ranking_metrics([0], ks=(0,)), "cut-off k"),
    (lambda: topk_items(SCORES, 5), "k must be in 1..4"),
    (lambda: agreement_at_k([[1, 2]], [[1]], 2), "k=2 must be in"),
    (lambda: agreement_at_k([1, 2], [1, 2], 1), "top lists must be"),
    (lambda: sample_negatives_for_eval(4, [[1, 2, 3]], [4], num_negatives=1), "only 0 items left"),
])
def test_errors_name_the_problem(call, message):
    with pytest.raises(ValueError, match=message):
        call()


# Three items, checkable on paper. Row 0 is an ordinary ranking 2 > 1 > 3 with target 1 (rank 1);
# row 1 is a diverged model (all NaN); row 2 has only the target's score NaN; row 3 has one NaN
# competitor (item 3) beside an otherwise fine ranking; row 4 gives the target +inf.
NAN, INF = math.nan, math.inf
BROKEN = torch.tensor([
    [NEG, 0.5, 0.9, 0.1],
    [NAN, NAN, NAN, NAN],
    [NEG, NAN, 0.2, 0.3],
    [NEG, 0.9, 0.1, NAN],
    [NEG, INF, 0.1, 0.2],
])
BROKEN_TARGETS = torch.tensor([1, 1, 1, 1, 1])


def test_non_finite_scores_rank_the_target_last():
    # Only row 0 is a real ranking (item 2 above target 1 -> rank 1); every other row puts the
    # target below both other items -> rank 2 of 0..2.
    assert rank_of_targets(BROKEN, BROKEN_TARGETS).tolist() == [1, 2, 2, 2, 2]
    # With item 2 filtered out as seen, one candidate is left: the worst rank is 1.
    exclude = torch.tensor([[2]] * 5)
    assert rank_of_targets(BROKEN, BROKEN_TARGETS, exclude).tolist() == [0, 1, 1, 1, 1]


def test_an_all_nan_model_scores_zero_not_one():
    ranks = rank_of_targets(BROKEN[1:2].repeat(4, 1), torch.tensor([1, 2, 3, 1]))
    metrics = ranking_metrics(ranks, ks=(1, 10))
    # Every target at rank 2 of a 3-item catalogue: inside the top 10, but last: HR@1 = 0,
    # NDCG@10 = 1/log2(2 + 2) = 0.5, MRR = 1/3; never the perfect 1.0 a NaN comparison used to give.
    assert metrics["hr@1"] == 0.0
    assert metrics["ndcg@10"] == pytest.approx(0.5)
    assert metrics["mrr"] == pytest.approx(1 / 3)


def test_sampled_rank_with_non_finite_scores():
    # Negatives 2 and 3: row 0 -> item 2 above the target (rank 1); rows 1-4 -> last (rank 2).
    negatives = torch.tensor([[2, 3]] * 5)
    assert sampled_rank_of_targets(BROKEN, BROKEN_TARGETS, negatives).tolist() == [1, 2, 2, 2, 2]


def test_nonfinite_rows_ignore_minus_inf():
    from recsec_lib.recommend.metrics import nonfinite_rows

    assert nonfinite_rows(BROKEN).tolist() == [False, True, True, True, True]
    assert nonfinite_rows(torch.tensor([[NEG, NEG, 0.3]])).tolist() == [False]
