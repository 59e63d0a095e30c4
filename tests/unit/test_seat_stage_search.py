"""The SEAT stage's search and real-timing steps (issue 24 phase 2) on synthetic data: the smoke stage end to end,
the real-timing path through a tiny hand-made ML-100K whose titles are the synthetic dataset's, the reasons a
part is skipped, and every error path of the search's settings."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from recsec_lib.study.stages import seat as stage
from recsec_lib.study.stages.context import StudyContext

TINY = dict(zoo=("random", "autoregressive"), encoder_steps=5, surrogate_epochs=1, single_budgets=(5,),
            search_attackers=("chain",), search_chains=(1, 5), search_random_mix=(0.5,),
            search_mix_weights=("uniform",), search_horizons_h=(24.0, 720.0), public_streams=(1, 50),
            population_calibration_per_form=10, population_held_out_per_form=10)


def write_target(run_dir: Path, data_dir: Path) -> None:
    """A freshly initialised SASRec as the run's target (its answers only steer the attack walks)."""
    import torch

    from recsec_lib.data.prepare import prepare_dataset
    from recsec_lib.models.registry import build_model
    from recsec_lib.recommend.checkpoints import save_checkpoint

    dataset = prepare_dataset("synthetic", data_dir=data_dir, mirror=None)
    torch.manual_seed(0)
    save_checkpoint(run_dir / "train" / "sasrec.pt", build_model("sasrec", num_items=dataset.num_items,
                                                                 max_len=dataset.max_len), "sasrec", dataset)


def run_stage(tmp_path: Path, mirror: Path | None, monkeypatch, **changes) -> dict:
    monkeypatch.delenv("RECSEC_DATA_MIRROR", raising=False)
    run_dir, data_dir = tmp_path / "run", tmp_path / "data"
    write_target(run_dir, data_dir)
    settings = dataclasses.replace(stage.Settings.for_profile("smoke"), **{**TINY, **changes})
    ctx = StudyContext(run_dir=run_dir, dataset="synthetic", data_dir=data_dir, mirror=mirror, seed=0, device="cpu",
                       profile="smoke")
    return stage.run(ctx, settings)


def write_ml100k(mirror: Path, titles: list[str], users: int = 12, per_user: int = 14) -> None:
    """u.item with the given titles (ids 1..n) and u.data: each user rates ``per_user`` of them in bursts."""
    folder = mirror / "ml-100k"
    folder.mkdir(parents=True)
    (folder / "u.item").write_text("".join(f"{i}|{t}|01-Jan-1995||http://x|" + "|".join(["0"] * 18 + ["1"]) + "\n"
                                           for i, t in enumerate(titles, start=1)), encoding="latin-1")
    rng = np.random.default_rng(0)
    lines = []
    for user in range(1, users + 1):
        items = rng.choice(len(titles), size=per_user, replace=False) + 1
        times = 880_000_000 + user * 10_000 + np.cumsum(rng.choice([0, 0, 1, 40, 3_000], size=per_user))
        lines += [f"{user}\t{item}\t4\t{time}\n" for item, time in zip(items, times)]
    (folder / "u.data").write_text("".join(lines), encoding="latin-1")


