"""The cell executor: same results on every back-end, failures named and resumed, the thread budget, the config.

The pool and Ray tests start real workers (a pool costs ~1-2 s here, a local
Ray ~10-15 s, started once for the module); the Ray tests skip when Ray (the
``cluster`` extra) is not installed. The cells are defined here, at the
module's top level, so the workers can import them.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

from recsec_lib.common import executor
from recsec_lib.common.executor import (CellError, CellStore, ExecutorConfig, available_cores, cell_key,
                                        executor_config, parse_cluster, run_cells)

two_cores = pytest.mark.skipif(available_cores() < 2, reason="two workers need two cores")


# --------------------------------------------------------------------------- cells


@dataclass(frozen=True)
class TinyTraining:
    """A seeded two-layer network trained ``epochs`` epochs on seeded random data (a surrogate in miniature)."""

    seed: int
    epochs: int = 2


def train_tiny(cell: TinyTraining) -> list[dict]:
    generator = torch.Generator().manual_seed(cell.seed)
    x = torch.randn(512, 64, generator=generator)  # [N, D]
    y = (x[:, :8].sum(dim=1, keepdim=True) > 0).float()  # [N, 1]
    torch.manual_seed(cell.seed)
    model = torch.nn.Sequential(torch.nn.Linear(64, 128), torch.nn.ReLU(), torch.nn.Linear(128, 1))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(cell.epochs):
        for start in range(0, len(x), 64):
            loss = torch.nn.functional.binary_cross_entropy_with_logits(model(x[start:start + 64]),
                                                                        y[start:start + 64])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    weights = torch.cat([p.detach().flatten() for p in model.parameters()])
    rows = [{"seed": cell.seed, "loss": loss.item(), "weight_sum": weights.double().sum().item(),
             "weight_bytes": hashlib.sha256(weights.numpy().tobytes()).hexdigest(),
             "torch_threads": torch.get_num_threads()}]
    return rows, {"pid": os.getpid(), "omp": os.environ.get("OMP_NUM_THREADS")}  # where it ran: not compared


@dataclass(frozen=True)
class Flaky:
    """Fails while the file ``marker`` exists, if ``fails``; its input is that file (so it stays pure)."""

    index: int
    marker: str
    fails: bool = False


def flaky(cell: Flaky) -> list[dict]:
    if cell.fails and Path(cell.marker).exists():
        raise ValueError(f"cell {cell.index} cannot read its input")
    return [{"index": cell.index, "square": cell.index ** 2}]


@dataclass(frozen=True)
class ThreadProbe:
    index: int


def probe_threads(cell: ThreadProbe) -> dict:
    return {"torch": torch.get_num_threads(), "omp": os.environ.get("OMP_NUM_THREADS"), "pid": os.getpid()}


@dataclass(frozen=True)
class Keyed:
    name: str

    @property
    def key(self) -> str:
        return f"arm-{self.name}"


@dataclass
class NotFrozen:
    seed: int


def flaky_cells(marker: Path, n: int = 4) -> list[Flaky]:
    return [Flaky(i, str(marker), fails=(i == 1)) for i in range(n)]


# --------------------------------------------------------------------------- config


def test_executor_config_defaults_to_serial_with_one_thread():
    config = executor_config(cores=2)
    assert config == ExecutorConfig(workers=1, cluster=None, threads_per_worker=1)
    assert config.backend == "serial"
    assert config.params() == {"backend": "serial", "workers": 1, "cluster": None, "threads_per_worker": 1}


def test_executor_config_backends():
    assert executor_config(workers=2, cores=2).backend == "pool"
    local = executor_config(cluster="local", cores=16)
    assert (local.backend, local.workers, local.threads_per_worker) == ("ray", 16, 1)
    assert executor_config(cluster="local", threads=4, cores=16).workers == 4  # 16 cores / 4 threads
    remote = executor_config(cluster="ray://head.example:10001", cores=2)
    assert (remote.workers, remote.cluster) == (None, "ray://head.example:10001")  # the cluster decides
    assert executor_config(cluster="AUTO", cores=2).cluster == "auto"
    assert executor_config(workers=64, cluster="10.0.0.5:6379", cores=2).workers == 64  # not this machine


@pytest.mark.parametrize("workers, threads, cores", [(3, None, 2), (2, 2, 2), (1, 3, 2)])
def test_executor_config_keeps_workers_times_threads_within_the_cores(workers, threads, cores):
    with pytest.raises(ValueError, match=r"--workers \d+ × --threads \d+ = \d+ threads exceeds the 2 CPU cores"):
        executor_config(workers=workers, threads=threads, cores=cores)
    with pytest.raises(ValueError, match="exceeds the 2 CPU cores"):  # a local Ray is on this machine too
        executor_config(workers=workers, threads=threads, cluster="local", cores=cores)


@pytest.mark.parametrize("kwargs, option", [
    ({"workers": 0}, "--workers"), ({"workers": -2}, "--workers"), ({"workers": True}, "--workers"),
    ({"workers": 1.5}, "--workers"), ({"workers": "2"}, "--workers"),
    ({"threads": 0}, "--threads"), ({"threads": 2.0}, "--threads"),
    ({"cluster": "somewhere"}, "--cluster"), ({"cluster": "ray://head"}, "--cluster"),
    ({"cluster": "head:0"}, "--cluster"), ({"cluster": "head:65536"}, "--cluster"),
    ({"cluster": ":6379"}, "--cluster"), ({"cluster": "http://head:8265"}, "--cluster"),
    ({"cluster": ""}, "--cluster"), ({"cluster": "user@head:22"}, "--cluster"),
])
def test_executor_config_errors_name_the_option(kwargs, option):
    with pytest.raises(ValueError, match=f"^{option}"):
        executor_config(cores=2, **kwargs)


def test_parse_cluster_accepts_the_address_forms():
    assert parse_cluster(" local ") == "local"
    assert parse_cluster("ray://10.0.0.5:10001") == "ray://10.0.0.5:10001"
    assert parse_cluster("10.0.0.5:6379") == "10.0.0.5:6379"
    assert parse_cluster("[::1]:6379") == "[::1]:6379"


def test_executor_config_dataclass_checks_its_own_fields():
    with pytest.raises(ValueError, match="^workers must be"):
        ExecutorConfig(workers=0)
    with pytest.raises(ValueError, match="^threads_per_worker must be"):
        ExecutorConfig(threads_per_worker=0)
    with pytest.raises(ValueError, match="needs a cluster"):
        ExecutorConfig(workers=None)
    with pytest.raises(ValueError, match="^cluster: expected"):
        ExecutorConfig(cluster="nowhere")


# --------------------------------------------------------------------------- keys and the store


def test_cell_key_is_a_hash_of_the_type_and_fields_checkable_by_hand():
    # The canonical text of TinyTraining(3): sorted keys, JSON's separators.
    text = '{"fields": {"epochs": 2, "seed": 3}, "type": "TinyTraining"}'
    assert cell_key(TinyTraining(3)) == "TinyTraining-" + hashlib.sha256(text.encode()).hexdigest()[:16]
    assert cell_key(TinyTraining(3)) == cell_key(TinyTraining(seed=3, epochs=2))
    assert cell_key(TinyTraining(3)) != cell_key(TinyTraining(4))
    assert cell_key(Flaky(0, "a")) != cell_key(Flaky(0, "b"))  # the paths a cell reads are part of it
    assert cell_key(Keyed("gro-0.5")) == "arm-gro-0.5"


def test_cell_key_errors():
    with pytest.raises(ValueError, match="key 'arm-a b' must be"):
        cell_key(Keyed("a b"))
    with pytest.raises(TypeError, match="NotFrozen must be a frozen dataclass"):
        cell_key(NotFrozen(1))
    with pytest.raises(TypeError, match="must be a frozen dataclass instance, got dict"):
        cell_key({"seed": 1})


def test_run_cells_checks_cells_and_function():
    @dataclass(frozen=True)
    class Local:
        seed: int

    with pytest.raises(TypeError, match=r"cells\[1\] NotFrozen must be a frozen dataclass"):
        run_cells(flaky, [TinyTraining(0), NotFrozen(1)])
    with pytest.raises(TypeError, match="defined inside a function"):
        run_cells(flaky, [Local(0)])
    with pytest.raises(TypeError, match="fn must be a function defined at a module's top level"):
        run_cells(lambda cell: cell, [TinyTraining(0)])
    with pytest.raises(ValueError, match=r"cells\[0\] and cells\[2\] have the same key"):
        run_cells(train_tiny, [TinyTraining(0), TinyTraining(1), TinyTraining(0)])


def test_cell_store_round_trip_and_a_damaged_file(tmp_path):
    store = CellStore(tmp_path / "cells")
    assert store.keys() == set()
    store.put("arm-a", [{"x": 1.5}])
    assert store.keys() == {"arm-a"} and "arm-a" in store
    assert store.get("arm-a") == [{"x": 1.5}]
    (tmp_path / "cells" / "arm-b.pkl").write_bytes(b"not a pickle")
    with pytest.raises(ValueError, match=r"arm-b\.pkl: cannot read this stored cell result"):
        store.get("arm-b")
    with pytest.raises(ValueError, match="not a valid cell key"):
        store.put("../escape", 1)


# --------------------------------------------------------------------------- serial


def test_serial_runs_in_order_calls_on_done_and_restores_threads():
    before = torch.get_num_threads()
    seen = []
    cells = [ThreadProbe(i) for i in range(3)]
    result = run_cells(probe_threads, cells, on_done=lambda cell, row: seen.append(cell.index))
    assert seen == [0, 1, 2]
    assert list(result.results) == [cell_key(c) for c in cells]
    assert [row["torch"] for row in result.values()] == [1, 1, 1]  # the default: one thread
    assert {row["pid"] for row in result.values()} == {os.getpid()}
    assert torch.get_num_threads() == before
    assert result.params() == {"backend": "serial", "workers": 1, "threads_per_worker": 1,
                               "cells_run": 3, "cells_reused": 0}


def test_serial_failure_names_the_cell_keeps_the_finished_and_resume_runs_only_the_missing(tmp_path):
    marker = tmp_path / "broken"
    marker.touch()
    cells = flaky_cells(marker)
    store = CellStore(tmp_path / "cells")
    done = []
    with pytest.raises(CellError) as caught:
        run_cells(flaky, cells, store=store, on_done=lambda cell, rows: done.append(cell.index))
    error = caught.value
    assert error.key == cell_key(cells[1]) and error.cell == cells[1]
    message = str(error)
    assert f"cell {cell_key(cells[1])} failed: Flaky(index=1, marker='{marker}', fails=True)" in message
    assert "ValueError: cell 1 cannot read its input" in message
    assert "1 cell(s) finished" in message and "only the 3 missing" in message
    assert isinstance(error.__cause__, ValueError)
    assert done == [0] and store.keys() == {cell_key(cells[0])} and error.finished == (cell_key(cells[0]),)

    marker.unlink()  # the input is repaired
    rerun = run_cells(flaky, cells, store=store)
    assert rerun.ran == tuple(cell_key(c) for c in cells[1:])
    assert rerun.reused == (cell_key(cells[0]),)
    assert [rows[0]["square"] for rows in rerun.values()] == [0, 1, 4, 9]  # the stored one read back


def test_skip_runs_only_the_cells_not_named(tmp_path):
    cells = flaky_cells(tmp_path / "absent")
    result = run_cells(flaky, cells, skip={cell_key(cells[0]), cell_key(cells[2]), "stale-key"})
    assert result.ran == (cell_key(cells[1]), cell_key(cells[3]))
    assert list(result.results) == [cell_key(cells[1]), cell_key(cells[3])]  # skipped: no result without a store


def test_nothing_to_run_starts_nothing(monkeypatch, tmp_path):
    def refuse(*args, **kwargs):
        raise AssertionError("a back-end was started")

    monkeypatch.setattr(executor, "_PoolBackend", refuse)
    monkeypatch.setattr(executor, "_RayBackend", refuse)
    cells = flaky_cells(tmp_path / "absent", n=2)
    assert run_cells(flaky, [], ExecutorConfig(workers=2)).results == {}
    assert run_cells(flaky, cells, ExecutorConfig(cluster="local"), skip=[cell_key(c) for c in cells]).ran == ()


# --------------------------------------------------------------------------- local process pool


@two_cores
def test_pool_gives_the_serial_numbers_with_one_thread_per_worker():
    cells = [TinyTraining(seed) for seed in range(4)]
    serial = run_cells(train_tiny, cells)
    pool = run_cells(train_tiny, cells, ExecutorConfig(workers=2))
    assert [rows for rows, _ in pool.values()] == [rows for rows, _ in serial.values()]  # bit for bit
    assert all(rows[0]["torch_threads"] == 1 for rows, _ in pool.values())
    assert all(where["omp"] == "1" and where["pid"] != os.getpid() for _, where in pool.values())
    assert pool.params()["backend"] == "pool" and pool.threads_per_worker == 1


@two_cores
def test_pool_failure_keeps_the_running_cells_and_resume_runs_only_the_missing(tmp_path):
    marker = tmp_path / "broken"
    marker.touch()
    cells = flaky_cells(marker)
    store = CellStore(tmp_path / "cells")
    with pytest.raises(CellError, match=f"cell {cell_key(cells[1])} failed: Flaky") as caught:
        run_cells(flaky, cells, ExecutorConfig(workers=2), store=store)
    assert "ValueError: cell 1 cannot read its input" in str(caught.value)
    finished = set(caught.value.finished)
    assert cell_key(cells[0]) in finished  # it ran beside the failing one and was let finish
    assert cell_key(cells[1]) not in finished and store.keys() == finished
    marker.unlink()
    rerun = run_cells(flaky, cells, store=store)  # the store does not care which back-end filled it
    assert set(rerun.ran) == {cell_key(c) for c in cells} - finished
    assert [rows[0]["square"] for rows in rerun.values()] == [0, 1, 4, 9]


def test_a_pool_wider_than_the_machine_is_refused(tmp_path):
    too_many = ExecutorConfig(workers=available_cores() + 1)
    with pytest.raises(ValueError, match=rf"workers={available_cores() + 1} × threads_per_worker=1 exceeds the"):
        run_cells(flaky, flaky_cells(tmp_path / "absent"), too_many)


# --------------------------------------------------------------------------- Ray


@pytest.fixture(scope="module")
def local_ray():
    """A local Ray of 2 workers started by the executor, shut down after this module's tests."""
    if available_cores() < 2:
        pytest.skip("two workers need two cores")
    pytest.importorskip("ray", reason="Ray is not installed: the cluster extra (pip install -e '.[cluster]', "
                                      "RECSEC_WITH_CLUSTER=1 ./run_tests.sh) runs these tests")
    config = ExecutorConfig(workers=2, cluster="local")
    executor.connect_ray(config)
    yield config
    executor.shutdown_ray()


