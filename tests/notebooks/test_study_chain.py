"""The whole study on tiny synthetic data: run_all.sh's runner and the Jupyter-free path.

The session's smoke run of every notebook through papermill (the chain the
README's first command runs, with the smoke profile; tests/notebooks/conftest.py),
then the same stages through ``recsec study``; both must give the same figures.
"""

from __future__ import annotations

import json
import math
import os
import stat
import subprocess
import sys

import pytest

from recsec_lib.study.runner import REPO, discover_stages

pytestmark = pytest.mark.notebook

# timings: wall seconds, rates, and the watermark embedding cost (step times measured in alternation)
VOLATILE = ("stage_seconds_", "study_wall_seconds", "git_commit", "date", "_per_second", "_seconds",
            "_cost_in_undefended_epochs")


@pytest.fixture(scope="module")
def smoke_runs(smoke_study):
    """(the session's notebook smoke run, the same study through ``recsec study`` beside it)."""
    outputs, data_dir = smoke_study.parent, smoke_study.parent.parent / "data"
    library_run = subprocess.run(
        [sys.executable, "-m", "recsec_lib", "study", "--profile", "smoke", "--run-id", "lib", "--outputs",
         str(outputs), "--data-dir", str(data_dir), "--mirror", ""],
        cwd=REPO, capture_output=True, text=True, timeout=900)
    assert library_run.returncode == 0, library_run.stdout[-3000:] + library_run.stderr[-3000:]
    return smoke_study, outputs / "lib"


def test_notebook_run_folder_contents(smoke_runs):
    run_dir, _ = smoke_runs
    assert not run_dir.with_name(f"{run_dir.name}.partial").exists()
    for name in ("params.json", "environment.json", "headline.json"):
        assert (run_dir / name).exists(), name
    for stage in discover_stages():
        assert (run_dir / "notebooks" / f"{stage.label}.ipynb").exists(), stage.label
        assert (run_dir / "html" / f"{stage.label}.html").exists(), stage.label
        assert (run_dir / stage.name / "metrics.json").exists(), stage.name
    headline = json.loads((run_dir / "headline.json").read_text())
    assert headline["profile"] == "smoke" and headline["dataset"] == "synthetic"
    assert headline["study_wall_seconds"] > 0
    environment = json.loads((run_dir / "environment.json").read_text())
    assert environment["packages"]["torch"].startswith("2.13")


def test_report_html_is_self_contained(smoke_runs):
    run_dir, _ = smoke_runs
    for name in ("report.html", "report_nocode.html"):
        html = (run_dir / name).read_text()
        assert "<img" in html
        assert 'src="data:image/png;base64' in html
        assert "file://" not in html and 'src="outputs' not in html and 'src="/' not in html


def test_every_question_of_a_whole_run_is_answered(smoke_runs):
    """A section that meets a missing key says "not measured in this run in full: the run lacks <key>"; in a run
    of every stage that is a bug (the GRO section once read a utility-matched null's entry as a GRO run's)."""
    for run_dir in smoke_runs:
        paper = (run_dir / "report" / "paper.html").read_text()
        assert "in full: the run lacks" not in paper, run_dir.name


def test_jupyter_free_path_gives_the_same_figures(smoke_runs):
    notebook_dir, library_dir = smoke_runs
    notebook = json.loads((notebook_dir / "headline.json").read_text())
    library = json.loads((library_dir / "headline.json").read_text())
    stable = {k for k in notebook if not any(v in k for v in VOLATILE)}
    assert stable, "no headline figures to compare"
    assert stable <= set(library)
    for key in sorted(stable):
        a, b = notebook[key], library[key]
        if isinstance(a, float):
            assert math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-9), (key, a, b)
        else:
            assert a == b, (key, a, b)


def test_every_file_of_a_run_has_normal_permissions(smoke_runs):
    """Issue 18.10: nothing a run writes is private to its owner (mkstemp's 0600 kept through os.replace)."""
    umask = os.umask(0o022)
    os.umask(umask)
    if umask & 0o044:
        pytest.skip(f"this test process's umask {umask:o} itself hides files from others")
    for run_dir in smoke_runs:
        private = [str(path.relative_to(run_dir)) for path in run_dir.rglob("*")
                   if path.is_file() and stat.S_IMODE(path.stat().st_mode) & 0o044 != 0o044]
        assert private == [], f"files of {run_dir.name} that only their owner can read"
