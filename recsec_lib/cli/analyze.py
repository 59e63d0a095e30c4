"""``recsec analyze``: the dataset analysis stage (figures, statistics table) without Jupyter."""

from __future__ import annotations

import argparse
from pathlib import Path

from recsec_lib.cli import folder_option
from recsec_lib.study.stages import analyze as stage
from recsec_lib.study.stages.context import DATASETS, PROFILES, StudyContext


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "analyze", help="describe the dataset: figures and statistics",
        description="Write the dataset analysis (sequence lengths, popularity long tail, genres, release years, "
                    "ratings and activity over time where the source has them) into <run-dir>/analyze/.")
    parser.add_argument("--dataset", choices=DATASETS, default="ml-1m", help="dataset (default: ml-1m)")
    parser.add_argument("--run-dir", default="outputs/analyze", help="run folder to write into (default: outputs/analyze)")
    parser.add_argument("--data-dir", default="data", help="downloads and processed cache (default: data)")
    parser.add_argument("--mirror", default="", help="local MovieLens copy (default: $RECSEC_DATA_MIRROR when set)")
    parser.add_argument("--profile", choices=PROFILES, default="cpu", help="settings profile (default: cpu)")
    parser.add_argument("--top-genres", type=int, default=None, help="genres shown in the genre figure")
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    folder_option(args.run_dir, "--run-dir")
    folder_option(args.data_dir, "--data-dir")
    ctx = StudyContext(run_dir=Path(args.run_dir), dataset=args.dataset, data_dir=Path(args.data_dir),
                       mirror=args.mirror or None, profile=args.profile)
    settings = stage.Settings.for_profile(args.profile).with_overrides(top_genres=args.top_genres)
    metrics = stage.run(ctx, settings)
    print(f"recsec analyze: {metrics['dataset']}: top 1% of items hold {metrics['top1pct_item_share']:.1%} and "
          f"top 10% hold {metrics['top10pct_item_share']:.1%} of interactions; "
          f"figures in {ctx.run_dir / 'analyze'}")
    for what, why in metrics["missing"].items():
        print(f"  no {what.replace('_', ' ')}: {why}")
    return 0
