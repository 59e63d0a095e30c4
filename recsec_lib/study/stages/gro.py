"""GRO stage: train GRO targets (both zero-gradient rules) and the λ = 0 control, then put every defense in the
arena: each arm (None, the output defenses, the control, the GRO arms, GRO + tail) faces the same attackers.

Reads the undefended target ``<run>/train/<target_model>.pt`` and writes into ``<run>/gro/``:

* ``gro_lam0.pt`` — the honest control: λ = 0 through the same loop (same optimiser, student, epochs and
  kept-epoch rule), against which every GRO arm is measured;
* ``gro_lam<λ>.pt`` / ``gro_lowestindex_lam<λ>.pt`` — one GRO target per λ and zero-gradient rule: "keep"
  (a row whose student gradient is exactly 0 keeps its item) and "lowest_index" (the authors' code: such
  rows go to item 1); ``state/`` holds resumable training states;
* ``matrix.csv`` — one row per (arm, attacker view, generator): utility, surrogate figures, falls with 95%
  intervals (bootstrap over test users and attack seeds), verdicts; ``cells/`` the finished cells (an
  interrupted stage reruns only the missing ones);
* ``frontier.csv`` / ``frontier.md`` — each arm at its strongest attacker, per measure;
* ``gro_arms.csv`` / ``gro_arms.md`` — None, the control and the GRO arms, every attacker;
* ``frontier.png`` — utility kept against the fall at the strongest attacker;
* ``metrics.json`` — all of the above plus settings, timings, the chosen λ and the surrogates trained.

The attacker set (``arena.attackers``): every generator in ``generators`` × every view in ``views`` (naive,
top-10, knowing, drop-promoted) × ``attack_seeds`` seeds, at ``attack_sequences`` × ``attack_seq_len``
queries, with surrogates of ``surrogate_epochs`` epochs. Falls are measured against the strongest attacker
of the reference's model (``arena.matrix``). λ is chosen per rule on VALIDATION figures only
(``gro.defenses.choose_best_lambda``); "no protective λ" names the condition that failed.

``recsec defend`` runs the same computation (``defend``) outside a run folder, so the two print the same
rows for the same settings.
"""

from __future__ import annotations

import shutil
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import pandas as pd

from recsec_lib.arena.arms import UNDEFENDED, Arm, none_arm, output_arms
from recsec_lib.arena.attackers import DEFAULT_VIEWS, AttackSet
from recsec_lib.arena.cell_cache import CellCache, cached_runner
from recsec_lib.arena.cells import DatasetRef, serial
from recsec_lib.arena.figures import plot_frontier
from recsec_lib.arena.matrix import MatrixResult, evaluate
from recsec_lib.arena.model_defenses import MODEL_DEFENSES, ModelDefense
from recsec_lib.arena.model_defenses.gro import CONTROL_LABEL
from recsec_lib.arena.tables import FrontierTarget, best_frontier_arm, frontier_table, save_matrix_tables
from recsec_lib.attack.generators import GENERATORS
from recsec_lib.attack.surrogate import SurrogateSettings
from recsec_lib.attack.views import VIEWS
from recsec_lib.common.settings import SettingsBase
from recsec_lib.defenses.output import parse_output_defense
from recsec_lib.gro.defenses import choose_best_lambda
from recsec_lib.gro.loss import ZERO_GRADIENT_RULES
from recsec_lib.gro.training import KEPT_EPOCHS, GROConfig, fresh_like, time_one_epoch
from recsec_lib.recommend.checkpoints import load_checkpoint, read_checkpoint_payload
from recsec_lib.recommend.sequences import training_windows
from recsec_lib.recommend.training import stored_trajectory
from recsec_lib.study import runs
from recsec_lib.study.stages.context import StudyContext

STAGE = "gro"


