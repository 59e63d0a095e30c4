"""Writing files so that a reader never sees half of one, with normal permissions.

Every writer of the library goes through ``atomic_path`` (a temporary name beside
the target, renamed onto it when the block succeeds), ``write_json_atomic`` or
``write_text_atomic``. Layer 0: imports nothing from the rest of ``recsec_lib``.
"""

from __future__ import annotations
import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


def write_json_atomic(path: str | os.PathLike, payload: Any) -> None:
    """Write JSON to a temporary file beside ``path`` and rename it into place."""
    with atomic_path(path) as tmp, open(tmp, "w") as handle:
        json.dump(payload, handle, indent=2, sort_keys=True, default=_json_default)
        handle.write("\n")


def normal_file_mode() -> int:
    """The mode ``open()`` gives a new file: 0o666 less the umask (0o644 under the usual umask 022)."""
    return 0o666 & ~_umask()


def _umask() -> int:
    """This process's umask, read from /proc on Linux (setting it to read it would race other threads)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except OSError:
        pass
    umask = os.umask(0o022)  # elsewhere: the only portable way to read it is to set it, then put it back
    os.umask(umask)
    return umask


def give_normal_permissions(path: str | os.PathLike) -> None:
    """Make a temporary file (or folder) readable like any other before it is renamed into place.

    ``tempfile.mkstemp`` creates files readable by their owner only (0o600),
    ``tempfile.mkdtemp`` folders (0o700), and ``os.replace`` keeps that mode, so
    without this every result written atomically would be private to whoever
    ran the study. A folder gets 0o777 less the umask (0o755 usually).
    """
    mode = 0o777 & ~_umask() if os.path.isdir(path) else normal_file_mode()
    os.chmod(path, mode)


def _json_default(value: Any) -> Any:
    """numpy scalars and paths in metrics become plain JSON values."""
    if hasattr(value, "item"):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot store {type(value).__name__} in JSON")


def read_json(path: str | os.PathLike) -> Any:
    path = Path(path)
    try:
        with open(path) as handle:
            return json.load(handle)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}:{exc.lineno}: not valid JSON ({exc.msg})") from exc


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` if the block succeeds.

    For writers that want a file name (``DataFrame.to_csv``, ``Figure.savefig``):
    a reader never sees a half-written file, and a failed write leaves no debris.
    The temporary name keeps ``path``'s suffix so format-sniffing writers still work.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=f".tmp{path.suffix}")
    os.close(fd)
    try:
        yield Path(tmp)
        give_normal_permissions(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    """Write a text file (UTF-8) through a temporary name and ``os.replace``."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_csv_atomic(path: str | os.PathLike, frame, index: bool = False) -> None:
    """Write a pandas DataFrame as CSV through a temporary name and ``os.replace`` (a reader never sees half a table)."""
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=index)
