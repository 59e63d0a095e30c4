"""Cost of a GRO epoch relative to an undefended epoch, on ML-1M-sized data.

    RECSEC_DATA_MIRROR=/work/shared/data .venv/bin/python benchmarks/bench_gro.py --batches 6
    .venv/bin/python benchmarks/bench_gro.py --checkpoint checkpoints/sasrec_ml1m.pt --positions 0 20
    RECSEC_DATA_MIRROR=/work/shared/data .venv/bin/python benchmarks/bench_gro.py --model bert4rec --positions 10 \
        --batches 4 --repeats 1
    RECSEC_DATA_MIRROR=/work/shared/data .venv/bin/python benchmarks/bench_gro.py --model bert4rec --positions 0 10 \
        --batch-size 16 --batches 3 --repeats 1   # every prefix: small batches, or the stacked prefixes fill memory

Both loops are the library's own (``gro_training.time_one_epoch``; method
"none" = L_target only, the same batches), timed on the first ``--batches``
batches of an epoch and repeated ``--repeats`` times in alternation; the
fastest repeat of each is kept (the machine is shared, the minimum is the least
disturbed measurement). Per-batch seconds are scaled to a full epoch for the
printout; the ratio does not depend on that scaling. Target: GRO <= 3x.

On ML-1M on 2 cores (2026-12-07, fresh models): SASRec, 10 prefixes per
sequence, batches of 128: undefended 30 s/epoch, GRO 49 s/epoch (1.62x).
BERT4Rec, the same: 51 s and 1,713 s (33.55x): a bidirectional model has no
one-pass prefix scores, so each prefix is a pass of target and student. With
batches of 16: 10 prefixes 747 s/epoch, every prefix 14,973 s/epoch (421x).
"""

from __future__ import annotations

import argparse
import math
import os
import time
from pathlib import Path

import torch

from recsec_lib.data.prepare import prepare_dataset
from recsec_lib.gro.training import GROConfig, fresh_like, time_one_epoch
from recsec_lib.models.registry import MODEL_NAMES


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="ml-1m")
    parser.add_argument("--data-dir", type=Path, default=Path("data"))
    parser.add_argument("--mirror", type=Path, default=None, help="default: $RECSEC_DATA_MIRROR")
    parser.add_argument("--checkpoint", type=Path, default=None,
                        help="a trained target (default: a freshly built model of --model)")
    parser.add_argument("--model", default="sasrec", choices=MODEL_NAMES,
                        help="architecture of the freshly built target when no --checkpoint is given: a GRO "
                             "target trained from scratch starts so (the authors train BERT4Rec)")
    parser.add_argument("--positions", type=int, nargs="+", default=[0, 20],
                        help="positions_per_sequence values to time (0 = every position, the paper)")
    parser.add_argument("--batches", type=int, default=6, help="batches timed per measurement")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--k", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=0, help="torch threads; 0 = torch's default")
    args = parser.parse_args()

    if args.threads:
        torch.set_num_threads(args.threads)
    mirror = args.mirror or (Path(os.environ["RECSEC_DATA_MIRROR"]) if os.environ.get("RECSEC_DATA_MIRROR") else None)
    dataset = prepare_dataset(args.dataset, data_dir=args.data_dir, mirror=mirror)
    if args.checkpoint:
        from recsec_lib.recommend.checkpoints import load_checkpoint

        target = load_checkpoint(args.checkpoint, dataset=dataset).model
    else:
        from recsec_lib.models.registry import build_model

        torch.manual_seed(0)
        target = build_model(args.model, dataset.num_items, dataset.max_len)
    sequences = dataset.train_sequences()
    batches_per_epoch = math.ceil(sum(len(s) >= 2 for s in sequences) / args.batch_size)
    print(f"{type(target).__name__} on {dataset.name}: {dataset.num_users} users, {dataset.num_items} items, "
          f"max_len {target.max_len}, "
          f"{batches_per_epoch} batches of {args.batch_size} per epoch; timing {args.batches} batches, "
          f"{torch.get_num_threads()} threads")

    def seconds(method: str, positions: int) -> float:
        config = GROConfig(method=method, lam=1.0, epochs=1, batch_size=args.batch_size, k=args.k,
                           positions_per_sequence=positions, max_batches_per_epoch=args.batches)
        return time_one_epoch(target, fresh_like(target), sequences, config) / args.batches

    for positions in args.positions:
        plain, gro = [], []
        for _ in range(args.repeats):
            plain.append(seconds("none", positions))
            gro.append(seconds("gro", positions))
        per_batch_plain, per_batch_gro = min(plain), min(gro)
        label = "all" if positions == 0 else f"last {positions}"
        print(f"positions {label:>8}: undefended {per_batch_plain:.3f} s/batch "
              f"({per_batch_plain * batches_per_epoch:.0f} s/epoch), GRO {per_batch_gro:.3f} s/batch "
              f"({per_batch_gro * batches_per_epoch:.0f} s/epoch), ratio {per_batch_gro / per_batch_plain:.2f}x")

if __name__ == "__main__":
    start = time.perf_counter()
    main()
    print(f"benchmark wall time {time.perf_counter() - start:.0f} s")
