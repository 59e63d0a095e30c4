"""GRO's curve judged against a utility-matched null: the matching rule, extraction ratio, noise floor, verdicts,
the authors' units and the budget-bound check, on hand-made figures."""

import math

import numpy as np
import pytest

from recsec_lib.gro.authors_units import (PUBLISHED_ML1M, PUBLISHED_SOURCE, AuthorsUnitsArm, authors_units_table,
                                          hits_at_10, serve_whole_list)
from recsec_lib.gro.budget import AttackedTarget, budget_check, verdict_budget
from recsec_lib.gro.curve import (ArmFigures, best_point, curve_headline, extraction_ratio, judge_point, noise_floor,
                                  protective_summary, retention, surrogate_fall)
from recsec_lib.gro.null import (NullCandidate, candidates_from_history, candidates_from_snapshots, epochs_to_snapshot,
                                 match_null)

LADDER = [NullCandidate("epoch 2", 0.080, 2), NullCandidate("epoch 3", 0.100, 3), NullCandidate("epoch 4", 0.124, 4)]


# ---- the matching rule -----------------------------------------------------------------------------------------

def test_the_null_is_the_nearest_validation_utility_within_the_tolerance():
    match = match_null(0.102, LADDER)
    assert match.matched and match.candidate.epoch == 3
    assert match.gap == pytest.approx((0.100 - 0.102) / 0.102)  # -1.96%, inside 5%
    assert "epoch 3" in match.describe() and match.describe().startswith("null:")
    # .110: epoch 3 is 9.1% below, epoch 4 12.7% above: the nearest is too far, so there is no null
    far = match_null(0.110, LADDER)
    assert not far.matched and far.candidate is None and far.nearest.epoch == 3
    assert far.gap == pytest.approx(-0.1 / 1.1)
    assert "no null within 5%" in far.describe() and "epoch 3" in far.describe() and "missing" in far.describe()
    # a looser tolerance accepts it
    assert match_null(0.110, LADDER, tolerance=0.10).candidate.epoch == 3
    # exactly at the tolerance: accepted
    assert match_null(0.2, [NullCandidate("a", 0.21)]).matched


def test_a_tie_takes_the_null_of_lower_utility_and_no_candidate_means_no_null():
    tie = match_null(0.5, [NullCandidate("above", 0.625), NullCandidate("below", 0.375)], tolerance=0.3)
    assert tie.candidate.label == "below" and tie.gap == -0.25
    empty = match_null(0.1, [])
    assert not empty.matched and empty.nearest is None and math.isnan(empty.gap)
    assert "no candidate model was measured" in empty.describe()


@pytest.mark.parametrize("point, candidates, tolerance, message", [
    (0.0, LADDER, 0.05, "serves nothing"),
    (1.5, LADDER, 0.05, "'point_valid_ndcg10' must be an NDCG@10"),
    (float("nan"), LADDER, 0.05, "'point_valid_ndcg10' must be an NDCG@10"),
    (0.1, LADDER, -0.01, "'tolerance' must be >= 0"),
    (0.1, [LADDER[0], NullCandidate("bad", float("nan"))], 0.05, r"candidates\[1\].valid_ndcg10"),
])
def test_matching_errors(point, candidates, tolerance, message):
    with pytest.raises(ValueError, match=message):
        match_null(point, candidates, tolerance)


def test_epochs_to_snapshot_reads_the_training_history():
    history = [{"epoch": 1, "valid_ndcg@10": 0.04}, {"epoch": 2, "valid_ndcg@10": 0.086},
               {"epoch": 3, "valid_ndcg@10": 0.105}, {"epoch": 4, "loss": 1.0},  # epoch 4 was not validated
               {"epoch": 5, "valid_ndcg@10": 0.13}]
    assert [c.epoch for c in candidates_from_history(history)] == [1, 2, 3, 5]
    # .108 -> epoch 3; .085 -> epoch 2; .117 is 10% from both neighbours -> none
    assert epochs_to_snapshot(history, [0.108, 0.085, 0.117, 0.104]) == [2, 3]
    records = [{"epoch": 4, "valid_ndcg10": 0.1196, "path": "train/sasrec_epoch4.pt"}]
    assert candidates_from_snapshots(records, "sasrec") == [NullCandidate("sasrec epoch 4", 0.1196, 4)]


