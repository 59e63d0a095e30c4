"""Checkpoint round trips, resuming an interrupted training run, and refusing mismatched files."""

import dataclasses

import numpy as np
import pytest
import torch

from recsec_lib.recommend.checkpoints import load_checkpoint, model_digest, read_checkpoint_payload, save_checkpoint
from recsec_lib.data.synthetic import make_synthetic_dataset
from recsec_lib.models.registry import MODEL_NAMES, build_model
from recsec_lib.recommend.sequences import pad_left
from recsec_lib.recommend.training import TrainConfig, train_model


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny models run faster on one thread, above all on a busy machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def data():
    return make_synthetic_dataset(num_users=60, num_items=30, max_len=12, seed=0)


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_round_trip_gives_the_same_scores(tmp_path, data, name):
    torch.manual_seed(0)
    model = build_model(name, data.num_items, data.max_len).eval()
    path = save_checkpoint(tmp_path / "sub" / f"{name}.pt", model, name, data, metrics={"hr@10": np.float64(0.25)})
    loaded = load_checkpoint(path, dataset=data)
    seqs = torch.from_numpy(pad_left([data.sequence(u) for u in range(5)], data.max_len))
    torch.testing.assert_close(loaded.model(seqs), model(seqs))
    assert loaded.model_name == name and loaded.config == model.config
    assert loaded.metrics == {"hr@10": 0.25} and loaded.dataset_fingerprint == data.fingerprint
    np.testing.assert_array_equal(loaded.item_raw_ids, data.item_raw_ids)
    assert not loaded.model.training
    assert not list(path.parent.glob(".*.tmp"))  # the temporary file was renamed away


def test_the_model_digest_follows_the_weights_not_the_metrics(tmp_path, data):
    """Matrix cells are keyed by ``model_digest``: the same model saved with other metrics (a resumed stage's
    timings) keeps its digest; other weights change it."""
    torch.manual_seed(0)
    model = build_model("sasrec", data.num_items, data.max_len)
    first = model_digest(save_checkpoint(tmp_path / "a.pt", model, "sasrec", data, metrics={"seconds": 1.5}))
    again = model_digest(save_checkpoint(tmp_path / "b.pt", model, "sasrec", data, metrics={"seconds": 0.1},
                                         training_state={"epoch": 3}))
    assert first == again and len(first) == 16
    with torch.no_grad():
        next(model.parameters()).add_(1e-3)
    assert model_digest(save_checkpoint(tmp_path / "c.pt", model, "sasrec", data)) != first


def test_resume_after_interruption_matches_an_uninterrupted_run(tmp_path, data):
    config = TrainConfig(epochs=4, batch_size=16, lr=3e-3, patience=0, seed=5)

    def fresh():
        torch.manual_seed(0)
        return build_model("sasrec", data.num_items, data.max_len, hidden=16)

    straight = train_model(fresh(), data, config, progress=False)
    path = tmp_path / "run.pt"
    # "Interrupt" after the first epoch with a time cap, then resume without it.
    first = train_model(fresh(), data, dataclasses.replace(config, max_train_seconds=1e-9), checkpoint_path=path,
                        progress=False)
    assert first.stop_reason == "time_cap" and first.epochs_run == 1
    assert read_checkpoint_payload(path)["training_state"]["complete"] is False
    resumed = train_model(fresh(), data, config, checkpoint_path=path, progress=False)
    assert resumed.epochs_run == 4 and len(resumed.history) == 4
    for a, b in zip(straight.history, resumed.history):
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-4)
    assert resumed.best_epoch == straight.best_epoch
    # A finished checkpoint is returned as it is.
    cached = train_model(fresh(), data, config, checkpoint_path=path, progress=False)
    assert cached.stop_reason == "cached" and cached.best_epoch == resumed.best_epoch
    with pytest.raises(ValueError, match="trained with other settings"):
        train_model(fresh(), data, dataclasses.replace(config, lr=1e-2), checkpoint_path=path, progress=False)
    with pytest.raises(ValueError, match="holds a sasrec model with config"):
        train_model(build_model("sasrec", data.num_items, data.max_len, hidden=8), data, config,
                    checkpoint_path=path, progress=False)


def test_mismatched_dataset_is_refused(tmp_path, data):
    model = build_model("meanemb", data.num_items, data.max_len, embedding_dim=8)
    path = save_checkpoint(tmp_path / "m.pt", model, "meanemb", data)
    other_size = make_synthetic_dataset(num_users=60, num_items=31, max_len=12, seed=0)
    with pytest.raises(ValueError, match="trained on 30 items but dataset 'synthetic' has 31"):
        load_checkpoint(path, dataset=other_size)
    remapped = dataclasses.replace(data, item_raw_ids=np.r_[-1, np.arange(101, 131)])
    with pytest.raises(ValueError, match="different MovieLens ids"):
        load_checkpoint(path, dataset=remapped)
    other_fingerprint = dataclasses.replace(data, fingerprint="something-else")
    with pytest.raises(ValueError, match="fingerprint 'synthetic-60-30-0'"):
        load_checkpoint(path, dataset=other_fingerprint)
    with pytest.raises(ValueError, match="model has 30 items but dataset"):
        save_checkpoint(tmp_path / "x.pt", model, "meanemb", other_size)
    with pytest.raises(ValueError, match="finished model without training state"):
        train_model(model, data, TrainConfig(epochs=1), checkpoint_path=path, progress=False)


