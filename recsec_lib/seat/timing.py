"""Real query timing: ML-100K's rating timestamps as benign clients' query times, and time models.

ML-1M as the project has it keeps no timestamps; ML-100K's ``u.data`` does
(``user item rating timestamp``, seconds). Its users rate in bursts — most
ratings share their second with another rating of the same user — because
the MovieLens site took ratings a page at a time. A recommender's client
queries after each new interaction, so these timestamps are what a detector's
rate statistics must accept from real people.

* ``read_timed_histories`` — each ML-100K user's ratings in time order (ties
  in file order), with their timestamps;
* ``title_mapping`` / ``map_to_dataset`` — ML-100K movies mapped to the
  processed ML-1M items by exact title (``"Toy Story (1995)"``; surrounding
  white space ignored); a rating of a movie that does not map is dropped with
  its time (the service cannot be told about a movie it does not know);
* ``split_timed_users`` — the users split by id into a calibration and a
  held-out block (as ``traffic.split_users`` does for ML-1M);
* ``timed_queries`` — when the queries go out. **Rule:** one query after each
  rating, at the rating's timestamp: the growing prefix of all ratings so far
  (``burst="each"``, the default). A burst of k ratings in one second is then
  k queries in that second, each one item longer — the strictest reading for
  a rate cap. ``burst="submission"`` sends one query per distinct timestamp
  (after the last rating of the second: a page submitted at once) and is
  reported beside it;
* time models for forms built on ML-1M histories: ``ExponentialTimes`` (the
  first version's: Exponential gaps of a stated mean) and ``DonorTimes`` (the
  gaps between real ML-100K users' consecutive ratings, one donor's sequence
  after another, so an ML-1M history gets real burst-and-pause timing).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

BURST_RULES = ("each", "submission")


@dataclass(frozen=True, eq=False)
class TimedHistory:
    """One user's ratings in time order."""

    user: int  # the user's id in its dataset (ML-100K user id)
    items: np.ndarray  # [n] item ids
    times: np.ndarray  # [n] rating times in seconds, non-decreasing

    def __post_init__(self) -> None:
        if len(self.items) != len(self.times):
            raise ValueError(f"user {self.user}: {len(self.items)} items but {len(self.times)} times")
        if len(self.times) and np.any(np.diff(self.times) < 0):
            raise ValueError(f"user {self.user}: rating times go backwards")


def read_timed_histories(path: str | Path) -> list[TimedHistory]:
    """Every user's ratings of an ML-100K ``u.data`` file (tab-separated user, item, rating, timestamp),
    users in id order, each in time order (ratings of the same second in file order)."""
    from recsec_lib.data.formats import read_ml100k_ratings

    frame = read_ml100k_ratings(Path(path))
    frame = frame.assign(order=np.arange(len(frame))).sort_values(["user", "timestamp", "order"], kind="stable")
    users = frame["user"].to_numpy()
    items = frame["item"].to_numpy(dtype=np.int64)
    times = frame["timestamp"].to_numpy(dtype=np.float64)
    bounds = np.r_[0, np.flatnonzero(np.diff(users)) + 1, len(users)]
    return [TimedHistory(int(users[a]), items[a:b], times[a:b]) for a, b in zip(bounds[:-1], bounds[1:])]


def title_mapping(source_titles: dict[int, str], target_titles: dict[int, str]) -> dict[int, int]:
    """{source id: target id} for the source movies whose title (white space around it ignored) is a target
    title; a title held by several target movies maps to the lowest id."""
    by_title: dict[str, int] = {}
    for item, title in sorted(target_titles.items()):
        by_title.setdefault(str(title).strip(), item)
    return {item: by_title[str(title).strip()] for item, title in source_titles.items()
            if str(title).strip() in by_title}


@dataclass(frozen=True)
class MappingReport:
    """How much of ML-100K maps onto the dataset's items."""

    source_movies: int  # movies in u.item
    mapped_to_catalogue: int  # ... whose title is an ML-1M title (movies.dat), when that file was given
    mapped_to_dataset: int  # ... whose title is a title of the processed dataset (after its 5-core filter)
    ratings: int
    ratings_mapped: int  # ratings of movies mapped to the dataset