def test_ray_gives_the_serial_numbers(local_ray):
    cells = [TinyTraining(seed) for seed in range(4)]
    ray_run = run_cells(train_tiny, cells, local_ray)
    assert [rows for rows, _ in ray_run.values()] == [rows for rows, _ in run_cells(train_tiny, cells).values()]
    assert all(rows[0]["torch_threads"] == 1 for rows, _ in ray_run.values())
    assert all(where["omp"] == "1" and where["pid"] != os.getpid() for _, where in ray_run.values())
    assert (ray_run.backend, ray_run.workers, ray_run.threads_per_worker) == ("ray", 2, 1)


def test_ray_failure_is_named_and_resumed(local_ray, tmp_path):
    marker = tmp_path / "broken"
    marker.touch()
    cells = flaky_cells(marker)
    store = CellStore(tmp_path / "cells")
    with pytest.raises(CellError, match=f"cell {cell_key(cells[1])} failed: Flaky") as caught:
        run_cells(flaky, cells, local_ray, store=store)
    assert "ValueError: cell 1 cannot read its input" in str(caught.value)
    finished = set(caught.value.finished)
    assert cell_key(cells[1]) not in finished and store.keys() == finished
    marker.unlink()
    rerun = run_cells(flaky, cells, local_ray, store=store)
    assert set(rerun.ran) == {cell_key(c) for c in cells} - finished
    assert [rows[0]["square"] for rows in rerun.values()] == [0, 1, 4, 9]