@dataclass(frozen=True)
class Settings(SettingsBase):
    target_model: str = "sasrec"  # reads <run>/train/<target_model>.pt; student and surrogate share its architecture
    method: str = "gro"  # gro (the paper) | seed-variant (the seed's loss, an ablation)
    lambdas: tuple[float, ...] = (0.001, 0.01, 0.1, 1.0, 10.0)  # λ > 0 trained per rule (λ = 0 is the control)
    zero_gradient_rules: tuple[str, ...] = ZERO_GRADIENT_RULES  # keep | lowest_index (the authors' code)
    epochs: int = 200  # GRO epochs (fine-tuning epochs when from_scratch is False)
    from_scratch: bool = True  # train the defended target from scratch (the authors' ML-1M setting)
    batch_size: int = 128
    lr: float = 1e-3
    k: int = 100  # ranked list length (student's lists, black box, attack)
    positions_per_sequence: int = 0  # prefixes per sequence for the student and swap loss; 0 = all
    max_batches_per_epoch: int = 0  # cap on GRO batches per epoch (a partial epoch); 0 = whole epochs
    student_warmup_batches: int = 0  # batches in which only the student learns before GRO starts; 0 = none
    patience: int = 10  # GRO epochs without a better validation NDCG@10 before stopping; 0 = run every epoch
    kept_epoch: str = "best"  # best: the best-validating epoch's target; last: the last one (the authors' code)
    generators: tuple[str, ...] = ("autoregressive", "random")  # registered query generators every arm faces
    views: tuple[str, ...] = DEFAULT_VIEWS  # registered attacker views every arm faces
    attack_seeds: int = 3  # attack seeds per generator (queries and surrogate initialisation)
    attack_sequences: int = 5000  # attack budget in synthetic sequences
    attack_seq_len: int = 200  # each sequence costs this many queries
    surrogate_epochs: int = 40  # epochs of every surrogate (fixed: the same cell twice gives the same numbers)
    output_defenses: tuple[str, ...] = ("random", "reverse", "top:10", "top:20", "top:50", "tail-shuffle:10",
                                        "tail-reverse:10", "tail-resample:10")  # registered, by name
    combinations: tuple[str, ...] = ("tail-shuffle:10", "tail-resample:10")  # output defenses put on GRO arms
    combination_lambdas: tuple[float, ...] = (1.0,)  # the GRO λ that get the combinations
    combination_rules: tuple[str, ...] = ZERO_GRADIENT_RULES  # the zero-gradient rules that get the combinations
    bootstrap_replicates: int = 1000  # replicates of every 95% interval
    min_retention: float = 0.95  # the utility floor for choosing λ (on validation)
    cost_batches: int = 12  # batches timed for the GRO / undefended epoch-cost ratio

    PROFILES = {
        "smoke": {"lambdas": (1.0,), "epochs": 2, "from_scratch": False, "batch_size": 64, "k": 10,
                  "generators": ("autoregressive",), "views": ("naive", "top-10", "knowing", "drop-promoted"),
                  "attack_seeds": 2, "attack_sequences": 40, "attack_seq_len": 10, "surrogate_epochs": 3,
                  "patience": 2, "output_defenses": ("random", "top:5", "tail-shuffle:5"),
                  "combinations": ("tail-shuffle:5",), "bootstrap_replicates": 200, "cost_batches": 2},
        # ML-1M on 2 cores: the pretrained SASRec fine-tuned for one epoch per arm, student and swap on the last 10
        # positions; 500 x 100 autoregressive queries per attack (a tenth of the paper's 5,000 x 200).
        "cpu": {"lambdas": (1.0,), "epochs": 1, "from_scratch": False, "positions_per_sequence": 10,
                "generators": ("autoregressive",), "attack_sequences": 500, "attack_seq_len": 100,
                "surrogate_epochs": 20, "output_defenses": ("random", "reverse", "top:10", "tail-resample:10"),
                "combinations": (), "bootstrap_replicates": 500},
        "full": {},
    }

    def __post_init__(self) -> None:
        for name in ("k", "epochs", "attack_sequences", "attack_seq_len", "surrogate_epochs", "batch_size"):
            if getattr(self, name) <= 0:
                raise ValueError(f"parameter {name!r} must be positive, got {getattr(self, name)}")
        if not self.lambdas or any(lam < 0 for lam in self.lambdas):
            raise ValueError(f"parameter 'lambdas' needs one or more values >= 0, got {self.lambdas}")
        for rule in (*self.zero_gradient_rules, *self.combination_rules):
            if rule not in ZERO_GRADIENT_RULES:
                raise ValueError(f"parameter 'zero_gradient_rules' takes {ZERO_GRADIENT_RULES}, got {rule!r}")
        if self.kept_epoch not in KEPT_EPOCHS:
            raise ValueError(f"parameter 'kept_epoch' must be one of {KEPT_EPOCHS}, got {self.kept_epoch!r}")
        if self.attack_seeds < 1 or not self.generators or not self.views or not self.zero_gradient_rules:
            raise ValueError("parameters 'attack_seeds', 'generators', 'views' and 'zero_gradient_rules' need "
                             ">= 1 value")
        for name in self.generators:
            GENERATORS.get(name)  # an unknown name is an error listing the registered ones
        for name in self.views:
            VIEWS.get(name)
        for spec in (*self.output_defenses, *self.combinations):
            parse_output_defense(spec).served_length(self.k)  # unknown, malformed or too long for k: an error

    def gro_config(self, lam: float, seed: int, rule: str = "keep") -> GROConfig:
        return GROConfig(method=self.method, lam=lam, epochs=self.epochs, batch_size=self.batch_size, lr=self.lr,
                         k=self.k, positions_per_sequence=self.positions_per_sequence,
                         max_batches_per_epoch=self.max_batches_per_epoch,
                         student_warmup_batches=self.student_warmup_batches, patience=self.patience,
                         zero_gradient_rule=rule, kept_epoch=self.kept_epoch, seed=seed)

    def attack_set(self, seed: int, box_filter_seen: bool) -> AttackSet:
        surrogate = SurrogateSettings(epochs=self.surrogate_epochs, seed=seed)
        return AttackSet(generators=self.generators, views=self.views,
                         seeds=tuple(seed + i for i in range(self.attack_seeds)),
                         num_sequences=self.attack_sequences, seq_len=self.attack_seq_len, k=self.k,
                         arch=self.target_model, surrogate=surrogate, box_filter_seen=box_filter_seen)

    def model_defenses(self, seed: int) -> list[ModelDefense]:
        """The λ = 0 control first, then one GRO target per rule and λ > 0 (registered model defenses)."""
        defenses = [MODEL_DEFENSES.build("gro-control", config=self.gro_config(0.0, seed),
                                         from_scratch=self.from_scratch)]
        for rule in self.zero_gradient_rules:
            for lam in self.lambdas:
                if lam > 0:
                    defenses.append(MODEL_DEFENSES.build("gro", config=self.gro_config(lam, seed, rule),
                                                         from_scratch=self.from_scratch))
        return defenses


