"""Running a stage's independent cells: in this process, on a local process pool, or on a Ray cluster.

The study is a grid of independent *cells* (a GRO arm, an attacker × defense
pair, a SEAT zoo attacker, an attack seed). A cell is a frozen dataclass that
describes one unit of work; a top-level function ``fn(cell) -> result`` does it
(a result is a list of row dicts or another small picklable value). Cells are
*pure*: their fields (settings, seeds, the paths of the files they read) decide
their result, and they never write the run folder. The driver gets every result
back and writes; so no two workers write the same file and a cluster needs no
shared disk for results. The files a cell reads (checkpoints) travel by path:
on a cluster those paths must be on a disk every node sees.

``run_cells(fn, cells, config)`` runs them on one of three back-ends, chosen by
an ``ExecutorConfig``:

* ``serial`` (``workers=1``, the default): one after another in this process;
* ``pool`` (``workers=N``): a local process pool (spawn context: a fresh
  interpreter per worker, no forked torch state);
* ``ray`` (``cluster=...``): Ray tasks, each asking for ``threads_per_worker``
  CPUs, so Ray never runs more of them on a node than its cores allow.
  ``cluster="local"`` starts a private local Ray (``ray.init``), ``"auto"``
  joins the Ray cluster this machine belongs to (``RAY_ADDRESS`` or one started
  here with ``ray start``) and starts a local one when there is none,
  ``"ray://HOST:PORT"`` connects through the Ray client and ``"HOST:PORT"``
  joins a cluster's head directly (the driver's machine must then be a node).
  Ray is an optional extra (``pip install -e '.[cluster]'``), imported only
  here and only when asked for.

Every back-end gives each cell the same number of torch threads
(``threads_per_worker``, 1 by default), so a run's numbers do not depend on the
back-end; see ``ExecutorConfig``. ``executor_config`` turns the command-line
options ``--workers``/``--cluster``/``--threads`` into a checked config.

Progress: one tqdm bar per call, counting finished cells. A cell's failure
raises one ``CellError`` that names the cell (its key and its settings); the
cells that finished before it (and those still running on other workers, which
are let finish) have already been handed to ``on_done`` and to the ``store``,
so a rerun with the same ``store`` (or ``skip=`` their keys) runs only the
missing cells. Each cell's ``cell_key`` is stable across processes and
machines: a hash of its type name and fields, or its own ``key`` attribute.

Layer 0: imports nothing from the rest of ``recsec_lib`` but the progress bar.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import enum
import hashlib
import json
import multiprocessing
import os
import pickle
import re
import sys
import time
from collections.abc import Callable, Collection, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from recsec_lib.common.files import atomic_path
from recsec_lib.common.progress import tqdm

RAY_VERSION = "2.53.0"  # the version constraints.txt pins; a cluster must run the same Ray
_THREAD_ENV = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._=,+-]{0,199}$")  # a key is also a file name in a CellStore
_CLUSTER_WORDS = ("auto", "local")


# --------------------------------------------------------------------------- configuration


@dataclass(frozen=True)
class ExecutorConfig:
    """Where a stage's cells run.

    ``workers``: cells run at once. Without a cluster, 1 = serially in this
    process and N > 1 = a pool of N local processes; ``workers × threads_per_worker``
    must fit the machine's cores (``executor_config`` checks it). With a
    cluster, ``None`` = as many as the cluster's CPUs allow (a local Ray start:
    every core of this machine).

    ``cluster``: ``None`` (no Ray), ``"local"``, ``"auto"``, ``"ray://HOST:PORT"``
    or ``"HOST:PORT"`` (see the module's docstring).

    ``threads_per_worker``: torch's intra-op threads in every cell, 1 by
    default in *every* back-end, the serial one included. Why the same number:
    torch splits a reduction (a sum, a matmul's inner products, a loss over a
    batch) into one partial result per thread and adds the partials; float
    addition is not associative, so the same seeded training on 1 and on 2
    threads can differ in the last bits after one step and drift apart over
    epochs. With one count everywhere, a stage run serially, with ``--workers 2``
    and on Ray gives identical tables. 1 is the one count that fits any number
    of workers on any machine; raise it (``--threads``) for few, large cells,
    knowing the numbers may then differ in the last digits from a run with
    another count.
    """

    workers: int | None = 1
    cluster: str | None = None
    threads_per_worker: int = 1

    def __post_init__(self) -> None:
        if self.workers is None and self.cluster is None:
            raise ValueError("ExecutorConfig: workers=None (as many as the cluster allows) needs a cluster")
        if self.workers is not None:
            _check_count("workers", self.workers)
        _check_count("threads_per_worker", self.threads_per_worker)
        if self.cluster is not None:
            object.__setattr__(self, "cluster", parse_cluster(self.cluster, option="cluster"))

    @property
    def backend(self) -> str:
        """``serial``, ``pool`` or ``ray``."""
        if self.cluster is not None:
            return "ray"
        return "serial" if self.workers == 1 else "pool"

    def params(self) -> dict:
        """What a run's params.json records about how its cells ran."""
        return {"backend": self.backend, "workers": self.workers, "cluster": self.cluster,
                "threads_per_worker": self.threads_per_worker}


def _check_count(option: str, value) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{option} must be a whole number of at least 1, got {value!r}")


def available_cores() -> int:
    """CPU cores this process may use (its affinity mask, which containers and ``taskset`` narrow)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def parse_cluster(value: str, option: str = "--cluster") -> str:
    """``value`` checked and normalised: ``auto``, ``local``, ``ray://HOST:PORT`` or ``HOST:PORT``."""
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{option}: expected auto, local, ray://HOST:PORT or HOST:PORT, got {value!r}")
    text = value.strip()
    if text.lower() in _CLUSTER_WORDS:
        return text.lower()
    address = text[len("ray://"):] if text.startswith("ray://") else text
    host, sep, port = address.rpartition(":")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host  # [::1]:6379
    if not sep or not host or any(c.isspace() or c in "/@?#" for c in host) \
            or not port.isdigit() or not 1 <= int(port) <= 65535:
        raise ValueError(f"{option}: expected auto, local, ray://HOST:PORT or HOST:PORT "
                         f"(a port from 1 to 65535), got {value!r}")
    return text


def executor_config(workers: int | None = None, cluster: str | None = None, threads: int | None = None,
                    cores: int | None = None) -> ExecutorConfig:
    """The ``ExecutorConfig`` for the options ``--workers N``, ``--cluster ADDR|auto|local``, ``--threads T``.

    Pure: ``cores`` is the machine's core count (default: ``available_cores()``).
    Errors name the option. Without a cluster, ``workers`` defaults to 1
    (serial); with ``--cluster local`` to every core (``cores // threads``);
    with another cluster it stays ``None`` (the cluster's CPUs decide). On this
    machine's back-ends (no cluster, or ``local``) ``workers × threads`` must
    not exceed ``cores``: more would make the workers take turns on the cores
    and slow every cell.
    """
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 1):
        raise ValueError(f"--workers must be a whole number of at least 1, got {workers!r}")
    if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 1):
        raise ValueError(f"--threads must be a whole number of at least 1, got {threads!r}")
    threads = threads or 1
    cores = available_cores() if cores is None else cores
    if cluster is not None:
        cluster = parse_cluster(cluster)
    local = cluster is None or cluster == "local"
    if workers is None:
        if cluster is None:
            workers = 1
        elif cluster == "local":
            workers = max(1, cores // threads)
    if local and workers * threads > cores:
        raise ValueError(f"--workers {workers} × --threads {threads} = {workers * threads} threads exceeds the "
                         f"{cores} CPU cores of this machine; lower --workers or --threads")
    return ExecutorConfig(workers=workers, cluster=cluster, threads_per_worker=threads)


# --------------------------------------------------------------------------- cells, keys, store


def cell_key(cell) -> str:
    """A cell's stable key: its own ``key`` attribute, or ``<TypeName>-<hash of its fields>``.

    The hash is of canonical JSON (sorted field names, floats as their shortest
    repr, paths as text), so it is the same in every process, on every machine
    and in every run. Two cells with equal fields have the same key.
    """
    own = getattr(cell, "key", None)
    if own is not None:
        if not isinstance(own, str) or not _KEY.match(own):
            raise ValueError(f"cell {cell!r}: its key {own!r} must be 1-200 characters of letters, digits "
                             "and . _ = , + - (it names a file in a CellStore)")
        return own
    _check_cell(cell)
    payload = {"type": type(cell).__qualname__, "fields": _fields(cell)}
    try:
        text = json.dumps(payload, sort_keys=True, default=_canonical)
    except TypeError as exc:
        raise ValueError(f"cell {cell!r}: cannot derive its key ({exc}); give the cell a `key` property") from exc
    return f"{type(cell).__name__}-{hashlib.sha256(text.encode()).hexdigest()[:16]}"


def _fields(cell) -> dict:
    return {f.name: getattr(cell, f.name) for f in dataclasses.fields(cell)}


def _canonical(value):
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, (set, frozenset)):
        return sorted(value, key=repr)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {"type": type(value).__qualname__, "fields": _fields(value)}
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    raise TypeError(f"a field holds a {type(value).__name__}, which has no canonical text")


