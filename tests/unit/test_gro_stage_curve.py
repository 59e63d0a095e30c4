"""GRO's curve read from the arena's matrix (``arena.gro_curve``) on a hand-made matrix, and the GRO stage's smoke
run with utility-matched nulls: every arm, nulls included, faces the same attackers; the curve's files and keys."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from recsec_lib.arena import gro_curve
from recsec_lib.arena.figures import curve_points
from recsec_lib.arena.matrix import MatrixResult
from recsec_lib.gro.null import NullCandidate

CHECK = Path("/work/shared/checks/attacker_sets.py")


def flat(value, seeds=0, users=4):
    """[U] (seeds = 0) or [S, U] per-user figures all equal to ``value``; users alternate value ± 0.01 so that a
    bootstrap interval has some width but the same mean."""
    row = np.array([value + (0.01 if u % 2 else -0.01) for u in range(users)])
    return row if seeds == 0 else np.stack([row] * seeds)


def hand_matrix():
    """A matrix of five arms at one attacker each (their strongest), four test and validation users:

    arm                         served valid/test   surrogate (2 attack seeds)
    None                        .20 / .20           .10
    GRO λ=0 (control)           .20 / .20           .10
    GRO λ=0 (control, seed +1)  .20 / .20           .095   -> noise floor 1 - .095/.10 = 5%
    GRO keep λ=1                .15 / .15           .06    -> retention 75%, fall vs control 40%
    Null: sasrec epoch 3        .15 / .15           .08    -> fall vs null 1 - .06/.08 = 25%
    """
    arms = [("None", "none", None, None, 0.20, 0.10), ("GRO λ=0 (control)", "gro-control", None, 0.0, 0.20, 0.10),
            ("GRO λ=0 (control, seed +1)", "control-replica", None, 0.0, 0.20, 0.095),
            ("GRO keep λ=1", "gro", "keep", 1.0, 0.15, 0.06), ("Null: sasrec epoch 3", "null", None, None, 0.15, 0.08)]
    rows, utility, runs = [], {}, {}
    for label, family, rule, lam, served, surrogate in arms:
        rows.append({"arm": label, "family": family, "rule": rule, "lam": lam, "output": "none", "worst": True,
                     "attacker": "naive", "generator": "autoregressive", "promoted_item": 1, "promoted_share": 0.1,
                     "promoted_share_none": 0.1})
        utility[label] = {"valid_ndcg": flat(served), "test_ndcg": flat(served)}
        runs[label, "naive", "autoregressive"] = [{"test_ndcg": flat(surrogate), "valid_ndcg": flat(surrogate)}
                                                  for _ in range(2)]
    return MatrixResult(pd.DataFrame(rows), [], utility, runs)


CANDIDATES = [NullCandidate("Null: sasrec epoch 2", 0.10, 2), NullCandidate("Null: sasrec epoch 3", 0.15, 3)]


def test_read_curve_judges_the_point_by_hand_against_control_null_and_noise():
    reading = gro_curve.read_curve(hand_matrix(), CANDIDATES, tolerance=0.05, replicates=50)
    (verdict,) = reading.verdicts
    assert reading.floor.point == pytest.approx(0.05)
    assert verdict.retention_valid == pytest.approx(0.75) and verdict.retention_test.point == pytest.approx(0.75)
    assert verdict.fall_vs_control.point == pytest.approx(0.40)
    assert verdict.fall_vs_null.point == pytest.approx(0.25)
    assert verdict.extraction_ratio.point == pytest.approx(0.06 / 0.15)
    assert reading.nulls == {"GRO keep λ=1": "Null: sasrec epoch 3"}
    # every user moves by the same ± 0.01 in both arms: the 25% fall's interval is above the 5% floor -> protects
    assert verdict.fall_vs_null.low > 0.05 and verdict.status == "protects"
    # retention 75% < the 95% floor: no best point, and the reason says so
    assert reading.best.verdict is None and "95%" in reading.best.reason
    assert reading.summaries["keep"].startswith("no protective λ")
    ratios = dict(zip(reading.extraction["arm"], reading.extraction["extraction_ratio"]))
    assert ratios["GRO λ=0 (control)"] == pytest.approx(0.5) and ratios["Null: sasrec epoch 3"] == pytest.approx(0.08 / 0.15)
    # at a 70% floor the point is the best one
    lenient = gro_curve.read_curve(hand_matrix(), CANDIDATES, tolerance=0.05, min_retention=0.7, replicates=50)
    assert lenient.best.verdict.label == "GRO keep λ=1"
    assert gro_curve.shown_point(lenient, "keep").label == "GRO keep λ=1"


def test_read_curve_without_a_close_null_or_a_control_says_so():
    far = [NullCandidate("Null: sasrec epoch 2", 0.10, 2)]  # 33% below the point's .15
    reading = gro_curve.read_curve(hand_matrix(), far, tolerance=0.05, replicates=50)
    assert reading.verdicts[0].status == "no null" and reading.nulls == {}
    # a matched snapshot that was not attacked: matched again among the attacked nulls (none here -> no null)
    unattacked = [NullCandidate("Null: sasrec epoch 9", 0.15, 9)]
    assert gro_curve.read_curve(hand_matrix(), unattacked, replicates=50).verdicts[0].status == "no null"
    matrix = hand_matrix()
    matrix.table = matrix.table[matrix.table["arm"] != "GRO λ=0 (control)"]
    with pytest.raises(ValueError, match="no 'GRO λ=0 \\(control\\)' arm"):
        gro_curve.read_curve(matrix, CANDIDATES, replicates=50)


def test_tables_and_curve_points_of_the_hand_matrix():
    reading = gro_curve.read_curve(hand_matrix(), CANDIDATES, tolerance=0.05, replicates=50)
    nulls = gro_curve.null_table(reading)
    assert list(nulls.columns) == list(gro_curve.NULL_TABLE_COLUMNS)
    row = nulls.iloc[0]
    assert row["surrogate fall vs null, % [95% CI]"].startswith("25.0 [") and row["verdict"] == "protects"
    assert "Null: sasrec epoch 3 (0.1500, +0.0%)" == row["null (same validation NDCG@10)"]
    assert gro_curve.null_table(gro_curve.CurveReading([], None, reading.best, {}, {}, reading.extraction,
                                                       reading.control)).empty


def test_budget_reading_without_a_checkable_budget_uses_the_smallest():
    budgets = gro_curve.budget_reading({500: hand_matrix(), 2000: hand_matrix()}, replicates=20)
    # the unaimed targets: None, the controls and the null; the null is 25% below the best: checkable
    assert set(budgets.checks) | set(budgets.problems) == {500, 2000}
    assert budgets.budget in (500, 2000) and budgets.reason


def test_the_second_budget_keeps_the_targets_the_first_budgets_check_compared():
    """The ML-1M side run measured at 2,000 × 100 only None, the controls, λ = 0.1 and its epoch-32 null: no target
    10% below the best, so its budget check could not be made. The first budget's pair now goes along."""
    from recsec_lib.arena.arms import Arm
    from recsec_lib.defenses.output.base import parse_output_defense
    from recsec_lib.study.stages import gro as stage

    matrix = hand_matrix()
    reading = gro_curve.read_curve(matrix, CANDIDATES, tolerance=0.05, replicates=50)
    none = parse_output_defense("none")
    arms = [Arm("None", "undefended", none, "", "none"), Arm("GRO λ=0 (control)", "lam0", none, "None", "gro-control"),
            Arm("GRO keep λ=1", "keep1", none, "GRO λ=0 (control)", "gro", 1.0, "keep"),
            Arm("Null: sasrec epoch 3", "epoch3", none, "GRO λ=0 (control)", "null")]
    settings = stage.Settings.for_profile("smoke").with_overrides(attack_sequences=20, bootstrap_replicates=20)
    references = stage.checked_labels(matrix, settings, seed=0)
    assert "Null: sasrec epoch 3" in references  # 25% below the best: the check's weaker target
    # a run whose shown points bring no weak null (here: no rule shown) still measures the check's pair again
    without = [arm.label for arm in stage.main_point_arms(arms, reading, rules=())]
    with_refs = [arm.label for arm in stage.main_point_arms(arms, reading, rules=(), references=references)]
    assert "Null: sasrec epoch 3" not in without and "Null: sasrec epoch 3" in with_refs
    assert "GRO keep λ=1" not in with_refs  # only the check's targets are added
    assert stage.checked_labels(MatrixResult(matrix.table.iloc[:3], [], matrix.utility, matrix.runs), settings, 0) == ()