# ---- extraction ratio, falls, noise floor ----------------------------------------------------------------------

def arm(label, served, surrogate, served_valid=None, surrogate_valid=None, **extra):
    return ArmFigures(label, served_valid if served_valid is not None else served, served, surrogate,
                      surrogate_valid, **extra)


def test_extraction_ratio_by_hand():
    """3 test users: served NDCG@10 1, 1, .5 (mean 5/6); the surrogate 0, 1, .5 (mean 1/2): ratio .6."""
    one_seed = arm("a", [1.0, 1.0, 0.5], [[0.0, 1.0, 0.5]])
    ratio = extraction_ratio(one_seed, replicates=400, seed=1)
    assert ratio.point == pytest.approx(0.6)
    # every resample of these 3 users gives a ratio between 0 (only user 1) and 1 (only users 2 and 3)
    assert 0.0 <= ratio.low <= 0.6 <= ratio.high <= 1.0
    # a second attack seed with surrogate 1, 1, .5: mean over seeds and users 4/6 -> ratio .8
    two_seeds = arm("b", [1.0, 1.0, 0.5], [[0.0, 1.0, 0.5], [1.0, 1.0, 0.5]])
    assert extraction_ratio(two_seeds, replicates=50).point == pytest.approx(0.8)


def test_falls_and_retention_against_a_reference():
    point = arm("p", [0.2, 0.4], [[0.1, 0.1]])
    control = arm("c", [0.4, 0.4], [[0.2, 0.2]])
    assert surrogate_fall(point, control, 100).point == pytest.approx(0.5)
    assert retention(point, control, 100).point == pytest.approx(0.75)
    with pytest.raises(ValueError, match="different users"):
        surrogate_fall(point, arm("x", [0.1] * 3, [[0.1] * 3]), 10)


def test_the_noise_floor_is_the_fall_between_control_seeds():
    controls = [arm("λ=0 seed 1", [0.2] * 4, [[0.10] * 4]), arm("λ=0 seed 2", [0.2] * 4, [[0.08] * 4]),
                arm("λ=0 seed 3", [0.2] * 4, [[0.09] * 4])]
    floor = noise_floor(controls, replicates=50)
    assert floor.point == pytest.approx(0.2) and floor.seeds == 3  # 1 - .08 / .10
    assert "3 training seeds" in floor.describe()
    assert noise_floor(controls[:1]) is None  # unknown, not 0


@pytest.mark.parametrize("kwargs, message", [
    ({"served_test": [[0.1, 2.0]]}, "values in \\[0, 1\\]"),
    ({"surrogate_test": [[0.1, 0.1, 0.1]]}, "surrogate_test has 3 users, served_test 2"),
    ({"served_test": [[[0.1]]]}, "served_test must be per-user values"),
    ({"promoted_share": 1.5}, "promoted_share must be a share"),
])
def test_arm_figures_errors(kwargs, message):
    values = {"label": "bad", "served_valid": [0.1, 0.1], "served_test": [0.1, 0.1], "surrogate_test": [[0.1, 0.1]]}
    with pytest.raises(ValueError, match=message):
        ArmFigures(**{**values, **kwargs})


# ---- point verdicts ------------------------------------------------------------------------------------------

U = 50


def flat(value, seeds=1):
    return np.full((seeds, U), value)


CONTROL = ArmFigures("λ = 0 control", flat(0.16), flat(0.17), flat(0.10, 3), flat(0.10, 3))
CONTROLS = [CONTROL, ArmFigures("λ = 0 control seed 2", flat(0.16), flat(0.17), flat(0.095, 3), flat(0.095, 3))]


def gro(label, served, surrogate, surrogate_valid=None, lam=1.0, rule="keep", **extra):
    return ArmFigures(label, flat(served), flat(served + 0.01), flat(surrogate, 3),
                      flat(surrogate if surrogate_valid is None else surrogate_valid, 3), rule=rule, lam=lam, **extra)


