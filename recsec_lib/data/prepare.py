"""The one entry point to the data: ``prepare_dataset(name, ...) -> SequenceDataset``.

Where the data comes from, in order:
1. the processed cache ``<data_dir>/processed/<name>/`` if it is still valid
   (same parameters, unchanged source files; see cache.py);
2. ``<data_dir>/<name>/`` (a previous download, extracted) or ``<data_dir>/<name>.zip``;
3. the mirror folder (``mirror`` argument, else $RECSEC_DATA_MIRROR), which may hold
   ``<name>/`` with the official files or, for ML-1M, the SASRec-style ``ml-1m.txt``
   beside movies.dat, or the official ``<name>.zip``;
4. a download from GroupLens (``base_url``), unless ``download=False``.

"synthetic" is a tiny generated dataset written in the official ML-1M format
into ``<data_dir>/synthetic/`` and then read through the same path as the real
data, so the smoke profile exercises the real loaders and cache.

Which form was used is logged and recorded in ``SequenceDataset.source`` and the
cache manifest.

Checks on the way (issue 18):
* the source is located *before* the cache is consulted, and the cache is used
  only when it was built from files with the same SHA-256 (cache.py), so
  switching from a bad mirror to a good one rebuilds it;
* a ``SHA256SUMS`` file beside the source files (``sha256sum`` format) is
  checked: a mismatch raises ``ChecksumError`` naming the file;
* ML-1M with the 5-core filter must give 6,040 users, 3,416 items and 999,611
  interactions (STUDY.md); other counts are logged as a warning;
* when no copy is found and the download fails (offline), or downloading is
  off, ``DataUnavailableError`` says in one line to use ``--mirror`` or
  ``$RECSEC_DATA_MIRROR``;
* ``force=True`` ignores the cache and the copies in ``data_dir``: the data is
  read again from the mirror or downloaded again.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from recsec_lib.data import cache
from recsec_lib.data.dataset import SequenceDataset
from recsec_lib.data.download import (ARCHIVES, DEFAULT_BASE_URL, ChecksumError, extract_archive, fetch_dataset,
                                      file_hashes)
from recsec_lib.data.errors import MIRROR_ENV, DataUnavailableError
from recsec_lib.data.formats import RawData, detect_layout, read_folder
from recsec_lib.data.preprocess import build_sequence_dataset
from recsec_lib.data.synthetic import write_synthetic_files

log = logging.getLogger(__name__)

DATASET_NAMES = ("ml-1m", "ml-100k", "ml-20m", "synthetic")
# Size of the generated "synthetic" dataset (big enough for every stage's smoke profile).
SYNTHETIC_USERS, SYNTHETIC_ITEMS, SYNTHETIC_SEED = 200, 60, 0
# ML-1M after the 5-core filter, as the SASRec/BERT4Rec/GRO papers report it (STUDY.md).
ML1M_EXPECTED_COUNTS = {"users": 6_040, "items": 3_416, "interactions": 999_611}
SUMS_FILE = "SHA256SUMS"


def check_name(name: str) -> str:
    if name not in DATASET_NAMES:
        raise ValueError(f"unknown dataset {name!r}; expected one of {', '.join(DATASET_NAMES)}")
    return name


def resolve_mirror(mirror: Path | str | None) -> Path | None:
    """The mirror folder: the argument, else $RECSEC_DATA_MIRROR, else None."""
    if mirror is not None and str(mirror) != "":
        path = Path(mirror)
    elif os.environ.get(MIRROR_ENV):
        path = Path(os.environ[MIRROR_ENV])
    else:
        return None
    if not path.is_dir():
        raise FileNotFoundError(f"mirror folder {path} does not exist (from the 'mirror' argument or ${MIRROR_ENV})")
    return path


def check_data_dir(data_dir: Path) -> Path:
    """``data_dir`` as a Path; ValueError naming the parameter when it exists but is not a folder."""
    data_dir = Path(data_dir)
    if data_dir.exists() and not data_dir.is_dir():
        raise ValueError(f"parameter 'data_dir' (--data-dir): {data_dir} is a file, not a folder")
    return data_dir


# --------------------------------------------------------------------------- SHA256SUMS


def read_sums(path: Path) -> dict[str, tuple[str, int]]:
    """A ``sha256sum`` file: {file name: (lower-case hex digest, line number)}; malformed lines name file:line."""
    sums: dict[str, tuple[str, int]] = {}
    with open(path, encoding="utf-8", errors="replace") as handle:
        for line_no, line in enumerate(handle, start=1):
            text = line.strip()
            if not text or text.startswith("#"):
                continue
            digest, _, name = text.partition(" ")
            name = name.strip().lstrip("*")  # "hash  name" (text mode) or "hash *name" (binary mode)
            if len(digest) != 64 or any(c not in "0123456789abcdefABCDEF" for c in digest) or not name:
                raise ValueError(f"{path}:{line_no}: expected '<64 hex digits>  <file name>', got {text!r}")
            sums[name] = (digest.lower(), line_no)
    return sums


def verify_against_sums(files: list[Path], hashes: dict[Path, str] | None = None) -> None:
    """Raise ChecksumError naming the file when a ``SHA256SUMS`` beside it lists another digest.

    ``hashes`` may hold files' SHA-256 already computed; the others are
    computed here, and only for files that a ``SHA256SUMS`` lists (files
    without one beside them are not checked).
    """
    for path in files:
        sums_path = path.parent / SUMS_FILE
        if not sums_path.is_file():
            continue
        listed = read_sums(sums_path).get(path.name)
        if listed is None:
            continue
        expected, line_no = listed
        actual = (hashes or {}).get(path) or cache.sha256_file(path)
        if actual != expected:
            raise ChecksumError(f"{path}: SHA-256 {actual} does not match {sums_path}:{line_no} "
                                f"({expected}); the copy is damaged or not the listed file")
        log.info("%s: SHA-256 matches %s", path, sums_path)


# --------------------------------------------------------------------------- locating the source


@dataclass(frozen=True)
class Located:
    """Where the raw data of a dataset was found, before it is read."""

    path: Path  # a folder holding one of the layouts, or a zip archive
    origin: str  # "data_dir", "mirror" or "generated"
    is_zip: bool = False

    def files(self, name: str) -> list[Path]:
        """The files whose contents define the data: the zip, or the layout's files in the folder."""
        if self.is_zip:
            return [self.path]
        _, interactions, movies = detect_layout(name, self.path)
        optional = [self.path / "u.genre"] if interactions.name == "u.data" else []
        return [interactions, *(p for p in [movies, *optional] if p.is_file())]


