"""A terminal session to build a viewing history and ask a model what comes next.

The user works with the ORIGINAL MovieLens movie ids (the ones in movies.dat
and on the MovieLens site); the session maps them to the dataset's internal ids
and back. ``Session`` holds the logic and returns text, so tests drive it with
a stand-in recommender; ``run_session`` reads commands line by line from any
text stream (a terminal or a pipe) and writes the replies to another.

Every bad input — unknown command or id, missing or non-numeric argument,
recommending for an empty history, end of input — is answered with one line;
the loop never ends in a traceback.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TextIO

import numpy as np
import pandas as pd

from recsec_lib.recommend.compare import RecommendFn, unseen_top_k
from recsec_lib.data.dataset import SequenceDataset

PROMPT = "recsec> "
# MovieLens moves leading articles to the end ("Matrix, The (1999)"); search also matches "The Matrix".
_TRAILING_ARTICLE = re.compile(r"^(?P<name>.*), (?P<article>The|A|An|La|Le|Les|L'|Il|El|Das|Der|Die)"
                               r"(?P<rest>\s*\(.*)?$")
HELP = """\
commands:
  search <words>        movies whose title contains <words> (case-insensitive)
  add <id> [<id> ...]   append movies (MovieLens ids) to the history, newest last
  remove <id>           remove a movie by its MovieLens id
  remove #<n>           remove the n-th movie of the history (as numbered by 'show');
                        a bare number is a movie id when that movie is in the history,
                        else a position (the reply says which rule it applied)
  clear                 empty the history
  show                  the history, oldest first
  recommend             the model's top-k next movies (never one already in the history)
  popular               the most watched movies not in the history
  help                  this text
  exit                  leave (also 'quit' or end of input)"""


@dataclass(frozen=True)
class Reply:
    """What a command prints, and whether the session is over."""

    lines: tuple[str, ...]
    done: bool = False


class Session:
    """One user's history and the commands that act on it."""

    def __init__(self, dataset: SequenceDataset, recommend_fn: RecommendFn | None = None, top_k: int = 10,
                 model_label: str = "model", max_search_results: int = 20):
        if top_k < 1:
            raise ValueError(f"parameter 'top_k' must be >= 1, got {top_k}")
        if max_search_results < 1:
            raise ValueError(f"parameter 'max_search_results' must be >= 1, got {max_search_results}")
        self.dataset = dataset
        self.recommend_fn = recommend_fn
        self.top_k = min(top_k, dataset.num_items)
        self.model_label = model_label
        self.max_search_results = max_search_results
        self.history: list[int] = []  # internal ids, oldest first
        raw = dataset.item_raw_ids  # [num_items + 1]
        self._internal_of_raw = {int(raw[i]): i for i in range(1, dataset.num_items + 1)}
        self._popularity = np.bincount(dataset.items_flat, minlength=dataset.num_items + 1)  # [num_items + 1]
        titles = dataset.items["title"].astype(str)
        self._search_text = titles + "\n" + titles.map(natural_title)  # both forms of each title
        self._commands: dict[str, Callable[[str], Reply]] = {
            "search": self.search, "add": self.add, "remove": self.remove, "clear": self.clear,
            "show": self.show, "recommend": self.recommend, "popular": self.popular, "help": self.help,
            "exit": self.exit, "quit": self.exit,
        }

    # ---- dispatch ---------------------------------------------------------------------------------
    def execute(self, line: str) -> Reply:
        """Run one command line; blank lines do nothing."""
        words = line.strip().split(maxsplit=1)
        if not words:
            return Reply(())
        command, argument = words[0].lower(), (words[1] if len(words) > 1 else "")
        handler = self._commands.get(command)
        if handler is None:
            return Reply((f"unknown command {command!r}; type 'help' for the list",))
        return handler(argument.strip())

    # ---- commands ---------------------------------------------------------------------------------
    def search(self, query: str) -> Reply:
        if not query:
            return Reply(("usage: search <words in the title>",))
        hits = self._search_text[self._search_text.str.contains(query, case=False, regex=False)]
        if hits.empty:
            return Reply((f"no title contains {query!r}",))
        order = sorted(hits.index, key=lambda item: (-self._popularity[item], item))  # most watched first
        lines = [self.describe(int(item)) for item in order[: self.max_search_results]]
        if len(order) > self.max_search_results:
            lines.append(f"... {len(order) - self.max_search_results} more; refine the search")
        return Reply(tuple(lines))

    def add(self, argument: str) -> Reply:
        tokens = argument.split()
        if not tokens:
            return Reply(("usage: add <movie id> [<movie id> ...]",))
        lines = []
        for token in tokens:
            item, problem = self._parse_movie_id(token)
            if problem:
                lines.append(problem)
            elif item in self.history:
                lines.append(f"already in the history: {self.describe(item)}")
            else:
                self.history.append(item)
                lines.append(f"added #{len(self.history)}: {self.describe(item)}")
        return Reply(tuple(lines))

    def remove(self, argument: str) -> Reply:
        tokens = argument.split()
        if len(tokens) != 1:
            return Reply(("usage: remove <movie id> | remove #<position>",))
        token = tokens[0]
        if not self.history:
            return Reply(("the history is empty; nothing to remove",))
        by_position = token.startswith("#")
        number = _parse_int(token[1:] if by_position else token)
        if number is None:
            return Reply((f"not a number: {token!r}; usage: remove <movie id> | remove #<position>",))
        if not by_position:
            item = self._internal_of_raw.get(number)
            if item is not None and item in self.history:
                self.history.remove(item)
                return Reply((f"removed movie id {number}: {self.describe(item)}",))
        if 1 <= number <= len(self.history):
            item = self.history.pop(number - 1)
            rule = "" if by_position else f" ({number} is no movie id in the history: read as a position)"
            return Reply((f"removed #{number}{rule}: {self.describe(item)}",))
        what = "position" if by_position else "movie id in the history, nor a position"
        return Reply((f"{number} is not a {what} 1..{len(self.history)}",))

    def clear(self, argument: str = "") -> Reply:
        count = len(self.history)
        self.history.clear()
        return Reply((f"cleared {count} movie{'s' * (count != 1)}",))

    def show(self, argument: str = "") -> Reply:
        if not self.history:
            return Reply(("the history is empty; add movies with 'add <id>' (find ids with 'search')",))
        return Reply(tuple(f"{n:>3}. {self.describe(item)}" for n, item in enumerate(self.history, 1)))

    def recommend(self, argument: str = "") -> Reply:
        if self.recommend_fn is None:
            return Reply(("no model loaded (start with --model <checkpoint>); try 'popular'",))
        if not self.history:
            return Reply(("the history is empty; add movies first, e.g. 'search star' then 'add <id>'",))
        items = self.recommended_items()
        if not items:
            return Reply(("every movie of the catalogue is already in the history",))
        header = f"top {len(items)} from {self.model_label} after {len(self.history)} movies:"
        return Reply((header, *(f"{n:>3}. {self.describe(item)}" for n, item in enumerate(items, 1))))

    def popular(self, argument: str = "") -> Reply:
        seen = set(self.history)
        order = np.argsort(-self._popularity[1:], kind="stable") + 1  # ids by count, ties by lower id
        items = [int(i) for i in order if int(i) not in seen][: self.top_k]
        return Reply((f"the {len(items)} most watched movies not in the history:",
                      *(f"{n:>3}. {self.describe(item)}" for n, item in enumerate(items, 1))))

    def help(self, argument: str = "") -> Reply:
        return Reply(tuple(HELP.splitlines()))

    def exit(self, argument: str = "") -> Reply:
        return Reply(("bye",), done=True)

    # ---- helpers ----------------------------------------------------------------------------------
    def recommended_items(self) -> list[int]:
        """The model's top-k internal ids for the current history, none of them in the history."""
        k = min(self.top_k, self.dataset.num_items - len(self.history))
        return unseen_top_k(self.recommend_fn, [self.history], k, self.dataset.num_items)[0] if k > 0 else []

    def describe(self, item: int) -> str:
        """'<raw id>  <title without year>  <year>  <genres>' for an internal id."""
        row = self.dataset.items.loc[item]
        year = "" if pd.isna(row["year"]) else int(row["year"])
        title = re.sub(rf"\s*\({year}\)$", "", str(row["title"])) if year else str(row["title"])
        genres = "|".join(row["genres"]) or "-"
        return f"[{int(self.dataset.item_raw_ids[item])}] {title} ({year or 'year unknown'}) · {genres}"

    def _parse_movie_id(self, token: str) -> tuple[int, str]:
        """(internal id, "") for a known MovieLens id, else (0, a one-line problem)."""
        number = _parse_int(token)
        if number is None:
            return 0, f"not a movie id: {token!r} (ids are whole numbers; find them with 'search')"
        item = self._internal_of_raw.get(number)
        if item is None:
            return 0, f"unknown movie id {number} (not in {self.dataset.name}; find ids with 'search')"
        return item, ""


