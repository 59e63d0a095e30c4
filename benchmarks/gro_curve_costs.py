"""What GRO's trade-off curve costs on this machine, and where the cpu attack is budget-bound (issue 28).

Four measurements, one sub-command each (each prints one JSON line per figure and keeps to a few minutes):

    export RECSEC_DATA_MIRROR=/work/shared/data
    B="OMP_NUM_THREADS=1 nice -n 10 .venv/bin/python benchmarks/gro_curve_costs.py --data-dir /work/ckpt/data"
    # 1. early snapshots of the undefended SASRec training (the utility-matched null's candidates)
    $B snapshots --epochs 8 --snapshot-epochs 2,3,4,6,8 --out /work/ckpt/grocurve/sasrec_early.pt
    # 2. one surrogate of 500 x 100 autoregressive queries, trained for a FIXED number of epochs
    $B surrogate-epochs --target /work/ckpt/sasrec_ml1m.pt --epochs 10,20,30
    # 3. the surrogate of targets of different quality (snapshots and the final target) at two budgets
    $B budget --targets /work/ckpt/grocurve/sasrec_early_epoch2.pt,... --sequences 500,2000 --surrogate-epochs 40 \
        --equal-steps
    # 4. one GRO fine-tuning epoch per arm (student and swap on the last 10 positions, as the cpu profile)
    $B gro-epoch --target /work/ckpt/sasrec_ml1m.pt --arms control,keep,lowest_index --lam 1

The surrogate is the GRO stage's attack: the box returns top-100 lists with the
query's items filtered, 500 autoregressive sequences of 100 queries, a fresh
SASRec surrogate distilled with the attack seed; here it trains for a fixed
number of epochs (no early stopping, no wall-clock cap), so its figure does not
depend on how busy the machine is. The surrogate fit keeps its best epoch on
the attacker's own held-out queries (Agr@10 with the box); ``surrogate-epochs``
trains once for the largest epoch count and scores, for each smaller count N,
the model a run of N epochs would have kept (the same trajectory: each epoch's
order and negatives come from the same seeded generators).

Surrogate figures: test users, full ranking, the user's history filtered,
NDCG@10 of the surrogate's own top-10 and Agr@10 with the attacked target's
top-10. Times are wall seconds on this machine, which is shared (``load``: the
1-minute load average when the figure was taken); each timed piece is measured
beside a timed SASRec training epoch (``reference_epoch_seconds``), and
``*_quiet`` converts it to the published quiet 2-core run, where a SASRec
epoch took 34.8 s (``sasrec_cpu_epoch_seconds``): an estimate that assumes the
piece and the yardstick slow down alike.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import time
from pathlib import Path

import numpy as np
import torch

from recsec_lib.attack.blackbox import BlackBoxRecommender
from recsec_lib.attack.queries import generate_queries
from recsec_lib.attack.surrogate import SurrogateSettings, fit_surrogate
import recsec_lib.attack.surrogate as surrogate_module
from recsec_lib.data.prepare import prepare_dataset
from recsec_lib.defenses.output import DefendedBox, parse_output_defense
from recsec_lib.gro.training import GROConfig, defend_target
from recsec_lib.models.registry import build_model
from recsec_lib.recommend.checkpoints import load_checkpoint, read_checkpoint_payload
from recsec_lib.recommend.evaluation import evaluate_model, ranked_lists
from recsec_lib.recommend.sequences import training_windows
from recsec_lib.recommend.training import TrainConfig, snapshot_record, time_training_epoch, train_model
from recsec_lib.study.stages.context import seed_everything

K = 100  # the box's list length (the GRO stage's k)


QUIET_SASREC_EPOCH_SECONDS = 34.8  # the published cpu run's sasrec_cpu_epoch_seconds (results/headline.json)


def reference_seconds(model, dataset) -> float:
    """Seconds one SASRec training epoch takes right now (8 timed batches, scaled): the yardstick that turns a time
    measured on this busy machine into the published quiet run's seconds (× 34.8 / this)."""
    return time_training_epoch(model, dataset, 128, max_batches=8, device="cpu", seed=0, windows="all")


