"""``recsec compare``: side-by-side top-k lists of several models on example histories."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from recsec_lib.cli import folder_option
from recsec_lib.cli.interactive import add_dataset_options
from recsec_lib.recommend.compare import (bias_on_test_users, bias_summary, checkpoint_recommender, compare_recommendations,
                                popularity_recommender, resolve_device, save_comparison, themed_examples,
                                user_examples)
from recsec_lib.data.prepare import prepare_dataset
from recsec_lib.common.files import atomic_path


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "compare", help="compare the top-k lists of several models side by side",
        description="For themed histories (the most watched action/sci-fi, children's, drama, comedy and horror "
                    "movies) and a few real test users, show each model's top-k next movies side by side. "
                    "Writes recommendations.csv, examples.csv and recommendations.md to --output-dir; with "
                    "--bias also each model's genre/popularity/recency figures on the test users.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--checkpoints", type=Path, nargs="*", default=[], metavar="PT",
                        help="model checkpoints to compare")
    parser.add_argument("--labels", nargs="*", default=None, metavar="LABEL",
                        help="one column label per checkpoint (default: the model name, or the file name "
                             "when two checkpoints share a model name)")
    parser.add_argument("--popular", action="store_true", help="add the most-popular-unseen baseline as a column")
    parser.add_argument("--top-k", type=int, default=10, help="length of each list")
    parser.add_argument("--users", type=int, default=3, help="how many random test users to add to the examples")
    parser.add_argument("--length", type=int, default=5, help="movies in each themed history")
    parser.add_argument("--seed", type=int, default=42, help="picks the test users")
    parser.add_argument("--output-dir", type=Path, default=Path("comparison"), help="folder for the tables")
    parser.add_argument("--bias", action="store_true",
                        help="also measure each model's genre, popularity and recency bias on the test users")
    parser.add_argument("--bias-users", type=int, default=0, help="test users for --bias (0 = all)")
    add_dataset_options(parser)
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    if not args.checkpoints and not args.popular:
        raise ValueError("nothing to compare: give --checkpoints and/or --popular")
    if args.labels is not None and len(args.labels) != len(args.checkpoints):
        raise ValueError(f"--labels has {len(args.labels)} labels for {len(args.checkpoints)} checkpoints")
    for path in args.checkpoints:
        if not path.is_file():
            raise FileNotFoundError(f"--checkpoints: {path} does not exist")
    if args.top_k < 1:
        raise ValueError(f"--top-k must be >= 1, got {args.top_k}")
    if args.bias_users < 0:
        raise ValueError(f"--bias-users must be >= 0, got {args.bias_users}")
    folder_option(args.output_dir, "--output-dir")
    folder_option(args.data_dir, "--data-dir")

    dataset = prepare_dataset(args.dataset, data_dir=args.data_dir, mirror=args.mirror or None)
    device = resolve_device(args.device)
    loaded = [checkpoint_recommender(path, dataset, device) for path in args.checkpoints]
    names = [name for name, _ in loaded]
    labels = list(args.labels) if args.labels is not None else [
        name if names.count(name) == 1 else path.stem for name, path in zip(names, args.checkpoints)]
    models = dict(zip(labels, (fn for _, fn in loaded)))
    if args.popular:
        models["popular"] = popularity_recommender(dataset)
    if len(models) != len(labels) + args.popular:
        raise ValueError(f"column labels must be distinct, got {labels + ['popular'] * args.popular}")

    examples = themed_examples(dataset, length=args.length) + user_examples(dataset, args.users, seed=args.seed)
    frame = compare_recommendations(dataset, models, examples, k=args.top_k)
    paths = save_comparison(dataset, frame, examples, list(models), args.output_dir)
    print((args.output_dir / "recommendations.md").read_text(encoding="utf-8"))
    if args.bias:
        reports = {label: bias_on_test_users(dataset, fn, k=args.top_k, max_users=args.bias_users or None,
                                             seed=args.seed) for label, fn in models.items()}
        for label, report in reports.items():
            paths += report.save(args.output_dir, prefix="bias_" + re.sub(r"[^A-Za-z0-9_.-]+", "_", label))
        summary = bias_summary(reports)
        summary_path = args.output_dir / "bias_summary.csv"
        with atomic_path(summary_path) as tmp:
            summary.to_csv(tmp, index_label="figure")
        paths.append(summary_path)
        print(summary.to_string(float_format=lambda v: f"{v:.4f}"))
    for path in paths:
        print(f"wrote {path}")
    return 0
