"""Files written atomically get the permissions of any other new file (0644 under umask 022), not mkstemp's 0600.

A run folder, a downloaded archive or a cached dataset that only its owner can
read cannot be shared with the rest of a team (issue 18, item 10).
"""

from __future__ import annotations

import hashlib
import os
import stat
import zipfile
from pathlib import Path

import pytest

from recsec_lib.study import runs
from recsec_lib.data import download
from recsec_lib.data.download import ArchiveSpec
from recsec_lib.data.synthetic import write_synthetic_files


@pytest.fixture
def umask_022():
    """The usual umask, whatever the test runner was started with."""
    previous = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(previous)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_runs_helpers_write_normal_files(tmp_path, umask_022):
    runs.write_json_atomic(tmp_path / "a.json", {"x": 1})
    runs.write_text_atomic(tmp_path / "b.md", "text\n")
    with runs.atomic_path(tmp_path / "c.png") as tmp:
        tmp.write_bytes(b"png")
    run_dir = runs.create_run_folder(tmp_path / "outputs", "r1", {"common": {}})
    written = [tmp_path / "a.json", tmp_path / "b.md", tmp_path / "c.png", run_dir / "params.json",
               run_dir / "environment.json"]
    assert {path.name: oct(mode(path)) for path in written} == {path.name: "0o644" for path in written}


def test_the_umask_is_respected(tmp_path):
    previous = os.umask(0o077)
    try:
        runs.write_json_atomic(tmp_path / "private.json", {})
    finally:
        os.umask(previous)
    assert mode(tmp_path / "private.json") == 0o600


def test_synthetic_files_are_normal(tmp_path, umask_022):
    folder = write_synthetic_files(tmp_path / "ml-1m", "ml-1m")
    assert {p.name: oct(mode(p)) for p in folder.iterdir()} == {"ratings.dat": "0o644", "movies.dat": "0o644"}


def test_downloaded_and_extracted_archive_is_normal(tmp_path, file_server, umask_022):
    body_path = tmp_path / "flat.zip"
    with zipfile.ZipFile(body_path, "w") as archive:  # no top folder: extraction renames mkdtemp's folder
        archive.writestr("ratings.dat", "1::1::5::1\n")
    body = body_path.read_bytes()
    (file_server.root / "flat.zip").write_bytes(body)
    spec = ArchiveSpec("flat.zip", "", size=len(body), md5=hashlib.md5(body).hexdigest())
    folder = download.fetch_dataset("flat", tmp_path / "data", base_url=file_server.url, spec=spec, backoff_s=0,
                                    progress=False)
    assert oct(mode(tmp_path / "data" / "flat.zip")) == "0o644"
    assert oct(mode(folder)) == "0o755"
    assert oct(mode(folder / "ratings.dat")) == "0o644"