def map_to_dataset(dataset, ml100k_dir: str | Path, ml1m_movies: str | Path | None = None
                   ) -> tuple[dict[int, int], MappingReport]:
    """({ML-100K movie id: the dataset's internal item id}, a report) by exact title.

    ``dataset`` is the processed ML-1M ``SequenceDataset`` (its ``items`` hold
    the titles); ``ml1m_movies`` (``movies.dat``) only adds the count against
    the whole ML-1M catalogue to the report.
    """
    from recsec_lib.data.formats import read_ml100k_movies, read_ml100k_ratings, read_ml1m_movies

    folder = Path(ml100k_dir)
    movies = read_ml100k_movies(folder / "u.item")
    source = dict(zip(movies["item"].tolist(), movies["title"].tolist()))
    targets = {int(i): str(t) for i, t in dataset.items["title"].items()}
    mapping = title_mapping(source, targets)
    catalogue = -1
    if ml1m_movies is not None:
        full = read_ml1m_movies(Path(ml1m_movies))
        catalogue = len(title_mapping(source, dict(zip(full["item"].tolist(), full["title"].tolist()))))
    ratings = read_ml100k_ratings(folder / "u.data")["item"].to_numpy()
    report = MappingReport(len(source), catalogue, len(mapping), len(ratings),
                           int(np.isin(ratings, np.array(sorted(mapping))).sum()) if mapping else 0)
    return mapping, report


def map_histories(histories: Sequence[TimedHistory], mapping: dict[int, int], min_len: int = 1
                  ) -> list[TimedHistory]:
    """The histories with every item mapped (unmapped ratings dropped with their times); users left with
    fewer than ``min_len`` ratings are dropped. A movie rated twice after mapping keeps its first rating."""
    out = []
    for h in histories:
        keep = np.array([int(i) in mapping for i in h.items], dtype=bool)
        items = np.array([mapping[int(i)] for i in h.items[keep]], dtype=np.int64)
        times = h.times[keep]
        _, first = np.unique(items, return_index=True)
        first = np.sort(first)
        if len(first) >= min_len:
            out.append(TimedHistory(h.user, items[first], times[first]))
    return out


def split_timed_users(histories: Sequence[TimedHistory], calibration_fraction: float = 0.5
                      ) -> tuple[list[TimedHistory], list[TimedHistory]]:
    """(calibration, held-out): the first ``calibration_fraction`` of the users by id, and the rest."""
    if not 0 < calibration_fraction < 1:
        raise ValueError(f"calibration_fraction must be in (0, 1), got {calibration_fraction}")
    ordered = sorted(histories, key=lambda h: h.user)
    cut = int(round(len(ordered) * calibration_fraction))
    if cut == 0 or cut == len(ordered):
        raise ValueError(f"{len(ordered)} users cannot be split into two non-empty blocks at {calibration_fraction}")
    return ordered[:cut], ordered[cut:]


def timed_queries(times: np.ndarray, burst: str = "each") -> tuple[np.ndarray, np.ndarray]:
    """(ends [Q], query times [Q]) of the queries a client sends for ratings at ``times`` (see the module
    docstring: ``each`` rating, or one per ``submission`` second)."""
    if burst not in BURST_RULES:
        raise ValueError(f"burst must be one of {BURST_RULES}, got {burst!r}")
    times = np.asarray(times, dtype=np.float64)
    ends = np.arange(1, len(times) + 1)
    if burst == "submission" and len(times):
        last_of_second = np.r_[times[1:] != times[:-1], True]
        return ends[last_of_second], times[last_of_second]
    return ends, times


def rating_gaps(histories: Sequence[TimedHistory]) -> list[np.ndarray]:
    """Each user's gaps between consecutive ratings, in seconds (the material of ``DonorTimes``)."""
    return [np.diff(h.times) for h in histories if len(h.times) > 1]


def busiest_window(times: np.ndarray, window_s: float = 3600.0) -> int:
    """Most ratings within any window (t - window, t] (the rate cap's statistic on one user's ratings)."""
    times = np.sort(np.asarray(times, dtype=np.float64))
    if len(times) == 0:
        return 0
    return int((np.arange(len(times)) - np.searchsorted(times, times - window_s, side="right") + 1).max())


@dataclass(frozen=True)
class ExponentialTimes:
    """Interaction times with Exponential(``mean_gap_s``) gaps (the first version's stated model)."""

    mean_gap_s: float = 1800.0

    def interaction_times(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """[n] seconds since the first interaction."""
        gaps = rng.exponential(self.mean_gap_s, size=n)
        gaps[:1] = 0.0
        return np.cumsum(gaps)


@dataclass(frozen=True, eq=False)
class DonorTimes:
    """Interaction times from real users' gaps: a random donor's gap sequence in order, then another's.

    ``gaps`` holds one array of gaps per donor (``rating_gaps``); the donors of
    calibration traffic and of held-out traffic must be different users.
    """

    gaps: tuple[np.ndarray, ...]
    label: str = "donor"

    def __post_init__(self) -> None:
        if not self.gaps or all(len(g) == 0 for g in self.gaps):
            raise ValueError("DonorTimes needs at least one donor with a gap")

    def interaction_times(self, n: int, rng: np.random.Generator) -> np.ndarray:
        pieces, have = [np.zeros(1)], 1
        while have < n:
            donor = self.gaps[int(rng.integers(len(self.gaps)))]
            pieces.append(donor[:n - have])
            have += len(pieces[-1])
        return np.cumsum(np.concatenate(pieces))[:n]
