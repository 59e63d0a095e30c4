"""Run folders: where a study run keeps its parameters, provenance and metrics.

Layout of ``outputs/<run-id>/`` (built as ``outputs/<run-id>.partial/`` and
renamed by ``run_all.sh`` once every stage has finished):

    params.json            parameters of the run (dataset, seed, profile, ...)
    environment.json       git commit, Python and package versions
    headline.json          the study's headline figures, merged from every stage
    <stage>/metrics.json   one per stage: its figures, wall time, peak memory
    <stage>/...            figures (PNG), checkpoints, tables of that stage
    notebooks/, html/      executed notebooks and their HTML export
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import metadata
from pathlib import Path
from typing import Any

PACKAGES = ("torch", "numpy", "pandas", "matplotlib", "seaborn", "tqdm", "papermill", "nbconvert", "jupytext")


def write_json_atomic(path: str | os.PathLike, payload: Any) -> None:
    """Write JSON to a temporary file beside ``path`` and rename it into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as handle:
            json.dump(payload, handle, indent=2, sort_keys=True, default=_json_default)
            handle.write("\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


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


def git_commit(repo: str | os.PathLike | None = None) -> str:
    """The checkout's commit (with '-dirty' if it has local changes), or 'unknown'."""
    cwd = Path(repo) if repo else Path(__file__).resolve().parent.parent
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"], cwd=cwd, capture_output=True, text=True
        ).stdout.strip()
        return commit + ("-dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def environment_info() -> dict[str, Any]:
    """Provenance recorded in every run folder."""
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return {
        "git_commit": git_commit(),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "packages": versions,
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }


def peak_memory_mb() -> float:
    """Peak resident memory of this process so far, in MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


@contextmanager
def stage_timer() -> Iterator[dict[str, float]]:
    """Measure a stage: yields a dict filled with wall_seconds and peak_memory_mb on exit."""
    record: dict[str, float] = {}
    start = time.perf_counter()
    try:
        yield record
    finally:
        record["wall_seconds"] = round(time.perf_counter() - start, 3)
        record["peak_memory_mb"] = round(peak_memory_mb(), 1)


def write_stage_metrics(run_dir: str | os.PathLike, stage: str, metrics: dict[str, Any],
                        headline: dict[str, Any] | None = None) -> Path:
    """Save ``<run_dir>/<stage>/metrics.json`` and merge ``headline`` into headline.json."""
    run_dir = Path(run_dir)
    path = run_dir / stage / "metrics.json"
    write_json_atomic(path, metrics)
    if headline:
        merge_headline(run_dir / "headline.json", headline)
    return path


def merge_headline(path: str | os.PathLike, values: dict[str, Any]) -> None:
    """Add or replace keys of a flat headline JSON object."""
    path = Path(path)
    current = read_json(path) if path.exists() else {}
    for key, value in values.items():
        if isinstance(value, (dict, list)):
            raise ValueError(f"headline value {key!r} must be a scalar, got {type(value).__name__}")
        current[key] = value
    write_json_atomic(path, current)
