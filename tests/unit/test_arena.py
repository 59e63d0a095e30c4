"""The arena on tiny synthetic data: every arm meets every attacker, identical cells give identical numbers."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import torch

from recsec_lib.arena.arms import UNDEFENDED, Arm, none_arm, output_arms
from recsec_lib.arena.attackers import AttackSet
from recsec_lib.arena.cells import DatasetRef, MatrixCell, executor_runner, run_cell
from recsec_lib.arena.matrix import evaluate
from recsec_lib.arena.tables import best_frontier_arm, frontier_table, save_matrix_tables
from recsec_lib.attack.surrogate import SurrogateSettings
from recsec_lib.common.executor import CellStore, ExecutorConfig
from recsec_lib.defenses.output import parse_output_defense
from recsec_lib.models.registry import build_model
from recsec_lib.recommend.checkpoints import save_checkpoint
from recsec_lib.recommend.training import TrainConfig, train_model


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """The generated "synthetic" dataset, a briefly trained SASRec and a second one (a stand-in defended model)."""
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("arena")
    ref = DatasetRef("synthetic", data_dir=str(root / "data"))
    dataset = ref.load()
    paths = {}
    for key, epochs in ((UNDEFENDED, 3), ("weaker", 1)):
        torch.manual_seed(0)
        model = build_model("sasrec", dataset.num_items, dataset.max_len, hidden=16, blocks=1)
        model = train_model(model, dataset, TrainConfig(epochs=epochs, batch_size=64, patience=0, seed=0),
                            progress=False).model
        paths[key] = save_checkpoint(root / f"{key}.pt", model, "sasrec", dataset)
    attack = AttackSet(generators=("autoregressive",), seeds=(0, 1), num_sequences=12, seq_len=6, k=20,
                       arch="sasrec", surrogate=SurrogateSettings(epochs=2, batch_size=8, patience=0, min_epochs=0),
                       box_filter_seen=False)
    return dataset, ref, paths, attack


def arms() -> list[Arm]:
    return [none_arm(), *output_arms(["top:10", "tail-resample:10", "reverse"]),
            Arm("weaker model", "weaker", parse_output_defense("none"), "None", "null")]


def test_every_arm_faces_the_same_attackers_and_serving_fewer_ranks_cannot_help(world):
    dataset, ref, paths, attack = world
    result = evaluate(paths, arms(), dataset, ref, attack, replicates=50)
    table = result.table
    faced = {arm: frozenset(zip(part["attacker"], part["generator"])) for arm, part in table.groupby("arm")}
    assert len(set(faced.values())) == 1 and len(next(iter(faced.values()))) == 4
    # top-10 only, naive attacker == the undefended box's top-10 attacker: the same surrogate, to the bit
    top = table[(table["arm"] == "top-10 only") & (table["attacker"] == "naive")].iloc[0]
    none_top10 = table[(table["arm"] == "None") & (table["attacker"] == "top-10")].iloc[0]
    assert top["surrogate_test_ndcg10"] == none_top10["surrogate_test_ndcg10"]
    assert top["agr10_test"] == none_top10["agr10_test"]
    # falls are measured against the strongest attacker of the reference's MODEL behind any output defense
    # (an attacker of the undefended box can post-process its own lists): no output defense can show as
    # helping the attacker, and the strongest of all has a fall of exactly 0
    output_rows = table[table["model"] == UNDEFENDED]
    assert (output_rows["surrogate_test_ndcg10_drop"] >= -1e-12).all()
    assert output_rows["surrogate_test_ndcg10_drop"].min() == pytest.approx(0.0, abs=1e-12)
    assert (output_rows["agr10_test_drop"] >= -1e-12).all()
    # the knowing attacker of a reversed list reads it backwards: the same surrogate as None's naive one
    rev = table[(table["arm"] == "Reverse") & (table["attacker"] == "knowing")].iloc[0]
    none_naive = table[(table["arm"] == "None") & (table["attacker"] == "naive")].iloc[0]
    assert rev["surrogate_test_ndcg10"] == none_naive["surrogate_test_ndcg10"]
    frontier = frontier_table(table)
    assert list(frontier["defense"]) == [arm.label for arm in arms()]
    assert best_frontier_arm(table)["arm"] != "weaker model"  # a null is a measurement, not a defense
    shared = {entry["surrogate"] for entry in result.surrogates}
    assert len(shared) < len(table) * 2  # views that see the same data share their surrogate


def test_identical_cells_give_identical_numbers(world):
    dataset, ref, paths, attack = world
    top10 = {"valid": np.zeros((dataset.num_users, 10), dtype=np.int64),
             "test": np.zeros((dataset.num_users, 10), dtype=np.int64)}
    cell = MatrixCell(UNDEFENDED, str(paths[UNDEFENDED]), ref, (("None", "none"), ("tail", "tail-resample:10")),
                      "autoregressive", 3, attack, top10)
    first, second = run_cell(cell), run_cell(replace(cell))
    assert first.figures.keys() == second.figures.keys()
    for key in first.figures:
        for name, values in first.figures[key].items():
            assert np.array_equal(values, second.figures[key][name]), (key, name)
    assert cell.key == replace(cell).key and cell.key != replace(cell, seed=4).key


@pytest.mark.parametrize("config", [ExecutorConfig(workers=2), ExecutorConfig(workers=None, cluster="local")],
                         ids=["pool", "ray"])
def test_the_matrix_is_the_same_serially_on_a_pool_and_on_ray(world, config, tmp_path):
    if config.cluster:
        pytest.importorskip("ray", reason="the cluster extra (pip install -e .[cluster]) is not installed")
    dataset, ref, paths, attack = world
    small = replace(attack, seeds=(0, 1), views=("naive", "top-10"))
    arms_ = [none_arm(), *output_arms(["top:10"]), Arm("weaker model", "weaker", parse_output_defense("none"),
                                                       "None", "null")]
    serial_table = evaluate(paths, arms_, dataset, ref, small, replicates=20).table
    store = CellStore(tmp_path / "cells")
    other = evaluate(paths, arms_, dataset, ref, small, replicates=20,
                     run_cells=executor_runner(replace(config, workers=config.workers or 2), store)).table
    pd.testing.assert_frame_equal(serial_table, other)
    # a rerun with the store computes nothing: every cell is read back
    again = evaluate(paths, arms_, dataset, ref, small, replicates=20,
                     run_cells=executor_runner(ExecutorConfig(), store)).table
    pd.testing.assert_frame_equal(serial_table, again)


def test_the_tables_are_written_and_read_back(world, tmp_path):
    from recsec_lib.arena.tables import read_matrix_rows

    dataset, ref, paths, attack = world
    table = evaluate({UNDEFENDED: paths[UNDEFENDED]}, [none_arm(), *output_arms(["top:10"])], dataset, ref,
                     replace(attack, seeds=(0,), views=("naive", "top-10")), replicates=20).table
    written = save_matrix_tables(table, tmp_path)
    again = read_matrix_rows(written["matrix_csv"])
    assert list(again["arm"].unique()) == ["None", "top-10 only"]
    assert frontier_table(again).shape[0] == 2
    assert isinstance(pd.read_csv(written["gro_csv"]), pd.DataFrame)


def test_matrix_errors_name_the_arm(world):
    dataset, ref, paths, attack = world
    with pytest.raises(ValueError, match="first arm must be the None arm"):
        evaluate(paths, output_arms(["top:10"]), dataset, ref, attack)
    with pytest.raises(ValueError, match="no model 'gro'"):
        evaluate(paths, [none_arm(), Arm("GRO", "gro", parse_output_defense("none"), "None", "gro")], dataset, ref,
                 attack)
    with pytest.raises(ValueError, match="unknown attacker view"):
        AttackSet(views=("naive", "clever"))
