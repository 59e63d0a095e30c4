"""The black box's query log: who asked what, in which order, and what came back.

The black box appends one ``QueryRecord`` per query; detection (SEAT and its
baselines) replays the log account by account. Saved as JSON lines so it can be
streamed and read by any tool.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path


@dataclass(frozen=True)
class QueryRecord:
    account: str  # who sent the query
    index: int  # global position of the query in the log (time order)
    query: tuple[int, ...]  # the item-id sequence sent (internal ids)
    answer: tuple[int, ...] | None  # returned top-k ids, None when rejected
    rejected: str | None = None  # why the query was refused, None when answered


def save_log(records: Iterable[QueryRecord], path: str | os.PathLike) -> None:
    """Write records as JSON lines, atomically (temporary file, then rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as handle:
            for record in records:
                handle.write(json.dumps(asdict(record)) + "\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_log(path: str | os.PathLike) -> Iterator[QueryRecord]:
    """Read a log written by ``save_log``; a malformed line raises naming file and line."""
    path = Path(path)
    with open(path) as handle:
        for line_no, line in enumerate(handle, start=1):
            try:
                raw = json.loads(line)
                yield QueryRecord(
                    account=str(raw["account"]),
                    index=int(raw["index"]),
                    query=tuple(int(i) for i in raw["query"]),
                    answer=None if raw["answer"] is None else tuple(int(i) for i in raw["answer"]),
                    rejected=raw.get("rejected"),
                )
            except (ValueError, KeyError, TypeError) as exc:
                raise ValueError(f"{path}:{line_no}: malformed query-log line ({exc})") from exc
