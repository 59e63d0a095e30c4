"""Signals beyond one account: the pooled MMD test on toy distributions, the per-query suspicion score."""

from __future__ import annotations

import math

import numpy as np
import pytest

from recsec_lib.seat import pooled
from recsec_lib.seat.suspicion import (fit_suspicion, item_surprise, neighbour_distance, popularity_surprise,
                                       suspicion_scores)


def test_mmd_by_hand():
    x = np.zeros((2, 1))
    y = np.ones((2, 1))
    # k(x, x') = k(y, y') = 1; k(x, y) = exp(-1 / 2): MMD² = 1 + 1 - 2 exp(-1/2)
    assert pooled.mmd2_unbiased(x, y, 1.0) == pytest.approx(2 - 2 * math.exp(-0.5))
    assert pooled.mmd2_unbiased(x, x, 1.0) == pytest.approx(0.0)
    assert pooled.median_bandwidth(np.array([[0.0], [1.0], [3.0]])) == 2.0  # distances 1, 2, 3
    with pytest.raises(ValueError, match="at least 2 points"):
        pooled.mmd2_unbiased(x[:1], y, 1.0)
    with pytest.raises(ValueError, match="all equal"):
        pooled.median_bandwidth(np.zeros((3, 2)))


def test_pooled_test_on_toy_distributions():
    rng = np.random.default_rng(0)
    benign = lambda n: rng.normal(0.0, 1.0, size=(n, 2))  # noqa: E731
    reference = benign(300)
    calibration, held_out = benign(4000), benign(4000)
    accounts = np.repeat(np.arange(400), 10)  # 400 accounts of 10 queries
    test = pooled.calibrate_pooled(reference, calibration, accounts, window=100, users_per_window=10,
                                   target_fpr=0.05, num_windows=200, seed=1)
    assert test.calibration_fpr <= 0.05 and test.threshold > 0
    alarms, windows = pooled.window_alarms(test, held_out, accounts, num_windows=200, seed=2)
    assert windows == 200 and alarms / windows < 0.15  # about the calibrated 5%
    shifted = rng.normal(2.0, 1.0, size=(1000, 2))  # the attacker's queries: another distribution
    caught, _ = pooled.window_alarms(test, held_out, accounts, 200, seed=3, attack=shifted, share=0.5)
    assert caught == 200
    small, _ = pooled.window_alarms(test, held_out, accounts, 200, seed=3, attack=shifted, share=0.05)
    assert alarms <= small < caught  # a thin share is harder to see
    windows = pooled.traffic_windows(np.arange(30.0)[:, None], np.repeat(np.arange(3), 10), 6, 2, 4,
                                     np.random.default_rng(0))
    for w in windows:  # two stretches of 3 consecutive queries of one account each
        assert len(w) == 6 and np.all(np.diff(w[:3, 0]) == 1) and np.all(np.diff(w[3:, 0]) == 1)
    with pytest.raises(ValueError, match="share"):
        pooled.window_alarms(test, held_out, accounts, 1, share=1.5)


def test_suspicion_scores_by_hand():
    histories = [np.array([1, 2]), np.array([1, 3]), np.array([1])]  # counts: 1 -> 3, 2 -> 1, 3 -> 1, 4 -> 0
    surprise = item_surprise(histories, num_items=4)
    assert surprise[1:].tolist() == pytest.approx([-math.log(4 / 9), -math.log(2 / 9), -math.log(2 / 9),
                                                  -math.log(1 / 9)])
    windows = np.array([[0, 1, 1], [0, 0, 4], [2, 3, 4]])  # left-padded
    got = popularity_surprise(surprise, windows, tail=2)
    assert got.tolist() == pytest.approx([-math.log(4 / 9), -math.log(1 / 9),
                                          (-math.log(2 / 9) - math.log(1 / 9)) / 2])
    reference = np.array([[0.0, 0.0], [3.0, 4.0]])
    assert neighbour_distance(np.array([[0.0, 0.0]]), reference, 2).tolist() == [5.0]


def test_suspicion_gates_the_calibrated_share_and_catches_uniform_items():
    rng = np.random.default_rng(0)
    num_items = 200
    weights = 1.0 / np.arange(1, num_items + 1)
    weights /= weights.sum()
    draw = lambda n: rng.choice(num_items, size=(n, 20), p=weights) + 1  # noqa: E731  popular items
    histories = list(draw(300))
    model = fit_suspicion(histories, num_items, draw(2000), None, gate_rate=0.01, tail=20)
    assert model.gate_rate <= 0.01 and model.reference is None
    benign_gated = (suspicion_scores(model, draw(2000)) > model.threshold).mean()
    assert benign_gated < 0.03
    uniform = rng.integers(1, num_items + 1, size=(500, 20))
    assert (suspicion_scores(model, uniform) > model.threshold).mean() > 0.9
    encodings = rng.normal(size=(2000, 4))
    with_knn = fit_suspicion(histories, num_items, draw(2000), encodings, 0.01, reference_size=500, neighbours=3)
    assert with_knn.reference.shape == (500, 4)
    with pytest.raises(ValueError, match="encodings"):
        suspicion_scores(with_knn, draw(3))
    with pytest.raises(ValueError, match="gate_rate"):
        fit_suspicion(histories, num_items, draw(10), None, gate_rate=1.0)
