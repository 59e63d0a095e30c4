"""The attacker's views of a defense: plans in canonical terms, so equal data means one surrogate."""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import pytest

from recsec_lib.attack.queries import AttackData
from recsec_lib.attack.views import (VIEWS, AttackerView, Knowledge, Lists, Plan, drop_item, most_promoted_item,
                                     training_data, undefended)
from recsec_lib.defenses.output import parse_output_defense


def plan(view: str, spec: str, k: int = 100) -> Plan:
    return VIEWS.get(view)().plan(parse_output_defense(spec).knowledge(k))


def test_the_four_views_are_registered():
    assert VIEWS.names() == ("naive", "top-10", "knowing", "drop-promoted")
    with pytest.raises(ValueError, match=r"unknown attacker view 'smart' \(known: naive, top-10"):
        VIEWS.get("smart")


def test_against_an_undefended_box_knowing_is_naive_and_top10_steers_by_the_head():
    assert plan("naive", "none") == Plan(True, 100, Lists(100)) == plan("knowing", "none")
    assert plan("top-10", "none") == Plan(True, 10, Lists(10))
    assert plan("drop-promoted", "none") == Plan(True, 100, Lists(100, transform="drop-promoted"))


def test_serving_fewer_ranks_is_what_the_top10_attacker_of_the_undefended_box_already_sees():
    # top-10 only: every view trains on the exact top 10, steered by it: the same data as None's top-10 view
    for view in ("naive", "top-10", "knowing"):
        assert plan(view, "top:10") == plan("top-10", "none")


def test_tail_defenses_meet_a_knowing_attacker_who_keeps_the_exact_head():
    assert plan("knowing", "tail-resample:10") == plan("top-10", "none")
    naive = plan("naive", "tail-resample:10")  # a resampled tail changes the items: its own walk and lists
    assert naive == Plan(False, 100, Lists(100, served=True))
    shuffled = plan("naive", "tail-shuffle:10")  # the same items: a uniform draw from them is an exact walk
    assert shuffled.steer_exact and shuffled.lists.served


def test_paper_baselines_and_their_knowing_attackers():
    assert plan("knowing", "reverse") == plan("naive", "none")  # reads the list backwards: the exact ranking
    assert plan("naive", "reverse") == Plan(True, 100, Lists(100, served=True))
    assert plan("knowing", "random") == Plan(True, 100, Lists(100, order_weight=0.0))  # trains on the set
    assert plan("top-10", "random") == Plan(False, 10, Lists(10, served=True))  # 10 random items of the top 100


def test_knowledge_checks_its_ranks():
    assert undefended(5) == Knowledge(5, 5)
    with pytest.raises(ValueError, match="exact_ranks"):
        Knowledge(served_len=5, exact_ranks=6)


def test_most_promoted_item_and_dropping_it_by_hand():
    answers = np.array([[[7, 1, 2], [7, 3, 4]], [[5, 7, 6], [8, 9, 1]]])  # [S=2, L=2, k=3]; 7 in three lists
    assert most_promoted_item(answers, top=2) == 7
    assert drop_item(answers, 7).tolist() == [[[1, 2], [3, 4]], [[5, 6], [8, 9]]]  # no 7: last rank dropped
    answered = np.array([[False, False], [True, True]])  # only the second walk's lists count
    assert most_promoted_item(answers, top=2, answered=answered) in (5, 7, 8, 9)


def test_training_data_cuts_ranks_and_drops_the_promoted_item():
    data = AttackData(np.array([[1, 2]]), np.array([[[9, 3, 4, 5], [9, 6, 7, 8]]]), "autoregressive", 10)
    assert training_data(data, Lists(2)).answers.tolist() == [[[9, 3], [9, 6]]]
    assert training_data(data, Lists(3, transform="drop-promoted")).answers.tolist() == [[[3, 4], [6, 7]]]


def test_a_new_view_is_one_class():
    @VIEWS.register
    class HeadOnly(AttackerView):
        name: ClassVar[str] = "toy-head-1"

        def plan(self, knowledge: Knowledge) -> Plan:
            return Plan(True, 1, Lists(1))

    try:
        assert plan("toy-head-1", "tail-resample:10") == Plan(True, 1, Lists(1))
    finally:
        VIEWS.unregister("toy-head-1")
