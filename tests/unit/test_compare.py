"""Side-by-side comparison: example picking by hand, then synthetic data with two stand-in models."""

import numpy as np
import pandas as pd
import pytest

from recsec_lib.recommend.compare import (Example, bias_on_test_users, bias_summary, compare_recommendations,
                                comparison_markdown, popularity_recommender, save_comparison, themed_examples,
                                unseen_top_k, user_examples)
from recsec_lib.data.dataset import SequenceDataset
from recsec_lib.data.synthetic import make_synthetic_dataset


def hand_dataset() -> SequenceDataset:
    """5 movies; users 11, 12, 13 watch [2, 3, 4, 1, 5], [3, 2, 4], [2, 3].

    Interaction counts: 2: 3, 3: 3, 4: 2, 1: 1, 5: 1.
    """
    items = pd.DataFrame({
        "item": [1, 2, 3, 4, 5],
        "title": ["A (1990)", "B (1991)", "C (1992)", "D (1993)", "E (1994)"],
        "year": [1990, 1991, 1992, 1993, 1994],
        "genres": [("Action", "Sci-Fi"), ("Action",), ("Action", "Sci-Fi"), ("Sci-Fi",), ("Horror",)],
    }).set_index("item")
    sequences = [[2, 3, 4, 1, 5], [3, 2, 4], [2, 3]]
    offsets = np.r_[0, np.cumsum([len(s) for s in sequences])].astype(np.int64)
    return SequenceDataset(name="hand", num_items=5, max_len=10, user_raw_ids=np.array([11, 12, 13]),
                           item_raw_ids=np.array([-1, 101, 102, 103, 104, 105]),
                           items_flat=np.concatenate(sequences).astype(np.int64), offsets=offsets, items=items)


def test_themed_examples_pick_most_watched_with_all_genres_then_any():
    examples = themed_examples(hand_dataset(), length=3,
                               themes=(("action/sci-fi", ("Action", "Sci-Fi")), ("horror", ("Horror",)),
                                       ("western", ("Western",))))
    # Action and Sci-Fi: C (3 views), A (1); then Action or Sci-Fi: B (3) before D (2).
    assert examples[0] == Example("action/sci-fi", (3, 1, 2))
    assert examples[1] == Example("horror", (5,))
    assert len(examples) == 2  # no Western movie: theme skipped
    with pytest.raises(ValueError, match="length"):
        themed_examples(hand_dataset(), length=0)


def test_themed_examples_prefer_movies_free_of_other_themes():
    examples = themed_examples(hand_dataset(), length=3, themes=(("action", ("Action",)), ("sci-fi", ("Sci-Fi",))))
    # action: B (Action only, 3 views) first, then C (3) and A (1), which are also Sci-Fi.
    assert examples[0] == Example("action", (2, 3, 1))
    # sci-fi: D (Sci-Fi only, 2 views) first, then C and A.
    assert examples[1] == Example("sci-fi", (4, 3, 1))


def test_user_examples_hold_out_the_last_movie():
    data = hand_dataset()
    examples = user_examples(data, n_users=3, seed=0)
    assert [e.label for e in examples] == ["user 11", "user 12", "user 13"]
    assert examples[0].history == (2, 3, 4, 1) and examples[0].target == 5
    assert len(user_examples(data, n_users=10)) == 3
    with pytest.raises(ValueError, match="n_users"):
        user_examples(data, n_users=-1)


def ascending(histories, k):
    """Stand-in that ignores the history: 1, 2, ..., k (does not filter seen items)."""
    return np.tile(np.arange(1, k + 1), (len(histories), 1))


def descending(num_items):
    def recommend(histories, k):
        return np.tile(np.arange(num_items, num_items - k, -1), (len(histories), 1))
    return recommend


def test_compare_two_models_on_synthetic_data(tmp_path):
    data = make_synthetic_dataset(num_users=30, num_items=40)
    examples = themed_examples(data, length=3) + user_examples(data, n_users=2, seed=1)
    models = {"up": ascending, "down": descending(40)}
    frame = compare_recommendations(data, models, examples, k=5)
    assert len(frame) == 5 * len(examples)
    assert list(frame.columns) == ["example", "rank", "up", "up id", "up hit", "down", "down id", "down hit"]
    for example in examples:
        rows = frame[frame["example"] == example.label]
        ups = rows["up id"].tolist()
        assert not set(ups) & set(example.history)  # the history is filtered out...
        assert len(ups) == 5 and ups == sorted(ups)  # ...and the list still has k items, in the model's order
        assert rows["down id"].tolist()[0] == max(set(range(1, 41)) - set(example.history))
        assert rows["up"].iloc[0] == data.items.loc[ups[0], "title"]
    user = examples[-1]
    assert frame.loc[frame["example"] == user.label, "up hit"].sum() == (
        user.target in frame.loc[frame["example"] == user.label, "up id"].tolist())

    paths = save_comparison(data, frame, examples, list(models), tmp_path)
    assert [p.name for p in paths] == ["recommendations.csv", "examples.csv", "recommendations.md"]
    assert pd.read_csv(paths[0]).shape == frame.shape
    saved_examples = pd.read_csv(paths[1])
    assert (saved_examples["role"] == "held-out target").sum() == 2
    markdown = paths[2].read_text()
    assert "## action/sci-fi" in markdown and "| rank | up | down |" in markdown
    assert "Overlap with up: down:" in markdown


