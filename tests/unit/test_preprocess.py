"""Preprocessing (order, k-core, ids), the split, the cache and prepare_dataset's source resolution."""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
import pytest

from recsec_lib.data import cache, prepare
from recsec_lib.data.formats import RawData, parse_year
from recsec_lib.data.preprocess import build_sequence_dataset, chronological_order, k_core_filter
from recsec_lib.data.synthetic import make_synthetic_dataset, raw_item_id

A, B, C, D = 10, 20, 30, 40  # raw item ids of the hand examples


def raw_from_rows(rows, chronological=False, movies=None) -> RawData:
    """RawData from (user, item, timestamp) rows in file order."""
    frame = pd.DataFrame(rows, columns=["user", "item", "timestamp"]).astype("int64")
    if movies is None:
        movies = pd.DataFrame({"item": [A, B, C, D], "title": ["A (1990)", "B (1991)", "C", "D (1993)"],
                               "genres": [("Drama",), ("Comedy", "Drama"), (), ("Horror",)]})
        movies["year"] = pd.array([parse_year(t) for t in movies.title], dtype="Int64")
    return RawData(name="hand", form="official", interactions=frame, movies=movies, chronological=chronological)


# --------------------------------------------------------------------------- k-core


def test_k_core_one_pass_then_stable():
    # min_count 2. Items: A x3, B x2, C x1 -> C goes; then user 3 has one row left -> goes.
    users = np.array([1, 1, 2, 2, 3, 3])
    items = np.array([A, B, A, B, A, C])
    result = k_core_filter(users, items, min_count=2)
    assert result.keep.tolist() == [True, True, True, True, False, False]
    assert result.passes == 2  # the second pass changes nothing


def test_k_core_needs_a_second_pass():
    # min_count 2. Pass 1: D (x1) goes, so user 3 keeps only C and goes; now C has one row
    # (user 2's) -> pass 2 drops C; user 2 keeps A, B. Pass 3 changes nothing.
    users = np.array([1, 1, 2, 2, 2, 3, 3])
    items = np.array([A, B, A, B, C, C, D])
    result = k_core_filter(users, items, min_count=2)
    assert result.keep.tolist() == [True, True, True, True, False, False, False]
    assert result.passes == 3


def test_k_core_rejects_bad_min_count():
    with pytest.raises(ValueError, match="min_count"):
        k_core_filter(np.array([1]), np.array([1]), min_count=0)


# --------------------------------------------------------------------------- order and ids


def test_chronological_order_is_stable_for_ties():
    users = np.array([2, 1, 1, 1, 2])
    stamps = np.array([5, 9, 3, 3, 1])
    # user 1: rows 2 and 3 tie at t=3 and keep file order, then row 1 (t=9); user 2: row 4, row 0
    assert chronological_order(users, stamps).tolist() == [2, 3, 1, 4, 0]
    assert chronological_order(users, None).tolist() == [1, 2, 3, 0, 4]


def test_build_sorts_by_time_remaps_ids_and_keeps_items_table():
    rows = [  # user, item, timestamp in file order (user 7 listed first, not in time order)
        (7, C, 30), (7, A, 10), (7, B, 20),
        (3, B, 5), (3, A, 5), (3, C, 1),
    ]
    ds = build_sequence_dataset(raw_from_rows(rows), min_count=1, max_len=2, source="hand")
    assert ds.user_raw_ids.tolist() == [3, 7]  # users by raw id
    assert ds.item_raw_ids.tolist() == [-1, A, B, C]  # ids 1..3 in ascending raw id
    assert ds.sequence(0).tolist() == [3, 2, 1]  # user 3: C (t=1), then B, A tied at t=5 in file order
    assert ds.sequence(1).tolist() == [1, 2, 3]  # user 7: A, B, C
    assert ds.max_len == 2 and ds.num_interactions == 6 and ds.source == "hand"
    assert ds.items.loc[1, "title"] == "A (1990)" and ds.items.loc[2, "genres"] == ("Comedy", "Drama")
    assert pd.isna(ds.items.loc[3, "year"])


def test_sasrec_file_order_is_kept():
    rows = [(1, C, 0), (1, A, 0), (1, B, 0)]
    ds = build_sequence_dataset(raw_from_rows(rows, chronological=True), min_count=1)
    assert ds.sequence(0).tolist() == [3, 1, 2]


