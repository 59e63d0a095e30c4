"""The watermark notebook (and so the stage) end to end on the smoke data, through papermill."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from recsec_lib.study.stages.watermark import HEADLINE_KEYS

REPO = Path(__file__).resolve().parents[2]


def write_target(run_dir: Path, data_dir: Path) -> None:
    """A briefly trained SASRec as the run's target (train/sasrec.pt), on the synthetic data."""
    import torch

    from recsec_lib.data.prepare import prepare_dataset
    from recsec_lib.models.registry import build_model
    from recsec_lib.recommend.checkpoints import save_checkpoint
    from recsec_lib.recommend.sequences import pad_left

    dataset = prepare_dataset("synthetic", data_dir=data_dir, mirror=None)
    torch.manual_seed(0)
    model = build_model("sasrec", num_items=dataset.num_items, max_len=20)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    seqs = torch.from_numpy(pad_left(dataset.train_sequences(), 21))
    for _ in range(10):
        loss = model.training_loss(seqs)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    save_checkpoint(run_dir / "train" / "sasrec.pt", model, "sasrec", dataset)


def papermill(tmp_path: Path, run_dir: Path, data_dir: Path, *extra: str) -> subprocess.CompletedProcess:
    bin_dir = Path(sys.executable).parent
    ipynb = tmp_path / "06_watermark.ipynb"
    subprocess.run([str(bin_dir / "jupytext"), "--to", "ipynb", "-o", str(ipynb),
                    str(REPO / "notebooks" / "06_watermark.py")], check=True, capture_output=True)
    return subprocess.run(
        [str(bin_dir / "papermill"), str(ipynb), str(tmp_path / "06_watermark.out.ipynb"), "-k", "python3",
         "-p", "profile", "smoke", "-p", "dataset", "synthetic", "-p", "run_dir", str(run_dir),
         "-p", "data_dir", str(data_dir), "-p", "device", "cpu", *extra, "--cwd", str(REPO)],
        capture_output=True, text=True, timeout=600, env={**os.environ, "RECSEC_DATA_MIRROR": ""})


@pytest.mark.notebook
def test_watermark_notebook_smoke(tmp_path, monkeypatch):
    monkeypatch.delenv("RECSEC_DATA_MIRROR", raising=False)
    run_dir, data_dir = tmp_path / "run", tmp_path / "data"
    write_target(run_dir, data_dir)
    result = papermill(tmp_path, run_dir, data_dir, "-p", "independent", "sasrec:5")
    assert result.returncode == 0, result.stderr[-3000:]
    out = run_dir / "watermark"
    for name in ("key.json", "marked.pt", "utility.csv", "verification.csv", "p_values.png", "metrics.json"):
        assert (out / name).is_file(), name
    headline = json.loads((run_dir / "headline.json").read_text())
    assert set(HEADLINE_KEYS) <= set(headline)
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["settings"]["independent"] == ["sasrec:5"]  # the notebook's parameter reached the stage
    executed = json.loads((tmp_path / "06_watermark.out.ipynb").read_text())
    images = [o for c in executed["cells"] for o in c.get("outputs", []) if "image/png" in o.get("data", {})]
    assert images, "the notebook shows the p-value figure"


@pytest.mark.notebook
def test_watermark_notebook_without_a_target_names_the_file(tmp_path, monkeypatch):
    monkeypatch.delenv("RECSEC_DATA_MIRROR", raising=False)
    result = papermill(tmp_path, tmp_path / "run", tmp_path / "data")
    assert result.returncode != 0
    assert "train/sasrec.pt does not exist" in result.stderr
