"""Downloading against a local HTTP server (127.0.0.1): verification, retries, atomicity, mirror."""

from __future__ import annotations

import hashlib
import zipfile

import pytest

from recsec_lib.data import download, prepare
from recsec_lib.data.download import ArchiveSpec, ChecksumError


@pytest.fixture
def served_zip(file_server, synthetic_files):
    """A synthetic ml-1m.zip on the local server, and the spec that describes it."""
    path = synthetic_files("ml-1m-zip", subdir="zips")
    body = path.read_bytes()
    (file_server.root / "ml-1m.zip").write_bytes(body)
    spec = ArchiveSpec("ml-1m.zip", "ml-1m", size=len(body), md5=hashlib.md5(body).hexdigest(),
                       sha256=hashlib.sha256(body).hexdigest())
    return file_server, spec


def leftovers(folder):
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def test_good_download_is_verified_and_extracted(tmp_path, served_zip):
    server, spec = served_zip
    data_dir = tmp_path / "data"
    folder = download.fetch_dataset("ml-1m", data_dir, base_url=server.url, spec=spec, backoff_s=0, progress=False)
    assert folder == data_dir / "ml-1m"
    assert sorted(p.name for p in folder.iterdir()) == ["movies.dat", "ratings.dat"]
    assert leftovers(data_dir) == ["ml-1m", "ml-1m.zip"]  # no temporary files
    # a second fetch reuses the verified zip
    requests = server.requests
    download.fetch_dataset("ml-1m", data_dir, base_url=server.url, spec=spec, backoff_s=0, progress=False)
    assert server.requests == requests


def test_checksum_mismatch_fails_clearly_and_leaves_nothing(tmp_path, served_zip):
    server, spec = served_zip
    wrong = ArchiveSpec(spec.filename, spec.folder, size=spec.size, sha256="0" * 64)
    data_dir = tmp_path / "data"
    with pytest.raises(ChecksumError, match="ml-1m.zip: sha256 mismatch"):
        download.download_archive("ml-1m", data_dir, base_url=server.url, spec=wrong, backoff_s=0, progress=False)
    assert not data_dir.exists()  # created for the download, removed with it
    assert server.requests == 1  # a complete but wrong file is not downloaded again


def test_size_mismatch_fails(tmp_path, served_zip):
    server, spec = served_zip
    wrong = ArchiveSpec(spec.filename, spec.folder, size=spec.size + 1)
    with pytest.raises(ChecksumError, match="expected .* bytes"):
        download.download_archive("ml-1m", tmp_path / "data", base_url=server.url, spec=wrong, backoff_s=0,
                                  progress=False)
    assert leftovers(tmp_path / "data") == []


def test_truncated_transfer_is_retried(tmp_path, served_zip):
    server, spec = served_zip
    server.failures = ["truncate"]
    path = download.download_archive("ml-1m", tmp_path / "data", base_url=server.url, spec=spec, backoff_s=0,
                                      progress=False)
    assert server.requests == 2 and download.verify_archive(path, spec)["sha256"] == spec.sha256
    assert leftovers(tmp_path / "data") == ["ml-1m.zip"]


def test_server_error_is_retried(tmp_path, served_zip):
    server, spec = served_zip
    server.failures = ["500", "500"]
    download.download_archive("ml-1m", tmp_path, base_url=server.url, spec=spec, attempts=3, backoff_s=0,
                              progress=False)
    assert server.requests == 3


def test_persistent_truncation_gives_up_and_leaves_nothing(tmp_path, served_zip):
    server, spec = served_zip
    server.failures = ["truncate"] * 3
    with pytest.raises(ConnectionError, match="failed after 3 attempts"):
        download.download_archive("ml-1m", tmp_path / "data", base_url=server.url, spec=spec, attempts=3,
                                  backoff_s=0, progress=False)
    assert leftovers(tmp_path / "data") == []


def test_missing_file_on_server_is_not_retried(tmp_path, file_server):
    spec = ArchiveSpec("ml-100k.zip", "ml-100k")
    with pytest.raises(FileNotFoundError, match="HTTP 404"):
        download.download_archive("ml-100k", tmp_path / "data", base_url=file_server.url, spec=spec, backoff_s=0,
                                  progress=False)
    assert file_server.requests == 1 and leftovers(tmp_path / "data") == []


def test_corrupted_zip_is_not_extracted(tmp_path):
    bad = tmp_path / "ml-1m.zip"
    bad.write_bytes(b"PK\x03\x04 not really a zip")
    data_dir = tmp_path / "data"
    with pytest.raises(ValueError, match="not a valid zip"):
        download.extract_archive(bad, data_dir, "ml-1m", "ml-1m")
    assert leftovers(data_dir) == []


