"""The whole paper (build_paper) and its HTML (paper_html)."""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from recsec_lib.common.plots import img_html, png_width
from recsec_lib.common.tables import MISSING
from recsec_lib.study.paper.abstract import abstract
from recsec_lib.study.paper.closing import limitations, reproduction
from recsec_lib.study.paper.model import NOT_MEASURED, Answer, Evidence, Question, Sentence, Writer
from recsec_lib.study.paper.questions import QUESTIONS, model_name, target_model
from recsec_lib.study.paper.verdicts import verdict_table

# ---- the whole paper ------------------------------------------------------------------------------------------


@dataclass
class Paper:
    title: str
    abstract: list[Sentence]
    sections: list[tuple[Question, Answer]]
    limitations: list[Sentence]
    reproduction: list[str]
    tables: dict[str, pd.DataFrame]

    def sentences(self) -> list[Sentence]:
        out = list(self.abstract)
        for _, answer in self.sections:
            out += answer.sentences + answer.notes
        return out + list(self.limitations)

    def figures(self) -> list[str]:
        return [answer.figure for _, answer in self.sections if answer.figure]


def answered(question: Question, ev: Evidence, w: Writer) -> Answer:
    """The question's answer; one whose figures this run records only in part says which one it lacks."""
    try:
        return question.answer(ev, w)
    except KeyError as missing:
        w._facts = []  # the half-written sentence's facts
        return Answer([Sentence(f"{question.title} {NOT_MEASURED.capitalize()} in full: the run lacks "
                                f"{missing.args[0]}.")], measured=False)


def build_paper(ev: Evidence, params: dict | None = None, environment: dict | None = None,
                device: str = "cpu", questions: tuple[Question, ...] = QUESTIONS) -> Paper:
    """The paper of a run: every sentence from ``ev`` (see the module docstring)."""
    params, environment = params or {}, environment or {}
    w = Writer(ev)
    w.table("verdicts", verdict_table(ev))
    sections = [(question, answered(question, ev, w)) for question in questions]
    summary = abstract(ev, w)
    limits = limitations(ev, w, params.get("common", {}), environment, device)
    model = target_model(ev)
    title = (f"Stealing a {model_name(model)} recommender through its top-k answers, and what prevention, detection and "
             f"verification do about it")
    return Paper(title, summary, sections, limits, reproduction(ev, params, environment), w.tables)


# ---- HTML -----------------------------------------------------------------------------------------------------

PAPER_STYLE = """<style>
.recsec-paper { max-width: 1320px; font-size: 15px; line-height: 1.5; }
.recsec-paper h1 { font-size: 1.6em; }
.recsec-paper .recsec-abstract { background: #f6f6f6; padding: 0.6em 1em; border-left: 3px solid #888; }
.recsec-paper figure { margin: 0.8em 0; }
.recsec-paper figure img { display: block; }
.recsec-paper figcaption { font-size: 0.9em; color: #333; max-width: 1000px; }
.recsec-paper table.recsec-table { font-size: 13px; border-collapse: collapse; margin: 0.5em 0; }
.recsec-paper table.recsec-table td, .recsec-paper table.recsec-table th {
  padding: 2px 8px; border-bottom: 1px solid #ddd; vertical-align: top; white-space: normal; max-width: 360px; }
.recsec-paper .recsec-not-measured { color: #666; font-style: italic; }
.recsec-paper .recsec-note { font-size: 0.9em; color: #333; }
</style>"""


def figure_html(run_dir: Path, figure: str, caption: str, alt: str) -> str:
    png = (Path(run_dir) / figure).read_bytes()
    return (f'<figure class="recsec-figure" style="margin:0.8em 0">{img_html(png, alt or caption)}'
            f'<figcaption>{html.escape(caption)} <span style="color:#666">(From {html.escape(figure)}, '
            f'{png_width(png)} px wide.)</span></figcaption></figure>')


def paragraph(sentences: list[Sentence], css: str = "") -> str:
    if not sentences:
        return ""
    attribute = f' class="{css}"' if css else ""
    return f"<p{attribute}>" + " ".join(html.escape(s.text) for s in sentences) + "</p>"


