"""The published dataset figures, on the real MovieLens copies (RECSEC_DATA_MIRROR, e.g. /work/shared/data).

Run with: RECSEC_DATA_MIRROR=/work/shared/data .venv/bin/pytest tests/integration/test_realdata.py -q
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from recsec_lib.data.prepare import dataset_manifest, load_raw, prepare_dataset

pytestmark = pytest.mark.realdata


@pytest.fixture
def mirror() -> Path:
    return Path(os.environ["RECSEC_DATA_MIRROR"])


def test_ml1m_after_5_core_matches_the_papers(tmp_path, mirror):
    if not (mirror / "ml-1m").is_dir():
        pytest.skip("mirror has no ml-1m/")
    ds = prepare_dataset("ml-1m", data_dir=tmp_path, mirror=mirror, download=False)
    assert (ds.num_users, ds.num_items, ds.num_interactions) == (6040, 3416, 999_611)
    assert ds.max_len == 200
    assert ds.items["title"].ne("").all()  # every kept movie has its movies.dat entry
    assert ds.items.loc[1, "title"] == "Toy Story (1995)"
    manifest = dataset_manifest("ml-1m", tmp_path)
    assert manifest["counts"]["raw_interactions"] == 1_000_209
    # from the cache: identical
    again = prepare_dataset("ml-1m", data_dir=tmp_path, mirror=mirror, download=False)
    assert again.fingerprint == ds.fingerprint and again.num_interactions == 999_611


def test_ml100k_before_filtering(tmp_path, mirror):
    if not (mirror / "ml-100k").is_dir():
        pytest.skip("mirror has no ml-100k/")
    raw = load_raw("ml-100k", data_dir=tmp_path, mirror=mirror, download=False)
    assert raw.interactions["user"].nunique() == 943
    assert raw.interactions["item"].nunique() == 1682
    assert len(raw.interactions) == 100_000 and raw.has_ratings and raw.has_timestamps
    assert len(raw.movies) == 1682