def null_of(point, surrogate, label="epoch 4"):
    figures = ArmFigures(label, flat(point.valid_ndcg10), flat(point.valid_ndcg10 + 0.01), flat(surrogate, 3),
                         flat(surrogate, 3))
    return figures, match_null(point.valid_ndcg10, [NullCandidate(label, point.valid_ndcg10, 4)])


def test_a_point_protects_only_beyond_its_null_and_the_training_noise():
    floor = noise_floor(CONTROLS, replicates=50)  # 1 - .095/.10 = 5%
    point = gro("GRO keep λ=1", 0.12, 0.06)
    null, match = null_of(point, 0.08)  # the null of the same utility: its surrogate .08 -> GRO falls 25% more
    verdict = judge_point(point, CONTROL, null, match, floor, replicates=50)
    assert verdict.protects and verdict.status == "protects"
    assert verdict.fall_vs_null.point == pytest.approx(0.25) and verdict.fall_vs_control.point == pytest.approx(0.4)
    assert verdict.retention_valid == pytest.approx(0.75) and verdict.retention_test.point == pytest.approx(13 / 17)
    assert verdict.extraction_ratio.point == pytest.approx(0.06 / 0.13)
    for text in ("GRO keep λ=1:", "keeps 76.5%", "falls 40.0%", "25.0%", "epoch 4", "PROTECTS"):
        assert text in verdict.words
    # the same fall inside a training-noise floor of 30%: not protection
    wide = noise_floor([CONTROL, ArmFigures("s2", flat(0.16), flat(0.17), flat(0.07, 3))], replicates=50)
    assert judge_point(point, CONTROL, null, match, wide, replicates=50).status == "within training noise"
    # with one control seed the floor is unknown: no "protects"
    unknown = judge_point(point, CONTROL, null, match, None, replicates=50)
    assert unknown.status == "training noise not measured" and "needs the λ = 0 control with >= 2" in unknown.words


def test_a_fall_no_larger_than_the_nulls_is_not_protection():
    floor = noise_floor(CONTROLS, replicates=50)
    point = gro("GRO lowest_index λ=1", 0.11, 0.06, rule="lowest_index", promoted_item=2052, promoted_share=0.307,
                promoted_share_none=0.003)
    same, match = null_of(point, 0.06)
    verdict = judge_point(point, CONTROL, same, match, floor, replicates=50)
    assert verdict.status == "no protection beyond the null" and not verdict.protects
    assert verdict.fall_vs_control.point == pytest.approx(0.4)  # a large fall against the control, all the same
    assert verdict.promotes and "promotes item 2052 (in 30.7% of served top-10 lists; 0.3% without defense)" \
        in verdict.words
    better, match = null_of(point, 0.05)
    assert judge_point(point, CONTROL, better, match, floor, replicates=50).status == "copied better than its null"


def test_a_point_without_a_close_null_cannot_protect():
    point = gro("GRO", 0.110, 0.02, lam=0.3)
    match = match_null(point.valid_ndcg10, LADDER)
    verdict = judge_point(point, CONTROL, None, match, noise_floor(CONTROLS, replicates=20), replicates=20)
    assert verdict.status == "no null" and verdict.fall_vs_null is None and math.isnan(verdict.fall_vs_null_valid)
    assert "no null within 5%" in verdict.words and verdict.words.startswith("GRO (rule keep, λ = 0.3): keeps")
    with pytest.raises(ValueError, match="made for validation NDCG@10"):
        judge_point(point, CONTROL, None, match_null(0.2, LADDER, tolerance=1.0), None, replicates=20)
    with pytest.raises(ValueError, match="no null figures"):
        judge_point(point, CONTROL, None, match_null(point.valid_ndcg10, LADDER, tolerance=1.0), None, replicates=20)


def test_a_promotion_below_the_threshold_is_not_named():
    point = gro("GRO keep λ=1", 0.12, 0.06, promoted_item=7, promoted_share=0.25, promoted_share_none=0.22)
    null, match = null_of(point, 0.08)
    verdict = judge_point(point, CONTROL, null, match, None, replicates=20)
    assert not verdict.promotes and "promotes" not in verdict.words


def _judged(point, null_surrogate, floor=None):
    null, match = null_of(point, null_surrogate)
    return judge_point(point, CONTROL, null, match, floor or noise_floor(CONTROLS, replicates=20), replicates=20)


