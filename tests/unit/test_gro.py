"""Tests of the GRO defense: hand-computed swap matrices, gradients, training and evaluation."""

from __future__ import annotations

import copy
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from recsec_lib.data.synthetic import make_synthetic_dataset
from recsec_lib.gro.defenses import choose_best_lambda
from recsec_lib.recommend.metrics import list_metrics
from recsec_lib.gro.loss import (adversarial_items, adversarial_swap_matrix, listed_scores_through_swap,
                                 seed_variant_loss, student_loss, swap_gradient, swap_loss, swap_matrix)
from recsec_lib.gro.training import GROConfig, prefix_positions, seen_items, train_gro
from recsec_lib.recommend.losses import ranking_margin_loss
from recsec_lib.common.tables import markdown_table
from recsec_lib.models.base import SequentialRecommender


# ---------------------------------------------------------------------------
# A tiny causal stand-in model: h_t = tanh(W [e(x_t); mean_{s<=t} e(x_s)]), scores = h_t · E^T
# ---------------------------------------------------------------------------
class TinyCausal(SequentialRecommender):
    def __init__(self, num_items: int, max_len: int, dim: int = 16, seed: int = 0):
        super().__init__()
        torch.manual_seed(seed)
        self.num_items, self.max_len, self.config = num_items, max_len, None
        self.embedding = nn.Embedding(num_items + 1, dim, padding_idx=0)
        self.mix = nn.Linear(2 * dim, dim)

    def all_position_scores(self, seqs):
        e = self.embedding(seqs)  # [B, L, D]
        real = (seqs != 0).float().unsqueeze(-1)  # [B, L, 1]
        mean = (e * real).cumsum(1) / real.cumsum(1).clamp(min=1)  # [B, L, D]
        h = torch.tanh(self.mix(torch.cat([e, mean], dim=-1)))  # [B, L, D]
        scores = h @ self.embedding.weight.T  # [B, L, n+1]
        return torch.cat([torch.full_like(scores[..., :1], float("-inf")), scores[..., 1:]], dim=-1)

    def forward(self, seqs):
        return self.all_position_scores(seqs[:, -self.max_len:])[:, -1]

    def training_loss(self, seqs):
        seqs = seqs[:, -(self.max_len + 1):]
        inputs, targets = seqs[:, :-1], seqs[:, 1:]
        scores = self.all_position_scores(inputs)  # [B, L, n+1]
        counted = (inputs != 0) & (targets != 0)
        return F.cross_entropy(scores[counted][:, 1:], targets[counted] - 1)


class NonCausal(TinyCausal):
    """Same weights, but without the one-pass override: exercises the per-prefix path."""

    all_position_scores = SequentialRecommender.all_position_scores

    def forward(self, seqs):
        return TinyCausal.all_position_scores(self, seqs[:, -self.max_len:])[:, -1]


class Restricted(TinyCausal):
    """Overrides scores_at (scores only the requested positions), as SASRec may."""

    calls = 0

    def scores_at(self, seqs, rows, columns):
        Restricted.calls += 1
        return TinyCausal.all_position_scores(self, seqs)[rows, columns]


# ---------------------------------------------------------------------------
# The swap matrix and A' on a 4-item example computed by hand
# ---------------------------------------------------------------------------
# Items 1..4, column 0 = padding (a finite 0 here so that A·s is defined).
STUDENT = torch.tensor([[0.0, 0.2, 0.3, 0.9, -1.0]])  # s[j] for j = 0..4
LIST = torch.tensor([[2, 1]])  # the target ranks item 2 first, then item 1
NEGATIVES = torch.tensor([[4, 4]])
# By hand: listed = [0.3, 0.2]; order term relu(0.2 - 0.3 + 0.5) = 0.4 (active);
# negative terms relu(-1.0 - 0.3 + 0.5) = 0 and relu(-1.0 - 0.2 + 0.5) = 0.
# L = 0.4, g = dL/dlisted = [-1, +1], dL/dA = g_i * s:
#   row 0 = [0, -0.2, -0.3, -0.9, 1.0] -> largest allowed entry at item 4 (the student's worst item)
#   row 1 = [0,  0.2,  0.3,  0.9, -1.0] -> largest allowed entry at item 3 (the student's best item)


def test_swap_matrix_is_one_hot_of_the_list():
    a = swap_matrix(LIST, 5)
    expected = torch.tensor([[[0, 0, 1, 0, 0], [0, 1, 0, 0, 0]]], dtype=torch.float32)
    assert torch.equal(a, expected)
    assert torch.allclose(listed_scores_through_swap(a, STUDENT), torch.tensor([[0.3, 0.2]]))


def test_student_loss_and_its_gradient_by_hand():
    scores = STUDENT.clone().requires_grad_(True)
    loss, listed = student_loss(scores, LIST, NEGATIVES)
    assert loss.item() == pytest.approx(0.4)
    (g,) = torch.autograd.grad(loss, listed)
    assert g.tolist() == [[-1.0, 1.0]]
    grad_a = swap_gradient(g, STUDENT)
    assert torch.allclose(grad_a, torch.tensor([[[0.0, -0.2, -0.3, -0.9, 1.0], [0.0, 0.2, 0.3, 0.9, -1.0]]]))


def test_adversarial_swap_matrix_by_hand():
    g = torch.tensor([[-1.0, 1.0]])
    a_prime = adversarial_swap_matrix(swap_gradient(g, STUDENT), LIST)
    assert torch.equal(a_prime, swap_matrix(torch.tensor([[4, 3]]), 5))
    assert adversarial_items(g, STUDENT, LIST).tolist() == [[4, 3]]


