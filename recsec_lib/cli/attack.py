"""``recsec attack``: extract a trained target through its black box and measure the copy.

    recsec attack --target-model checkpoints/sasrec_ml1m.pt --sequences 1000 --seq-len 50
    recsec attack --target-model checkpoints/sasrec_ml1m.pt --queries 1000000 --generator random
    recsec attack --target-model ... --surrogate narm --top-k 100 --epochs 30 --output-dir outputs/attack

The budget is given either in synthetic sequences (--sequences) or, as in the
seed, in queries (--queries: each sequence of --seq-len items costs --seq-len
queries). Writes into --output-dir: the collected queries and lists
(queries.npz), the box's query log (querylog.npz), the surrogate checkpoint
(surrogate.pt) and metrics.json (Agr@1, Agr@10, surrogate HR@10/NDCG@10 on the
real test inputs of --dataset). A folder that already holds an attack is
refused unless --force.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from recsec_lib.cli import UserError, folder_option


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "attack", help="model-extraction attack on a trained recommender served as a top-k black box",
        description="Query a trained target through a black box that returns only top-k item ids, train a "
                    "surrogate on the answers (margin loss, Yue et al. 2021) and report its agreement with the "
                    "target (Agr@1, Agr@10) and its own HR@10/NDCG@10 on the dataset's test users.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--target-model", type=Path, required=True, help="checkpoint of the trained target")
    budget = parser.add_mutually_exclusive_group()
    budget.add_argument("--queries", type=int, default=None,
                        help="budget in queries (the seed's option); sequences = queries // seq-len")
    budget.add_argument("--sequences", type=int, default=None, help="budget in synthetic sequences (default 1000)")
    parser.add_argument("--generator", choices=("autoregressive", "random"), default="autoregressive")
    parser.add_argument("--seq-len", type=int, default=50, help="items (= queries) per synthetic sequence")
    parser.add_argument("--surrogate", default=None,
                        help="surrogate architecture: meanemb | sasrec | narm | bert4rec (default: the target's)")
    parser.add_argument("--top-k", type=int, default=100, help="length of the lists the black box returns")
    parser.add_argument("--defense", default="none",
                        help="output defense in front of the black box, by name: none, random, reverse, top:K, "
                             "tail-shuffle:M, tail-reverse:M, tail-resample:M (recsec_lib.defenses.output)")
    parser.add_argument("--accounts", type=int, default=1, help="spread the queries over this many accounts")
    parser.add_argument("--epochs", type=int, default=30, help="surrogate epochs (early stopping may end sooner)")
    parser.add_argument("--batch-size", type=int, default=16, help="synthetic sequences per surrogate step")
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--max-train-seconds", type=float, default=0.0,
                        help="stop training the surrogate after this many seconds; 0 = no limit")
    parser.add_argument("--output-dir", type=Path, default=Path("outputs/attack"), help="folder for the results")
    parser.add_argument("--force", action="store_true",
                        help="overwrite the results of an earlier attack in --output-dir")
    parser.add_argument("--dataset", default="ml-1m", help="ml-1m | ml-100k | ml-20m | synthetic (for evaluation)")
    parser.add_argument("--data-dir", type=Path, default=Path("data"), help="downloads and the processed cache")
    parser.add_argument("--mirror", type=Path, default=None,
                        help="local MovieLens copy (default: $RECSEC_DATA_MIRROR, else download)")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.set_defaults(handler=handle)


def budget_in_sequences(queries: int | None, sequences: int | None, seq_len: int) -> int:
    """Synthetic sequences the budget buys (--queries or --sequences; default 1000 sequences)."""
    from recsec_lib.attack.queries import sequences_for_budget

    if seq_len < 1:
        raise ValueError(f"--seq-len must be at least 1, got {seq_len}")
    if queries is not None:
        if queries < 1:
            raise ValueError(f"--queries must be positive, got {queries}")
        return sequences_for_budget(queries, seq_len)
    if sequences is not None and sequences < 1:
        raise ValueError(f"--sequences must be positive, got {sequences}")
    return sequences or 1000


# What an attack writes into --output-dir; any of them there means an earlier attack's results.
ATTACK_FILES = ("metrics.json", "queries.npz", "querylog.npz", "surrogate.pt")


def check_output_dir(output_dir: Path, force: bool) -> Path:
    """--output-dir as a folder that may be written: not a file, and without an earlier attack unless ``force``.

    Checked before any query is asked, so that a second attack does not
    silently replace the first one's query log and metrics at its very end.
    """
    output_dir = folder_option(output_dir, "--output-dir")
    earlier = [name for name in ATTACK_FILES if (output_dir / name).exists()]
    if earlier and not force:
        raise UserError(f"--output-dir {output_dir} already holds an attack ({', '.join(earlier)}); choose another "
                        f"folder or pass --force to overwrite it")
    return output_dir


def handle(args: argparse.Namespace) -> int:
    from recsec_lib.study import runs
    from recsec_lib.attack.extraction import SurrogateSettings, evaluate_extraction, run_attack
    from recsec_lib.recommend.checkpoints import load_checkpoint, save_checkpoint
    from recsec_lib.study.stages.context import StudyContext, seed_everything

    num_sequences = budget_in_sequences(args.queries, args.sequences, args.seq_len)
    check_output_dir(args.output_dir, args.force)
    folder_option(args.data_dir, "--data-dir")
    if not args.quiet:  # one line per surrogate epoch and per query phase
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    if not args.target_model.is_file():
        raise FileNotFoundError(f"--target-model {args.target_model} does not exist")
    for name in ("top_k", "epochs", "batch_size", "accounts"):
        if getattr(args, name) < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(args, name)}")
    ctx = StudyContext(run_dir=args.output_dir, dataset=args.dataset, data_dir=args.data_dir, mirror=args.mirror,
                       seed=args.seed, device=args.device)
    seed_everything(args.seed)
    device = ctx.torch_device()
    dataset = ctx.load_dataset()
    loaded = load_checkpoint(args.target_model, dataset=dataset, device=device)
    arch = args.surrogate or loaded.model_name
    from recsec_lib.attack.blackbox import BlackBoxRecommender
    from recsec_lib.models.registry import MODEL_NAMES

    if arch not in MODEL_NAMES:
        raise ValueError(f"--surrogate must be one of {MODEL_NAMES}, got {arch!r}")
    if args.seq_len > loaded.model.max_len:
        raise ValueError(f"--seq-len {args.seq_len} exceeds the target's longest query ({loaded.model.max_len})")
    from recsec_lib.defenses.output import DefendedBox, parse_output_defense

    defense = parse_output_defense(args.defense)
    box = BlackBoxRecommender(loaded.model, k=args.top_k,
                              filter_seen=args.top_k + loaded.model.max_len <= dataset.num_items, device=device)
    if defense.name != "none":
        box = DefendedBox(box, defense, seed=args.seed)
    settings = SurrogateSettings(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                                 max_train_seconds=args.max_train_seconds, seed=args.seed)
    result = run_attack(box, dataset.num_items, args.generator, num_sequences, args.seq_len, arch=arch,
                        settings=settings, device=device, seed=args.seed, num_accounts=args.accounts,
                        progress=not args.quiet)
    figures = evaluate_extraction(loaded.model, result.surrogate.model, dataset, device=device)
    out = args.output_dir
    out.mkdir(parents=True, exist_ok=True)
    result.data.save(out / "queries.npz")
    box.log.save(out / "querylog.npz")
    save_checkpoint(out / "surrogate.pt", result.surrogate.model, arch, dataset, metrics=figures)
    metrics = {
        "target_model": str(args.target_model), "target_arch": loaded.model_name, "surrogate": arch,
        "generator": args.generator, "defense": args.defense, "budget_sequences": num_sequences,
        "seq_len": args.seq_len, "budget_queries": result.data.num_queries, "top_k": args.top_k,
        "accounts": args.accounts, "query_seconds": round(result.query_seconds, 2),
        "train_seconds": round(result.train_seconds, 2), "best_epoch": result.surrogate.best_epoch,
        "history": result.surrogate.history, **figures,
    }
    runs.write_json_atomic(out / "metrics.json", metrics)
    print(f"{num_sequences} {args.generator} sequences of {args.seq_len} ({result.data.num_queries} queries), "
          f"surrogate {arch}:")
    print(f"  Agr@1 {figures['agr@1']:.4f}  Agr@10 {figures['agr@10']:.4f}")
    print(f"  surrogate HR@10 {figures['surrogate_hr@10']:.4f}  NDCG@10 {figures['surrogate_ndcg@10']:.4f}  "
          f"(target HR@10 {figures['target_hr@10']:.4f}  NDCG@10 {figures['target_ndcg@10']:.4f})")
    print(f"wrote {out}")
    return 0
