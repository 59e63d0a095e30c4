"""The attacker's query generators: one registry, one walk, every member spends its budget.

The box is a stub whose answer after a query ending in item i is i+1, i+2, ...
(seen items skipped), so walks can be checked by hand.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import pytest

from recsec_lib.attack.generators import GENERATORS, Collected, QueryGenerator
from recsec_lib.attack.generators.base import account_list, every_prefix, steer_walks
from recsec_lib.attack.queries import AttackData, generate_queries


class NextItemsBox:
    """Top-k after a query ending in i is i+1..i+k (mod num_items), seen items skipped; records every call."""

    def __init__(self, num_items: int = 60, k: int = 4, max_len: int = 10) -> None:
        self.num_items, self.k, self.max_query_len, self.filter_seen = num_items, k, max_len, True
        self.calls: list[tuple[object, int]] = []

    def answer_batch(self, account, queries) -> np.ndarray:
        self.calls.append((account, len(queries)))
        out = []
        for q in queries:
            q = [int(i) for i in q]
            listed, item = [], q[-1]
            while len(listed) < self.k:
                item = item % self.num_items + 1
                if item not in q:
                    listed.append(item)
            out.append(listed)
        return np.array(out, dtype=np.int64)


EXPECTED = ("random", "autoregressive", "adaptive-mix", "chain", "chain-mix", "interleaved", "perturbed",
            "popularity", "one-query")


def test_the_zoo_is_registered():
    assert set(EXPECTED) <= set(GENERATORS.names())


def test_an_unknown_generator_is_a_clear_error_listing_the_known_ones():
    with pytest.raises(ValueError, match=r"unknown query generator 'autoregresive'; did you mean "
                                         r"'autoregressive'\? \(known: random, autoregressive"):
        GENERATORS.get("autoregresive")
    with pytest.raises(ValueError, match=r"query generator 'chain' has no setting 'chain_count'.*\(its settings: chains"):
        GENERATORS.build("chain", chain_count=3)


@pytest.mark.parametrize("name", EXPECTED)
def test_every_generator_spends_its_budget_and_returns_what_a_detector_and_a_surrogate_need(name):
    params = {"chains": 2} if name.startswith("chain") else {}
    if "probe_queries" in GENERATORS.get(name).__dataclass_fields__:
        params["probe_queries"] = 5
    if name == "one-query":
        params["min_length"] = 3
    collected = GENERATORS.build(name, **params).collect(NextItemsBox(), 200, 10, seed=0, account="acc")
    assert isinstance(collected, Collected) and collected.name == name
    assert 180 <= collected.queries <= 200 and collected.traffic.num_queries == collected.queries
    assert all(len(collected.traffic.query(j)) <= 10 for j in range(collected.queries))
    data = collected.training
    assert data.answers.shape[:2] == data.sequences.shape and data.generator == name and data.num_items == 60
    assert data.answered is None or data.answered.any()


def test_one_query_trains_on_a_capped_sample_of_what_it_sent():
    capped = GENERATORS.build("one-query", probe_queries=5, min_length=3, training_rows=7).collect(
        NextItemsBox(), 200, 10, seed=0)
    assert capped.training.num_sequences == 7 and capped.traffic.num_queries == 200


def test_the_same_seed_gives_the_same_queries_and_another_seed_others():
    a = GENERATORS.build("autoregressive").collect(NextItemsBox(), 100, 10, seed=3)
    b = GENERATORS.build("autoregressive").collect(NextItemsBox(), 100, 10, seed=3)
    c = GENERATORS.build("autoregressive").collect(NextItemsBox(), 100, 10, seed=4)
    assert np.array_equal(a.training.sequences, b.training.sequences)
    assert np.array_equal(a.training.answers, b.training.answers)
    assert not np.array_equal(a.training.sequences, c.training.sequences)


def test_a_walk_steered_by_the_top_m_only_draws_from_those_ranks():
    box = NextItemsBox(num_items=60, k=4)
    walks, answers = steer_walks(box, ["a"] * 50, np.arange(1, 51), 6, np.random.default_rng(0), steer=1)
    # steering by the first rank only: each next item is the answer's first item = previous item + 1
    assert np.array_equal(walks[:, 1:], (walks[:, :-1] % 60) + 1)
    assert np.array_equal(answers[:, :-1, 0], walks[:, 1:])
    free, _ = steer_walks(box, ["a"] * 50, np.arange(1, 51), 6, np.random.default_rng(0), steer=0)
    assert (free[:, 1:] - free[:, :-1]).max() > 1  # drawn from all 4 ranks


def test_random_walks_never_repeat_an_item_and_ignore_the_answers():
    data = GENERATORS.build("random").collect(NextItemsBox(), 100, 10, seed=0).training
    assert all(len(set(row)) == 10 for row in data.sequences.tolist())
    assert not np.array_equal(data.sequences[:, 1:], data.answers[:, :-1, 0])


def test_chain_is_a_sliding_window_and_interleaving_alternates_walks():
    chain = GENERATORS.build("chain", chains=1).collect(NextItemsBox(), 100, 10, seed=0).traffic
    queries = [chain.query(j) for j in range(chain.num_queries)]
    assert len(queries) == 100 and len(queries[50]) == 10 and queries[51][:-1] == queries[50][1:]
    inter = GENERATORS.build("interleaved", interleave=4).collect(NextItemsBox(), 100, 10, seed=0).traffic
    assert inter.source[:5].tolist() == [0, 1, 2, 3, 0] and inter.end[:5].tolist() == [1, 1, 1, 1, 2]


def test_popularity_mixing_spends_its_probes_inside_the_budget():
    collected = GENERATORS.build("chain-mix", chains=1, mix_weights="popularity", probe_queries=20).collect(
        NextItemsBox(), 120, 10, seed=0)
    assert collected.queries == 120
    assert [len(collected.traffic.query(j)) for j in range(20)] == [1] * 20  # the probes come first
    with pytest.raises(ValueError, match="mix_weights"):
        GENERATORS.build("chain-mix", mix_weights="zipf").collect(NextItemsBox(), 120, 10, seed=0)


def test_generate_queries_spreads_walks_round_robin_over_accounts():
    box = NextItemsBox()
    data = generate_queries(box, 60, "autoregressive", num_sequences=4, seq_len=5, seed=0, num_accounts=2)
    assert isinstance(data, AttackData) and data.sequences.shape == (4, 5) and data.answers.shape == (4, 5, 4)
    assert box.calls[0][0] == ["attacker-0", "attacker-1", "attacker-0", "attacker-1"]
    with pytest.raises(ValueError, match="num_items"):
        generate_queries(box, 61, "random", 4, 5)


def test_a_new_generator_is_one_class_in_one_file():
    """The toy addition: a generator that walks the catalogue in order. One class; the registry does the rest."""

    @GENERATORS.register
    @dataclass(frozen=True)
    class CountingWalks(QueryGenerator):
        name: ClassVar[str] = "toy-counting"
        start: int = 1

        def collect(self, box, budget_queries, seq_len, seed, account="attacker"):
            count = self.walks_for(budget_queries, seq_len)
            walks = (np.arange(count * seq_len).reshape(count, seq_len) + self.start - 1) % box.num_items + 1
            answers = np.stack([box.answer_batch(account_list(account, count), walks[:, :t])
                                for t in range(1, seq_len + 1)], axis=1)
            return every_prefix(self.name, walks, answers, box.num_items, seed, box.max_query_len)

    try:
        data = generate_queries(NextItemsBox(), 60, "toy-counting", num_sequences=2, seq_len=3, start=5)
        assert data.sequences.tolist() == [[5, 6, 7], [8, 9, 10]]
        assert "toy-counting" in GENERATORS.names()
    finally:
        GENERATORS.unregister("toy-counting")
