"""``recsec defend``: train GRO-defended copies of a target and, with --evaluate, put every defense in the arena.

    recsec defend --target-model checkpoints/sasrec_ml1m.pt --lambda 0.1 1 --epochs 3 --output outputs/gro
    recsec defend --target-model ... --profile cpu --evaluate --output-defenses random reverse top:10 tail-resample:10
    recsec defend --target-model ... --evaluate --set attack_sequences=1000 --set views=naive,top-10

It runs the GRO stage's own computation (``recsec_lib.study.stages.gro.defend``) with the stage's settings of
``--profile`` and the flags on top, so its tables are the study's rows for the same settings: the λ = 0
control, one GRO target per λ and zero-gradient rule (checkpoints in --output, resumable states in
--output/state/), and with --evaluate every arm (None, the output defenses, the control, the GRO arms) against
every attacker: ``matrix.csv``, ``frontier.csv|md``, ``gro_arms.csv|md``, ``frontier.png``, ``defend.json`` and
``headline.json`` (the stage's headline keys, stamped with profile, dataset, commit and date).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
from pathlib import Path

from recsec_lib.cli import UserError, folder_option
from recsec_lib.gro.training import METHODS
from recsec_lib.study.stages.context import check_device

DEFAULT_LAMBDA = {"gro": 1.0, "seed-variant": 5.0}  # the authors' ML-1M λ; the seed's λ for its variant


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "defend", help="train a target with the GRO defense (and put every defense against every attacker)",
        description="Train GRO-defended copies of a trained target (the λ = 0 control and one per λ and rule) and "
                    "save them. With --evaluate, every defense (None, the output defenses, the control, the GRO "
                    "arms) faces every attacker of the GRO stage's attack set, and the utility and protection "
                    "tables of the study are written. Settings are the GRO stage's (--profile), flags on top.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--target-model", type=Path, required=True,
                        help="checkpoint of the undefended target (the student and surrogates take its architecture)")
    parser.add_argument("--profile", choices=("smoke", "cpu", "full"), default="cpu",
                        help="the GRO stage's profile whose settings are the starting point")
    parser.add_argument("--method", choices=[m for m in METHODS if m != "none"], default=None,
                        help="gro = the paper's loss; seed-variant = the seed's simpler loss (an ablation)")
    parser.add_argument("--lambda", dest="lambdas", type=float, nargs="+", default=None, metavar="λ",
                        help="swap-loss weight(s) > 0; the λ = 0 control is always trained (default: the "
                             "profile's, 1.0 for gro, 5.0 for seed-variant)")
    parser.add_argument("--lambda-swap", type=float, default=None,
                        help="the seed's name for a single λ (same as --lambda with one value)")
    parser.add_argument("--rules", nargs="+", default=None, metavar="RULE",
                        help="zero-gradient rules: keep, lowest_index (the authors' code)")
    parser.add_argument("--epochs", type=int, default=None, help="GRO training epochs")
    parser.add_argument("--from-scratch", action="store_true", default=None,
                        help="train the defended target from scratch instead of fine-tuning the checkpoint")
    parser.add_argument("--evaluate", action="store_true", help="attack every defense and write the tables")
    parser.add_argument("--output-defenses", nargs="+", default=None, metavar="NAME",
                        help="output defenses by name: random, reverse, top:K, tail-shuffle:M, tail-reverse:M, "
                             "tail-resample:M (registered in recsec_lib.defenses.output)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="NAME=VALUE",
                        help="any other GRO stage setting, e.g. attack_sequences=1000 or views=naive,top-10 "
                             "(repeatable)")
    parser.add_argument("--output", type=Path, default=Path("outputs/defend"), help="folder for the results")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    parser.add_argument("--workers", type=int, default=1, help="cells of the matrix run at once (local processes)")
    parser.add_argument("--cluster", default=None, metavar="ADDRESS",
                        help="run the matrix's cells on Ray: auto, local, ray://HOST:PORT or HOST:PORT")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per cell")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--dataset", default="ml-1m", help="ml-1m | ml-100k | ml-20m | synthetic")
    parser.add_argument("--data-dir", type=Path, default=Path("data"), help="downloads and the processed cache")
    parser.add_argument("--mirror", type=Path, default=None,
                        help="local MovieLens copy (default: $RECSEC_DATA_MIRROR, else download)")
    parser.set_defaults(handler=handle)


def chosen_lambdas(method: str, lambdas: list[float] | None, lambda_swap: float | None) -> tuple[float, ...] | None:
    """The λ values to train: --lambda, or --lambda-swap, or None for the profile's (never both flags)."""
    if lambdas is not None and lambda_swap is not None:
        raise UserError("give --lambda or --lambda-swap, not both")
    values = lambdas if lambdas is not None else ([lambda_swap] if lambda_swap is not None else None)
    if values is None:
        return (DEFAULT_LAMBDA[method],) if method == "seed-variant" else None
    if any(value <= 0 for value in values):
        raise UserError(f"--lambda values must be > 0 (the λ = 0 control is always trained), got {values}")
    return tuple(values)


