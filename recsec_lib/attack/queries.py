"""What an extraction attack collected, and the one-line way to collect it.

The attacker knows only the box (``answer_batch``) and the item-id range
1..num_items: nothing here imports the data package, so the attack cannot peek
at real user histories.

* ``AttackData`` — synthetic sequences and the box's answer at every prefix
  (what the surrogate trains on), saved as one .npz so that distillation can
  be rerun without querying;
* ``generate_queries`` — spend a budget of ``num_sequences`` walks of
  ``seq_len`` items with one of the registered generators
  (``recsec_lib.attack.generators``: random, autoregressive, chain, ...), and
  return its training data.

Both of Yue et al.'s generators query *every prefix* of each sequence (a
sequence costs ``seq_len`` queries), so both yield the same number of
(prefix, returned list) training pairs.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

from recsec_lib.common.files import atomic_path
import numpy as np

log = logging.getLogger(__name__)

ATTACK_DATA_FORMAT = "recsec-attack-data-v1"


@dataclass(frozen=True, eq=False)
class AttackData:
    """What an extraction attack collected: synthetic sequences and the box's lists at every prefix.

    ``answers[s, t]`` is the list the box returned for the query
    ``sequences[s, :t + 1]``.
    """

    sequences: np.ndarray  # [S, L] int64 synthetic item sequences, oldest first, no padding
    answers: np.ndarray  # [S, L, k] int64 returned ids for each prefix
    generator: str  # the registered generator that collected it (recsec_lib.attack.generators)
    num_items: int  # the item-id range the attacker drew from
    seed: int = 0
    # [S, L] bool: which prefixes were actually answered; None = every prefix. Rows may then be
    # left-padded with 0 (an attacker that sent one query per walk has one answered position per row).
    answered: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.sequences.ndim != 2 or self.answers.ndim != 3:
            raise ValueError(f"sequences must be [S, L] and answers [S, L, k], got "
                             f"{self.sequences.shape} and {self.answers.shape}")
        if self.answers.shape[:2] != self.sequences.shape:
            raise ValueError(f"answers {self.answers.shape} do not match sequences {self.sequences.shape}")
        if self.answered is not None and self.answered.shape != self.sequences.shape:
            raise ValueError(f"answered {self.answered.shape} does not match sequences {self.sequences.shape}")

    @property
    def num_sequences(self) -> int:
        return int(self.sequences.shape[0])

    @property
    def seq_len(self) -> int:
        return int(self.sequences.shape[1])

    @property
    def k(self) -> int:
        return int(self.answers.shape[2])

    @property
    def num_queries(self) -> int:
        """Queries it cost: one per answered prefix."""
        return self.num_sequences * self.seq_len if self.answered is None else int(self.answered.sum())

    def subset(self, rows) -> "AttackData":
        """The attack restricted to some sequences (e.g. a smaller budget: ``subset(slice(0, 500))``)."""
        return AttackData(self.sequences[rows], self.answers[rows], self.generator, self.num_items, self.seed,
                          None if self.answered is None else self.answered[rows])

    def split(self, holdout_fraction: float, seed: int = 0) -> tuple["AttackData", "AttackData"]:
        """(train, held-out) by sequence; the held-out part validates the surrogate."""
        if not 0.0 <= holdout_fraction < 1.0:
            raise ValueError(f"parameter 'holdout_fraction' must be in [0, 1), got {holdout_fraction}")
        order = np.random.default_rng(seed).permutation(self.num_sequences)
        n_hold = int(round(holdout_fraction * self.num_sequences))
        if holdout_fraction > 0 and self.num_sequences >= 2:
            n_hold = min(max(n_hold, 1), self.num_sequences - 1)
        return self.subset(np.sort(order[n_hold:])), self.subset(np.sort(order[:n_hold]))

    def save(self, path: str | os.PathLike) -> Path:
        """Write to one .npz (atomically) so that distillation can be rerun without querying."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        small = np.int16 if self.num_items < np.iinfo(np.int16).max else np.int32
        with atomic_path(path) as tmp:
            extra = {} if self.answered is None else {"answered": self.answered}
            np.savez_compressed(tmp, format=np.array(ATTACK_DATA_FORMAT), sequences=self.sequences.astype(small),
                                answers=self.answers.astype(small), generator=np.array(self.generator),
                                num_items=np.array(self.num_items), seed=np.array(self.seed), **extra)
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> "AttackData":
        path = Path(path)
        try:
            with np.load(path, allow_pickle=False) as data:
                if "format" not in data or str(data["format"]) != ATTACK_DATA_FORMAT:
                    raise ValueError(f"not attack data (missing format {ATTACK_DATA_FORMAT!r})")
                return cls(sequences=data["sequences"].astype(np.int64), answers=data["answers"].astype(np.int64),
                           generator=str(data["generator"]), num_items=int(data["num_items"]),
                           seed=int(data["seed"]), answered=data["answered"] if "answered" in data else None)
        except (OSError, KeyError, ValueError) as exc:
            if isinstance(exc, FileNotFoundError):
                raise
            raise ValueError(f"{path}: cannot read attack data ({exc})") from exc


def account_names(num_sequences: int, num_accounts: int, prefix: str = "attacker") -> list[str]:
    """The account that sends each sequence's queries: sequences spread round-robin over accounts."""
    if num_accounts <= 0:
        raise ValueError(f"parameter 'num_accounts' must be positive, got {num_accounts}")
    return [f"{prefix}-{s % num_accounts}" for s in range(num_sequences)]


def generate_queries(
    box,  # the black box: only box.answer_batch(accounts, queries), num_items, max_query_len are used
    num_items: int,  # item ids are 1..num_items: the one fact the attacker knows besides the box
    generator: str,  # a registered generator: random | autoregressive | ...
    num_sequences: int,  # budget in synthetic sequences
    seq_len: int,  # length L of each sequence; each costs L queries
    seed: int = 0,
    num_accounts: int = 1,  # spread the sequences over this many accounts (round-robin)
    account_prefix: str = "attacker",
    **parameters,  # the generator's own parameters (e.g. steer=10)
) -> AttackData:
    """Query the box with ``num_sequences`` synthetic walks; returns the walks and every prefix's list."""
    # Imported here: the generators build AttackData, so they import this module.
    from recsec_lib.attack.generators import GENERATORS

    if num_items != box.num_items:
        raise ValueError(f"parameter 'num_items' ({num_items}) differs from the box's {box.num_items} items")
    if num_sequences <= 0 or seq_len <= 0:
        raise ValueError(f"num_sequences ({num_sequences}) and seq_len ({seq_len}) must be positive")
    started = time.perf_counter()
    walker = GENERATORS.build(generator, **parameters)
    accounts = account_names(num_sequences, num_accounts, account_prefix)
    collected = walker.collect(box, num_sequences * seq_len, seq_len, seed,
                               account=accounts if num_accounts > 1 else accounts[0])
    log.info("%s: %d sequences of %d items, %d queries in %.1f s", generator, num_sequences, seq_len,
             collected.queries, time.perf_counter() - started)
    return collected.training


def sequences_for_budget(budget_queries: int, seq_len: int) -> int:
    """Sequences a budget counted in queries buys (each sequence costs ``seq_len`` queries)."""
    if budget_queries < seq_len:
        raise ValueError(f"a budget of {budget_queries} queries buys no sequence of length {seq_len}")
    return budget_queries // seq_len


__all__ = ("AttackData", "account_names", "generate_queries", "sequences_for_budget")
