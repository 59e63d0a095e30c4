"""``recsec watermark``: mark a trained target with a secret key, and verify a suspect through its black box.

    recsec watermark embed --target-model checkpoints/sasrec.pt --key-out secret/key.json \\
        --output checkpoints/sasrec_marked.pt
    recsec watermark verify --suspect stolen.pt --key secret/key.json

``embed`` makes a key (a fresh random seed unless --key-seed is given), fine-tunes
the target with the key's watermark rows, saves the marked checkpoint, and
prints what the mark costs (test NDCG@10 kept with its interval, time against
an undefended training epoch) and the marked model's own verification.
``verify`` serves the suspect as a top-k black box and only sends it queries:
it prints the hits, the decoys' hits, the p-value and the verdict (ownership
is claimed only when p < --alpha).
"""

from __future__ import annotations

import argparse
import os
import secrets
from dataclasses import asdict
from pathlib import Path

from recsec_lib.cli import UserError, folder_option
from recsec_lib.study.stages.context import DATASETS, DEVICES


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "watermark", help="embed an ownership watermark, or verify a suspect model",
        description="Ownership verification: embed a secret watermark into a trained target, or test a suspect "
                    "model for it through its top-k answers only.")
    commands = parser.add_subparsers(dest="watermark_command", metavar="{embed,verify}", required=True)
    fmt = argparse.ArgumentDefaultsHelpFormatter

    embed = commands.add_parser("embed", formatter_class=fmt, help="make a key and fine-tune the target with it",
                                description="Make a secret watermark key and fine-tune a trained target so that "
                                            "it carries the watermark; print what it costs.")
    embed.add_argument("--target-model", type=Path, required=True, help="checkpoint of the trained target")
    embed.add_argument("--key-out", type=Path, required=True, help="where to write the secret key (JSON)")
    embed.add_argument("--output", type=Path, required=True, help="where to write the marked checkpoint")
    embed.add_argument("--key-seed", type=int, default=None, help="the key's seed (default: a fresh random one)")
    embed.add_argument("--pairs", type=int, default=256, help="trigger -> continuation pairs in the watermark")
    embed.add_argument("--decoys", type=int, default=40, help="decoy keys the test compares with")
    embed.add_argument("--context-len", type=int, default=0,
                       help="verification queries hold 0..this many random items before the trigger")
    embed.add_argument("--trigger-pool", choices=("all", "rare"), default="all",
                       help="triggers from every item, or from the items the target recommends least")
    embed.add_argument("--continuation-pool", choices=("all", "rare"), default="all",
                       help="continuations from every item, or from the items the target recommends least")
    embed.add_argument("--rare-fraction", type=float, default=0.5, help="share of the catalogue a 'rare' pool holds")
    embed.add_argument("--epochs", type=int, default=1, help="fine-tuning epochs over the target's training rows")
    embed.add_argument("--watermark-rows", type=int, default=64, help="watermark rows per training step")
    embed.add_argument("--weight", type=float, default=1.0, help="weight of the watermark loss")
    embed.add_argument("--max-context", type=int, default=20,
                       help="watermark rows hold 0..this many random items before the trigger")
    embed.add_argument("--lr", type=float, default=1e-3)
    embed.add_argument("--batch-size", type=int, default=128, help="ordinary training rows per step")
    embed.add_argument("--windows", choices=("newest", "all"), default=None,
                       help="the target's training rows (default: as the checkpoint was trained)")
    embed.add_argument("--seed", type=int, default=0, help="seed of the fine-tuning (batches, contexts, dropout)")
    embed.add_argument("--force", action="store_true", help="overwrite an existing --key-out")
    _data_options(embed)
    embed.add_argument("--quiet", action="store_true", help="no progress output")
    embed.set_defaults(handler=handle_embed)

    verify = commands.add_parser("verify", formatter_class=fmt, help="test a suspect model for the watermark",
                                 description="Serve the suspect checkpoint as a top-k black box, send it the "
                                             "key's watermark and decoy queries, and test the hits.")
    verify.add_argument("--suspect", type=Path, required=True, help="checkpoint of the suspect model")
    verify.add_argument("--key", type=Path, required=True, help="the secret key written by `watermark embed`")
    verify.add_argument("--k", type=int, default=100, help="length of the lists the suspect box returns")
    verify.add_argument("--cutoff", type=int, default=10, help="a hit: the continuation in the first CUTOFF ids")
    verify.add_argument("--alpha", type=float, default=0.01, help="claim ownership only when p < alpha")
    verify.add_argument("--device", choices=DEVICES, default="auto")
    verify.add_argument("--json-out", type=Path, default=None, help="also write the result as JSON here")
    verify.set_defaults(handler=handle_verify)