def test_items_missing_from_movies_get_empty_entries():
    movies = pd.DataFrame({"item": [A], "title": ["A (1990)"], "year": pd.array([1990], dtype="Int64"),
                           "genres": [("Drama",)]})
    ds = build_sequence_dataset(raw_from_rows([(1, A, 1), (1, D, 2)], movies=movies), min_count=1)
    assert ds.items.loc[2, "title"] == "" and ds.items.loc[2, "genres"] == ()


def test_filter_leaving_nothing_is_an_error():
    with pytest.raises(ValueError, match="5-core filter left no interactions"):
        build_sequence_dataset(raw_from_rows([(1, A, 1), (1, B, 2)]), min_count=5)


def test_no_interactions_is_an_error():
    with pytest.raises(ValueError, match="no interactions"):
        build_sequence_dataset(raw_from_rows([]), min_count=1)


def test_split_is_leave_one_out():
    ds = build_sequence_dataset(raw_from_rows([(1, A, 1), (1, B, 2), (1, C, 3), (1, D, 4)]), min_count=1)
    assert ds.train_sequences()[0].tolist() == [1, 2]
    inputs, targets = ds.split("valid")
    assert inputs[0].tolist() == [1, 2] and targets.tolist() == [3]
    inputs, targets = ds.split("test")
    assert inputs[0].tolist() == [1, 2, 3] and targets.tolist() == [4]


# --------------------------------------------------------------------------- prepare_dataset and the cache


def test_synthetic_through_files_matches_in_memory_dataset(tmp_path, no_mirror_env):
    ds = prepare.prepare_dataset("synthetic", data_dir=tmp_path)
    reference = make_synthetic_dataset()
    assert ds.num_users == reference.num_users and ds.num_items == reference.num_items
    np.testing.assert_array_equal(ds.items_flat, reference.items_flat)
    assert ds.item_raw_ids[1:].tolist() == [raw_item_id(i) for i in range(1, 61)]
    assert ds.source.startswith("generated:") and len(ds.fingerprint) == 16


@pytest.mark.parametrize("fmt, expected_form", [
    ("ml-1m", "official"), ("ml-1m-sasrec", "sasrec-txt"), ("ml-1m-zip", "official, differs from the official archive"),
])
def test_mirror_forms(tmp_path, synthetic_files, no_mirror_env, fmt, expected_form):
    synthetic_files(fmt, subdir="mirror/ml-1m")
    ds = prepare.prepare_dataset("ml-1m", data_dir=tmp_path / "data", mirror=tmp_path / "mirror", min_count=1,
                                 download=False)
    assert ds.source.startswith("mirror") and f"({expected_form}" in ds.source.split(" ", 1)[1]
    assert ds.num_users == 40
    manifest = prepare.dataset_manifest("ml-1m", tmp_path / "data")
    assert manifest["source"] == ds.source and manifest["fingerprint"] == ds.fingerprint


def test_mirror_from_environment(tmp_path, synthetic_files, monkeypatch):
    synthetic_files("ml-100k", subdir="mirror/ml-100k")
    monkeypatch.setenv("RECSEC_DATA_MIRROR", str(tmp_path / "mirror"))
    ds = prepare.prepare_dataset("ml-100k", data_dir=tmp_path / "data", min_count=1, download=False)
    assert ds.source.startswith("mirror:") and ds.num_users == 40


def test_data_dir_wins_over_mirror(tmp_path, synthetic_files, no_mirror_env):
    synthetic_files("ml-20m", subdir="data/ml-20m")
    synthetic_files("ml-20m", subdir="mirror/ml-20m")
    ds = prepare.prepare_dataset("ml-20m", data_dir=tmp_path / "data", mirror=tmp_path / "mirror", min_count=1)
    assert ds.source.startswith("data_dir:")