def test_zero_gradient_row_keeps_its_item_and_disallowed_items_are_never_chosen():
    g = torch.tensor([[0.0, 1.0]])
    allowed = torch.tensor([[False, True, True, False, True]])  # item 3 (the best) is forbidden
    # row 0: g = 0 -> keep item 2; row 1: best allowed item is 2 (0.3)
    assert adversarial_items(g, STUDENT, LIST, allowed).tolist() == [[2, 2]]
    assert adversarial_swap_matrix(swap_gradient(g, STUDENT), LIST, allowed).argmax(2).tolist() == [[2, 2]]


# The zero-gradient rule on a 3-rank list over the same 4 items, g given by hand:
#   rank 0: item 2, g = 0   -> keep: item 2 (no swap);     lowest_index: item 1 (the authors' argmax over ties)
#   rank 1: item 1, g = -1  -> the student's worst allowed item, 4, under both rules
#   rank 2: item 3, g = +1  -> the student's best item is item 3 itself: kept under both rules
RULE_LIST = torch.tensor([[2, 1, 3]])
RULE_GRAD = torch.tensor([[0.0, -1.0, 1.0]])


@pytest.mark.parametrize("rule, expected", [("keep", [[2, 4, 3]]), ("lowest_index", [[1, 4, 3]])])
def test_zero_gradient_rule_by_hand(rule, expected):
    items = adversarial_items(RULE_GRAD, STUDENT, RULE_LIST, zero_gradient_rule=rule)
    assert items.tolist() == expected
    explicit = adversarial_swap_matrix(swap_gradient(RULE_GRAD, STUDENT), RULE_LIST, zero_gradient_rule=rule)
    assert explicit.argmax(dim=2).tolist() == expected  # the explicit k×C path agrees
    with pytest.raises(ValueError, match="'zero_gradient_rule'"):
        adversarial_items(RULE_GRAD, STUDENT, RULE_LIST, zero_gradient_rule="first")


def test_lowest_index_rule_pushes_item_one_up_and_keep_leaves_zero_rows_idle():
    """L_swap's gradient on the target: under "lowest_index" a zero row raises item 1; under "keep" it does nothing."""
    target = torch.tensor([[0.0, 0.1, 0.5, 0.4, 0.3]], requires_grad=True)
    grads = {}
    for rule in ("keep", "lowest_index"):
        adversarial = adversarial_items(RULE_GRAD[:, :1], STUDENT, RULE_LIST[:, :1], zero_gradient_rule=rule)
        target.grad = None
        swap_loss(target, RULE_LIST[:, :1], adversarial).backward()
        grads[rule] = target.grad.clone()
    assert torch.equal(grads["keep"], torch.zeros_like(target))  # relu(s[2] - s[2] + 0) = 0: idle
    assert grads["lowest_index"][0, 1] < 0 < grads["lowest_index"][0, 2]  # descent raises item 1, lowers item 2


def test_train_gro_records_the_zero_gradient_share_and_checks_the_rule():
    data, target, student = _tiny()
    config = GROConfig(epochs=1, batch_size=16, k=5, positions_per_sequence=3, zero_gradient_rule="lowest_index")
    result = train_gro(target, student, data.train_sequences(), config)
    assert 0.0 <= result.history[0]["zero_gradient_share"] <= 1.0 and result.history[0]["batches"] >= 1
    with pytest.raises(ValueError, match="'zero_gradient_rule'"):
        GROConfig(zero_gradient_rule="lowest")
    with pytest.raises(ValueError, match="'kept_epoch'"):
        GROConfig(kept_epoch="first")


def test_swap_loss_by_hand_and_zero_when_a_equals_a_prime():
    target = torch.tensor([[0.0, 0.7, 1.0, 0.4, 0.2]], requires_grad=True)
    loss = swap_loss(target, LIST, torch.tensor([[4, 3]]))
    # mean(relu(t2 - t4), relu(t1 - t3)) = mean(0.8, 0.3)
    assert loss.item() == pytest.approx(0.55)
    loss.backward()
    assert torch.allclose(target.grad, torch.tensor([[0.0, 0.5, 0.5, -0.5, -0.5]]))
    assert swap_loss(target, LIST, LIST).item() == 0.0


def test_gradient_wrt_swap_matrix_autograd_analytic_and_finite_differences_agree():
    gen = torch.Generator().manual_seed(3)
    n, k, columns = 3, 4, 9
    scores = torch.randn(n, columns, generator=gen, dtype=torch.float64)
    lists = torch.stack([torch.randperm(columns - 1, generator=gen)[:k] + 1 for _ in range(n)])
    negatives = torch.stack([torch.tensor([j for j in range(1, columns) if j not in row][:k]) for row in lists.tolist()])
    a = swap_matrix(lists, columns).double().requires_grad_(True)

    def loss_of(matrix):
        return ranking_margin_loss(listed_scores_through_swap(matrix, scores), scores.gather(1, negatives))

    loss_of(a).backward()
    autograd = a.grad.clone()
    loss, listed = student_loss(scores.clone().requires_grad_(True), lists, negatives)
    (g,) = torch.autograd.grad(loss, listed)  # dL/d(listed): what training uses
    analytic = swap_gradient(g, scores)
    assert torch.allclose(autograd, analytic)

    eps = 1e-6
    finite = torch.zeros_like(autograd)
    with torch.no_grad():
        for index in np.ndindex(*a.shape):
            up, down = a.detach().clone(), a.detach().clone()
            up[index] += eps
            down[index] -= eps
            finite[index] = (loss_of(up) - loss_of(down)) / (2 * eps)
    assert torch.allclose(finite, autograd, atol=1e-6)
    assert torch.equal(adversarial_swap_matrix(analytic, lists).argmax(2), adversarial_items(g, scores, lists))


