"""``recsec train``: train one recommender, save its checkpoint, print its test metrics.

Beside the checkpoint ``<name>.pt`` it writes ``<name>.metrics.json`` (training
history, best validation and test metrics), the file ``recsec visualize
--metrics-file`` draws. The default checkpoint path is the one the study's train
stage looks in for a finished model to reuse (``checkpoints/<model>_<dataset>.pt``,
``stages.train.pretrained_path``), so that a model trained here is found by
``./run_all.sh`` (when it was trained with the stage's settings). Defaults follow the study's train stage (weight decay 0,
the SASRec+ recipe), not the seed's 1e-5.
"""

from __future__ import annotations

import argparse
import math
import os
from pathlib import Path

from recsec_lib.cli import UserError, folder_option
from recsec_lib.study.stages.context import DATASETS, DEVICES


def register(subparsers: argparse._SubParsersAction) -> None:
    from recsec_lib.models.registry import MODEL_NAMES

    parser = subparsers.add_parser(
        "train", help="train a recommender and save its checkpoint",
        description="Train one recommender on a dataset's leave-one-out training split with early stopping on "
                    "validation NDCG@10, save the best checkpoint and print its full-ranking test metrics. "
                    "A partial checkpoint at --output is resumed.")
    parser.add_argument("--model", choices=MODEL_NAMES, default="meanemb",
                        help="architecture (default: meanemb, the seed's baseline)")
    parser.add_argument("--epochs", type=int, default=30, help="maximum epochs (default: 30)")
    parser.add_argument("--batch-size", type=int, default=128, help="users per batch (default: 128)")
    parser.add_argument("--lr", type=float, default=0.001, help="Adam learning rate (default: 0.001)")
    parser.add_argument("--weight-decay", type=float, default=0.0,
                        help="Adam weight decay (default: 0 as the study's train stage, the SASRec+ recipe; "
                             "the seed used 1e-5)")
    parser.add_argument("--embedding-dim", type=int, default=None,
                        help="embedding size (default: 256 for meanemb, the model's own default otherwise)")
    parser.add_argument("--patience", type=int, default=10,
                        help="validations without improvement before stopping; 0 = never (default: 10)")
    parser.add_argument("--windows", choices=("newest", "all"), default=None,
                        help="training rows: each user's newest max_len + 1 items (the SASRec+ recipe), or all of "
                             "its history cut into such windows (default: as the study trains: newest for meanemb, "
                             "all for the others)")
    parser.add_argument("--max-train-seconds", type=float, default=None,
                        help="stop (resumably) after this much training time (default: no cap)")
    parser.add_argument("--device", choices=DEVICES, default="auto", help="auto | cpu | cuda (default: auto)")
    parser.add_argument("--dataset", choices=DATASETS, default="ml-1m", help="dataset (default: ml-1m)")
    parser.add_argument("--data-dir", default="data", help="downloads and processed cache (default: data)")
    parser.add_argument("--mirror", default=os.environ.get("RECSEC_DATA_MIRROR", ""),
                        help="local MovieLens copy (default: $RECSEC_DATA_MIRROR, else download)")
    parser.add_argument("--output", default=None,
                        help="checkpoint path (default: checkpoints/<model>_<dataset>.pt, e.g. "
                             "checkpoints/sasrec_ml1m.pt: where the study's train stage looks for one to reuse)")
    parser.add_argument("--seed", type=int, default=42, help="random seed (default: 42)")
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    import torch

    from recsec_lib.recommend.checkpoints import save_checkpoint
    from recsec_lib.recommend.evaluation import evaluate_model
    from recsec_lib.models.registry import EMBEDDING_FIELDS, build_model
    from recsec_lib.common.files import write_json_atomic
    from recsec_lib.study.stages.context import StudyContext, seed_everything
    from recsec_lib.recommend.training import TrainConfig, train_model
    from recsec_lib.study.stages.train import pretrained_path

    if args.embedding_dim is not None and args.embedding_dim <= 0:
        raise ValueError(f"--embedding-dim must be positive, got {args.embedding_dim}")
    output = Path(args.output) if args.output else pretrained_path(Path("checkpoints"), args.model, args.dataset)
    if output.is_dir():
        raise UserError(f"--output {output} is a folder; give the checkpoint's file name, e.g. {output / args.model}.pt")
    folder_option(output.parent, "--output's folder")
    folder_option(args.data_dir, "--data-dir")
    ctx = StudyContext(run_dir=output.parent, dataset=args.dataset, data_dir=Path(args.data_dir),
                       mirror=Path(args.mirror) if args.mirror else None, seed=args.seed, device=args.device)
    config = TrainConfig(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, weight_decay=args.weight_decay,
                         patience=args.patience, seed=args.seed, max_train_seconds=args.max_train_seconds,
                         windows=args.windows or ("newest" if args.model == "meanemb" else "all"))
    device = ctx.torch_device()
    if device.type == "cpu":
        torch.set_num_threads(min(2, torch.get_num_threads()))
    dataset = ctx.load_dataset()
    seed_everything(args.seed)
    overrides = {EMBEDDING_FIELDS[args.model]: args.embedding_dim} if args.embedding_dim else {}
    model = build_model(args.model, dataset.num_items, dataset.max_len, **overrides)
    result = train_model(model, dataset, config, device, checkpoint_path=output, progress=True)
    if not result.complete:
        print(f"stopped by the time cap after epoch {result.epochs_run}; rerun the same command to resume")
    test = evaluate_model(result.model, dataset, "test", device=device, seed=args.seed)
    if result.complete:
        from recsec_lib.recommend.checkpoints import read_checkpoint_payload

        state = read_checkpoint_payload(output)["training_state"]
        save_checkpoint(output, result.model, args.model, dataset,
                        metrics={"test": test, "valid": result.best_valid, "best_epoch": result.best_epoch,
                                 "epoch_seconds": result.epoch_seconds()}, training_state=state)
    metrics_path = metrics_path_of(output)
    write_json_atomic(metrics_path, {
        "model": args.model, "checkpoint": str(output), "dataset": dataset.name, "complete": result.complete,
        "best_epoch": result.best_epoch, "epochs_run": result.epochs_run, "stop_reason": result.stop_reason,
        "epoch_seconds": _finite_or_none(result.epoch_seconds()), "history": result.history, "valid": result.best_valid, "test": test,
    })
    print(f"{args.model} on {dataset.name}: best epoch {result.best_epoch} of {result.epochs_run}, "
          f"{result.epoch_seconds():.1f} s per epoch; checkpoint {output}")
    print(format_metrics(test))
    print(f"metrics {metrics_path} (figures: recsec visualize --metrics-file {metrics_path})")
    return 0