def _data_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dataset", choices=DATASETS, default=None,
                        help="dataset (default: the one the checkpoint was trained on)")
    parser.add_argument("--data-dir", default="data", help="processed cache")
    parser.add_argument("--mirror", default=os.environ.get("RECSEC_DATA_MIRROR", ""),
                        help="local MovieLens copy (default: $RECSEC_DATA_MIRROR)")
    parser.add_argument("--device", choices=DEVICES, default="auto")


def handle_embed(args: argparse.Namespace) -> int:
    import torch

    from recsec_lib.recommend.checkpoints import load_checkpoint, read_checkpoint_payload, save_checkpoint
    from recsec_lib.recommend.training import stored_trajectory
    from recsec_lib.study.stages.context import StudyContext
    from recsec_lib.watermark.cost import per_user_ndcg, utility_retention
    from recsec_lib.watermark.embed import EmbedSettings, embed_watermark, step_seconds
    from recsec_lib.watermark.key import KeySettings, make_key, save_key
    from recsec_lib.watermark.verify import verify_ownership

    if args.key_out.exists() and not args.force:
        raise UserError(f"--key-out {args.key_out} already exists: overwriting a key loses the secret of the model "
                        f"it marked; choose another path or pass --force")
    if args.key_out.exists() and args.key_out.is_dir():
        raise UserError(f"--key-out {args.key_out} is a folder, not a file")
    if not args.target_model.is_file():
        raise FileNotFoundError(f"--target-model {args.target_model} does not exist")
    folder_option(args.data_dir, "--data-dir")
    key_settings = KeySettings(num_pairs=args.pairs, context_len=args.context_len, decoys=args.decoys,
                               trigger_pool=args.trigger_pool, continuation_pool=args.continuation_pool,
                               rare_fraction=args.rare_fraction)
    payload = read_checkpoint_payload(args.target_model)
    dataset_name = args.dataset or payload["dataset_name"]
    ctx = StudyContext(run_dir=args.output.parent, dataset=dataset_name, data_dir=Path(args.data_dir),
                       mirror=Path(args.mirror) if args.mirror else None, device=args.device)
    device = ctx.torch_device()
    dataset = ctx.load_dataset()
    loaded = load_checkpoint(args.target_model, dataset=dataset, device=device)
    windows = args.windows or stored_trajectory(((loaded.training_state or {}).get("train_config") or {}))["windows"]
    settings = EmbedSettings(epochs=args.epochs, batch_size=args.batch_size, watermark_rows=args.watermark_rows,
                             weight=args.weight, lr=args.lr, max_context=args.max_context, windows=windows,
                             seed=args.seed)
    seed = args.key_seed if args.key_seed is not None else secrets.randbits(62)
    key = make_key(loaded.model, dataset, seed, key_settings)
    torch.manual_seed(args.seed)
    result = embed_watermark(loaded.model, dataset, key, settings, device=device, progress=not args.quiet)
    save_key(args.key_out, key)
    metrics = {"watermarked_from": str(args.target_model), "embed_settings": asdict(settings),
               "embed_history": result.history, "embed_seconds": result.seconds}
    plain_step, mark_step = step_seconds(loaded.model, dataset, key, settings, device=device)
    reference, marked = per_user_ndcg(loaded.model, dataset), per_user_ndcg(result.model, dataset)
    kept = utility_retention(marked, reference)
    check = verify_ownership(serve(result.model, 100, device), key)
    metrics.update({"test_ndcg@10_reference": float(reference.mean()), "test_ndcg@10_marked": float(marked.mean()),
                    "ndcg_kept": kept.as_dict("ndcg_kept"), "plain_step_seconds": plain_step,
                    "embed_step_seconds": mark_step,
                    "cost_in_undefended_epochs": settings.epochs * mark_step / plain_step})
    save_checkpoint(args.output, result.model, loaded.model_name, dataset, metrics=metrics)
    print(f"wrote the key to {args.key_out} (keep it secret) and the marked model to {args.output}")
    print(f"test NDCG@10: {reference.mean():.4f} unmarked, {marked.mean():.4f} marked; kept {kept.point:.2%} "
          f"(95% interval over test users {kept.low:.2%}..{kept.high:.2%})")
    print(f"embedding took {result.seconds:.1f} s: {settings.epochs} epoch(s) of steps that cost "
          f"{mark_step / plain_step:.2f} x an undefended training step (timed in alternation), = "
          f"{settings.epochs * mark_step / plain_step:.2f} x an undefended training epoch")
    print(f"marked model, verified through its box: {check.summary()}")
    return 0


