"""Speed of the recommenders: SASRec seconds per training epoch, full evaluation time, peak memory.

Not a test: run it by hand when the models or the training loop change.

    RECSEC_DATA_MIRROR=/work/shared/data .venv/bin/python benchmarks/bench_models.py --threads 2

Uses ML-1M from the mirror when RECSEC_DATA_MIRROR is set (the target: at most
40 s per SASRec epoch on 2 CPU cores), the synthetic data otherwise. Peak
memory is the process's maximum resident size (resource.getrusage).

An epoch is timed for each ``--windows`` choice: "newest" (one row of the
newest 201 items per user, the SASRec+ recipe: 6,040 rows on ML-1M) and "all"
(whole histories cut into such rows: 8,617 rows, about 1.5 times the work).
The seconds per 1,000 rows compare the two at equal work.
"""

from __future__ import annotations

import argparse
import os
import resource
import time
from pathlib import Path

import torch

from recsec_lib.recommend.evaluation import evaluate_model
from recsec_lib.models.registry import MODEL_NAMES, build_model
from recsec_lib.recommend.training import time_training_epoch, training_matrix


def load_data(data_dir: Path):
    mirror = os.environ.get("RECSEC_DATA_MIRROR")
    if mirror:
        from recsec_lib.data.prepare import prepare_dataset

        return prepare_dataset("ml-1m", data_dir=data_dir, mirror=Path(mirror))
    from recsec_lib.data.synthetic import make_synthetic_dataset

    print("RECSEC_DATA_MIRROR not set: timing on synthetic data (not the ML-1M target)")
    return make_synthetic_dataset(num_users=2000, num_items=500, max_len=200)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["sasrec"], choices=MODEL_NAMES)
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--max-batches", type=int, default=None,
                        help="time only this many batches and extrapolate to a full epoch")
    parser.add_argument("--data-dir", type=Path, default=Path("data"))
    parser.add_argument("--windows", nargs="+", default=["newest", "all"], choices=["newest", "all"],
                        help="training rows to time an epoch of (default: both)")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    dataset = load_data(args.data_dir)
    print(f"data: {dataset.name}, {dataset.num_users} users, {dataset.num_items} items, "
          f"max_len {dataset.max_len}; torch {torch.__version__}, {args.threads} threads")
    timed = f"{args.max_batches} batches timed" if args.max_batches else "whole epoch timed"
    for name in args.models:
        model = build_model(name, dataset.num_items, dataset.max_len)
        for windows in args.windows:
            rows = len(training_matrix(dataset, model.max_len, windows))
            epoch_seconds = time_training_epoch(model, dataset, args.batch_size, max_batches=args.max_batches,
                                                windows=windows)
            print(f"{name}, windows {windows}: {epoch_seconds:.1f} s per training epoch of {rows} rows "
                  f"({1000 * epoch_seconds / rows:.2f} s per 1,000 rows; {timed})")
        metrics = evaluate_model(model, dataset, "test", sampled=False)
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
        print(f"{name}: evaluation of all {metrics['users']} test users {metrics['eval_seconds']:.2f} s "
              f"(filtered + unfiltered full ranking), peak memory {peak:.0f} MiB")


if __name__ == "__main__":
    main()
