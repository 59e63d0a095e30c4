"""The black box: answers are id lists only, budgets, bad queries, defenses, and its compact log."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from recsec_lib.attack.blackbox import (
    BlackBoxRecommender,
    MalformedQueryError,
    QueryBudgetExceeded,
    QueryRejected,
)
from recsec_lib.models.base import SequentialRecommender
from recsec_lib.attack.querylog import QueryLog, QueryRecord, load_log


class FixedRanking(SequentialRecommender):
    """Stand-in model: item i always scores -i, so the ranking is 1, 2, 3, ... whatever the history."""

    def __init__(self, num_items: int = 8, max_len: int = 4):
        super().__init__()
        self.num_items, self.max_len, self.config = num_items, max_len, None
        self.anchor = torch.nn.Parameter(torch.zeros(1))  # so that .to() and .eval() work as for real models

    def forward(self, seqs: torch.Tensor) -> torch.Tensor:
        scores = -torch.arange(self.num_items + 1, dtype=torch.float32).expand(seqs.shape[0], -1).clone()
        scores[:, 0] = -torch.inf
        return scores + 0 * self.anchor

    def training_loss(self, seqs: torch.Tensor) -> torch.Tensor:
        return self.anchor.sum()


def make_box(**kwargs) -> BlackBoxRecommender:
    kwargs.setdefault("k", 3)
    return BlackBoxRecommender(FixedRanking(num_items=8, max_len=4), **kwargs)


# ---- answers -------------------------------------------------------------------
def test_answer_is_ranked_ids_without_seen_items():
    box = make_box()
    answer = box.query("alice", [2, 5])
    # Ranking 1, 2, 3, 4, ...; 2 is in the query, so the top 3 unseen are 1, 3, 4.
    assert answer.tolist() == [1, 3, 4]
    assert answer.dtype == np.int64 and answer.shape == (3,)


def test_seen_filtering_can_be_switched_off():
    box = make_box(filter_seen=False)
    assert box.query("alice", [2, 5]).tolist() == [1, 2, 3]


def test_answer_batch_mixed_lengths_and_equal_length_array():
    box = make_box()
    assert box.answer_batch("a", [[1], [1, 2, 3]]).tolist() == [[2, 3, 4], [4, 5, 6]]
    assert box.answer_batch(["a", "b"], np.array([[1, 2], [3, 4]])).tolist() == [[3, 4, 5], [1, 2, 5]]


def test_box_exposes_no_scores_model_or_data():
    box = make_box()
    for name in dir(box):
        if name.startswith("_"):
            continue
        value = getattr(box, name)
        assert not isinstance(value, (torch.nn.Module, torch.Tensor)), name
        assert "dataset" not in name.lower() and "score" not in name.lower(), name
    assert not hasattr(box, "dataset")


# ---- defenses ------------------------------------------------------------------
def test_the_box_serves_the_exact_ranking_and_has_no_defense_of_its_own():
    # Output defenses wrap the box (recsec_lib.defenses.output.DefendedBox, tested there).
    assert make_box().query("a", [8]).tolist() == [1, 2, 3]
    with pytest.raises(TypeError):
        make_box(defense="reverse")


# ---- budgets -------------------------------------------------------------------
def test_account_budget_refuses_and_logs():
    box = make_box(max_queries_per_account=2)
    box.query("a", [1])
    box.query("a", [2])
    with pytest.raises(QueryBudgetExceeded, match="account budget") as info:
        box.query("a", [3])
    assert info.value.account == "a" and info.value.log_index == 2
    assert box.query("b", [1]).tolist() == [2, 3, 4]  # other accounts are not affected
    assert box.queries_answered("a") == 2 and box.remaining_budget("a") == 0
    record = box.log.record(2)
    assert record.rejected and record.answer is None and record.query == (3,)


def test_total_budget_and_partial_batches():
    box = make_box(max_total_queries=3)
    answers = box.answer_batch(["a", "b", "c", "d"], [[1], [2], [3], [4]], partial=True)
    assert answers[:3].min() > 0 and answers[3].tolist() == [-1, -1, -1]
    assert box.log.rejected_mask.tolist() == [False, False, False, True]
    with pytest.raises(QueryBudgetExceeded, match="service budget"):
        box.query("e", [1])


def test_batch_error_carries_the_answers_it_paid_for():
    box = make_box()
    with pytest.raises(MalformedQueryError) as info:
        box.answer_batch("a", [[1], [], [2]])
    assert info.value.row == 1 and info.value.rejected_rows.tolist() == [1]
    assert info.value.answers[0].tolist() == [2, 3, 4] and info.value.answers[1].tolist() == [-1, -1, -1]
    assert box.queries_answered("a") == 2  # refused queries cost nothing


def test_bad_budget_parameters():
    with pytest.raises(ValueError, match="max_queries_per_account"):
        make_box(max_queries_per_account=-1)
    with pytest.raises(ValueError, match="batch_size"):
        make_box(batch_size=0)
    with pytest.raises(ValueError, match="'k'"):
        make_box(k=5)  # 5 + max_len 4 > 8 items
    with pytest.raises(ValueError, match="'k'"):
        make_box(k=0)


# ---- malformed queries -----------------------------------------------------------
@pytest.mark.parametrize("query, reason", [
    ([], "empty"),
    ([0], "unknown item id 0"),
    ([9], "unknown item id 9"),
    ([-3], "unknown item id -3"),
    ([1.5, 2], "integers"),
    ("12", "sequence of item ids"),
    (7, "sequence of item ids"),
    ([[1, 2], [3]], "flat sequence"),
    ([[1, 2], [3, 4]], "flat sequence"),
    ([1, 2, 3, 4, 5], "longer than the allowed 4"),
    (None, "sequence of item ids"),
])
def test_malformed_queries_are_refused_and_logged(query, reason):
    box = make_box()
    with pytest.raises(MalformedQueryError, match=reason):
        box.query("mallory", query)
    assert len(box.log) == 1 and reason in box.log.record(0).rejected
    assert box.queries_answered() == 0
    assert box.query("mallory", [1]).tolist() == [2, 3, 4]  # the box still works


def test_queries_argument_of_wrong_type():
    box = make_box()
    with pytest.raises(MalformedQueryError, match="queries"):
        box.answer_batch("a", 5)
    with pytest.raises(ValueError, match="accounts"):
        box.answer_batch(["a", "b"], [[1]])
    with pytest.raises(ValueError, match="accounts"):
        box.answer_batch(None, [[1]])
    assert len(box.log) == 0  # nothing was answered or logged


def test_rejections_are_query_rejected_and_value_errors():
    assert issubclass(MalformedQueryError, QueryRejected) and issubclass(MalformedQueryError, ValueError)
    assert issubclass(QueryBudgetExceeded, QueryRejected)


# ---- the log ---------------------------------------------------------------------
def test_log_records_in_time_order():
    box = make_box()
    box.query("a", [1])
    box.answer_batch(["b", "a"], [[1, 2], [3]])
    with pytest.raises(MalformedQueryError):
        box.query("b", [99])
    records = list(box.log)
    assert records == [
        QueryRecord("a", 0, (1,), (2, 3, 4), None),
        QueryRecord("b", 1, (1, 2), (3, 4, 5), None),
        QueryRecord("a", 2, (3,), (1, 2, 4), None),
        QueryRecord("b", 3, (99,), None, "unknown item id 99 (ids are 1..8)"),
    ]
    assert box.log.indices_of("a").tolist() == [0, 2]
    assert box.log.indices_of("nobody").tolist() == []


def test_log_stores_growing_prefixes_and_refreshes_as_one_item_each():
    log = QueryLog(k=1)
    history = [5, 3, 8, 1, 7]
    for t in range(1, len(history) + 1):
        log.append("user", history[:t], [2])
        log.append("user", history[:t], [2])  # a page refresh
    assert log._tails.view().tolist() == history  # one stored item per new interaction
    assert [tuple(q) for _, _, q in log.iter_queries()] == [tuple(history[:t]) for t in range(1, 6) for _ in (0, 1)]
    assert log.query(9).tolist() == history


def test_log_npz_and_jsonl_round_trips(tmp_path):
    box = make_box()
    box.answer_batch(["a", "b"], [[1, 2], [1, 2, 3]])
    with pytest.raises(MalformedQueryError):
        box.query("a", [])
    loaded = QueryLog.load(box.log.save(tmp_path / "log.npz"))
    assert list(loaded) == list(box.log)
    loaded.append("c", [1, 2, 3, 4], [5, 6, 7])  # a loaded log keeps compressing prefixes
    assert loaded.query(3).tolist() == [1, 2, 3, 4] and loaded._parent.view()[3] == 1
    box.log.export_jsonl(tmp_path / "log.jsonl")
    assert list(load_log(tmp_path / "log.jsonl")) == list(box.log)
    assert list(QueryLog.from_records(load_log(tmp_path / "log.jsonl"), k=3)) == list(box.log)


def test_log_without_answers():
    box = make_box(keep_answers=False)
    assert box.query("a", [1]).tolist() == [2, 3, 4]
    assert box.log.record(0).answer is None and box.log.record(0).rejected is None
    with pytest.raises(ValueError, match="keep_answers"):
        box.log.answers()


def test_log_errors(tmp_path):
    log = QueryLog(k=2)
    with pytest.raises(IndexError, match="outside the log"):
        log.query(0)
    with pytest.raises(ValueError, match="shape"):
        log.extend("a", [[1]], np.zeros((1, 3)))
    with pytest.raises(ValueError, match="accounts"):
        log.extend(["a", "b"], [[1]], None)
    with pytest.raises(ValueError, match="'k'"):
        QueryLog(k=0)
    bad = tmp_path / "other.npz"
    np.savez(bad, x=np.zeros(2))
    with pytest.raises(ValueError, match="other.npz"):
        QueryLog.load(bad)
    with pytest.raises(FileNotFoundError):
        QueryLog.load(tmp_path / "missing.npz")


def test_log_memory_for_many_prefix_queries():
    """100k prefix queries of length up to 100 take ~100k stored items, not ~5M."""
    log = QueryLog(k=1, keep_answers=False)
    rng = np.random.default_rng(0)
    walks = rng.integers(1, 3000, size=(1000, 100))
    for t in range(1, 101):
        log.extend("attacker", walks[:, :t], None)
    assert len(log) == 100_000
    assert len(log._tails.view()) < 110_000
    assert log.query(99_999).tolist() == walks[-1].tolist()


def test_answers_are_stored_in_two_bytes_when_the_catalogue_allows(tmp_path):
    box = make_box()
    box.query("a", [1])
    assert box.log._answers.view().dtype == np.int16
    loaded = QueryLog.load(box.log.save(tmp_path / "log.npz"))
    assert loaded.num_items == 8 and loaded._answers.view().dtype == np.int16
    assert QueryLog(k=2, num_items=100_000)._answers.view().dtype == np.int32
