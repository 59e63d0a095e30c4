"""The extraction attack: query generation, the margin loss, surrogate training, evaluation."""

from __future__ import annotations

import dataclasses
import inspect
import subprocess
import sys

import numpy as np
import pytest
import torch

from recsec_lib.attack.extraction import (
    AttackData,
    SurrogateSettings,
    evaluate_extraction,
    fit_surrogate,
    generate_queries,
    run_attack,
    sequences_for_budget,
    train_surrogate,
)
from recsec_lib.attack.blackbox import BlackBoxRecommender
from recsec_lib.data.synthetic import make_synthetic_dataset
from recsec_lib.recommend.losses import ranking_margin_loss, sample_negatives
from recsec_lib.models.registry import build_model
from recsec_lib.recommend.sequences import pad_left
from recsec_lib.attack.surrogate import has_one_pass_prefix_scores, infer_filter_seen


class NextItemsBox:
    """Stub box with a known answer: after item i it returns i+1, i+2, ... (mod num_items), and records queries."""

    def __init__(self, num_items: int = 20, k: int = 3, max_query_len: int = 50):
        self.num_items, self.k, self.max_query_len = num_items, k, max_query_len
        self.calls: list[tuple[list[str], np.ndarray]] = []

    def answer_batch(self, accounts, queries):
        queries = np.asarray(queries)
        self.calls.append(([accounts] * len(queries) if isinstance(accounts, str) else list(accounts),
                           queries.copy()))
        last = queries[:, -1:]  # [N, 1]
        return (last + np.arange(1, self.k + 1)[None, :] - 1) % self.num_items + 1  # [N, k]


# ---- query generation ------------------------------------------------------------
def test_autoregressive_walk_follows_the_box():
    box = NextItemsBox(k=1)  # the only choice after i is i+1
    data = generate_queries(box, 20, "autoregressive", num_sequences=3, seq_len=4, seed=1)
    for row in data.sequences:
        assert (np.diff(row) % 20 == 1).all()  # i, i+1, i+2, ... (mod 20)
    # Every prefix was sent, step by step: queries of length 1, 2, 3, 4 for the 3 sequences.
    assert [q.shape for _, q in box.calls] == [(3, 1), (3, 2), (3, 3), (3, 4)]
    assert np.array_equal(box.calls[-1][1], data.sequences)
    assert np.array_equal(data.answers[:, :, 0], data.sequences % 20 + 1)
    assert data.num_queries == 12


def test_autoregressive_draws_from_the_returned_list():
    box = NextItemsBox(k=3)
    data = generate_queries(box, 20, "autoregressive", num_sequences=50, seq_len=5, seed=0)
    for s in range(50):
        for t in range(4):
            assert data.sequences[s, t + 1] in data.answers[s, t]
    assert len(set(data.sequences[:, 1].tolist())) > 1  # the choice inside the list is random


def test_random_generation_queries_every_prefix_without_repeats():
    box = NextItemsBox()
    data = generate_queries(box, 20, "random", num_sequences=5, seq_len=6, seed=0, num_accounts=2)
    assert all(len(set(row)) == 6 for row in data.sequences.tolist())
    assert data.sequences.min() >= 1 and data.sequences.max() <= 20
    assert sum(len(q) for _, q in box.calls) == 5 * 6  # one query per prefix
    assert box.calls[0][0] == ["attacker-0", "attacker-1", "attacker-0", "attacker-1", "attacker-0"]


def test_generation_is_seeded():
    a = generate_queries(NextItemsBox(), 20, "random", 4, 5, seed=7)
    b = generate_queries(NextItemsBox(), 20, "random", 4, 5, seed=7)
    assert np.array_equal(a.sequences, b.sequences)


def test_generation_errors():
    box = NextItemsBox()
    with pytest.raises(ValueError, match="generator"):
        generate_queries(box, 20, "greedy", 2, 3)
    with pytest.raises(ValueError, match="walks of 21 distinct items need at least 21 items"):
        generate_queries(box, 20, "random", 2, 21)
    with pytest.raises(ValueError, match="positive"):
        generate_queries(box, 20, "random", 0, 3)
    with pytest.raises(ValueError, match="num_accounts"):
        generate_queries(box, 20, "random", 2, 3, num_accounts=0)
    with pytest.raises(ValueError, match="buys no sequence"):
        sequences_for_budget(10, 20)
    assert sequences_for_budget(1000, 200) == 5


