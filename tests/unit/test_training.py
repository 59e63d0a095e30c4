"""Training loop, evaluation and the train stage on tiny synthetic data."""

import dataclasses
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from recsec_lib.data.synthetic import make_synthetic_dataset
from recsec_lib.recommend.evaluation import evaluate_model, recommend
from recsec_lib.recommend.metrics import rank_of_targets, ranking_metrics
from recsec_lib.models.registry import build_model
from recsec_lib.recommend.training import TrainConfig, train_model, training_matrix

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny models run faster on one thread, above all on a busy machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


FAST = TrainConfig(epochs=8, batch_size=32, lr=5e-3, patience=0, seed=1)


@pytest.fixture(scope="module")
def data():
    return make_synthetic_dataset(num_users=150, num_items=40, max_len=20, seed=0)


def popularity_hr10(dataset) -> float:
    """HR@10 of ranking by training popularity (seen items filtered), the bar a sequential model must beat."""
    inputs, targets = dataset.split("test")
    scores = torch.tensor(dataset.item_popularity(), dtype=torch.float32).repeat(len(inputs), 1)
    history = torch.from_numpy(np.stack([np.pad(s, (30 - len(s), 0)) for s in inputs]))
    return ranking_metrics(rank_of_targets(scores, torch.from_numpy(targets), history), ks=(10,))["hr@10"]


def test_training_matrix_keeps_users_with_two_items_and_one_extra_column(data):
    matrix = training_matrix(data, 20)
    assert matrix.shape[1] == 21
    assert matrix.shape[0] == sum(len(s) >= 2 for s in data.train_sequences())
    # Every user with 3 items: 1 training item each, nothing to predict.
    empty = dataclasses.replace(data, offsets=np.arange(0, 3 * 4, 3), items_flat=data.items_flat[:9])
    with pytest.raises(ValueError, match="no user with at least 2 training items"):
        training_matrix(empty, 5)


def test_training_windows_by_hand():
    from recsec_lib.recommend.sequences import training_windows

    ten = list(range(1, 11))
    assert [w.tolist() for w in training_windows([ten], 4, "all")] == [[7, 8, 9, 10], [4, 5, 6, 7], [1, 2, 3, 4]]
    assert [w.tolist() for w in training_windows([ten], 4, "newest")] == [[7, 8, 9, 10]]
    # 11 items: the oldest row is short (2 items, one target); a sequence that fits is one row either way
    assert [w.tolist() for w in training_windows([list(range(1, 12))], 4, "all")] == [
        [8, 9, 10, 11], [5, 6, 7, 8], [2, 3, 4, 5], [1, 2]]
    assert [w.tolist() for w in training_windows([[5, 6]], 4, "all")] == [[5, 6]]
    with pytest.raises(ValueError, match="'windows'"):
        training_windows([ten], 4, "every")
    with pytest.raises(ValueError, match="span"):
        training_windows([ten], 1, "all")


def test_all_windows_make_every_item_but_the_first_a_target_once(data):
    """The targets of the "all" matrix (each row's items after its first) are each user's items 2..n, once."""
    rows = training_matrix(data, 5, windows="all")  # [R, 6]: long histories are cut into many rows
    assert rows.shape[0] > training_matrix(data, 5).shape[0]
    targets = sorted(int(x) for row in rows for x in row[np.flatnonzero(row)[1:]])
    expected = sorted(int(x) for seq in data.train_sequences() if len(seq) >= 2 for x in seq[1:])
    assert targets == expected
    with pytest.raises(ValueError, match="windows"):
        TrainConfig(windows="every")


def test_a_checkpoint_from_before_windows_resumes_as_newest(data, tmp_path):
    """Checkpoints written before TrainConfig.windows existed were trained on the newest window."""
    path = tmp_path / "old.pt"
    config = dataclasses.replace(FAST, epochs=3, max_train_seconds=1e-9)  # stops (resumably) after epoch 1
    train_model(build_model("sasrec", data.num_items, data.max_len), data, config, checkpoint_path=path,
                progress=False)
    payload = torch.load(path, weights_only=False)
    del payload["training_state"]["train_config"]["windows"]
    torch.save(payload, path)
    config = dataclasses.replace(config, max_train_seconds=None)
    result = train_model(build_model("sasrec", data.num_items, data.max_len), data,
                         dataclasses.replace(config, epochs=2), checkpoint_path=path, progress=False)
    assert result.epochs_run == 2
    with pytest.raises(ValueError, match="windows"):
        train_model(build_model("sasrec", data.num_items, data.max_len), data,
                    dataclasses.replace(config, epochs=3, windows="all"), checkpoint_path=path, progress=False)


