"""The recommender as a black-box service: ranked item ids out, nothing else.

This is the threat model of STUDY.md made concrete. A client (an *account*)
sends a viewing history (internal item ids, oldest first, at most
``max_query_len`` items) and gets back only the ranked top-k item ids, never
scores. Everything an attacker may learn about the model goes through
``query`` / ``answer_batch``; the model sits behind a private attribute and the
box is never given the training data, so it has nothing else to leak.

What the service does with each query, in order:

1. Validation: a query must be a non-empty 1-D sequence of integer ids in
   1..num_items, no longer than ``max_query_len``. Anything else is refused
   with ``MalformedQueryError`` (and logged as rejected); nothing crashes.
2. Budgets: at most ``max_queries_per_account`` answered queries per account
   and ``max_total_queries`` in all; a query over budget is refused with
   ``QueryBudgetExceeded`` (and logged as rejected). Refused queries cost
   nothing.
3. Ranking: the model scores all items for the left-padded query; with
   ``filter_seen=True`` (the default, as a real service does) items already in
   the query are never returned.
4. Logging: every query, answered or refused, is appended to ``box.log`` (a
   compact ``QueryLog``) with its account and time order, for detection.

The box serves the model's exact ranking. Output defenses (top-k', tail
perturbations, the GRO paper's Random and Reverse) wrap it
(``recsec_lib.defenses.output.DefendedBox``); GRO is a differently trained
model behind the same box.

Queries are left-padded only as far as the longest query of their chunk: the
models' contract is that left padding never changes the output, so the same
query gets the same answer whatever shares its batch.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from recsec_lib.attack.querylog import NO_ANSWER, QueryLog
from recsec_lib.recommend.sequences import pad_left

class QueryRejected(Exception):
    """A query the service refused; it is logged as rejected and costs no budget.

    ``row`` is the query's position in its batch, ``log_index`` its index in
    the query log. When raised by ``answer_batch``, ``answers`` holds the
    [N, k] answers of the whole batch (rows of refused queries filled with -1)
    and ``rejected_rows`` the rows that were refused.
    """

    def __init__(self, message: str, account: str = "", row: int = 0, log_index: int = -1):
        super().__init__(message)
        self.account = account
        self.row = row
        self.log_index = log_index
        self.answers: np.ndarray | None = None
        self.rejected_rows: np.ndarray | None = None


class MalformedQueryError(QueryRejected, ValueError):
    """The query is not a non-empty sequence of known item ids of allowed length."""


class QueryBudgetExceeded(QueryRejected):
    """The account (or the service as a whole) has used up its query budget."""


class BlackBoxRecommender:
    """A trained recommender served as a top-k black box with accounts, budgets and a log.

    Public attributes are what any client of such a service knows: the size of
    the catalogue (``num_items``), the longest accepted query
    (``max_query_len``), the list length ``k``, whether seen items are
    filtered. ``log`` is the operator's view (for
    detection); the attack code never reads it.
    """

    def __init__(
        self,
        model,  # a SequentialRecommender (forward: [B, L] -> [B, num_items + 1] scores)
        k: int = 100,  # length of every returned list
        filter_seen: bool = True,  # never return items already in the query
        max_queries_per_account: int | None = None,  # answered queries allowed per account; None = unlimited
        max_total_queries: int | None = None,  # answered queries allowed in all; None = unlimited
        keep_answers: bool = True,  # store the returned lists in the log (k ints per query)
        batch_size: int = 128,  # queries scored per forward pass (sorted by length, padded per chunk)
        device: str | torch.device = "cpu",
    ):
        num_items, max_len = int(model.num_items), int(model.max_len)
        if k <= 0:
            raise ValueError(f"parameter 'k' must be positive, got {k}")
        if filter_seen and k + max_len > num_items:
            raise ValueError(
                f"parameter 'k' ({k}) plus the longest query ({max_len}) exceeds the {num_items} items: "
                "a long query could leave fewer than k unseen items to return"
            )
        if not filter_seen and k > num_items:
            raise ValueError(f"parameter 'k' ({k}) exceeds the {num_items} items")
        for name, value in (("max_queries_per_account", max_queries_per_account),
                            ("max_total_queries", max_total_queries)):
            if value is not None and value < 0:
                raise ValueError(f"parameter '{name}' must be >= 0 or None, got {value}")
        if batch_size <= 0:
            raise ValueError(f"parameter 'batch_size' must be positive, got {batch_size}")
        self.num_items = num_items
        self.max_query_len = max_len
        self.k = int(k)
        self.filter_seen = bool(filter_seen)
        self.max_queries_per_account = max_queries_per_account
        self.max_total_queries = max_total_queries
        self.log = QueryLog(k=self.k, keep_answers=keep_answers, num_items=num_items)
        self._model = model.to(device).eval()
        self._device = torch.device(device)
        self._batch_size = int(batch_size)
        self._answered_per_account: dict[str, int] = {}
        self._answered_total = 0

    # ---- budgets -------------------------------------------------------------
    def queries_answered(self, account: str | None = None) -> int:
        """Answered queries of ``account`` (or of all accounts when None)."""
        if account is None:
            return self._answered_total
        return self._answered_per_account.get(account, 0)

    def remaining_budget(self, account: str) -> int | None:
        """Queries ``account`` may still send, or None when nothing limits it."""
        limits = []
        if self.max_queries_per_account is not None:
            limits.append(self.max_queries_per_account - self.queries_answered(account))
        if self.max_total_queries is not None:
            limits.append(self.max_total_queries - self._answered_total)
        return max(0, min(limits)) if limits else None

    # ---- answering -----------------------------------------------------------
    def query(self, account: str, sequence: Sequence[int]) -> np.ndarray:
        """Answer one query: [k] int64 item ids, best first."""
        return self.answer_batch(account, [sequence])[0]

    def answer_batch(self, accounts: str | Sequence[str], queries, partial: bool = False) -> np.ndarray:
        """Answer N queries in order: [N, k] int64 item ids.

        accounts: one account for all queries, or one per query.
        queries: a list of 1-D id sequences (lengths may differ), or an int
          array [N, L] of N queries of equal length L (no padding).
        partial: False (default) raises the first refusal as a
          ``QueryRejected`` subclass *after* answering and logging the valid
          queries (the exception carries ``answers``); True returns the array
          with -1 rows for refused queries instead.
        """
        items, reasons = self._validate(queries)
        n = len(items)
        names = self._account_list(accounts, n)
        errors: list[type[QueryRejected] | None] = [None if r is None else MalformedQueryError for r in reasons]
        for row in range(n):
            if reasons[row] is None:
                reasons[row] = self._charge(names[row])
                if reasons[row] is not None:
                    errors[row] = QueryBudgetExceeded
        ok = np.array([r is None for r in reasons], dtype=bool)
        answers = np.full((n, self.k), NO_ANSWER, dtype=np.int64)
        if ok.any():
            answers[ok] = self._rank([items[row] for row in np.flatnonzero(ok)])
        indices = self.log.extend(names, [q if q is not None else () for q in items], answers, reasons)
        if not partial and not ok.all():
            row = int(np.flatnonzero(~ok)[0])
            error = errors[row](f"query {row} of account {names[row]!r} refused: {reasons[row]}",
                                account=names[row], row=row, log_index=int(indices[row]))
            error.answers = answers
            error.rejected_rows = np.flatnonzero(~ok)
            raise error
        return answers

    def _account_list(self, accounts: str | Sequence[str], n: int) -> list[str]:
        if isinstance(accounts, str):
            return [accounts] * n
        if not isinstance(accounts, (Sequence, np.ndarray)):
            raise ValueError(f"parameter 'accounts' must be an account name or one name per query, "
                             f"got {type(accounts).__name__}")
        names = [str(a) for a in accounts]
        if len(names) != n:
            raise ValueError(f"parameter 'accounts' has {len(names)} names for {n} queries")
        return names

    def _validate(self, queries) -> tuple[list[np.ndarray | None], list[str | None]]:
        """Per query: its int64 ids (None if unreadable) and the reason to refuse it (None if fine)."""
        if isinstance(queries, np.ndarray) and queries.ndim == 2:
            rows = list(queries)
        elif isinstance(queries, (str, bytes)) or not isinstance(queries, (Sequence, np.ndarray)):
            raise MalformedQueryError(f"parameter 'queries' must be a list of id sequences, "
                                      f"got {type(queries).__name__}")
        else:
            rows = list(queries)
        items: list[np.ndarray | None] = []
        reasons: list[str | None] = []
        for query in rows:
            ids, reason = self._check_query(query)
            items.append(ids)
            reasons.append(reason)
        return items, reasons

    def _check_query(self, query) -> tuple[np.ndarray | None, str | None]:
        if isinstance(query, (str, bytes)) or not isinstance(query, (Sequence, np.ndarray)):
            return None, f"a query must be a sequence of item ids, got {type(query).__name__}"
        try:
            ids = np.asarray(query)
        except (ValueError, TypeError):
            return None, "a query must be a flat sequence of item ids"
        if ids.ndim != 1:
            return None, f"a query must be a flat sequence of item ids, got {ids.ndim} dimensions"
        if len(ids) == 0:
            return None, "empty query"
        if ids.dtype.kind not in "iu":
            return None, f"item ids must be integers, got {ids.dtype} values"
        ids = ids.astype(np.int64)
        if len(ids) > self.max_query_len:
            return ids, f"query of {len(ids)} items is longer than the allowed {self.max_query_len}"
        bad = (ids < 1) | (ids > self.num_items)
        if bad.any():
            return ids, f"unknown item id {int(ids[bad][0])} (ids are 1..{self.num_items})"
        return ids, None

    def _charge(self, account: str) -> str | None:
        """Count one answered query against the budgets; the reason to refuse it if over budget."""
        used = self._answered_per_account.get(account, 0)
        if self.max_queries_per_account is not None and used >= self.max_queries_per_account:
            return f"account budget exhausted ({self.max_queries_per_account} queries per account)"
        if self.max_total_queries is not None and self._answered_total >= self.max_total_queries:
            return f"service budget exhausted ({self.max_total_queries} queries in all)"
        self._answered_per_account[account] = used + 1
        self._answered_total += 1
        return None

    @torch.inference_mode()
    def _rank(self, queries: list[np.ndarray]) -> np.ndarray:
        """[N, k] top-k ids of valid queries, after seen-item filtering.

        Queries are scored shortest first, each chunk padded only to its
        longest query: short prefixes then cost little. This relies on the
        model contract that left padding never changes the output (tested for
        every model in the registry).
        """
        self._model.eval()
        out = np.empty((len(queries), self.k), dtype=np.int64)
        order = np.argsort([len(q) for q in queries], kind="stable")
        for start in range(0, len(queries), self._batch_size):
            rows = order[start:start + self._batch_size]
            chunk = [queries[row] for row in rows]
            width = max(len(q) for q in chunk)
            seqs = torch.from_numpy(pad_left(chunk, width)).to(self._device)  # [b, width]
            scores = self._model(seqs).float()  # [b, n + 1]
            scores[:, 0] = -torch.inf
            if self.filter_seen:
                scores.scatter_(1, seqs, -torch.inf)  # padding 0 is already -inf
            top = torch.topk(scores, self.k, dim=1).indices  # [b, k]
            out[rows] = top.cpu().numpy()
        return out


def measure_throughput(model, num_queries: int = 2048, max_query_len: int | None = None, k: int = 100,
                       call_size: int = 2048, batch_size: int = 128, seed: int = 0, filter_seen: bool = True) -> float:
    """Answered queries per second of a box around ``model`` (k ids per answer, seen items filtered, logged).

    Query lengths are uniform in 1..max_query_len (default: the model's
    max_len), the mix an autoregressive attacker or a growing-prefix benign
    stream sends; items are uniform without repeats. One warm-up call first.
    """
    import time

    max_query_len = max_query_len or int(model.max_len)
    rng = np.random.default_rng(seed)
    num_items = int(model.num_items)
    queries = [rng.permutation(num_items)[: rng.integers(1, max_query_len + 1)] + 1 for _ in range(num_queries)]
    box = BlackBoxRecommender(model, k=k, batch_size=batch_size, filter_seen=filter_seen)
    box.answer_batch("warm-up", queries[: min(256, num_queries)])
    start = time.perf_counter()
    for s in range(0, num_queries, call_size):
        box.answer_batch("benchmark", queries[s:s + call_size])
    return num_queries / (time.perf_counter() - start)
