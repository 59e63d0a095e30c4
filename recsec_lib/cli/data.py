"""``recsec download``: fetch MovieLens (or read a local mirror) and build the processed cache."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from recsec_lib.cli import folder_option
from recsec_lib.data.download import DEFAULT_BASE_URL
from recsec_lib.data.prepare import DATASET_NAMES, MIRROR_ENV, dataset_manifest, prepare_dataset


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "download", help="download MovieLens and build the processed cache",
        description="For each dataset: use <output-dir>/<name>/ if present, else the mirror, else download "
                    "<base-url>/<name>.zip (size and checksum verified before extraction); then build the "
                    "5-core processed cache in <output-dir>/processed/<name>/.")
    parser.add_argument("--datasets", nargs="+", choices=DATASET_NAMES, default=["ml-1m"], metavar="NAME",
                        help=f"datasets to fetch: {', '.join(DATASET_NAMES)} (default: ml-1m)")
    parser.add_argument("--output-dir", default="data", help="where downloads and the cache go (default: data)")
    parser.add_argument("--mirror", default="",
                        help=f"local folder with MovieLens copies (default: ${MIRROR_ENV} when set)")
    parser.add_argument("--base-url", default=DEFAULT_BASE_URL, help=f"download location (default: {DEFAULT_BASE_URL})")
    parser.add_argument("--no-download", action="store_true", help="fail instead of downloading when no local copy exists")
    parser.add_argument("--force", action="store_true",
                        help="ignore the copies and the cache in <output-dir>: read the mirror or download again, "
                             "then rebuild the processed cache")
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    output_dir = folder_option(args.output_dir, "--output-dir")
    for name in args.datasets:
        dataset = prepare_dataset(name, data_dir=output_dir, mirror=args.mirror or None, base_url=args.base_url,
                                  download=not args.no_download, force=args.force)
        manifest = dataset_manifest(name, output_dir) or {}
        print(f"{name}: {dataset.num_users:,} users, {dataset.num_items:,} items, "
              f"{dataset.num_interactions:,} interactions after the 5-core filter "
              f"(raw: {manifest.get('counts', {}).get('raw_interactions', '?'):,}); source {dataset.source}; "
              f"fingerprint {dataset.fingerprint}")
    return 0