def run_session(session: Session, stdin: TextIO, stdout: TextIO, prompt: str = PROMPT) -> int:
    """Read commands from ``stdin`` until 'exit' or end of input; returns the exit code (0).

    A command that fails unexpectedly (e.g. the model raising) is reported on
    one line and the session goes on; so is a line with bytes that are not
    valid text (a stream opened with ``errors="replace"`` turns them into
    U+FFFD, see ``tolerant_text_stream``; on a strict one the read raises,
    and what it held is skipped).
    """
    stdout.write(f"{len(session.dataset.items)} movies of {session.dataset.name}; type 'help' for commands\n")
    while True:
        stdout.write(prompt)
        stdout.flush()
        try:
            line = stdin.readline()
        except UnicodeDecodeError as exc:
            stdout.write(f"ignored a line with bytes that are not valid {exc.encoding} text\n")
            continue
        if line == "":  # end of input (Ctrl-D or the end of a pipe)
            stdout.write("\nend of input; bye\n")
            return 0
        if "\ufffd" in line:
            stdout.write("ignored a line with bytes that are not valid text\n")
            continue
        try:
            reply = session.execute(line)
        except Exception as exc:  # noqa: BLE001 - a session must survive any one command
            reply = Reply((f"error: {type(exc).__name__}: {exc}",))
        for text in reply.lines:
            stdout.write(text + "\n")
        if reply.done:
            return 0


def tolerant_text_stream(stream: TextIO) -> TextIO:
    """``stream`` set to turn invalid bytes into U+FFFD instead of raising (reading) or failing to
    print (writing); a stream that cannot be reconfigured (e.g. StringIO) is returned as it is.

    A terminal or pipe may carry bytes that are not valid in the locale's
    encoding (a Latin-1 file piped in, a stray key); they must not end the
    session with a UnicodeDecodeError. The stream is changed in place (not
    wrapped), so closing nothing and losing no buffered input.
    """
    reconfigure = getattr(stream, "reconfigure", None)
    if reconfigure is not None:
        reconfigure(errors="replace")
    return stream


def natural_title(title: str) -> str:
    """"Matrix, The (1999)" -> "The Matrix (1999)"; other titles unchanged."""
    match = _TRAILING_ARTICLE.match(title)
    if not match:
        return title
    article = match["article"]
    joiner = "" if article.endswith("'") else " "
    return f"{article}{joiner}{match['name']}{match['rest'] or ''}"


def _parse_int(token: str) -> int | None:
    try:
        return int(token)
    except ValueError:
        return None


__all__ = ["HELP", "PROMPT", "RecommendFn", "Reply", "Session", "natural_title", "run_session",
           "tolerant_text_stream"]
