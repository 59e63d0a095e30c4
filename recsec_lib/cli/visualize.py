"""``recsec visualize``: training curves and a model comparison from a metrics file."""

from __future__ import annotations

import argparse
from pathlib import Path

from recsec_lib.cli import folder_option
from recsec_lib.recommend.visualize import visualize_metrics


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "visualize", help="plot training curves and test metrics of trained models",
        description="Draw training curves (loss, validation HR@10/NDCG@10 per epoch) and a bar chart of "
                    "test HR@10/NDCG@10 per model from a train-stage metrics.json, as PNG files.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--metrics-file", type=Path, required=True,
                        help="metrics.json of the train stage (or a JSON list of per-epoch dicts)")
    parser.add_argument("--output-dir", type=Path, default=Path("figures"), help="folder for the PNG files")
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    for path in visualize_metrics(args.metrics_file, folder_option(args.output_dir, "--output-dir")):
        print(f"wrote {path}")
    return 0