def _check_cell(cell, index: int | None = None) -> None:
    where = "" if index is None else f"cells[{index}] "
    if not (dataclasses.is_dataclass(cell) and not isinstance(cell, type)):
        raise TypeError(f"{where}must be a frozen dataclass instance, got {type(cell).__name__}")
    if not cell.__dataclass_params__.frozen:
        raise TypeError(f"{where}{type(cell).__name__} must be a frozen dataclass (@dataclass(frozen=True)): "
                        "a cell's fields are its inputs and its key")
    if "<locals>" in type(cell).__qualname__:
        raise TypeError(f"{where}{type(cell).__qualname__} is defined inside a function; worker processes can "
                        "only rebuild cells of a class defined at a module's top level")


def _check_fn(fn) -> None:
    name = getattr(fn, "__qualname__", None)
    if not callable(fn) or name is None or "<locals>" in name or "<lambda>" in name:
        raise TypeError(f"fn must be a function defined at a module's top level (workers import it by name), "
                        f"got {fn!r}")


class CellStore:
    """The finished cells of a stage, one pickle per cell key in a folder, for ``run_cells(store=...)``.

    Only the driver writes it (each result atomically, as its cell finishes),
    so a run that stops half-way keeps every finished cell and a rerun with the
    same store computes only the rest. Choose a folder whose name changes when
    anything the cells do not carry in their fields changes (the stage cache
    key, which hashes the code and the earlier stages, is a good part of it).
    """

    def __init__(self, folder: str | os.PathLike):
        self.folder = Path(folder)

    def _path(self, key: str) -> Path:
        if not _KEY.match(key):
            raise ValueError(f"CellStore {self.folder}: {key!r} is not a valid cell key")
        return self.folder / f"{key}.pkl"

    def keys(self) -> set[str]:
        if not self.folder.is_dir():
            return set()
        return {path.stem for path in self.folder.glob("*.pkl")}

    def __contains__(self, key: str) -> bool:
        return self._path(key).exists()

    def get(self, key: str):
        path = self._path(key)
        try:
            with open(path, "rb") as handle:
                return pickle.load(handle)
        except (pickle.UnpicklingError, EOFError, AttributeError, ImportError) as exc:
            raise ValueError(f"{path}: cannot read this stored cell result ({exc}); delete the file "
                             "to recompute the cell") from exc

    def put(self, key: str, result) -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp, open(tmp, "wb") as handle:
            pickle.dump(result, handle, protocol=pickle.HIGHEST_PROTOCOL)


