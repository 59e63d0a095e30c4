"""Query traffic in compact form: what a detector sees of the queries accounts sent.

A ``Traffic`` is a query log in compact form. Queries are not stored as tuples
(a million queries of 200 items would take gigabytes) but as references into a
list of *source* sequences: query j is ``sources[source[j]][end[j]-max_len : end[j]]``
and belongs to account ``account[j]``. A benign user's history is one source
(the query after its t-th interaction has end = t); an attack walk is one source
(its t-th query has end = t). Splitting an attack over N accounts only changes
``account``, so encodings are computed once per distinct (source, end).

It lives in the attack layer because every query generator (``attack.generators``)
returns the traffic it sent; the detection side (``recsec_lib.seat``) reads it,
and builds benign traffic of the same form.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace

import numpy as np

from recsec_lib.recommend.sequences import pad_left


@dataclass(frozen=True, eq=False)
class Traffic:
    """A query log in compact form (see module docstring). Account order = log order."""

    names: tuple[str, ...]  # [A] account names
    kinds: tuple[str, ...]  # [A] what each account is (benign form or attack label)
    sources: tuple[np.ndarray, ...]  # source sequences (user histories, attack walks)
    account: np.ndarray  # [Q] account index of each query
    source: np.ndarray  # [Q] source index of each query
    end: np.ndarray  # [Q] the query is the source's items before position `end`
    max_len: int  # a query holds at most the last max_len items (the service refuses longer ones)
    widths: np.ndarray | None = None  # [S] a client that sends only its newest widths[s] items; None = max_len
    time: np.ndarray | None = None  # [Q] seconds since the account's first query (for the rate cap); None = unknown

    @property
    def num_queries(self) -> int:
        return len(self.account)

    def width(self, source: int) -> int:
        """Items a query of this source holds at most."""
        return self.max_len if self.widths is None else min(self.max_len, int(self.widths[source]))

    def query(self, j: int) -> tuple[int, ...]:
        end, source = int(self.end[j]), int(self.source[j])
        return tuple(self.sources[source][max(0, end - self.width(source)):end].tolist())

    def head(self, n: int) -> Traffic:
        """The first n queries (same accounts and sources)."""
        return replace(self, account=self.account[:n], source=self.source[:n], end=self.end[:n],
                       time=None if self.time is None else self.time[:n])

    def with_accounts(self, account: np.ndarray, names: Sequence[str], kinds: Sequence[str]) -> Traffic:
        """The same queries in the same order, assigned to other accounts (times are dropped)."""
        if len(account) != self.num_queries:
            raise ValueError(f"account has {len(account)} entries for {self.num_queries} queries")
        return replace(self, names=tuple(names), kinds=tuple(kinds), account=np.asarray(account, dtype=np.int64),
                       time=None)

    def split_contiguous(self, num_accounts: int, prefix: str) -> Traffic:
        """The whole log (taken as one attack) cut into ``num_accounts`` contiguous, equal-sized chunks."""
        if num_accounts < 1:
            raise ValueError(f"num_accounts must be >= 1, got {num_accounts}")
        n = min(num_accounts, self.num_queries)
        account = (np.arange(self.num_queries) * n) // self.num_queries
        return self.with_accounts(account, [f"{prefix}/{i}" for i in range(n)], [prefix] * n)

    def split_by_source(self, num_accounts: int, prefix: str) -> Traffic:
        """The whole log (one attack) with its sources (walks) dealt to ``num_accounts`` accounts in contiguous
        blocks of sources; query order unchanged. An attacker who interleaves its walks splits this way."""
        if num_accounts < 1:
            raise ValueError(f"num_accounts must be >= 1, got {num_accounts}")
        count = len(self.sources)
        n = min(num_accounts, count)
        account = (self.source * n) // count
        return self.with_accounts(account, [f"{prefix}/{i}" for i in range(n)], [prefix] * n)

    def unique_keys(self) -> tuple[np.ndarray, np.ndarray]:
        """(keys [U, 2] of distinct (source, end), row [Q] of each query in keys)."""
        pairs = np.stack([self.source, self.end], axis=1)
        keys, rows = np.unique(pairs, axis=0, return_inverse=True)
        return keys, rows.reshape(-1)

    def windows(self, keys: np.ndarray, length: int) -> np.ndarray:
        """[U, length] left-padded last ``length`` items of each (source, end) key's query."""
        length = min(length, self.max_len)
        return pad_left([self.sources[s][max(0, e - min(length, self.width(s))):e] for s, e in keys.tolist()],
                        length)

    def key_widths(self, keys: np.ndarray) -> np.ndarray:
        """[U] the query width of each key's source."""
        if self.widths is None:
            return np.full(len(keys), self.max_len, dtype=np.int64)
        return np.minimum(self.max_len, self.widths[keys[:, 0]])