def test_adversarial_items_matches_explicit_argmax_on_random_inputs():
    gen = torch.Generator().manual_seed(0)
    scores = torch.randn(20, 12, generator=gen)
    lists = torch.stack([torch.randperm(11, generator=gen)[:5] + 1 for _ in range(20)])
    g = torch.randint(-2, 2, (20, 5), generator=gen).float()
    allowed = torch.rand(20, 12, generator=gen) > 0.3
    allowed[:, 0] = False
    explicit = adversarial_swap_matrix(swap_gradient(g, scores), lists, allowed).argmax(2)
    assert torch.equal(explicit, adversarial_items(g, scores, lists, allowed))


def test_seed_variant_loss_is_zero_when_far_apart_and_margin_when_equal():
    target = torch.tensor([[0.0, 3.0, -3.0]])
    lists = torch.tensor([[1, 2]])
    # identical scores: every pair differs by 0 -> relu(0.3 - 0) = 0.3 everywhere
    assert seed_variant_loss(target, target, lists).item() == pytest.approx(0.3)
    # opposite order: off-diagonal pairs differ by > 0.3, the 2 diagonal pairs still cost 0.3 each
    assert seed_variant_loss(target, -target, lists).item() == pytest.approx(0.15)
    with pytest.raises(ValueError, match="temperature"):
        seed_variant_loss(target, target, lists, temperature=0)


# ---------------------------------------------------------------------------
# Prefix helpers
# ---------------------------------------------------------------------------
def test_prefix_positions_seen_items_and_both_scoring_paths_agree():
    seqs = torch.tensor([[0, 0, 3, 1, 4], [5, 2, 1, 3, 4]])
    rows, cols = prefix_positions(seqs, per_sequence=2)
    assert list(zip(rows.tolist(), cols.tolist())) == [(0, 3), (0, 4), (1, 3), (1, 4)]
    rows_all, _ = prefix_positions(seqs)
    assert len(rows_all) == 8
    seen = seen_items(seqs, rows, cols, num_items=5)
    assert seen[0].nonzero().flatten().tolist() == [0, 1, 3]  # prefix [3, 1]
    assert seen[3].nonzero().flatten().tolist() == [0, 1, 2, 3, 4, 5]
    causal, per_prefix, restricted = TinyCausal(5, 5), NonCausal(5, 5), Restricted(5, 5)
    per_prefix.load_state_dict(causal.state_dict())
    restricted.load_state_dict(causal.state_dict())
    expected = causal.scores_at(seqs, rows, cols)
    assert torch.allclose(expected, per_prefix.scores_at(seqs, rows, cols), atol=1e-6)
    assert torch.allclose(expected, restricted.scores_at(seqs, rows, cols), atol=1e-6)
    assert Restricted.calls == 1


# ---------------------------------------------------------------------------
# Training
# ---------------------------------------------------------------------------
def _tiny(seed=0):
    data = make_synthetic_dataset(num_users=40, num_items=30, max_len=12, seed=seed)
    return data, TinyCausal(30, 12, seed=1), TinyCausal(30, 12, seed=2)


def test_train_gro_runs_records_three_losses_and_resumes(tmp_path):
    data, target, student = _tiny()
    config = GROConfig(epochs=2, batch_size=16, k=5, positions_per_sequence=3)
    state = tmp_path / "gro_state.pt"
    result = train_gro(copy.deepcopy(target), copy.deepcopy(student), data.train_sequences(), config,
                       state_path=state)
    assert [row["epoch"] for row in result.history] == [1, 2]
    assert all(row["loss_swap"] >= 0 and row["loss_student"] > 0 for row in result.history)
    # stop after 1 epoch, then resume to 2: same weights as the uninterrupted run
    half = tmp_path / "half.pt"
    train_gro(copy.deepcopy(target), copy.deepcopy(student), data.train_sequences(),
              GROConfig(**{**config.__dict__, "epochs": 1}), state_path=half)
    resumed = train_gro(copy.deepcopy(target), copy.deepcopy(student), data.train_sequences(), config,
                        state_path=half)
    for a, b in zip(resumed.target.parameters(), result.target.parameters()):
        assert torch.allclose(a, b, atol=1e-6)
    with pytest.raises(ValueError, match="other settings"):
        train_gro(copy.deepcopy(target), copy.deepcopy(student), data.train_sequences(),
                  GROConfig(**{**config.__dict__, "lam": 2.0}), state_path=state)


def test_seed_variant_and_none_methods_run():
    data, target, student = _tiny()
    for method in ("seed-variant", "none"):
        result = train_gro(copy.deepcopy(target), copy.deepcopy(student), data.train_sequences(),
                           GROConfig(method=method, epochs=1, batch_size=32, k=5, lam=5.0))
        assert len(result.history) == 1


def test_config_and_model_errors_name_the_parameter():
    with pytest.raises(ValueError, match="'method'"):
        GROConfig(method="magic")
    with pytest.raises(ValueError, match="'lam'"):
        GROConfig(lam=-1)
    data, target, student = _tiny()
    with pytest.raises(ValueError, match="'k'"):
        train_gro(target, student, data.train_sequences(), GROConfig(k=30))
    with pytest.raises(ValueError, match="separate model"):
        train_gro(target, target, data.train_sequences(), GROConfig(k=5))
    with pytest.raises(ValueError, match="must match"):
        train_gro(target, TinyCausal(31, 12), data.train_sequences(), GROConfig(k=5))
    with pytest.raises(ValueError, match="2 or more"):
        train_gro(target, student, [np.array([1])], GROConfig(k=5))


