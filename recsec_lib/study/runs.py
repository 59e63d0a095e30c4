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
import fcntl
import json
import os
import platform
import re
import resource
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any
from recsec_lib.common.files import write_json_atomic, normal_file_mode, give_normal_permissions, read_json, atomic_path, write_text_atomic  # noqa: F401 (re-exported)

PACKAGES = ("torch", "numpy", "pandas", "matplotlib", "seaborn", "tqdm", "papermill", "nbconvert", "jupytext")



def git_commit(repo: str | os.PathLike | None = None) -> str:
    """The checkout's commit (with '-dirty' if it has local changes), or 'unknown'.

    What publishing writes (``results/`` and the README) does not count as a
    change: publishing one run must not mark the next run's code as dirty.
    """
    cwd = Path(repo) if repo else Path(__file__).resolve().parent.parent.parent
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no", "--", ".", ":(exclude)results",
             ":(exclude)README.md"], cwd=cwd, capture_output=True, text=True
        ).stdout.strip()
        return commit + ("-dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def same_code(first: str, second: str, repo: str | os.PathLike | None = None) -> bool:
    """Whether two commits hold the same code: they differ at most in what publishing writes (results/, README).

    Publishing a run commits results/, so a run resumed after its own
    publication sits at another commit of the same code. False when git cannot
    compare them (an unknown commit, no repository).
    """
    cwd = Path(repo) if repo else Path(__file__).resolve().parent.parent.parent
    first, second = first.removesuffix("-dirty"), second.removesuffix("-dirty")
    try:
        result = subprocess.run(["git", "diff", "--quiet", first, second, "--", ".", ":(exclude)results",
                                 ":(exclude)README.md"], cwd=cwd, capture_output=True)
    except OSError:
        return False
    return result.returncode == 0


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


RUNNER_WALL_KEY = "runner_wall_seconds"  # headline: the runner's wall time while running stages, every invocation
STAGE_HEADLINE = "headline.json"  # in a stage's folder: the headline keys that stage wrote (the stage cache keeps them)


def write_stage_metrics(run_dir: str | os.PathLike, stage: str, metrics: dict[str, Any],
                        headline: dict[str, Any] | None = None) -> Path:
    """Save ``<run_dir>/<stage>/metrics.json`` and merge ``headline`` into headline.json.

    The stage's own keys also go to ``<run_dir>/<stage>/headline.json``: stages
    may run at once (``run_all.sh --jobs``), so what one stage wrote cannot be
    told from a before/after look at the run's headline.
    """
    run_dir = Path(run_dir)
    path = run_dir / stage / "metrics.json"
    write_json_atomic(path, metrics)
    if headline:
        merge_headline(run_dir / stage / STAGE_HEADLINE, headline)
        merge_headline(run_dir / "headline.json", headline)
    return path


@contextmanager
def file_lock(path: str | os.PathLike) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``.<name>.lock`` beside ``path`` for a read-modify-write of ``path``.

    Stages running at once (separate processes) and the runner's threads merge
    into the same headline.json; without the lock two merges can interleave and
    one loses the other's keys.
    """
    path = Path(path)
    lock = path.with_name(f".{path.name}.lock")
    lock.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock


def merge_headline(path: str | os.PathLike, values: dict[str, Any]) -> None:
    """Add or replace keys of a flat headline JSON object (under ``file_lock``: safe for concurrent stages)."""
    path = Path(path)
    for key, value in values.items():
        if isinstance(value, (dict, list)):
            raise ValueError(f"headline value {key!r} must be a scalar, got {type(value).__name__}")
    with file_lock(path):
        current = read_json(path) if path.exists() else {}
        current.update(values)
        write_json_atomic(path, current)



def check_run_id(run_id: str) -> str:
    """A run id names a folder directly under the outputs folder: plain characters, no leading dot.

    Not ending in ``.partial`` or ``.lock`` either: those suffixes are the runner's
    (``<id>.partial`` is an unfinished run's folder, ``<id>.lock`` its lock).
    """
    if not re.fullmatch(r"[A-Za-z0-9_-][A-Za-z0-9._-]*", run_id):
        raise ValueError(f"run id {run_id!r}: use letters, digits, '.', '_' and '-' only, not starting with '.'")
    if run_id.endswith((".partial", ".lock")):
        raise ValueError(f"run id {run_id!r}: may not end in .partial or .lock (the suffixes of run folders "
                         f"and locks)")
    return run_id


class RunInUseError(RuntimeError):
    """Another live process holds the run's lock; the message names it and the lock file."""


@dataclass(frozen=True)
class RunLock:
    path: Path  # <outputs>/<run_id>.lock
    taken_over_from: str | None  # the holder named in a stale lock file whose process has ended, if any


@contextmanager
def run_lock(outputs: str | os.PathLike, run_id: str) -> Iterator[RunLock]:
    """Hold ``<outputs>/<run_id>.lock`` for the block, so that one process at a time computes into a run.

    Two processes computing into the same ``<run_id>.partial`` folder overwrite
    each other's results, and the second to finish crashes renaming it. The
    lock is an ``flock`` on a file that also names its holder (pid, host,
    start time) for the error message. The operating system drops an ``flock``
    when its process ends, however it ends, so the lock file of a killed run
    is stale by construction: the next run takes it over and says so. The lock
    sits beside the run folder, not in it, because the folder is renamed
    (``<id>.partial`` <-> ``<id>``) while the lock is held.
    """
    check_run_id(run_id)
    outputs = Path(outputs)
    outputs.mkdir(parents=True, exist_ok=True)
    path = outputs / f"{run_id}.lock"
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)  # the umask applies: a normal file
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _lock_holder(fd)
            os.close(fd)
            raise RunInUseError(f"run {run_id} is in use by {holder or 'another process'} (lock file {path}); "
                                f"wait for it to end, or stop it, then run the command again") from None
        # A holder that just finished removed the file we opened: lock the file that is there now instead.
        try:
            current = os.stat(path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            current = False
        if current:
            break
        os.close(fd)
    stale = _lock_holder(fd)
    os.ftruncate(fd, 0)
    os.pwrite(fd, json.dumps({"pid": os.getpid(), "host": platform.node(),
                              "started": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
                              "command": sys.argv}).encode() + b"\n", 0)
    try:
        yield RunLock(path, stale)
    finally:
        path.unlink(missing_ok=True)  # before unlocking, so a waiting process never locks a removed file
        os.close(fd)


def _lock_holder(fd: int) -> str | None:
    """'process <pid> on <host>, started <time>' from a lock file, or None when it is empty or unreadable."""
    text = os.pread(fd, 4096, 0).decode("utf-8", "replace").strip()
    if not text:
        return None
    try:
        info = json.loads(text)
        return f"process {info['pid']} on {info['host']}, started {info['started']}"
    except (ValueError, KeyError, TypeError):
        return f"the process named in it ({text[:80]!r})"


def create_run_folder(outputs: str | os.PathLike, run_id: str, params: dict[str, Any]) -> Path:
    """Make ``<outputs>/<run_id>.partial`` with params.json and environment.json.

    Refuses an id that is already used, finished or not.
    """
    check_run_id(run_id)
    outputs = Path(outputs)
    run_dir = outputs / f"{run_id}.partial"
    if (outputs / run_id).exists() or run_dir.exists():
        raise ValueError(f"run id {run_id!r}: {outputs / run_id} already exists (resume it instead)")
    run_dir.mkdir(parents=True)
    write_json_atomic(run_dir / "params.json", params)
    env = environment_info()
    write_json_atomic(run_dir / "environment.json", env)
    return run_dir


def add_to_headline(path: str | os.PathLike, key: str, amount: float) -> None:
    """Add ``amount`` to the number ``key`` of a headline (0 if absent), in one locked read-modify-write."""
    path = Path(path)
    with file_lock(path):
        current = read_json(path) if path.exists() else {}
        current[key] = round(current.get(key, 0.0) + amount, 1)
        write_json_atomic(path, current)


def finish_run_folder(run_dir: Path) -> Path:
    """Total the study's wall time into headline.json and rename ``<id>.partial`` to ``<id>``.

    ``study_wall_seconds`` is the runner's wall time while it ran stages
    (``RUNNER_WALL_KEY``, summed over the invocations of a resumed run): with
    ``--jobs`` above 1 stages overlap, and the sum of ``stage_seconds_*`` would
    count the overlap twice. A run folder without it (stages run by ``recsec
    study``) totals its stage times.
    """
    headline_path = run_dir / "headline.json"
    headline = read_json(headline_path) if headline_path.exists() else {}
    total = headline.get(RUNNER_WALL_KEY)
    if total is None:
        total = sum(v for k, v in headline.items() if k.startswith("stage_seconds_"))
    merge_headline(headline_path, {"study_wall_seconds": round(total, 1)})
    final = run_dir.with_name(run_dir.name.removesuffix(".partial"))
    run_dir.rename(final)
    return final


def stamp_headline(run_dir: Path, profile: str, dataset: str) -> None:
    """Record what produced the headline figures: profile, dataset, commit, date."""
    env = environment_info()
    merge_headline(run_dir / "headline.json", {"profile": profile, "dataset": dataset,
                                               "git_commit": env["git_commit"], "date": env["date"]})
