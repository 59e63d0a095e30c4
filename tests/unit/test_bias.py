"""Bias figures on a 4-movie catalogue small enough to compute by hand.

Catalogue (internal id: year, genres):
    1: 1995 Children's, Comedy
    2: 1980 Horror
    3: 1999 Drama
    4: 1985 Comedy, Drama
Users' full sequences: [1, 4, 3], [1, 2], [1, 3, 4], [1]
  -> interaction counts: item 1: 4, item 2: 1, item 3: 2, item 4: 2 (9 in all).
Inputs and their top-2 lists:
    [2]        -> [1, 4]
    [2, 1, 4]  -> [2, 1]
"""

import math

import numpy as np
import pandas as pd
import pytest

from recsec_lib.recommend.bias import bias_report, popular_items
from recsec_lib.data.dataset import SequenceDataset


def tiny_dataset() -> SequenceDataset:
    items = pd.DataFrame({
        "item": [1, 2, 3, 4],
        "title": ["Toy (1995)", "Fright (1980)", "Tears (1999)", "Laughs and Tears (1985)"],
        "year": [1995, 1980, 1999, 1985],
        "genres": [("Children's", "Comedy"), ("Horror",), ("Drama",), ("Comedy", "Drama")],
    }).set_index("item")
    sequences = [[1, 4, 3], [1, 2], [1, 3, 4], [1]]
    offsets = np.r_[0, np.cumsum([len(s) for s in sequences])].astype(np.int64)
    return SequenceDataset(
        name="tiny", num_items=4, max_len=10,
        user_raw_ids=np.arange(1, 5), item_raw_ids=np.array([-1, 10, 20, 30, 40]),
        items_flat=np.concatenate(sequences).astype(np.int64), offsets=offsets, items=items,
    )


INPUTS = [np.array([2]), np.array([2, 1, 4])]
RECS = np.array([[1, 4], [2, 1]])


def test_figures_match_hand_computation():
    report = bias_report(tiny_dataset(), INPUTS, RECS, focus_genres=("Horror", "Comedy", "Drama", "Western"))
    f = report.figures
    assert f["n_inputs"] == 2 and f["k"] == 2
    # Input 1: {Horror} vs {Children's, Comedy, Drama} -> 0/4.
    # Input 2: {Horror, Children's, Comedy, Drama} vs {Horror, Children's, Comedy} -> 3/4.
    assert f["genre_consistency"] == pytest.approx((0 + 0.75) / 2)
    # Last 2 items of input 2 = [1, 4]: {Children's, Comedy, Drama} vs {Horror, Children's, Comedy} -> 2/4.
    assert f["genre_consistency_recent"] == pytest.approx((0 + 0.5) / 2)
    # Top 10% of 4 items = ceil(0.4) = 1 item: item 1 (4 interactions of 9); 2 of 4 slots are item 1.
    assert f["popular_share_recommended"] == pytest.approx(0.5)
    assert f["popular_share_interactions"] == pytest.approx(4 / 9)
    assert f["popularity_lift"] == pytest.approx(0.5 / (4 / 9))
    assert f["coverage"] == pytest.approx(3 / 4)
    # Slots' years: 1995, 1985, 1980, 1995.
    assert f["recommended_year_mean"] == pytest.approx(1988.75)
    assert f["recommended_year_median"] == pytest.approx(1990.0)
    assert f["recommended_share_after_1990"] == pytest.approx(0.5)
    # Catalogue: 1995, 1980, 1999, 1985.
    assert f["catalogue_year_mean"] == pytest.approx(1989.75)
    assert f["catalogue_year_median"] == pytest.approx(1990.0)
    assert f["catalogue_share_after_1990"] == pytest.approx(0.5)
    # Interactions: 4 x 1995, 1 x 1980, 2 x 1999, 2 x 1985 -> 17928 / 9.
    assert f["interactions_year_mean"] == pytest.approx(1992.0)
    assert f["interactions_year_median"] == pytest.approx(1995.0)
    assert f["interactions_share_after_1990"] == pytest.approx(6 / 9)