# ---------------------------------------------------------------------------
# Evaluation helpers
# ---------------------------------------------------------------------------
def test_list_metrics_read_the_served_order():
    lists = np.array([[3, 1, 2], [1, 2, 3], [2, 3, 1]])
    targets = np.array([3, 3, 4])
    out = list_metrics(lists, targets, ks=(1, 3))
    assert out["hr@1"] == pytest.approx(1 / 3)
    assert out["hr@3"] == pytest.approx(2 / 3)
    assert out["ndcg@3"] == pytest.approx((1.0 + 1.0 / np.log2(4)) / 3)
    with pytest.raises(ValueError, match="cut-off"):
        list_metrics(lists, targets, ks=(4,))
    with pytest.raises(ValueError, match="lists must be"):
        list_metrics(lists[:2], targets)


def _table(rows):
    import pandas as pd

    frame = pd.DataFrame(rows, columns=["defense", "method", "lam", "retention_valid", "surrogate_valid_ndcg10_drop"])
    return frame


def test_choose_best_lambda_uses_validation_and_the_retention_floor():
    table = _table([["None", "none", None, 1.0, 0.0], ["Reverse", "reverse", None, 0.1, 0.5],
                    ["GRO 0", "gro", 0.0, 1.0, 0.40],  # the λ = 0 control is never a candidate
                    ["GRO 0.1", "gro", 0.1, 0.99, 0.10], ["GRO 1", "gro", 1.0, 0.96, 0.30],
                    ["GRO 10", "gro", 10.0, 0.80, 0.60]])
    best = choose_best_lambda(table)
    assert (best["lam"], best["constraint_met"], best["retention_valid"], best["drop_valid"]) == (1.0, True, 0.96, 0.30)
    short = table[table["lam"] != 1.0].copy()
    short.loc[short["lam"] == 0.1, "retention_valid"] = 0.9
    best = choose_best_lambda(short)
    assert best["lam"] is None and best["shown_lam"] == 0.1 and best["constraint_met"] is False


def test_choose_best_lambda_reports_no_protective_lambda():
    """A λ that keeps utility but does not lower the surrogate (or only within the noise) is not chosen."""
    from recsec_lib.gro.defenses import NO_PROTECTIVE_LAMBDA

    table = _table([["GRO 0.1", "gro", 0.1, 0.99, -0.02], ["GRO 1", "gro", 1.0, 0.97, 0.0],
                    ["GRO 10", "gro", 10.0, 0.50, 0.70]])
    best = choose_best_lambda(table)
    assert best["lam"] is None and best["reason"] == NO_PROTECTIVE_LAMBDA and best["constraint_met"] is False
    assert best["shown_lam"] == 1.0  # the largest validation fall among the λ keeping the floor is shown
    # A positive fall whose 95% interval holds 0 is noise, not protection.
    table["surrogate_valid_ndcg10_drop"] = [0.05, 0.08, 0.70]
    table["surrogate_valid_ndcg10_drop_low"] = [-0.01, -0.03, 0.5]
    assert choose_best_lambda(table)["reason"] == NO_PROTECTIVE_LAMBDA
    table.loc[0, "surrogate_valid_ndcg10_drop_low"] = 0.01
    assert choose_best_lambda(table)["lam"] == 0.1


def test_markdown_table():
    import pandas as pd

    text = markdown_table(pd.DataFrame({"defense": ["None"], "x": [1.234]}), float_format="{:.2f}")
    assert text == "| defense | x |\n| --- | --- |\n| None | 1.23 |\n"


# ---------------------------------------------------------------------------
# GRO against the real attack code on tiny data: less agreement, most utility kept
# ---------------------------------------------------------------------------
def test_gro_lowers_surrogate_agreement_and_keeps_utility():
    from recsec_lib.attack.blackbox import BlackBoxRecommender
    from recsec_lib.attack.extraction import SurrogateSettings, fit_surrogate, generate_queries
    from recsec_lib.recommend.evaluation import ranked_lists
    from recsec_lib.recommend.metrics import per_user_agreement

    data = make_synthetic_dataset(num_users=200, num_items=60, max_len=20, seed=0)
    target = TinyCausal(60, 20, dim=32, seed=1)
    train_gro(target, TinyCausal(60, 20, seed=2), data.train_sequences(),
              GROConfig(method="none", epochs=20, batch_size=32, lr=1e-2))
    defended = train_gro(copy.deepcopy(target), TinyCausal(60, 20, dim=32, seed=3), data.train_sequences(),
                         GROConfig(lam=1.0, epochs=5, batch_size=32, k=10, lr=1e-2)).target
    inputs, targets = data.split("test")
    wanted = ranked_lists(target, inputs, 10)[0]  # what the attacker wants: the undefended target's top 10

    def attack(model) -> tuple[float, float]:  # (served NDCG@10, surrogate Agr@10 with the undefended target)
        box = BlackBoxRecommender(model, k=10, filter_seen=False)
        queries = generate_queries(box, 60, "autoregressive", 100, 15, seed=0)
        settings = SurrogateSettings(epochs=15, patience=0, lr=1e-2)
        surrogate = fit_surrogate(queries, TinyCausal(60, 20, dim=32, seed=5), settings).model
        served = list_metrics(ranked_lists(model, inputs, 10)[0], targets)["ndcg@10"]
        return served, float(per_user_agreement(ranked_lists(surrogate, inputs, 10)[0], wanted).mean())

    (none_ndcg, none_agr), (gro_ndcg, gro_agr) = attack(target), attack(defended)
    assert gro_agr < none_agr - 0.05
    assert gro_ndcg / none_ndcg >= 0.9


# ---------------------------------------------------------------------------
# Stage, CLI and notebook on the smoke profile
# ---------------------------------------------------------------------------


SMOKE_OVERRIDES = {"lambdas": "1", "epochs": 1, "attack_sequences": 20, "surrogate_epochs": 2}