@pytest.mark.parametrize("name", ["sasrec", "narm", "meanemb"])
def test_tiny_training_beats_popularity(data, name):
    torch.manual_seed(0)
    sizes = {"sasrec": {"hidden": 32}, "narm": {"embedding_dim": 32, "hidden": 32}, "meanemb": {}}[name]
    model = build_model(name, data.num_items, data.max_len, **sizes)
    result = train_model(model, data, FAST, progress=False)
    assert len(result.history) == 8 and result.stop_reason == "epochs"
    assert result.history[-1]["loss"] < result.history[0]["loss"]
    assert 1 <= result.best_epoch <= 8
    test = evaluate_model(result.model, data, "test")
    if name != "meanemb":  # the planted "next id" pattern is sequential: popularity cannot find it
        assert test["hr@10"] > popularity_hr10(data) + 0.1
    for key in ("hr@1", "ndcg@10", "mrr", "unfiltered_hr@10", "sampled_hr@10"):
        assert 0.0 <= test[key] <= 1.0
    assert test["hr@10"] >= test["unfiltered_hr@10"]  # filtering can only lift the target
    assert test["users"] == data.num_users


def test_early_stopping_and_time_cap(data):
    torch.manual_seed(0)
    model = build_model("meanemb", data.num_items, data.max_len, embedding_dim=8)
    # lr 0 -> validation never improves after the first evaluation -> stop after 1 + patience evaluations
    result = train_model(model, data, TrainConfig(epochs=20, lr=1e-12, patience=2, batch_size=64), progress=False)
    assert result.stop_reason == "early_stop" and result.epochs_run == 3 and result.best_epoch == 1
    capped = train_model(build_model("meanemb", data.num_items, data.max_len, embedding_dim=8), data,
                         TrainConfig(epochs=20, batch_size=64, max_train_seconds=1e-9), progress=False)
    assert capped.stop_reason == "time_cap" and capped.epochs_run == 1 and not capped.complete


def test_recommend_returns_unseen_items_in_batches(data):
    torch.manual_seed(0)
    model = build_model("sasrec", data.num_items, data.max_len, hidden=16)
    histories = [data.sequence(u)[:-1] for u in range(7)]
    top = recommend(model, histories, k=5, batch_size=3)
    assert top.shape == (7, 5) and top.dtype == np.int64
    for row, history in zip(top, histories):
        assert len(set(row)) == 5 and not set(row) & set(history.tolist()) and 0 not in row
    # Same lists whatever the batch size (batches are sorted by length internally).
    np.testing.assert_array_equal(top, recommend(model, histories, k=5, batch_size=100))
    with pytest.raises(ValueError, match="k must be in 1..40"):
        recommend(model, histories, k=41)
    with pytest.raises(ValueError, match="cannot return 39 unseen items"):
        recommend(model, histories, k=39)


def test_evaluation_order_does_not_matter_and_errors(data):
    torch.manual_seed(0)
    model = build_model("sasrec", data.num_items, data.max_len, hidden=16)
    small_batches = evaluate_model(model, data, "valid", batch_size=7)
    one_batch = evaluate_model(model, data, "valid", batch_size=1000)
    for key in ("hr@10", "ndcg@10", "unfiltered_mrr", "sampled_hr@10"):
        assert small_batches[key] == pytest.approx(one_batch[key])
    assert evaluate_model(model, data, filter_seen=False)["hr@10"] == pytest.approx(
        evaluate_model(model, data)["unfiltered_hr@10"])
    with pytest.raises(ValueError, match="unknown split"):
        evaluate_model(model, data, "train")
    with pytest.raises(ValueError, match="model has 39 items"):
        evaluate_model(build_model("meanemb", 39, 20), data)