def quiet(seconds: float, reference: float) -> float:
    """``seconds`` measured beside a SASRec epoch of ``reference`` s, in the published quiet run's seconds."""
    return round(seconds * QUIET_SASREC_EPOCH_SECONDS / reference, 1)


def emit(**figures) -> None:
    figures["load"] = round(os.getloadavg()[0], 2)
    print(json.dumps(figures, ensure_ascii=False), flush=True)


def load_dataset(args):
    mirror = args.mirror or os.environ.get("RECSEC_DATA_MIRROR") or None
    return prepare_dataset("ml-1m", data_dir=args.data_dir, mirror=mirror)


def valid_ndcg10(model, dataset) -> float:
    return evaluate_model(model, dataset, "valid", 512, "cpu", ks=(10,), sampled=False, unfiltered=False)["ndcg@10"]


def test_figures(model, dataset) -> dict:
    figures = evaluate_model(model, dataset, "test", 512, "cpu", ks=(10,), sampled=False, unfiltered=True)
    return {"test_ndcg10": figures["ndcg@10"], "test_hr10": figures["hr@10"],
            "test_ndcg10_unfiltered": figures["unfiltered_ndcg@10"]}


def per_user_scores(surrogate, dataset, target_top10: np.ndarray) -> dict[str, np.ndarray]:
    """[U] test NDCG@10 and HR@10 of the surrogate (history filtered) and its Agr@10 with the target's top-10."""
    inputs, targets = dataset.split("test")
    top10, _ = ranked_lists(surrogate, inputs, 10, "cpu")
    hits = top10 == targets[:, None]  # [U, 10]
    ndcg = np.where(hits.any(axis=1), 1.0 / np.log2(hits.argmax(axis=1) + 2.0), 0.0)
    agr = (top10[:, :, None] == target_top10[:, None, :]).any(axis=2).mean(axis=1)
    return {"ndcg10": ndcg, "hr10": hits.any(axis=1).astype(np.float64), "agr10": agr}


def surrogate_scores(surrogate, dataset, target_top10: np.ndarray, save_to: Path | None = None) -> dict:
    """Means of ``per_user_scores``; with ``save_to`` the per-user arrays are also kept there (.npz)."""
    users = per_user_scores(surrogate, dataset, target_top10)
    if save_to is not None:
        save_to.parent.mkdir(parents=True, exist_ok=True)
        tmp = save_to.with_name(f".{save_to.stem}.tmp.npz")
        np.savez(tmp, **users)
        os.replace(tmp, save_to)
    return {"surrogate_test_ndcg10": float(users["ndcg10"].mean()), "surrogate_test_hr10": float(users["hr10"].mean()),
            "agr10": float(users["agr10"].mean())}


def attack_data(target, dataset, sequences: int, seq_len: int, seed: int):
    box = BlackBoxRecommender(target, k=K, filter_seen=True, device="cpu")
    tick = time.perf_counter()
    data = generate_queries(box, dataset.num_items, "autoregressive", sequences, seq_len, seed=seed, progress=False)
    return data, time.perf_counter() - tick


def fit(data, dataset, target, epochs: int, seed: int, keep_every_epoch: bool = False):
    """A fresh SASRec surrogate trained for exactly ``epochs`` epochs (no early stopping, no time cap).

    With ``keep_every_epoch`` the weights after every epoch are kept too (by
    wrapping the attacker's validation, called once after each epoch), so that
    the model an N-epoch run would keep can be scored for every N <= epochs.
    """
    settings = SurrogateSettings(epochs=epochs, patience=0, max_train_seconds=0.0, seed=seed)
    torch.manual_seed(seed)
    model = build_model("sasrec", num_items=dataset.num_items, max_len=max(target.max_len, data.seq_len))
    kept: list[dict] = []
    original = surrogate_module.validation_agreement
    if keep_every_epoch:
        def recording(m, *a, **kw):
            kept.append(copy.deepcopy(m.state_dict()))
            return original(m, *a, **kw)
        surrogate_module.validation_agreement = recording
    try:
        tick = time.perf_counter()
        result = fit_surrogate(data, model, settings, device="cpu", progress=False)
        seconds = time.perf_counter() - tick
    finally:
        surrogate_module.validation_agreement = original
    return result, seconds, kept


