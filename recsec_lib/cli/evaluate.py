"""``recsec evaluate``: full-ranking metrics of a saved checkpoint on the valid or test split."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from recsec_lib.cli import folder_option
from recsec_lib.study.stages.context import DATASETS, DEVICES


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "evaluate", help="metrics of a saved checkpoint",
        description="Rank every user's held-out item against all items with a saved model and print HR@k, "
                    "NDCG@k and MRR (seen items filtered, unfiltered, and the secondary sampled figures).")
    parser.add_argument("--checkpoint", required=True, help="checkpoint written by `recsec train` or the train stage")
    parser.add_argument("--split", choices=("valid", "test"), default="test", help="which split (default: test)")
    parser.add_argument("--dataset", choices=DATASETS, default=None,
                        help="dataset (default: the one the checkpoint was trained on)")
    parser.add_argument("--data-dir", default="data", help="processed cache (default: data)")
    parser.add_argument("--mirror", default=os.environ.get("RECSEC_DATA_MIRROR", ""),
                        help="local MovieLens copy (default: $RECSEC_DATA_MIRROR)")
    parser.add_argument("--device", choices=DEVICES, default="auto", help="auto | cpu | cuda (default: auto)")
    parser.add_argument("--batch-size", type=int, default=512, help="users per batch (default: 512)")
    parser.add_argument("--seed", type=int, default=42, help="seed of the sampled negatives (default: 42)")
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    from recsec_lib.recommend.checkpoints import load_checkpoint, read_checkpoint_payload
    from recsec_lib.cli.train import format_metrics
    from recsec_lib.recommend.evaluation import evaluate_model
    from recsec_lib.study.stages.context import StudyContext

    if args.batch_size <= 0:
        raise ValueError(f"--batch-size must be positive, got {args.batch_size}")
    folder_option(args.data_dir, "--data-dir")
    dataset_name = args.dataset or read_checkpoint_payload(args.checkpoint)["dataset_name"]
    ctx = StudyContext(run_dir=Path(args.checkpoint).parent, dataset=dataset_name, data_dir=Path(args.data_dir),
                       mirror=Path(args.mirror) if args.mirror else None, device=args.device)
    device = ctx.torch_device()
    dataset = ctx.load_dataset()
    loaded = load_checkpoint(args.checkpoint, dataset=dataset, device=device)
    metrics = evaluate_model(loaded.model, dataset, args.split, batch_size=args.batch_size, device=device,
                             seed=args.seed)
    print(f"{loaded.model_name} ({args.checkpoint}) on {dataset.name}, {args.split} split:")
    print(format_metrics(metrics))
    return 0
