"""The analysis numbers on hand-checkable data, the data and analyze stages, their CLI commands and notebooks."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from recsec_lib.data import analysis
from recsec_lib.cli import main
from recsec_lib.data.dataset import SequenceDataset
from recsec_lib.data.formats import RawData
from recsec_lib.study.stages import analyze as analyze_stage
from recsec_lib.study.stages import data as data_stage
from recsec_lib.study.stages.context import StudyContext

REPO = Path(__file__).resolve().parents[2]


def tiny_dataset() -> SequenceDataset:
    """3 users, 4 items. Sequences [1,2,3], [1,2], [1,4,1,1] (repeats allowed in the container).

    Item counts: 1 -> 5, 2 -> 2, 3 -> 1, 4 -> 1 (9 interactions).
    """
    flat = np.array([1, 2, 3, 1, 2, 1, 4, 1, 1])
    items = pd.DataFrame({
        "title": ["A (1990)", "B (1990)", "C (1995)", "D"],
        "year": pd.array([1990, 1990, 1995, None], dtype="Int64"),
        "genres": [("Drama",), ("Comedy", "Drama"), (), ("Horror",)],
    }, index=pd.RangeIndex(1, 5, name="item"))
    return SequenceDataset(name="tiny", num_items=4, max_len=3, user_raw_ids=np.array([1, 2, 3]),
                           item_raw_ids=np.array([-1, 10, 20, 30, 40]), items_flat=flat,
                           offsets=np.array([0, 3, 5, 9]), items=items)


def tiny_raw(with_ratings: bool = True) -> RawData:
    frame = pd.DataFrame({"user": [1, 1, 2, 2], "item": [10, 20, 10, 30]})
    if with_ratings:
        frame["rating"] = [5.0, 3.0, 5.0, 4.0]
        # 1997-09-20, 1997-09-30, 1997-10-01, 1997-10-02 (UTC)
        frame["timestamp"] = [874713600, 875577600, 875664000, 875750400]
    return RawData(name="tiny", form="official" if with_ratings else "sasrec-txt", interactions=frame,
                   movies=pd.DataFrame(), source="hand" if with_ratings else "mirror:x.txt (sasrec-txt)")


# --------------------------------------------------------------------------- numbers


def test_lengths_and_their_statistics():
    lengths = analysis.sequence_lengths(tiny_dataset())
    assert lengths.tolist() == [3, 2, 4]
    stats = analysis.length_stats(lengths, max_len=3)
    assert stats["seq_len_min"] == 2 and stats["seq_len_max"] == 4 and stats["seq_len_median"] == 3.0
    assert stats["seq_len_mean"] == 3.0
    assert stats["share_users_over_max_len"] == round(1 / 3, 4)


def test_top_share_by_hand():
    counts = analysis.item_counts(tiny_dataset())[1:]
    assert counts.tolist() == [5, 2, 1, 1]
    assert analysis.top_share(counts, 0.01) == pytest.approx(5 / 9)  # ceil(0.04) = 1 item
    assert analysis.top_share(counts, 0.5) == pytest.approx(7 / 9)  # 2 items
    assert analysis.top_share(counts, 1.0) == 1.0


def test_gini_by_hand():
    assert analysis.gini(np.array([1, 1, 1, 1])) == pytest.approx(0.0)
    # one item holds everything: (n - 1) / n
    assert analysis.gini(np.array([0, 0, 0, 4])) == pytest.approx(0.75)


@pytest.mark.parametrize("call, message", [
    (lambda: analysis.top_share(np.array([1, 2]), 0), "fraction"),
    (lambda: analysis.top_share(np.array([0, 0]), 0.1), "no interactions"),
    (lambda: analysis.gini(np.array([])), "no interactions"),
    (lambda: analysis.length_stats(np.array([]), 3), "no sequences"),
])
def test_bad_inputs(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_genre_table_by_hand():
    table = analysis.genre_table(tiny_dataset())
    # Drama: items 1 and 2 -> 2 items, 5 + 2 = 7 interactions; Comedy: item 2 -> 2; Horror: item 4 -> 1;
    # item 3 has no genre -> "(none)" with 1
    assert table.loc["Drama"].tolist() == [2, 7, round(7 / 9, 4)]
    assert table.loc["Comedy", "interactions"] == 2
    assert table.loc["(none)", "items"] == 1 and table.loc["Horror", "interactions"] == 1
    assert table.index[0] == "Drama"


def test_year_table_skips_items_without_year():
    table = analysis.year_table(tiny_dataset())
    assert table.index.tolist() == [1990, 1995]
    assert table.loc[1990].tolist() == [2, 7] and table.loc[1995].tolist() == [1, 1]


def test_rating_and_time_tables():
    raw = tiny_raw()
    ratings = analysis.rating_table(raw)
    assert ratings["ratings"].to_dict() == {3.0: 1, 4.0: 1, 5.0: 2}
    assert ratings.loc[5.0, "share"] == 0.5
    months = analysis.monthly_table(raw)
    assert months["interactions"].to_dict() == {"1997-09": 2, "1997-10": 2}
    assert analysis.missing_reasons(raw) == {}


def test_source_without_ratings_or_timestamps_is_reported_not_failed():
    raw = tiny_raw(with_ratings=False)
    assert analysis.rating_table(raw) is None and analysis.monthly_table(raw) is None
    reasons = analysis.missing_reasons(raw)
    assert set(reasons) == {"rating_distribution", "interactions_over_time"}
    assert "sasrec-txt" in reasons["rating_distribution"]


def test_statistics_table():
    table = analysis.statistics_table(tiny_dataset(), tiny_raw()).set_index("statistic")["value"]
    assert table["users (raw)"] == 2 and table["interactions (raw)"] == 4
    assert table["users"] == 3 and table["interactions"] == 9
    assert table["density"] == round(9 / 12, 5)
    assert table["interaction share of top 10% items"] == round(5 / 9, 4)


def test_figures_are_written(tmp_path):
    ds = tiny_dataset()
    paths = [
        analysis.save_length_histogram(analysis.sequence_lengths(ds), 3, tmp_path / "a.png"),
        analysis.save_long_tail(analysis.item_counts(ds)[1:], tmp_path / "b.png"),
        analysis.save_bar(pd.Series([1, 2], index=["x", "y"]), tmp_path / "c.png", "x", "y", "t", horizontal=True),
        analysis.save_line(pd.Series([1, 2, 3]), tmp_path / "d.png", "x", "y", "t"),
    ]
    for path in paths:
        assert path.read_bytes()[:4] == b"\x89PNG"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.png", "b.png", "c.png", "d.png"]  # no temp files


# --------------------------------------------------------------------------- stages


def smoke_context(tmp_path, dataset="synthetic", mirror=None) -> StudyContext:
    return StudyContext(run_dir=tmp_path / "run", dataset=dataset, data_dir=tmp_path / "data", mirror=mirror,
                        profile="smoke")


def test_data_stage_metrics_and_headline(tmp_path, no_mirror_env):
    ctx = smoke_context(tmp_path)
    metrics = data_stage.run(ctx, data_stage.Settings.for_profile("smoke"))
    assert (metrics["users"], metrics["items"], metrics["interactions"]) == (200, 60, 3754)
    assert metrics["source_form"] == "official" and metrics["source"].startswith("generated:")
    assert metrics["wall_seconds"] >= 0 and metrics["peak_memory_mb"] > 0
    headline = json.loads((ctx.run_dir / "headline.json").read_text())
    assert headline["synthetic_users"] == 200 and headline["synthetic_interactions"] == 3754
    assert (ctx.run_dir / "data" / "summary.csv").exists()
    assert data_stage.headline_prefix("ml-1m") == "ml1m"


def test_analyze_stage_with_ratings(tmp_path, no_mirror_env):
    ctx = smoke_context(tmp_path)
    metrics = analyze_stage.run(ctx, analyze_stage.Settings.for_profile("smoke"))
    out = ctx.run_dir / "analyze"
    expected = {"sequence_lengths", "long_tail", "genres", "release_years", "ratings", "over_time"}
    assert set(metrics["figures"]) == expected and metrics["missing"] == {}
    for name in metrics["figures"].values():
        assert (out / name).exists()
    assert (out / "statistics.csv").exists() and (out / "metrics.json").exists()
    assert 0 < metrics["top1pct_item_share"] < metrics["top10pct_item_share"] < 1
    headline = json.loads((ctx.run_dir / "headline.json").read_text())
    assert headline["synthetic_top10pct_item_share"] == metrics["top10pct_item_share"]


def test_analyze_stage_on_sasrec_file_records_what_is_missing(tmp_path, synthetic_files, no_mirror_env):
    synthetic_files("ml-1m-sasrec", subdir="mirror/ml-1m")
    ctx = smoke_context(tmp_path, dataset="ml-1m", mirror=tmp_path / "mirror")
    metrics = analyze_stage.run(ctx, analyze_stage.Settings.for_profile("smoke"))
    assert "ratings" not in metrics["figures"] and "over_time" not in metrics["figures"]
    assert set(metrics["missing"]) == {"rating_distribution", "interactions_over_time"}
    assert not metrics["has_ratings"]
    headline = json.loads((ctx.run_dir / "headline.json").read_text())
    assert "ml1m_top1pct_item_share" in headline


@pytest.mark.parametrize("module, settings", [(data_stage, {"epochs": 3}), (analyze_stage, {"nope": 1})])
def test_unknown_setting_is_refused(module, settings):
    with pytest.raises(ValueError, match="unknown setting"):
        module.Settings.for_profile("cpu").with_overrides(**settings)


def test_settings_profiles_and_overrides():
    assert data_stage.Settings.for_profile("full") == data_stage.Settings()
    assert data_stage.Settings.for_profile("cpu").with_overrides(allow_download=None).allow_download is True
    assert analyze_stage.Settings.for_profile("smoke").with_overrides(top_genres=5).top_genres == 5
    with pytest.raises(ValueError, match="profile"):
        data_stage.Settings.for_profile("huge")
    with pytest.raises(ValueError, match="top_genres"):
        analyze_stage.run(smoke_context(Path("/nonexistent")), analyze_stage.Settings(top_genres=0))


# --------------------------------------------------------------------------- CLI


def test_download_command_with_mirror(tmp_path, synthetic_files, capsys, no_mirror_env):
    synthetic_files("ml-100k", subdir="mirror/ml-100k")
    code = main(["download", "--datasets", "ml-100k", "--output-dir", str(tmp_path / "data"),
                 "--mirror", str(tmp_path / "mirror"), "--no-download"])
    assert code == 0
    assert "ml-100k: 40 users" in capsys.readouterr().out
    assert (tmp_path / "data" / "processed" / "ml-100k" / "manifest.json").exists()


def test_download_command_errors_in_one_line(tmp_path, capsys, no_mirror_env):
    code = main(["download", "--datasets", "ml-1m", "--output-dir", str(tmp_path), "--no-download"])
    assert code == 2
    err = capsys.readouterr().err
    assert err.startswith("recsec download: error: ml-1m: no data found") and err.count("\n") == 1


def test_download_command_rejects_unknown_dataset(capsys):
    with pytest.raises(SystemExit):
        main(["download", "--datasets", "ml-10m"])
    assert "invalid choice" in capsys.readouterr().err


def test_analyze_command(tmp_path, capsys, no_mirror_env):
    code = main(["analyze", "--dataset", "synthetic", "--run-dir", str(tmp_path / "run"),
                 "--data-dir", str(tmp_path / "data"), "--profile", "smoke"])
    assert code == 0
    assert "top 1% of items hold" in capsys.readouterr().out
    assert (tmp_path / "run" / "analyze" / "long_tail.png").exists()


# --------------------------------------------------------------------------- notebooks