def set_values(items: list[str]) -> dict[str, str]:
    """{NAME: VALUE} of the --set NAME=VALUE items (the last of a repeated name wins)."""
    values = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise UserError(f"--set takes NAME=VALUE, got {item!r}")
        values[name.strip()] = value.strip()
    return values


def settings_from(args: argparse.Namespace):
    """The GRO stage's settings of --profile with the flags and every --set NAME=VALUE on top."""
    from recsec_lib.study.stages import gro

    overrides = set_values(args.overrides)
    method = args.method or overrides.get("method") or "gro"
    flags = {"method": args.method, "lambdas": chosen_lambdas(method, args.lambdas, args.lambda_swap),
             "zero_gradient_rules": tuple(args.rules) if args.rules else None, "epochs": args.epochs,
             "from_scratch": args.from_scratch,
             "output_defenses": tuple(args.output_defenses) if args.output_defenses else None}
    if args.epochs is not None and args.epochs < 1:
        raise UserError(f"--epochs must be at least 1, got {args.epochs}")
    return gro.Settings.for_profile(args.profile).with_overrides(**overrides).with_overrides(**flags)


def with_checkpoint_architecture(settings, target_model: Path, overrides: list[str]):
    """The settings with ``target_model`` set to the checkpoint's architecture.

    The GRO stage's student, surrogates and nulls share the target's architecture, which the study reads from
    ``train/<target_model>.pt``. Here the target is a file, so its architecture comes from the file: a BERT4Rec
    target (the authors' model) is then attacked by BERT4Rec surrogates, not by the profile's default SASRec.
    A ``--set target_model=...`` that disagrees with the file is an error, not a silent choice.
    """
    from recsec_lib.recommend.checkpoints import read_checkpoint_payload

    architecture = read_checkpoint_payload(target_model)["model_name"]
    asked = set_values(overrides).get("target_model")
    if asked is not None and asked != architecture:
        raise UserError(f"--set target_model={asked} disagrees with --target-model {target_model}, a "
                        f"{architecture} checkpoint (the student and the surrogates take the target's architecture)")
    return settings.with_overrides(target_model=architecture)


def handle(args: argparse.Namespace) -> int:
    from recsec_lib.arena.cells import DatasetRef
    from recsec_lib.data.prepare import prepare_dataset
    from recsec_lib.recommend.checkpoints import load_checkpoint
    from recsec_lib.recommend.sequences import training_windows
    from recsec_lib.study import runs
    from recsec_lib.study.stages import gro

    from recsec_lib.common.executor import executor_config

    settings = settings_from(args)
    executor = executor_config(args.workers or None, args.cluster, args.threads)
    if not args.target_model.is_file():
        raise FileNotFoundError(f"--target-model {args.target_model} does not exist")
    out = folder_option(args.output, "--output")
    folder_option(args.data_dir, "--data-dir")
    mirror = args.mirror or (Path(os.environ["RECSEC_DATA_MIRROR"]) if os.environ.get("RECSEC_DATA_MIRROR") else None)
    device = _device(args.device)
    dataset = prepare_dataset(args.dataset, data_dir=args.data_dir, mirror=mirror)
    settings = with_checkpoint_architecture(settings, args.target_model, args.overrides)
    out.mkdir(parents=True, exist_ok=True)
    if args.evaluate:
        ref = DatasetRef(args.dataset, str(args.data_dir), None if mirror is None else str(mirror))
        defended = gro.defend(out, settings, dataset, ref, args.target_model, args.seed, device, executor=executor)
        metrics = gro.stage_metrics(defended, settings, args.profile, dataset.name)
        runs.write_json_atomic(out / "defend.json", {"target_model": str(args.target_model), **metrics})
        # the stage's headline keys with what produced them (profile, dataset, commit, date): a folder that
        # can be published beside the main run (results/<name>/), as a run of run_all.sh can
        runs.write_json_atomic(out / "headline.json", {key: metrics[key] for key in metrics["headline_keys"]})
        runs.stamp_headline(out, args.profile, args.dataset)
        print((out / "frontier.md").read_text(encoding="utf-8"))
    else:
        undefended = load_checkpoint(args.target_model, dataset=dataset, device=device).model
        rows = training_windows(dataset.train_sequences(), undefended.max_len + 1,
                                gro.trained_windows(args.target_model))
        defenses = settings.model_defenses(args.seed)
        checkpoints, histories, trained = gro.train_models(settings, defenses, undefended, dataset, rows, out, device)
        for defense in defenses:
            last = histories[defense.key][-1] if histories[defense.key] else {}
            print(f"{defense.label}: {trained[defense.key]['epochs_run']} epochs, last losses target "
                  f"{last.get('loss_target', float('nan')):.4f} student {last.get('loss_student', float('nan')):.4f} "
                  f"swap {last.get('loss_swap', float('nan')):.4f} -> {checkpoints[defense.key]}")
        runs.write_json_atomic(out / "defend.json", {"target_model": str(args.target_model),
                                                     "settings": dataclasses.asdict(settings), "histories": histories,
                                                     "trained": trained})
    print(f"wrote {out}")
    return 0


def _device(name: str):
    """auto = CUDA when available; asking for cuda without one is an error naming the option."""
    import torch

    check_device(name)
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)
