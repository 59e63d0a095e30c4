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
"""

from __future__ import annotations

import dataclasses
import logging
import os
from pathlib import Path

from recsec_lib.data import cache
from recsec_lib.data.dataset import SequenceDataset
from recsec_lib.data.download import ARCHIVES, DEFAULT_BASE_URL, extract_archive, fetch_dataset, file_hashes
from recsec_lib.data.formats import RawData, detect_layout, read_folder
from recsec_lib.data.preprocess import build_sequence_dataset
from recsec_lib.data.synthetic import write_synthetic_files

log = logging.getLogger(__name__)

DATASET_NAMES = ("ml-1m", "ml-100k", "ml-20m", "synthetic")
MIRROR_ENV = "RECSEC_DATA_MIRROR"
# Size of the generated "synthetic" dataset (big enough for every stage's smoke profile).
SYNTHETIC_USERS, SYNTHETIC_ITEMS, SYNTHETIC_SEED = 200, 60, 0


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


def _read_from(name: str, folder: Path, origin: str) -> RawData:
    raw = read_folder(name, folder)
    source = f"{origin}:{raw.files[0]} ({raw.form})"
    log.info("%s: reading %s", name, source)
    return dataclasses.replace(raw, source=source)


def _from_zip(name: str, zip_path: Path, data_dir: Path, origin: str) -> RawData:
    """Extract a zip (from data_dir or the mirror) into data_dir/<name>/ and read it."""
    spec = ARCHIVES.get(name)
    verdict = "not an official archive"
    if spec is not None:
        hashes = file_hashes(zip_path)
        official = zip_path.stat().st_size == spec.size and hashes["md5"] == spec.md5
        verdict = "official checksum verified" if official else "differs from the official archive"
        if not official:
            log.warning("%s: size/md5 differ from the official %s; using it anyway", zip_path, spec.filename)
    folder = extract_archive(zip_path, data_dir, name, spec.folder if spec else name)
    raw = read_folder(name, folder)
    source = f"{origin}-zip:{zip_path} ({raw.form}, {verdict})"
    log.info("%s: reading %s", name, source)
    return dataclasses.replace(raw, source=source, files=(Path(zip_path), *raw.files))


def _mirror_candidates(name: str, mirror: Path) -> list[Path]:
    """Folders in the mirror that may hold the dataset's files, most specific first."""
    return [mirror / name, mirror / name / name, mirror]


def load_raw(name: str, data_dir: Path = Path("data"), mirror: Path | str | None = None,
             base_url: str = DEFAULT_BASE_URL, download: bool = True) -> RawData:
    """Read the raw interactions and movies of ``name`` (steps 2-4 of the module docstring).

    The analysis stage uses this for what preprocessing drops (ratings, timestamps).
    """
    check_name(name)
    data_dir = Path(data_dir)
    if name == "synthetic":
        folder = data_dir / "synthetic"
        if detect_layout(name, folder) is None:
            write_synthetic_files(folder, "ml-1m", num_users=SYNTHETIC_USERS, num_items=SYNTHETIC_ITEMS,
                                  seed=SYNTHETIC_SEED)
        return _read_from(name, folder, "generated")

    looked = [str(data_dir / name)]
    if detect_layout(name, data_dir / name) is not None:
        return _read_from(name, data_dir / name, "data_dir")
    spec = ARCHIVES[name]
    if (data_dir / spec.filename).is_file():
        return _from_zip(name, data_dir / spec.filename, data_dir, "data_dir")

    mirror_dir = resolve_mirror(mirror)
    if mirror_dir is not None:
        for folder in _mirror_candidates(name, mirror_dir):
            looked.append(str(folder))
            if detect_layout(name, folder) is not None:
                return _read_from(name, folder, "mirror")
        for zip_path in (mirror_dir / spec.filename, mirror_dir / name / spec.filename):
            looked.append(str(zip_path))
            if zip_path.is_file():
                return _from_zip(name, zip_path, data_dir, "mirror")

    if not download:
        raise FileNotFoundError(f"{name}: no data found (looked in {', '.join(looked)}) and download=False; "
                                f"set --mirror / ${MIRROR_ENV} or allow the download")
    folder = fetch_dataset(name, data_dir, base_url)
    raw = _read_from(name, folder, "download")
    return dataclasses.replace(raw, files=(data_dir / spec.filename, *raw.files))


def prepare_dataset(name: str, data_dir: Path = Path("data"), mirror: Path | str | None = None,
                    min_count: int = 5, max_len: int = 200, base_url: str = DEFAULT_BASE_URL,
                    download: bool = True) -> SequenceDataset:
    """The processed dataset ``name`` (5-core, chronological, ids 1..n), from the cache when valid."""
    check_name(name)
    if min_count < 1:
        raise ValueError(f"parameter 'min_count' must be >= 1, got {min_count}")
    if max_len < 1:
        raise ValueError(f"parameter 'max_len' must be >= 1, got {max_len}")
    data_dir = Path(data_dir)
    params = {"min_count": min_count, "max_len": max_len}
    folder = cache.cache_dir(data_dir, name)
    cached = cache.load_cache(folder, name, params, max_len)
    if cached is not None:
        return cached

    raw = load_raw(name, data_dir, mirror, base_url=base_url, download=download)
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
    return dataclasses.replace(dataset, fingerprint=manifest["fingerprint"])


def dataset_manifest(name: str, data_dir: Path = Path("data")) -> dict | None:
    """The cache manifest of ``name`` (counts, source, fingerprint), or None before the first prepare."""
    return cache.read_manifest(cache.cache_dir(Path(data_dir), check_name(name)))
