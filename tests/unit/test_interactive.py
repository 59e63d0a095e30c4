"""The interactive session, driven through a StringIO standard input.

Catalogue: internal ids 1..4 with MovieLens ids 10, 20, 30, 40 (so a mix-up of
internal and original ids shows). The stand-in model ranks items by internal id
and does NOT filter the history: the session must do that itself.
"""

import io

import numpy as np
import pandas as pd
import pytest

from recsec_lib.data.dataset import SequenceDataset
from recsec_lib.recommend.interactive import Session, run_session


def tiny_dataset() -> SequenceDataset:
    items = pd.DataFrame({
        "item": [1, 2, 3, 4],
        "title": ["Toy Story (1995)", "Alien (1979)", "Aliens (1986)", "Heat"],
        "year": pd.array([1995, 1979, 1986, None], dtype="Int64"),  # Heat's year unknown on purpose
        "genres": [("Animation", "Children's"), ("Horror", "Sci-Fi"), ("Action", "Sci-Fi"), ("Action",)],
    }).set_index("item")
    sequences = [[1, 2, 3], [2, 3], [3, 2], [4, 3]]  # counts: item 3: 4, item 2: 3, items 1 and 4: 1
    offsets = np.r_[0, np.cumsum([len(s) for s in sequences])].astype(np.int64)
    return SequenceDataset(name="tiny", num_items=4, max_len=10, user_raw_ids=np.arange(1, 5),
                           item_raw_ids=np.array([-1, 10, 20, 30, 40]),
                           items_flat=np.concatenate(sequences).astype(np.int64), offsets=offsets, items=items)


def by_id(histories, k):
    """Stand-in model: items 1, 2, 3, ... for every history, seen or not."""
    return np.tile(np.arange(1, k + 1), (len(histories), 1))


def drive(commands: str, recommend_fn=by_id, top_k=2) -> tuple[str, Session]:
    session = Session(tiny_dataset(), recommend_fn, top_k=top_k, model_label="stand-in")
    out = io.StringIO()
    assert run_session(session, io.StringIO(commands), out) == 0
    return out.getvalue(), session


def test_search_is_case_insensitive_and_shows_original_id_year_genres():
    out, _ = drive("search alien\nexit\n")
    # Both Alien films; Aliens (4 interactions) before Alien (3).
    assert "[30] Aliens (1986) · Action|Sci-Fi\n[20] Alien (1979) · Horror|Sci-Fi" in out
    assert "Toy Story" not in out


def test_add_recommend_excludes_history():
    out, session = drive("add 10\nadd 30 20\nrecommend\nexit\n")
    assert session.history == [1, 3, 2]
    assert "added #1: [10] Toy Story (1995)" in out and "added #3: [20] Alien (1979)" in out
    # Only item 4 (id 40) is unseen; the stand-in ranks 1, 2, 3 first.
    assert "top 1 from stand-in after 3 movies:\n  1. [40] Heat (year unknown) · Action" in out


def test_recommend_fills_k_after_filtering():
    out, _ = drive("add 10\nrecommend\nexit\n")
    assert "  1. [20] Alien (1979)" in out and "  2. [30] Aliens (1986)" in out
    assert "[10] Toy Story" not in out.split("top 2")[1]


def test_show_remove_clear_popular():
    out, session = drive("add 10 20 30\nremove 20\nshow\nremove #1\nshow\nremove 1\nclear\nshow\npopular\nexit\n")
    assert "removed movie id 20: [20] Alien (1979)" in out
    assert "  1. [10] Toy Story (1995) · Animation|Children's\n  2. [30] Aliens (1986)" in out
    assert "removed #1: [10] Toy Story (1995)" in out
    assert "removed #1 (1 is no movie id in the history: read as a position): [30] Aliens (1986)" in out
    assert "cleared 0 movies" in out and "the history is empty" in out
    assert "the 2 most watched movies not in the history:\n  1. [30] Aliens" in out
    assert session.history == []


def test_bad_inputs_get_one_line_each():
    commands = "\n".join([
        "add 99",          # unknown id
        "add ten",         # non-numeric id
        "add",             # missing argument
        "remove 10",       # empty history
        "recommend",       # empty history
        "frobnicate",      # unknown command
        "add 10",
        "add 10",          # already there
        "remove 5",        # neither id nor position
        "remove #0",       # position out of range
        "remove x",        # non-numeric
        "remove",          # missing argument
        "search",          # missing argument
        "search zzz",      # no match
        "",                # blank line: nothing
    ]) + "\n"              # no exit: end of input
    out, session = drive(commands)
    for expected in [
        "unknown movie id 99 (not in tiny",
        "not a movie id: 'ten'",
        "usage: add <movie id>",
        "the history is empty; nothing to remove",
        "the history is empty; add movies first",
        "unknown command 'frobnicate'",
        "already in the history: [10] Toy Story",
        "5 is not a movie id in the history, nor a position 1..1",
        "0 is not a position 1..1",
        "not a number: 'x'",
        "usage: remove <movie id> | remove #<position>",
        "usage: search",
        "no title contains 'zzz'",
        "end of input; bye",
    ]:
        assert expected in out, expected
    assert "Traceback" not in out
    assert session.history == [1]