def test_smoke_stage_searches_the_attacker_and_says_what_it_skipped(tmp_path, monkeypatch):
    metrics = run_stage(tmp_path, None, monkeypatch)
    out = tmp_path / "run" / "seat"
    for name in ("accounts_needed.csv", "search_best.csv", "accounts_needed.png", "fpr_intervals.csv", "zoo.csv"):
        assert (out / name).stat().st_size > 0, name
    headline = json.loads((tmp_path / "run" / "headline.json").read_text())
    for key in ("detect_best", "detect_best_accounts_needed_worst", "volume_cap_accounts_needed_worst",
                "caps_accounts_needed_worst", "detect_best_cost_increase_over_caps", "detect_best_false_positive_rate",
                "detect_best_false_positive_rate_high", "seat_plus_cap_accounts_needed"):
        assert key in headline, key
    assert headline["detect_best"] in stage.Settings().search_detectors
    assert "no data mirror" in headline["real_timing_skipped"]
    assert "no ML-100K" in headline["public_data_attacker_skipped"]
    assert "benign_real_timing_false_positive_rate_caps" not in metrics  # no real timing, no such figure
    grid = pd.read_csv(out / "accounts_needed.csv")
    # chain: chains 1 and 5 (random_mix 0.5, uniform), 3 splits, 2 windows, every searched detector
    assert len(grid) == 2 * 3 * 2 * len(stage.Settings().search_detectors)
    assert set(grid["chains"]) == {1, 5} and set(grid["horizon_h"]) == {24.0, 720.0}
    best = pd.read_csv(out / "search_best.csv").set_index("detector")
    for detector, row in best.iterrows():  # the minimum over the grid, with the point that reached it
        needed = grid.loc[grid.detector == detector, "accounts_needed"]
        assert (np.isnan(row["accounts_needed"]) and needed.isna().all()) or row["accounts_needed"] == needed.min()
        if not np.isnan(row["accounts_needed"]):
            assert 0 <= row["agr10"] <= 1  # the surrogate's fidelity at the cheapest point was measured
    intervals = pd.read_csv(out / "fpr_intervals.csv")
    assert {"low", "high", "target", "accounts_to_show", "can_show"} <= set(intervals.columns)
    assert not intervals["can_show"].any()  # 10 accounts per form can show neither 0.1% nor 1%
    assert (intervals["low"] <= intervals["rate"]).all() and (intervals["rate"] <= intervals["high"]).all()
    assert metrics["detect_best_fpr_interval_can_show_target"] is False
    assert metrics["detection_verdict"].startswith("Per-account detection")
    assert {"encoder", "calibration", "zoo", "population", "search", "search_fidelity"} <= set(metrics["part_seconds"])


def test_real_timing_path_with_a_hand_made_ml100k(tmp_path, monkeypatch):
    """ML-100K users whose movies map (by title) onto the synthetic dataset: real-timing forms calibrate and are
    measured, and the public-data attacker is searched."""
    from recsec_lib.data.prepare import prepare_dataset

    dataset = prepare_dataset("synthetic", data_dir=tmp_path / "data", mirror=None)
    titles = [str(t) for t in dataset.items["title"].iloc[:40]]
    write_ml100k(tmp_path / "mirror", titles)
    metrics = run_stage(tmp_path, tmp_path / "mirror", monkeypatch)
    assert metrics["real_timing_skipped"] is None and metrics["public_data_attacker_skipped"] is None
    assert metrics["ml100k_mapping"]["mapped_to_dataset"] == 40
    assert metrics["ml100k_mapping"]["calibration_users"] + metrics["ml100k_mapping"]["held_out_users"] == 12
    assert metrics["benign_population_held_out_accounts"]["ml100k"] == 6
    assert "benign_real_timing_false_positive_rate_caps" in metrics
    grid = pd.read_csv(tmp_path / "run" / "seat" / "accounts_needed.csv")
    public = grid[grid.attacker == "public"]
    assert set(public["streams"]) == {1, 50}
    best = pd.read_csv(tmp_path / "run" / "seat" / "search_best.csv")
    finite = best[best.accounts_needed.notna()]
    assert finite["agr10"].between(0, 1).all()  # each cheapest point's surrogate measured, public data's too


def inputs_for(mirror, dataset=None, **changes):
    settings = dataclasses.replace(stage.Settings(), **changes)
    return SimpleNamespace(settings=settings, ctx=SimpleNamespace(mirror=mirror, dataset="synthetic"),
                           dataset=dataset)