def test_cache_is_reused_then_rebuilt_on_change(tmp_path, synthetic_files, no_mirror_env, caplog):
    folder = synthetic_files("ml-1m", subdir="mirror/ml-1m")
    kwargs = dict(data_dir=tmp_path / "data", mirror=tmp_path / "mirror", download=False)
    first = prepare.prepare_dataset("ml-1m", **kwargs)
    # reuse: the same data and fingerprint, read from the cache
    caplog.set_level("INFO")
    second = prepare.prepare_dataset("ml-1m", **kwargs)
    assert "loaded from cache" in caplog.text
    assert second.fingerprint == first.fingerprint and second.source == first.source
    np.testing.assert_array_equal(second.items_flat, first.items_flat)
    np.testing.assert_array_equal(second.offsets, first.offsets)
    pd.testing.assert_frame_equal(second.items, first.items)
    # touching a file without changing it keeps the cache
    os.utime(folder / "ratings.dat", ns=(1, 1))
    assert prepare.prepare_dataset("ml-1m", **kwargs).fingerprint == first.fingerprint
    # a changed parameter rebuilds
    caplog.clear()
    shorter = prepare.prepare_dataset("ml-1m", max_len=50, **kwargs)
    assert "parameters changed" in caplog.text and shorter.max_len == 50
    assert shorter.fingerprint != first.fingerprint
    # a changed source file rebuilds: drop the last line of ratings.dat
    lines = (folder / "ratings.dat").read_text(encoding="latin-1").splitlines(keepends=True)
    (folder / "ratings.dat").write_text("".join(lines[:-1]), encoding="latin-1")
    caplog.clear()
    changed = prepare.prepare_dataset("ml-1m", max_len=50, **kwargs)
    assert "source file changed" in caplog.text
    assert changed.num_interactions == first.num_interactions - 1 and changed.fingerprint != shorter.fingerprint


def test_damaged_cache_is_rebuilt(tmp_path, no_mirror_env, caplog):
    first = prepare.prepare_dataset("synthetic", data_dir=tmp_path)
    (cache.cache_dir(tmp_path, "synthetic") / "sequences.npz").write_bytes(b"garbage")
    caplog.set_level("INFO")
    again = prepare.prepare_dataset("synthetic", data_dir=tmp_path)
    assert "cache files damaged" in caplog.text and again.fingerprint == first.fingerprint


def test_unknown_dataset_name_lists_valid_ones(tmp_path):
    with pytest.raises(ValueError, match="unknown dataset 'ml-10m'; expected one of ml-1m, ml-100k"):
        prepare.prepare_dataset("ml-10m", data_dir=tmp_path)


def test_nothing_found_without_download(tmp_path, no_mirror_env):
    with pytest.raises(prepare.DataUnavailableError, match="no data found .* downloading is off; .*--mirror DIR or "
                                                           r"\$RECSEC_DATA_MIRROR"):
        prepare.prepare_dataset("ml-1m", data_dir=tmp_path, download=False)


def test_missing_mirror_folder(tmp_path, no_mirror_env):
    with pytest.raises(FileNotFoundError, match="mirror folder .*nowhere does not exist"):
        prepare.prepare_dataset("ml-1m", data_dir=tmp_path, mirror=tmp_path / "nowhere", download=False)


@pytest.mark.parametrize("kwargs, parameter", [({"min_count": 0}, "min_count"), ({"max_len": 0}, "max_len")])
def test_bad_parameters(tmp_path, kwargs, parameter):
    with pytest.raises(ValueError, match=parameter):
        prepare.prepare_dataset("synthetic", data_dir=tmp_path, **kwargs)


def test_filter_leaving_nothing_through_prepare(tmp_path, synthetic_files, no_mirror_env):
    synthetic_files("ml-1m-sasrec", subdir="mirror/ml-1m", num_users=3, num_items=10, min_len=3, max_len=4)
    with pytest.raises(ValueError, match="filter left no interactions"):
        prepare.prepare_dataset("ml-1m", data_dir=tmp_path / "data", mirror=tmp_path / "mirror", download=False)
    assert not (cache.cache_dir(tmp_path / "data", "ml-1m") / "manifest.json").exists()


# --------------------------------------------------------------------------- issue 18: data verification


def write_sums(folder, lines_by_name=None):
    """A SHA256SUMS for every file in ``folder`` (``lines_by_name`` overrides a file's digest)."""
    lines = []
    for path in sorted(folder.iterdir()):
        if path.name != "SHA256SUMS":
            digest = (lines_by_name or {}).get(path.name) or cache.sha256_file(path)
            lines.append(f"{digest}  {path.name}\n")
    (folder / "SHA256SUMS").write_text("".join(lines))


def test_sha256sums_beside_the_mirror_are_checked(tmp_path, synthetic_files, no_mirror_env):
    folder = synthetic_files("ml-1m-sasrec", subdir="mirror/ml-1m")
    write_sums(folder)
    kwargs = dict(data_dir=tmp_path / "data", mirror=tmp_path / "mirror", download=False)
    good = prepare.prepare_dataset("ml-1m", **kwargs)
    # the file changes after the cache was built: the cache is not used, the mismatch names the file
    with open(folder / "ml-1m.txt", "a", encoding="ascii") as handle:
        handle.write("1 1\n")
    with pytest.raises(prepare.ChecksumError, match=r"ml-1m/ml-1m.txt: SHA-256 \w+ does not match .*SHA256SUMS:1"):
        prepare.prepare_dataset("ml-1m", **kwargs)
    with pytest.raises(prepare.ChecksumError, match="ml-1m.txt: SHA-256"):
        prepare.prepare_dataset("ml-1m", force=True, **kwargs)
    assert good.num_users == 40