def _say(message: str) -> None:
    """Stage progress, one line per step (shown in the notebook and in logs)."""
    print(f"gro: {message}", flush=True)


@dataclass
class Defended:
    """What ``defend`` computed: the matrix and everything the stage's metrics and headline are read from."""

    matrix: MatrixResult
    arms: list[Arm]
    histories: dict[str, list[dict]] = field(default_factory=dict)
    trained: dict[str, dict] = field(default_factory=dict)
    cost: dict[str, float] = field(default_factory=dict)
    box_filter_seen: bool = True
    windows: str = "all"


def build_arms(settings: Settings, defenses: list[ModelDefense]) -> list[Arm]:
    """The arms in table order: None, the output defenses, the control, the GRO arms, GRO + output defense."""
    arms = [none_arm(), *output_arms(settings.output_defenses)]
    arms += [defense.arm() for defense in defenses]
    for defense in defenses:
        config = getattr(defense, "config", None)
        if defense.family != "gro" or config is None:
            continue
        if config.zero_gradient_rule in settings.combination_rules and config.lam in settings.combination_lambdas:
            arms += [defense.arm(parse_output_defense(spec)) for spec in settings.combinations]
    return arms


def train_models(settings: Settings, defenses: list[ModelDefense], undefended, dataset, rows, out: Path,
                 device) -> tuple[dict[str, Path], dict[str, list[dict]], dict[str, dict]]:
    """Train every model defense (resumable); (checkpoint by key, history by key, training info by key)."""
    checkpoints, histories, trained = {}, {}, {}
    for defense in defenses:
        _say(f"training {defense.label}")
        result = defense.train(undefended, dataset, rows, out, device)
        checkpoints[defense.key], histories[defense.key], trained[defense.key] = (result.checkpoint, result.history,
                                                                                  result.info)
    return checkpoints, histories, trained


