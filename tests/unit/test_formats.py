"""The MovieLens readers, on generated files in every format and on hand-written broken ones."""

from __future__ import annotations

import numpy as np
import pytest

from recsec_lib.data import formats
from recsec_lib.data.synthetic import raw_item_id, raw_user_id, synthetic_items, synthetic_sequences


def expected_pairs(num_users=40, num_items=20, seed=0) -> set[tuple[int, int]]:
    seqs = synthetic_sequences(num_users=num_users, num_items=num_items, seed=seed)
    return {(raw_user_id(u), raw_item_id(i)) for u, seq in enumerate(seqs) for i in seq}


@pytest.mark.parametrize("fmt, form, columns", [
    ("ml-1m", "official", ["user", "item", "rating", "timestamp"]),
    ("ml-1m-sasrec", "sasrec-txt", ["user", "item"]),
    ("ml-100k", "official", ["user", "item", "rating", "timestamp"]),
    ("ml-20m", "official", ["user", "item", "rating", "timestamp"]),
])
def test_every_format_reads_back_what_was_written(synthetic_files, fmt, form, columns):
    folder = synthetic_files(fmt)
    name = {"ml-1m-sasrec": "ml-1m"}.get(fmt, fmt)
    raw = formats.read_folder(name, folder)
    assert raw.form == form
    assert list(raw.interactions.columns) == columns
    assert set(zip(raw.interactions.user, raw.interactions.item)) == expected_pairs()
    assert raw.interactions.dtypes["user"] == np.int64
    assert raw.chronological == (fmt == "ml-1m-sasrec")
    # movies: every synthetic item with its title, year and genres
    items = synthetic_items(20)
    movies = raw.movies.set_index("item")
    assert len(movies) == 20
    first = movies.loc[raw_item_id(2)]
    assert first.title == items.loc[2, "title"]
    assert first.year == items.loc[2, "year"]
    assert first.genres == items.loc[2, "genres"]


def test_ml20m_quoted_title_with_comma_and_half_star_ratings(synthetic_files):
    raw = formats.read_folder("ml-20m", synthetic_files("ml-20m"))
    title = raw.movies.set_index("item").loc[raw_item_id(1), "title"]
    assert ", The (" in title
    assert set(raw.interactions.rating) <= {0.5, 1.5, 2.5, 3.5, 4.5}


def test_ml100k_without_u_genre_uses_builtin_names(synthetic_files):
    folder = synthetic_files("ml-100k")
    with_file = formats.read_folder("ml-100k", folder).movies
    (folder / "u.genre").unlink()
    without = formats.read_folder("ml-100k", folder)
    assert list(without.movies.genres) == list(with_file.genres)
    assert all(path.name != "u.genre" for path in without.files)


def test_latin1_title_is_decoded(tmp_path):
    path = tmp_path / "movies.dat"
    path.write_bytes("7::Cité des enfants perdus, La (1995)::Adventure|Sci-Fi\n".encode("latin-1"))
    movies = formats.read_ml1m_movies(path)
    assert movies.loc[0, "title"] == "Cité des enfants perdus, La (1995)"
    assert movies.loc[0, "year"] == 1995
    assert movies.loc[0, "genres"] == ("Adventure", "Sci-Fi")


@pytest.mark.parametrize("title, year", [
    ("Toy Story (1995)", 1995),
    ("Star Wars: Episode IV - A New Hope (1977)", 1977),
    ("Babylon 5 (1994-1998)", 1994),
    ("Untitled", None),
    ("1984 (1956) ", 1956),
])
def test_parse_year(title, year):
    assert formats.parse_year(title) == year


