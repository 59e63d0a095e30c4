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


@pytest.fixture()
def attack_smoke_run(tmp_path):
    """A run folder on the synthetic dataset with a (briefly trained) SASRec target in train/sasrec.pt."""
    from recsec_lib.recommend.checkpoints import save_checkpoint
    from recsec_lib.study.stages.context import StudyContext

    ctx = StudyContext(run_dir=tmp_path / "run", dataset="synthetic", data_dir=tmp_path / "data", seed=0,
                       device="cpu", profile="smoke")
    dataset = ctx.load_dataset()
    torch.manual_seed(0)
    model = build_model("sasrec", num_items=dataset.num_items, max_len=20)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    seqs = torch.from_numpy(pad_left(dataset.train_sequences(), 21))
    for _ in range(10):
        loss = model.training_loss(seqs)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    save_checkpoint(ctx.run_dir / "train" / "sasrec.pt", model, "sasrec", dataset)
    return ctx


@pytest.fixture(scope="module")
def gro_trained_run(tmp_path_factory):
    """A run folder whose train stage left a small SASRec at train/sasrec.pt (synthetic data)."""
    from recsec_lib.recommend.checkpoints import save_checkpoint
    from recsec_lib.data.prepare import prepare_dataset
    from recsec_lib.gro.training import fresh_like
    from recsec_lib.models.registry import build_model

    root = tmp_path_factory.mktemp("gro_run")
    data = prepare_dataset("synthetic", data_dir=root / "data", mirror=None)
    torch.manual_seed(0)
    model = build_model("sasrec", data.num_items, 30, hidden=16)
    train_gro(model, fresh_like(model), data.train_sequences(), GROConfig(method="none", epochs=4, batch_size=32),
              progress=False)
    path = save_checkpoint(root / "run" / "train" / "sasrec.pt", model, "sasrec", data)
    return root, path