def _mirror_candidates(name: str, mirror: Path) -> list[Path]:
    """Folders in the mirror that may hold the dataset's files, most specific first."""
    return [mirror / name, mirror / name / name, mirror]


def locate_source(name: str, data_dir: Path, mirror: Path | str | None,
                  skip_data_dir: bool = False) -> tuple[Located | None, list[str]]:
    """(the local copy of ``name``, the places looked in); the copy is None when nothing is found.

    Order: ``<data_dir>/<name>/``, ``<data_dir>/<name>.zip`` (unless
    ``skip_data_dir``), then the mirror's folders and zips. "synthetic" is
    generated into ``<data_dir>/synthetic/`` when absent.
    """
    check_name(name)
    data_dir = Path(data_dir)
    if name == "synthetic":
        folder = data_dir / "synthetic"
        if detect_layout(name, folder) is None:
            write_synthetic_files(folder, "ml-1m", num_users=SYNTHETIC_USERS, num_items=SYNTHETIC_ITEMS,
                                  seed=SYNTHETIC_SEED)
        return Located(folder, "generated"), [str(folder)]
    spec = ARCHIVES[name]
    looked: list[str] = []
    if not skip_data_dir:
        looked += [str(data_dir / name), str(data_dir / spec.filename)]
        if detect_layout(name, data_dir / name) is not None:
            return Located(data_dir / name, "data_dir"), looked
        if (data_dir / spec.filename).is_file():
            return Located(data_dir / spec.filename, "data_dir", is_zip=True), looked
    mirror_dir = resolve_mirror(mirror)
    if mirror_dir is None:
        looked.append(f"no mirror (--mirror / ${MIRROR_ENV} not set)")
        return None, looked
    for folder in _mirror_candidates(name, mirror_dir):
        looked.append(str(folder))
        if detect_layout(name, folder) is not None:
            return Located(folder, "mirror"), looked
    for zip_path in (mirror_dir / spec.filename, mirror_dir / name / spec.filename):
        looked.append(str(zip_path))
        if zip_path.is_file():
            return Located(zip_path, "mirror", is_zip=True), looked
    return None, looked