# --------------------------------------------------------------------------- results and errors


@dataclass(frozen=True)
class CellResults:
    """What ``run_cells`` returns: every result it has, keyed and in the cells' order.

    ``results`` holds the cells computed now (``ran``) and those read back from
    the store; ``reused`` lists those and the skipped ones (a key given in
    ``skip`` has no result here). ``params()`` is what the run's params record.
    """

    results: dict[str, Any]
    ran: tuple[str, ...]
    reused: tuple[str, ...]
    backend: str
    workers: int | None
    threads_per_worker: int
    seconds: float

    def values(self) -> list:
        return list(self.results.values())

    def params(self) -> dict:
        return {"backend": self.backend, "workers": self.workers, "threads_per_worker": self.threads_per_worker,
                "cells_run": len(self.ran), "cells_reused": len(self.reused)}


class CellError(RuntimeError):
    """A cell failed. Names it (key and settings); the finished cells were kept (``finished``)."""

    def __init__(self, key: str, cell, cause: BaseException, finished: Sequence[str], missing: int,
                 other_failures: int = 0):
        self.key = key
        self.cell = cell
        self.finished = tuple(finished)
        self.missing = missing
        others = f"; {other_failures} other running cell(s) failed too" if other_failures else ""
        super().__init__(
            f"cell {key} failed: {cell!r}\n  {_summary(cause)}{others}\n"
            f"  {len(self.finished)} cell(s) finished in this call and were handed to on_done/the store; "
            f"a rerun with the same store (or skip= their keys) runs only the {missing} missing cell(s)")