def handle_verify(args: argparse.Namespace) -> int:
    from recsec_lib.recommend.checkpoints import load_checkpoint
    from recsec_lib.study import runs
    from recsec_lib.watermark.key import load_key
    from recsec_lib.watermark.verify import VerifySettings, check_suspect, verify_ownership

    key = load_key(args.key)
    settings = VerifySettings(cutoff=args.cutoff, alpha=args.alpha)
    device = _device(args.device)
    loaded = load_checkpoint(args.suspect, device=device)
    if loaded.model.num_items != key.num_items:
        raise ValueError(f"the suspect {args.suspect} serves {loaded.model.num_items} items but the key {args.key} "
                         f"was made for {key.num_items}: they belong to different item sets")
    if args.k < 1:
        raise ValueError(f"--k must be positive, got {args.k}")
    box = serve(loaded.model, args.k, device)  # the model goes behind the box: only its answers come out
    check_suspect(box, key)
    result = verify_ownership(box, key, settings)
    if key.dataset_fingerprint and loaded.dataset_fingerprint and key.dataset_fingerprint != loaded.dataset_fingerprint:
        print(f"note: the suspect's checkpoint records dataset fingerprint {loaded.dataset_fingerprint!r}, the key "
              f"{key.dataset_fingerprint!r} (same item count; the test does not depend on it)")
    print(f"suspect {args.suspect} ({loaded.model_name}) served as a top-{box.k} box; key {args.key}")
    print(result.summary())
    if args.json_out is not None:
        runs.write_json_atomic(args.json_out, {"suspect": str(args.suspect), "key": str(args.key), **result.as_dict()})
        print(f"wrote {args.json_out}")
    return 0


def _device(name: str):
    """auto = CUDA when available; asking for cuda without one is an error naming the option."""
    import torch

    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda was given but no CUDA device is available")
    return torch.device("cuda" if name == "auto" and torch.cuda.is_available() else ("cpu" if name == "auto" else name))


def serve(model, k: int, device):
    """``model`` behind a top-k ``BlackBoxRecommender`` that filters seen items (as the study's box does);
    on a catalogue too small for k plus a longest query, k shrinks, and below 1 the box stops filtering."""
    from recsec_lib.attack.blackbox import BlackBoxRecommender

    room = model.num_items - model.max_len
    if room >= 1:
        return BlackBoxRecommender(model, k=min(k, room), device=device)
    return BlackBoxRecommender(model, k=min(k, model.num_items), filter_seen=False, device=device)
