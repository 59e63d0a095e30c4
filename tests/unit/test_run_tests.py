"""The README's test command: real data from ../shared/data when present, and a line saying when it is skipped."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from recsec_lib.study.runner import REPO


def fake_checkout(tmp_path: Path) -> Path:
    """A checkout with the real run_tests.sh, a no-op environment step and one test printing the mirror."""
    repo = tmp_path / "checkout"
    (repo / "scripts").mkdir(parents=True)
    shutil.copy2(REPO / "run_tests.sh", repo / "run_tests.sh")
    (repo / "scripts" / "ensure_env.sh").write_text("#!/usr/bin/env bash\nexit 0\n")
    (repo / "scripts" / "ensure_env.sh").chmod(0o755)
    (repo / "test_mirror.py").write_text(
        "import os\n\ndef test_mirror():\n    print('MIRROR=' + os.environ.get('RECSEC_DATA_MIRROR', ''))\n")
    return repo


def run_fake(repo: Path, **env: str) -> str:
    environment = {k: v for k, v in os.environ.items() if k != "RECSEC_DATA_MIRROR"}
    result = subprocess.run([str(repo / "run_tests.sh"), "-q", "-s", "-p", "no:cacheprovider", "test_mirror.py"],
                            cwd=repo, capture_output=True, text=True, timeout=300,
                            env={**environment, "RECSEC_VENV": sys.prefix, **env})
    assert result.returncode == 0, result.stdout + result.stderr
    return next(line for line in result.stdout.splitlines() if "MIRROR=" in line).split("MIRROR=", 1)[1]


def test_run_tests_uses_the_shared_data_beside_the_checkout(tmp_path):
    """Issue 26.4: the README's test command skipped the real-data tests unless the variable was set (.ci/run set it)."""
    repo = fake_checkout(tmp_path)
    assert run_fake(repo) == ""  # no ../shared/data: nothing set
    (tmp_path / "shared" / "data").mkdir(parents=True)
    assert run_fake(repo) == str((tmp_path / "shared" / "data").resolve())
    assert run_fake(repo, RECSEC_DATA_MIRROR="/elsewhere") == "/elsewhere"  # an explicit mirror wins


def test_ci_calls_run_tests():
    assert "./run_tests.sh -q -p no:cacheprovider" in (REPO / ".ci" / "run").read_text()


def test_skipped_real_data_tests_are_announced_once_with_the_reason():
    environment = {k: v for k, v in os.environ.items() if k != "RECSEC_DATA_MIRROR"}
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/integration/test_realdata.py"],
                            cwd=REPO, capture_output=True, text=True, timeout=300, env=environment)
    lines = [line for line in result.stdout.splitlines() if line.startswith("recsec: ")]
    assert len(lines) == 1, result.stdout
    assert re.fullmatch(r"recsec: \d+ real-data test\(s\) skipped: RECSEC_DATA_MIRROR is not set \(./run_tests.sh "
                        r"sets it to \.\./shared/data when that folder exists\)", lines[0]), lines[0]
