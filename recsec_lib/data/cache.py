"""The processed-dataset cache: ``<data_dir>/processed/<name>/``.

Files:
    sequences.npz   user_raw_ids, item_raw_ids, items_flat, offsets (SequenceDataset arrays)
    items.json      the items table (internal id, title, year, genres)
    manifest.json   written last: format version, parameters, source files with
                    size / mtime / sha256, counts, the sha256 of the two files
                    above, and the fingerprint that becomes
                    SequenceDataset.fingerprint (checkpoints record it)

The cache is used only while it still describes the same data: same
parameters, its own files intact, and the same source. The source is judged
by content: ``prepare`` locates the files it would read now and passes their
SHA-256 (``source_sha256``); each must be one the cache was built from, so a
cache built from a bad mirror is not reused when a good one is given. When no
source is found locally (e.g. the mirror is not named this time), every
recorded source file must be unchanged (size and mtime first; on a mismatch
the sha256 decides, so a touched-but-identical file does not force a rebuild).
Anything else rebuilds it.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from recsec_lib.data.dataset import SequenceDataset
from recsec_lib.common.files import atomic_path, read_json, write_json_atomic

log = logging.getLogger(__name__)

CACHE_FORMAT = 2  # bump when the cache layout or the preprocessing changes
ARRAYS = ("user_raw_ids", "item_raw_ids", "items_flat", "offsets")


def cache_dir(data_dir: Path, name: str) -> Path:
    return Path(data_dir) / "processed" / name


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def source_record(path: Path) -> dict[str, Any]:
    """How a source file is recorded in the manifest."""
    path = Path(path).resolve()
    stat = path.stat()
    return {"path": str(path), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "sha256": sha256_file(path)}


def _source_unchanged(record: dict[str, Any]) -> bool:
    path = Path(record["path"])
    if not path.is_file():
        return False
    stat = path.stat()
    if stat.st_size == record["size"] and stat.st_mtime_ns == record["mtime_ns"]:
        return True
    return stat.st_size == record["size"] and sha256_file(path) == record["sha256"]


def fingerprint_of(manifest: dict[str, Any]) -> str:
    """Short hash of what defines the data: source contents, parameters, counts, cache format."""
    basis = {
        "format": manifest["format"],
        "name": manifest["name"],
        "params": manifest["params"],
        "sources": sorted(s["sha256"] for s in manifest["sources"]),
        "counts": manifest["counts"],
    }
    return hashlib.sha256(json.dumps(basis, sort_keys=True).encode()).hexdigest()[:16]


def _items_to_records(items: pd.DataFrame) -> list[dict[str, Any]]:
    return [{"item": int(idx), "title": row.title, "year": None if pd.isna(row.year) else int(row.year),
             "genres": list(row.genres)} for idx, row in items.iterrows()]


def _items_from_records(records: list[dict[str, Any]]) -> pd.DataFrame:
    frame = pd.DataFrame({
        "title": [r["title"] for r in records],
        "year": pd.array([r["year"] for r in records], dtype="Int64"),
        "genres": [tuple(r["genres"]) for r in records],
    }, index=pd.Index([r["item"] for r in records], name="item", dtype="int64"))
    return frame


def _save_npz_atomic(path: Path, arrays: dict[str, np.ndarray]) -> None:
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        np.savez(handle, **arrays)


def save_cache(dataset: SequenceDataset, folder: Path, params: dict[str, Any], sources: list[Path],
               source: str, form: str = "", extra_counts: dict[str, int] | None = None) -> dict[str, Any]:
    """Write the cache for ``dataset``; returns the manifest (with its fingerprint)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    manifest_path = folder / "manifest.json"
    manifest_path.unlink(missing_ok=True)  # the cache is invalid until the new manifest lands
    _save_npz_atomic(folder / "sequences.npz", {name: getattr(dataset, name) for name in ARRAYS})
    write_json_atomic(folder / "items.json", _items_to_records(dataset.items))
    manifest = {
        "format": CACHE_FORMAT,
        "name": dataset.name,
        "params": params,
        "source": source,
        "form": form,
        "sources": [source_record(p) for p in sources],
        "counts": {"users": dataset.num_users, "items": dataset.num_items,
                   "interactions": dataset.num_interactions, **(extra_counts or {})},
        "files": {name: sha256_file(folder / name) for name in ("sequences.npz", "items.json")},
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
    manifest["fingerprint"] = fingerprint_of(manifest)
    write_json_atomic(manifest_path, manifest)
    return manifest


def read_manifest(folder: Path) -> dict[str, Any] | None:
    path = Path(folder) / "manifest.json"
    return read_json(path) if path.is_file() else None


def load_cache(folder: Path, name: str, params: dict[str, Any], max_len: int,
               source_sha256: set[str] | None = None) -> SequenceDataset | None:
    """The cached dataset, or None (with the reason logged) when the cache is missing or stale.

    ``source_sha256``: the SHA-256 of the source files found now (None when none
    was found); see the module docstring.
    """
    folder = Path(folder)
    try:
        manifest = read_manifest(folder)
    except ValueError as exc:
        log.warning("cache %s: unreadable manifest (%s): rebuilding", folder, exc)
        return None
    if manifest is None:
        return None
    reason = None
    if manifest.get("format") != CACHE_FORMAT or manifest.get("name") != name:
        reason = "made by another version"
    elif manifest.get("params") != params:
        reason = f"parameters changed ({manifest.get('params')} -> {params})"
    elif source_sha256 is not None and not source_sha256 <= {record["sha256"] for record in manifest["sources"]}:
        reason = "a source file changed: the files found now (SHA-256) are not the ones it was built from"
    elif source_sha256 is None and not all(_source_unchanged(record) for record in manifest["sources"]):
        reason = "a source file changed or disappeared"
    elif any(not (folder / f).is_file() or sha256_file(folder / f) != h for f, h in manifest["files"].items()):
        reason = "cache files damaged"
    if reason:
        log.info("cache %s is stale: %s; rebuilding", folder, reason)
        return None
    with np.load(folder / "sequences.npz") as npz:
        arrays = {key: npz[key].astype(np.int64) for key in ARRAYS}
    items = _items_from_records(read_json(folder / "items.json"))
    log.info("%s: loaded from cache %s (%s)", name, folder, manifest["source"])
    return SequenceDataset(name=name, num_items=len(arrays["item_raw_ids"]) - 1, max_len=max_len,
                           items=items, source=manifest["source"], fingerprint=manifest["fingerprint"], **arrays)