def cmd_snapshots(args) -> None:
    """The undefended SASRec training of the study (seed, windows "all", Adam 1e-3, no weight decay) for a few epochs,
    with snapshots; resumable (run it again to continue)."""
    dataset = load_dataset(args)
    config = TrainConfig(epochs=args.epochs, batch_size=128, lr=1e-3, weight_decay=0.0, patience=0, seed=args.seed,
                         windows="all", snapshot_epochs=tuple(args.snapshot_epochs))
    seed_everything(args.seed)
    model = build_model("sasrec", dataset.num_items, dataset.max_len)
    tick = time.perf_counter()
    result = train_model(model, dataset, config, "cpu", checkpoint_path=args.out, progress=True)
    emit(what="snapshot training", epochs_run=result.epochs_run, stop_reason=result.stop_reason,
         wall_seconds=round(time.perf_counter() - tick, 1),
         epoch_seconds=[row["train_seconds"] for row in result.history])
    reference = {}
    if args.compare_with and Path(args.compare_with).exists():  # the same recipe's long run, e.g. the lead's target
        state = read_checkpoint_payload(args.compare_with).get("training_state") or {}
        reference = {row["epoch"]: row.get("valid_ndcg@10") for row in state.get("history", [])}
    for epoch, path in sorted(result.snapshots.items()):
        record = snapshot_record(path)
        emit(what="snapshot", epoch=epoch, valid_ndcg10=round(record["valid_ndcg10"], 4),
             reference_run_valid_ndcg10=reference.get(epoch), path=str(path))


def cmd_surrogate_epochs(args) -> None:
    dataset = load_dataset(args)
    target = load_checkpoint(args.target, dataset).model
    inputs, _ = dataset.split("test")
    target_top10, _ = ranked_lists(target, inputs, 10, "cpu")
    for seed in args.seeds:
        reference = reference_seconds(target, dataset)
        data, query_seconds = attack_data(target, dataset, args.sequences, args.seq_len, seed)
        emit(what="queries", target=str(args.target), sequences=args.sequences, seq_len=args.seq_len, seed=seed,
             query_seconds=round(query_seconds, 1), reference_epoch_seconds=round(reference, 1),
             query_seconds_quiet=quiet(query_seconds, reference))
        result, seconds, kept = fit(data, dataset, target, max(args.epochs), seed, keep_every_epoch=True)
        reference = (reference + reference_seconds(target, dataset)) / 2  # before and after the fit
        history = result.history
        for count in sorted(args.epochs):
            chosen = max(history[:count], key=lambda row: (row["valid_agr10"], -row["epoch"]))  # what N epochs keep
            model = build_model("sasrec", num_items=dataset.num_items, max_len=max(target.max_len, args.seq_len))
            model.load_state_dict(kept[chosen["epoch"] - 1])
            model.eval()
            emit(what="surrogate", target=str(args.target), sequences=args.sequences, seed=seed, epochs=count,
                 kept_epoch=chosen["epoch"], heldout_agr10=round(chosen["valid_agr10"], 4),
                 train_seconds=round(sum(row["seconds"] for row in history[:count]), 1),
                 train_seconds_quiet=quiet(sum(row["seconds"] for row in history[:count]), reference),
                 **{k: round(v, 4) for k, v in surrogate_scores(model, dataset, target_top10).items()})
        emit(what="surrogate epoch seconds", seed=seed, seconds=[row["seconds"] for row in history],
             heldout_agr10=[round(row["valid_agr10"], 4) for row in history], fit_seconds=round(seconds, 1),
             reference_epoch_seconds=round(reference, 1), epoch_seconds_quiet=quiet(np.median(
                 [row["seconds"] for row in history]), reference))


