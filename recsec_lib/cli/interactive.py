"""``recsec interactive``: build a viewing history in the terminal and ask a model for the next movies."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from recsec_lib.cli import folder_option
from recsec_lib.recommend.compare import checkpoint_recommender, resolve_device
from recsec_lib.data.prepare import DATASET_NAMES, prepare_dataset
from recsec_lib.recommend.interactive import Session, run_session, tolerant_text_stream


def add_dataset_options(parser: argparse.ArgumentParser) -> None:
    """--dataset, --data-dir, --mirror, --device: shared by the commands that load a dataset and models."""
    parser.add_argument("--dataset", choices=DATASET_NAMES, default="ml-1m", help="dataset the models were trained on")
    parser.add_argument("--data-dir", type=Path, default=Path("data"), help="downloads and the processed cache")
    parser.add_argument("--mirror", default="", help="local MovieLens copy ('' = $RECSEC_DATA_MIRROR, else download)")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto", help="where the models run")


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "interactive", help="type a viewing history, get recommendations",
        description="A terminal session: 'search' titles, 'add'/'remove' movies by their MovieLens id, "
                    "'recommend' shows the model's next movies (never one already in the history). "
                    "Reads commands from standard input, so it also works through a pipe. "
                    "Type 'help' in the session for all commands.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--model", type=Path, default=None,
                        help="checkpoint (.pt) to recommend with; without it only 'popular' can suggest movies")
    parser.add_argument("--top-k", type=int, default=10, help="how many movies 'recommend' and 'popular' show")
    add_dataset_options(parser)
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    if args.top_k < 1:
        raise ValueError(f"--top-k must be >= 1, got {args.top_k}")
    if args.model is not None and not args.model.is_file():
        raise FileNotFoundError(f"--model: checkpoint {args.model} does not exist")
    folder_option(args.data_dir, "--data-dir")
    dataset = prepare_dataset(args.dataset, data_dir=args.data_dir, mirror=args.mirror or None)
    label, recommend_fn = "", None
    if args.model is not None:
        label, recommend_fn = checkpoint_recommender(args.model, dataset, resolve_device(args.device))
        label = f"{label} ({args.model.name})"
    session = Session(dataset, recommend_fn, top_k=args.top_k, model_label=label or "model")
    return run_session(session, tolerant_text_stream(sys.stdin), tolerant_text_stream(sys.stdout))
