"""What the executed notebooks and the exported report show (issue 18, items 7 and 8).

The smoke study is run once through the runner (papermill, then nbconvert), as
``./run_all.sh --profile smoke`` does; the tests then read the executed
notebooks and the report HTML the way a reader would meet them.
"""

from __future__ import annotations

import html
import json
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from recsec_lib.study.paper import QUESTIONS
from recsec_lib.study.report import STAGE_ORDER, UNCAPTIONED
from recsec_lib.study.runner import REPO

# Figures each notebook must show (drawn from the stage's tables, not read back from its PNGs).
FIGURES_PER_NOTEBOOK = {"02_train": 1, "03_attack": 2, "04_gro": 1, "05_seat": 2, "06_watermark": 1}


def test_importing_the_library_in_a_kernel_gives_no_tqdm_warning():
    """Without ipywidgets, tqdm.auto warns "IProgress not found" on import inside a Jupyter kernel, and the
    warning, which starts with a path inside the virtual environment, ended up in every exported page."""
    script = textwrap.dedent("""
        import warnings
        import ipykernel.zmqshell  # tqdm.autonotebook takes this module as the sign of a Jupyter kernel
        from tqdm import TqdmWarning
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            import recsec_lib.recommend.training, recsec_lib.attack.surrogate, recsec_lib.seat.encoder  # each imports tqdm.auto
        print([str(w.message) for w in caught if issubclass(w.category, TqdmWarning)])
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=REPO, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "[]"


# ---- the smoke study, executed and exported --------------------------------------------------------------

@pytest.fixture(scope="module")
def smoke_run(smoke_study) -> Path:
    """The session's smoke study (tests/notebooks/conftest.py)."""
    return smoke_study


@pytest.mark.notebook
def test_a_smoke_run_leaves_the_checkout_as_it_found_it(smoke_run):
    """Issue 26: a fresh clone's smoke study leaves ``git status`` clean: it writes nothing tracked or unignored."""
    status = json.loads((smoke_run.parent / "git_status.json").read_text())
    if status["before"] is None:
        pytest.skip("not a git checkout")
    assert status["after"] == status["before"], status


def test_what_a_default_run_writes_inside_the_checkout_is_ignored_by_git():
    """Without --outputs/--data-dir a run writes outputs/, data/, checkpoints/ and converted notebooks: all ignored,
    so ``./run_all.sh --profile smoke`` in a fresh clone leaves ``git status`` clean."""
    paths = ["outputs/smoke/headline.json", "outputs/smoke.partial/notebooks/00_data.ipynb", "data/processed/x.npz",
             "checkpoints/sasrec_ml1m.pt", "notebooks/02_train.ipynb", "notebooks/.ipynb_checkpoints/x.ipynb"]
    result = subprocess.run(["git", "check-ignore", "--no-index", *paths], cwd=REPO, capture_output=True, text=True)
    if result.returncode == 128:
        pytest.skip("not a git checkout")
    assert sorted(result.stdout.split()) == sorted(paths)


@pytest.mark.notebook
def test_a_smoke_run_prints_no_kernel_or_nbconvert_warnings(smoke_run):
    """Issue 26.4: every stage printed ipykernel's TCP warning and nbconvert's alt-text warning."""
    err = (smoke_run.parent / "runner.stderr.txt").read_text()
    assert "[IPKernelApp]" not in err and "[NbConvertApp]" not in err, err


def outputs_of(notebook: Path) -> list[dict]:
    return [output for cell in json.loads(notebook.read_text())["cells"] for output in cell.get("outputs", [])]


def output_text(output: dict) -> str:
    """Everything an output shows as text: a stream, or the text and HTML forms of a display."""
    if "text" in output:
        return "".join(output["text"])
    data = output.get("data", {})
    return "".join("".join(data[kind]) for kind in ("text/plain", "text/html", "text/markdown") if kind in data)


def visible_text(page: str) -> str:
    """The text of an exported page without its style sheets, scripts and embedded images."""
    page = re.sub(r"<(style|script)\b.*?</\1>", "", page, flags=re.S)
    page = re.sub(r'src="data:[^"]*"', "", page)
    return re.sub(r"<[^>]+>", " ", page)


MACHINE_PATHS = ("site-packages", "/.venv/", "/tmp/", "/work/", "/home/")


@pytest.mark.notebook
@pytest.mark.parametrize("name, figures", FIGURES_PER_NOTEBOOK.items())
def test_stage_notebooks_show_their_figures(smoke_run, name, figures):
    """matplotlib.use("Agg") in the stages used to leave the plt.show() cells of 02, 03 and 04 empty."""
    outputs = outputs_of(smoke_run / "notebooks" / f"{name}.ipynb")
    assert sum("image/png" in output.get("data", {}) for output in outputs) >= figures
    page = (smoke_run / "html" / f"{name}.html").read_text()
    assert page.count('src="data:image/png;base64') >= figures


@pytest.mark.notebook
def test_no_notebook_prints_a_warning_or_a_machine_path(smoke_run):
    for notebook in sorted((smoke_run / "notebooks").glob("*.ipynb")):
        for output in outputs_of(notebook):
            text = output_text(output)
            assert "TqdmWarning" not in text, notebook.name
            if output.get("name") == "stderr":
                assert not any(path in text for path in MACHINE_PATHS), (notebook.name, text[:300])
    report = visible_text((smoke_run / "report_nocode.html").read_text())
    assert not any(path in report for path in MACHINE_PATHS + (str(REPO),))


@pytest.mark.notebook
def test_report_tables_are_whole_without_index_or_nan(smoke_run):
    page = (smoke_run / "report_nocode.html").read_text()
    text = visible_text(page)
    assert "..." not in text and "…" not in text  # pandas elides the middle of wide tables
    assert not re.search(r"\bNaN\b|\bnan\b", text)
    assert "rows ×" not in text  # pandas' "6 rows × 24 columns" under a cut table
    assert not re.search(r"<tbody>\s*<tr>\s*<th", page)  # a pandas index column
    # the paper writes every percent with one decimal ("30.0%"); the appendix prints counts as counts
    text = visible_text(page.split('<article class="recsec-paper">')[0] + page.split("</article>")[-1])
    measured = re.sub(r"-?\d+\.\d \[-?\d+\.\d, -?\d+\.\d\]", "", text)  # "0.0 [-5.9, 7.2]": a % with its interval
    assert not re.search(r"(?<![\d.])\d+\.0(?![\d])", measured)  # counts as 384, not 384.0; λ = 1, not 1.0
    assert not re.search(r"(?<![\d.])1 (account|epoch|batch|position|model|query|sequence)e?s\b", text)


@pytest.mark.notebook
def test_report_opens_with_the_paper_and_shows_every_figure_once(smoke_run):
    """Issue 26: the report reads as a short paper (questions in order, verdicts, limitations, reproduction), then
    the appendix's stage sections; every figure of the run appears once, with alt text, at its natural width."""
    import base64

    page = (smoke_run / "report_nocode.html").read_text()
    assert page.index('<article class="recsec-paper">') < page.index("Appendix A")
    questions = re.findall(r'<section class="recsec-question" data-question="([^"]+)"', page)
    assert questions == [q.key for q in QUESTIONS] + ["verdicts"]
    for heading in (">Abstract<", "Limitations<", "Reproduction<"):
        assert heading in page
    sections = re.findall(r'<section class="recsec-section" data-stage="([^"]+)">(.*?)</section>', page, flags=re.S)
    stages = [stage for stage, _ in sections]
    assert stages == sorted(stages, key=STAGE_ORDER.index)
    saved = [png for png in smoke_run.glob("*/*.png") if png.parent.name != "report"]
    for png in saved:  # each figure once, in the paper or in the appendix
        assert page.count(base64.b64encode(png.read_bytes()).decode("ascii")) == 1, png
    images = re.findall(r"<img [^>]*>", page)
    assert len(images) == len(saved)
    for image in images:
        alt = re.search(r'alt="([^"]*)"', image)
        assert alt and len(alt.group(1)) > 20, image[:200]
        data = base64.b64decode(re.search(r'src="data:image/png;base64,([^"]+)"', image).group(1))
        assert f'width="{int.from_bytes(data[16:20], "big")}"' in image  # its natural width, never shrunk
    for _, body in sections:
        if "<figure" in body:
            caption = re.search(r"<figcaption[^>]*>(.*?)</figcaption>", body, flags=re.S)
            assert caption and len(caption.group(1)) > 30 and UNCAPTIONED not in body


@pytest.mark.notebook
def test_the_abstract_of_a_run_states_its_headline(smoke_run):
    headline = json.loads((smoke_run / "headline.json").read_text())
    record = json.loads((smoke_run / "report" / "paper.json").read_text())
    facts = [fact for sentence in record["abstract"] for fact in sentence["facts"]]
    assert len(record["abstract"]) in (4, 5) and facts
    for fact in facts:
        if fact["source"] != "headline":
            continue
        value = headline[fact["key"]]
        if fact["kind"] == "interval":
            value = [value, headline[fact["key"] + "_low"], headline[fact["key"] + "_high"]]
        assert fact["value"] == value, fact
    page = " ".join(html.unescape(visible_text((smoke_run / "report_nocode.html").read_text())).split())
    assert all(sentence["text"] in page for sentence in record["abstract"])
