"""The smoke study the notebook tests read: run once per test session (a whole smoke study is the dearest thing
the default test run does; test_notebooks.py and test_study_chain.py used to run one each)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from recsec_lib.study.runner import REPO


def git_status() -> str | None:
    """``git status --porcelain`` of the checkout (None outside a git checkout, e.g. an unpacked sdist)."""
    result = subprocess.run(["git", "status", "--porcelain"], cwd=REPO, capture_output=True, text=True)
    return result.stdout if result.returncode == 0 else None


@pytest.fixture(scope="session")
def smoke_study(tmp_path_factory) -> Path:
    """``./run_all.sh --profile smoke`` through the runner (papermill, then nbconvert), without a data mirror so
    that it is the same run with or without ../shared/data; beside the run folder: the runner's stderr and
    ``git status`` before and after. Its folders are ``<base>/outputs/smoke`` and ``<base>/data``: other runs
    may be written beside it."""
    base = tmp_path_factory.mktemp("smoke_study")
    outputs, data_dir = base / "outputs", base / "data"
    before = git_status()
    result = subprocess.run(
        [sys.executable, "-m", "recsec_lib.study.runner", "--profile", "smoke", "--run-id", "smoke", "--publish", "no",
         "--outputs", str(outputs), "--data-dir", str(data_dir), "--mirror", ""],
        cwd=REPO, capture_output=True, text=True, timeout=1500)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    (outputs / "runner.stderr.txt").write_text(result.stderr)
    (outputs / "git_status.json").write_text(json.dumps({"before": before, "after": git_status()}))
    return outputs / "smoke"
