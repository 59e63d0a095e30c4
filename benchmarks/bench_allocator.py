"""A surrogate's epoch with glibc's default allocator settings against ``common.allocator.keep_freed_memory``.

    PYTHONPATH=. .venv/bin/python benchmarks/bench_allocator.py [--repeats 3] [--epochs 3] [--threads 1]
    PYTHONPATH=. .venv/bin/python benchmarks/bench_allocator.py --target --threads 2 [--epochs 6]

The GRO stage's cpu attack (500 walks of 100 queries, top-100 lists, a SASRec
surrogate of ML-1M's 3,706 items, one thread per worker) builds tensors of
about 24 MB per batch. With glibc's defaults their pages go back to the OS
when freed and fault in again on the next batch. Each repeat trains the same
surrogate (same data, same seed) in two fresh processes, one per setting, in
alternating order, and prints seconds per epoch, minor page faults, the ratio
and the last epoch's loss (equal: only where memory comes from changes). The
lists are random ids: the cost does not depend on which items they hold.
``--target`` times the train stage's SASRec target instead (batches of 128
windows of 200 with a full softmax: 380 MB tensors, above any mmap threshold
glibc allows, so the settings do not reach them: ratio 1.00 on 2 threads).
Keeping those blocks in the heap as well (``M_MMAP_MAX`` 0, 2 GiB of freed heap kept) was tried and
measured: 0.83 against 0.85 s per batch on the train stage's 2 threads (ratio
0.98), so this project does not do it.
Not a test.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

ML1M_ITEMS, WALKS, WALK_LENGTH, TOP_K = 3706, 500, 100, 100


def print_cost(setting: str, steps: int, train) -> None:
    """Run ``train()`` (``steps`` epochs or batches; it returns the last loss) and print a JSON line of its cost."""
    import resource

    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    tick = time.perf_counter()
    loss = train()
    print(json.dumps({"setting": setting, "seconds_per_epoch": (time.perf_counter() - tick) / steps,
                      "minor_faults": resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults, "loss": loss}))


def target_child(setting: str, batches: int, threads: int, seed: int) -> None:
    """Train the SASRec target for a few full batches (128 windows of 200, full softmax); print a JSON line."""
    import torch

    from recsec_lib.common.allocator import keep_freed_memory
    from recsec_lib.models.registry import build_model

    if setting == "keep":
        keep_freed_memory()
    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    model = build_model("sasrec", num_items=ML1M_ITEMS, max_len=200)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    windows = torch.randint(1, ML1M_ITEMS + 1, (128, 201), generator=torch.Generator().manual_seed(seed))  # [B, L+1]

    def train() -> float:
        for _ in range(batches):
            loss = model.training_loss(windows)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        return float(loss.detach())

    print_cost(setting, batches, train)


def child(setting: str, epochs: int, threads: int, seed: int) -> None:
    """Train one surrogate; print a JSON line of its cost."""
    import numpy as np
    import torch

    from recsec_lib.attack.queries import AttackData
    from recsec_lib.attack.surrogate import SurrogateSettings, fit_surrogate
    from recsec_lib.common.allocator import keep_freed_memory
    from recsec_lib.models.registry import build_model

    if setting == "keep":
        keep_freed_memory()
    torch.set_num_threads(threads)
    rng = np.random.default_rng(seed)
    sequences = rng.integers(1, ML1M_ITEMS + 1, (WALKS, WALK_LENGTH))  # [S, L]
    # [S, L, k] distinct ids per list: one random set of k ids, shifted by a random offset per list
    answers = (rng.permutation(ML1M_ITEMS)[:TOP_K] + rng.integers(0, ML1M_ITEMS, (WALKS, WALK_LENGTH, 1))) \
        % ML1M_ITEMS + 1
    data = AttackData(sequences, answers, "autoregressive", ML1M_ITEMS)
    torch.manual_seed(seed)
    model = build_model("sasrec", num_items=ML1M_ITEMS, max_len=200)
    settings = SurrogateSettings(epochs=epochs, patience=0, seed=seed)
    print_cost(setting, epochs, lambda: fit_surrogate(data, model, settings, progress=False).history[-1]["loss"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", action="store_true",
                        help="time the train stage's SASRec target (full batches) instead of a surrogate")
    parser.add_argument("--repeats", type=int, default=3, help="pairs of runs, alternating which goes first")
    parser.add_argument("--epochs", type=int, default=3, help="surrogate epochs per run (--target: batches)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (workers use 1, train 2)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--child", choices=("default", "keep"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        (target_child if args.target else child)(args.child, args.epochs, args.threads, args.seed)
        return
    unit = "batch" if args.target else "epoch"
    runs: dict[str, list[dict]] = {"default": [], "keep": []}
    for repeat in range(args.repeats):
        order = ("default", "keep") if repeat % 2 == 0 else ("keep", "default")
        for setting in order:
            env = {name: value for name, value in os.environ.items()  # the default: glibc's own values
                   if name not in ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_")}
            out = subprocess.run([sys.executable, __file__, "--child", setting, "--epochs", str(args.epochs),
                                  "--threads", str(args.threads), "--seed", str(args.seed),
                                  *(["--target"] if args.target else [])],
                                 env=env, capture_output=True, text=True, check=True).stdout
            runs[setting].append(json.loads(out.strip().splitlines()[-1]))
            print(f"repeat {repeat + 1} {setting:>7}: {runs[setting][-1]['seconds_per_epoch']:.2f} s per {unit}, "
                  f"{runs[setting][-1]['minor_faults']:,} minor page faults, loss {runs[setting][-1]['loss']:.6f}")
    median = {setting: statistics.median(run["seconds_per_epoch"] for run in rows) for setting, rows in runs.items()}
    same = len({run["loss"] for rows in runs.values() for run in rows}) == 1
    print(f"median seconds per {unit}: default {median['default']:.2f}, kept {median['keep']:.2f}; "
          f"ratio {median['keep'] / median['default']:.2f}; losses identical: {same}")


if __name__ == "__main__":
    main()