def cmd_budget(args) -> None:
    dataset = load_dataset(args)
    for path in args.targets:
        target = load_checkpoint(path, dataset).model
        inputs, _ = dataset.split("test")
        target_top10, _ = ranked_lists(target, inputs, 10, "cpu")
        figures = {"valid_ndcg10": round(valid_ndcg10(target, dataset), 4),
                   **{k: round(v, 4) for k, v in test_figures(target, dataset).items()}}
        for sequences in args.sequences:
            # equal steps: a budget B times the smallest trains smallest/B as many epochs (the same gradient steps)
            epochs = (max(1, round(args.surrogate_epochs * min(args.sequences) / sequences)) if args.equal_steps
                      else args.surrogate_epochs)
            for seed in args.seeds:
                reference = reference_seconds(target, dataset)
                data, query_seconds = attack_data(target, dataset, sequences, args.seq_len, seed)
                result, seconds, _ = fit(data, dataset, target, epochs, seed)
                tick = time.perf_counter()
                per_user = args.work_dir / "per_user" / f"{Path(path).stem}_{sequences}x{args.seq_len}_e{epochs}_s{seed}.npz"
                scores = surrogate_scores(result.model, dataset, target_top10, per_user)
                score_seconds = time.perf_counter() - tick
                emit(what="budget", target=str(path), **figures, sequences=sequences, seq_len=args.seq_len,
                     seed=seed, surrogate_epochs=epochs, kept_epoch=result.best_epoch,
                     query_seconds=round(query_seconds, 1), train_seconds=round(seconds, 1),
                     reference_epoch_seconds=round(reference, 1), query_seconds_quiet=quiet(query_seconds, reference),
                     train_seconds_quiet=quiet(seconds, reference), score_test_seconds_quiet=quiet(score_seconds,
                                                                                                    reference),
                     **{k: round(v, 4) for k, v in scores.items()}, per_user=str(per_user))


