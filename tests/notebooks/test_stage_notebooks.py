"""Each stage's notebook run through jupytext and papermill on the tiny synthetic data (marked ``notebook``).

The stages' computation is tested in tests/unit; these check that each
notebook's parameters cell, library calls and plots run end to end.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def run_notebook(name: str, tmp_path: Path) -> Path:
    """Convert a jupytext notebook and execute it with papermill on the smoke data; returns the run folder."""
    bin_dir = Path(sys.executable).parent
    ipynb = tmp_path / f"{name}.ipynb"
    subprocess.run([str(bin_dir / "jupytext"), "--to", "ipynb", "-o", str(ipynb), str(REPO / "notebooks" / f"{name}.py")],
                   check=True, capture_output=True)
    run_dir = tmp_path / "run"
    result = subprocess.run(
        [str(bin_dir / "papermill"), str(ipynb), str(tmp_path / f"{name}.out.ipynb"), "-k", "python3",
         "-p", "profile", "smoke", "-p", "dataset", "synthetic", "-p", "run_dir", str(run_dir),
         "-p", "data_dir", str(tmp_path / "data"), "--cwd", str(REPO)],
        capture_output=True, text=True, timeout=300, env={**os.environ, "RECSEC_DATA_MIRROR": ""})
    assert result.returncode == 0, result.stderr[-3000:]
    return run_dir


@pytest.mark.notebook
def test_data_notebook(tmp_path):
    run_dir = run_notebook("00_data", tmp_path)
    metrics = json.loads((run_dir / "data" / "metrics.json").read_text())
    assert metrics["users"] == 200
    assert (run_dir / "data" / "summary.csv").exists()
    assert json.loads((run_dir / "headline.json").read_text())["synthetic_items"] == 60


@pytest.mark.notebook
def test_analyze_notebook(tmp_path):
    run_dir = run_notebook("01_analyze", tmp_path)
    out = run_dir / "analyze"
    for name in ("sequence_lengths.png", "long_tail.png", "genres.png", "release_years.png", "ratings.png",
                 "over_time.png", "statistics.csv", "metrics.json"):
        assert (out / name).exists(), name


@pytest.mark.notebook
def test_train_notebook_smoke(tmp_path):
    bin_dir = Path(sys.executable).parent
    ipynb = tmp_path / "02_train.ipynb"
    subprocess.run([str(bin_dir / "jupytext"), "--to", "ipynb", "-o", str(ipynb), str(REPO / "notebooks" / "02_train.py")],
                   check=True, capture_output=True)
    run_dir = tmp_path / "run"
    result = subprocess.run(
        [str(bin_dir / "papermill"), str(ipynb), str(tmp_path / "02_train.out.ipynb"), "-k", "python3",
         "-p", "profile", "smoke", "-p", "dataset", "synthetic", "-p", "run_dir", str(run_dir),
         "-p", "data_dir", str(tmp_path / "data"), "-p", "device", "cpu", "-p", "epochs", "2", "--cwd", str(REPO)],
        capture_output=True, text=True, timeout=300, env={**os.environ, "RECSEC_DATA_MIRROR": ""})
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads((run_dir / "train" / "metrics.json").read_text())
    assert set(metrics["models"]) == {"meanemb", "sasrec"}
    assert (run_dir / "train" / "curves.png").exists()


@pytest.mark.notebook
def test_attack_notebook_runs_on_smoke_data(attack_smoke_run, tmp_path):
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    bin_dir = Path(sys.executable).parent  # the environment running the tests, wherever it lives
    ipynb = tmp_path / "03_attack.ipynb"
    subprocess.run([str(bin_dir / "jupytext"), "--to", "ipynb", "-o", str(ipynb),
                    str(root / "notebooks/03_attack.py")], check=True, capture_output=True)
    subprocess.run([str(bin_dir / "papermill"), str(ipynb), str(tmp_path / "out.ipynb"), "-k", "python3",
                    "-p", "profile", "smoke", "-p", "dataset", "synthetic", "-p", "run_dir", str(attack_smoke_run.run_dir),
                    "-p", "data_dir", str(attack_smoke_run.data_dir), "-p", "device", "cpu", "--cwd", str(root)],
                   check=True, capture_output=True)
    assert (attack_smoke_run.run_dir / "attack" / "budget_curve.png").is_file()


@pytest.mark.notebook
def test_notebook_runs_on_smoke_profile(gro_trained_run, tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    papermill = pytest.importorskip("papermill")
    root, checkpoint = gro_trained_run
    run_dir = tmp_path / "run"
    (run_dir / "train").mkdir(parents=True)
    (run_dir / "train" / "sasrec.pt").write_bytes(Path(checkpoint).read_bytes())
    notebook = Path(__file__).resolve().parents[2] / "notebooks" / "04_gro.py"
    ipynb = tmp_path / "04_gro.ipynb"
    subprocess.run([sys.executable, "-m", "jupytext", "--to", "ipynb", "-o", str(ipynb), str(notebook)], check=True,
                   capture_output=True)
    papermill.execute_notebook(str(ipynb), str(tmp_path / "out.ipynb"), kernel_name="python3", progress_bar=False,
                               parameters={"profile": "smoke", "dataset": "synthetic", "run_dir": str(run_dir),
                                           "data_dir": str(root / "data"), "device": "cpu", "lambdas": "1",
                                           "epochs": 1, "attack_sequences": 20})
    assert (run_dir / "gro" / "matrix.csv").is_file() and (run_dir / "gro" / "frontier.md").is_file()