def epoch_cost(settings: Settings, undefended, rows, histories: dict[str, list[dict]], seed: int) -> dict[str, float]:
    """Seconds per batch of the GRO loop (measured while training) against an undefended loop on the same batches.

    The student and the swap loss cover the last ``positions_per_sequence`` positions of each row (0: all), as
    in training; ``benchmarks/bench_gro.py`` alternates the two on a quiet machine.
    """
    timed = replace(settings.gro_config(1.0, seed), max_batches_per_epoch=settings.cost_batches)
    undefended_batch = time_one_epoch(undefended, fresh_like(undefended), rows,
                                      replace(timed, method="none")) / settings.cost_batches
    gro_batch = [row["seconds"] / row["batches"] for key, history in histories.items() if "λ=0" not in key
                 for row in history if row.get("batches")]
    gro_seconds = sum(gro_batch) / len(gro_batch) if gro_batch else float("nan")
    return {"gro_batch_seconds": round(gro_seconds, 4), "undefended_batch_seconds": round(undefended_batch, 4),
            "gro_epoch_cost_ratio": round(gro_seconds / undefended_batch, 3),
            "positions_covered": settings.positions_per_sequence or "all"}


def defend(out: Path, settings: Settings, dataset, dataset_ref: DatasetRef, target_checkpoint: Path, seed: int,
           device, run_cells=serial, force: bool = False) -> Defended:
    """Train the model defenses from the target, evaluate every arm against every attacker, write the tables."""
    undefended = load_checkpoint(target_checkpoint, dataset=dataset, device=device).model
    if force:
        shutil.rmtree(out / "state", ignore_errors=True)  # resumable GRO states of an earlier run
        shutil.rmtree(out / "cells", ignore_errors=True)  # finished cells of an earlier run
    # The defended targets learn from the same training rows as the undefended one (the train stage's windows).
    windows = trained_windows(target_checkpoint)
    rows = training_windows(dataset.train_sequences(), undefended.max_len + 1, windows)
    defenses = settings.model_defenses(seed)
    checkpoints, histories, trained = train_models(settings, defenses, undefended, dataset, rows, out, device)
    _say("timing the GRO loop against an undefended loop on the same batches")
    cost = epoch_cost(settings, undefended, rows, histories, seed)
    # A black box can filter seen items only when k + max_len <= num_items (tiny smoke data may not allow it).
    box_filter_seen = settings.k + undefended.max_len <= dataset.num_items
    arms = build_arms(settings, defenses)
    attack = settings.attack_set(seed, box_filter_seen)
    _say(f"the arena: {len(arms)} arms × {attack.describe()}")
    models = {UNDEFENDED: target_checkpoint, **checkpoints}
    runner = cached_runner(CellCache(out / "cells"), run_cells)
    matrix = evaluate(models, arms, dataset, dataset_ref, attack, device=device,
                      replicates=settings.bootstrap_replicates, seed=seed, with_valid=tuple(checkpoints),
                      run_cells=runner, on_cell=lambda cell, result: _say(f"cell {cell.key} done"))
    save_matrix_tables(matrix.table, out)
    plot_frontier(matrix.table, out / "frontier.png",
                  title=f"Defense frontier (upper right is better)\n{scale_sentence(settings)}")
    return Defended(matrix, arms, histories, trained, cost, box_filter_seen, windows)