def cmd_gro_epoch(args) -> None:
    """One whole GRO fine-tuning epoch per arm, on the rows the target was trained on, timed; the defended target's
    validation and test NDCG@10 after it."""
    dataset = load_dataset(args)
    loaded = load_checkpoint(args.target, dataset)
    target = loaded.model
    # the rows the target was trained on (its record), else --windows (the study's SASRec: "all")
    windows = ((loaded.training_state or {}).get("train_config") or {}).get("windows", args.windows)
    rows = training_windows(dataset.train_sequences(), target.max_len + 1, windows)
    base = valid_ndcg10(target, dataset)
    emit(what="undefended", target=str(args.target), windows=windows, rows=len(rows), valid_ndcg10=round(base, 4),
         **{k: round(v, 4) for k, v in test_figures(target, dataset).items()})
    for arm in args.arms:
        lam, rule = (0.0, "keep") if arm == "control" else (args.lam, arm)
        config = GROConfig(method="gro", lam=lam, epochs=args.gro_epochs, batch_size=128, lr=1e-3, k=K,
                           positions_per_sequence=args.positions, zero_gradient_rule=rule, kept_epoch="last",
                           max_batches_per_epoch=args.max_batches, seed=args.seed)
        reference = reference_seconds(target, dataset)
        tick = time.perf_counter()
        result = defend_target(target, rows, config, progress=False)
        wall = time.perf_counter() - tick
        defended = result.target.eval()
        valid = valid_ndcg10(defended, dataset)
        batches = result.history[-1]["batches"]
        full = -(-len(rows) // 128)  # batches of a whole epoch
        emit(what="gro epoch", arm=arm, lam=lam, rule=rule, positions=args.positions, gro_epochs=args.gro_epochs,
             batches=batches, epoch_seconds=[row["seconds"] for row in result.history], wall_seconds=round(wall, 1),
             reference_epoch_seconds=round(reference, 1),
             whole_epoch_seconds_quiet=quiet(result.history[-1]["seconds"] * full / batches, reference),
             valid_ndcg10=round(valid, 4), retention_valid=round(valid / base, 4),
             **{k: round(v, 4) for k, v in test_figures(defended, dataset).items()},
             zero_gradient_share=round(result.history[-1]["zero_gradient_share"], 4))


def cmd_analyze(args) -> None:
    """The budget-bound check (``gro.budget``) on the ``budget`` runs' logs: per budget, the targets' test NDCG@10
    and their surrogates' per-user test NDCG@10 (pooled over the seeds run), then the budget the verdict would use."""
    from recsec_lib.gro.budget import AttackedTarget, budget_check, verdict_budget

    runs: dict[int, dict[str, dict]] = {}
    for log in args.logs:
        for line in Path(log).read_text().splitlines():
            row = json.loads(line) if line.startswith("{") else {}
            if row.get("what") == "budget" and row.get("per_user") and Path(row["per_user"]).exists():
                entry = runs.setdefault(row["sequences"], {}).setdefault(
                    row["target"], {"ndcg": row["test_ndcg10"], "users": []})
                entry["users"].append(np.load(row["per_user"])["ndcg10"])
    checks = {}
    for budget, targets in sorted(runs.items()):
        attacked = [AttackedTarget(Path(t).stem, v["ndcg"], np.stack(v["users"])) for t, v in targets.items()]
        for target in sorted(attacked, key=lambda t: t.target_ndcg10):
            emit(what="budget point", budget=budget, target=target.label, target_test_ndcg10=target.target_ndcg10,
                 surrogate_test_ndcg10=round(float(target.surrogate.mean()), 4), seeds=len(target.surrogate))
        if len(attacked) >= 2:
            try:
                checks[budget] = budget_check(budget, attacked, min_target_gap=args.min_target_gap,
                                              min_elasticity=args.min_elasticity, replicates=args.replicates)
                emit(what="budget check", budget=budget, bound=checks[budget].bound,
                     words=checks[budget].describe())
            except ValueError as exc:
                emit(what="budget check", budget=budget, error=str(exc))
    if checks:
        budget, reason = verdict_budget(checks)
        emit(what="verdict budget", budget=budget, reason=reason)


def cmd_authors(args) -> None:
    """GRO's table in the authors' units for None, Random and Reverse on one target: an UNFILTERED box of 100-item
    lists, Random/Reverse over the whole list, the surrogate's unfiltered top-10; beside the published rows."""
    from recsec_lib.gro.authors_units import AuthorsUnitsArm, authors_units_table, serve_whole_list
    from recsec_lib.common.tables import markdown_table

    dataset = load_dataset(args)
    target = load_checkpoint(args.target, dataset).model
    inputs, targets = dataset.split("test")
    _, unfiltered = ranked_lists(target, inputs, K, "cpu")  # [U, 100] full ranking, nothing filtered
    arms = []
    for index, defense in enumerate(args.defenses):
        served = serve_whole_list(unfiltered, defense, np.random.default_rng(args.seed + index))
        tops = []
        for seed in args.seeds:
            box = DefendedBox(BlackBoxRecommender(target, k=K, filter_seen=False, device="cpu"),
                              parse_output_defense(defense), seed=seed)
            data = generate_queries(box, dataset.num_items, "autoregressive", args.sequences, args.seq_len,
                                    seed=seed, progress=False)
            result, seconds, _ = fit(data, dataset, target, args.surrogate_epochs, seed)
            tops.append(ranked_lists(result.model, inputs, 10, "cpu")[1])  # unfiltered top-10
        label = {"none": "None", "random": "Random", "reverse": "Reverse"}[defense]
        arms.append(AuthorsUnitsArm(label, served, tops, f"SASRec {args.target.stem}; unfiltered box; "
                                                         f"{args.sequences} × {args.seq_len} autoregressive; "
                                                         f"surrogate trained {args.surrogate_epochs} epoch(s)"))
        emit(what="authors units arm", defense=label, seeds=len(tops))
    table = authors_units_table(arms, targets)
    print(markdown_table(table, float_format="{:.2f}"), flush=True)


def cmd_cells(args) -> None:
    """One arena cell (``arena.cells.run_cell``: one model × generator × seed, every view, one surrogate per distinct
    training set) per target, timed as the GRO stage runs it (1 torch thread), beside the SASRec-epoch yardstick.

    ``--outputs`` are the output defenses the model serves in the cell ("none" alone: a model defense's cell, as a GRO
    arm, the control or a null; "none,random,reverse,top:10,tail-resample:10": the undefended target's cell in the cpu
    profile). Prints the cell's wall and quiet seconds, its surrogates and their test NDCG@10 per (arm, view)."""
    from recsec_lib.arena.attackers import DEFAULT_VIEWS, AttackSet
    from recsec_lib.arena.cells import DatasetRef, MatrixCell, run_cell

    mirror = args.mirror or os.environ.get("RECSEC_DATA_MIRROR") or None
    ref = DatasetRef("ml-1m", str(args.data_dir), mirror)
    tick = time.perf_counter()
    dataset = ref.load()
    emit(what="dataset load", seconds=round(time.perf_counter() - tick, 2))
    views = tuple(args.views) if args.views else DEFAULT_VIEWS
    for target_path in args.targets:
        target = load_checkpoint(target_path, dataset).model
        reference_top10 = {name: ranked_lists(target, dataset.split(name)[0], 10, "cpu")[0] for name in ("valid", "test")}
        for sequences, epochs in zip(args.sequences, args.surrogate_epochs):
            attack = AttackSet(generators=("autoregressive",), views=views, seeds=(args.seed,), num_sequences=sequences,
                               seq_len=args.seq_len, k=K, arch="sasrec",
                               surrogate=SurrogateSettings(epochs=epochs, seed=args.seed), box_filter_seen=True)
            outputs = tuple((spec, spec) for spec in args.outputs)
            cell = MatrixCell("timed", str(target_path), ref, outputs, "autoregressive", args.seed, attack,
                              reference_top10, True, "cpu")
            before = reference_seconds(target, dataset)
            tick = time.perf_counter()
            result = run_cell(cell)
            wall = time.perf_counter() - tick
            reference = (before + reference_seconds(target, dataset)) / 2
            emit(what="cell", target=str(target_path), sequences=sequences, seq_len=args.seq_len,
                 surrogate_epochs=epochs, outputs=list(args.outputs), views=list(views), wall_seconds=round(wall, 1),
                 reference_epoch_seconds=round(reference, 1), wall_seconds_quiet=quiet(wall, reference),
                 surrogates=len(result.surrogates),
                 surrogate_seconds=[s["seconds"] for s in result.surrogates],
                 surrogate_epochs_run=[s["epochs_run"] for s in result.surrogates],
                 test_ndcg10={f"{label} · {view}": round(float(f["test_ndcg"].mean()), 4)
                              for (label, view), f in result.figures.items()})


def cmd_nulls(args) -> None:
    """The matching rule (``gro.null``) on a published run: each GRO arm's served validation NDCG@10 against the
    epochs of the undefended SASRec training's history (which epochs' snapshots would be its null)."""
    from recsec_lib.gro.null import candidates_from_history, epochs_to_snapshot, match_null

    metrics = json.loads(Path(args.metrics).read_text())
    history = metrics["train"]["models"][args.model]["history"]
    candidates = candidates_from_history(history, f"{args.model} epoch")
    arms = [r for r in metrics["gro"]["defenses"] if r["attacker"] == "naive" and r["family"] in ("gro", "gro-control")]
    for row in arms:
        match = match_null(row["target_valid_ndcg10"], candidates, args.tolerance)
        emit(what="null", arm=row["arm"], valid_ndcg10=round(row["target_valid_ndcg10"], 4), matched=match.matched,
             words=match.describe())
    emit(what="epochs to snapshot", epochs=epochs_to_snapshot(history, [r["target_valid_ndcg10"] for r in arms],
                                                               args.tolerance))


def curve_cost(gro_epoch: float, query: float, surrogate_epoch: float, score: float, *, lambdas: int, rules: int,
               control_seeds: int, gro_epochs: int, surrogate_epochs: int, seeds: int, nulls: int,
               other_arms: int, large_factor: int, large_arms: int, large_seeds: int) -> dict:
    """Quiet 2-core seconds of GRO's curve. Unit costs are per 500 x 100 attack; a budget ``large_factor`` times as
    large queries that many times more and trains as many epochs as the cpu budget's, each large_factor times
    longer (the GRO stage's default since results/gro-budget-epochs/ found equal steps under-trained the copy)."""
    targets = lambdas * rules + control_seeds
    surrogate = query + surrogate_epochs * surrogate_epoch + score  # one attack seed at the cpu budget
    large = large_factor * (query + surrogate_epochs * surrogate_epoch) + score
    attacked = targets + nulls + 1 + other_arms  # + None
    parts = {"GRO fine-tuning": targets * gro_epochs * gro_epoch,
             "attacks at the cpu budget": attacked * seeds * surrogate,
             "attacks at the large budget": large_arms * large_seeds * large}
    return {**{k: round(v) for k, v in parts.items()}, "total": round(sum(parts.values())),
            "targets": targets, "attacked arms": attacked, "seconds per surrogate": round(surrogate, 1),
            "seconds per large surrogate": round(large, 1)}


def cmd_plan(args) -> None:
    """The curve's cost in the published quiet run's seconds, for the given unit costs and counts."""
    figures = curve_cost(args.gro_epoch_seconds, args.query_seconds, args.surrogate_epoch_seconds, args.score_seconds,
                         lambdas=args.lambdas, rules=args.rules, control_seeds=args.control_seeds,
                         gro_epochs=args.gro_epochs, surrogate_epochs=args.surrogate_epochs, seeds=args.seeds,
                         nulls=args.nulls, other_arms=args.other_arms, large_factor=args.large_factor,
                         large_arms=args.large_arms, large_seeds=args.large_seeds)
    emit(what="plan", **{k.replace("-", "_"): v for k, v in vars(args).items() if k not in ("func",)
                         if isinstance(v, (int, float, str))}, **figures)


def ints(text: str) -> list[int]:
    return [int(v) for v in text.split(",") if v.strip()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", type=Path, default=Path("data"))
    parser.add_argument("--mirror", default=None, help="default: $RECSEC_DATA_MIRROR")
    parser.add_argument("--work-dir", type=Path, default=Path("/work/ckpt/grocurve"))
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=42)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("snapshots")
    p.add_argument("--epochs", type=int, default=8)
    p.add_argument("--snapshot-epochs", type=ints, default=[2, 3, 4, 6, 8])
    p.add_argument("--out", type=Path, default=Path("/work/ckpt/grocurve/sasrec_early.pt"))
    p.add_argument("--compare-with", default="/work/ckpt/sasrec_ml1m.pt",
                   help="a checkpoint of the same recipe whose history's validation NDCG@10 is shown beside")
    p = sub.add_parser("surrogate-epochs")
    p.add_argument("--target", type=Path, required=True)
    p.add_argument("--epochs", type=ints, default=[10, 20, 30])
    p.add_argument("--sequences", type=int, default=500)
    p.add_argument("--seq-len", type=int, default=100)
    p.add_argument("--seeds", type=ints, default=[42])
    p = sub.add_parser("budget")
    p.add_argument("--targets", type=lambda t: [Path(v) for v in t.split(",")], required=True)
    p.add_argument("--sequences", type=ints, default=[500, 2000])
    p.add_argument("--seq-len", type=int, default=100)
    p.add_argument("--surrogate-epochs", type=int, default=20)
    p.add_argument("--equal-steps", action="store_true",
                   help="larger budgets train proportionally fewer epochs (the same gradient steps as the smallest)")
    p.add_argument("--seeds", type=ints, default=[42])
    p = sub.add_parser("gro-epoch")
    p.add_argument("--target", type=Path, required=True)
    p.add_argument("--arms", type=lambda t: t.split(","), default=["control", "keep", "lowest_index"])
    p.add_argument("--lam", type=float, default=1.0)
    p.add_argument("--gro-epochs", type=int, default=1)
    p.add_argument("--positions", type=int, default=10)
    p.add_argument("--max-batches", type=int, default=0, help="time this many batches of each epoch (0 = all)")
    p.add_argument("--windows", default="all", help="training rows when the checkpoint has no training record")
    p = sub.add_parser("authors", help="None / Random / Reverse in the authors' units, beside their rows")
    p.add_argument("--target", type=Path, required=True)
    p.add_argument("--defenses", type=lambda t: t.split(","), default=["none", "random", "reverse"])
    p.add_argument("--sequences", type=int, default=500)
    p.add_argument("--seq-len", type=int, default=100)
    p.add_argument("--surrogate-epochs", type=int, default=40)
    p.add_argument("--seeds", type=ints, default=[42])
    p = sub.add_parser("cells", help="one arena cell per target, timed as the GRO stage runs it")
    p.add_argument("--targets", type=lambda t: [Path(v) for v in t.split(",")], required=True)
    p.add_argument("--outputs", type=lambda t: t.split(","), default=["none"])
    p.add_argument("--views", type=lambda t: t.split(","), default=None, help="default: the arena's four views")
    p.add_argument("--sequences", type=ints, default=[500], help="budgets, each with its --surrogate-epochs")
    p.add_argument("--surrogate-epochs", type=ints, default=[20])
    p.add_argument("--seq-len", type=int, default=100)
    p = sub.add_parser("nulls", help="the matching rule on a published run's GRO arms and SASRec history")
    p.add_argument("--metrics", default="results/metrics.json")
    p.add_argument("--model", default="sasrec")
    p.add_argument("--tolerance", type=float, default=0.05)
    p = sub.add_parser("analyze", help="the budget-bound check on the budget runs' logs")
    p.add_argument("--logs", type=lambda t: t.split(","), required=True)
    p.add_argument("--min-target-gap", type=float, default=0.10)
    p.add_argument("--min-elasticity", type=float, default=0.5)
    p.add_argument("--replicates", type=int, default=1000)
    p = sub.add_parser("plan", help="the curve's cost from unit costs (quiet seconds) and counts")
    p.add_argument("--gro-epoch-seconds", type=float, default=57.3, help="published cpu run: 57.2, 56.7, 58.1 s")
    p.add_argument("--query-seconds", type=float, default=4.2, help="500 x 100 autoregressive queries")
    p.add_argument("--surrogate-epoch-seconds", type=float, default=1.2, help="one surrogate epoch at 500 x 100")
    p.add_argument("--score-seconds", type=float, default=3.0, help="scoring a surrogate on valid and test users")
    p.add_argument("--lambdas", type=int, default=4)
    p.add_argument("--rules", type=int, default=2)
    p.add_argument("--control-seeds", type=int, default=2)
    p.add_argument("--gro-epochs", type=int, default=2)
    p.add_argument("--surrogate-epochs", type=int, default=20)
    p.add_argument("--seeds", type=int, default=3, help="attack seeds per arm at the cpu budget")
    p.add_argument("--nulls", type=int, default=6, help="distinct snapshots matched to the points")
    p.add_argument("--other-arms", type=int, default=0, help="output-defense arms attacked beside (the arena's)")
    p.add_argument("--large-factor", type=int, default=4)
    p.add_argument("--large-arms", type=int, default=6, help="arms attacked at the large budget")
    p.add_argument("--large-seeds", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    {"snapshots": cmd_snapshots, "surrogate-epochs": cmd_surrogate_epochs, "budget": cmd_budget,
     "gro-epoch": cmd_gro_epoch, "analyze": cmd_analyze, "nulls": cmd_nulls, "authors": cmd_authors,
     "plan": cmd_plan, "cells": cmd_cells}[args.command](args)


if __name__ == "__main__":
    main()