def concat_traffic(parts: Sequence[Traffic]) -> Traffic:
    """One log holding the accounts of all parts (parts must share max_len)."""
    if not parts:
        raise ValueError("concat_traffic needs at least one part")
    if len({p.max_len for p in parts}) != 1:
        raise ValueError("traffic parts have different max_len")
    names, kinds, sources, account, source, end, widths, times = [], [], [], [], [], [], [], []
    for part in parts:
        account.append(part.account + len(names))
        source.append(part.source + len(sources))
        end.append(part.end)
        widths.append(np.full(len(part.sources), part.max_len) if part.widths is None else part.widths)
        times.append(part.time)
        names += part.names
        kinds += part.kinds
        sources += part.sources
    any_width = any(p.widths is not None for p in parts)
    all_times = all(t is not None for t in times)
    return Traffic(tuple(names), tuple(kinds), tuple(sources), np.concatenate(account),
                   np.concatenate(source), np.concatenate(end), parts[0].max_len,
                   np.concatenate(widths).astype(np.int64) if any_width else None,
                   np.concatenate(times) if all_times else None)


def attack_traffic(walks: Sequence[np.ndarray], max_len: int, name: str, walks_per_account: int | None = None) -> Traffic:
    """Each walk queried as its growing prefixes (end = 1..len), walk after walk.

    With ``walks_per_account`` the walks are dealt to consecutive accounts
    ``<name>/0``, ``<name>/1``, ... that many at a time; otherwise one account.
    """
    if not walks:
        raise ValueError("attack_traffic needs at least one walk")
    per = walks_per_account or len(walks)
    if per < 1:
        raise ValueError(f"walks_per_account must be >= 1, got {walks_per_account}")
    lengths = np.array([len(w) for w in walks])
    source = np.repeat(np.arange(len(walks)), lengths)
    end = np.concatenate([np.arange(1, n + 1) for n in lengths])
    account = source // per
    count = int(account.max()) + 1
    return Traffic(tuple(f"{name}/{i}" for i in range(count)), (name,) * count,
                   tuple(np.asarray(w, dtype=np.int64) for w in walks), account, source, end, max_len)


def traffic_from_records(records: Iterable, max_len: int, kind: str = "logged") -> Traffic:
    """A Traffic from QueryRecord-like objects (``.account``, ``.query``), e.g. an attack stage's log.

    Growing prefixes are folded into one source per chain (a query that extends
    or repeats the account's current chain points into it), so a log of
    millions of prefix queries takes about as much memory as its distinct items.
    """
    names: dict[str, int] = {}
    chains: list[list[int]] = []
    current: dict[int, int] = {}  # account index -> its current chain (source index)
    account, source, end = [], [], []
    for record in records:
        who = names.setdefault(str(record.account), len(names))
        query = [int(i) for i in record.query]
        chain_id = current.get(who)
        chain = chains[chain_id] if chain_id is not None else None
        if chain is not None and len(query) >= len(chain) and query[:len(chain)] == chain:
            chain.extend(query[len(chain):])
        elif chain is None or chain[:len(query)] != query:
            chain_id = len(chains)
            chains.append(query)
            current[who] = chain_id
        account.append(who)
        source.append(chain_id)
        end.append(len(query))
    if not account:
        raise ValueError("the query log is empty")
    return Traffic(tuple(names), (kind,) * len(names), tuple(np.asarray(c, dtype=np.int64) for c in chains),
                   np.array(account, dtype=np.int64), np.array(source, dtype=np.int64),
                   np.array(end, dtype=np.int64), max_len)