def paper_html(paper: Paper, run_dir: Path, headline: dict) -> str:
    """The paper as one HTML block (figures embedded), for the report notebook."""
    parts = [PAPER_STYLE, '<article class="recsec-paper">', f"<h1>{html.escape(paper.title)}</h1>",
             f"<p style=\"color:#555\">{html.escape(str(headline.get('profile', '?')))} profile, "
             f"{html.escape(str(headline.get('dataset', '?')))}, "
             f"commit {html.escape(str(headline.get('git_commit', '?'))[:12])}, "
             f"{html.escape(str(headline.get('date', '?')))}. Every sentence below is generated from this run's "
             "numbers.</p>",
             "<h2>Abstract</h2>", paragraph(paper.abstract, "recsec-abstract")]
    for number, (question, answer) in enumerate(paper.sections, start=1):
        parts.append(f'<section class="recsec-question" data-question="{question.key}" id="{question.key}">'
                     f"<h2>{number}. {html.escape(question.title)}</h2>")
        if not answer.measured:
            parts.append(paragraph(answer.sentences, "recsec-not-measured"))
        else:
            if answer.listed:
                parts.append("<ul>" + "".join(f"<li>{html.escape(s.text)}</li>" for s in answer.sentences) + "</ul>")
            else:
                parts.append(paragraph(answer.sentences))
            if answer.figure:
                parts.append(figure_html(run_dir, answer.figure, answer.caption, answer.alt))
            if answer.table:
                if not answer.figure:
                    parts.append(f'<p class="recsec-note">{html.escape(answer.caption)}</p>')
                parts.append(table_html(paper.tables[answer.table]))
            parts.append(paragraph(answer.notes, "recsec-note"))
        parts.append("</section>")
    parts += ['<section class="recsec-question" data-question="verdicts" id="verdicts">',
              f"<h2>{len(paper.sections) + 1}. Verdicts</h2>",
              "<p>One row per defense, each against its worst attacker. Percent with 95% intervals as "
              "\"point [low, high]\"; a fall is what the attacker's surrogate loses against the compared arm "
              "(negative: the attacker gains). \"protects\" needs both falls' intervals above 0; a GRO point on the "
              "measured curve protects only when its surrogate's NDCG@10 falls against a model of the same utility "
              "trained with no defensive aim (its utility-matched null), beyond training noise.</p>",
              table_html(paper.tables["verdicts"]) if len(paper.tables["verdicts"])
              else f'<p class="recsec-not-measured">No defense was {NOT_MEASURED}.</p>', "</section>",
              f"<h2>{len(paper.sections) + 2}. Limitations</h2>", "<ul>",
              *[f"<li>{html.escape(s.text)}</li>" for s in paper.limitations], "</ul>",
              f"<h2>{len(paper.sections) + 3}. Reproduction</h2>", "<ul>",
              *[f"<li>{_inline_code(line.removeprefix('- '))}</li>" for line in paper.reproduction], "</ul>",
              "</article>"]
    return "".join(parts)


_NUMERIC = re.compile(r"^[-−]?\d[\d,]*(\.\d+)?( \[.*\])?%?$")


def table_html(frame: pd.DataFrame) -> str:
    """A paper table as the reader sees it: every cell's text verbatim (the text the sentences cite), a column of
    numbers right-aligned, no index."""
    if frame.empty:
        return '<p class="recsec-empty">(no rows)</p>'

    def text(value) -> str:
        return MISSING if value is None or value == "" else str(value)

    numeric = [all(_NUMERIC.match(text(v)) or text(v) == MISSING for v in frame[c]) for c in frame.columns]
    align = ["right" if n else "left" for n in numeric]
    head = "".join(f'<th style="text-align:{a}">{html.escape(str(c))}</th>' for c, a in zip(frame.columns, align))
    body = "".join("<tr>" + "".join(f'<td style="text-align:{a}">{html.escape(text(v))}</td>'
                                    for v, a in zip(row, align)) + "</tr>" for row in frame.itertuples(index=False))
    return f'<table class="recsec-table"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _inline_code(text: str) -> str:
    """Markdown `code` spans as <code>, the rest escaped."""
    return re.sub(r"`([^`]*)`", lambda m: f"<code>{m.group(1)}</code>", html.escape(text))
