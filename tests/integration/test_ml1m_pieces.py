"""ML-1M checks of single pieces (the real data: skipped without RECSEC_DATA_MIRROR).

Each test reads the mirror's ML-1M and checks one piece against what is known of
the real data: the mirror's checksums and counts, themed examples, a full
evaluation's size, SEAT's benign accounts.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from recsec_lib.data import prepare
from recsec_lib.models.registry import build_model
from recsec_lib.recommend.compare import bias_on_test_users, popularity_recommender, themed_examples
from recsec_lib.recommend.evaluation import evaluate_model
from recsec_lib.seat import benign
from recsec_lib.seat.encoder import EncoderConfig, EncoderTraining, train_encoder
from recsec_lib.seat.replay import featurize, replay
from recsec_lib.seat.statistics import SOURCES, MonitorContext

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.realdata
def test_real_mirror_is_verified_against_its_sha256sums_and_counts(tmp_path, caplog):
    mirror = os.environ["RECSEC_DATA_MIRROR"]
    caplog.set_level("INFO")
    ds = prepare.prepare_dataset("ml-1m", data_dir=tmp_path, mirror=mirror, download=False)
    assert "ml-1m.txt: SHA-256 matches" in caplog.text and "movies.dat: SHA-256 matches" in caplog.text
    assert "not the ML-1M of the papers" not in caplog.text
    assert prepare.check_expected_counts(ds, min_count=5) == {}


@pytest.mark.realdata
def test_ml1m_examples_and_popularity_bias(tmp_path):
    """On ML-1M the themed histories are recognisable and the popularity baseline is all head."""
    import os

    from recsec_lib.data.prepare import prepare_dataset

    data = prepare_dataset("ml-1m", data_dir=tmp_path / "data", mirror=os.environ["RECSEC_DATA_MIRROR"])
    examples = {e.label: [int(data.item_raw_ids[i]) for i in e.history] for e in themed_examples(data)}
    assert list(examples) == ["action/sci-fi", "children's", "drama", "comedy", "horror"]
    assert examples["action/sci-fi"][0] == 260  # Star Wars: Episode IV
    assert examples["children's"][0] == 364  # The Lion King
    assert all(len(history) == 5 for history in examples.values())
    report = bias_on_test_users(data, popularity_recommender(data), k=10, max_users=500, seed=0)
    assert report.figures["popular_share_recommended"] == 1.0
    assert 0.3 < report.figures["popular_share_interactions"] < 0.6


@pytest.mark.realdata
def test_full_evaluation_of_all_ml1m_users():
    """All 6,040 ML-1M test users ranked against all 3,416 items; an untrained SASRec is near chance."""
    from recsec_lib.data.prepare import prepare_dataset

    # The project's usual (git-ignored) processed cache, so the test does not rebuild it every time.
    dataset = prepare_dataset("ml-1m", data_dir=REPO / "data", mirror=Path(os.environ["RECSEC_DATA_MIRROR"]))
    assert (dataset.num_users, dataset.num_items, dataset.num_interactions) == (6040, 3416, 999_611)
    torch.manual_seed(0)
    model = build_model("sasrec", dataset.num_items, dataset.max_len)
    metrics = evaluate_model(model, dataset, "test")
    assert metrics["users"] == 6040
    assert metrics["hr@10"] < 0.05 and metrics["sampled_hr@10"] < 0.3


@pytest.mark.realdata
def test_real_benign_prefix_accounts_have_no_close_pairs(tmp_path):
    """On ML-1M, single-history accounts (growing prefixes, refreshes) never count a pair."""
    import os
    from pathlib import Path

    from recsec_lib.data.prepare import prepare_dataset

    dataset = prepare_dataset("ml-1m", data_dir=tmp_path, mirror=Path(os.environ["RECSEC_DATA_MIRROR"]))
    encoder, _ = train_encoder([dataset.sequence(u)[:-2] for u in range(500)],
                               EncoderConfig(num_items=dataset.num_items, window=50, dim=32, hidden=64),
                               EncoderTraining(steps=30, batch_size=64, seed=0), progress=False)
    users = list(range(5900, 6040))
    traffic = benign.benign_traffic([dataset.sequence(u) for u in users], users, ["growing", "refresh"],
                                dataset.max_len, seed=0)
    features = featurize(traffic, encoder, dataset.num_items)
    monitor = SOURCES["seat"].monitor({}, MonitorContext(threshold=2.0, dim=32))  # every pair would be "close"
    outcomes = replay(monitor, traffic, features.seat, features.rows)
    assert len(outcomes) == 2 * len(users)
    assert all(o.score == 0 for o in outcomes)