def test_malformed_sha256sums_names_file_and_line(tmp_path, synthetic_files, no_mirror_env):
    folder = synthetic_files("ml-1m", subdir="mirror/ml-1m")
    (folder / "SHA256SUMS").write_text(f"{'0' * 64}  movies.dat\nnot a digest line\n")
    with pytest.raises(ValueError, match=r"SHA256SUMS:2: expected '<64 hex digits>  <file name>'"):
        prepare.prepare_dataset("ml-1m", data_dir=tmp_path / "data", mirror=tmp_path / "mirror", download=False)


def test_ml1m_counts_other_than_the_papers_are_a_warning(tmp_path, synthetic_files, no_mirror_env, caplog):
    synthetic_files("ml-1m", subdir="mirror/ml-1m")
    caplog.set_level("WARNING")
    kwargs = dict(data_dir=tmp_path / "data", mirror=tmp_path / "mirror", download=False)
    prepare.prepare_dataset("ml-1m", **kwargs)
    assert "users 40 (expected 6,040), items 20 (expected 3,416)" in caplog.text
    assert "not the ML-1M of the papers" in caplog.text
    caplog.clear()
    prepare.prepare_dataset("ml-1m", **kwargs)  # from the cache: still said
    assert "expected 6,040" in caplog.text
    caplog.clear()
    prepare.prepare_dataset("ml-100k", data_dir=tmp_path / "data",
                            mirror=synthetic_files("ml-100k", subdir="m100/ml-100k").parent.parent / "m100")
    assert "expected 6,040" not in caplog.text  # only ML-1M has published counts to check


def test_good_mirror_after_a_bad_one_rebuilds_the_cache(tmp_path, synthetic_files, no_mirror_env):
    good = synthetic_files("ml-1m", subdir="good/ml-1m")
    bad = synthetic_files("ml-1m", subdir="bad/ml-1m")
    lines = (bad / "ratings.dat").read_text(encoding="latin-1").splitlines(keepends=True)
    (bad / "ratings.dat").write_text("".join(lines[: len(lines) // 2]), encoding="latin-1")  # a truncated copy
    data_dir = tmp_path / "data"
    from_bad = prepare.prepare_dataset("ml-1m", data_dir=data_dir, mirror=tmp_path / "bad", download=False)
    from_good = prepare.prepare_dataset("ml-1m", data_dir=data_dir, mirror=tmp_path / "good", download=False)
    assert from_good.num_interactions > from_bad.num_interactions
    assert from_good.source.startswith(f"mirror:{good}") and from_good.fingerprint != from_bad.fingerprint
    # the cache built from the good mirror is reused, also when the mirror is not named again
    again = prepare.prepare_dataset("ml-1m", data_dir=data_dir, download=False)
    assert again.fingerprint == from_good.fingerprint


def test_force_reads_the_mirror_again_instead_of_the_data_dir_copy(tmp_path, synthetic_files, no_mirror_env,
                                                                      caplog):
    synthetic_files("ml-1m", subdir="mirror/ml-1m")
    stale = synthetic_files("ml-1m", subdir="data/ml-1m", num_users=30)
    kwargs = dict(data_dir=tmp_path / "data", mirror=tmp_path / "mirror", download=False)
    assert prepare.prepare_dataset("ml-1m", **kwargs).num_users == 30  # the data_dir copy wins ...
    caplog.set_level("INFO")
    forced = prepare.prepare_dataset("ml-1m", force=True, **kwargs)  # ... unless forced
    assert forced.num_users == 40 and forced.source.startswith("mirror:")
    assert "loaded from cache" not in caplog.text and stale.is_dir()


def test_data_dir_that_is_a_file_is_named(tmp_path, no_mirror_env):
    not_a_folder = tmp_path / "data"
    not_a_folder.write_text("")
    with pytest.raises(ValueError, match=r"'data_dir' \(--data-dir\): .*data is a file, not a folder"):
        prepare.prepare_dataset("synthetic", data_dir=not_a_folder)
