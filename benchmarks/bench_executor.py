"""Wall time of one list of CPU-bound cells: serial vs a local pool of 2 workers vs a local Ray of 2 workers.

    .venv/bin/python benchmarks/bench_executor.py                      # 6 cells, every back-end
    .venv/bin/python benchmarks/bench_executor.py --cells 8 --epochs 6 --backends serial pool

The cells are a stand-in for the GRO stage's (until the stages are split into
cells): each trains a seeded SASRec on its own synthetic dataset for
``--epochs`` epochs with one torch thread, about 5-10 s on an idle core here.
Every back-end runs the same cells with 1 thread per worker, and the script
checks that they return identical numbers. The pool's time includes starting
its processes (each imports torch); Ray's start (``ray.init`` of a local node)
is printed apart from its cells' time, since a study starts Ray once for all
its stages. The machine's load average is printed before each back-end: on a
shared machine other work takes cores from the workers, and the ratios mean
little when the load is above the core count.
"""

from __future__ import annotations

import argparse
import os
import time
from dataclasses import dataclass

import numpy as np
import torch

from recsec_lib.common.executor import ExecutorConfig, available_cores, connect_ray, run_cells, shutdown_ray


@dataclass(frozen=True)
class TrainingCell:
    """One seeded training: the unit a GRO arm (λ × rule × seed) will be."""

    seed: int
    epochs: int = 4
    users: int = 600
    items: int = 300
    max_len: int = 50
    batch_size: int = 64


def train_cell(cell: TrainingCell) -> list[dict]:
    """Train a SASRec on a synthetic dataset; the final loss and a checksum of the weights."""
    from recsec_lib.data.synthetic import make_synthetic_dataset
    from recsec_lib.models.registry import build_model
    from recsec_lib.recommend.training import training_matrix

    dataset = make_synthetic_dataset(num_users=cell.users, num_items=cell.items, max_len=cell.max_len,
                                     seed=cell.seed)
    rows = torch.as_tensor(training_matrix(dataset, cell.max_len))  # [R, max_len + 1]
    torch.manual_seed(cell.seed)
    model = build_model("sasrec", dataset.num_items, cell.max_len)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    generator = torch.Generator().manual_seed(cell.seed)
    started = time.perf_counter()
    for _ in range(cell.epochs):
        order = torch.randperm(len(rows), generator=generator)
        for start in range(0, len(rows), cell.batch_size):
            loss = model.training_loss(rows[order[start:start + cell.batch_size]])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    weights = torch.cat([p.detach().flatten() for p in model.parameters()]).double()
    return [{"seed": cell.seed, "loss": loss.item(), "weight_sum": weights.sum().item(),
             "cell_seconds": time.perf_counter() - started}]


def load() -> str:
    return "load average %.1f %.1f %.1f" % os.getloadavg()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cells", type=int, default=6)
    parser.add_argument("--epochs", type=int, default=4, help="epochs per cell (sets a cell's length)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--backends", nargs="+", default=["serial", "pool", "ray"],
                        choices=["serial", "pool", "ray"])
    args = parser.parse_args()

    cells = [TrainingCell(seed=seed, epochs=args.epochs) for seed in range(args.cells)]
    print(f"{args.cells} cells ({cells[0]}), {available_cores()} cores, torch {torch.__version__}")
    times: dict[str, float] = {}
    results: dict[str, list] = {}
    for backend in args.backends:
        print(f"{backend}: {load()}", flush=True)
        if backend == "serial":
            config = ExecutorConfig()
        elif backend == "pool":
            config = ExecutorConfig(workers=args.workers)
        else:
            config = ExecutorConfig(workers=args.workers, cluster="local")
            started = time.perf_counter()
            ray = connect_ray(config)
            print(f"  ray {ray.__version__}: local start {time.perf_counter() - started:.1f} s", flush=True)
        started = time.perf_counter()
        run = run_cells(train_cell, cells, config, desc=backend)
        times[backend] = time.perf_counter() - started
        results[backend] = run.values()
        per_cell = [rows[0]["cell_seconds"] for rows in run.values()]
        print(f"  {backend}: {times[backend]:.1f} s wall ({run.workers} worker(s) × {run.threads_per_worker} "
              f"thread); a cell's training {np.mean(per_cell):.1f} s on average "
              f"(min {min(per_cell):.1f}, max {max(per_cell):.1f})", flush=True)
        if backend == "ray":
            shutdown_ray()

    def numbers(rows_list):
        return [{k: v for k, v in rows[0].items() if k != "cell_seconds"} for rows in rows_list]

    reference = next(iter(results))
    same = all(numbers(results[b]) == numbers(results[reference]) for b in results)
    print(f"identical numbers on every back-end: {same}")
    if "serial" in times:
        for backend in times:
            if backend != "serial":
                print(f"serial / {backend} = {times['serial'] / times[backend]:.2f}")
    print(load())


if __name__ == "__main__":
    main()