def source_hashes(files: list[Path], manifest: dict | None = None) -> dict[Path, str]:
    """SHA-256 of each file, checked against any ``SHA256SUMS`` beside it.

    A file recorded in ``manifest`` with the same path, size and modification
    time is not read again: its recorded digest is used.
    """
    known = {}
    for record in (manifest or {}).get("sources", []):
        if {"path", "size", "mtime_ns", "sha256"} <= set(record):
            known[record["path"]] = record
    hashes = {}
    for path in files:
        stat = path.stat()
        record = known.get(str(path.resolve()))
        if record and record["size"] == stat.st_size and record["mtime_ns"] == stat.st_mtime_ns:
            hashes[path] = record["sha256"]
        else:
            hashes[path] = cache.sha256_file(path)
    verify_against_sums(files, hashes)
    return hashes


# --------------------------------------------------------------------------- reading


def _read_from(name: str, folder: Path, origin: str) -> RawData:
    raw = read_folder(name, folder)
    verify_against_sums(list(raw.files))
    source = f"{origin}:{raw.files[0]} ({raw.form})"
    log.info("%s: reading %s", name, source)
    return dataclasses.replace(raw, source=source)


def _from_zip(name: str, zip_path: Path, data_dir: Path, origin: str) -> RawData:
    """Extract a zip (from data_dir or the mirror) into data_dir/<name>/ and read it."""
    spec = ARCHIVES.get(name)
    verdict = "not an official archive"
    if spec is not None:
        hashes = file_hashes(zip_path)
        verify_against_sums([zip_path], {zip_path: hashes["sha256"]})
        official = zip_path.stat().st_size == spec.size and hashes["md5"] == spec.md5
        verdict = "official checksum verified" if official else "differs from the official archive"
        if not official:
            log.warning("%s: size/md5 differ from the official %s; using it anyway", zip_path, spec.filename)
    folder = extract_archive(zip_path, data_dir, name, spec.folder if spec else name)
    raw = read_folder(name, folder)
    source = f"{origin}-zip:{zip_path} ({raw.form}, {verdict})"
    log.info("%s: reading %s", name, source)
    return dataclasses.replace(raw, source=source, files=(Path(zip_path), *raw.files))


def _unavailable(name: str, looked: list[str], why: str) -> DataUnavailableError:
    return DataUnavailableError(f"{name}: no data found (looked in {', '.join(looked)}) and {why}; "
                                f"give a MovieLens copy with --mirror DIR or ${MIRROR_ENV}")


