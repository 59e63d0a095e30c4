"""Attack stage: extract the trained target through its black box, at several budgets.

Reads the trained target ``<run>/train/<target_model>.pt`` (and, for the
architecture table, any other ``<run>/train/<name>.pt`` listed in
``table_targets``) and writes into ``<run>/attack/``:

* ``queries_<generator>_<budget>.npz`` — the synthetic sequences and the lists
  the box returned at every prefix (``AttackData``): distillation can be
  rerun from them without querying again;
* ``querylog_<generator>_<budget>.npz`` — the box's query log of that attack
  (``QueryLog``: account, time order, query, answer), read by the SEAT stage;
* ``surrogate_<target>_<arch>_<generator>_<budget>.pt`` — surrogate checkpoints;
* ``budget_curve.csv`` / ``budget_curve.png`` — Agr@1/Agr@10 against the
  budget (in sequences) for each generator;
* ``architectures.csv`` / ``architectures.md`` — target × surrogate table at
  the main budget (autoregressive);
* ``training_history.csv`` — every surrogate's epochs (loss, held-out Agr@10);
* ``progress/`` — one small JSON per finished query set and surrogate, so that an
  interrupted stage (``run_all.sh --resume``) continues where it stopped: a part
  is reused only when its record names the same settings, seed, device and
  target checkpoint (``--force`` ignores the records);
* ``metrics.json``.

Budgets are counted in synthetic sequences of ``seq_len`` items; each costs
``seq_len`` queries (every prefix is queried, for both generators). The main
budget is the largest one; headline keys are named after it (``_5k`` for
5,000 sequences, ``_1k`` for 1,000, ``_500`` ...) and it is recorded in
``attack_budget_sequences``.

Surrogates train for a fixed number of epochs with their seed (early stopping on the attacker's own held-out
synthetic Agr@10 is deterministic too), never against a wall clock, so a rerun gives the same figures and a
larger budget never gets less training than a smaller one.

Profiles: "smoke" (synthetic data, seconds); "cpu" (ML-1M on 2 cores: budgets of 250/500/1,000 sequences of
the paper's length 200, 100-item lists, SASRec surrogate (plus a MeanEmbedding one at the main budget), 20
epochs each; a fifth of the paper's budget). The length matters more than the count: on ML-1M, 500 sequences
of 200 (Agr@10 .56) beat 1,000 of 50 (.38), because SASRec's positions beyond 50 are never trained otherwise;
"full" (the paper: 500/1k/3k/5k sequences of length 200, surrogates of every architecture, at most 100
epochs with early stopping, for a GPU).
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import pandas as pd

from recsec_lib.common import plots
from recsec_lib.common.settings import SettingsBase

from recsec_lib.study import runs
from recsec_lib.attack.generators import GENERATORS
from recsec_lib.attack.queries import AttackData, generate_queries
from recsec_lib.attack.blackbox import BlackBoxRecommender, measure_throughput
from recsec_lib.defenses.output import DefendedBox, parse_output_defense
from recsec_lib.data.cache import sha256_file
from recsec_lib.attack.agreement import evaluate_extraction
from recsec_lib.study.stages.context import StudyContext, seed_everything
from recsec_lib.attack.surrogate import SurrogateSettings, fit_surrogate
from recsec_lib.common.files import atomic_path, write_text_atomic
from recsec_lib.common.tables import markdown_table

STAGE = "attack"


@dataclass(frozen=True)
class Settings(SettingsBase):
    target_model: str = "sasrec"  # reads <run>/train/<target_model>.pt
    surrogate_models: tuple[str, ...] = ("sasrec", "narm", "bert4rec")  # architectures tried at the main budget
    table_targets: tuple[str, ...] = ("sasrec", "narm", "bert4rec")  # other targets for the table, if trained
    generators: tuple[str, ...] = ("autoregressive", "random")
    budgets: tuple[int, ...] = (500, 1000, 3000, 5000)  # synthetic sequences; the largest is the main budget
    seq_len: int = 200  # items per synthetic sequence = queries per sequence
    k: int = 100  # length of the returned lists
    epochs: int = 100  # surrogate epochs (early stopping on the attacker's held-out synthetic Agr@10 may end sooner)
    batch_size: int = 16  # synthetic sequences per surrogate step
    lr: float = 1e-3
    patience: int = 5
    defense: str = "none"  # output defense in front of the box, by name (none, random, reverse, top:10, ...)
    throughput_queries: int = 4096  # queries timed for blackbox_queries_per_second

    PROFILES = {
        "smoke": {"surrogate_models": ("sasrec", "meanemb"), "table_targets": ("sasrec",), "budgets": (20, 40),
                  "seq_len": 8, "k": 10, "epochs": 3, "batch_size": 16, "patience": 0, "throughput_queries": 256},
        "cpu": {"surrogate_models": ("sasrec", "meanemb"), "table_targets": ("sasrec",), "budgets": (250, 500, 1000),
                "seq_len": 200, "epochs": 20},
        "full": {},
    }

    def __post_init__(self) -> None:
        bad = [g for g in self.generators if g not in GENERATORS]
        if bad or not self.generators:
            raise ValueError(f"attack setting 'generators' must be among {GENERATORS.names()}, got {self.generators}")
        if not self.budgets or min(self.budgets) <= 0:
            raise ValueError(f"attack setting 'budgets' must be positive sequence counts, got {self.budgets}")
        for name in ("seq_len", "k", "epochs", "batch_size"):
            if getattr(self, name) <= 0:
                raise ValueError(f"attack setting '{name}' must be positive, got {getattr(self, name)}")
        if not self.surrogate_models:
            raise ValueError("attack setting 'surrogate_models' needs at least one architecture")

    @property
    def main_budget(self) -> int:
        return max(self.budgets)

    def surrogate_settings(self, seed: int) -> SurrogateSettings:
        return SurrogateSettings(epochs=self.epochs, batch_size=self.batch_size, lr=self.lr, patience=self.patience,
                                 seed=seed)


ARCHITECTURE_COLUMNS = ("target", "surrogate", "budget_sequences", "agr1", "agr10", "surrogate_test_hr10",
                        "surrogate_test_ndcg10", "target_test_ndcg10")  # the markdown table's columns


def budget_label(sequences: int) -> str:
    """5000 -> "5k", 1000 -> "1k", 500 -> "500": the suffix of headline keys."""
    return f"{sequences // 1000}k" if sequences % 1000 == 0 else str(sequences)


def queries_file(generator: str, budget: int, prefix: str = "") -> str:
    """Name of the saved queries of one attack (read again by the SEAT stage): queries_autoregressive_1k.npz."""
    return f"{prefix}queries_{generator}_{budget_label(budget)}.npz"


def surrogate_file(target: str, arch: str, generator: str, budget: int) -> str:
    """Name of a surrogate checkpoint (read again by the report): surrogate_sasrec_sasrec_autoregressive_1k.pt."""
    return f"surrogate_{target}_{arch}_{generator}_{budget_label(budget)}.pt"


def target_path(run_dir: Path, name: str) -> Path:
    return Path(run_dir) / "train" / f"{name}.pt"


def run(ctx: StudyContext, settings: Settings) -> dict:
    """Attack the trained target at every budget and generator; see the module docstring."""
    from recsec_lib.recommend.checkpoints import load_checkpoint, save_checkpoint
    from recsec_lib.models.registry import build_model

    seed_everything(ctx.seed)
    out = ctx.stage_dir(STAGE)
    device = ctx.torch_device()
    with runs.stage_timer() as timer:
        dataset = ctx.load_dataset()
        main_path = target_path(ctx.run_dir, settings.target_model)
        if not main_path.is_file():
            raise FileNotFoundError(f"target checkpoint {main_path} does not exist: run the train stage "
                                    f"with model {settings.target_model!r} first")
        targets = {settings.target_model: load_checkpoint(main_path, dataset=dataset, device=device).model}
        for name in settings.table_targets:
            if name not in targets and target_path(ctx.run_dir, name).is_file():
                targets[name] = load_checkpoint(target_path(ctx.run_dir, name), dataset=dataset, device=device).model
        target = targets[settings.target_model]
        filter_seen = settings.k + target.max_len <= dataset.num_items
        surrogate_settings = settings.surrogate_settings(ctx.seed)
        history_rows: list[dict] = []

        fingerprints = {name: part_fingerprint(settings, ctx, target_path(ctx.run_dir, name)) for name in targets}
        resumed: list[str] = []

        def attack(target_name: str, generator: str, budget: int, archs: tuple[str, ...]) -> list[dict]:
            """Query ``target_name`` with one generator and budget, train one surrogate per arch, evaluate.

            Parts finished by an earlier, interrupted execution of this stage (same fingerprint) are reused.
            """
            victim = targets[target_name]
            fingerprint = fingerprints[target_name]
            tag = f"{generator}_{budget_label(budget)}"
            prefix = "" if target_name == settings.target_model else f"{target_name}_"
            queries_path = out / queries_file(generator, budget, prefix)
            queries_part = f"{prefix}queries_{tag}"
            done = {arch: read_part(out, f"surrogate_{target_name}_{arch}_{tag}", fingerprint, ctx.force)
                    for arch in archs}
            data, query_seconds = None, None
            if any(done[arch] is None for arch in archs):
                record = read_part(out, queries_part, fingerprint, ctx.force)
                if record is not None and queries_path.is_file():
                    data, query_seconds = AttackData.load(queries_path), record["query_seconds"]
                    resumed.append(queries_part)
                else:
                    box = BlackBoxRecommender(victim, k=settings.k, filter_seen=filter_seen, device=device)
                    if settings.defense != "none":  # an output defense in front of the box (defenses.output)
                        box = DefendedBox(box, parse_output_defense(settings.defense), seed=ctx.seed)
                    started = time.perf_counter()
                    data = generate_queries(box, dataset.num_items, generator, budget, settings.seq_len,
                                            seed=ctx.seed)
                    query_seconds = time.perf_counter() - started
                    data.save(queries_path)
                    box.log.save(out / f"{prefix}querylog_{tag}.npz")
                    write_part(out, queries_part, fingerprint, {"query_seconds": query_seconds})
            rows = []
            for arch in archs:
                part = f"surrogate_{target_name}_{arch}_{tag}"
                if done[arch] is not None:
                    history_rows.extend(done[arch]["history"])
                    rows.append(done[arch]["row"])
                    resumed.append(part)
                    print(f"attack {target_name} <- {arch} ({generator}, {budget} sequences): reused the result "
                          f"of the interrupted execution (progress/{part}.json)")
                    continue
                seed_everything(ctx.seed)
                model = build_model(arch, num_items=dataset.num_items, max_len=victim.max_len)
                started = time.perf_counter()
                result = fit_surrogate(data, model, surrogate_settings, device=device)
                train_seconds = time.perf_counter() - started
                figures = evaluate_extraction(victim, result.model, dataset, device=device)
                save_checkpoint(out / surrogate_file(target_name, arch, generator, budget), result.model, arch, dataset,
                                metrics=figures)
                history = [{"target": target_name, "surrogate": arch, "generator": generator,
                            "budget_sequences": budget, **entry} for entry in result.history]
                history_rows.extend(history)
                rows.append({
                    "target": target_name, "surrogate": arch, "generator": generator,
                    "budget_sequences": budget, "budget_queries": data.num_queries, "seq_len": settings.seq_len,
                    "agr1": figures["agr@1"], "agr10": figures["agr@10"],
                    "surrogate_test_hr10": figures["surrogate_hr@10"],
                    "surrogate_test_ndcg10": figures["surrogate_ndcg@10"],
                    "target_test_hr10": figures["target_hr@10"], "target_test_ndcg10": figures["target_ndcg@10"],
                    "best_epoch": result.best_epoch, "epochs_run": len(result.history), "stopped": result.stopped,
                    "valid_synthetic_agr10": result.best_valid_agr10,
                    "query_seconds": round(query_seconds, 2), "train_seconds": round(train_seconds, 2),
                })
                write_part(out, part, fingerprint, {"row": rows[-1], "history": history})
                print(f"attack {target_name} <- {arch} ({generator}, {budget} sequences): "
                      f"Agr@1 {figures['agr@1']:.3f}  Agr@10 {figures['agr@10']:.3f}  "
                      f"surrogate NDCG@10 {figures['surrogate_ndcg@10']:.4f}")
            return rows

        # 1. The budget curve: the target's own architecture as surrogate, every generator and budget.
        curve: list[dict] = []
        table: list[dict] = []
        for generator in settings.generators:
            for budget in sorted(settings.budgets):
                archs = (settings.target_model,)
                if generator == "autoregressive" and budget == settings.main_budget:
                    # the other surrogate architectures at the main budget share the same queries
                    archs += tuple(a for a in settings.surrogate_models if a != settings.target_model)
                rows = attack(settings.target_model, generator, budget, archs)
                curve.extend(r for r in rows if r["surrogate"] == settings.target_model)
                if generator == "autoregressive" and budget == settings.main_budget:
                    table.extend(rows)
        # 2. The rest of the architecture table: other trained targets, main budget, autoregressive.
        for name in targets:
            if name != settings.target_model:
                table.extend(attack(name, "autoregressive", settings.main_budget, settings.surrogate_models))

        qps = measure_throughput(target, num_queries=settings.throughput_queries, k=settings.k, seed=ctx.seed,
                                 filter_seen=filter_seen)
        curve_frame, table_frame = pd.DataFrame(curve), pd.DataFrame(table)
        _write_csv(curve_frame, out / "budget_curve.csv")
        _write_csv(table_frame, out / "architectures.csv")
        _write_csv(pd.DataFrame(history_rows), out / "training_history.csv")
        shown = table_frame if table_frame.empty else table_frame[list(ARCHITECTURE_COLUMNS)]
        _write_text(out / "architectures.md", markdown_table(shown, float_format="{:.4f}"))
        plot_budget_curve(curve_frame, out / "budget_curve.png")

    label = budget_label(settings.main_budget)
    headline = {"attack_budget_sequences": settings.main_budget, "attack_seq_len": settings.seq_len,
                "blackbox_queries_per_second": round(qps, 1)}
    for row in curve:
        if row["budget_sequences"] == settings.main_budget:
            headline[f"attack_agr10_{row['generator']}_{label}"] = row["agr10"]
            headline[f"attack_agr1_{row['generator']}_{label}"] = row["agr1"]
            headline[f"surrogate_test_ndcg10_{row['generator']}_{label}"] = row["surrogate_test_ndcg10"]
    metrics = {
        "settings": asdict(settings),
        "profile": ctx.profile,
        "dataset": dataset.name,
        "target_checkpoint": str(main_path),
        "box_filter_seen": filter_seen,
        "budget_note": (f"budgets are synthetic sequences of {settings.seq_len} items, each costing "
                        f"{settings.seq_len} queries (every prefix is queried, for both generators); "
                        f"main budget {settings.main_budget} sequences = "
                        f"{settings.main_budget * settings.seq_len} queries"),
        "attack_success_note": ("no separate 'attack success rate': the seed never defined one; the share of "
                                "test users whose top-1 recommendation the surrogate reproduces is agr@1"),
        "budget_curve": curve,
        "architectures": table,
        "resumed_parts": resumed,
        "headline": headline,
        **timer,
    }
    runs.write_stage_metrics(ctx.run_dir, STAGE, metrics, headline=headline)
    return metrics


def part_fingerprint(settings: Settings, ctx: StudyContext, target_checkpoint: Path) -> str:
    """What a finished part of this stage depends on: settings, seed, device and the target's weights."""
    payload = {"settings": asdict(settings), "seed": ctx.seed, "device": ctx.device,
               "target_sha256": sha256_file(target_checkpoint)}
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:20]


def read_part(out: Path, name: str, fingerprint: str, force: bool) -> dict | None:
    """The record of a part finished earlier with this fingerprint, or None (also when forced or unreadable)."""
    path = out / "progress" / f"{name}.json"
    if force or not path.is_file():
        return None
    try:
        record = runs.read_json(path)
    except ValueError:
        return None  # a damaged record only costs recomputing its part
    return record if isinstance(record, dict) and record.get("fingerprint") == fingerprint else None


def write_part(out: Path, name: str, fingerprint: str, values: dict) -> None:
    """Record (atomically) that a part of this stage finished."""
    runs.write_json_atomic(out / "progress" / f"{name}.json", {"fingerprint": fingerprint, **values})


def plot_budget_curve(curve: pd.DataFrame, path: Path) -> None:
    """Agr@10 (solid) and Agr@1 (dashed) against the budget in sequences, one colour per generator."""
    plots.save_png(plots.budget_curve(curve), path)


def _write_csv(frame: pd.DataFrame, path: Path) -> None:
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False)


_write_text = write_text_atomic