def test_stage_smoke_puts_every_arm_against_every_attacker_and_recsec_defend_agrees(gro_trained_run, tmp_path):
    from recsec_lib.arena.tables import read_matrix_rows
    from recsec_lib.study import runs
    from recsec_lib.study.stages import gro as stage
    from recsec_lib.study.stages.context import StudyContext

    root, checkpoint = gro_trained_run
    run_dir = root / "stage_run"
    (run_dir / "train").mkdir(parents=True)
    (run_dir / "train" / "sasrec.pt").write_bytes((root / "run" / "train" / "sasrec.pt").read_bytes())
    ctx = StudyContext(run_dir=run_dir, dataset="synthetic", data_dir=root / "data", profile="smoke", device="cpu")
    settings = stage.Settings.for_profile("smoke").with_overrides(**SMOKE_OVERRIDES)
    metrics = stage.run(ctx, settings)
    out = run_dir / "gro"
    for name in ("matrix.csv", "frontier.csv", "frontier.md", "frontier.png", "gro_arms.csv", "gro_arms.md",
                 "gro_lam0.pt", "gro_lam1.pt", "gro_lowestindex_lam1.pt", "metrics.json"):
        assert (out / name).is_file(), name
    headline = runs.read_json(run_dir / "headline.json")
    for key in ("gro_protective_lambda_found", "gro_utility_retention", "gro_surrogate_ndcg10_drop",
                "gro_surrogate_ndcg10_drop_low", "gro_agr10", "none_agr10", "gro_control_agr10",
                "gro_lowest_index_surrogate_ndcg10_drop", "gro_lowest_index_promoted_item_share",
                "gro_epoch_cost_ratio", "defense_frontier_target_met", "defense_frontier_best"):
        assert key in headline and key in metrics, key
    assert metrics["wall_seconds"] > 0 and metrics["peak_memory_mb"] > 0
    frontier = [row["defense"] for row in metrics["frontier"]]
    assert frontier[:3] == ["None", "Random", "top-5 only"] and "GRO λ=0 (control)" in frontier
    assert {"GRO keep λ=1", "GRO lowest_index λ=1", "GRO keep λ=1 + top-5 exact, tail shuffled"} <= set(frontier)
    # Every arm faced the same attackers (2 seeds × 4 views); GRO is compared with the control.
    rows = metrics["defenses"]
    faced = {}
    for row in rows:
        faced.setdefault(row["arm"], set()).add((row["attacker"], row["generator"]))
        assert row["seeds"] == 2
        assert row["surrogate_test_ndcg10_drop_low"] <= row["surrogate_test_ndcg10_drop"] <= \
            row["surrogate_test_ndcg10_drop_high"]
    assert len({frozenset(v) for v in faced.values()}) == 1 and len(next(iter(faced.values()))) == 4
    assert {row["reference"] for row in rows if row["family"] == "gro"} == {"GRO λ=0 (control)"}
    # Serving the top 5 only: its naive attacker is the undefended box's top-5-steered one, so no fall can show
    # as helping the attacker (falls are against the strongest attacker of the reference's model).
    assert all(row["surrogate_test_ndcg10_drop"] >= -1e-12 for row in rows if row["model"] == "undefended")
    # The smoke profile keeps the best-validating epoch (patience 2); one epoch was run and kept. The target
    # checkpoint has no training record, so GRO trains on the newest window of each history.
    assert metrics["gro_kept_epochs"]["gro keep λ=1"]["best_epoch"] == 1
    assert "valid_score" in metrics["gro_histories"]["gro keep λ=1"][0]
    assert "zero_gradient_share" in metrics["gro_histories"]["gro lowest_index λ=1"][0]
    assert metrics["training_windows"] == "newest"
    assert metrics["attackers"]["rows_time_capped"] == 0
    # recsec defend with the same settings prints the same rows (it runs the stage's own computation).
    sets = [arg for name, value in SMOKE_OVERRIDES.items() for arg in ("--set", f"{name}={value}")]
    code = _cli("--target-model", checkpoint, "--profile", "smoke", *sets, "--evaluate", "--dataset", "synthetic",
                "--data-dir", root / "data", "--output", tmp_path / "cli", "--device", "cpu")
    assert code == 0
    pd.testing.assert_frame_equal(read_matrix_rows(tmp_path / "cli" / "matrix.csv"), read_matrix_rows(out / "matrix.csv"))
    assert (tmp_path / "cli" / "frontier.md").read_text() == (out / "frontier.md").read_text()
    # ... and the same curve: the point verdicts and the null comparison
    for name in ("curve.csv", "nulls.md", "extraction.csv", "authors_units.csv"):
        assert (tmp_path / "cli" / name).read_text() == (out / name).read_text(), name
    # ... and a headline a side run is published with: the stage's keys and what produced them
    side = runs.read_json(tmp_path / "cli" / "headline.json")
    figures = [key for key in metrics["headline_keys"] if key != "gro_epoch_cost_ratio"]  # that one is a timing
    assert set(metrics["headline_keys"]) <= set(side)
    assert {key: side[key] for key in figures} == {key: headline[key] for key in figures}
    assert (side["profile"], side["dataset"]) == ("smoke", "synthetic") and {"git_commit", "date"} <= set(side)


def test_gro_trains_on_the_windows_the_target_was_trained_on(tmp_path):
    """trained_windows reads the undefended checkpoint's training rows ("newest" when it does not say)."""
    from recsec_lib.recommend.checkpoints import save_checkpoint
    from recsec_lib.models.registry import build_model
    from recsec_lib.study.stages.gro import trained_windows

    data = make_synthetic_dataset(num_users=20, num_items=30, max_len=12, seed=0)
    model = build_model("sasrec", data.num_items, data.max_len, hidden=8)
    plain = save_checkpoint(tmp_path / "plain.pt", model, "sasrec", data)
    assert trained_windows(plain) == "newest"
    windowed = save_checkpoint(tmp_path / "all.pt", model, "sasrec", data,
                               training_state={"train_config": {"windows": "all"}})
    assert trained_windows(windowed) == "all"