@pytest.mark.parametrize("field, value, message", [
    ("epochs", 0, "TrainConfig.epochs must be positive"),
    ("batch_size", -1, "TrainConfig.batch_size must be positive"),
    ("patience", -1, "TrainConfig.patience must be >= 0"),
    ("lr", 0.0, "TrainConfig.lr must be positive"),
    ("weight_decay", -1.0, "TrainConfig.weight_decay must be >= 0"),
    ("max_train_seconds", 0.0, "TrainConfig.max_train_seconds must be positive"),
])
def test_train_config_errors(field, value, message):
    with pytest.raises(ValueError, match=message):
        TrainConfig(**{field: value})


def test_train_stage_smoke(tmp_path, monkeypatch):
    from recsec_lib.study.stages import train as stage
    from recsec_lib.study.stages.context import StudyContext

    data = make_synthetic_dataset(num_users=60, num_items=30, max_len=20)
    monkeypatch.setattr(StudyContext, "load_dataset", lambda self: data)
    ctx = StudyContext(run_dir=tmp_path, dataset="synthetic", device="cpu", profile="smoke", seed=3)
    settings = stage.Settings.for_profile("smoke").with_overrides(epochs=2, embedding_dim=16, models="meanemb,sasrec")
    metrics = stage.run(ctx, settings)
    out = tmp_path / "train"
    for name in ("meanemb", "sasrec"):
        assert (out / f"{name}.pt").exists() and (out / f"{name}_history.csv").exists()
        assert metrics["models"][name]["test"]["hr@10"] >= 0
        assert "unfiltered_hr@10" in metrics["models"][name]["test"]
    assert (out / "curves.png").stat().st_size > 0
    headline = json.loads((tmp_path / "headline.json").read_text())
    assert {"meanemb_test_hr10", "sasrec_test_ndcg10", "sasrec_cpu_epoch_seconds"} <= set(headline)
    assert "narm_test_hr10" not in headline
    assert metrics["wall_seconds"] > 0 and metrics["peak_memory_mb"] > 0
    # A rerun finds the finished checkpoints and does not train again.
    again = stage.run(ctx, settings)
    assert again["models"]["sasrec"]["stop_reason"] == "cached"
    assert again["models"]["sasrec"]["test"]["hr@10"] == pytest.approx(metrics["models"]["sasrec"]["test"]["hr@10"])
    # Trained here: the pace is the history's; reused: it is timed again on this machine, not copied.
    first_record, reused_record = metrics["models"]["sasrec"], again["models"]["sasrec"]
    assert first_record["epoch_seconds_here"] == first_record["epoch_seconds"]
    assert reused_record["epoch_seconds_here"] > 0 and reused_record["epoch_seconds"] == first_record["epoch_seconds"]
    # A finished checkpoint in pretrained_dir is reused by a new run; one trained otherwise is not.
    pretrained = tmp_path / "pretrained"
    pretrained.mkdir()
    shutil.copyfile(out / "sasrec.pt", pretrained / "sasrec_synthetic.pt")
    shutil.copyfile(out / "meanemb.pt", pretrained / "meanemb_synthetic.pt")
    fresh = dataclasses.replace(ctx, run_dir=tmp_path / "second")
    reused = stage.run(fresh, settings.with_overrides(pretrained_dir=str(pretrained), embedding_dim=8))
    assert reused["models"]["sasrec"]["stop_reason"] == "cached"
    assert reused["models"]["meanemb"]["stop_reason"] == "epochs"  # other embedding size: trained anew
    # A partial (time-capped) pretrained checkpoint is resumed up to the stage's epochs.
    partial = pretrained / "sasrec_synthetic.pt"
    partial.unlink()
    capped = dataclasses.replace(settings.train_config(ctx.seed), max_train_seconds=1e-9)
    first = train_model(build_model("sasrec", data.num_items, data.max_len), data, capped, checkpoint_path=partial,
                        progress=False)
    assert first.epochs_run == 1 and not first.complete
    resumed = stage.run(dataclasses.replace(ctx, run_dir=tmp_path / "third"),
                        settings.with_overrides(pretrained_dir=str(pretrained), models="sasrec"))
    assert resumed["models"]["sasrec"]["epochs_run"] == 2 and resumed["models"]["sasrec"]["stop_reason"] == "epochs"