def test_hit_is_marked_in_bold():
    data = hand_dataset()
    example = Example("user 11", (2, 3), target=1)
    frame = compare_recommendations(data, {"up": ascending}, [example], k=2)
    assert frame["up id"].tolist() == [101, 104] and frame["up hit"].tolist() == [True, False]
    assert "| 1 | **A (1990)** |" in comparison_markdown(data, frame, [example], ["up"])


def test_popularity_recommender_skips_history():
    data = hand_dataset()
    lists = popularity_recommender(data)([np.array([2]), np.array([], dtype=np.int64)], 2)
    # Training part (last two items dropped): [2, 3, 4], [3], [] -> counts 3: 2, 2: 1, 4: 1 -> order 3, 2, 4, 1, 5.
    assert lists.tolist() == [[3, 4], [3, 2]]
    with pytest.raises(ValueError, match="unseen"):
        popularity_recommender(data)([np.array([1, 2, 3, 4])], 2)


def test_unseen_top_k_short_catalogue_and_bad_shape():
    assert unseen_top_k(ascending, [[1, 2, 3, 4]], 3, num_items=5) == [[5]]
    with pytest.raises(ValueError, match="shape"):
        unseen_top_k(lambda h, k: np.zeros((1, k + 1), dtype=int), [[1]], 2, num_items=5)


@pytest.mark.parametrize("models, examples, k, match", [
    ({}, [Example("x", (1,))], 2, "'models' is empty"),
    ({"up": ascending}, [], 2, "'examples' is empty"),
    ({"up": ascending}, [Example("x", (1,))], 0, "'k' must be in 1..5"),
    ({"up": ascending}, [Example("x", (1,))], 6, "'k' must be in 1..5"),
])
def test_compare_errors(models, examples, k, match):
    with pytest.raises(ValueError, match=match):
        compare_recommendations(hand_dataset(), models, examples, k=k)


def test_bias_on_test_users_and_summary():
    data = make_synthetic_dataset(num_users=30, num_items=40)
    reports = {"up": bias_on_test_users(data, ascending, k=5, max_users=10, seed=0),
               "popular": bias_on_test_users(data, popularity_recommender(data), k=5)}
    assert reports["up"].figures["n_inputs"] == 10 and reports["popular"].figures["n_inputs"] == 30
    summary = bias_summary(reports)
    assert list(summary.columns) == ["up", "popular"] and "genre_consistency" in summary.index
    with pytest.raises(ValueError, match="max_users"):
        bias_on_test_users(data, ascending, max_users=0)


def test_cli_compare_with_checkpoint_and_popular(tmp_path, capsys):
    from recsec_lib.recommend.checkpoints import save_checkpoint
    from recsec_lib.cli import main
    from recsec_lib.data.prepare import prepare_dataset
    from recsec_lib.models.registry import build_model

    data_dir = tmp_path / "data"
    dataset = prepare_dataset("synthetic", data_dir=data_dir)
    checkpoint = save_checkpoint(tmp_path / "m.pt", build_model("meanemb", dataset.num_items, dataset.max_len),
                                 "meanemb", dataset)
    out_dir = tmp_path / "cmp"
    code = main(["compare", "--dataset", "synthetic", "--data-dir", str(data_dir), "--checkpoints", str(checkpoint),
                 "--labels", "target", "--popular", "--users", "2", "--top-k", "5", "--output-dir", str(out_dir),
                 "--bias", "--bias-users", "20", "--device", "cpu"])
    assert code == 0
    assert "| rank | target | popular |" in capsys.readouterr().out
    assert {"recommendations.csv", "examples.csv", "recommendations.md", "bias_summary.csv", "bias_target.json",
            "bias_popular_per_genre.csv"} <= {p.name for p in out_dir.iterdir()}


@pytest.mark.parametrize("argv, match", [
    ([], "nothing to compare"),
    (["--checkpoints", "a.pt", "--labels", "x", "y"], "--labels has 2 labels for 1 checkpoints"),
    (["--checkpoints", "missing.pt"], "missing.pt does not exist"),
    (["--popular", "--top-k", "0"], "--top-k must be >= 1"),
])
def test_cli_compare_errors(argv, match, capsys, tmp_path, monkeypatch):
    from recsec_lib.cli import main

    monkeypatch.chdir(tmp_path)
    assert main(["compare", "--dataset", "synthetic", *argv]) == 2
    assert match in capsys.readouterr().err