def test_a_resumed_gro_target_whose_training_finished_keeps_its_model_digest(tmp_path):
    """A resumed GRO stage saves each finished target again; its model digest must not change, or every matrix
    cell of that model would be computed again (the file's bytes may change: pickle shares repeated strings by
    object identity, and a history read back from the training state holds other objects)."""
    from recsec_lib.arena.model_defenses.gro import GROTarget
    from recsec_lib.models.registry import build_model
    from recsec_lib.recommend.checkpoints import model_digest
    from recsec_lib.recommend.sequences import training_windows

    data = make_synthetic_dataset(num_users=20, num_items=30, max_len=12, seed=0)
    torch.manual_seed(0)
    undefended = build_model("sasrec", data.num_items, data.max_len, hidden=8)
    rows = training_windows(data.train_sequences(), data.max_len + 1, "newest")
    defense = GROTarget(GROConfig(lam=1.0, epochs=1, batch_size=16, k=5, positions_per_sequence=3))
    first = defense.train(undefended, data, rows, tmp_path, "cpu")
    digest = model_digest(first.checkpoint)
    again = defense.train(undefended, data, rows, tmp_path, "cpu")  # finds the finished state: no epoch runs
    assert again.checkpoint == first.checkpoint and again.history == first.history
    assert model_digest(again.checkpoint) == digest  # what the matrix's cells are keyed by


def test_a_gro_verdict_protects_only_where_its_null_agrees():
    """The headline's per-rule verdict is judged against the λ = 0 control; "protects" stands only where the
    point's utility-matched null also says so (a point that only costs utility is copied worse by any measure)."""
    from recsec_lib.study.stages.gro import null_checked_verdict

    statuses = {"GRO keep λ=1": "no protection beyond the null", "GRO keep λ=0.1": "protects",
                "GRO lowest_index λ=1": "within training noise"}
    assert null_checked_verdict("protects", "GRO keep λ=1", statuses) == "no protection beyond the null"
    assert null_checked_verdict("protects", "GRO lowest_index λ=1", statuses) == "within training noise"
    assert null_checked_verdict("protects", "GRO keep λ=0.1", statuses) == "protects"
    assert null_checked_verdict("no effect", "GRO keep λ=0.1", statuses) == "no effect"  # never raised
    assert null_checked_verdict("helps the attacker", "GRO keep λ=1", statuses) == "helps the attacker"
    assert null_checked_verdict("protects", "GRO keep λ=3", statuses) == "protects"  # no curve point: as it was


def test_settings_profiles_and_overrides():
    from recsec_lib.study.stages import gro as stage
    from recsec_lib.study.stages import train as train_stage

    assert stage.Settings.for_profile("full").lambdas == (0.001, 0.01, 0.03, 0.1, 0.3, 1.0, 10.0)
    # paper scale is the authors' setting: BERT4Rec from scratch (the train stage's full profile trains it)
    full = stage.Settings.for_profile("full")
    assert (full.target_model, full.from_scratch, full.positions_per_sequence) == ("bert4rec", True, 0)
    assert full.target_model in train_stage.Settings.for_profile("full").models
    cpu = stage.Settings.for_profile("cpu")
    # the main points: both rules at λ = 0.1 and 1; the curve, a run of its own: at least 4 λ × both rules;
    # the last epoch kept, the control with 2 training seeds
    assert cpu.lambdas == (0.1, 1.0) and cpu.zero_gradient_rules == ("keep", "lowest_index")
    curve = cpu.with_overrides(lambdas=",".join(map(str, stage.CPU_CURVE["lambdas"])),
                               zero_gradient_rules=",".join(stage.CPU_CURVE["zero_gradient_rules"]))
    assert len(curve.lambdas) >= 4 and curve.zero_gradient_rules == ("keep", "lowest_index")
    assert cpu.kept_epoch == "last" and cpu.control_seeds == 2 and cpu.nulls
    assert stage.Settings.for_profile("full").second_budget >= 4 * stage.Settings.for_profile("full").attack_sequences
    assert cpu.with_overrides(second_budget=2000).second_surrogate_epochs() == 20  # equal epochs: the first budget's
    assert cpu.with_overrides(second_budget=2000, second_budget_surrogate_epochs=5).second_surrogate_epochs() == 5
    with pytest.raises(ValueError, match="'second_budget' \\(100\\) must be larger than 'attack_sequences'"):
        cpu.with_overrides(second_budget=100)
    with pytest.raises(ValueError, match="'null_tolerance'"):
        cpu.with_overrides(null_tolerance=1.5)
    with pytest.raises(ValueError, match="'control_seeds'"):
        cpu.with_overrides(control_seeds=0)
    assert cpu.with_overrides(epochs=None, lambdas=None) == cpu
    assert cpu.with_overrides(lambdas="0.01, 1").lambdas == (0.01, 1.0)
    assert cpu.from_scratch is False and cpu.with_overrides(from_scratch="yes").from_scratch is True
    assert stage.Settings.for_profile("full").with_overrides(from_scratch="no").from_scratch is False
    with pytest.raises(ValueError, match="setting 'from_scratch' of .*gro.Settings takes bool"):
        cpu.with_overrides(from_scratch="maybe")
    with pytest.raises(ValueError, match="setting 'lambdas' of .*gro.Settings takes a list of float"):
        cpu.with_overrides(lambdas="one")
    with pytest.raises(ValueError, match="'lambdas'"):
        cpu.with_overrides(lambdas="-1")
    with pytest.raises(ValueError, match="'lambdas'"):
        cpu.with_overrides(lambdas="")
    with pytest.raises(ValueError, match="unknown setting 'lamda' of .*gro.Settings; did you mean 'lambdas'"):
        cpu.with_overrides(lamda=1)
    assert cpu.with_overrides(combinations="").combinations == ()
    with pytest.raises(ValueError, match="unknown profile 'huge'"):
        stage.Settings.for_profile("huge")
    assert cpu.with_overrides(output_defenses="top:10,top:20").output_defenses == ("top:10", "top:20")
    assert cpu.with_overrides(zero_gradient_rules="keep").zero_gradient_rules == ("keep",)
    with pytest.raises(ValueError, match="'zero_gradient_rules'"):
        cpu.with_overrides(zero_gradient_rules="first")
    with pytest.raises(ValueError, match="unknown query generator 'greedy'"):
        cpu.with_overrides(generators="greedy")
    with pytest.raises(ValueError, match="unknown attacker view 'psychic'"):
        cpu.with_overrides(views="naive,psychic")
    with pytest.raises(ValueError, match="unknown output defense 'shuffle-all'"):
        cpu.with_overrides(output_defenses="shuffle-all")
    with pytest.raises(ValueError, match="needs lists of at least 200 ranks"):
        cpu.with_overrides(output_defenses="top:200")
    with pytest.raises(ValueError, match="'kept_epoch'"):
        cpu.with_overrides(kept_epoch="first")