def test_the_best_point_is_chosen_on_validation_among_those_keeping_the_floor():
    # A: validation fall vs null 30%, test 10%; B: validation 10%, test 50%; C: protects but keeps 70%
    a = _judged(gro("A", 0.155, 0.09, surrogate_valid=0.07, lam=0.1), 0.10)
    b = _judged(gro("B", 0.156, 0.05, surrogate_valid=0.09, lam=0.3), 0.10)
    c = _judged(gro("C", 0.112, 0.02, lam=1.0), 0.10)
    chosen = best_point([a, b, c])
    assert chosen.verdict.label == "A" and chosen.reason == ""  # validation decides, not B's larger test fall
    headline = curve_headline(chosen, CONTROL, replicates=20)
    assert headline["gro_best_point_fall_vs_null"] == pytest.approx(0.1)
    assert headline["gro_best_point_retention"] == pytest.approx(0.165 / 0.17, abs=1e-4)
    assert {"gro_best_point_fall_vs_null_low", "gro_extraction_ratio_control", "gro_extraction_ratio_best"} <= set(
        headline) and "gro_no_point_reason" not in headline
    assert headline["gro_extraction_ratio_control"] == pytest.approx(0.10 / 0.17, abs=1e-4)
    summary = protective_summary([a, b, c])
    assert summary.startswith("protective λ: A") and "B" in summary


def test_no_best_point_says_why():
    low = _judged(gro("GRO keep λ=1", 0.112, 0.02), 0.10)
    none_kept = best_point([low])
    assert none_kept.verdict is None and "keeps validation retention >= 95%" in none_kept.reason
    assert "GRO keep λ=1 at 70.0%" in none_kept.reason
    headline = curve_headline(none_kept, CONTROL, replicates=20)
    assert "gro_no_point_reason" in headline and "gro_best_point_retention" not in headline
    summary = protective_summary([low])
    assert summary.startswith("no protective λ: no GRO point keeps validation retention >= 95%")
    assert "GRO keep λ=1 protects but keeps only 70.0%" in summary
    unmatched = judge_point(gro("U", 0.155, 0.05), CONTROL, None, match_null(0.155, LADDER), None, replicates=20)
    assert "has a utility-matched null" in best_point([unmatched]).reason
    kept_not_protecting = _judged(gro("K", 0.155, 0.10), 0.10)
    assert protective_summary([kept_not_protecting]) == ("no protective λ: K keeps 96.9% but: no protection beyond "
                                                         "the null")
    # results/gro-curve: keep λ = 0.3 kept 93.2% and did not protect; the line named the points either side only
    both_failed = _judged(gro("B", 0.150, 0.10), 0.10)
    assert protective_summary([kept_not_protecting, both_failed, low]) == (
        "no protective λ: K keeps 96.9% but: no protection beyond the null; B keeps only 93.8% (< 95%) and: no "
        "protection beyond the null; GRO keep λ=1 protects but keeps only 70.0% (< 95%)")
    control_point = _judged(gro("λ0", 0.16, 0.1, lam=0.0), 0.1)  # the control is never a best point
    assert best_point([control_point]).reason == "no GRO point (λ > 0) was measured"
    missing = judge_point(ArmFigures("M", flat(0.155), flat(0.16), flat(0.05, 3), None, rule="keep", lam=0.1),
                          CONTROL, *null_of(gro("M", 0.155, 0.05), 0.1), None, replicates=20)
    with pytest.raises(ValueError, match="lack validation surrogate figures"):
        best_point([missing])


# ---- the authors' units --------------------------------------------------------------------------------------