def test_zip_with_unsafe_path_is_refused(tmp_path):
    evil = tmp_path / "evil.zip"
    with zipfile.ZipFile(evil, "w") as archive:
        archive.writestr("../escaped.txt", "x")
    with pytest.raises(ValueError, match="unsafe path"):
        download.extract_archive(evil, tmp_path / "data", "ml-1m")
    assert not (tmp_path / "escaped.txt").exists() and leftovers(tmp_path / "data") == []


def test_prepare_downloads_when_nothing_is_local(tmp_path, served_zip, monkeypatch, no_mirror_env):
    server, spec = served_zip
    monkeypatch.setitem(download.ARCHIVES, "ml-1m", spec)
    ds = prepare.prepare_dataset("ml-1m", data_dir=tmp_path / "data", base_url=server.url, min_count=1)
    assert ds.source.startswith("download:") and ds.num_users == 40


def test_mirror_is_used_before_download(tmp_path, served_zip, synthetic_files, no_mirror_env):
    server, _ = served_zip
    synthetic_files("ml-1m-sasrec", subdir="mirror/ml-1m")
    ds = prepare.prepare_dataset("ml-1m", data_dir=tmp_path / "data", mirror=tmp_path / "mirror",
                                 base_url=server.url, min_count=1)
    assert ds.source.startswith("mirror:") and server.requests == 0


def test_unknown_dataset_cannot_be_downloaded(tmp_path):
    with pytest.raises(ValueError, match="no download known for dataset 'ml-10m'"):
        download.download_archive("ml-10m", tmp_path)


def test_known_archive_table():
    assert download.ARCHIVES["ml-1m"].size == 5_917_549
    assert set(download.ARCHIVES) == {"ml-1m", "ml-100k", "ml-20m"}


def test_bad_attempts_parameter(tmp_path):
    with pytest.raises(ValueError, match="attempts"):
        download.download_archive("ml-1m", tmp_path, attempts=0)


def test_md5_mismatch_is_reported(tmp_path):
    path = tmp_path / "x.zip"
    path.write_bytes(b"abc")
    with pytest.raises(ChecksumError, match="md5 mismatch"):
        download.verify_archive(path, ArchiveSpec("x.zip", "x", size=3, md5="0" * 32))


def test_extraction_replaces_an_incomplete_folder(tmp_path, synthetic_files):
    zip_path = synthetic_files("ml-1m-zip", subdir="zips")
    stale = tmp_path / "data" / "ml-1m"
    stale.mkdir(parents=True)
    (stale / "half-written.dat").write_text("x")
    folder = download.extract_archive(zip_path, tmp_path / "data", "ml-1m", "ml-1m")
    assert sorted(p.name for p in folder.iterdir()) == ["movies.dat", "ratings.dat"]
    assert leftovers(tmp_path / "data") == ["ml-1m"]


def test_force_downloads_again_even_with_a_verified_zip(tmp_path, served_zip):
    server, spec = served_zip
    data_dir = tmp_path / "data"
    download.fetch_dataset("ml-1m", data_dir, base_url=server.url, spec=spec, backoff_s=0, progress=False)
    requests = server.requests
    download.fetch_dataset("ml-1m", data_dir, base_url=server.url, spec=spec, backoff_s=0, progress=False, force=True)
    assert server.requests == requests + 1 and leftovers(data_dir) == ["ml-1m", "ml-1m.zip"]


def test_unresolvable_host_fails_at_once_with_the_mirror_advice(tmp_path, monkeypatch, no_mirror_env):
    """Offline: no retries, and one line naming --mirror and $RECSEC_DATA_MIRROR."""
    import socket
    import urllib.error

    calls = []

    def offline(url, timeout):
        calls.append(url)
        raise urllib.error.URLError(socket.gaierror(-2, "Name or service not known"))

    monkeypatch.setattr(download.urllib.request, "urlopen", offline)
    with pytest.raises(prepare.DataUnavailableError) as caught:
        prepare.prepare_dataset("ml-1m", data_dir=tmp_path / "data")
    message = str(caught.value)
    assert len(calls) == 1 and "\n" not in message
    assert "cannot resolve the host" in message and "--mirror DIR or $RECSEC_DATA_MIRROR" in message
    assert not (tmp_path / "data").exists() or not any((tmp_path / "data").iterdir())


def test_cli_download_force_reads_the_mirror_again(tmp_path, synthetic_files, no_mirror_env, capsys):
    from recsec_lib.cli import main

    synthetic_files("ml-1m", subdir="mirror/ml-1m")
    synthetic_files("ml-1m", subdir="data/ml-1m", num_users=30)  # a stale copy in --output-dir
    common = ["--output-dir", str(tmp_path / "data"), "--mirror", str(tmp_path / "mirror"), "--no-download"]
    assert main(["download", *common]) == 0
    assert "ml-1m: 30 users" in capsys.readouterr().out
    assert main(["download", "--force", *common]) == 0
    assert "ml-1m: 40 users" in capsys.readouterr().out
