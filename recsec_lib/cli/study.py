"""``recsec study``: the whole study through the library, without Jupyter."""

from __future__ import annotations

import argparse
import datetime as dt
import os
from pathlib import Path

from recsec_lib.cli import UserError
from recsec_lib.study.runs import RunInUseError
from recsec_lib.study.stages.context import DATASETS, DEVICES, PROFILES
from recsec_lib.study.headless import STAGE_ORDER, run_study


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "study", help="run every stage without Jupyter",
        description="Run the study's stages in order through the library (no notebooks, no HTML).")
    parser.add_argument("--profile", choices=PROFILES, default="cpu", help="smoke | cpu | full (default: cpu)")
    parser.add_argument("--dataset", choices=DATASETS, default=None,
                        help="default: ml-1m (synthetic with --profile smoke)")
    parser.add_argument("--device", choices=DEVICES, default="auto", help="auto | cpu | cuda")
    parser.add_argument("--seed", type=int, default=42, help="random seed (default: 42)")
    parser.add_argument("--data-dir", default="data", help="downloads and processed cache (default: data)")
    parser.add_argument("--mirror", default=os.environ.get("RECSEC_DATA_MIRROR", ""),
                        help="local MovieLens copy (default: $RECSEC_DATA_MIRROR)")
    parser.add_argument("--outputs", default="outputs", help="where run folders go (default: outputs)")
    parser.add_argument("--run-id", default=None, help="run folder name (default: <time>-<profile>-<dataset>-lib)")
    parser.add_argument("--stages", nargs="+", choices=STAGE_ORDER, default=list(STAGE_ORDER),
                        help="stages to run, in order (default: all)")
    parser.add_argument("--force", action="store_true", help="recompute instead of reusing cached results")
    parser.add_argument("--workers", type=int, default=1,
                        help="cells of a stage run at once (1 = one after another; N = N local processes; with "
                             "--cluster, 0 = as many as the cluster has CPUs)")
    parser.add_argument("--cluster", default="", metavar="ADDRESS",
                        help="run the cells on Ray: auto, local, ray://HOST:PORT or HOST:PORT (default: none)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per cell (default 1)")
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    from recsec_lib.common.executor import executor_config

    executor_config(args.workers or None, args.cluster or None, args.threads)  # before any work: errors name the option
    dataset = args.dataset or ("synthetic" if args.profile == "smoke" else "ml-1m")
    run_id = args.run_id or dt.datetime.now(dt.timezone.utc).strftime(f"%Y%m%d-%H%M%S-{args.profile}-{dataset}-lib")
    try:
        final = run_study(Path(args.outputs), run_id, dataset=dataset, profile=args.profile, seed=args.seed,
                          device=args.device, data_dir=Path(args.data_dir),
                          mirror=Path(args.mirror) if args.mirror else None, stages=tuple(args.stages),
                          force=args.force, workers=args.workers, cluster=args.cluster, threads=args.threads)
    except RunInUseError as exc:  # another process computes into this run: one line, no traceback
        raise UserError(str(exc)) from None
    except ConnectionError as exc:  # the download failed: most often offline
        raise UserError(f"{exc}; offline? give a MovieLens copy with --mirror DIR or $RECSEC_DATA_MIRROR, and "
                        f"start the run again") from None
    print(f"recsec study: finished; run folder {final}")
    return 0