def test_stage_settings_profiles_and_errors():
    from recsec_lib.study.stages import train as stage

    assert stage.Settings.for_profile("cpu").models == ("meanemb", "sasrec")
    assert stage.Settings.for_profile("full").models == ("meanemb", "sasrec", "narm", "bert4rec")
    assert stage.Settings.for_profile("cpu").with_overrides(epochs=None, lr=0.01).lr == 0.01
    with pytest.raises(ValueError, match="unknown profile"):
        stage.Settings.for_profile("huge")
    with pytest.raises(ValueError, match="unknown setting 'epoch' .*train.Settings; did you mean 'epochs'"):
        stage.Settings().with_overrides(epoch=3)
    with pytest.raises(ValueError, match="must name some of"):
        stage.Settings(models=("gru4rec",))


def test_cli_train_then_evaluate(tmp_path, monkeypatch, capsys):
    from recsec_lib.cli import main

    monkeypatch.delenv("RECSEC_DATA_MIRROR", raising=False)
    checkpoint = tmp_path / "meanemb.pt"
    common = ["--dataset", "synthetic", "--data-dir", str(tmp_path / "data"), "--device", "cpu"]
    assert main(["train", "--model", "meanemb", "--epochs", "2", "--embedding-dim", "16", "--output", str(checkpoint),
                 *common]) == 0
    trained = capsys.readouterr().out
    assert "full ranking, seen filtered" in trained and checkpoint.exists()
    assert main(["evaluate", "--checkpoint", str(checkpoint), "--split", "valid", "--data-dir",
                 str(tmp_path / "data"), "--device", "cpu"]) == 0
    assert "meanemb" in capsys.readouterr().out
    assert main(["evaluate", "--checkpoint", str(tmp_path / "missing.pt")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["train", "--embedding-dim", "-3", *common]) == 2
    assert "--embedding-dim must be positive" in capsys.readouterr().err


def test_train_stage_gives_the_baseline_its_own_epochs():
    """The cpu profile trains the seed's baseline for 5 epochs (the seed: 30), the targets for up to 40."""
    from recsec_lib.study.stages.train import Settings

    cpu = Settings.for_profile("cpu")
    assert cpu.train_config(0, "meanemb").epochs == 5
    assert cpu.train_config(0, "sasrec").epochs == 40
    assert Settings(epochs=7).train_config(0, "meanemb").epochs == 7  # 0 = the same as every model


def test_time_training_epoch_times_a_copy_and_scales_to_the_epoch(data):
    from recsec_lib.recommend.training import time_training_epoch

    torch.manual_seed(0)
    model = build_model("sasrec", data.num_items, data.max_len, hidden=16)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    seconds = time_training_epoch(model, data, batch_size=8, max_batches=2)
    assert seconds > 0
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # the model itself is untouched


def _weights_equal(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_snapshots_keep_the_weights_of_their_epoch_with_validation_figures(data, tmp_path):
    """Snapshot N holds the weights after epoch N (not the best so far) and their validation NDCG@10, also on an
    epoch that was not a validation epoch; the checkpoint's training state after the last epoch is the same weights."""
    from recsec_lib.recommend.checkpoints import load_checkpoint
    from recsec_lib.recommend.training import snapshot_path, snapshot_record

    torch.manual_seed(0)
    path = tmp_path / "sasrec.pt"
    config = dataclasses.replace(FAST, epochs=3, eval_every=2, snapshot_epochs=(3, 1))
    assert config.snapshot_epochs == (1, 3)  # kept sorted
    result = train_model(build_model("sasrec", data.num_items, data.max_len, hidden=16), data, config,
                         checkpoint_path=path, progress=False)
    assert set(result.snapshots) == {1, 3} and result.snapshots[1] == tmp_path / "sasrec_epoch1.pt"
    assert snapshot_path(path, 3).name == "sasrec_epoch3.pt"
    last = torch.load(path, weights_only=True)["training_state"]["current_state_dict"]
    assert _weights_equal(load_checkpoint(snapshot_path(path, 3), data).model.state_dict(), last)
    for epoch in (1, 3):
        record = snapshot_record(snapshot_path(path, epoch))
        assert record["epoch"] == epoch
        measured = evaluate_model(load_checkpoint(snapshot_path(path, epoch), data).model, data, "valid",
                                  ks=(10,), sampled=False, unfiltered=False)
        assert record["valid_ndcg10"] == pytest.approx(measured["ndcg@10"])
    assert "valid_ndcg@10" not in result.history[0]  # epoch 1 was measured for its snapshot only
    assert snapshot_record(snapshot_path(path, 3))["valid_ndcg10"] == pytest.approx(result.history[2]["valid_ndcg@10"])
    with pytest.raises(ValueError, match="not a training snapshot"):
        snapshot_record(path)


def test_snapshots_of_a_resumed_run_match_an_uninterrupted_one(data, tmp_path):
    from recsec_lib.recommend.checkpoints import load_checkpoint
    from recsec_lib.recommend.training import snapshot_path

    config = dataclasses.replace(FAST, epochs=3, snapshot_epochs=(1, 2, 3))

    def fresh():
        torch.manual_seed(5)
        return build_model("sasrec", data.num_items, data.max_len, hidden=16)

    straight = tmp_path / "straight" / "m.pt"
    train_model(fresh(), data, config, checkpoint_path=straight, progress=False)
    broken = tmp_path / "broken" / "m.pt"
    first = train_model(fresh(), data, dataclasses.replace(config, max_train_seconds=1e-9), checkpoint_path=broken,
                        progress=False)
    assert first.epochs_run == 1 and set(first.snapshots) == {1}
    resumed = train_model(fresh(), data, config, checkpoint_path=broken, progress=False)
    assert resumed.epochs_run == 3 and set(resumed.snapshots) == {1, 2, 3}
    for epoch in (1, 2, 3):
        assert _weights_equal(load_checkpoint(snapshot_path(straight, epoch)).model.state_dict(),
                              load_checkpoint(snapshot_path(broken, epoch)).model.state_dict())
    cached = train_model(fresh(), data, config, checkpoint_path=broken, progress=False)
    assert cached.stop_reason == "cached" and set(cached.snapshots) == {1, 2, 3}


def test_regenerated_snapshots_repeat_the_original_trajectory(data, tmp_path):
    from recsec_lib.recommend.checkpoints import load_checkpoint
    from recsec_lib.recommend.training import missing_snapshots, regenerate_snapshots, snapshot_path

    def fresh():
        torch.manual_seed(7)
        return build_model("sasrec", data.num_items, data.max_len, hidden=16)

    config = dataclasses.replace(FAST, epochs=3)
    with_snapshots = tmp_path / "a" / "m.pt"
    train_model(fresh(), data, dataclasses.replace(config, snapshot_epochs=(2,)), checkpoint_path=with_snapshots,
                progress=False)
    without = tmp_path / "b" / "m.pt"
    train_model(fresh(), data, config, checkpoint_path=without, progress=False)
    assert missing_snapshots(without, (2, 3)) == [2, 3]
    paths = regenerate_snapshots(fresh, data, config, without, [2], progress=False)
    assert paths == {2: snapshot_path(without, 2)} and missing_snapshots(without, (2,)) == []
    assert not (tmp_path / "b" / "m_snapshotrun.pt").exists()
    assert _weights_equal(load_checkpoint(snapshot_path(with_snapshots, 2)).model.state_dict(),
                          load_checkpoint(snapshot_path(without, 2)).model.state_dict())
    assert regenerate_snapshots(fresh, data, config, without, [], progress=False) == {}


@pytest.mark.parametrize("value", [(0,), (2, 2), (True,), (1.5,)])
def test_snapshot_epochs_errors(value):
    with pytest.raises(ValueError, match="TrainConfig.snapshot_epochs must be distinct positive epoch numbers"):
        TrainConfig(snapshot_epochs=value)


def test_snapshots_need_a_checkpoint_path(data):
    with pytest.raises(ValueError, match="snapshot_epochs needs a checkpoint_path"):
        train_model(build_model("meanemb", data.num_items, data.max_len, embedding_dim=8), data,
                    dataclasses.replace(FAST, snapshot_epochs=(1,)), progress=False)


def test_train_stage_keeps_snapshots_and_makes_the_missing_ones_of_a_reused_checkpoint(tmp_path, monkeypatch):
    from recsec_lib.study.stages import train as stage
    from recsec_lib.study.stages.context import StudyContext

    data = make_synthetic_dataset(num_users=60, num_items=30, max_len=20)
    monkeypatch.setattr(StudyContext, "load_dataset", lambda self: data)
    ctx = StudyContext(run_dir=tmp_path / "first", dataset="synthetic", device="cpu", profile="smoke", seed=3)
    settings = stage.Settings.for_profile("smoke").with_overrides(epochs=3, embedding_dim=8,
                                                                  snapshot_epochs=(1, 2, 5))
    metrics = stage.run(ctx, settings)
    out = ctx.run_dir / "train"
    assert (out / "sasrec_epoch1.pt").exists() and (out / "sasrec_epoch2.pt").exists()
    assert not list(out.glob("meanemb_epoch*.pt")) and not (out / "sasrec_epoch5.pt").exists()  # never reached
    records = metrics["models"]["sasrec"]["snapshots"]
    assert [r["epoch"] for r in records] == [1, 2] and metrics["models"]["meanemb"]["snapshots"] == []
    assert all(r["valid_ndcg10"] == pytest.approx(r["history_valid_ndcg10"]) for r in records)
    # A pretrained checkpoint without snapshots: they are trained again, on the same trajectory.
    pretrained = tmp_path / "pretrained"
    pretrained.mkdir()
    shutil.copyfile(out / "sasrec.pt", pretrained / "sasrec_synthetic.pt")
    reused = stage.run(dataclasses.replace(ctx, run_dir=tmp_path / "second"),
                       settings.with_overrides(pretrained_dir=str(pretrained), models="sasrec"))
    assert reused["models"]["sasrec"]["stop_reason"] == "cached"
    again = reused["models"]["sasrec"]["snapshots"]
    assert [r["epoch"] for r in again] == [1, 2]
    assert [r["valid_ndcg10"] for r in again] == pytest.approx([r["valid_ndcg10"] for r in records])
    assert not (tmp_path / "second" / "train" / "sasrec_snapshotrun.pt").exists()
    # One that has them brings them along (no training).
    shutil.copyfile(out / "sasrec_epoch1.pt", pretrained / "sasrec_synthetic_epoch1.pt")
    shutil.copyfile(out / "sasrec_epoch2.pt", pretrained / "sasrec_synthetic_epoch2.pt")
    called = []
    monkeypatch.setattr(stage, "regenerate_snapshots", lambda *a, **k: called.append(a))
    third = stage.run(dataclasses.replace(ctx, run_dir=tmp_path / "third"),
                      settings.with_overrides(pretrained_dir=str(pretrained), models="sasrec"))
    assert not called and [r["epoch"] for r in third["models"]["sasrec"]["snapshots"]] == [1, 2]


def test_a_run_interrupted_after_an_epoch_that_was_not_the_best_resumes_from_that_epoch(data, tmp_path):
    """The training state keeps the CURRENT weights: a resumed run continues from the interrupted epoch, not from the
    best one (whose weights the checkpoint's model holds), and so repeats the uninterrupted run exactly."""
    config = dataclasses.replace(FAST, epochs=5, lr=5e-3)

    def fresh():
        torch.manual_seed(0)
        return build_model("sasrec", data.num_items, data.max_len, hidden=16)

    straight = train_model(fresh(), data, config, checkpoint_path=tmp_path / "a.pt", progress=False)
    ndcg = [row["valid_ndcg@10"] for row in straight.history]
    assert any(ndcg[e] < max(ndcg[:e]) for e in range(1, 4))  # an interrupted epoch (1-4) that is not the best
    path = tmp_path / "b.pt"
    for _ in range(4):  # stop (resumably) after each of epochs 1-4
        train_model(fresh(), data, dataclasses.replace(config, max_train_seconds=1e-9), checkpoint_path=path,
                    progress=False)
    resumed = train_model(fresh(), data, config, checkpoint_path=path, progress=False)
    assert [row["loss"] for row in resumed.history] == [row["loss"] for row in straight.history]
    assert [row["valid_ndcg@10"] for row in resumed.history] == [row["valid_ndcg@10"] for row in straight.history]