def test_authors_units_on_three_items_by_hand():
    """3 users, unfiltered 3-item lists (the whole list), held-out items 1, 2, 3.

    user 1: [1, 2, 3] -> None: rank 1 (NDCG 1);      Reverse [3, 2, 1]: rank 3 (NDCG 1/log2 4 = .5)
    user 2: [3, 2, 1] -> None: rank 2 (1/log2 3);    Reverse [1, 2, 3]: rank 2 (1/log2 3)
    user 3: [1, 2, 4] -> None: missed (0);           Reverse: missed (0)
    Target NDCG@10: None (1 + .6309) / 3 = 54.36%, Reverse (.5 + .6309) / 3 = 37.70%; HR@10 2/3 for both.
    Surrogates (unfiltered top lists), 2 attack seeds: seed 1 hits user 1 at rank 1; seed 2 hits nobody:
    surrogate HR@10 (1/3 + 0) / 2 = 16.67%, NDCG@10 the same.
    """
    lists = np.array([[1, 2, 3], [3, 2, 1], [1, 2, 4]])
    targets = np.array([1, 2, 3])
    rng = np.random.default_rng(0)
    reverse = serve_whole_list(lists, "reverse", rng)
    assert reverse.tolist() == [[3, 2, 1], [1, 2, 3], [4, 2, 1]]
    shuffled = serve_whole_list(lists, "random", np.random.default_rng(5))
    assert shuffled.tolist() == np.random.default_rng(5).permuted(lists, axis=1).tolist()
    assert all(sorted(a) == sorted(b) for a, b in zip(shuffled, lists))  # the same items, any order
    surrogates = [np.array([[1, 5, 6], [4, 5, 6], [5, 6, 7]]), np.array([[5, 6, 7]] * 3)]
    arms = [AuthorsUnitsArm("None", serve_whole_list(lists, "none", rng), surrogates, "SASRec; fine-tuned"),
            AuthorsUnitsArm("Reverse", reverse, surrogates[0], "SASRec; fine-tuned")]
    table = authors_units_table(arms, targets)
    none, rev = table.iloc[0], table.iloc[1]
    assert none["target HR@10"] == pytest.approx(200 / 3) and rev["target HR@10"] == pytest.approx(200 / 3)
    assert none["target NDCG@10"] == pytest.approx(100 * (1 + 1 / math.log2(3)) / 3)
    assert rev["target NDCG@10"] == pytest.approx(100 * (0.5 + 1 / math.log2(3)) / 3)
    assert none["surrogate HR@10"] == pytest.approx(100 / 6) and none["surrogate NDCG@10"] == pytest.approx(100 / 6)
    assert rev["surrogate NDCG@10"] == pytest.approx(100 / 3)  # one seed only
    # the authors' rows come after ours, labelled, with their setting
    published = table[table["source"] == PUBLISHED_SOURCE]
    assert list(published["defense"]) == list(PUBLISHED_ML1M) and (table["source"].iloc[:2] == "this run").all()
    assert published.iloc[0]["target NDCG@10"] == 10.61 and "BERT4Rec" in published.iloc[0]["setting"]
    assert len(authors_units_table(arms, targets, published=None)) == 2


def test_whole_list_reverse_serves_the_bottom_of_the_hundred():
    """Reverse over the whole k-item list: the served top-10 are ranks k..k-9, not the top-10 reversed."""
    lists = np.arange(1, 101)[None, :]  # one user, items 1..100 in rank order
    served = serve_whole_list(lists, "reverse", np.random.default_rng(0))
    assert served[0, :10].tolist() == list(range(100, 90, -1))
    hr, ndcg = hits_at_10(served, np.array([91]))
    assert hr[0] == 1.0 and ndcg[0] == pytest.approx(1 / math.log2(11))  # item 91 served at rank 10


@pytest.mark.parametrize("call, message", [
    (lambda: serve_whole_list(np.array([1, 2, 3]), "none", None), "'lists' must be \\[users, k\\]"),
    (lambda: serve_whole_list(np.array([[1, 2, 3]]), "shuffle", None), "'defense' must be one of"),
    (lambda: hits_at_10(np.array([[1, 2]]), np.array([1, 2])), "lists must be \\[U, k\\] with U = 2"),
    (lambda: authors_units_table([AuthorsUnitsArm("x", np.array([[1]]), [], "s")], np.array([1])),
     "no surrogate lists"),
])
def test_authors_units_errors(call, message):
    with pytest.raises(ValueError, match=message):
        call()


# ---- budget-bound --------------------------------------------------------------------------------------------

def attacked(values):
    return [AttackedTarget(label, ndcg, np.full((2, U), surrogate)) for label, ndcg, surrogate in values]