# ---- the stage on the smoke profile, with utility-matched nulls -------------------------------------------------

SMOKE = {"lambdas": "0.5,1", "epochs": 1, "attack_sequences": 20, "surrogate_epochs": 2, "second_budget": 0,
         "output_defenses": "random,reverse", "combinations": ""}


def _snapshots(root: Path, run_dir: Path, dataset) -> dict[int, float]:
    """Snapshots of the fixture's training beside train/sasrec.pt: epoch 1 (one epoch of the same recipe) and
    epoch 4 (the target itself), each saved with the served validation NDCG@10 the stage matches on."""
    import torch

    from recsec_lib.gro.training import GROConfig, fresh_like, train_gro
    from recsec_lib.models.registry import build_model
    from recsec_lib.recommend.checkpoints import load_checkpoint, save_checkpoint
    from recsec_lib.study.stages.gro import served_valid_ndcg10

    target = run_dir / "train" / "sasrec.pt"
    torch.manual_seed(0)
    early = build_model("sasrec", dataset.num_items, 30, hidden=16)
    train_gro(early, fresh_like(early), dataset.train_sequences(), GROConfig(method="none", epochs=1, batch_size=32),
              progress=False)
    figures = {}
    for epoch, model in ((1, early), (4, load_checkpoint(target, dataset=dataset).model)):
        path = save_checkpoint(run_dir / "train" / f"sasrec_epoch{epoch}.pt", model, "sasrec", dataset,
                               metrics={"snapshot_epoch": epoch, "valid": {"ndcg@10": 0.0, "hr@10": 0.0}})
        ndcg = served_valid_ndcg10(path, dataset, 10, "cpu")
        save_checkpoint(path, model, "sasrec", dataset,
                        metrics={"snapshot_epoch": epoch, "valid": {"ndcg@10": ndcg, "hr@10": 0.0}})
        figures[epoch] = ndcg
    return figures