def _finite_or_none(value: float) -> float | None:
    """JSON has no NaN: a figure that could not be measured (no epoch timed) is written as null."""
    return value if math.isfinite(value) else None


def metrics_path_of(checkpoint: Path) -> Path:
    """Where ``recsec train`` puts the metrics of ``checkpoint``: ``sasrec.pt`` -> ``sasrec.metrics.json``."""
    return checkpoint.with_name(checkpoint.stem + ".metrics.json")


def format_metrics(metrics: dict) -> str:
    """A small text table: rows filtered / unfiltered / sampled, columns HR@k, NDCG@k, MRR."""
    rows = [("full ranking, seen filtered", ""), ("full ranking, unfiltered", "unfiltered_"),
            ("sampled (100 negatives)", "sampled_")]
    ks = sorted({int(key.split("@")[1]) for key in metrics if key.startswith("hr@")})
    header = ["metric set".ljust(28)] + [f"HR@{k}".rjust(7) for k in ks] + [f"NDCG@{k}".rjust(8) for k in ks] \
        + ["MRR".rjust(7)]
    lines = [" ".join(header)]
    for label, prefix in rows:
        if f"{prefix}mrr" not in metrics:
            continue
        cells = [label.ljust(28)] + [f"{metrics[f'{prefix}hr@{k}']:.4f}".rjust(7) for k in ks] \
            + [f"{metrics[f'{prefix}ndcg@{k}']:.4f}".rjust(8) for k in ks] + [f"{metrics[f'{prefix}mrr']:.4f}".rjust(7)]
        lines.append(" ".join(cells))
    lines.append(f"({metrics.get('users', '?')} users)")
    return "\n".join(lines)