def run(ctx: StudyContext, settings: Settings) -> dict:
    """Train the GRO targets, attack every arm with every attacker, write the tables, frontier plot and metrics."""
    out = ctx.stage_dir(STAGE)
    with runs.stage_timer() as timing:
        dataset = ctx.load_dataset()
        target = ctx.run_dir / "train" / f"{settings.target_model}.pt"
        dataset_ref = DatasetRef(ctx.dataset, str(ctx.data_dir), None if ctx.mirror is None else str(ctx.mirror))
        defended = defend(out, settings, dataset, dataset_ref, target, ctx.seed, ctx.torch_device(),
                          force=ctx.force)
    metrics = stage_metrics(defended, settings, ctx.profile, dataset.name)
    metrics.update(timing)
    headline = {key: metrics[key] for key in metrics["headline_keys"]}
    runs.write_stage_metrics(ctx.run_dir, STAGE, metrics, headline)
    return metrics


def stage_metrics(defended: Defended, settings: Settings, profile: str, dataset_name: str) -> dict:
    """metrics.json of the stage (and of ``recsec defend``): settings, tables, λ choices, headline keys."""
    table = defended.matrix.table
    choices = {rule: choose_best_lambda(table[(table["rule"] == rule) & (table["family"] == "gro")],
                                        settings.min_retention) for rule in settings.zero_gradient_rules}
    headline = {"none_agr10": _strongest_row(table, "None", "agr")["agr10_test"],
                "gro_control_agr10": _strongest_row(table, CONTROL_LABEL, "agr")["agr10_test"],
                "gro_control_utility_retention": _strongest_row(table, CONTROL_LABEL)["retention_test"],
                "gro_epoch_cost_ratio": defended.cost["gro_epoch_cost_ratio"]}
    for rule, choice in choices.items():
        headline.update(gro_headline(table, rule, choice))
    best = best_frontier_arm(table, FrontierTarget())
    headline.update({"defense_frontier_target_met": 1.0 if best["target_met"] else 0.0,
                     "defense_frontier_best": best["arm"] or "none keeps 99% of NDCG@10",
                     "defense_frontier_best_retention": best["retention"],
                     "defense_frontier_best_fall": best["fall"], "defense_frontier_best_fall_low": best["fall_low"],
                     "defense_frontier_best_measure": best["measure"]})
    headline = {key: value for key, value in headline.items() if value is not None and value == value}
    capped = int(table["time_capped"].sum())
    return {
        "profile": profile,
        "dataset": dataset_name,
        "scale": scale_sentence(settings),
        "settings": asdict(settings),
        "attackers": {"generators": list(settings.generators), "views": list(settings.views),
                      "seeds": settings.attack_seeds, "budget": f"{settings.attack_sequences}×{settings.attack_seq_len}",
                      "surrogate_epochs": settings.surrogate_epochs,
                      "rows_time_capped": capped},
        "lambda_choice": ("per zero-gradient rule: the largest fall of the surrogate's VALIDATION NDCG@10 whose 95% "
                          "interval is above 0, among the λ whose VALIDATION retention >= "
                          f"{settings.min_retention:.0%}; 'no protective λ' says which condition failed; test "
                          "figures reported, strongest attacker"),
        "lambda_choices": choices,
        "frontier_best": best,
        "arms": [asdict(arm) | {"output": arm.output.spec} for arm in defended.arms],
        "frontier": frontier_table(table).to_dict(orient="records"),
        "defenses": table.to_dict(orient="records"),
        "surrogates": defended.matrix.surrogates,
        "gro_histories": defended.histories,
        "gro_kept_epochs": defended.trained,
        "box_filter_seen": defended.box_filter_seen,
        "training_windows": defended.windows,
        **defended.cost,
        "artefacts": {"matrix_csv": "matrix.csv", "frontier_csv": "frontier.csv", "frontier_markdown": "frontier.md",
                      "gro_arms_csv": "gro_arms.csv", "gro_arms_markdown": "gro_arms.md", "plot": "frontier.png",
                      "cells": "cells/"},
        "headline_keys": sorted(headline),
        **headline,
    }