@pytest.fixture(scope="module")
def curve_run(gro_trained_run, tmp_path_factory):
    from recsec_lib.data.prepare import prepare_dataset
    from recsec_lib.study.stages import gro as stage
    from recsec_lib.study.stages.context import StudyContext

    root, _ = gro_trained_run
    run_dir = tmp_path_factory.mktemp("curve") / "run"
    (run_dir / "train").mkdir(parents=True)
    (run_dir / "train" / "sasrec.pt").write_bytes((root / "run" / "train" / "sasrec.pt").read_bytes())
    dataset = prepare_dataset("synthetic", data_dir=root / "data", mirror=None)
    snapshots = _snapshots(root, run_dir, dataset)
    ctx = StudyContext(run_dir=run_dir, dataset="synthetic", data_dir=root / "data", profile="smoke", device="cpu")
    settings = stage.Settings.for_profile("smoke").with_overrides(**SMOKE)
    return run_dir, stage.run(ctx, settings), snapshots


def test_stage_smoke_attacks_the_nulls_like_every_arm_and_writes_the_curve(curve_run):
    from recsec_lib.arena.tables import read_matrix_rows

    run_dir, metrics, snapshots = curve_run
    out = run_dir / "gro"
    for name in ("curve.csv", "curve_points.csv", "curve.png", "nulls.csv", "nulls.md", "extraction.csv",
                 "authors_units.csv", "authors_units.md", "matrix.csv", "frontier.png", "gro_lam0_replica1.pt"):
        assert (out / name).is_file(), name
    families = {row["arm"]: row["family"] for row in metrics["defenses"]}
    nulls = [arm for arm, family in families.items() if family == "null"]
    assert nulls and set(nulls) <= {"Null: sasrec epoch 1", "Null: sasrec epoch 4"}
    assert "GRO λ=0 (control, seed +1)" in families
    # every arm, the nulls and the control's second seed included, faced the same attackers
    faced = {}
    for row in metrics["defenses"]:
        faced.setdefault(row["arm"], set()).add((row["attacker"], row["generator"]))
    assert len({frozenset(v) for v in faced.values()}) == 1 and len(next(iter(faced.values()))) == 4
    if CHECK.is_file():
        done = subprocess.run([sys.executable, str(CHECK), str(out / "metrics.json")], capture_output=True, text=True)
        assert done.returncode == 0, done.stdout + done.stderr
    # one verdict per GRO point (2 λ × 2 rules), each with its words; every point has a null at smoke tolerance
    assert len(metrics["curve"]) == 4 and all(row["status"] for row in metrics["curve"])
    assert all(row["null"] for row in metrics["curve"]) and metrics["noise_floor"].startswith("training noise")
    assert [c["epoch"] for c in metrics["null_candidates"]] == [1, 4]
    assert metrics["null_candidates"][0]["valid_ndcg10"] == pytest.approx(snapshots[1])
    # the headline: the extraction ratio of the control, then a best point or the reason there is none
    headline = json.loads((run_dir / "headline.json").read_text())
    assert "gro_extraction_ratio_control" in headline and "gro_verdict_budget" in headline
    assert ("gro_best_point_retention" in headline and "gro_best_point_fall_vs_null_low" in headline
            and "gro_extraction_ratio_best" in headline) or "gro_no_point_reason" in headline
    assert {"gro_keep_curve_summary", "gro_lowest_index_curve_summary"} <= set(headline)
    # the curve figure's points: every arm at its strongest attacker, the GRO points and nulls among them
    points = read_matrix_rows(out / "curve_points.csv")  # "None" and "null" stay text
    assert set(points["family"]) >= {"gro", "null", "gro-control", "control-replica", "none", "paper"}
    authors = read_matrix_rows(out / "authors_units.csv")
    assert {"None", "Random (whole list)", "Reverse (whole list)", "GRO (keep), λ = 1"} <= set(authors["defense"])
    assert authors["source"].str.contains("reference only").any()


