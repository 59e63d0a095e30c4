"""GRO's utility/protection trade-off as a pretrained target is fine-tuned for longer.

    RECSEC_DATA_MIRROR=/work/shared/data .venv/bin/python benchmarks/gro_finetune_tradeoff.py \
        --target outputs/<run>/train/sasrec.pt --lam 0.3 --epochs 3

The cpu profile fine-tunes the pretrained target with GRO for 12 batches only.
This script asks what happens with whole epochs: after each GRO epoch at one
λ (the cpu profile's other GRO settings) it prints the defended target's
validation/test NDCG@10 (full ranking, seen items filtered), its validation
retention against the undefended target, and the test NDCG@10 of the
surrogate that the cpu profile's attack (1,000 autoregressive sequences of
200 queries, top-100 lists) extracts from it. ``--with-undefended`` also
attacks the undefended target with the same seeds, for the reference row.
Each epoch resumes the previous one's GRO state (in ``--work-dir``).
It is an exploration, not part of the study: the study's GRO table comes from
the GRO stage of ``run_all.sh``.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from dataclasses import replace
from pathlib import Path

import torch

from recsec_lib.attack.extraction import SurrogateSettings, run_attack
from recsec_lib.attack.blackbox import BlackBoxRecommender
from recsec_lib.recommend.checkpoints import load_checkpoint
from recsec_lib.data.prepare import prepare_dataset
from recsec_lib.recommend.evaluation import evaluate_model
from recsec_lib.gro.defenses import train_defended_targets
from recsec_lib.study.stages.gro import Settings


def ndcg10(model, dataset, split: str) -> float:
    return evaluate_model(model, dataset, split, 512, "cpu", ks=(10,), sampled=False, unfiltered=False)["ndcg@10"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--target", type=Path, required=True, help="the undefended target checkpoint")
    parser.add_argument("--lam", type=float, default=0.3, help="λ of the swap loss (default: 0.3)")
    parser.add_argument("--epochs", type=int, default=3, help="whole GRO epochs, one attack after each (default: 3)")
    parser.add_argument("--dataset", default="ml-1m")
    parser.add_argument("--data-dir", type=Path, default=Path("data"))
    parser.add_argument("--mirror", type=Path, default=None, help="default: $RECSEC_DATA_MIRROR")
    parser.add_argument("--work-dir", type=Path, default=Path("outputs/gro-finetune-tradeoff"),
                        help="GRO states and checkpoints of this exploration")
    parser.add_argument("--with-undefended", action="store_true", help="also attack the undefended target")
    parser.add_argument("--surrogate-seconds", type=float, default=None,
                        help="cap on each surrogate's training (default: the cpu profile's GRO value)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()
    if args.epochs <= 0:
        parser.error(f"--epochs must be positive, got {args.epochs}")
    torch.set_num_threads(args.threads)

    mirror = args.mirror or os.environ.get("RECSEC_DATA_MIRROR") or None
    dataset = prepare_dataset(args.dataset, data_dir=args.data_dir, mirror=mirror)
    undefended = load_checkpoint(args.target, dataset=dataset).model
    settings = Settings.for_profile("cpu").with_overrides(max_batches_per_epoch=0)  # whole epochs
    seconds = settings.surrogate_max_seconds if args.surrogate_seconds is None else args.surrogate_seconds
    surrogate_settings = SurrogateSettings(epochs=settings.surrogate_epochs, max_train_seconds=seconds, seed=args.seed)

    def attack(model, box_seed: int) -> float:
        box = BlackBoxRecommender(model, k=settings.k, filter_seen=True, device="cpu")
        surrogate = run_attack(box, dataset.num_items, settings.attack_generator, settings.attack_sequences,
                               settings.attack_seq_len, arch=settings.target_model, settings=surrogate_settings,
                               device="cpu", seed=args.seed).surrogate.model
        return ndcg10(surrogate, dataset, "test")

    base_valid = ndcg10(undefended, dataset, "valid")
    reference = {"defense": "None", "valid_ndcg10": base_valid, "test_ndcg10": ndcg10(undefended, dataset, "test")}
    if args.with_undefended:
        reference["surrogate_test_ndcg10"] = attack(undefended, args.seed)  # the stage's None row: seed + 0
    print(json.dumps(reference), flush=True)

    work = args.work_dir / f"lam{args.lam:g}"
    for epoch in range(1, args.epochs + 1):
        tick = time.perf_counter()
        config = replace(settings.gro_config(args.lam, args.seed), epochs=epoch)
        result = train_defended_targets(undefended, dataset, (args.lam,), config, work, progress=False)[args.lam]
        defended = result.target.eval()
        valid = ndcg10(defended, dataset, "valid")
        row = {"defense": f"GRO λ={args.lam:g}", "gro_epochs": epoch, "valid_ndcg10": valid,
               "test_ndcg10": ndcg10(defended, dataset, "test"), "retention_valid": valid / base_valid,
               "surrogate_test_ndcg10": attack(defended, args.seed + 3),  # the stage's first λ row: seed + 3
               "losses": result.history[-1],
               "seconds": round(time.perf_counter() - tick, 1)}
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
