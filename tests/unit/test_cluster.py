"""A smoke study whose cells run on a Ray cluster that the test starts itself (the optional cluster extra).

CI installs the extra (``.ci/run`` sets RECSEC_WITH_CLUSTER=1); without Ray the test is skipped, saying why.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def ray_head(tmp_path_factory):
    """A one-node Ray cluster (head on 127.0.0.1) in its own process group, stopped with it afterwards."""
    pytest.importorskip("ray", reason="the cluster extra is not installed (pip install -e .[cluster], or "
                                      "RECSEC_WITH_CLUSTER=1 ./run_tests.sh)")
    port = free_port()
    temp = tmp_path_factory.mktemp("ray")
    head = subprocess.Popen(
        [sys.executable, "-c", "from ray.scripts.scripts import main; main()", "start", "--head", "--block",
         f"--port={port}", "--num-cpus=2", "--include-dashboard=false", f"--temp-dir={temp}",
         "--node-ip-address=127.0.0.1"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"})
    address = f"127.0.0.1:{port}"
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:  # the head is up once its port answers
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                break
        if head.poll() is not None:
            pytest.fail(f"ray start --head exited with {head.returncode}")
        time.sleep(1)
    else:
        os.killpg(head.pid, signal.SIGTERM)
        pytest.fail("the Ray head did not open its port within 240 s")
    yield address
    os.killpg(head.pid, signal.SIGTERM)
    try:
        head.wait(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(head.pid, signal.SIGKILL)


def test_a_smoke_study_runs_its_cells_on_a_ray_cluster(ray_head, tmp_path):
    outputs = tmp_path / "outputs"
    done = subprocess.run(
        [sys.executable, "-m", "recsec_lib", "study", "--profile", "smoke", "--stages", "data", "train", "gro",
         "--data-dir", str(tmp_path / "data"), "--outputs", str(outputs), "--run-id", "ray", "--device", "cpu",
         "--cluster", ray_head, "--workers", "0"],
        cwd=REPO, capture_output=True, text=True, timeout=1500,
        env={**os.environ, "PYTHONPATH": str(REPO), "RAY_ADDRESS": ""})
    assert done.returncode == 0, done.stderr[-3000:]
    run = outputs / "ray"
    params = json.loads((run / "params.json").read_text())
    assert params["common"]["cluster"] == ray_head
    gro = json.loads((run / "gro" / "metrics.json").read_text())
    assert gro["executor"]["backend"] == "ray" and gro["executor"]["threads_per_worker"] == 1
    assert (run / "gro" / "matrix.csv").is_file() and any((run / "gro" / "cells").glob("*.pkl"))
