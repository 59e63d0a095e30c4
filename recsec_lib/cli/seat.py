"""``recsec seat``: run the SEAT detection stage (encoder, calibration, attacks, baselines).

    recsec seat --run-dir outputs/dev --dataset ml-1m --mirror ../shared/data --profile cpu
    recsec seat --model_path checkpoints/sasrec_ml1m.pt --attack_data outputs/dev/attack/log.npz --fpr 0.001

The seed's option names (``--model_path``, ``--encoder_path``, ``--attack_data``,
``--benign_data``) are kept; each also has a dash spelling.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from recsec_lib.study.stages.context import DATASETS, DEVICES, PROFILES


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "seat", help="detect extraction attacks per account (SEAT) and compare with baselines",
        description="Train the SEAT similarity encoder, calibrate SEAT, a query-volume cap and PRADA on benign "
                    "accounts for a false-positive rate, then measure false positives on held-out accounts and "
                    "detection of attacks split over many accounts. Writes <run-dir>/seat/.")
    parser.add_argument("--run-dir", "--run_dir", dest="run_dir", default="outputs/seat",
                        help="run folder (reads <run-dir>/train/sasrec.pt and <run-dir>/attack/ logs)")
    parser.add_argument("--dataset", choices=DATASETS, default="ml-1m")
    parser.add_argument("--data-dir", "--data_dir", dest="data_dir", default="data",
                        help="downloads and the processed cache")
    parser.add_argument("--mirror", default="", help="local MovieLens copy (default: $RECSEC_DATA_MIRROR)")
    parser.add_argument("--profile", choices=PROFILES, default="cpu", help="sizes of the settings below")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--device", choices=DEVICES, default="auto")
    parser.add_argument("--fpr", type=float, default=None,
                        help="target false-positive rate on benign accounts (default: the profile's, 0.001)")
    parser.add_argument("--model_path", "--model-path", dest="model_path", default="",
                        help="target checkpoint answering the attack (default: <run-dir>/train/sasrec.pt)")
    parser.add_argument("--encoder_path", "--encoder-path", dest="encoder_path", default="",
                        help="use this saved SEAT encoder instead of training one")
    parser.add_argument("--attack_data", "--attack-data", dest="attack_data", default="",
                        help="an attack query log (.npz QueryLog or .jsonl) to run through the detectors")
    parser.add_argument("--benign_data", "--benign-data", dest="benign_data", default="",
                        help="a query log of benign accounts whose false-positive rate is also reported")
    parser.add_argument("--attack-sequences", "--attack_sequences", dest="attack_sequences", type=int, default=None,
                        help="synthetic sequences per generator (default: the profile's)")
    parser.set_defaults(handler=handle)


def check_inputs(fpr: float | None, model_path: str, encoder_path: str, attack_data: str, benign_data: str,
                 attack_sequences: int | None) -> None:
    """Fail fast, naming the option, before any data is loaded."""
    if fpr is not None and not 0 < fpr < 1:
        raise ValueError(f"--fpr must be in (0, 1), got {fpr}")
    if attack_sequences is not None and attack_sequences < 1:
        raise ValueError(f"--attack-sequences must be >= 1, got {attack_sequences}")
    for option, value in (("--model_path", model_path), ("--encoder_path", encoder_path),
                          ("--attack_data", attack_data), ("--benign_data", benign_data)):
        if value and not Path(value).is_file():
            raise FileNotFoundError(f"{option}: file {value} does not exist")


def handle(args: argparse.Namespace) -> int:
    import logging

    from recsec_lib.study.stages import seat as stage
    from recsec_lib.study.stages.context import StudyContext

    check_inputs(args.fpr, args.model_path, args.encoder_path, args.attack_data, args.benign_data,
                 args.attack_sequences)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    ctx = StudyContext(run_dir=Path(args.run_dir), dataset=args.dataset, data_dir=Path(args.data_dir),
                       mirror=args.mirror or None, seed=args.seed, device=args.device, profile=args.profile)
    settings = stage.Settings.for_profile(args.profile).with_overrides(
        fpr=args.fpr, target_path=args.model_path or None, encoder_path=args.encoder_path or None,
        attack_log=args.attack_data or None, benign_log=args.benign_data or None,
        attack_sequences=args.attack_sequences)
    metrics = stage.run(ctx, settings)
    print(json.dumps({key: metrics.get(key) for key in stage.HEADLINE_KEYS}, indent=2))  # None: not measured
    if args.attack_data:
        print(account_verdicts(args.attack_data, metrics.get("attack_log_accounts", [])))
    return 0


def account_verdicts(log_name: str, rows: list[dict]) -> str:
    """The verdict on each account of the user's ``--attack_data`` log, one line per account.

    ``rows`` are the stage's ``attack_log_accounts``: one per account and
    detector, with the query (1-based, within the account) at which the
    detector flagged it, or None.
    """
    if not rows:
        return f"--attack_data {log_name}: no account was checked"
    detectors = list(dict.fromkeys(row["detector"] for row in rows))
    accounts = list(dict.fromkeys(row["account"] for row in rows))
    by_key = {(row["account"], row["detector"]): row for row in rows}
    queries = {row["account"]: row["queries"] for row in rows}

    def verdict(row: dict | None) -> str:
        if row is None:
            return "not run"
        return "not flagged" if row["flagged_at"] is None else f"flagged at {row['flagged_at']}"

    width = max(len("account"), *(len(str(a)) for a in accounts))
    columns = [max(len(d), len("flagged at 000000")) for d in detectors]
    lines = [f"--attack_data {log_name}: verdict per account ({len(accounts)} accounts; flagged at N = at the "
             f"account's N-th query)",
             "  ".join([f"{'account':<{width}}", f"{'queries':>8}", *(f"{d:<{c}}" for d, c in zip(detectors, columns))])]
    for account in accounts:
        cells = [verdict(by_key.get((account, d))) for d in detectors]
        lines.append("  ".join([f"{str(account):<{width}}", f"{queries[account]:>8}",
                                *(f"{cell:<{c}}" for cell, c in zip(cells, columns))]).rstrip())
    flagged = [sum(by_key.get((a, d), {}).get("flagged_at") is not None for a in accounts) for d in detectors]
    lines.append("flagged: " + ", ".join(f"{d} {n} of {len(accounts)}" for d, n in zip(detectors, flagged)))
    return "\n".join(lines)