def test_curve_points_read_each_arm_at_its_strongest_attacker(curve_run):
    from recsec_lib.arena.tables import read_matrix_rows

    run_dir, metrics, _ = curve_run
    table = read_matrix_rows(run_dir / "gro" / "matrix.csv")
    points = curve_points(table)
    assert len(points) == table["arm"].nunique()
    gro = points[points["arm"] == "GRO keep λ=1"].iloc[0]
    row = next(r for r in metrics["defenses"] if r["arm"] == "GRO keep λ=1" and r["worst"])
    assert gro["x"] == pytest.approx(row["retention_test"]) and gro["y"] == pytest.approx(row["surrogate_test_ndcg10_drop"])
    assert (points["x_low"] <= points["x"] + 1e-12).all() and (points["y"] <= points["y_high"] + 1e-12).all()


def test_curve_metrics_of_a_from_scratch_run_and_the_verdicts_budget():
    """The headline of a from-scratch run carries its λ = 1 point's retention and fall against the control; the
    verdict reads the second budget only where the budget check chose it."""
    from recsec_lib.study.stages import gro as stage

    settings = stage.Settings.for_profile("smoke").with_overrides(from_scratch=True, zero_gradient_rules="keep",
                                                                  bootstrap_replicates=50)
    reading = gro_curve.read_curve(hand_matrix(), CANDIDATES, tolerance=0.05, replicates=50)
    defended = stage.Defended(hand_matrix(), [], {}, {}, {}, reading=reading)
    metrics = stage.curve_metrics(settings, defended)
    headline = metrics["headline"]
    assert headline["gro_scratch_point"] == "GRO keep λ=1"
    assert headline["gro_scratch_utility_retention"] == pytest.approx(0.75)
    assert headline["gro_scratch_surrogate_ndcg10_drop"] == pytest.approx(0.40)
    assert headline["gro_noise_floor"] == pytest.approx(0.05) and "95%" in headline["gro_no_point_reason"]
    assert headline["gro_extraction_ratio_control"] == pytest.approx(0.5)
    assert headline["gro_verdict_budget"] == f"{settings.attack_sequences}×{settings.attack_seq_len}"
    assert metrics["curve"][0]["status"] == "protects" and "PROTECTS" in metrics["curve_words"][0]
    # a second budget chosen by the check: the headline reads its reading
    lenient = gro_curve.read_curve(hand_matrix(), CANDIDATES, tolerance=0.05, min_retention=0.7, replicates=50)
    defended.second, defended.second_reading = hand_matrix(), lenient
    defended.budgets = gro_curve.BudgetReading({}, {}, settings.second_budget, "chosen")
    assert stage.verdict_reading(settings, defended) == (lenient, settings.second_budget)
    headline = stage.curve_metrics(settings, defended)["headline"]
    assert headline["gro_best_point"] == "GRO keep λ=1" and headline["gro_best_point_fall_vs_null"] == pytest.approx(0.25)
    assert headline["gro_verdict_budget"] == f"{settings.second_budget}×{settings.attack_seq_len}"


def test_curve_figure_draws_the_rules_the_nulls_and_the_noise_band(curve_run):
    from recsec_lib.arena.figures import curve_figure
    from recsec_lib.arena.tables import read_matrix_rows

    run_dir, metrics, _ = curve_run
    points = read_matrix_rows(run_dir / "gro" / "curve_points.csv")
    for floor, words in (((-0.10, 0.05), "95% CI [-10.0%, 5.0%]"), (0.03, "±3.0%")):
        labels = curve_figure(points, floor).axes[0].get_legend_handles_labels()[1]
        assert any(words in label for label in labels), labels
        assert {"GRO, rule keep (λ ↑)", "GRO, rule lowest_index (λ ↑)"} <= set(labels)
        assert any(label.endswith("Null: sasrec epoch 4 vs GRO λ=0 (control)") for label in labels)
    assert metrics["noise_floor_interval"][0] <= metrics["noise_floor_interval"][1]