def _strongest_row(table: pd.DataFrame, arm: str, measure: str = "ndcg") -> pd.Series:
    """The arm's row at its strongest attacker for ``measure`` (ndcg | agr)."""
    column = "worst" if measure == "ndcg" else "worst_agr"
    return table[(table["arm"] == arm) & table[column]].iloc[0]


def gro_headline(table: pd.DataFrame, rule: str, choice: dict) -> dict:
    """Headline keys of one zero-gradient rule at its chosen λ (or, with "no protective λ", the λ shown).

    Rule "keep" keeps the historical key names (gro_*); "lowest_index" adds its name (gro_lowest_index_*).
    Protection figures are the strongest attacker's, against the λ = 0 control.
    """
    prefix = "gro" if rule == "keep" else f"gro_{rule}"
    lam = choice["lam"] if choice["lam"] is not None else choice["shown_lam"]
    out = {f"{prefix}_best_lambda": choice["lam"], f"{prefix}_protective_lambda_found": choice["lam"] is not None,
           f"{prefix}_constraint_met": choice["constraint_met"]}
    if lam is None:
        return out
    label = f"GRO {rule} λ={lam:g}"
    row, agr = _strongest_row(table, label), _strongest_row(table, label, "agr")
    out.update({f"{prefix}_reported_lambda": lam,
                f"{prefix}_utility_retention": float(row["retention_test"]),
                f"{prefix}_utility_retention_vs_none": float(row["retention_vs_none_test"]),
                f"{prefix}_surrogate_ndcg10_drop": float(row["surrogate_test_ndcg10_drop"]),
                f"{prefix}_surrogate_ndcg10_drop_low": float(row["surrogate_test_ndcg10_drop_low"]),
                f"{prefix}_surrogate_ndcg10_drop_high": float(row["surrogate_test_ndcg10_drop_high"]),
                f"{prefix}_agr10": float(agr["agr10_test"]),
                f"{prefix}_agr10_drop": float(agr["agr10_test_drop"]),
                f"{prefix}_promoted_item_share": float(row["promoted_share"]),
                f"{prefix}_verdict": row["verdict"]})
    return out


def scale_sentence(settings: Settings) -> str:
    """The scale a run measured at, for plot titles, metrics and the notebook."""
    training = ("from scratch" if settings.from_scratch else "fine-tuned") + (
        f", {settings.max_batches_per_epoch} batches/epoch" if settings.max_batches_per_epoch else ", whole epochs")
    return (f"{settings.target_model}, GRO {training}, ≤{settings.epochs} epoch(s); attack "
            f"{settings.attack_sequences}×{settings.attack_seq_len} {'/'.join(settings.generators)}, "
            f"{len(settings.views)} views, {settings.attack_seeds} seeds, surrogates of {settings.surrogate_epochs} "
            "epochs")


def trained_windows(checkpoint: Path) -> str:
    """The training rows ("newest" | "all") the checkpoint's model was trained on ("newest" when not recorded)."""
    state = read_checkpoint_payload(checkpoint).get("training_state") or {}
    return stored_trajectory(state.get("train_config", {}))["windows"]

