"""Shared test fixtures (tiny synthetic data only; the real data is for tests marked realdata)."""

from __future__ import annotations

import http.server
import os
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from recsec_lib.data.synthetic import write_synthetic_files


REALDATA_SKIPPED = pytest.StashKey[int]()


def realdata_skip_reason() -> str | None:
    """Why the tests marked realdata are skipped in this session, or None when they run."""
    mirror = os.environ.get("RECSEC_DATA_MIRROR")
    if mirror and Path(mirror).is_dir():
        return None
    if mirror:
        return f"RECSEC_DATA_MIRROR={mirror} is not a folder"
    return "RECSEC_DATA_MIRROR is not set (./run_tests.sh sets it to ../shared/data when that folder exists)"


def pytest_collection_modifyitems(config, items):
    """Skip tests marked realdata unless RECSEC_DATA_MIRROR names an existing folder."""
    reason = realdata_skip_reason()
    if reason is None:
        return
    skip = pytest.mark.skip(reason=f"needs the MovieLens mirror: {reason}")
    skipped = 0
    for item in items:
        if "realdata" in item.keywords:
            item.add_marker(skip)
            skipped += 1
    config.stash[REALDATA_SKIPPED] = skipped


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    """Say once, at the end (also under -q), that real-data tests were skipped and why."""
    skipped = config.stash.get(REALDATA_SKIPPED, 0)
    if skipped:
        terminalreporter.write_line(f"recsec: {skipped} real-data test(s) skipped: {realdata_skip_reason()}")


@pytest.fixture
def no_mirror_env(monkeypatch):
    """Tests that resolve sources must not pick up a developer's RECSEC_DATA_MIRROR."""
    monkeypatch.delenv("RECSEC_DATA_MIRROR", raising=False)


@pytest.fixture
def synthetic_files(tmp_path) -> Callable[..., Path]:
    """write(fmt, subdir=fmt, **kw) -> path: a tiny dataset in MovieLens format ``fmt`` under tmp_path."""

    def write(fmt: str, subdir: str | None = None, **kwargs) -> Path:
        return write_synthetic_files(tmp_path / (subdir or fmt), fmt, **kwargs)

    return write


@dataclass
class FileServer:
    """A local HTTP server (127.0.0.1, its own thread) serving files from ``root``.

    ``failures`` makes the next requests fail: each entry is "500" (HTTP 500)
    or "truncate" (announce the full length, send half, close).
    """

    root: Path
    url: str = ""
    failures: list[str] = field(default_factory=list)
    requests: int = 0


@pytest.fixture
def file_server(tmp_path) -> Iterator[FileServer]:
    root = tmp_path / "served"
    root.mkdir()
    state = FileServer(root=root)

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (http.server's naming)
            state.requests += 1
            path = root / self.path.lstrip("/")
            if not path.is_file():
                self.send_error(404)
                return
            body = path.read_bytes()
            failure = state.failures.pop(0) if state.failures else None
            if failure == "500":
                self.send_error(500)
                return
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body[: len(body) // 2] if failure == "truncate" else body)
            if failure == "truncate":
                self.close_connection = True

        def log_message(self, *args):  # keep test output quiet
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture(autouse=True, scope="module")
def _no_ray_left_behind() -> Iterator[None]:
    """Stop any Ray a test module started, so its workers' late log lines cannot reach a later test's stderr.

    The executor keeps its Ray connection for reuse within a process; a test
    module that used it must not hand it (and its workers' output) on.
    """
    yield
    from recsec_lib.common.executor import shutdown_ray

    shutdown_ray()


# ---- run folders with a small trained target, shared by a stage's unit tests and its notebook test ----
@pytest.fixture()
def attack_smoke_run(tmp_path):
    """A run folder on the synthetic dataset with a (briefly trained) SASRec target in train/sasrec.pt."""
    import torch

    from recsec_lib.models.registry import build_model
    from recsec_lib.recommend.checkpoints import save_checkpoint
    from recsec_lib.recommend.sequences import pad_left
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
    """A run folder whose train stage left a small SASRec at train/sasrec.pt (synthetic data); (root, checkpoint)."""
    import torch

    from recsec_lib.data.prepare import prepare_dataset
    from recsec_lib.gro.training import GROConfig, fresh_like, train_gro
    from recsec_lib.models.registry import build_model
    from recsec_lib.recommend.checkpoints import save_checkpoint

    root = tmp_path_factory.mktemp("gro_run")
    data = prepare_dataset("synthetic", data_dir=root / "data", mirror=None)
    torch.manual_seed(0)
    model = build_model("sasrec", data.num_items, 30, hidden=16)
    train_gro(model, fresh_like(model), data.train_sequences(), GROConfig(method="none", epochs=4, batch_size=32),
              progress=False)
    path = save_checkpoint(root / "run" / "train" / "sasrec.pt", model, "sasrec", data)
    return root, path