def test_per_genre_breakdown():
    table = bias_report(tiny_dataset(), INPUTS, RECS, focus_genres=("Horror", "Comedy", "Drama", "Western")).per_genre
    assert list(table.index) == ["Horror", "Comedy", "Drama"]  # Western is not in the catalogue
    # Input 1 is all Horror; its list [1, 4] has no Horror.
    assert table.loc["Horror"].to_dict() == pytest.approx({
        "n_inputs": 1, "history_share": 1.0, "recommended_share": 0.0, "catalogue_share": 0.25,
        "genre_consistency": 0.0})
    # Input 2 is 2/3 Comedy (items 1 and 4); its list [2, 1] has one Comedy item.
    assert table.loc["Comedy"].to_dict() == pytest.approx({
        "n_inputs": 1, "history_share": 2 / 3, "recommended_share": 0.5, "catalogue_share": 0.5,
        "genre_consistency": 0.75})
    # Drama is 1/3 of input 2 only: below the 0.5 dominance threshold.
    assert table.loc["Drama", "n_inputs"] == 0
    assert math.isnan(table.loc["Drama", "recommended_share"])


def test_popular_items_breaks_ties_by_lower_id():
    counts = np.array([0, 2, 5, 5, 1])
    assert popular_items(counts, 0.5).tolist() == [2, 3]
    assert popular_items(counts, 0.01).tolist() == [2]  # at least one item
    with pytest.raises(ValueError, match="popular_fraction"):
        popular_items(counts, 0.0)


def test_save_writes_json_and_csv(tmp_path):
    report = bias_report(tiny_dataset(), INPUTS, RECS)
    paths = report.save(tmp_path, prefix="sasrec_bias")
    assert [p.name for p in paths] == ["sasrec_bias.json", "sasrec_bias_per_genre.csv"]
    assert pd.read_csv(paths[1], index_col="genre").shape[1] == 5
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sasrec_bias.json", "sasrec_bias_per_genre.csv"]


@pytest.mark.parametrize("inputs, recs, match", [
    (INPUTS, np.array([1, 2]), "2-D"),
    (INPUTS, np.zeros((2, 0), dtype=int), "2-D"),
    (INPUTS, np.array([[1.0, 2.0], [3.0, 4.0]]), "integer"),
    (INPUTS[:1], RECS, "same length"),
    ([], np.zeros((0, 2), dtype=int), "empty"),
    (INPUTS, np.array([[1, 5], [2, 1]]), r"\[0, 1\] = 5"),
    (INPUTS, np.array([[1, 0], [2, 1]]), r"\[0, 1\] = 0"),
    ([np.array([], dtype=int), np.array([1])], RECS, r"'inputs'\[0\] is an empty"),
    ([np.array([9]), np.array([1])], RECS, r"'inputs'\[0\] holds"),
])
def test_bad_inputs_name_the_parameter(inputs, recs, match):
    with pytest.raises(ValueError, match=match):
        bias_report(tiny_dataset(), inputs, recs)


def test_bad_dominance():
    with pytest.raises(ValueError, match="dominance"):
        bias_report(tiny_dataset(), INPUTS, RECS, dominance=0)


def test_runs_on_synthetic_data():
    from recsec_lib.data.synthetic import make_synthetic_dataset

    data = make_synthetic_dataset(num_users=30, num_items=40)
    inputs, _ = data.split("test")
    recs = np.tile(np.arange(1, 11), (len(inputs), 1))
    report = bias_report(data, inputs, recs)
    assert 0 <= report.figures["genre_consistency"] <= 1
    assert report.figures["coverage"] == pytest.approx(10 / 40)


def test_unknown_years_are_left_out():
    import dataclasses

    data = tiny_dataset()
    items = data.items.copy()
    items["year"] = pd.array([1995, None, 1999, 1985], dtype="Int64")  # item 2's year unknown
    f = bias_report(dataclasses.replace(data, items=items), INPUTS, RECS).figures
    # Slots' known years: 1995, 1985, 1995 (item 2's slot dropped).
    assert f["recommended_year_mean"] == pytest.approx((1995 + 1985 + 1995) / 3)
    assert f["catalogue_year_median"] == pytest.approx(1995.0)
