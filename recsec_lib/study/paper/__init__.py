"""``study.paper``: the report as a short paper (abstract, a section per question, verdicts, limitations, reproduction).

Every sentence is generated from the run's numbers and carries the facts it
states (``Fact``: a headline key, a value of a stage's metrics, or a cell of a
table the paper shows), so a test can check each claim against its source: a
verdict and a "best" are read from the same row, and the abstract states only
numbers of ``headline.json``. A question whose figures the run lacks says "not
measured in this run"; nothing is filled in.

Adding a question is one entry of ``QUESTIONS``: a ``Question`` whose
``answer(evidence, writer)`` returns its sentences, main figure and table (see
the existing ones). Tables hold display text (percent with 95% intervals as
"66.6 [62.1, 71.0]"), so what the reader sees is what the facts cite.

Words are this package's; numbers are the stages'. The only numbers computed
here are the report's own summaries of the prevention matrix
(``prevention_keys``), which the report stage merges into ``headline.json``
before the abstract is written, and exact binomial intervals of false-positive
counts.

Part of ``study`` (layer 6): it reads stage metrics and imports ``arena`` and
``common`` only. Modules: ``model`` (formats, facts, sentences, evidence, the writer, answers),
``prevention`` (one verdict per defense from both measures), ``detection``
(exact binomial intervals), ``verification`` (the watermark's section and verdict row),
``questions`` (QUESTIONS), ``verdicts`` (the
verdict table), ``abstract``, ``closing`` (limitations, reproduction),
``document`` (build_paper, paper_html).
"""

from recsec_lib.study.paper.abstract import abstract, family_status
from recsec_lib.study.paper.detection import accounts_words, clopper_pearson
from recsec_lib.study.paper.document import Paper, build_paper, paper_html, table_html
from recsec_lib.study.paper.model import (FORMATS, NOT_MEASURED, Answer, Evidence, Fact, Question, Sentence, Writer,
                                         cell, cell_shown, dotted, interval_cell, not_measured, show)
from recsec_lib.study.paper.prevention import combined_verdict, prevention_frame, prevention_keys
from recsec_lib.study.paper.questions import QUESTIONS
from recsec_lib.study.paper.verdicts import VERDICT_COLUMNS, verdict_table

__all__ = ("FORMATS", "NOT_MEASURED", "QUESTIONS", "VERDICT_COLUMNS", "Answer", "Evidence", "Fact", "Paper", "Question",
           "Sentence", "Writer", "abstract", "accounts_words", "build_paper", "cell", "cell_shown", "clopper_pearson",
           "combined_verdict", "dotted", "family_status", "interval_cell", "not_measured", "paper_html",
           "prevention_frame", "prevention_keys", "show", "table_html", "verdict_table")