def _summary(error: BaseException) -> str:
    """``Type: first line of the message`` of the cell's own error (Ray wraps it in a RayTaskError)."""
    inner = getattr(error, "cause", None)  # RayTaskError.cause: the exception the cell raised
    if isinstance(inner, BaseException):
        error = inner
    first_line = (str(error).strip().splitlines() or [""])[0]
    return f"{type(error).__name__}: {first_line}"


# --------------------------------------------------------------------------- threads


def set_torch_threads(threads: int) -> int:
    """Set torch's intra-op threads (and the OpenMP/MKL variables children inherit); return the old count."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    return previous


def _thread_env(threads: int):
    """OMP/MKL/OpenBLAS thread variables set to ``threads`` while the block runs, for the processes it starts.

    A spawned worker reads them when torch loads, before any of our code runs
    in it; ``torch.set_num_threads`` in the worker then fixes torch's own count.
    """
    return _environment(**{name: str(threads) for name in _THREAD_ENV})


def _worker_init(threads: int) -> None:
    """Pool worker start-up: this worker's torch thread count."""
    for name in _THREAD_ENV:
        os.environ[name] = str(threads)
    set_torch_threads(threads)


def _run_in_worker(fn, cell, threads: int):
    set_torch_threads(threads)  # a Ray worker process is reused by tasks that may ask for other counts
    return fn(cell)


# --------------------------------------------------------------------------- the driver


def run_cells(fn: Callable[[Any], Any], cells: Sequence, config: ExecutorConfig | None = None, *,
              desc: str = "cells", skip: Collection[str] = (), store: CellStore | None = None,
              on_done: Callable[[Any, Any], None] | None = None) -> CellResults:
    """Run ``fn(cell)`` for every cell not already done; return the results keyed by ``cell_key``.

    ``skip``: keys already done elsewhere (not run, not returned). ``store``: a
    ``CellStore``; cells whose key it holds are read back instead of run, and
    each new result is put there as its cell finishes. ``on_done(cell, result)``
    is called in this process as each cell finishes (after the store has it).
    Raises ``CellError`` for the first failing cell, after the cells running
    beside it have finished; no new cell starts after a failure.
    """
    config = config or ExecutorConfig()
    _check_fn(fn)
    cells = list(cells)
    keys = []
    seen: dict[str, int] = {}
    for index, cell in enumerate(cells):
        _check_cell(cell, index)
        key = cell_key(cell)
        if key in seen:
            raise ValueError(f"cells[{seen[key]}] and cells[{index}] have the same key {key!r}: {cell!r}; "
                             "a cell's fields must tell it apart from every other cell")
        seen[key] = index
        keys.append(key)
    skip = set(skip)
    stored = store.keys() if store is not None else set()
    reused = [key for key in keys if key in stored or key in skip]
    pending = [(key, cell) for key, cell in zip(keys, cells) if key not in stored and key not in skip]
    results: dict[str, Any] = {key: store.get(key) for key in keys if key in stored and key not in skip}

    finished: set[str] = set()

    def finish(key: str, cell, result) -> None:
        if store is not None:
            store.put(key, result)
        results[key] = result
        finished.add(key)
        if on_done is not None:
            on_done(cell, result)

    start = time.perf_counter()
    workers = config.workers
    with tqdm(total=len(cells), initial=len(reused), desc=desc, unit="cell", disable=None) as bar:
        if pending:
            if config.backend == "serial":
                _run_serial(fn, pending, config.threads_per_worker, finish, bar)
            elif config.backend == "pool":
                _run_windowed(_PoolBackend(config.workers, config.threads_per_worker, len(pending)),
                              fn, pending, finish, bar)
            else:
                backend = _RayBackend(config)
                workers = backend.slots
                _run_windowed(backend, fn, pending, finish, bar)
    ordered = {key: results[key] for key in keys if key in results}
    return CellResults(results=ordered, ran=tuple(k for k in keys if k in finished),
                       reused=tuple(reused), backend=config.backend, workers=workers,
                       threads_per_worker=config.threads_per_worker, seconds=time.perf_counter() - start)


def _run_serial(fn, pending, threads: int, finish, bar) -> None:
    previous = set_torch_threads(threads)
    try:
        for position, (key, cell) in enumerate(pending):
            try:
                result = fn(cell)
            except Exception as exc:
                raise CellError(key, cell, exc, _finished_keys(pending[:position]),
                                missing=len(pending) - position) from exc
            finish(key, cell, result)
            bar.update(1)
    finally:
        set_torch_threads(previous)