def test_budget_is_counted_by_the_real_box():
    torch.manual_seed(0)
    box = BlackBoxRecommender(build_model("sasrec", num_items=30, max_len=8), k=5, max_queries_per_account=40)
    data = generate_queries(box, 30, "autoregressive", num_sequences=5, seq_len=8)
    assert box.queries_answered("attacker-0") == 40 == data.num_queries
    assert infer_filter_seen(data)  # the box filters seen items: a walk never repeats one
    assert all(len(set(row)) == 8 for row in data.sequences.tolist())


# ---- attack data -----------------------------------------------------------------------
def test_attack_data_save_load_split(tmp_path):
    data = generate_queries(NextItemsBox(), 20, "random", 10, 4, seed=0)
    loaded = AttackData.load(data.save(tmp_path / "attack.npz"))
    assert np.array_equal(loaded.sequences, data.sequences) and np.array_equal(loaded.answers, data.answers)
    assert loaded.generator == "random" and loaded.num_items == 20
    train, held = data.split(0.2, seed=0)
    assert train.num_sequences == 8 and held.num_sequences == 2
    assert not set(map(tuple, train.sequences.tolist())) & set(map(tuple, held.sequences.tolist()))


def test_attack_data_errors(tmp_path):
    with pytest.raises(ValueError, match="do not match"):
        AttackData(np.ones((2, 3), dtype=np.int64), np.ones((2, 4, 5), dtype=np.int64), "random", 20)
    with pytest.raises(ValueError, match="answered"):
        AttackData(np.ones((2, 3), dtype=np.int64), np.ones((2, 3, 5), dtype=np.int64), "chain", 20,
                   answered=np.ones((2, 4), dtype=bool))
    partial = AttackData(np.ones((2, 3), dtype=np.int64), np.ones((2, 3, 5), dtype=np.int64), "one-query", 20,
                         answered=np.array([[False, False, True], [False, True, True]]))
    again = AttackData.load(partial.save(tmp_path / "partial.npz"))
    assert again.generator == "one-query" and np.array_equal(again.answered, partial.answered)
    np.savez(tmp_path / "x.npz", a=np.zeros(1))
    with pytest.raises(ValueError, match="x.npz"):
        AttackData.load(tmp_path / "x.npz")


# ---- loss ------------------------------------------------------------------------------
def test_margin_loss_on_a_three_item_list():
    # Listed scores in returned order 3, 1, 2; negatives 0, 2, 0; m1 = m2 = 0.5.
    # order:    max(1-3+.5, 0) + max(2-1+.5, 0) = 0 + 1.5
    # negative: max(0-3+.5, 0) + max(2-1+.5, 0) + max(0-2+.5, 0) = 0 + 1.5 + 0
    loss = ranking_margin_loss(torch.tensor([[3.0, 1.0, 2.0]]), torch.tensor([[0.0, 2.0, 0.0]]), 0.5, 0.5)
    assert loss.item() == pytest.approx(3.0)


@pytest.mark.parametrize("arch", ["sasrec", "narm"])
def test_sparse_answered_batches_give_the_dense_loss_and_gradients(arch, monkeypatch):
    """One answered prefix per row (the one-query attacker): scoring only those gives the dense path's loss and
    gradients, from the same encoder pass, negatives and rows."""
    import recsec_lib.attack.surrogate as surrogate_module

    seqs = torch.tensor([[0, 0, 3, 4, 5, 6], [0, 1, 2, 3, 4, 7], [0, 0, 0, 9, 8, 2]])  # [3, 6] left-padded walks
    lists = torch.randint(1, 13, (3, 6, 4), generator=torch.Generator().manual_seed(1))  # [B, L, m]
    answered = torch.zeros(3, 6, dtype=torch.bool)
    answered[:, -1] = True  # the walk's last prefix only
    answered[1, 3] = True  # and one more: 4 of 18 positions, under the sparse share

    def loss_and_grads(fraction):
        monkeypatch.setattr(surrogate_module, "SPARSE_ANSWERED_FRACTION", fraction)
        torch.manual_seed(0)
        model = build_model(arch, num_items=12, max_len=6).train()  # dropout on: the masks must match too
        loss = surrogate_module._batch_loss(model, seqs, lists, 12, surrogate_module.SurrogateSettings(),
                                            torch.Generator().manual_seed(2), True, answered)
        loss.backward()
        return loss.detach(), [p.grad.clone() for p in model.parameters() if p.grad is not None]

    dense_loss, dense_grads = loss_and_grads(0.0)  # the dense path: every position scored, unanswered masked
    sparse_loss, sparse_grads = loss_and_grads(0.25)
    assert torch.allclose(sparse_loss, dense_loss, atol=1e-5)
    assert len(sparse_grads) == len(dense_grads)
    assert all(torch.allclose(a, b, atol=1e-5) for a, b in zip(sparse_grads, dense_grads))