def test_budget_bound_when_the_surrogate_stops_rising_with_the_target():
    # cpu budget: every target from .124 up gives a surrogate of .10 (issue 28's observation)
    small = budget_check(500, attacked([("final", 0.17, 0.10), ("epoch 8", 0.15, 0.10), ("epoch 4", 0.124, 0.10),
                                        ("epoch 2", 0.08, 0.05)]), replicates=50)
    assert small.bound and small.top == "final" and small.weaker == "epoch 8"  # the best target >= 10% below
    assert small.target_rise == pytest.approx(0.17 / 0.15 - 1) and small.surrogate_rise.point == pytest.approx(0)
    assert "budget-bound: no evidence" in small.describe() and "(1 attack seed" not in small.describe()
    # 4x budget: the surrogate keeps rising
    large = budget_check(2000, attacked([("final", 0.17, 0.14), ("epoch 8", 0.15, 0.12), ("epoch 2", 0.08, 0.06)]),
                         replicates=50)
    assert not large.bound and large.surrogate_rise.point == pytest.approx(0.14 / 0.12 - 1)
    assert "still rises" in large.describe()
    assert verdict_budget({500: small, 2000: large}) == (2000, "budget 2000 is the smallest at which the surrogate "
                                                              "still rises with the target")
    budget, reason = verdict_budget({500: small})
    assert budget == 500 and "budget-bound at every budget measured (500)" in reason


def test_a_surrogate_that_keeps_less_than_half_of_the_targets_gain_is_budget_bound():
    """Target +17.5% (e.g. .1234 -> .145), surrogate +3.8%: significantly rising, but at a fifth of the pace."""
    rng = np.random.default_rng(1)
    users = rng.random((1, 400)) * 0.2  # one attack seed; the top target's surrogate is 3.8% better for every user
    check = budget_check(500, [AttackedTarget("top", 0.145, users * 1.038), AttackedTarget("weak", 0.1234, users)],
                         replicates=100)
    assert check.surrogate_rise.low > 0 and check.bound
    assert "keeps less than 50% of the target's gain" in check.describe() and "(1 attack seed" in check.describe()
    # proportional tracking (the surrogate gains 15% of 17.5%) is not bound; min_elasticity 0 only asks for a rise
    assert not budget_check(500, [AttackedTarget("top", 0.145, users * 1.15), AttackedTarget("weak", 0.1234, users)],
                            replicates=100).bound
    assert not budget_check(500, [AttackedTarget("top", 0.145, users * 1.038), AttackedTarget("weak", 0.1234, users)],
                            min_elasticity=0.0, replicates=100).bound
    with pytest.raises(ValueError, match="'min_elasticity' must be in"):
        budget_check(500, [AttackedTarget("top", 0.145, users), AttackedTarget("weak", 0.12, users)],
                     min_elasticity=2.0)


def test_a_noisy_rise_is_not_evidence_of_rising():
    rng = np.random.default_rng(0)
    noisy = [AttackedTarget("top", 0.17, rng.random((2, 40)) * 0.2),
             AttackedTarget("weak", 0.12, rng.random((2, 40)) * 0.2)]
    check = budget_check(500, noisy, replicates=200)
    assert check.surrogate_rise.low < 0 < check.surrogate_rise.high and check.bound


@pytest.mark.parametrize("targets, gap, message", [
    ([("a", 0.17, 0.1)], 0.1, "at least 2 qualities"),
    ([("a", 0.17, 0.1), ("b", 0.16, 0.1)], 0.1, "no target is 10% or more below 'a'"),
    ([("a", 0.17, 0.1), ("b", 0.1, 0.1)], 1.5, "'min_target_gap' must be in"),
    ([("a", 0.0, 0.1), ("b", 0.0, 0.1)], 0.1, "every target has NDCG@10 0"),
])
def test_budget_check_errors(targets, gap, message):
    with pytest.raises(ValueError, match=message):
        budget_check(500, attacked(targets), min_target_gap=gap, replicates=10)
    with pytest.raises(ValueError, match="empty"):
        verdict_budget({})


def test_budget_check_needs_the_same_users():
    with pytest.raises(ValueError, match="different users"):
        budget_check(500, [AttackedTarget("a", 0.17, np.full((1, 3), 0.1)),
                           AttackedTarget("b", 0.10, np.full((1, 4), 0.1))], replicates=10)
