"""Shapes, masking and padding behaviour of every recommender, and the registry."""

import dataclasses
import types

import numpy as np

import pytest
import torch
import torch.nn.functional as F

from recsec_lib.models.full_softmax import full_softmax_cross_entropy
from recsec_lib.models.narm import left_to_right_padding, right_to_left_padding
from recsec_lib.models.registry import MODEL_NAMES, build_model, config_class, make_config, model_name_of
from recsec_lib.models.sasrec import SASRecConfig
from recsec_lib.models.transformer import attention_mask, positions_from_end, positions_from_start
from recsec_lib.recommend.sequences import pad_left

NUM_ITEMS, MAX_LEN = 12, 8


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny models run faster on one thread, above all on a busy machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
HISTORIES = [[1, 2, 3], [4, 5, 6, 7, 8], [9]]


def small(name):
    torch.manual_seed(0)
    overrides = {"meanemb": {"embedding_dim": 16}, "sasrec": {"hidden": 16}, "narm": {"embedding_dim": 8, "hidden": 16},
                 "bert4rec": {"hidden": 16}}[name]
    return build_model(name, NUM_ITEMS, MAX_LEN, **overrides).eval()


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_forward_shape_and_padding_column(name):
    model = small(name)
    scores = model(torch.from_numpy(pad_left(HISTORIES, MAX_LEN)))
    assert scores.shape == (3, NUM_ITEMS + 1)
    assert torch.isneginf(scores[:, 0]).all()
    assert torch.isfinite(scores[:, 1:]).all()


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_left_padding_never_changes_the_output(name):
    model = small(name)
    short = model(torch.from_numpy(pad_left(HISTORIES, 5)))
    long = model(torch.from_numpy(pad_left(HISTORIES, MAX_LEN)))
    torch.testing.assert_close(short[:, 1:], long[:, 1:], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_all_position_scores_match_forward_on_each_prefix(name):
    model = small(name)
    seqs = torch.from_numpy(pad_left(HISTORIES, 6))
    every = model.all_position_scores(seqs)  # [B, L, n+1]
    assert every.shape == (3, 6, NUM_ITEMS + 1)
    for t in range(6):
        prefix = torch.from_numpy(pad_left([h[:max(0, len(h) - (5 - t))] for h in HISTORIES], 6))
        real = prefix.ne(0).any(dim=1)  # rows whose prefix is not empty
        torch.testing.assert_close(every[real, t, 1:], model(prefix)[real, 1:], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("name", ["sasrec", "narm", "meanemb"])
def test_causal_models_ignore_later_items(name):
    model = small(name)
    a = torch.tensor([[0, 0, 1, 2, 3, 4]])
    b = torch.tensor([[0, 0, 1, 2, 9, 10]])  # same first two items, different later ones
    torch.testing.assert_close(model.all_position_scores(a)[:, :4], model.all_position_scores(b)[:, :4])


def test_bert4rec_is_bidirectional_and_predicts_at_an_appended_mask():
    model = small("bert4rec")
    # Masking the middle of the history sees both sides: changing a later item changes the output there.
    a = torch.tensor([[0, 1, 13, 3]])  # 13 = mask token (num_items + 1)
    b = torch.tensor([[0, 1, 13, 4]])
    ha, hb = model.encode(a), model.encode(b)
    assert not torch.allclose(ha[:, 2], hb[:, 2])
    assert model.mask_token == NUM_ITEMS + 1
    # A history of max_len items drops its oldest item to make room for the mask token.
    full = torch.arange(1, MAX_LEN + 1)[None]
    torch.testing.assert_close(model(full), model(full[:, 1:]))


def test_bert4rec_masks_at_least_one_item_per_row():
    model = small("bert4rec")
    torch.manual_seed(3)
    seqs = torch.from_numpy(pad_left([[1, 2], [3], []], 4))
    tokens, masked = model.mask_batch(seqs)
    assert masked[0].any() and masked[1].any() and not masked[2].any()
    assert (tokens[masked] == model.mask_token).all()
    assert not masked[seqs == 0].any()


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_training_loss_is_finite_and_has_gradients(name):
    model = small(name).train()
    loss = model.training_loss(torch.from_numpy(pad_left(HISTORIES, MAX_LEN + 1)))
    assert loss.dim() == 0 and torch.isfinite(loss)
    loss.backward()
    assert model.item_embedding.weight.grad is not None


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_training_loss_rejects_a_batch_without_targets(name):
    with pytest.raises(ValueError, match="training batch has no"):
        small(name).training_loss(torch.zeros(2, 5, dtype=torch.long))


def test_sasrec_loss_equals_cross_entropy_over_all_items_at_every_position():
    model = small("sasrec")  # eval mode: no dropout, deterministic
    seqs = torch.from_numpy(pad_left([[1, 2, 3], [4, 5]], 4))
    every = model.all_position_scores(seqs[:, :-1])  # [B, 3, n+1]
    # inputs [[0,1,2],[0,0,4]] -> targets [[1,2,3],[0,4,5]]: three positions have a history and a target.
    rows = [(0, 1, 2), (0, 2, 3), (1, 2, 5)]  # (user, position, next item)
    expected = torch.stack([F.cross_entropy(every[b, t, 1:], torch.tensor(item - 1)) for b, t, item in rows]).mean()
    torch.testing.assert_close(model.training_loss(seqs), expected, atol=1e-5, rtol=1e-5)


def test_full_softmax_cross_entropy_matches_torch():
    torch.manual_seed(0)
    hidden = torch.randn(7, 5, requires_grad=True)
    weight = torch.randn(11, 5, requires_grad=True)
    bias = torch.randn(11, requires_grad=True)
    targets = torch.randint(0, 11, (7,))
    ours = torch.autograd.grad(2 * full_softmax_cross_entropy(hidden, weight, targets, bias), (hidden, weight, bias))
    reference = torch.autograd.grad(2 * F.cross_entropy(hidden @ weight.T + bias, targets), (hidden, weight, bias))
    for a, b in zip(ours, reference):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="must share D"):
        full_softmax_cross_entropy(hidden, weight[:, :3], targets)
    with pytest.raises(ValueError, match="targets must have shape"):
        full_softmax_cross_entropy(hidden, weight, targets[:3])


def test_position_helpers_by_hand():
    real = torch.tensor([[False, True, True, True], [False, False, False, True]])
    assert positions_from_start(real).tolist() == [[0, 1, 2, 3], [0, 0, 0, 1]]
    assert positions_from_end(real).tolist() == [[0, 3, 2, 1], [0, 0, 0, 1]]
    mask = attention_mask(real, causal=True)[:, 0]
    # Row 0, query 2 sees keys 1 and 2 (not padding key 0, not later key 3); padding query 0 sees itself.
    assert mask[0, 2].tolist() == [False, True, True, False]
    assert mask[0, 0].tolist() == [True, False, False, False]
    assert attention_mask(real, causal=False)[1, 0, 3].tolist() == [False, False, False, True]


def test_padding_moves_for_the_gru_round_trip():
    seqs = torch.tensor([[0, 0, 5, 6], [1, 2, 3, 4], [0, 0, 0, 0]])
    real = seqs != 0
    assert left_to_right_padding(seqs, real).tolist() == [[5, 6, 0, 0], [1, 2, 3, 4], [0, 0, 0, 0]]
    features = seqs.unsqueeze(-1).float()
    moved = left_to_right_padding(features, real)
    torch.testing.assert_close(right_to_left_padding(moved, real), features)


def test_registry_builds_configures_and_names():
    model = build_model("sasrec", 30, 20, dropout=0.2, blocks=1)
    assert model.config == SASRecConfig(dropout=0.2, blocks=1)
    assert dataclasses.is_dataclass(config_class("narm"))
    assert model_name_of(model) == "sasrec"
    assert make_config("meanemb").embedding_dim == 256
    with pytest.raises(dataclasses.FrozenInstanceError):
        model.config.hidden = 3
    with pytest.raises(ValueError, match="unknown model 'gru4rec'"):
        build_model("gru4rec", 30, 20)
    with pytest.raises(ValueError, match=r"unknown setting\(s\) \['hiden'\]"):
        build_model("sasrec", 30, 20, hiden=32)
    with pytest.raises(ValueError, match="num_items must be positive"):
        build_model("sasrec", 0, 20)
    with pytest.raises(ValueError, match="max_len must be positive"):
        build_model("sasrec", 30, 0)
    with pytest.raises(ValueError, match="not a registered model"):
        model_name_of(torch.nn.Linear(2, 2))
    with pytest.raises(ValueError, match="divisible by heads"):
        build_model("sasrec", 30, 20, hidden=10, heads=3)
    with pytest.raises(ValueError, match="mask_prob"):
        build_model("bert4rec", 30, 20, mask_prob=1.5)


@pytest.mark.parametrize("name", ["sasrec", "narm", "bert4rec"])
def test_inputs_longer_than_max_len(name):
    model = small(name)
    with pytest.raises(ValueError, match="exceeds the model's max_len"):
        model.encode(torch.ones(1, MAX_LEN + 1, dtype=torch.long)) if name != "narm" else \
            model.gru_states(torch.ones(1, MAX_LEN + 1, dtype=torch.long))
    # forward keeps the newest max_len items instead of failing
    long = torch.arange(1, MAX_LEN + 3)[None]
    torch.testing.assert_close(model(long), model(long[:, -MAX_LEN:]))


def test_sasrec_scores_at_matches_all_position_scores():
    import torch

    from recsec_lib.models.registry import build_model

    torch.manual_seed(0)
    model = build_model("sasrec", num_items=12, max_len=6).eval()
    seqs = torch.tensor([[0, 0, 3, 4, 5, 6], [1, 2, 3, 4, 5, 7]])  # [2, 6]
    rows, columns = torch.tensor([0, 1, 1]), torch.tensor([5, 2, 4])
    expected = model.all_position_scores(seqs)[rows, columns]  # [3, 13]
    assert torch.allclose(model.scores_at(seqs, rows, columns), expected, atol=1e-5)


@pytest.mark.parametrize("name", ["sasrec", "narm", "meanemb"])
def test_all_position_item_scores_are_the_gathered_all_position_scores(name):
    """The attack's margin loss reads only listed and negative items; SASRec computes them its own way. The
    one-query surrogate's sparse path (``item_scores_at``) gives the same numbers on the chosen prefixes."""
    import torch

    from recsec_lib.models.registry import build_model

    torch.manual_seed(0)
    model = build_model(name, num_items=12, max_len=6).eval()
    seqs = torch.tensor([[0, 0, 3, 4, 5, 6], [1, 2, 3, 4, 5, 7]])  # [2, 6]
    items = torch.randint(1, 13, (2, 6, 4))  # [B, L, m]
    expected = model.all_position_scores(seqs).gather(2, items)
    assert torch.allclose(model.all_position_item_scores(seqs, items), expected, atol=1e-5)
    rows, columns = torch.tensor([0, 1, 1]), torch.tensor([5, 2, 4])
    chosen = model.item_scores_at(seqs, rows, columns, items[rows, columns])  # [3, 4]
    assert torch.allclose(chosen, expected[rows, columns], atol=1e-5)


@pytest.mark.parametrize("name", ["sasrec", "narm", "bert4rec"])
def test_training_loss_and_scores_at_equals_the_two_separate_calls(name):
    """GRO's one-pass helper: the loss of the batch, and scores after prefixes of its inputs seqs[:, :-1]."""
    import torch

    from recsec_lib.models.registry import build_model

    torch.manual_seed(0)
    model = build_model(name, num_items=12, max_len=5).eval()  # eval: no dropout, so both paths are comparable
    seqs = torch.tensor([[0, 0, 3, 4, 5, 6], [1, 2, 3, 4, 5, 7]])  # [2, max_len + 1]
    rows, columns = torch.tensor([0, 1, 1]), torch.tensor([4, 0, 3])  # prefixes of the inputs [2, 5]
    torch.manual_seed(1)
    loss, scores = model.training_loss_and_scores_at(seqs, rows, columns)
    torch.manual_seed(1)  # BERT4Rec's masking is random: same draw for the reference loss
    assert torch.allclose(loss, model.training_loss(seqs), atol=1e-5)
    inputs = seqs[:, :-1]
    expected = torch.stack([model(inputs[r:r + 1, : c + 1])[0] for r, c in zip(rows.tolist(), columns.tolist())])
    assert torch.allclose(scores, expected, atol=1e-4)


@pytest.mark.parametrize("layout", ["sasrec", "pre_ln"])
def test_both_sasrec_layouts_are_causal_padding_free_and_last_only_consistent(layout):
    torch.manual_seed(0)
    model = build_model("sasrec", NUM_ITEMS, MAX_LEN, hidden=16, layout=layout).eval()
    seqs = torch.from_numpy(pad_left(HISTORIES, MAX_LEN))  # [3, 8]
    every = model.all_position_scores(seqs)  # [3, 8, n+1]
    torch.testing.assert_close(model(seqs)[:, 1:], every[:, -1, 1:], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(model(seqs[:, 3:])[:, 1:], model(seqs)[:, 1:], atol=1e-5, rtol=1e-5)
    a, b = torch.tensor([[0, 1, 2, 3, 4]]), torch.tensor([[0, 1, 2, 9, 10]])
    torch.testing.assert_close(model.all_position_scores(a)[:, :3], model.all_position_scores(b)[:, :3])


def test_sasrec_layout_is_checked_and_init_is_the_original_codes():
    with pytest.raises(ValueError, match="unknown SASRec layout 'post'"):
        build_model("sasrec", NUM_ITEMS, MAX_LEN, layout="post")
    torch.manual_seed(0)
    model = build_model("sasrec", 500, MAX_LEN, hidden=64)
    block = model.blocks[0]
    for linear in (block.attn.out, block.ffn[0], block.ffn[3]):  # small normal, zero bias
        assert abs(float(linear.weight.detach().std()) - 0.02) < 0.002
        assert float(linear.bias.detach().abs().max()) == 0.0
    # query/key/value: Xavier-uniform over [3D, D] = [192, 64], bound sqrt(6 / 256) = 0.153, std 0.088
    qkv = block.attn.qkv.weight.detach()
    assert float(qkv.abs().max()) <= (6 / 256) ** 0.5 and abs(float(qkv.std()) - 0.0884) < 0.005
    assert float(block.attn.qkv.bias.detach().abs().max()) == 0.0
    old = build_model("sasrec", 500, MAX_LEN, hidden=64, layout="pre_ln")
    assert float(old.blocks[0].attn.qkv.weight.detach().std()) > 0.05  # torch's default uniform init


def test_checkpoint_without_layout_loads_as_pre_ln(tmp_path):
    """Checkpoints written before the layout option (pre-LN blocks) must not load into the new layout."""
    from recsec_lib.recommend.checkpoints import load_checkpoint, read_checkpoint_payload, save_checkpoint

    torch.manual_seed(0)
    model = build_model("sasrec", NUM_ITEMS, MAX_LEN, hidden=16, layout="pre_ln").eval()
    path = tmp_path / "old.pt"
    dataset = types.SimpleNamespace(name="toy", num_items=NUM_ITEMS, fingerprint="f",
                                    item_raw_ids=np.arange(1, NUM_ITEMS + 1))
    save_checkpoint(path, model, None, dataset)
    payload = read_checkpoint_payload(path)
    del payload["config"]["layout"]
    torch.save(payload, path)
    loaded = load_checkpoint(path).model
    assert loaded.config.layout == "pre_ln"
    seqs = torch.from_numpy(pad_left(HISTORIES, MAX_LEN))
    torch.testing.assert_close(loaded(seqs), model(seqs))


def test_narm_attention_is_normalised():
    """Identical GRU states give a local context equal to that state, however long the history."""
    model = small("narm")
    states = torch.ones(1, 6, 16) * torch.linspace(-1, 1, 16)  # [1, 6, H], every position the same
    real = torch.tensor([[False, True, True, True, True, True]])
    context = model.contexts(states, real, torch.tensor([5]))  # [1, 1, 2H]
    torch.testing.assert_close(context[0, 0, 16:], states[0, 5])


def test_narm_loss_on_every_prefix_equals_the_all_positions_loss():
    """With train_positions at least the history length, the sampled loss is the full next-item loss."""
    torch.manual_seed(0)
    model = build_model("narm", NUM_ITEMS, MAX_LEN, embedding_dim=8, hidden=16, train_positions=50).eval()
    seqs = torch.from_numpy(pad_left(HISTORIES, MAX_LEN + 1))  # [3, 9]
    inputs, targets = seqs[:, :-1], seqs[:, 1:]
    counted = (inputs != 0) & (targets != 0)
    expected = F.cross_entropy(model.all_position_scores(inputs)[counted][:, 1:], targets[counted] - 1)
    torch.testing.assert_close(model.training_loss(seqs), expected)
    sampled = build_model("narm", NUM_ITEMS, MAX_LEN, embedding_dim=8, hidden=16, train_positions=1).eval()
    assert torch.isfinite(sampled.training_loss(seqs))
