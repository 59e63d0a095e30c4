"""``recsec defend``: train GRO-defended copies of a target, optionally attack and compare them.

    recsec defend --target-model checkpoints/sasrec_ml1m.pt --lambda 0.1 1 --epochs 3 --output outputs/gro
    recsec defend --target-model checkpoints/sasrec_ml1m.pt --lambda-swap 5.0 --method seed-variant
    recsec defend --target-model ... --lambda 1 --evaluate --attack-sequences 1000 --attack-seq-len 50

Writes one checkpoint per λ into --output (and resumable training states in
--output/state/); with --evaluate also the defense comparison table
(defenses.csv / .md), the utility-vs-protection plot and metrics.json.
"""

from __future__ import annotations

import argparse
import os
from dataclasses import asdict
from pathlib import Path

from recsec_lib.cli import folder_option
from recsec_lib.study.stages.context import check_device
from recsec_lib.gro.training import METHODS, GROConfig

DEFAULT_LAMBDA = {"gro": 1.0, "seed-variant": 5.0}  # the authors' ML-1M λ; the seed's λ for its variant


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "defend", help="train a target with the GRO defense (and compare defenses under attack)",
        description="Train GRO-defended copies of a trained target (one per λ) and save them as checkpoints. "
                    "With --evaluate, attack None, Random, Reverse and every GRO target with the same budget and "
                    "report utility (served NDCG@10, retention) against protection (surrogate NDCG@10, Agr@10).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--target-model", type=Path, required=True, help="checkpoint of the undefended target")
    parser.add_argument("--method", choices=[m for m in METHODS if m != "none"], default="gro",
                        help="gro = the paper's loss; seed-variant = the seed's simpler loss (an ablation)")
    parser.add_argument("--lambda", dest="lambdas", type=float, nargs="+", default=None, metavar="λ",
                        help="swap-loss weight(s); several values train one target each (default 1.0 for gro, "
                             "5.0 for seed-variant)")
    parser.add_argument("--lambda-swap", type=float, default=None,
                        help="the seed's name for a single λ (same as --lambda with one value)")
    parser.add_argument("--epochs", type=int, default=3, help="GRO training epochs")
    parser.add_argument("--from-scratch", action="store_true",
                        help="train the defended target from scratch instead of fine-tuning the checkpoint")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--k", type=int, default=100, help="length of the returned lists")
    parser.add_argument("--positions-per-sequence", type=int, default=0,
                        help="prefixes per sequence for the student and swap loss (last P); 0 = all")
    parser.add_argument("--output", type=Path, default=Path("outputs/defend"), help="folder for the results")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--dataset", default="ml-1m", help="ml-1m | ml-100k | ml-20m | synthetic")
    parser.add_argument("--data-dir", type=Path, default=Path("data"), help="downloads and the processed cache")
    parser.add_argument("--mirror", type=Path, default=None,
                        help="local MovieLens copy (default: $RECSEC_DATA_MIRROR, else download)")
    parser.add_argument("--evaluate", action="store_true", help="attack every defense and write the comparison")
    parser.add_argument("--attack-generator", choices=("random", "autoregressive"), default="autoregressive")
    parser.add_argument("--attack-sequences", type=int, default=1000, help="attack budget in synthetic sequences")
    parser.add_argument("--attack-seq-len", type=int, default=50, help="queries per synthetic sequence")
    parser.add_argument("--surrogate-epochs", type=int, default=20)
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.set_defaults(handler=handle)


def chosen_lambdas(method: str, lambdas: list[float] | None, lambda_swap: float | None) -> tuple[float, ...]:
    """The λ values to train: --lambda, or --lambda-swap, or the method's default (never both flags)."""
    if lambdas is not None and lambda_swap is not None:
        raise ValueError("give --lambda or --lambda-swap, not both")
    values = lambdas if lambdas is not None else [lambda_swap if lambda_swap is not None else DEFAULT_LAMBDA[method]]
    if any(value < 0 for value in values):
        raise ValueError(f"--lambda values must be >= 0, got {values}")
    return tuple(values)


def handle(args: argparse.Namespace) -> int:
    import torch

    from recsec_lib.study import runs
    from recsec_lib.recommend.checkpoints import load_checkpoint
    from recsec_lib.data.prepare import prepare_dataset
    from recsec_lib.gro.defenses import train_defended_targets

    lambdas = chosen_lambdas(args.method, args.lambdas, args.lambda_swap)
    if args.epochs < 1:
        raise ValueError(f"--epochs must be at least 1, got {args.epochs}")
    if not args.target_model.is_file():
        raise FileNotFoundError(f"--target-model {args.target_model} does not exist")
    folder_option(args.output, "--output")
    folder_option(args.data_dir, "--data-dir")
    mirror = args.mirror or (Path(os.environ["RECSEC_DATA_MIRROR"]) if os.environ.get("RECSEC_DATA_MIRROR") else None)
    device = _device(args.device)
    dataset = prepare_dataset(args.dataset, data_dir=args.data_dir, mirror=mirror)
    loaded = load_checkpoint(args.target_model, dataset=dataset, device=device)
    config = GROConfig(method=args.method, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, k=args.k,
                       positions_per_sequence=args.positions_per_sequence, seed=args.seed)
    torch.manual_seed(args.seed)
    results = train_defended_targets(loaded.model, dataset, lambdas, config, args.output, device=device,
                                     from_scratch=args.from_scratch, progress=not args.quiet)
    summary = {"target_model": str(args.target_model), "dataset": dataset.name, "lambdas": list(lambdas),
               "config": asdict(config), "histories": {f"{lam:g}": r.history for lam, r in results.items()}}
    for lam, result in results.items():
        last = result.history[-1] if result.history else {}
        print(f"λ={lam:g}: {len(result.history)} epochs, last losses target {last.get('loss_target', float('nan')):.4f}"
              f" student {last.get('loss_student', float('nan')):.4f} swap {last.get('loss_swap', float('nan')):.4f}")
    if args.evaluate:
        summary.update(_evaluate(args, loaded.model, {lam: r.target for lam, r in results.items()}, dataset, device))
    runs.write_json_atomic(args.output / "defend.json", summary)
    print(f"wrote {args.output}")
    return 0


def _evaluate(args, undefended, defended, dataset, device) -> dict:
    """Attack every defense with the same budget; write the table and plot; return the summary."""
    from recsec_lib.attack.extraction import SurrogateSettings, run_attack
    from recsec_lib.gro.defenses import choose_best_lambda, evaluate_defenses, plot_utility_vs_protection, save_tables

    settings = SurrogateSettings(epochs=args.surrogate_epochs, seed=args.seed)

    def extract(box):
        return run_attack(box, dataset.num_items, args.attack_generator, args.attack_sequences, args.attack_seq_len,
                          arch=_registry_name(undefended), settings=settings, device=device, seed=args.seed,
                          progress=not args.quiet).surrogate.model

    table = evaluate_defenses(undefended, defended, dataset, extract, k=args.k, device=device, seed=args.seed,
                              box_filter_seen=args.k + undefended.max_len <= dataset.num_items, method=args.method)
    save_tables(table, args.output)
    plot_utility_vs_protection(table, args.output / "utility_vs_protection.png")
    print((args.output / "defenses.md").read_text())
    return {"best": choose_best_lambda(table), "defenses": table.to_dict(orient="records")}


def _device(name: str):
    """auto = CUDA when available; asking for cuda without one is an error naming the option."""
    import torch

    check_device(name)
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def _registry_name(model) -> str:
    from recsec_lib.models.registry import model_name_of

    return model_name_of(model)
