"""Wall time of one list of CPU-bound cells: serial vs a local pool of 2 workers vs a local Ray of 2 workers.

    .venv/bin/python benchmarks/bench_executor.py --gro                # the GRO stage's own cells (smoke data)
    .venv/bin/python benchmarks/bench_executor.py --gro --mirror ../shared/data --gro-profile cpu  # ML-1M, reduced
    .venv/bin/python benchmarks/bench_executor.py                      # 6 stand-in training cells

``--gro`` runs the GRO stage's matrix cells (``arena.matrix.build_cells``: one
model × generator × seed, every arm of that model, one surrogate per distinct
training set) for the undefended target and a second model, on the smoke
profile's synthetic data, or with ``--gro-profile cpu`` on ML-1M at the cpu
profile's attack budget (reduced to ``--seeds`` seeds; needs ``--target``, a
trained SASRec checkpoint). Without ``--gro`` the cells are a stand-in: each
trains a seeded SASRec on its own synthetic dataset for ``--epochs`` epochs.
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


def gro_cells(profile: str, seeds: int, target: str | None, mirror: str | None, work: str):
    """The GRO stage's matrix cells for ``profile`` (None + its output defenses, and a second, weaker model)."""
    from pathlib import Path

    from recsec_lib.arena.arms import UNDEFENDED, Arm, none_arm, output_arms
    from recsec_lib.arena.cells import DatasetRef
    from recsec_lib.arena.matrix import build_cells, ranked_model_lists
    from recsec_lib.defenses.output import parse_output_defense
    from recsec_lib.models.registry import build_model
    from recsec_lib.recommend.checkpoints import load_checkpoint, save_checkpoint
    from recsec_lib.recommend.training import TrainConfig, train_model
    from recsec_lib.study.stages import gro

    settings = gro.Settings.for_profile(profile).with_overrides(attack_seeds=seeds)
    ref = DatasetRef("synthetic" if profile == "smoke" else "ml-1m", str(Path(work) / "data"), mirror)
    dataset = ref.load()
    Path(work).mkdir(parents=True, exist_ok=True)
    if target is None:
        if profile != "smoke":
            raise SystemExit("--gro-profile cpu needs --target, a trained ML-1M SASRec checkpoint")
        torch.manual_seed(0)
        model = build_model("sasrec", dataset.num_items, dataset.max_len, hidden=16)
        model = train_model(model, dataset, TrainConfig(epochs=2, batch_size=64, patience=0), progress=False).model
        target = str(save_checkpoint(Path(work) / "target.pt", model, "sasrec", dataset))
    # the second model: the target's weights perturbed (a stand-in for a GRO-trained one: the same cost)
    weaker = load_checkpoint(target, dataset=dataset).model
    with torch.no_grad():
        for parameter in weaker.parameters():
            parameter.add_(0.01 * torch.randn_like(parameter))
    models = {UNDEFENDED: target, "weaker": str(save_checkpoint(Path(work) / "weaker.pt", weaker, None, dataset))}
    arms = [none_arm(), *output_arms(settings.output_defenses),
            Arm("weaker", "weaker", parse_output_defense("none"), "None", "null")]
    box_filter_seen = settings.k + dataset.max_len <= dataset.num_items
    attack = settings.attack_set(42, box_filter_seen)
    lists = ranked_model_lists(models, arms, dataset, attack.k, "cpu")
    top10 = {name: lists[UNDEFENDED, name][0][:, :10] for name in ("valid", "test")}
    return build_cells(models, arms, ref, attack, top10)


def cell_numbers(result) -> list:
    """What must be identical on every back-end: every per-user figure array of a matrix cell."""
    return [(key, name, values.tobytes()) for key, figures in sorted(result.figures.items())
            for name, values in sorted(figures.items())]


def load() -> str:
    return "load average %.1f %.1f %.1f" % os.getloadavg()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cells", type=int, default=6)
    parser.add_argument("--epochs", type=int, default=4, help="epochs per cell (sets a cell's length)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--backends", nargs="+", default=["serial", "pool", "ray"],
                        choices=["serial", "pool", "ray"])
    parser.add_argument("--gro", action="store_true", help="time the GRO stage's matrix cells instead")
    parser.add_argument("--gro-profile", choices=("smoke", "cpu"), default="smoke")
    parser.add_argument("--seeds", type=int, default=2, help="attack seeds of the GRO cells")
    parser.add_argument("--target", default=None, help="trained SASRec checkpoint (needed with --gro-profile cpu)")
    parser.add_argument("--mirror", default=os.environ.get("RECSEC_DATA_MIRROR"), help="MovieLens copy (cpu)")
    parser.add_argument("--work", default="/tmp/bench_executor", help="folder for the data cache and models")
    args = parser.parse_args()

    if args.gro:
        from recsec_lib.arena.cells import run_cell

        fn, cells = run_cell, gro_cells(args.gro_profile, args.seeds, args.target, args.mirror, args.work)
        print(f"{len(cells)} GRO matrix cells ({args.gro_profile} profile), {available_cores()} cores")
    else:
        fn, cells = train_cell, [TrainingCell(seed=seed, epochs=args.epochs) for seed in range(args.cells)]
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
        run = run_cells(fn, cells, config, desc=backend)
        times[backend] = time.perf_counter() - started
        results[backend] = run.values()
        print(f"  {backend}: {times[backend]:.1f} s wall ({run.workers} worker(s) × {run.threads_per_worker} "
              "thread)", flush=True)
        if not args.gro:
            per_cell = [rows[0]["cell_seconds"] for rows in run.values()]
            print(f"  a cell's training {np.mean(per_cell):.1f} s on average "
                  f"(min {min(per_cell):.1f}, max {max(per_cell):.1f})", flush=True)
        if backend == "ray":
            shutdown_ray()

    def numbers(rows_list):
        if args.gro:
            return [cell_numbers(result) for result in rows_list]
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