def test_files_that_are_not_checkpoints(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_checkpoint(tmp_path / "missing.pt")
    text = tmp_path / "notes.pt"
    text.write_text("hello")
    with pytest.raises(ValueError, match="is not a recsec checkpoint"):
        load_checkpoint(text)
    foreign = tmp_path / "foreign.pt"
    torch.save({"weights": torch.zeros(2)}, foreign)
    with pytest.raises(ValueError, match="format None"):
        load_checkpoint(foreign)
    broken = tmp_path / "broken.pt"
    data = make_synthetic_dataset(num_users=20, num_items=10, max_len=5)
    save_checkpoint(broken, build_model("meanemb", 10, 5, embedding_dim=4), "meanemb", data)
    payload = torch.load(broken, weights_only=True)
    payload["config"]["embedding_dim"] = 8  # weights no longer fit the config
    torch.save(payload, broken)
    with pytest.raises(ValueError, match="cannot be rebuilt"):
        load_checkpoint(broken)


def test_empty_file_is_a_clear_error(tmp_path):
    empty = tmp_path / "empty.pt"
    empty.write_bytes(b"")
    with pytest.raises(ValueError, match=r"empty.pt is empty \(0 bytes\): not a recsec checkpoint"):
        load_checkpoint(empty)


class Gadget:
    """A class a checkpoint never holds: weights_only loading refuses it."""


def test_file_with_python_objects_is_refused_without_unsafe_advice(tmp_path):
    untrusted = tmp_path / "untrusted.pt"
    torch.save({"format": "recsec-checkpoint/1", "extra": Gadget()}, untrusted)
    with pytest.raises(ValueError) as caught:
        load_checkpoint(untrusted)
    message = str(caught.value)
    assert "untrusted.pt is not a recsec checkpoint" in message and "Gadget" in message
    assert "weights_only" not in message and "will likely succeed" not in message
    assert "\n" not in message


def test_truncated_file_names_the_file(tmp_path):
    data = make_synthetic_dataset(num_users=20, num_items=10, max_len=5)
    path = save_checkpoint(tmp_path / "cut.pt", build_model("meanemb", 10, 5, embedding_dim=4), "meanemb", data)
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(ValueError, match="cut.pt is not a recsec checkpoint"):
        load_checkpoint(path)


# Issue 26.4: "not a recsec checkpoint" and "holds Python objects" are different messages.

@pytest.mark.parametrize("content, says", [
    (b"hello", "not a torch.save file (it is text, starting 'hello')"),
    (b"version https://git-lfs.github.com/spec/v1\noid sha256:0\nsize 9\n", "it is a Git LFS pointer"),
    (b"\x00\x01\x02binary", "not a torch.save file (it starts with the bytes"),
])
def test_a_file_that_is_not_a_torch_file_is_not_called_python_objects(tmp_path, content, says):
    """A plain-text .pt used to be refused as "holds Python objects ... could run code"."""
    path = tmp_path / "notes.pt"
    path.write_bytes(content)
    with pytest.raises(ValueError) as caught:
        load_checkpoint(path)
    message = str(caught.value)
    assert message.startswith(f"{path} is not a recsec checkpoint: ") and says in message
    assert "Python objects" not in message and "run code" not in message and "\n" not in message


def test_a_plain_pickle_is_unreadable_not_dangerous(tmp_path):
    import pickle

    path = tmp_path / "plain.pt"
    path.write_bytes(pickle.dumps({"weights": [1.0, 2.0]}, protocol=4))
    with pytest.raises(ValueError, match=r"plain.pt is not a recsec checkpoint \(a pickle that weights-only loading "
                                         r"cannot read \(Unsupported operand 149\)") as caught:
        load_checkpoint(path)
    assert "Python objects" not in str(caught.value)


def test_only_a_pickle_naming_a_class_holds_python_objects(tmp_path):
    path = tmp_path / "objects.pt"
    torch.save({"format": "recsec-checkpoint/1", "extra": Gadget()}, path)
    with pytest.raises(ValueError, match=r"it holds Python objects such as [\w.]*Gadget that a recsec checkpoint "
                                         r"never contains; it was not loaded, since unpickling them could run code"):
        load_checkpoint(path)
