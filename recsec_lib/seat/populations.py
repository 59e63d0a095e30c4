"""Benign populations with real timing: who calibrates the detectors and who measures them.

Two disjoint populations, each built only from its own users:

* ML-1M users of the calibration block and of the held-out block
  (``traffic.split_users``), each giving one account per form
  (``benign.EVERY_FORM``: the first forms, the clients' forms and the people
  forms), with interaction times from ``timing.DonorTimes`` — the real gaps
  between the ratings of ML-100K users of the *same* block (calibration donors
  for calibration traffic, held-out donors for held-out traffic);
* ML-100K users themselves (``timing.split_timed_users``: first half by id
  calibrates, second half is held out), their movies mapped to ML-1M by title,
  queried at their own rating times: form ``ml100k`` (one query after each
  rating) and ``ml100k-submit`` (one query per second that holds ratings).

A held-out set can show a false-positive rate r only with at least
``fpr.accounts_to_show(r)`` accounts (3,688 for 0.1%, 368 for 1%):
``Population.accounts`` says how many each form has.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from recsec_lib.seat.benign import EVERY_FORM, BenignShape, benign_traffic, timed_benign_traffic
from recsec_lib.seat.timing import (DonorTimes, MappingReport, TimedHistory, map_histories, map_to_dataset,
                                    rating_gaps, read_timed_histories, split_timed_users)
from recsec_lib.attack.traffic import Traffic, concat_traffic

REAL_FORMS = ("ml100k", "ml100k-submit")


@dataclass(frozen=True, eq=False)
class RealTiming:
    """ML-100K's users mapped to the dataset, split into calibration and held-out blocks."""

    calibration: tuple[TimedHistory, ...]
    held_out: tuple[TimedHistory, ...]
    report: MappingReport


def load_real_timing(dataset, ml100k_dir: str | Path, ml1m_movies: str | Path | None = None,
                     calibration_fraction: float = 0.5, min_len: int = 5) -> RealTiming:
    """Read ML-100K (``u.data``, ``u.item``), map its movies to ``dataset`` by title, split its users by id."""
    mapping, report = map_to_dataset(dataset, ml100k_dir, ml1m_movies)
    histories = map_histories(read_timed_histories(Path(ml100k_dir) / "u.data"), mapping, min_len=min_len)
    calibration, held_out = split_timed_users(histories, calibration_fraction)
    return RealTiming(tuple(calibration), tuple(held_out), report)


@dataclass(frozen=True, eq=False)
class Population:
    traffic: Traffic
    users: int  # ML-1M users the forms were built from

    def accounts(self) -> dict[str, int]:
        """Accounts per form."""
        kinds, counts = np.unique(np.array(self.traffic.kinds), return_counts=True)
        return dict(zip(kinds.tolist(), counts.tolist()))


def benign_population(dataset, users: np.ndarray, real: Sequence[TimedHistory], forms: Sequence[str] = EVERY_FORM,
                      per_form: int | None = None, seed: int = 0, shape: BenignShape = BenignShape(),
                      real_forms: Sequence[str] = REAL_FORMS) -> Population:
    """One population: ``users`` (internal ML-1M ids) in every form of ``forms`` timed by the gaps of the
    ``real`` ML-100K users, and those ``real`` users at their own times (``real_forms``)."""
    unknown = sorted(set(real_forms) - set(REAL_FORMS))
    if unknown:
        raise ValueError(f"unknown real-timing forms {unknown}; known: {REAL_FORMS}")
    donors = DonorTimes(tuple(rating_gaps(real)))
    parts = [benign_traffic([dataset.sequence(int(u)) for u in users], [int(u) for u in users], forms,
                            dataset.max_len, seed=seed, shape=shape, max_accounts_per_form=per_form, times=donors)]
    for form in real_forms:
        burst = "each" if form == "ml100k" else "submission"
        parts.append(timed_benign_traffic(list(real), dataset.max_len, burst=burst, kind=form))
    return Population(concat_traffic(parts), len(users))
