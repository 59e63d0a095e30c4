"""The black box's query log: who asked what, in which order, and what came back.

The black box appends one entry per query to a ``QueryLog`` (compact numpy
arrays, saved as .npz); detection (SEAT and its baselines) replays the log
account by account as ``QueryRecord`` objects. Small logs can also be saved as
JSON lines (``save_log``/``load_log``) so they can be streamed and read by any tool.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from recsec_lib.common.files import atomic_path


@dataclass(frozen=True)
class QueryRecord:
    account: str  # who sent the query
    index: int  # global position of the query in the log (time order)
    query: tuple[int, ...]  # the item-id sequence sent (internal ids)
    answer: tuple[int, ...] | None  # returned top-k ids, None when rejected
    rejected: str | None = None  # why the query was refused, None when answered


def save_log(records: Iterable[QueryRecord], path: str | os.PathLike) -> None:
    """Write records as JSON lines, atomically (temporary file, then rename)."""
    with atomic_path(path) as tmp, open(tmp, "w") as handle:
        for record in records:
            handle.write(json.dumps(asdict(record)) + "\n")


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


# --------------------------------------------------------------------------
# A compact in-memory log for millions of queries
# --------------------------------------------------------------------------
#
# JSON lines cost about 1 KB per query of length 100 with a top-100 answer, and
# a list of QueryRecord tuples costs even more in memory. The black box keeps
# its log as numpy arrays instead, with two observations that make it small:
#
# * A sequential recommender's traffic is mostly *growing prefixes*: a benign
#   user queries after each new interaction, an autoregressive attacker queries
#   every prefix of its synthetic walk, and page refreshes repeat a query. So a
#   query that equals an earlier query plus at most one item is stored as a
#   pointer to that earlier query ("parent") and the one new item ("tail").
#   1M prefix queries of length <= 200 then take about 1M items instead of 100M.
# * Answers are fixed-width [k] id lists: one [N, k] int32 block (or none at
#   all with keep_answers=False).
#
# Iterating the log yields the same QueryRecord objects as load_log, so the
# detectors can read either form.

REJECTED_NONE = -1  # rejection code of an answered query
NO_ANSWER = -1  # filler of the answer row of a rejected (or unanswered) query


class _Growable:
    """A 1-D or 2-D numpy buffer with amortised O(1) appends along axis 0."""

    def __init__(self, dtype, width: int | None = None, capacity: int = 1024):
        shape = (capacity,) if width is None else (capacity, width)
        self._data = np.empty(shape, dtype=dtype)
        self._size = 0

    def __len__(self) -> int:
        return self._size

    def extend(self, values: np.ndarray) -> None:
        values = np.asarray(values, dtype=self._data.dtype)
        need = self._size + len(values)
        if need > len(self._data):
            capacity = max(need, 2 * len(self._data))
            grown = np.empty((capacity,) + self._data.shape[1:], dtype=self._data.dtype)
            grown[: self._size] = self._data[: self._size]
            self._data = grown
        self._data[self._size:need] = values
        self._size = need

    def view(self) -> np.ndarray:
        """The filled part (a view: copy it before keeping it past the next append)."""
        return self._data[: self._size]


def _digest(query: np.ndarray) -> bytes:
    """16-byte fingerprint of an int64 query (collisions are negligible at 2^-64 per pair)."""
    return hashlib.blake2b(query.tobytes(), digest_size=16).digest()


class QueryLog:
    """Append-only log of black-box queries, stored as numpy arrays.

    Index i of the log is the i-th query the service received (time order),
    answered or rejected. Use ``append`` for one query and ``extend`` for a
    batch; read back with ``record(i)``, ``query(i)``, ``answer(i)``,
    iteration (QueryRecord objects) or ``iter_queries()``. ``save(path)`` writes
    one .npz file; ``QueryLog.load(path)`` reads it; ``export_jsonl`` writes
    the JSON-lines form of ``save_log`` for small logs and other tools.
    """

    def __init__(self, k: int, keep_answers: bool = True, num_items: int | None = None):
        """k: answer length; num_items (optional): the largest item id, to store answers as int16 when it fits."""
        if k <= 0:
            raise ValueError(f"parameter 'k' must be positive, got {k}")
        self.k = int(k)
        self.keep_answers = bool(keep_answers)
        self._account_names: list[str] = []
        self._account_code: dict[str, int] = {}
        self._reasons: list[str] = []
        self._reason_code: dict[str, int] = {}
        self._accounts = _Growable(np.int32)  # [N] code into _account_names
        self._parent = _Growable(np.int64)  # [N] earlier query this one extends, -1 = stored in full
        self._tail_offsets = _Growable(np.int64)  # [N + 1] items of query i beyond its parent
        self._tail_offsets.extend(np.zeros(1, dtype=np.int64))
        self._tails = _Growable(np.int32)  # [total tail items]
        self._lengths = _Growable(np.int32)  # [N] full query length
        self._rejected = _Growable(np.int32)  # [N] code into _reasons, -1 = answered
        self.num_items = num_items
        # Answers dominate the log's size (k ids per query): 2 bytes an id when the catalogue allows it.
        answer_dtype = np.int16 if num_items is not None and num_items < np.iinfo(np.int16).max else np.int32
        self._answers = _Growable(answer_dtype, width=self.k) if self.keep_answers else None  # [N, k]
        self._latest: dict[bytes, int] = {}  # digest of an answered query -> its latest index

    # ---- writing -------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._accounts)

    def _code(self, table: dict[str, int], names: list[str], name: str) -> int:
        code = table.get(name)
        if code is None:
            code = table[name] = len(names)
            names.append(name)
        return code

    def append(self, account: str, query, answer=None, rejected: str | None = None) -> int:
        """Log one query; returns its index. ``query`` must be int ids (or None/() for unreadable input)."""
        answers = None if answer is None else np.asarray(answer, dtype=np.int64)[None, :]
        return int(self.extend([account], [() if query is None else query], answers,
                               None if rejected is None else [rejected])[0])

    def extend(self, accounts, queries, answers: np.ndarray | None, rejected=None) -> np.ndarray:
        """Log a batch in order; returns the [N] indices given to the queries.

        accounts: one name for all, or one per query. queries: N int sequences.
        answers: [N, k] ids (rows of rejected queries are ignored) or None.
        rejected: None, or N reasons (None for an answered query).
        """
        n = len(queries)
        names = [accounts] * n if isinstance(accounts, str) else list(accounts)
        if len(names) != n:
            raise ValueError(f"got {len(names)} accounts for {n} queries")
        reasons = [None] * n if rejected is None else list(rejected)
        if len(reasons) != n:
            raise ValueError(f"got {len(reasons)} rejection reasons for {n} queries")
        if answers is not None and np.shape(answers) != (n, self.k):
            raise ValueError(f"answers must have shape [{n}, {self.k}], got {np.shape(answers)}")
        start = len(self)
        parents = np.full(n, -1, dtype=np.int64)
        lengths = np.zeros(n, dtype=np.int32)
        tails = []
        for row, query in enumerate(queries):
            items = np.asarray(query, dtype=np.int64).reshape(-1)
            lengths[row] = len(items)
            tail = items
            if reasons[row] is None and len(items):
                # A refresh (same query again) or a one-item extension of an earlier query.
                for cut in (len(items), len(items) - 1):
                    parent = self._latest.get(_digest(items[:cut])) if cut else None
                    if parent is not None:
                        parents[row], tail = parent, items[cut:]
                        break
                self._latest[_digest(items)] = start + row
            tails.append(tail)
        tail_lengths = np.array([len(t) for t in tails], dtype=np.int64)
        self._accounts.extend(np.array([self._code(self._account_code, self._account_names, a) for a in names],
                                       dtype=np.int32))
        self._parent.extend(parents)
        self._tail_offsets.extend(self._tail_offsets.view()[-1] + np.cumsum(tail_lengths))
        if tail_lengths.sum():
            self._tails.extend(np.concatenate(tails))
        self._lengths.extend(lengths)
        self._rejected.extend(np.array(
            [REJECTED_NONE if r is None else self._code(self._reason_code, self._reasons, str(r)) for r in reasons],
            dtype=np.int32))
        if self._answers is not None:
            block = np.full((n, self.k), NO_ANSWER, dtype=np.int32)
            if answers is not None:
                block[:] = answers
            block[[r is not None for r in reasons]] = NO_ANSWER
            self._answers.extend(block)
        return np.arange(start, start + n)

    # ---- reading -------------------------------------------------------------
    @property
    def account_names(self) -> list[str]:
        """Distinct accounts in order of their first query."""
        return list(self._account_names)

    @property
    def accounts(self) -> np.ndarray:
        """[N] account code of each query (index into ``account_names``)."""
        return self._accounts.view().copy()

    @property
    def lengths(self) -> np.ndarray:
        """[N] length of each query."""
        return self._lengths.view().copy()

    @property
    def rejected_mask(self) -> np.ndarray:
        """[N] True where the query was refused."""
        return self._rejected.view() != REJECTED_NONE

    def indices_of(self, account: str) -> np.ndarray:
        """Log indices of ``account``'s queries, in time order."""
        code = self._account_code.get(account)
        if code is None:
            return np.zeros(0, dtype=np.int64)
        return np.flatnonzero(self._accounts.view() == code)

    def query(self, index: int) -> np.ndarray:
        """The item ids of query ``index`` (int64), rebuilt along its parent chain."""
        self._check_index(index)
        parent, offsets, tails = self._parent.view(), self._tail_offsets.view(), self._tails.view()
        pieces = []
        i = index
        while i >= 0:
            pieces.append(tails[offsets[i]:offsets[i + 1]])
            i = int(parent[i])
        return np.concatenate(pieces[::-1]).astype(np.int64) if pieces else np.zeros(0, np.int64)

    def answer(self, index: int) -> np.ndarray | None:
        """The returned ids of query ``index``, or None if it was rejected or answers are not kept."""
        self._check_index(index)
        if self._answers is None or self._rejected.view()[index] != REJECTED_NONE:
            return None
        return self._answers.view()[index].astype(np.int64)

    def answers(self) -> np.ndarray:
        """[N, k] returned ids (-1 rows for rejected queries); needs keep_answers=True."""
        if self._answers is None:
            raise ValueError("this log was built with keep_answers=False: it holds no answers")
        return self._answers.view().copy()

    def rejection(self, index: int) -> str | None:
        self._check_index(index)
        code = int(self._rejected.view()[index])
        return None if code == REJECTED_NONE else self._reasons[code]

    def record(self, index: int) -> QueryRecord:
        answer = self.answer(index)
        return QueryRecord(
            account=self._account_names[int(self._accounts.view()[index])],
            index=int(index),
            query=tuple(int(i) for i in self.query(index)),
            answer=None if answer is None else tuple(int(i) for i in answer),
            rejected=self.rejection(index),
        )

    def iter_queries(self) -> Iterator[tuple[int, str, np.ndarray]]:
        """(index, account, query) in time order; rebuilds each query once from its parent.

        Keeps only the queries that a later query still extends, so memory stays
        bounded by the number of "open" prefix chains, not by the log size.
        """
        parent, offsets, tails = self._parent.view(), self._tail_offsets.view(), self._tails.view()
        children = np.bincount(parent[parent >= 0], minlength=len(self)) if len(self) else np.zeros(0, int)
        open_queries: dict[int, np.ndarray] = {}
        accounts = self._accounts.view()
        for i in range(len(self)):
            tail = tails[offsets[i]:offsets[i + 1]].astype(np.int64)
            p = int(parent[i])
            if p >= 0:
                query = np.concatenate([open_queries[p], tail])
                children[p] -= 1
                if children[p] == 0:
                    del open_queries[p]
            else:
                query = tail
            if children[i] > 0:
                open_queries[i] = query
            yield i, self._account_names[int(accounts[i])], query

    def __iter__(self) -> Iterator[QueryRecord]:
        answers = self._answers.view() if self._answers is not None else None
        rejected = self._rejected.view()
        for i, account, query in self.iter_queries():
            code = int(rejected[i])
            answer = None
            if answers is not None and code == REJECTED_NONE:
                answer = tuple(int(x) for x in answers[i])
            yield QueryRecord(account=account, index=i, query=tuple(int(x) for x in query), answer=answer,
                              rejected=None if code == REJECTED_NONE else self._reasons[code])

    def _check_index(self, index: int) -> None:
        if not 0 <= index < len(self):
            raise IndexError(f"query index {index} is outside the log (0..{len(self) - 1})")

    # ---- files ---------------------------------------------------------------
    def save(self, path: str | os.PathLike) -> Path:
        """Write the log as one .npz file, atomically."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        arrays = {
            "format": np.array("recsec-querylog-v1"),
            "k": np.array(self.k),
            "keep_answers": np.array(self.keep_answers),
            "num_items": np.array(-1 if self.num_items is None else self.num_items),
            "account_names": np.array(self._account_names, dtype=str),
            "reasons": np.array(self._reasons, dtype=str),
            "accounts": self._accounts.view(),
            "parent": self._parent.view(),
            "tail_offsets": self._tail_offsets.view(),
            "tails": self._tails.view(),
            "lengths": self._lengths.view(),
            "rejected": self._rejected.view(),
        }
        if self._answers is not None:
            arrays["answers"] = self._answers.view()
        with atomic_path(path) as tmp:
            np.savez_compressed(tmp, **arrays)
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> "QueryLog":
        """Read a log written by ``save``; a file of another kind raises naming the file."""
        path = Path(path)
        try:
            with np.load(path, allow_pickle=False) as data:
                if "format" not in data or str(data["format"]) != "recsec-querylog-v1":
                    raise ValueError("not a recsec query log (missing format 'recsec-querylog-v1')")
                num_items = int(data["num_items"]) if "num_items" in data else -1
                log = cls(k=int(data["k"]), keep_answers=bool(data["keep_answers"]),
                          num_items=None if num_items < 0 else num_items)
                log._account_names = [str(a) for a in data["account_names"]]
                log._account_code = {a: i for i, a in enumerate(log._account_names)}
                log._reasons = [str(r) for r in data["reasons"]]
                log._reason_code = {r: i for i, r in enumerate(log._reasons)}
                for name in ("accounts", "parent", "tails", "lengths", "rejected"):
                    getattr(log, f"_{name}").extend(data[name])
                log._tail_offsets = _Growable(np.int64)
                log._tail_offsets.extend(data["tail_offsets"])
                if log._answers is not None:
                    log._answers.extend(data["answers"])
        except (OSError, KeyError, ValueError) as exc:
            if isinstance(exc, FileNotFoundError):
                raise
            raise ValueError(f"{path}: cannot read query log ({exc})") from exc
        # Refill the prefix index so that appending to a loaded log stays compact.
        for i, _, query in log.iter_queries():
            if log._rejected.view()[i] == REJECTED_NONE:
                log._latest[_digest(query)] = i
        return log

    def export_jsonl(self, path: str | os.PathLike) -> None:
        """Write the JSON-lines form (``save_log``); fine for small logs, 1 KB per query."""
        save_log(iter(self), path)

    @classmethod
    def from_records(cls, records: Iterable[QueryRecord], k: int) -> "QueryLog":
        """Build a compact log from QueryRecords (e.g. ``load_log`` of a JSON-lines file)."""
        log = cls(k=k)
        for record in records:
            log.append(record.account, record.query, record.answer, record.rejected)
        return log
