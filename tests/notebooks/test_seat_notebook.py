"""The SEAT notebook (and so the stage) end to end on the smoke data, through papermill."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[2]


def write_target(run_dir: Path, data_dir: Path) -> None:
    """A freshly initialised SASRec as the run's target (its answers only steer the attack walks)."""
    from recsec_lib.recommend.checkpoints import save_checkpoint
    from recsec_lib.data.prepare import prepare_dataset
    from recsec_lib.models.registry import build_model

    dataset = prepare_dataset("synthetic", data_dir=data_dir, mirror=None)
    torch.manual_seed(0)
    model = build_model("sasrec", num_items=dataset.num_items, max_len=dataset.max_len)
    save_checkpoint(run_dir / "train" / "sasrec.pt", model, "sasrec", dataset)


@pytest.mark.notebook
def test_seat_notebook_smoke(tmp_path, monkeypatch):
    monkeypatch.delenv("RECSEC_DATA_MIRROR", raising=False)
    run_dir, data_dir = tmp_path / "run", tmp_path / "data"
    write_target(run_dir, data_dir)
    bin_dir = Path(sys.executable).parent
    ipynb = tmp_path / "05_seat.ipynb"
    subprocess.run([str(bin_dir / "jupytext"), "--to", "ipynb", "-o", str(ipynb), str(REPO / "notebooks" / "05_seat.py")],
                   check=True, capture_output=True)
    result = subprocess.run(
        [str(bin_dir / "papermill"), str(ipynb), str(tmp_path / "05_seat.out.ipynb"), "-k", "python3",
         "-p", "profile", "smoke", "-p", "dataset", "synthetic", "-p", "run_dir", str(run_dir),
         "-p", "data_dir", str(data_dir), "-p", "device", "cpu", "--cwd", str(REPO)],
        capture_output=True, text=True, timeout=600, env={**os.environ, "RECSEC_DATA_MIRROR": ""})
    assert result.returncode == 0, result.stderr[-3000:]
    out = run_dir / "seat"
    for name in ("encoder.pt", "calibration.json", "fpr_by_form.csv", "single_account.csv", "zoo.csv", "zoo.png",
                 "roc.csv", "roc.png", "metrics.json", "fpr_intervals.csv", "accounts_needed.csv", "search_best.csv",
                 "accounts_needed.png"):
        assert (out / name).exists(), name
    headline = json.loads((run_dir / "headline.json").read_text())
    for key in ("seat_detection_rate_single_account", "seat_false_positive_rate", "seat_accounts_needed",
                "volume_cap_accounts_needed", "prada_accounts_needed", "seat_monitor_queries_per_second",
                "seat_worst_attack", "seat_plus_cap_accounts_needed", "seat_plus_cap_cost_increase_over_volume_cap",
                "detect_best", "detect_best_accounts_needed_worst", "caps_accounts_needed_worst",
                "detect_best_false_positive_rate_high"):
        assert key in headline
    assert "no data mirror" in headline["real_timing_skipped"]  # synthetic data: the real-timing parts skipped
    calibration = json.loads((out / "calibration.json").read_text())
    split = calibration["user_split"]
    assert split["encoder"][1] < split["calibration"][0] and split["calibration"][1] < split["test"][0]