def test_real_timing_is_skipped_with_its_reason(tmp_path):
    assert stage.real_timing_step(inputs_for(None)) == (None, "no data mirror (RECSEC_DATA_MIRROR unset), so no "
                                                              "ML-100K timestamps")
    real, reason = stage.real_timing_step(inputs_for(tmp_path))
    assert real is None and "the mirror has no ML-100K" in reason and str(tmp_path / "ml-100k") in reason
    assert stage.real_timing_step(inputs_for(tmp_path, real_timing=False))[1] == "switched off (real_timing=False)"


def test_an_ml100k_that_maps_onto_nothing_is_skipped_not_an_error(tmp_path):
    from recsec_lib.data.prepare import prepare_dataset

    dataset = prepare_dataset("synthetic", data_dir=tmp_path / "data", mirror=None)
    write_ml100k(tmp_path / "mirror", [f"Nothing Like It ({1900 + i})" for i in range(30)])
    real, reason = stage.real_timing_step(inputs_for(tmp_path / "mirror", dataset))
    assert real is None and "does not map onto dataset 'synthetic' by title" in reason


@pytest.mark.parametrize("changes, message", [
    ({"search_attackers": ("chian",)}, "search_attackers: unknown generator 'chian'"),
    ({"search_chains": (3,)}, r"generator 'chain': chains=\[3\] is not among its choices"),
    ({"search_splits": ("diagonal",)}, r"unknown split\(s\) \['diagonal'\]"),
    ({"search_horizons_h": (0.0,)}, "horizons_h must be positive hours"),
    ({"search_detectors": ("seat", "sneaky")}, r"search_detectors: unknown detector\(s\) \['sneaky'\]"),
    ({"public_streams": (0,)}, "public_streams: every value must be >= 1"),
    ({"search_budget_queries": -5}, "search_budget_queries must be >= 0"),
    ({"real_calibration_fraction": 1.0}, r"real_calibration_fraction must be in \(0, 1\)"),
    ({"population_forms": ("growing", "lurker")}, r"population_forms: unknown form\(s\) \['lurker'\]"),
])
def test_bad_search_settings_fail_before_any_work(changes, message):
    with pytest.raises(ValueError, match=message):
        dataclasses.replace(stage.Settings(), **changes).check_search()


def test_narrowing_applies_only_to_the_choices_a_generator_offers():
    settings = dataclasses.replace(stage.Settings(), search_chains=(1,), search_random_mix=(0.0,))
    assert settings.narrowed("chain") == {"chains": (1,), "random_mix": (0.0,)}
    assert settings.narrowed("autoregressive") == {"random_mix": (0.0,)}
    assert settings.narrowed("random") == {}


class FakeBox:
    """Answers a query with the k items after its newest one (ids wrap), so every answer can be checked."""

    max_query_len, num_items, k = 4, 30, 3

    def answer_batch(self, account, queries):
        return np.array([[(int(q[-1]) + j) % self.num_items + 1 for j in range(self.k)] for q in queries])


def test_public_collected_rows_hold_the_box_answer_to_exactly_that_query():
    from recsec_lib.seat.public_data import public_collected

    streams = [np.arange(1, 7), np.arange(10, 13)]  # 6 + 3 queries; windows of at most 4 items
    collected = public_collected(FakeBox(), streams, budget_queries=8, seq_len=5, training_rows=100, seed=0)
    assert collected.traffic.num_queries == 8  # the budget cuts the second stream after two queries
    data = collected.training
    assert data.sequences.shape == (8, 5) and data.answered[:, -1].all() and not data.answered[:, :-1].any()
    # the 6th query of stream 1 is its newest 4 items [3, 4, 5, 6], left-padded to 5
    assert data.sequences[5].tolist() == [0, 3, 4, 5, 6] and data.answers[5, -1].tolist() == [7, 8, 9]
    assert data.sequences[7].tolist() == [0, 0, 0, 10, 11]
    sampled = public_collected(FakeBox(), streams, None, seq_len=5, training_rows=3, seed=1).training
    assert sampled.num_sequences == 3
    with pytest.raises(ValueError, match="training_rows must be >= 1"):
        public_collected(FakeBox(), streams, None, seq_len=5, training_rows=0)
