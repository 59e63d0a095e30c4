"""Readers for the MovieLens file formats, each giving one ``RawData``.

Formats (what GroupLens ships, plus the SASRec-style text file):

    ML-1M    ratings.dat  UserID::MovieID::Rating::Timestamp          (ASCII)
             movies.dat   MovieID::Title::Genres, genres "|"-separated (Latin-1)
    SASRec   ml-1m.txt    "UserID MovieID" per line, each user's items already
                          in chronological order; no ratings, no timestamps
    ML-100K  u.data       user<TAB>item<TAB>rating<TAB>timestamp
             u.item       id|title|release date|video date|IMDb URL|19 genre flags (Latin-1)
             u.genre      name|index  (optional: GENRES_100K is used when absent)
    ML-20M   ratings.csv  userId,movieId,rating,timestamp  (header, UTF-8)
             movies.csv   movieId,title,genres             (header, UTF-8, titles may be quoted)

Every reader raises ``ValueError("<file>:<line>: ...")`` on a malformed line
(bytes that are not valid in the file's encoding included), so
a broken download or a hand-edited file is found at once rather than turning
into silently wrong data. The large rating files are parsed with pandas' C
parser; only when that fails is the file re-read line by line to name the
offending line.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

# The 19 ML-100K genres in the order of u.item's flag columns (the content of u.genre).
GENRES_100K = (
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary",
    "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi",
    "Thriller", "War", "Western",
)

# A year in parentheses at the end of a title: "Toy Story (1995)", "Babylon 5 (1994-1998)".
_YEAR_AT_END = re.compile(r"\((\d{4})(?:[-–]\d{0,4})?\)\s*$")

INTERACTION_COLUMNS = ("user", "item")  # always present; "rating" and "timestamp" where the source has them
MOVIE_COLUMNS = ("item", "title", "year", "genres")


@dataclass(frozen=True, eq=False)
class RawData:
    """A dataset as read from its files, before any filtering.

    ``interactions`` rows are in file order; columns user, item (raw ids, int64)
    and, where the source has them, rating (float64) and timestamp (int64).
    ``movies`` has columns item (raw id), title, year (nullable Int64, parsed
    from the title) and genres (tuple of str).
    """

    name: str  # "ml-1m", "ml-100k", "ml-20m" or "synthetic"
    form: str  # which file layout was read: "official", "sasrec-txt"
    interactions: pd.DataFrame = field(repr=False)
    movies: pd.DataFrame = field(repr=False)
    files: tuple[Path, ...] = ()  # the files that were read (recorded with their sha256 in the cache)
    chronological: bool = False  # True when each user's rows are already in time order (SASRec file)
    source: str = ""  # where it came from, e.g. "mirror:/data/ml-1m/ml-1m.txt (sasrec-txt)" (set by load_raw)

    @property
    def has_ratings(self) -> bool:
        return "rating" in self.interactions.columns

    @property
    def has_timestamps(self) -> bool:
        return "timestamp" in self.interactions.columns


def parse_year(title: str) -> int | None:
    """The release year at the end of a MovieLens title, or None when it has none."""
    match = _YEAR_AT_END.search(title)
    return int(match.group(1)) if match else None


# --------------------------------------------------------------------------- helpers


def _require(path: Path) -> Path:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: file not found")
    return path


def decoded_lines(path: Path, encoding: str) -> Iterator[tuple[int, str]]:
    """(line number, text with its line ending) of each line of ``path``, decoded line by line.

    A byte that is not valid in ``encoding`` (e.g. a Latin-1 "é" in a file
    that must be ASCII) raises ValueError naming the file, the line and the
    byte, where reading the whole file as text would only say "position 4817".
    """
    with open(path, "rb") as handle:
        for line_no, raw in enumerate(handle, start=1):
            try:
                yield line_no, raw.decode(encoding)
            except UnicodeDecodeError as exc:
                shown = raw.rstrip(b"\r\n")
                raise ValueError(f"{path}:{line_no}: byte 0x{raw[exc.start]:02x} at column {exc.start + 1} is "
                                 f"not valid {encoding}: {shown!r}") from None


def _find_bad_line(path: Path, encoding: str, check: Callable[[str], None], skip_header: bool = False) -> None:
    """Re-read ``path`` line by line and raise ValueError naming the first line ``check`` rejects
    (or the first line that is not valid ``encoding``)."""
    for line_no, line in decoded_lines(path, encoding):
        if skip_header and line_no == 1:
            continue
        text = line.rstrip("\r\n")
        try:
            check(text)
        except ValueError as exc:
            raise ValueError(f"{path}:{line_no}: {exc}") from None


def _int_fields(text: str, sep: str, count: int, what: str) -> list[str]:
    parts = text.split(sep)
    if len(parts) != count:
        raise ValueError(f"expected {count} {sep!r}-separated fields ({what}), got {len(parts)}: {text!r}")
    return parts


def _check_ints(parts: list[str], text: str, float_at: tuple[int, ...] = ()) -> None:
    for pos, value in enumerate(parts):
        try:
            float(value) if pos in float_at else int(value)
        except ValueError:
            raise ValueError(f"field {pos + 1} is not a number: {text!r}") from None


def _fast_numeric(path: Path, sep: str, names: list[str], header: bool, encoding: str,
                  check: Callable[[str], None], dtypes: dict[str, str]) -> pd.DataFrame:
    """Parse a numeric delimited file with pandas; on any problem, locate the bad line and raise."""
    try:
        frame = pd.read_csv(path, sep=sep, header=0 if header else None, names=names, engine="c",
                            encoding=encoding, dtype=dtypes, skip_blank_lines=False)
        if frame.isna().to_numpy().any():
            raise ValueError("missing values")
    except (ValueError, pd.errors.ParserError, OverflowError):
        _find_bad_line(path, encoding, check, skip_header=header)
        raise ValueError(f"{path}: could not be parsed as {sep!r}-separated numbers")
    return frame


# --------------------------------------------------------------------------- interactions


def read_ml1m_ratings(path: Path) -> pd.DataFrame:
    """ML-1M ``ratings.dat``: user, item, rating, timestamp in file order."""
    path = _require(path)

    def check(text: str) -> None:
        _check_ints(_int_fields(text, "::", 4, "UserID::MovieID::Rating::Timestamp"), text)

    # "::" split on ":" gives empty fields between the values: columns 0, 2, 4, 6 hold the data.
    names = ["user", "_a", "item", "_b", "rating", "_c", "timestamp"]
    try:
        frame = pd.read_csv(path, sep=":", header=None, names=names, engine="c", encoding="latin-1",
                            dtype={"user": "int64", "item": "int64", "rating": "float64", "timestamp": "int64"},
                            skip_blank_lines=False)
        gaps = frame[["_a", "_b", "_c"]]
        if frame[["user", "item", "rating", "timestamp"]].isna().to_numpy().any() or gaps.notna().to_numpy().any():
            raise ValueError("bad layout")
    except (ValueError, pd.errors.ParserError, OverflowError):
        _find_bad_line(path, "latin-1", check)
        raise ValueError(f"{path}: could not be parsed as UserID::MovieID::Rating::Timestamp")
    return frame[["user", "item", "rating", "timestamp"]].reset_index(drop=True)


def read_sasrec_txt(path: Path) -> pd.DataFrame:
    """SASRec-style ``ml-1m.txt``: "UserID MovieID" per line; columns user, item (file order = time order)."""
    path = _require(path)

    def check(text: str) -> None:
        _check_ints(_int_fields(text, " ", 2, "UserID MovieID"), text)

    return _fast_numeric(path, " ", ["user", "item"], header=False, encoding="ascii", check=check,
                         dtypes={"user": "int64", "item": "int64"})


def read_ml100k_ratings(path: Path) -> pd.DataFrame:
    """ML-100K ``u.data``: user, item, rating, timestamp (tab-separated)."""
    path = _require(path)

    def check(text: str) -> None:
        _check_ints(_int_fields(text, "\t", 4, "user item rating timestamp"), text)

    return _fast_numeric(path, "\t", ["user", "item", "rating", "timestamp"], header=False, encoding="latin-1",
                         check=check, dtypes={"user": "int64", "item": "int64", "rating": "float64",
                                              "timestamp": "int64"})


def read_ml20m_ratings(path: Path) -> pd.DataFrame:
    """ML-20M ``ratings.csv`` (header userId,movieId,rating,timestamp; ratings in half stars)."""
    path = _require(path)
    header = next((text.strip() for _, text in decoded_lines(path, "utf-8")), "")
    if header.split(",") != ["userId", "movieId", "rating", "timestamp"]:
        raise ValueError(f"{path}:1: expected header 'userId,movieId,rating,timestamp', got {header!r}")

    def check(text: str) -> None:
        _check_ints(_int_fields(text, ",", 4, "userId,movieId,rating,timestamp"), text, float_at=(2,))

    return _fast_numeric(path, ",", ["user", "item", "rating", "timestamp"], header=True, encoding="utf-8",
                         check=check, dtypes={"user": "int64", "item": "int64", "rating": "float64",
                                              "timestamp": "int64"})


# --------------------------------------------------------------------------- movies


def _movies_frame(rows: list[tuple[int, str, tuple[str, ...]]]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=["item", "title", "genres"])
    frame["item"] = frame["item"].astype("int64")
    frame["year"] = pd.array([parse_year(t) for t in frame["title"]], dtype="Int64")
    return frame[list(MOVIE_COLUMNS)]


def _split_genres(text: str) -> tuple[str, ...]:
    return tuple(g for g in text.split("|") if g and g != "(no genres listed)")


def read_ml1m_movies(path: Path) -> pd.DataFrame:
    """ML-1M ``movies.dat`` (Latin-1): MovieID::Title::Genres."""
    path = _require(path)
    rows = []
    with open(path, encoding="latin-1") as handle:
        for line_no, line in enumerate(handle, start=1):
            text = line.rstrip("\r\n")
            parts = text.split("::")
            if len(parts) != 3 or not parts[0].isdigit():
                raise ValueError(f"{path}:{line_no}: expected MovieID::Title::Genres, got {text!r}")
            rows.append((int(parts[0]), parts[1], _split_genres(parts[2])))
    return _movies_frame(rows)


def read_ml100k_genres(path: Path) -> tuple[str, ...]:
    """ML-100K ``u.genre``: "name|index" lines; returns the names in index order."""
    path = _require(path)
    names: dict[int, str] = {}
    with open(path, encoding="latin-1") as handle:
        for line_no, line in enumerate(handle, start=1):
            text = line.strip()
            if not text:
                continue
            parts = text.split("|")
            if len(parts) != 2 or not parts[1].isdigit():
                raise ValueError(f"{path}:{line_no}: expected name|index, got {text!r}")
            names[int(parts[1])] = parts[0]
    if sorted(names) != list(range(len(names))):
        raise ValueError(f"{path}: genre indices must be 0..{len(names) - 1}, got {sorted(names)}")
    return tuple(names[i] for i in range(len(names)))


def read_ml100k_movies(path: Path, genre_names: tuple[str, ...] = GENRES_100K) -> pd.DataFrame:
    """ML-100K ``u.item`` (Latin-1, "|"-separated): id, title, dates, URL, then one 0/1 flag per genre."""
    path = _require(path)
    width = 5 + len(genre_names)
    rows = []
    with open(path, encoding="latin-1") as handle:
        for line_no, line in enumerate(handle, start=1):
            text = line.rstrip("\r\n")
            if not text:
                continue
            parts = text.split("|")
            flags = parts[5:]
            if len(parts) != width or not parts[0].isdigit() or any(f not in ("0", "1") for f in flags):
                raise ValueError(f"{path}:{line_no}: expected id|title|release|video|url and "
                                 f"{len(genre_names)} 0/1 genre flags, got {text!r}")
            genres = tuple(name for name, flag in zip(genre_names, flags) if flag == "1" and name != "unknown")
            rows.append((int(parts[0]), parts[1], genres))
    return _movies_frame(rows)


def read_ml20m_movies(path: Path) -> pd.DataFrame:
    """ML-20M ``movies.csv`` (UTF-8, header movieId,title,genres; titles with commas are quoted)."""
    path = _require(path)
    rows = []
    reader = csv.reader(text for _, text in decoded_lines(path, "utf-8"))
    for record in reader:
        line_no = reader.line_num
        if line_no == 1:
            if record != ["movieId", "title", "genres"]:
                raise ValueError(f"{path}:1: expected header 'movieId,title,genres', got {record!r}")
            continue
        if len(record) != 3 or not record[0].isdigit():
            raise ValueError(f"{path}:{line_no}: expected movieId,title,genres, got {record!r}")
        rows.append((int(record[0]), record[1].strip(), _split_genres(record[2])))
    return _movies_frame(rows)


# --------------------------------------------------------------------------- whole folders

# Per dataset, the file layouts a folder may hold, in order of preference:
# (form, interactions file, movies file).
LAYOUTS: dict[str, tuple[tuple[str, str, str], ...]] = {
    "ml-1m": (("official", "ratings.dat", "movies.dat"), ("sasrec-txt", "ml-1m.txt", "movies.dat")),
    "ml-100k": (("official", "u.data", "u.item"),),
    "ml-20m": (("official", "ratings.csv", "movies.csv"),),
}
LAYOUTS["synthetic"] = LAYOUTS["ml-1m"]  # the synthetic data is written in the ML-1M layouts


def detect_layout(name: str, folder: Path) -> tuple[str, Path, Path] | None:
    """(form, interactions path, movies path) of the first layout present in ``folder``, else None."""
    if name not in LAYOUTS:
        raise ValueError(f"unknown dataset {name!r}; expected one of {sorted(LAYOUTS)}")
    folder = Path(folder)
    for form, interactions, movies in LAYOUTS[name]:
        if (folder / interactions).is_file():
            return form, folder / interactions, folder / movies
    return None


def read_folder(name: str, folder: Path) -> RawData:
    """Read dataset ``name`` from a folder holding one of its layouts (see LAYOUTS)."""
    folder = Path(folder)
    layout = detect_layout(name, folder)
    if layout is None:
        expected = " or ".join(f"{i} + {m}" for _, i, m in LAYOUTS[name])
        raise FileNotFoundError(f"{folder}: no {name} files found (expected {expected})")
    form, interactions_path, movies_path = layout
    if not movies_path.is_file():
        raise FileNotFoundError(f"{movies_path}: file not found (needed beside {interactions_path.name})")
    files = [interactions_path, movies_path]
    chronological = False
    if interactions_path.name == "ratings.dat":
        interactions = read_ml1m_ratings(interactions_path)
        movies = read_ml1m_movies(movies_path)
    elif interactions_path.name.endswith(".txt"):
        interactions = read_sasrec_txt(interactions_path)
        movies = read_ml1m_movies(movies_path)
        chronological = True
    elif interactions_path.name == "u.data":
        interactions = read_ml100k_ratings(interactions_path)
        genre_path = folder / "u.genre"
        genre_names = GENRES_100K
        if genre_path.is_file():
            genre_names = read_ml100k_genres(genre_path)
            files.append(genre_path)
        movies = read_ml100k_movies(movies_path, genre_names)
    else:
        interactions = read_ml20m_ratings(interactions_path)
        movies = read_ml20m_movies(movies_path)
    return RawData(name=name, form=form, interactions=interactions, movies=movies,
                   files=tuple(files), chronological=chronological)