def _finished_keys(done) -> list[str]:
    return [key for key, _ in done]


def _run_windowed(backend, fn, pending, finish, bar) -> None:
    """Keep ``backend.slots`` cells in flight; after a failure start no more, let the running ones finish."""
    queue = iter(pending)
    in_flight: dict[Any, tuple[str, Any]] = {}
    done: list[str] = []
    failure: tuple[str, Any, BaseException] | None = None
    other_failures = 0
    with backend:
        handle_fn = backend.prepare(fn)
        while True:
            while failure is None and len(in_flight) < backend.slots:
                item = next(queue, None)
                if item is None:
                    break
                in_flight[backend.submit(handle_fn, item[1])] = item
            if not in_flight:
                break
            for handle, outcome, error in backend.wait_some(list(in_flight)):
                key, cell = in_flight.pop(handle)
                if error is None:
                    finish(key, cell, outcome)
                    done.append(key)
                    bar.update(1)
                elif failure is None:
                    failure = (key, cell, error)
                else:
                    other_failures += 1
    if failure is not None:
        key, cell, error = failure
        raise CellError(key, cell, error, done, missing=len(pending) - len(done),
                        other_failures=other_failures) from error


class _PoolBackend:
    """A local process pool (spawn context), ``workers`` processes with ``threads`` torch threads each."""

    def __init__(self, workers: int, threads: int, cells: int):
        cores = available_cores()
        if workers * threads > cores:
            raise ValueError(f"workers={workers} × threads_per_worker={threads} exceeds the {cores} CPU cores of "
                             "this machine: the workers would take turns on the cores and every cell would slow")
        self.slots = workers
        self.threads = threads
        self.processes = min(workers, cells)
        self.pool = None
        self.env = _thread_env(threads)

    def __enter__(self):
        self.env.__enter__()  # the workers start lazily, on submits: keep the variables set while they run
        self.pool = concurrent.futures.ProcessPoolExecutor(
            max_workers=self.processes, mp_context=multiprocessing.get_context("spawn"),
            initializer=_worker_init, initargs=(self.threads,))
        return self

    def __exit__(self, *exc_info):
        try:
            self.pool.shutdown(wait=True, cancel_futures=True)
        finally:
            self.env.__exit__(*exc_info)
        return False

    def prepare(self, fn):
        return fn

    def submit(self, fn, cell):
        return self.pool.submit(_run_in_worker, fn, cell, self.threads)

    def wait_some(self, handles):
        done, _ = concurrent.futures.wait(handles, return_when=concurrent.futures.FIRST_COMPLETED)
        for future in done:
            error = future.exception()
            if isinstance(error, concurrent.futures.process.BrokenProcessPool):
                error = RuntimeError(f"the worker process running this cell died ({error}): out of memory, "
                                     "killed, or it could not start (a script that runs cells on a pool must "
                                     "start them under `if __name__ == '__main__':`)")
            yield future, (None if error else future.result()), error


# --------------------------------------------------------------------------- Ray

_RAY = {"config": None, "connected": False}  # the connection this module made (Ray allows one per process)


def import_ray():
    """The ``ray`` module, or an error that says how to install it."""
    try:
        import ray
    except ImportError as exc:
        raise ImportError(f"--cluster needs Ray, which is not installed here: pip install -e '.[cluster]' "
                          f"(Ray {RAY_VERSION}, pinned in constraints.txt)") from exc
    return ray


def _worker_pythonpath() -> str:
    """The driver's import path, less the interpreter's own folders, for local Ray workers.

    A spawned pool worker gets the driver's ``sys.path``; a Ray worker only the
    driver's current folder. Passing the rest on makes local Ray import what a
    local pool imports (a test module, a notebook's folder).
    """
    own = {os.path.realpath(p) for p in (sys.prefix, sys.base_prefix, sys.exec_prefix)}
    paths = []
    for entry in sys.path:
        real = os.path.realpath(entry or os.curdir)
        if os.path.isdir(real) and not any(real == p or real.startswith(p + os.sep) for p in own):
            paths.append(real)
    existing = os.environ.get("PYTHONPATH")
    return os.pathsep.join(dict.fromkeys(paths + ([existing] if existing else [])))