def test_asking_for_ray_without_it_says_how_to_install(monkeypatch):
    monkeypatch.setitem(__import__("sys").modules, "ray", None)  # import ray now raises ImportError
    with pytest.raises(ImportError, match=r"--cluster needs Ray.*pip install -e '\.\[cluster\]'"):
        executor.import_ray()


class FakeRay:
    """Records what connect_ray asks of Ray; ``running`` says whether a cluster exists to join."""

    def __init__(self, running: bool):
        self.running = running
        self.calls: list[dict] = []
        self.initialized = False

    def is_initialized(self):
        return self.initialized

    def init(self, address=None, **options):
        if address == "auto" and not self.running:
            raise ConnectionError("Could not find any running Ray instance")
        self.calls.append({"address": address, **options,
                           "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS")})
        self.initialized = True

    def shutdown(self):
        self.initialized = False


@pytest.mark.parametrize("cluster, running, expected", [
    ("local", False, {"address": "local", "num_cpus": 2}),
    ("auto", False, {"address": "local", "num_cpus": 2}),  # nothing to join: a local start
    ("auto", True, {"address": "auto"}),
    ("ray://head:10001", False, {"address": "ray://head:10001"}),
    ("10.0.0.5:6379", False, {"address": "10.0.0.5:6379"}),
])
def test_connect_ray_reads_the_cluster_option(monkeypatch, cluster, running, expected):
    fake = FakeRay(running)
    monkeypatch.setattr(executor, "import_ray", lambda: fake)
    monkeypatch.setattr(executor, "available_cores", lambda: 2)
    monkeypatch.setattr(executor, "_RAY", {"config": None, "connected": False})  # not the real connection
    executor.connect_ray(ExecutorConfig(workers=None, cluster=cluster))
    call = fake.calls[-1]
    assert {k: call[k] for k in expected} == expected
    if call["address"] == "local":  # the local node's workers inherit one thread each
        assert call["OMP_NUM_THREADS"] == "1" and call["include_dashboard"] is False
    executor.connect_ray(ExecutorConfig(workers=None, cluster=cluster))  # connected already: reused
    assert len(fake.calls) == 1
    executor.connect_ray(ExecutorConfig(workers=1, cluster=cluster))  # another config: reconnects
    assert len(fake.calls) == 2 and fake.initialized
    executor.shutdown_ray()
    assert not fake.initialized