def load_raw(name: str, data_dir: Path = Path("data"), mirror: Path | str | None = None,
             base_url: str = DEFAULT_BASE_URL, download: bool = True, force: bool = False) -> RawData:
    """Read the raw interactions and movies of ``name`` (steps 2-4 of the module docstring).

    The analysis stage uses this for what preprocessing drops (ratings, timestamps).
    ``force`` skips the copies in ``data_dir`` (the mirror is read, or the archive downloaded, again).
    """
    data_dir = check_data_dir(data_dir)
    located, looked = locate_source(name, data_dir, mirror, skip_data_dir=force)
    if located is not None and located.is_zip:
        return _from_zip(name, located.path, data_dir, located.origin)
    if located is not None:
        return _read_from(name, located.path, located.origin)
    if not download:
        raise _unavailable(name, looked, "downloading is off")
    spec = ARCHIVES[name]
    try:
        folder = fetch_dataset(name, data_dir, base_url, force=force)
    except (ConnectionError, FileNotFoundError) as exc:  # retries spent, or the server has no such file
        raise _unavailable(name, looked, f"the download failed ({exc})") from exc
    raw = _read_from(name, folder, "download")
    return dataclasses.replace(raw, files=(data_dir / spec.filename, *raw.files))


def check_expected_counts(dataset: SequenceDataset, min_count: int) -> dict[str, tuple[int, int]]:
    """{count: (expected, found)} where ML-1M (5-core) differs from the published figures; logged as a warning."""
    if dataset.name != "ml-1m" or min_count != 5:
        return {}
    found = {"users": dataset.num_users, "items": dataset.num_items, "interactions": dataset.num_interactions}
    differing = {key: (expected, found[key]) for key, expected in ML1M_EXPECTED_COUNTS.items()
                 if found[key] != expected}
    if differing:
        shown = ", ".join(f"{key} {got:,} (expected {expected:,})" for key, (expected, got) in differing.items())
        log.warning("ml-1m from %s has %s after the 5-core filter: not the ML-1M of the papers; results will "
                    "not be comparable", dataset.source, shown)
    return differing


def prepare_dataset(name: str, data_dir: Path = Path("data"), mirror: Path | str | None = None,
                    min_count: int = 5, max_len: int = 200, base_url: str = DEFAULT_BASE_URL,
                    download: bool = True, force: bool = False) -> SequenceDataset:
    """The processed dataset ``name`` (5-core, chronological, ids 1..n), from the cache when valid.

    The cache is valid only for the source found now (same file contents); with
    no local source it is used while the files it was built from are unchanged.
    ``force`` rebuilds it from a fresh copy (see ``load_raw``).
    """
    check_name(name)
    if min_count < 1:
        raise ValueError(f"parameter 'min_count' must be >= 1, got {min_count}")
    if max_len < 1:
        raise ValueError(f"parameter 'max_len' must be >= 1, got {max_len}")
    data_dir = check_data_dir(data_dir)
    params = {"min_count": min_count, "max_len": max_len}
    folder = cache.cache_dir(data_dir, name)
    if not force:
        located, _ = locate_source(name, data_dir, mirror)
        hashes = None
        if located is not None:
            try:
                manifest = cache.read_manifest(folder)
            except ValueError:
                manifest = None
            hashes = set(source_hashes(located.files(name), manifest).values())
        cached = cache.load_cache(folder, name, params, max_len, source_sha256=hashes)
        if cached is not None:
            check_expected_counts(cached, min_count)
            return cached

    raw = load_raw(name, data_dir, mirror, base_url=base_url, download=download, force=force)
    dataset = build_sequence_dataset(raw, min_count=min_count, max_len=max_len, source=raw.source)
    extra = {
        "raw_interactions": len(raw.interactions),
        "raw_users": int(raw.interactions["user"].nunique()),
        "raw_items": int(raw.interactions["item"].nunique()),
    }
    manifest = cache.save_cache(dataset, folder, params, list(raw.files), raw.source, form=raw.form,
                                extra_counts=extra)
    log.info("%s: %d users, %d items, %d interactions (cache %s)", name, dataset.num_users,
             dataset.num_items, dataset.num_interactions, folder)
    check_expected_counts(dataset, min_count)
    return dataclasses.replace(dataset, fingerprint=manifest["fingerprint"])


def dataset_manifest(name: str, data_dir: Path = Path("data")) -> dict | None:
    """The cache manifest of ``name`` (counts, source, fingerprint), or None before the first prepare."""
    return cache.read_manifest(cache.cache_dir(Path(data_dir), check_name(name)))