def test_arms_hold_the_control_both_rules_output_defenses_and_combinations():
    from recsec_lib.study.stages import gro as stage

    settings = stage.Settings.for_profile("full")
    arms = {arm.label: arm for arm in stage.build_arms(settings, settings.model_defenses(0))}
    assert list(arms)[:3] == ["None", "Random", "Reverse"]
    assert {"top-10 only", "top-20 only", "top-50 only", "top-10 exact, tail shuffled", "top-10 exact, tail reversed",
            "top-10 exact, tail resampled"} <= set(arms)
    control = arms["GRO λ=0 (control)"]
    assert (control.lam, control.reference, control.family) == (0.0, "None", "gro-control")
    for rule in ("keep", "lowest_index"):
        for lam in (0.001, 0.01, 0.1, 1, 10):
            arm = arms[f"GRO {rule} λ={lam:g}"]
            assert (arm.rule, arm.reference, arm.output.name) == (rule, control.label, "none")
        combo = arms[f"GRO {rule} λ=1 + top-10 exact, tail shuffled"]
        assert (combo.family, combo.model, combo.reference) == ("combo", f"gro {rule} λ=1", control.label)
    # the control behind each combination's output defense: its attackers also read lists that way
    extended = arms["GRO λ=0 (control) + top-10 exact, tail shuffled"]
    assert (extended.family, extended.model) == ("control-output", control.model)
    assert all(arm.reference == "None" for arm in arms.values() if arm.family in ("paper", "output"))


def _cli(*argv):
    from recsec_lib.cli import main

    return main(["defend", *map(str, argv)])


def test_cli_trains_the_control_and_one_checkpoint_per_lambda(gro_trained_run, tmp_path):
    root, checkpoint = gro_trained_run
    code = _cli("--target-model", checkpoint, "--profile", "smoke", "--lambda", "0.5", "2", "--rules", "keep",
                "--epochs", "1", "--set", "batch_size=256", "--dataset", "synthetic", "--data-dir", root / "data",
                "--output", tmp_path / "out", "--device", "cpu")
    assert code == 0
    for name in ("gro_lam0.pt", "gro_lam0.5.pt", "gro_lam2.pt", "defend.json"):
        assert (tmp_path / "out" / name).is_file(), name
    code = _cli("--target-model", checkpoint, "--profile", "smoke", "--lambda-swap", "5.0", "--method",
                "seed-variant", "--rules", "keep", "--epochs", "1", "--dataset", "synthetic", "--data-dir",
                root / "data", "--output", tmp_path / "seed", "--device", "cpu", "--evaluate",
                "--output-defenses", "top:5", "--set", "attack_sequences=10", "--set", "attack_seq_len=5",
                "--set", "surrogate_epochs=1", "--set", "attack_seeds=1")
    assert code == 0 and (tmp_path / "seed" / "seedvariant_lam5.pt").is_file()
    for name in ("matrix.csv", "frontier.md", "frontier.png", "defend.json"):
        assert (tmp_path / "seed" / name).is_file(), name
    assert "top-5 only" in (tmp_path / "seed" / "frontier.md").read_text()


@pytest.mark.parametrize("extra, message", [
    (["--lambda", "1", "--lambda-swap", "5"], "not both"),
    (["--lambda", "-1"], "--lambda values"),
    (["--epochs", "0"], "--epochs"),
    (["--set", "k=0"], "'k'"),
    (["--set", "lamda=1"], "did you mean 'lambdas'"),
    (["--set", "k"], "NAME=VALUE"),
    (["--output-defenses", "mirror"], "unknown output defense 'mirror'"),
    (["--set", "target_model=bert4rec"], "disagrees with --target-model"),  # the file is a SASRec
])
def test_cli_bad_arguments_exit_2_with_one_line(gro_trained_run, tmp_path, capsys, extra, message):
    root, checkpoint = gro_trained_run
    code = _cli("--target-model", checkpoint, "--dataset", "synthetic", "--data-dir", root / "data",
                "--output", tmp_path, "--device", "cpu", *extra)
    err = capsys.readouterr().err
    assert code == 2 and message in err and err.count("\n") == 1


