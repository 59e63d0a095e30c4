"""Downloading the MovieLens archives from GroupLens, safely.

A download is streamed into a temporary file beside its destination, checked
(size, then MD5 and SHA-256 where known) and only then renamed to
``<data_dir>/<name>.zip``; extraction goes into a temporary folder that is
renamed to ``<data_dir>/<name>/`` when complete. So a partial, truncated or
corrupted transfer never becomes "the data", and a failure leaves nothing
behind in ``data_dir``. Network errors and truncated transfers are retried with
exponential backoff; a checksum mismatch on a complete file is not (it would
fail again) and raises at once, and neither is a host name that cannot be
resolved (offline: the caller says to use a mirror).

Known archives: the MD5 sums are the ones GroupLens publishes
(``<name>.zip.md5`` beside each archive); sizes are those its server reports.
GroupLens publishes no SHA-256. The ml-20m SHA-256 comes from a public record
of a download whose MD5 and size matched the official ones; for ml-1m and
ml-100k no SHA-256 could be confirmed, so ``sha256`` is None there and size +
MD5 are checked (the SHA-256 of the source files is recorded in the cache
manifest either way).
"""

from __future__ import annotations

import hashlib
import http.client
import logging
import os
import shutil
import socket
import tempfile
import time
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path

from tqdm.auto import tqdm

from recsec_lib.common.files import give_normal_permissions

log = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://files.grouplens.org/datasets/movielens"
CHUNK_BYTES = 1 << 20


@dataclass(frozen=True)
class ArchiveSpec:
    """What a good archive looks like; None = not known, not checked."""

    filename: str  # e.g. "ml-1m.zip", appended to the base URL
    folder: str  # top-level folder inside the zip, e.g. "ml-1m"
    size: int | None = None  # bytes
    md5: str | None = None
    sha256: str | None = None


ARCHIVES: dict[str, ArchiveSpec] = {
    "ml-1m": ArchiveSpec("ml-1m.zip", "ml-1m", size=5_917_549, md5="c4d9eecfca2ab87c1945afe126590906"),
    "ml-100k": ArchiveSpec("ml-100k.zip", "ml-100k", size=4_924_029, md5="0e33842e24a9c977be4e0107933c0723"),
    "ml-20m": ArchiveSpec("ml-20m.zip", "ml-20m", size=198_702_078, md5="cd245b17a1ae2cc31bb14903e1204af3",
                          sha256="96f243c338a8665f6bcc89c53edf6ee39162a846940de6b7c8c48aeada765ff3"),
}


class ChecksumError(ValueError):
    """The downloaded or mirrored archive is not the expected file."""


class _Truncated(OSError):
    """The server sent fewer bytes than announced (retried)."""


def file_hashes(path: Path) -> dict[str, str]:
    """MD5 and SHA-256 of a file, read in chunks."""
    md5, sha = hashlib.md5(), hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(CHUNK_BYTES), b""):
            md5.update(chunk)
            sha.update(chunk)
    return {"md5": md5.hexdigest(), "sha256": sha.hexdigest()}


def verify_archive(path: Path, spec: ArchiveSpec) -> dict[str, str]:
    """Raise ChecksumError unless ``path`` has the spec's size and checksums; returns its hashes."""
    path = Path(path)
    size = path.stat().st_size
    if spec.size is not None and size != spec.size:
        raise ChecksumError(f"{spec.filename}: expected {spec.size:,} bytes, got {size:,}")
    hashes = file_hashes(path)
    for kind in ("md5", "sha256"):
        expected = getattr(spec, kind)
        if expected is not None and hashes[kind] != expected.lower():
            raise ChecksumError(f"{spec.filename}: {kind} mismatch (expected {expected}, got {hashes[kind]})")
    return hashes


def _stream_to(url: str, handle, timeout_s: float, label: str, progress: bool) -> int:
    """Copy the body of ``url`` into ``handle``; raise _Truncated if it ends early."""
    with urllib.request.urlopen(url, timeout=timeout_s) as response:
        announced = response.headers.get("Content-Length")
        total = int(announced) if announced is not None else None
        received = 0
        with tqdm(total=total, unit="B", unit_scale=True, desc=label, disable=None if progress else True) as bar:
            while True:
                try:
                    chunk = response.read(CHUNK_BYTES)
                except http.client.IncompleteRead as exc:
                    raise _Truncated(f"connection closed after {received + len(exc.partial):,} bytes") from exc
                if not chunk:
                    break
                handle.write(chunk)
                received += len(chunk)
                bar.update(len(chunk))
    if total is not None and received < total:
        raise _Truncated(f"received {received:,} of {total:,} bytes")
    return received


def download_archive(name: str, data_dir: Path, base_url: str = DEFAULT_BASE_URL, spec: ArchiveSpec | None = None,
                     attempts: int = 3, backoff_s: float = 2.0, timeout_s: float = 60.0,
                     progress: bool = True) -> Path:
    """Download ``<base_url>/<name>.zip`` to ``<data_dir>/<name>.zip``, verified; returns that path.

    ``spec`` defaults to the ARCHIVES entry (tests pass their own). Retries
    ``attempts`` times on network errors and truncated transfers, waiting
    backoff_s, 2*backoff_s, ... between tries.
    """
    spec = spec or ARCHIVES.get(name)
    if spec is None:
        raise ValueError(f"no download known for dataset {name!r}; expected one of {sorted(ARCHIVES)}")
    if attempts < 1:
        raise ValueError(f"parameter 'attempts' must be >= 1, got {attempts}")
    data_dir = Path(data_dir)
    created_dir = not data_dir.exists()
    data_dir.mkdir(parents=True, exist_ok=True)
    try:
        return _download_with_retries(spec, data_dir, base_url, attempts, backoff_s, timeout_s, progress)
    except BaseException:
        if created_dir and not any(data_dir.iterdir()):
            data_dir.rmdir()  # leave no trace of a failed first download
        raise


