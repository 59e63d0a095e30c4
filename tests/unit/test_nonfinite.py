"""Diverged training (NaN or infinite losses and scores) stops with an error in every training loop."""

import math

import numpy as np
import pytest
import torch

from recsec_lib.attack.queries import AttackData
from recsec_lib.data.synthetic import make_synthetic_dataset
from recsec_lib.recommend.evaluation import evaluate_model
from recsec_lib.gro.training import GROConfig, train_gro
from recsec_lib.models.registry import build_model
from recsec_lib.attack.surrogate import SurrogateSettings, fit_surrogate
from recsec_lib.recommend.training import NonFiniteError, TrainConfig, raise_if_not_finite, train_model


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def data():
    return make_synthetic_dataset(num_users=40, num_items=20, max_len=8, seed=0)


def nan_model(num_items: int, max_len: int):
    """A MeanEmbedding model whose weights are all NaN: every loss and every score is NaN."""
    model = build_model("meanemb", num_items, max_len, embedding_dim=4)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.fill_(math.nan)
    return model


def test_raise_if_not_finite_names_what():
    assert raise_if_not_finite(torch.tensor(1.5), "x") == 1.5
    for bad in (math.nan, math.inf, -math.inf):
        with pytest.raises(NonFiniteError, match="sasrec loss at epoch 3, batch 7 is"):
            raise_if_not_finite(bad, "sasrec loss at epoch 3, batch 7")


def test_training_stops_on_a_nan_loss_and_saves_nothing(data, tmp_path):
    checkpoint = tmp_path / "nan.pt"
    with pytest.raises(NonFiniteError, match="meanemb training loss at epoch 1, batch 1 is nan"):
        train_model(nan_model(data.num_items, data.max_len), data, TrainConfig(epochs=2, batch_size=16),
                    checkpoint_path=checkpoint, progress=False)
    assert not checkpoint.exists()


def test_training_stops_on_nan_validation_scores(data, monkeypatch):
    """A loss that stays finite while the scores are NaN is caught by the validation check."""
    model = build_model("meanemb", data.num_items, data.max_len, embedding_dim=4)
    real_forward = type(model).forward
    monkeypatch.setattr(type(model), "forward", lambda self, seqs: real_forward(self, seqs) * math.nan)
    with pytest.raises(NonFiniteError, match="validation at epoch 1: 40 of 40 users got NaN"):
        train_model(model, data, TrainConfig(epochs=2, batch_size=16), progress=False)


def test_evaluation_counts_users_with_non_finite_scores(data):
    metrics = evaluate_model(nan_model(data.num_items, data.max_len), data, "valid", sampled=False)
    assert metrics["nonfinite_users"] == data.num_users
    assert metrics["hr@10"] < 1.0 and metrics["ndcg@10"] < 1.0  # a NaN model is ranked last, not first


@pytest.mark.parametrize("lr", [math.inf, math.nan])
def test_non_finite_learning_rate_is_refused(lr):
    with pytest.raises(ValueError, match="lr must be positive and finite"):
        TrainConfig(lr=lr)


def test_cli_train_with_infinite_lr_is_one_line(tmp_path, monkeypatch, capsys):
    from recsec_lib.cli import main

    monkeypatch.delenv("RECSEC_DATA_MIRROR", raising=False)
    code = main(["train", "--lr", "inf", "--epochs", "1", "--dataset", "synthetic", "--data-dir",
                 str(tmp_path / "data"), "--output", str(tmp_path / "m.pt"), "--device", "cpu"])
    err = capsys.readouterr().err
    assert code == 2 and "lr must be positive and finite" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "m.pt").exists()


def test_surrogate_training_stops_on_a_nan_loss():
    rng = np.random.default_rng(0)
    sequences = rng.integers(1, 21, size=(12, 5))
    answers = np.stack([np.stack([rng.permutation(np.arange(1, 21))[:6] for _ in range(5)]) for _ in range(12)])
    attack = AttackData(sequences.astype(np.int64), answers.astype(np.int64), "random", 20)
    with pytest.raises(NonFiniteError, match="surrogate loss at epoch 1, batch 1 is nan"):
        fit_surrogate(attack, nan_model(20, 8), SurrogateSettings(epochs=2, batch_size=4), progress=False)


def test_gro_training_stops_on_a_nan_loss(data):
    config = GROConfig(epochs=1, batch_size=16, k=5, positions_per_sequence=2, student_warmup_batches=0)
    with pytest.raises(NonFiniteError, match="GRO loss_target at epoch 1, batch 1 is nan"):
        train_gro(nan_model(data.num_items, data.max_len), build_model("meanemb", data.num_items, data.max_len,
                                                                         embedding_dim=4),
                  data.train_sequences(), config, progress=False)
