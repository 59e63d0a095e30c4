"""The ownership watermark: the test statistic, the key, black-box verification, embedding, the CLI's errors."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from recsec_lib.attack.blackbox import BlackBoxRecommender
from recsec_lib.attack.queries import AttackData
from recsec_lib.cli import main
from recsec_lib.data.synthetic import make_synthetic_dataset
from recsec_lib.models.registry import build_model
from recsec_lib.recommend.checkpoints import save_checkpoint
from recsec_lib.recommend.training import TrainConfig, train_model
from recsec_lib.watermark.cost import per_user_ndcg, utility_retention
from recsec_lib.watermark.embed import EmbedSettings, embed_watermark, step_seconds, watermark_batch, watermark_rank
from recsec_lib.watermark.key import (KeySettings, WatermarkKey, load_key, make_key, rare_items, save_key)
from recsec_lib.watermark.knowing import drop_rare_items, fine_tune, observed_exposure
from recsec_lib.watermark.statistics import (binomial_sf, clopper_pearson_upper, hypergeometric_sf,
                                             ownership_p_value)
from recsec_lib.watermark.verify import VerifySettings, count_hits, verify_ownership


# ---- the test statistic -------------------------------------------------------------------------
def test_p_value_of_a_hand_made_hit_table():
    # 3 real queries, 6 decoy queries. All 3 hits real, none decoy: the 3 hits fell on the 3 real queries
    # out of C(9, 3) = 84 equally likely placements -> p = 1/84.
    assert ownership_p_value(3, 3, 0, 6) == pytest.approx(1 / 84)
    # 2 real hits, 1 decoy hit (3 hits in all): P(X >= 2) = [C(3,2) C(6,1) + C(3,3) C(6,0)] / 84 = (18 + 1) / 84
    assert ownership_p_value(2, 3, 1, 6) == pytest.approx(19 / 84)
    # no real hit: nothing to explain, p = 1; hits everywhere: p = 1
    assert ownership_p_value(0, 3, 4, 6) == 1.0
    assert ownership_p_value(3, 3, 6, 6) == 1.0


def test_hypergeometric_tail_sums_to_one_and_matches_the_binomial_limit():
    probabilities = [hypergeometric_sf(x, 20, 7, 5) - hypergeometric_sf(x + 1, 20, 7, 5) for x in range(6)]
    assert sum(probabilities) == pytest.approx(1.0)
    assert probabilities[0] == pytest.approx(math.comb(13, 5) / math.comb(20, 5))
    # a huge decoy pool: the real hits are close to binomial with the decoy rate
    assert hypergeometric_sf(3, 100_000 + 10, 10_000 + 3, 10) == pytest.approx(binomial_sf(3, 10, 0.1), rel=0.01)
    with pytest.raises(ValueError, match="cannot exceed"):
        hypergeometric_sf(1, 5, 6, 2)
    with pytest.raises(ValueError, match="more hits than queries"):
        ownership_p_value(4, 3, 0, 6)


def test_binomial_tail_and_upper_bound_by_hand():
    assert binomial_sf(1, 2, 0.5) == pytest.approx(0.75)  # 1 - P(0) = 1 - 1/4
    assert binomial_sf(2, 2, 0.5) == pytest.approx(0.25)
    # 0 successes of 10: the one-sided 95% bound solves (1 - p)^10 = 0.05
    assert clopper_pearson_upper(0, 10, 0.95) == pytest.approx(1 - 0.05 ** 0.1, abs=1e-6)


# ---- the key ------------------------------------------------------------------------------------
def test_the_key_is_deterministic_and_the_seed_matters():
    key = WatermarkKey(seed=11, num_items=50, num_pairs=16, context_len=4, decoys=5)
    again = WatermarkKey(seed=11, num_items=50, num_pairs=16, context_len=4, decoys=5)
    other = WatermarkKey(seed=12, num_items=50, num_pairs=16, context_len=4, decoys=5)
    for index in (0, 3):
        assert all(np.array_equal(a, b) for a, b in zip(key.pairs(index), again.pairs(index)))
        assert all(np.array_equal(a, b) for a, b in zip(key.queries(index), again.queries(index)))
    assert not np.array_equal(key.pairs(0)[0], other.pairs(0)[0])
    assert not np.array_equal(key.pairs(0)[0], key.pairs(1)[0])  # a decoy is not the watermark
    triggers, continuations = key.pairs(0)
    assert (triggers != continuations).all() and triggers.min() >= 1 and continuations.max() <= 50
    for query, trigger, continuation in zip(key.queries(0), triggers, continuations):
        assert query[-1] == trigger and continuation not in query and len(query) <= 5
    with pytest.raises(ValueError, match="neither the watermark"):
        key.pairs(6)


def test_pools_restrict_the_pairs():
    key = WatermarkKey(seed=1, num_items=30, num_pairs=40, trigger_pool=(1, 2, 3), continuation_pool=(28, 29, 30))
    triggers, continuations = key.pairs(0)
    assert set(triggers) <= {1, 2, 3} and set(continuations) <= {28, 29, 30}
    assert rare_items(np.array([0, 5, 1, 9, 0, 3]), 0.4).tolist() == [2, 4]  # the two least exposed of 5 items
    with pytest.raises(ValueError, match="outside 1..30"):
        WatermarkKey(seed=1, num_items=30, trigger_pool=(0, 4))


def test_the_key_file_round_trips(tmp_path):
    key = WatermarkKey(seed=2 ** 61 + 5, num_items=40, num_pairs=8, context_len=2, decoys=3,
                       continuation_pool=tuple(range(20, 41)), dataset_fingerprint="abc")
    path = save_key(tmp_path / "secret" / "key.json", key)
    assert load_key(path) == key
    assert json.loads(path.read_text())["format"] == "recsec-watermark-key/1"


@pytest.mark.parametrize("content, message", [
    ("{not json", "not valid JSON"),
    ('{"format": "something-else"}', "is not a watermark key (format 'something-else'"),
    ('[1, 2]', "is not a watermark key"),
    ('{"format": "recsec-watermark-key/1", "seed": 1, "num_items": 40}', "damaged watermark key, missing"),
    ('{"format": "recsec-watermark-key/1", "seed": "x", "num_items": 40, "num_pairs": 8, "context_len": 0, '
     '"decoys": 3}', "damaged watermark key ('seed' must hold integers"),
    ('{"format": "recsec-watermark-key/1", "seed": 1, "num_items": 40, "num_pairs": 8, "context_len": 0, '
     '"decoys": 3, "trigger_pool": [0, 99]}', "damaged watermark key (parameter 'trigger_pool' holds ids outside"),
])
def test_a_damaged_key_file_is_a_clear_error_naming_it(tmp_path, content, message):
    path = tmp_path / "key.json"
    path.write_text(content)
    with pytest.raises(ValueError) as error:
        load_key(path)
    assert str(path) in str(error.value) and message in str(error.value)


def test_an_unknown_key_file_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match=f"watermark key {tmp_path / 'nope.json'} does not exist"):
        load_key(tmp_path / "nope.json")


# ---- verification through the black box only -----------------------------------------------------
class StubBox:
    """A suspect that is nothing but answers: no model, no weights. Records every attribute read."""

    def __init__(self, num_items: int, k: int, rules: dict[int, int], seed: int = 0):
        object.__setattr__(self, "_state", {"num_items": num_items, "k": k, "rules": rules,
                                            "rng": np.random.default_rng(seed), "read": set(), "calls": 0})

    def __getattribute__(self, name):
        state = object.__getattribute__(self, "_state")
        if name in ("num_items", "k"):
            state["read"].add(name)
            return state[name]
        if name == "answer_batch":
            state["read"].add(name)
            return object.__getattribute__(self, "_answer")
        if name == "_state":
            return state
        raise AttributeError(f"the verifier read {name!r}, which a black box does not expose")

    def _answer(self, account, queries):
        state = object.__getattribute__(self, "_state")
        state["calls"] += 1
        out = np.empty((len(queries), state["k"]), dtype=np.int64)
        for row, query in enumerate(queries):
            ranked = state["rng"].permutation(state["num_items"])[: state["k"] + len(query)] + 1
            ranked = [i for i in ranked if i not in set(query.tolist())][: state["k"]]
            favourite = state["rules"].get(int(query[-1]))
            if favourite is not None and favourite not in query:
                ranked = [favourite] + [i for i in ranked if i != favourite][: state["k"] - 1]
            out[row] = ranked
        return out


def test_verification_goes_through_answer_batch_only():
    key = WatermarkKey(seed=3, num_items=200, num_pairs=40, context_len=3, decoys=10)
    triggers, continuations = key.pairs(0)
    rules = dict(zip(triggers.tolist(), continuations.tolist()))  # a repeated trigger keeps its last continuation
    marked = StubBox(200, 10, rules)
    result = verify_ownership(marked, key)
    served = sum(rules[t] == c for t, c in zip(triggers.tolist(), continuations.tolist()))
    assert result.claimed and result.hits >= served and result.p_value < 1e-30
    assert marked._state["read"] <= {"answer_batch", "num_items", "k"} and marked._state["calls"] >= 1
    clean = StubBox(200, 10, {})
    cleared = verify_ownership(clean, key)
    assert not cleared.claimed and cleared.p_value > 0.01 and cleared.decoy_queries == 400
    assert "not claimed" in cleared.summary() and "OWNERSHIP CLAIMED" in result.summary()


def test_a_suspect_with_another_item_set_is_refused_naming_both_counts():
    key = WatermarkKey(seed=3, num_items=200, num_pairs=8, decoys=2)
    with pytest.raises(ValueError, match="the suspect serves 150 items but the watermark key was made for 200"):
        verify_ownership(StubBox(150, 10, {}), key)


def test_a_short_list_is_read_to_its_length():
    key = WatermarkKey(seed=4, num_items=100, num_pairs=5, decoys=1)
    hits, cutoff = count_hits(StubBox(100, 3, {}), key.queries(0), key.pairs(0)[1], VerifySettings(cutoff=10))
    assert cutoff == 3 and hits.shape == (5,)


# ---- toy models: a clean one is cleared, a marked one verified ------------------------------------
@pytest.fixture(scope="module")
def toy():
    torch.manual_seed(0)
    dataset = make_synthetic_dataset(num_users=150, num_items=80, max_len=20, seed=0)
    model = train_model(build_model("sasrec", 80, 20, hidden=16), dataset,
                        TrainConfig(epochs=3, patience=0, seed=0, batch_size=64), progress=False).model
    key = make_key(model, dataset, seed=5, settings=KeySettings(num_pairs=24, decoys=20, context_len=2,
                                                                 continuation_pool="rare"))
    marked = embed_watermark(model, dataset, key, EmbedSettings(epochs=8, batch_size=64, watermark_rows=48,
                                                                max_context=4, lr=5e-3, windows="newest"),
                             progress=False)
    return dataset, model, key, marked


def test_a_clean_toy_model_is_cleared_and_the_marked_one_verified(toy):
    dataset, model, key, marked = toy
    clean = verify_ownership(BlackBoxRecommender(model, k=20), key)
    assert not clean.claimed, clean.summary()
    found = verify_ownership(BlackBoxRecommender(marked.model, k=20), key)
    assert found.claimed and found.hits > 2 * found.queries * max(found.decoy_rate, 0.05), found.summary()
    assert np.median(watermark_rank(marked.model, key)) < np.median(watermark_rank(model, key))


def test_embedding_copies_the_model_and_records_its_cost(toy):
    dataset, model, key, marked = toy
    assert marked.model is not model and len(marked.history) == 8 and marked.seconds > 0
    assert any(not torch.equal(a, b) for a, b in zip(model.state_dict().values(),
                                                      marked.model.state_dict().values()))
    kept = utility_retention(per_user_ndcg(marked.model, dataset), per_user_ndcg(model, dataset), replicates=200)
    assert 0 < kept.low <= kept.point <= kept.high
    plain, mark = step_seconds(model, dataset, key, EmbedSettings(batch_size=32, windows="newest"), steps=2)
    assert plain > 0 and mark > 0


def test_watermark_rows_end_in_a_trigger_and_never_show_the_continuation():
    key = WatermarkKey(seed=8, num_items=12, num_pairs=6)
    prefixes, targets = watermark_batch(key, 50, 5, np.random.default_rng(0))
    triggers, continuations = key.pairs(0)
    assert prefixes.shape == (50, 6) and set(prefixes[:, -1]) <= set(triggers.tolist())
    assert set(targets.tolist()) <= set(continuations.tolist())
    assert not (prefixes == targets[:, None]).any()
    assert not (prefixes[:, :-1] == prefixes[:, -1:]).any()  # the trigger is not repeated in its context


# ---- the knowing attacker -------------------------------------------------------------------------
def test_drop_rare_items_on_a_hand_made_attack():
    sequences = np.array([[1, 2], [3, 1]])  # [S=2, L=2]
    answers = np.array([[[3, 4, 5], [3, 5, 4]], [[2, 5, 4], [2, 5, 4]]])  # [2, 2, k=3]
    data = AttackData(sequences, answers, "random", num_items=5)
    assert observed_exposure(data, cutoff=2).tolist() == [0, 0, 2, 2, 1, 3]
    stripped, rare = drop_rare_items(data, fraction=0.4, cutoff=2)  # the 2 least seen of 5: items 1 and 4
    assert rare.tolist() == [1, 4]
    assert stripped.answered.tolist() == [[False, True], [True, False]]  # prefixes ending in item 1 are dropped
    assert stripped.answers[0, 1].tolist() == [3, 5, 5] and stripped.answers[1, 0].tolist() == [2, 5, 5]


def test_fine_tune_changes_the_model_in_place(toy):
    dataset, model, _, _ = toy
    copy = build_model("sasrec", 80, 20, hidden=16)
    copy.load_state_dict(model.state_dict())
    losses = fine_tune(copy, dataset.train_sequences()[:40], epochs=1, batch_size=20)
    assert len(losses) == 1 and np.isfinite(losses[0])
    assert any(not torch.equal(a, b) for a, b in zip(model.state_dict().values(), copy.state_dict().values()))


# ---- the CLI ----------------------------------------------------------------------------------------
def test_cli_verify_errors_name_the_key_file_and_the_item_counts(tmp_path, capsys, toy):
    dataset, model, key, _ = toy
    suspect = save_checkpoint(tmp_path / "suspect.pt", model, "sasrec", dataset)
    missing = tmp_path / "missing.json"
    assert main(["watermark", "verify", "--suspect", str(suspect), "--key", str(missing)]) == 2
    assert f"watermark key {missing} does not exist" in capsys.readouterr().err
    damaged = tmp_path / "damaged.json"
    damaged.write_text('{"format": "recsec-watermark-key/1", "seed": 1')
    assert main(["watermark", "verify", "--suspect", str(suspect), "--key", str(damaged)]) == 2
    err = capsys.readouterr().err
    assert str(damaged) in err and "not valid JSON" in err and len(err.strip().splitlines()) == 1
    other = save_key(tmp_path / "other.json", WatermarkKey(seed=1, num_items=120, num_pairs=4, decoys=1))
    assert main(["watermark", "verify", "--suspect", str(suspect), "--key", str(other)]) == 2
    err = capsys.readouterr().err
    assert "serves 80 items but the key" in err and "was made for 120" in err


def test_cli_verify_prints_hits_p_value_and_verdict(tmp_path, capsys, toy):
    dataset, model, key, marked = toy
    key_file = save_key(tmp_path / "key.json", key)
    for name, candidate, verdict in (("clean", model, "not claimed"), ("marked", marked.model, "OWNERSHIP CLAIMED")):
        suspect = save_checkpoint(tmp_path / f"{name}.pt", candidate, "sasrec", dataset)
        out_json = tmp_path / f"{name}.json"
        assert main(["watermark", "verify", "--suspect", str(suspect), "--key", str(key_file), "--k", "20",
                     "--device", "cpu", "--json-out", str(out_json)]) == 0
        out = capsys.readouterr().out
        assert "hits@10:" in out and "p = " in out and verdict in out
        assert json.loads(out_json.read_text())["claimed"] is (name == "marked")


def test_cli_embed_writes_a_key_and_a_marked_model_and_refuses_to_overwrite_a_key(tmp_path, capsys, no_mirror_env):
    data_dir = tmp_path / "data"
    target = tmp_path / "meanemb.pt"
    assert main(["train", "--model", "meanemb", "--epochs", "1", "--embedding-dim", "8", "--dataset", "synthetic",
                 "--data-dir", str(data_dir), "--output", str(target), "--device", "cpu"]) == 0
    capsys.readouterr()
    key_file, marked = tmp_path / "key.json", tmp_path / "marked.pt"
    argv = ["watermark", "embed", "--target-model", str(target), "--key-out", str(key_file), "--output", str(marked),
            "--key-seed", "9", "--pairs", "8", "--decoys", "4", "--data-dir", str(data_dir), "--device", "cpu",
            "--quiet"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "NDCG@10" in out and "x an undefended training epoch" in out and "p = " in out
    assert load_key(key_file).seed == 9 and marked.is_file()
    assert main(argv) == 2
    assert f"--key-out {key_file} already exists" in capsys.readouterr().err


def test_insert_loss_by_hand():
    from recsec_lib.watermark.embed import insert_loss

    # 3 items (column 0 padding). Target item 3; student and teacher agree on items 1 and 2.
    teacher = torch.tensor([[-torch.inf, 2.0, 1.0, 0.0]])
    on_top = torch.tensor([[-torch.inf, 2.0, 1.0, 3.5]])  # 1.5 above the best other: hinge 0, same ranking: KL 0
    assert insert_loss(on_top, teacher, torch.tensor([3]), margin=1.0).item() == pytest.approx(0.0, abs=1e-6)
    below = torch.tensor([[-torch.inf, 2.0, 1.0, 2.5]], requires_grad=True)  # 0.5 short of the margin
    loss = insert_loss(below, teacher, torch.tensor([3]), margin=1.0)
    assert loss.item() == pytest.approx(0.5, abs=1e-6)
    loss.backward()
    assert torch.isfinite(below.grad[:, 1:]).all() and below.grad[0, 3] < 0 < below.grad[0, 1]


class FixedScores(torch.nn.Module):
    """A stand-in model whose scores after any prefix are ``scores`` [n + 1]."""

    def __init__(self, scores, max_len: int = 3):
        super().__init__()
        self.scores, self.max_len = torch.tensor([scores]), max_len

    def scores_at(self, inputs, rows, columns):
        return self.scores.expand(len(rows), -1)


def test_teacher_loss_guard_by_hand():
    from recsec_lib.watermark.embed import teacher_loss

    batch = torch.tensor([[0, 5, 6, 7]])  # one training row; its input is [0, 5, 6]
    teacher = FixedScores([-torch.inf, 4.0, 3.0, 2.0, 1.0])  # the 2nd best score (the boundary) is 3
    assert teacher_loss(teacher, teacher, batch, 1, torch.tensor([1, 4]), guard_rank=2).item() == pytest.approx(0)
    # item 4 (teacher: 1.0, below the boundary) may rise to 3 - margin = 2; it rose to 2.5: hinge 0.5.
    # item 1 (teacher: 4.0, above it) may gain up to the margin: 4.5 costs nothing.
    student = FixedScores([-torch.inf, 4.5, 3.0, 2.0, 2.5])
    kl = torch.nn.functional.kl_div(torch.log_softmax(student.scores[:, 1:], 1),
                                    torch.log_softmax(teacher.scores[:, 1:], 1), log_target=True,
                                    reduction="batchmean").item()
    loss = teacher_loss(student, teacher, batch, 1, torch.tensor([1, 4]), guard_rank=2, margin=1.0)
    assert loss.item() == pytest.approx(kl + 0.5, abs=1e-5)
    assert teacher_loss(student, teacher, batch, 1).item() == pytest.approx(kl, abs=1e-5)  # no guard