def _download_with_retries(spec: ArchiveSpec, data_dir: Path, base_url: str, attempts: int, backoff_s: float,
                           timeout_s: float, progress: bool) -> Path:
    target = data_dir / spec.filename
    url = f"{base_url.rstrip('/')}/{spec.filename}"
    last_error: Exception | None = None
    for attempt in range(1, attempts + 1):
        fd, tmp_name = tempfile.mkstemp(dir=data_dir, prefix=f".{spec.filename}.", suffix=".part")
        give_normal_permissions(tmp_name)  # the zip is an ordinary file, not a private one
        tmp = Path(tmp_name)
        try:
            with os.fdopen(fd, "wb") as handle:
                _stream_to(url, handle, timeout_s, spec.filename, progress)
            verify_archive(tmp, spec)
            os.replace(tmp, target)
            log.info("downloaded %s to %s", url, target)
            return target
        except urllib.error.HTTPError as exc:
            last_error = exc
            if exc.code < 500:  # 404 and friends will not get better
                raise FileNotFoundError(f"{url}: HTTP {exc.code} {exc.reason}") from exc
        except urllib.error.URLError as exc:
            if isinstance(exc.reason, socket.gaierror):  # no name resolution: offline, retrying will not help
                raise ConnectionError(f"{url}: cannot resolve the host ({exc.reason.strerror}); offline?") from exc
            last_error = exc
        except OSError as exc:  # includes _Truncated, timeouts, resets
            last_error = exc
        finally:
            tmp.unlink(missing_ok=True)
        if attempt < attempts:
            wait = backoff_s * 2 ** (attempt - 1)
            log.warning("download of %s failed (%s); retry %d/%d in %.1f s", url, last_error, attempt,
                        attempts - 1, wait)
            time.sleep(wait)
    raise ConnectionError(f"{url}: download failed after {attempts} attempts ({last_error})")


def _safe_members(archive: zipfile.ZipFile, zip_path: Path) -> list[zipfile.ZipInfo]:
    """Members of the zip, refusing absolute paths and '..' (a zip must not write outside its folder)."""
    members = archive.infolist()
    for member in members:
        parts = Path(member.filename).parts
        if member.filename.startswith(("/", "\\")) or ".." in parts:
            raise ValueError(f"{zip_path}: unsafe path in archive: {member.filename!r}")
    return members


def extract_archive(zip_path: Path, data_dir: Path, name: str, folder: str | None = None) -> Path:
    """Extract ``zip_path`` to ``<data_dir>/<name>/`` atomically; returns that folder.

    The zip's top folder ``folder`` (e.g. "ml-1m/") is stripped when present.
    The archive's CRCs are checked first; a failure leaves nothing behind.
    """
    zip_path, data_dir = Path(zip_path), Path(data_dir)
    target = data_dir / name
    data_dir.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=data_dir, prefix=f".{name}.", suffix=".extracting"))
    try:
        try:
            with zipfile.ZipFile(zip_path) as archive:
                bad = archive.testzip()
                if bad is not None:
                    raise ValueError(f"{zip_path}: corrupted member {bad!r} (CRC mismatch)")
                archive.extractall(tmp, members=_safe_members(archive, zip_path))
        except zipfile.BadZipFile as exc:
            raise ValueError(f"{zip_path}: not a valid zip archive ({exc})") from exc
        content = tmp / folder if folder and (tmp / folder).is_dir() else tmp
        old = None
        if target.exists():  # an incomplete earlier copy: move it aside, remove after the swap
            old = Path(tempfile.mkdtemp(dir=data_dir, prefix=f".{name}.", suffix=".old"))
            os.replace(target, old / name)
        give_normal_permissions(content)  # mkdtemp's folder is private when the zip has no top folder
        os.replace(content, target)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
        return target
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def fetch_dataset(name: str, data_dir: Path, base_url: str = DEFAULT_BASE_URL, spec: ArchiveSpec | None = None,
                  attempts: int = 3, backoff_s: float = 2.0, progress: bool = True, force: bool = False) -> Path:
    """Download (unless a verified zip is already there, or ``force``) and extract; returns ``<data_dir>/<name>/``.

    With ``force`` the archive is downloaded again; the old zip is replaced
    only once the new one is verified.
    """
    spec = spec or ARCHIVES.get(name)
    if spec is None:
        raise ValueError(f"no download known for dataset {name!r}; expected one of {sorted(ARCHIVES)}")
    zip_path = Path(data_dir) / spec.filename
    if zip_path.is_file() and not force:
        try:
            verify_archive(zip_path, spec)
        except ChecksumError as exc:
            log.warning("%s (%s): downloading again", zip_path, exc)
            zip_path.unlink()
    if force or not zip_path.is_file():
        zip_path = download_archive(name, data_dir, base_url, spec=spec, attempts=attempts,
                                    backoff_s=backoff_s, progress=progress)
    return extract_archive(zip_path, data_dir, name, spec.folder)