def test_no_model_and_failing_model():
    out, _ = drive("add 10\nrecommend\n", recommend_fn=None)
    assert "no model loaded" in out

    def broken(histories, k):
        raise RuntimeError("model exploded")

    out, _ = drive("add 10\nrecommend\nshow\nexit\n", recommend_fn=broken)
    assert "error: RuntimeError: model exploded" in out and "  1. [10] Toy Story" in out


def test_full_history_and_help():
    out, _ = drive("add 10 20 30 40\nrecommend\nhelp\nquit\n")
    assert "every movie of the catalogue is already in the history" in out
    assert "remove #<n>" in out and out.rstrip().endswith("bye")


def test_bad_session_parameters():
    with pytest.raises(ValueError, match="top_k"):
        Session(tiny_dataset(), by_id, top_k=0)
    with pytest.raises(ValueError, match="max_search_results"):
        Session(tiny_dataset(), by_id, max_search_results=0)


def test_cli_through_a_pipe_with_a_real_checkpoint(tmp_path, monkeypatch, capsys):
    from recsec_lib.recommend.checkpoints import save_checkpoint
    from recsec_lib.cli import main
    from recsec_lib.data.prepare import prepare_dataset
    from recsec_lib.models.registry import build_model

    dataset = prepare_dataset("synthetic", data_dir=tmp_path / "data")
    model = build_model("meanemb", dataset.num_items, dataset.max_len)
    checkpoint = save_checkpoint(tmp_path / "meanemb.pt", model, "meanemb", dataset)
    first = int(dataset.item_raw_ids[1])
    monkeypatch.setattr("sys.stdin", io.StringIO(f"add {first}\nrecommend\nexit\n"))
    code = main(["interactive", "--dataset", "synthetic", "--data-dir", str(tmp_path / "data"),
                 "--model", str(checkpoint), "--top-k", "3", "--device", "cpu"])
    out = capsys.readouterr().out
    assert code == 0
    recommended = out.split("top 3 from meanemb (meanemb.pt) after 1 movies:")[1].split("recsec>")[0]
    assert len(recommended.strip().splitlines()) == 3 and f"[{first}]" not in recommended


def test_cli_missing_checkpoint(tmp_path, capsys):
    from recsec_lib.cli import main

    assert main(["interactive", "--dataset", "synthetic", "--model", str(tmp_path / "none.pt")]) == 2
    assert "none.pt does not exist" in capsys.readouterr().err


def test_natural_title_moves_the_article_back():
    from recsec_lib.recommend.interactive import natural_title

    assert natural_title("Matrix, The (1999)") == "The Matrix (1999)"
    assert natural_title("Bug's Life, A (1998)") == "A Bug's Life (1998)"
    assert natural_title("City of Lost Children, The (Cité des enfants perdus, La) (1995)") == \
        "The City of Lost Children (Cité des enfants perdus, La) (1995)"
    assert natural_title("Toy Story (1995)") == "Toy Story (1995)"


def test_search_finds_titles_with_a_trailing_article():
    data = tiny_dataset()
    items = data.items.copy()
    items.loc[2, "title"] = "Alien, The (1979)"
    import dataclasses
    session = Session(dataclasses.replace(data, items=items), by_id)
    assert session.execute("search the alien").lines == ("[20] Alien, The (1979) · Horror|Sci-Fi",)


def test_remove_prefers_a_movie_id_in_the_history_and_says_which_rule_it_applied():
    """MovieLens ids 1..4 overlap with positions: 'remove 2' must remove movie 2, not the 2nd movie."""
    import dataclasses

    dataset = dataclasses.replace(tiny_dataset(), item_raw_ids=np.array([-1, 3, 1, 2, 4]))
    session = Session(dataset, by_id, top_k=2)
    out = io.StringIO()
    run_session(session, io.StringIO("add 3 1 2\nremove 2\nremove 2\nshow\nexit\n"), out)
    text = out.getvalue()
    # history: #1 = movie 3 (Toy Story), #2 = movie 1 (Alien), #3 = movie 2 (Aliens)
    assert "removed movie id 2: [2] Aliens (1986)" in text
    # movie 2 is gone: the second 'remove 2' can only mean position 2 (movie 1), and says so
    assert "removed #2 (2 is no movie id in the history: read as a position): [1] Alien (1979)" in text
    assert session.history == [1]


def test_invalid_bytes_on_stdin_do_not_end_the_session(tmp_path, monkeypatch, capsys):
    from recsec_lib.cli import main

    stdin = io.TextIOWrapper(io.BytesIO(b"help\nadd \xff\xfe\nsearch caf\xe9\nshow\nexit\n"), encoding="utf-8")
    monkeypatch.setattr("sys.stdin", stdin)
    code = main(["interactive", "--dataset", "synthetic", "--data-dir", str(tmp_path / "data")])
    out = capsys.readouterr().out
    assert code == 0
    assert out.count("ignored a line with bytes that are not valid text") == 2
    assert "the history is empty" in out and out.rstrip().endswith("bye")


def test_strict_stream_decode_error_is_reported_not_raised():
    """Without errors="replace" (the CLI sets it) a decode error loses what that read held, but is one line."""
    stdin = io.TextIOWrapper(io.BytesIO(b"add 10\n\xff\nshow\nexit\n"), encoding="utf-8")
    session = Session(tiny_dataset(), by_id)
    out = io.StringIO()
    assert run_session(session, stdin, out) == 0
    assert "not valid utf-8 text" in out.getvalue() and "bye" in out.getvalue()