def test_cli_takes_the_architecture_of_the_target_checkpoint(tmp_path):
    """Student, surrogates and nulls share the target's architecture: a BERT4Rec file gets BERT4Rec surrogates
    (the authors' setting), not the profile's default SASRec; an explicit --set that agrees is accepted."""
    from recsec_lib.cli.defend import with_checkpoint_architecture
    from recsec_lib.models.registry import build_model
    from recsec_lib.recommend.checkpoints import save_checkpoint
    from recsec_lib.study.stages import gro as stage

    data = make_synthetic_dataset(num_users=20, num_items=30, max_len=12, seed=0)
    path = save_checkpoint(tmp_path / "b.pt", build_model("bert4rec", data.num_items, data.max_len, hidden=8),
                           "bert4rec", data)
    cpu = stage.Settings.for_profile("cpu")
    assert cpu.target_model == "sasrec"
    assert with_checkpoint_architecture(cpu, path, []).target_model == "bert4rec"
    assert with_checkpoint_architecture(cpu, path, ["k=5", "target_model = bert4rec"]).target_model == "bert4rec"


def test_cli_missing_checkpoint_and_help(tmp_path, capsys):
    assert _cli("--target-model", tmp_path / "nope.pt", "--output", tmp_path) == 2
    assert "nope.pt does not exist" in capsys.readouterr().err
    with pytest.raises(SystemExit) as done:
        _cli("--help")
    assert done.value.code == 0
    assert "--lambda-swap" in capsys.readouterr().out


def test_student_warmup_trains_only_the_student_before_gro(tmp_path):
    """With student_warmup_batches the student learns first (the target is unchanged by the warm-up itself)."""
    from recsec_lib.gro.training import _warm_up_student
    from recsec_lib.recommend.sequences import pad_left

    data = make_synthetic_dataset(num_users=40, num_items=30, max_len=10, seed=0)
    torch.manual_seed(0)
    target, student = TinyCausal(data.num_items, data.max_len), TinyCausal(data.num_items, data.max_len)
    config = GROConfig(epochs=0, batch_size=8, k=5, student_warmup_batches=3)
    padded = torch.from_numpy(pad_left([s for s in data.train_sequences() if len(s) >= 2], data.max_len + 1))
    target_before = copy.deepcopy(target.state_dict())
    student_before = copy.deepcopy(student.state_dict())
    _warm_up_student(target, student, padded, config, "cpu", torch.optim.Adam(student.parameters()),
                     torch.Generator().manual_seed(0), progress=False)
    assert all(torch.equal(target_before[k], v) for k, v in target.state_dict().items())
    assert any(not torch.equal(student_before[k], v) for k, v in student.state_dict().items())
    with pytest.raises(ValueError, match="student_warmup_batches"):
        GROConfig(student_warmup_batches=-1)
    # train_gro runs it before the first epoch only
    result = train_gro(target, student, data.train_sequences(), replace(config, epochs=1))
    assert len(result.history) == 1


def test_patience_keeps_the_best_validating_target_and_stops_early(tmp_path):
    """Validation scores 0.1, 0.3, 0.2, 0.2 with patience 2: stop after epoch 4, keep epoch 2's weights."""
    data, target, student = _tiny()
    scores = iter([0.1, 0.3, 0.2, 0.2, 0.9, 0.9])
    snapshots = []

    def validate(model):
        snapshots.append(copy.deepcopy(model.state_dict()))
        return next(scores)

    config = GROConfig(epochs=6, batch_size=16, k=5, positions_per_sequence=3, patience=2, kept_epoch="best")
    state = tmp_path / "state.pt"
    result = train_gro(target, student, data.train_sequences(), config, state_path=state, progress=False,
                       validate=validate)
    assert (result.best_epoch, result.stop_reason, len(result.history)) == (2, "early_stop", 4)
    assert [row["valid_score"] for row in result.history] == [0.1, 0.3, 0.2, 0.2]
    assert all(torch.equal(v, snapshots[1][k]) for k, v in result.target.state_dict().items())
    # a finished (early-stopped) state is not trained further when run again; its best target is returned
    again = train_gro(copy.deepcopy(target), copy.deepcopy(student), data.train_sequences(), config,
                      state_path=state, progress=False, validate=validate)
    assert (again.best_epoch, again.stop_reason, len(again.history)) == (2, "early_stop", 4)
    assert all(torch.equal(v, snapshots[1][k]) for k, v in again.target.state_dict().items())


def test_patience_needs_a_validate_function_and_is_not_negative():
    data, target, student = _tiny()
    with pytest.raises(ValueError, match="'patience'"):
        train_gro(target, student, data.train_sequences(), GROConfig(epochs=1, k=5, patience=1))
    with pytest.raises(ValueError, match="'patience'"):
        GROConfig(patience=-1)
    with pytest.raises(ValueError, match="'kept_epoch'"):
        train_gro(target, student, data.train_sequences(), GROConfig(epochs=1, k=5, kept_epoch="best"),
                  progress=False)


def test_kept_epoch_last_keeps_the_last_target_even_when_stopping_early():
    """Scores 0.3, 0.1, 0.1 with patience 2 and kept_epoch "last": stop after epoch 3 and keep epoch 3's weights."""
    data, target, student = _tiny()
    scores = iter([0.3, 0.1, 0.1])
    snapshots = []

    def validate(model):
        snapshots.append(copy.deepcopy(model.state_dict()))
        return next(scores)

    config = GROConfig(epochs=5, batch_size=16, k=5, positions_per_sequence=3, patience=2, kept_epoch="last")
    result = train_gro(target, student, data.train_sequences(), config, progress=False, validate=validate)
    assert (result.best_epoch, result.stop_reason, len(result.history)) == (3, "early_stop", 3)
    assert all(torch.equal(v, snapshots[2][k]) for k, v in result.target.state_dict().items())