def connect_ray(config: ExecutorConfig):
    """Connect to (or start) the Ray of ``config``; reuse a connection this process already has.

    No ``runtime_env`` is asked for: with one, every worker start waits on
    Ray's runtime-env agent, which on a loaded machine missed Ray's 30 s
    deadline here and took the node down. A local Ray's workers inherit this
    process's environment instead (the thread variables and ``PYTHONPATH`` set
    while it starts); on a cluster Ray sets ``OMP_NUM_THREADS`` to a task's
    CPUs, and each cell sets torch's threads itself.
    """
    ray = import_ray()
    key = (config.cluster, config.workers, config.threads_per_worker)
    if ray.is_initialized():
        if _RAY["config"] in (None, key):  # the caller connected itself, or we did with the same config
            return ray
        shutdown_ray()
    threads = config.threads_per_worker
    start_here = config.cluster == "local"
    if config.cluster == "auto":
        try:
            ray.init(address="auto", logging_level="warning")
        except ConnectionError:  # no cluster to join: start one here
            start_here = True
    elif config.cluster != "local":
        ray.init(address=config.cluster, logging_level="warning")
    if start_here:
        cores = available_cores()
        workers = config.workers or max(1, cores // threads)
        if workers * threads > cores:
            raise ValueError(f"--workers {workers} × --threads {threads} exceeds the {cores} CPU cores of this "
                             "machine, where --cluster starts a local Ray")
        # RAY_ACCEL_ENV_VAR_OVERRIDE_ON_ZERO=0: a task that asks for no GPU still sees the machine's GPUs,
        # as a pool worker does (Ray's old default hid them from it, and it warns that the default changes).
        with _thread_env(threads), _environment(PYTHONPATH=_worker_pythonpath(),
                                                RAY_ACCEL_ENV_VAR_OVERRIDE_ON_ZERO="0"):
            _start_local_ray(ray, num_cpus=workers * threads, include_dashboard=False, logging_level="warning")
    _RAY.update(config=key, connected=True)
    return ray


@contextmanager
def _environment(**values: str) -> Iterator[None]:
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _start_local_ray(ray, attempts: int = 2, **options) -> None:
    """``ray.init`` of a new local Ray, tried again once if its node misses Ray's start-up deadline.

    On a loaded machine a helper process can start too slowly for the node's
    registration deadline (a fixed 30 s in Ray); the second try finds the
    libraries in the page cache.
    """
    for attempt in range(1, attempts + 1):
        try:
            ray.init(address="local", **options)
            return
        except Exception as exc:  # Ray raises a bare Exception for this
            if "timed out during startup" not in str(exc) or attempt == attempts:
                raise
            ray.shutdown()


def shutdown_ray() -> None:
    """Disconnect from Ray (and stop the local Ray this process started); nothing if not connected."""
    if _RAY["connected"]:
        import_ray().shutdown()
    _RAY.update(config=None, connected=False)


class _RayBackend:
    """Ray tasks of ``threads_per_worker`` CPUs each, at most ``slots`` in flight."""

    def __init__(self, config: ExecutorConfig):
        self.ray = connect_ray(config)
        self.threads = config.threads_per_worker
        if config.workers is not None:
            self.slots = config.workers
        else:
            cpus = self.ray.cluster_resources().get("CPU", 1)
            self.slots = max(1, int(cpus // self.threads))
        self.remote = self.ray.remote(_run_in_worker)
        self.in_flight: set = set()

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is not None:  # interrupted, or storing a result failed: stop the cells still running
            for ref in self.in_flight:
                self.ray.cancel(ref)
        return False

    def prepare(self, fn):
        return self.ray.put(fn)  # shipped once, not with every task

    def submit(self, fn_ref, cell):
        # Ray's default retries: a task whose worker or node died runs again (a pure cell may); an error the
        # cell raises is not retried.
        ref = self.remote.options(num_cpus=self.threads).remote(fn_ref, cell, self.threads)
        self.in_flight.add(ref)
        return ref

    def wait_some(self, handles):
        ready, _ = self.ray.wait(handles, num_returns=1)
        for ref in ready:
            self.in_flight.discard(ref)
            try:
                yield ref, self.ray.get(ref), None
            except Exception as exc:  # RayTaskError (also an instance of the cell's error), WorkerCrashedError
                yield ref, None, exc


__all__ = ["ExecutorConfig", "executor_config", "parse_cluster", "available_cores", "cell_key", "CellStore",
           "CellResults", "CellError", "run_cells", "set_torch_threads", "connect_ray", "shutdown_ray",
           "import_ray", "RAY_VERSION"]