def test_negatives_lie_outside_the_lists():
    lists = torch.tensor([[1, 2, 3], [4, 5, 6]])
    negatives = sample_negatives(lists, 7, torch.Generator().manual_seed(0))
    assert negatives.shape == (2, 3)
    for row, negs in zip(lists.tolist(), negatives.tolist()):
        assert not set(row) & set(negs) and all(1 <= n <= 7 for n in negs)


# ---- the attacker sees only the box -------------------------------------------------------
def test_attacker_functions_take_no_dataset():
    for function in (generate_queries, train_surrogate, fit_surrogate, run_attack):
        params = set(inspect.signature(function).parameters)
        assert not {"dataset", "data_dir", "sequences"} & params, function.__name__


def test_attack_module_does_not_import_the_data_package():
    code = ("import sys, recsec_lib.attack.extraction, recsec_lib.attack.blackbox; "
            "print(sorted(m for m in sys.modules if m.startswith('recsec_lib.data')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


# ---- surrogate training ---------------------------------------------------------------------
@pytest.fixture(scope="module")
def trained_target():
    """A small SASRec trained briefly on the synthetic data (its planted 'next item' pattern)."""
    torch.manual_seed(0)
    dataset = make_synthetic_dataset(num_users=150, num_items=40, max_len=12, seed=0)
    model = build_model("sasrec", num_items=40, max_len=12)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    seqs = torch.from_numpy(pad_left(dataset.train_sequences(), 13))
    for _ in range(40):
        model.train()
        loss = model.training_loss(seqs)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return dataset, model.eval()


def test_end_to_end_attack_beats_an_untrained_surrogate(trained_target):
    dataset, target = trained_target
    box = BlackBoxRecommender(target, k=10)
    settings = SurrogateSettings(epochs=15, batch_size=16, lr=3e-3, patience=0, seed=0)
    result = run_attack(box, 40, "autoregressive", num_sequences=100, seq_len=12, arch="sasrec",
                        settings=settings)
    assert result.data.num_queries == 1200 == box.queries_answered()
    assert result.surrogate.best_epoch >= 1 and len(result.surrogate.history) == 15
    torch.manual_seed(1)
    untrained = build_model("sasrec", num_items=40, max_len=12)
    stolen = evaluate_extraction(target, result.surrogate.model, dataset)
    baseline = evaluate_extraction(target, untrained, dataset)
    assert stolen["agr@10"] > baseline["agr@10"] + 0.2
    assert stolen["agr@1"] > baseline["agr@1"]


def test_bidirectional_surrogate_trains_on_sampled_prefixes(trained_target):
    dataset, target = trained_target
    box = BlackBoxRecommender(target, k=10)
    data = generate_queries(box, 40, "random", num_sequences=20, seq_len=6)
    model = build_model("bert4rec", num_items=40, max_len=12)
    assert not has_one_pass_prefix_scores(model)
    result = fit_surrogate(data, model, SurrogateSettings(epochs=2, batch_size=8, prefixes_per_sequence=3),
                           progress=False)
    assert len(result.history) == 2 and np.isfinite(result.history[-1]["loss"])


def test_surrogate_errors(trained_target):
    _, target = trained_target
    data = generate_queries(BlackBoxRecommender(target, k=10), 40, "random", 4, 6)
    with pytest.raises(ValueError, match="max_len"):
        fit_surrogate(data, build_model("sasrec", num_items=40, max_len=4))
    with pytest.raises(ValueError, match="items"):
        fit_surrogate(data, build_model("sasrec", num_items=41, max_len=12))
    with pytest.raises(ValueError, match="list_len"):
        fit_surrogate(data, build_model("sasrec", num_items=40, max_len=12), SurrogateSettings(list_len=11),
                      progress=False)
    with pytest.raises(ValueError, match="epochs"):
        SurrogateSettings(epochs=0)
    with pytest.raises(ValueError, match="holdout_fraction"):
        SurrogateSettings(holdout_fraction=1.0)


def test_a_model_agrees_fully_with_itself(trained_target):
    dataset, target = trained_target
    figures = evaluate_extraction(target, target, dataset)
    assert figures["agr@1"] == 1.0 and figures["agr@10"] == 1.0
    assert figures["surrogate_hr@10"] == figures["target_hr@10"]


# ---- stage, notebook and CLI -------------------------------------------------------------------


def test_stage_smoke_profile_writes_its_artefacts(attack_smoke_run):
    from recsec_lib.study import runs
    from recsec_lib.attack.querylog import QueryLog
    from recsec_lib.study.stages import attack as stage

    settings = stage.Settings.for_profile("smoke").with_overrides(budgets="10,20", epochs=2)
    metrics = stage.run(attack_smoke_run, settings)
    out = attack_smoke_run.run_dir / "attack"
    for name in ("budget_curve.csv", "budget_curve.png", "architectures.csv", "architectures.md",
                 "training_history.csv", "metrics.json", "queries_autoregressive_20.npz",
                 "querylog_random_10.npz", "surrogate_sasrec_meanemb_autoregressive_20.pt"):
        assert (out / name).is_file(), name
    headline = runs.read_json(attack_smoke_run.run_dir / "headline.json")
    for key in ("attack_agr10_autoregressive_20", "attack_agr1_autoregressive_20", "attack_agr10_random_20",
                "surrogate_test_ndcg10_autoregressive_20", "blackbox_queries_per_second"):
        assert key in headline and key in metrics["headline"], key
    assert metrics["wall_seconds"] > 0 and metrics["peak_memory_mb"] > 0
    assert len(metrics["budget_curve"]) == 4 and len(metrics["architectures"]) == 2
    log = QueryLog.load(out / "querylog_autoregressive_20.npz")
    assert len(log) == 20 * 8 and log.account_names == ["attacker-0"]
    assert AttackData.load(out / "queries_autoregressive_20.npz").num_queries == 160


def test_interrupted_stage_resumes_from_its_finished_parts(attack_smoke_run, monkeypatch):
    """A stage killed during its second surrogate reuses the first query set and surrogate when rerun."""
    from recsec_lib.study.stages import attack as stage

    settings = stage.Settings.for_profile("smoke").with_overrides(budgets="10", generators="autoregressive,random",
                                                                   surrogate_models="sasrec", epochs=1)
    real_fit, fits, queried = stage.fit_surrogate, [], []
    real_generate = stage.generate_queries

    def fit_then_die(data, model, *args, **kwargs):
        fits.append(data.generator)
        if len(fits) == 2:
            raise KeyboardInterrupt("killed during the second surrogate")
        return real_fit(data, model, *args, **kwargs)

    def counting_generate(box, num_items, generator, *args, **kwargs):
        queried.append(generator)
        return real_generate(box, num_items, generator, *args, **kwargs)

    monkeypatch.setattr(stage, "fit_surrogate", fit_then_die)
    monkeypatch.setattr(stage, "generate_queries", counting_generate)
    with pytest.raises(KeyboardInterrupt):
        stage.run(attack_smoke_run, settings)
    progress = attack_smoke_run.run_dir / "attack" / "progress"
    assert sorted(p.name for p in progress.iterdir()) == [
        "queries_autoregressive_10.json", "queries_random_10.json", "surrogate_sasrec_sasrec_autoregressive_10.json"]

    fits.clear(), queried.clear()
    monkeypatch.setattr(stage, "fit_surrogate", lambda data, model, *a, **k: (fits.append(data.generator),
                                                                               real_fit(data, model, *a, **k))[1])
    metrics = stage.run(attack_smoke_run, settings)
    assert fits == ["random"] and queried == []  # the random queries were saved before the kill
    assert metrics["resumed_parts"] == ["surrogate_sasrec_sasrec_autoregressive_10", "queries_random_10"]
    assert [row["generator"] for row in metrics["budget_curve"]] == ["autoregressive", "random"]

    # another target checkpoint (or --force) invalidates every record
    fits.clear()
    assert stage.run(dataclasses.replace(attack_smoke_run, force=True), settings)["resumed_parts"] == [] and fits == ["autoregressive", "random"]
    fits.clear()
    (progress / "surrogate_sasrec_sasrec_random_10.json").write_text("{ damaged")
    assert stage.run(attack_smoke_run, settings)["resumed_parts"] == [
        "surrogate_sasrec_sasrec_autoregressive_10", "queries_random_10"] and fits == ["random"]


def test_stage_settings_and_missing_target(tmp_path):
    from recsec_lib.study.stages import attack as stage
    from recsec_lib.study.stages.context import StudyContext

    assert stage.Settings.for_profile("full").main_budget == 5000
    assert stage.Settings.for_profile("cpu").with_overrides(epochs=None).epochs == 20
    assert stage.budget_label(5000) == "5k" and stage.budget_label(250) == "250"
    assert stage.Settings().with_overrides(budgets=300).budgets == (300,)
    assert stage.Settings().with_overrides(budgets="100, 200", generators="random").budgets == (100, 200)
    with pytest.raises(ValueError, match="profile"):
        stage.Settings.for_profile("huge")
    with pytest.raises(ValueError, match="unknown setting 'budget' .*; did you mean 'budgets'"):
        stage.Settings().with_overrides(budget=3)
    with pytest.raises(ValueError, match="generators"):
        stage.Settings(generators=("greedy",))
    with pytest.raises(ValueError, match="budgets"):
        stage.Settings(budgets=(0,))
    ctx = StudyContext(run_dir=tmp_path / "run", dataset="synthetic", data_dir=tmp_path / "data", profile="smoke")
    with pytest.raises(FileNotFoundError, match="train stage"):
        stage.run(ctx, stage.Settings.for_profile("smoke"))


def test_cli_attack_end_to_end_and_errors(attack_smoke_run, tmp_path, capsys):
    from recsec_lib.cli import main

    target = str(attack_smoke_run.run_dir / "train" / "sasrec.pt")
    common = ["attack", "--target-model", target, "--dataset", "synthetic", "--data-dir",
              str(attack_smoke_run.data_dir), "--device", "cpu", "--quiet"]
    out_dir = tmp_path / "cli"
    code = main(common + ["--queries", "160", "--seq-len", "8", "--top-k", "10", "--epochs", "2",
                          "--surrogate", "meanemb", "--output-dir", str(out_dir)])
    assert code == 0 and "Agr@10" in capsys.readouterr().out
    for name in ("queries.npz", "querylog.npz", "surrogate.pt", "metrics.json"):
        assert (out_dir / name).is_file(), name
    assert main(common + ["--queries", "5", "--seq-len", "8"]) == 2
    assert "buys no sequence" in capsys.readouterr().err
    assert main(common + ["--sequences", "4", "--surrogate", "transformer"]) == 2
    assert "--surrogate" in capsys.readouterr().err
    assert main(["attack", "--target-model", str(tmp_path / "missing.pt")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(common + ["--sequences", "4", "--epochs", "0"]) == 2
    assert "--epochs" in capsys.readouterr().err


def test_infer_filter_seen_on_hand_made_answers():
    sequences = np.array([[1, 2, 3]])
    clean = np.array([[[4, 5], [4, 5], [4, 5]]])  # never returns an item of its prefix
    leaky = np.array([[[4, 5], [4, 1], [4, 5]]])  # returns 1 after the prefix (1, 2)
    later = np.array([[[3, 5], [4, 5], [4, 5]]])  # 3 is returned before it enters the sequence: still clean
    assert infer_filter_seen(AttackData(sequences, clean, "random", 5))
    assert not infer_filter_seen(AttackData(sequences, leaky, "random", 5))
    assert infer_filter_seen(AttackData(sequences, later, "random", 5))


def test_early_stopping_waits_for_min_epochs(trained_target):
    """With lr ~0 the held-out agreement never improves after epoch 1, yet training runs min_epochs before
    patience may stop it (early epochs of small budgets are too noisy to stop on)."""
    dataset, target = trained_target
    box = BlackBoxRecommender(target, k=10)
    data = generate_queries(box, 40, "random", num_sequences=30, seq_len=6)
    model = build_model("sasrec", num_items=40, max_len=12)
    settings = SurrogateSettings(epochs=20, batch_size=8, lr=1e-12, patience=2, min_epochs=6, seed=0)
    result = fit_surrogate(data, model, settings)
    assert result.stopped == "early_stopping"
    assert len(result.history) == 6
    with pytest.raises(ValueError, match="min_epochs"):
        SurrogateSettings(min_epochs=-1)