@pytest.mark.parametrize("filename, content, reader, line", [
    ("ratings.dat", "1::10::5::100\n1::11::x::101\n", formats.read_ml1m_ratings, 2),
    ("ratings.dat", "1::10::5::100\n1::11::4\n", formats.read_ml1m_ratings, 2),
    ("ratings.dat", "1::10::5::100\n2::3::4::5\n1:11:4:5\n", formats.read_ml1m_ratings, 3),
    ("ml-1m.txt", "1 10\n1 11\n2 12 13\n", formats.read_sasrec_txt, 3),
    ("ml-1m.txt", "1 10\n\n2 12\n", formats.read_sasrec_txt, 2),
    ("u.data", "1\t10\t5\t100\n1\tten\t5\t100\n", formats.read_ml100k_ratings, 2),
    ("ratings.csv", "userId,movieId,rating,timestamp\n1,10,4.5,100\n1,11,,101\n", formats.read_ml20m_ratings, 3),
    ("movies.dat", "1::A (1990)::Drama\n2::B (1991)\n", formats.read_ml1m_movies, 2),
    ("u.item", "1|A (1990)|x||u|" + "|".join(["0"] * 19) + "\n2|B|x||u|0|1\n", formats.read_ml100k_movies, 2),
    ("movies.csv", "movieId,title,genres\n1,A (1990),Drama\nx,B,Drama\n", formats.read_ml20m_movies, 3),
])
def test_malformed_line_names_file_and_line(tmp_path, filename, content, reader, line):
    path = tmp_path / filename
    path.write_text(content, encoding="latin-1")
    with pytest.raises(ValueError, match=rf"{filename}:{line}:"):
        reader(path)


def test_wrong_csv_header_is_reported(tmp_path):
    path = tmp_path / "ratings.csv"
    path.write_text("user,movie,rating,time\n1,2,3,4\n")
    with pytest.raises(ValueError, match=r"ratings.csv:1: expected header"):
        formats.read_ml20m_ratings(path)


def test_bad_u_genre_is_reported(tmp_path):
    path = tmp_path / "u.genre"
    path.write_text("unknown|0\nAction|2\n")
    with pytest.raises(ValueError, match="genre indices"):
        formats.read_ml100k_genres(path)


def test_missing_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="no ml-1m files found"):
        formats.read_folder("ml-1m", tmp_path)
    (tmp_path / "ml-1m.txt").write_text("1 2\n")
    with pytest.raises(FileNotFoundError, match="movies.dat: file not found"):
        formats.read_folder("ml-1m", tmp_path)
    with pytest.raises(FileNotFoundError, match="u.data: file not found"):
        formats.read_ml100k_ratings(tmp_path / "u.data")


def test_unknown_dataset_layout():
    with pytest.raises(ValueError, match="unknown dataset 'ml-10m'"):
        formats.detect_layout("ml-10m", ".")


def test_official_ml1m_preferred_over_sasrec_file(synthetic_files):
    folder = synthetic_files("ml-1m", subdir="both")
    synthetic_files("ml-1m-sasrec", subdir="both")
    assert formats.read_folder("ml-1m", folder).form == "official"


@pytest.mark.parametrize("filename, content, reader, line, byte", [
    ("ml-1m.txt", b"1 10\n1 11\n2 1\xe92\n", formats.read_sasrec_txt, 3, "0xe9"),  # Latin-1 e-acute in ASCII
    ("ratings.csv", b"userId,movieId,rating,timestamp\n1,10,4.5,100\n1,\xff1,4,101\n", formats.read_ml20m_ratings,
     3, "0xff"),
    ("ratings.csv", b"userId,movieId,rating,\xfftimestamp\n1,10,4.5,100\n", formats.read_ml20m_ratings, 1, "0xff"),
    ("movies.csv", b"movieId,title,genres\n1,A (1990),Drama\n2,Caf\xe9 (1991),Drama\n", formats.read_ml20m_movies,
     3, "0xe9"),
])
def test_invalid_bytes_name_file_line_and_byte(tmp_path, filename, content, reader, line, byte):
    path = tmp_path / filename
    path.write_bytes(content)
    with pytest.raises(ValueError, match=rf"{filename}:{line}: byte {byte} at column \d+ is not valid"):
        reader(path)
