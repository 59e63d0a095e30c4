"""GRO stage: GRO's trade-off curve in the arena, judged against the λ = 0 control, a utility-matched null and the
training noise; the output defenses beside it; every arm faces the same attackers.

Reads the undefended target ``<run>/train/<target_model>.pt`` (and its training snapshots
``<target_model>_epoch<N>.pt``, the nulls' candidates) and writes into ``<run>/gro/``:

* ``gro_lam0.pt`` (+ ``gro_lam0_replica<i>.pt``) — the honest control: λ = 0 through the same loop (same
  optimiser, student, epochs and kept-epoch rule), one per training seed (``control_seeds``): the first is the
  reference of every GRO arm, the others measure the noise of fine-tuning;
* ``gro_lam<λ>.pt`` / ``gro_lowestindex_lam<λ>.pt`` — the curve's points: one GRO target per λ and zero-gradient
  rule, "keep" (a row whose student gradient is exactly 0 keeps its item) and "lowest_index" (the authors' code:
  such rows go to item 1), each after ``epochs`` epochs, the epoch kept as ``kept_epoch`` says ("last": the
  authors' code; keeping the best-validating epoch would pick the least-defended one); ``state/`` holds resumable
  training states;
* the utility-matched nulls (``arena.model_defenses.null``): for each point, the snapshot of the target's own
  training whose served VALIDATION NDCG@10 is nearest (``gro.null``: within ``null_tolerance``), attacked like
  every arm;
* ``matrix.csv`` — one row per (arm, attacker view, generator): utility, surrogate figures, falls with 95%
  intervals (bootstrap over test users and attack seeds), verdicts; ``cells/`` the finished cells (an
  interrupted stage reruns only the missing ones);
* ``frontier.csv|md``, ``gro_arms.csv|md``, ``frontier.png`` — each arm at its strongest attacker, as before;
* ``curve.csv``, ``curve_points.csv``, ``curve.png`` — the curve: every GRO point with its verdict against the
  control, its null and the noise floor (``arena.gro_curve``); the figure puts served NDCG@10 kept (x) against the
  surrogate's fall (y), one line per rule, the control, nulls and output defenses as points;
* ``nulls.csv|md`` — the null comparison and the verdict per point ("protects" only where the fall against the
  null has its whole 95% interval above 0 and beyond the noise floor; otherwise the failed condition);
* ``extraction.csv|md`` — every arm's extraction ratio (surrogate NDCG@10 / served NDCG@10) with its interval;
* ``authors_units.csv|md`` — the authors' units (unfiltered, 100-item lists, whole-list Random/Reverse, the naive
  attacker) beside their published ML-1M rows, labelled as reference, with what differs on each row;
* ``budgets.csv|md`` — the main points (None, the controls, each rule's shown point and their nulls) at the
  second, larger budget (``second_budget``) beside the first, and ``gro.budget``'s check per budget: the verdict
  (and the headline) uses the smallest budget at which the undefended target's surrogate is not budget-bound;
* ``metrics.json`` — all of the above plus settings, timings and the surrogates trained.

The attacker set (``arena.attackers``): every generator in ``generators`` × every view in ``views`` (naive,
top-10, knowing, drop-promoted) × ``attack_seeds`` seeds, at ``attack_sequences`` × ``attack_seq_len``
queries, with surrogates of ``surrogate_epochs`` epochs. Falls are measured against the strongest attacker
of the reference's model (``arena.matrix``). Every choice (λ per rule, the best point, the null) reads
VALIDATION figures only; "no protective λ" names the condition that failed.

``recsec defend`` runs the same computation (``defend``) outside a run folder, so the two print the same
rows for the same settings.
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import pandas as pd

from recsec_lib.arena import gro_curve
from recsec_lib.arena.arms import UNDEFENDED, Arm, none_arm, output_arms
from recsec_lib.arena.attackers import DEFAULT_VIEWS, AttackSet
from recsec_lib.arena.cells import DatasetRef, executor_runner
from recsec_lib.arena.figures import curve_points, plot_curve, plot_frontier
from recsec_lib.arena.matrix import MatrixResult, evaluate
from recsec_lib.arena.model_defenses import MODEL_DEFENSES, ModelDefense
from recsec_lib.arena.model_defenses.gro import CONTROL_LABEL
from recsec_lib.arena.model_defenses.null import UtilityNull, match_nulls, snapshot_nulls
from recsec_lib.arena.tables import FrontierTarget, best_frontier_arm, frontier_table, save_matrix_tables
from recsec_lib.attack.generators import GENERATORS
from recsec_lib.attack.surrogate import SurrogateSettings
from recsec_lib.attack.views import VIEWS
from recsec_lib.common.executor import CellStore, ExecutorConfig
from recsec_lib.common.settings import SettingsBase
from recsec_lib.common.files import write_csv_atomic, write_text_atomic
from recsec_lib.common.tables import markdown_table
from recsec_lib.defenses.output import parse_output_defense
from recsec_lib.gro.authors_units import authors_units_frame
from recsec_lib.gro.curve import curve_headline
from recsec_lib.gro.defenses import choose_best_lambda
from recsec_lib.gro.null import NullMatch
from recsec_lib.gro.loss import ZERO_GRADIENT_RULES
from recsec_lib.gro.training import KEPT_EPOCHS, GROConfig, fresh_like, time_one_epoch
from recsec_lib.recommend.checkpoints import load_checkpoint, read_checkpoint_payload
from recsec_lib.recommend.evaluation import ranked_lists
from recsec_lib.recommend.metrics import per_user_hits
from recsec_lib.recommend.sequences import training_windows
from recsec_lib.recommend.training import check_adam_lr, stored_trajectory
from recsec_lib.study import runs
from recsec_lib.study.stages.context import StudyContext

STAGE = "gro"


# The cpu curve, a run of its own beside the main run (too dear for the 2-hour study): ./run_all.sh --stage gro
# -p lambdas 0.01,0.1,0.3,1 -p zero_gradient_rules keep,lowest_index on a run whose train stage has finished.
CPU_CURVE = {"lambdas": (0.01, 0.1, 0.3, 1.0), "zero_gradient_rules": ("keep", "lowest_index")}


@dataclass(frozen=True)
class Settings(SettingsBase):
    target_model: str = "sasrec"  # reads <run>/train/<target_model>.pt; student and surrogate share its architecture
    method: str = "gro"  # gro (the paper) | seed-variant (the seed's loss, an ablation)
    lambdas: tuple[float, ...] = (0.001, 0.01, 0.03, 0.1, 0.3, 1.0, 10.0)  # the curve's λ > 0, per rule (λ = 0: control)
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
    # last: the target after the last epoch (the authors' code; a curve point is what that many epochs make);
    # best: the best-validating epoch's (which picks the least-defended epoch of a run)
    kept_epoch: str = "last"
    control_seeds: int = 2  # λ = 0 controls, one per training seed (seed, seed + 1, ...): their spread is the noise
    nulls: bool = True  # attack each GRO point's utility-matched null (a snapshot of the target's training)
    null_tolerance: float = 0.05  # largest relative gap of validation NDCG@10 between a point and its null
    # A second attack budget (sequences of attack_seq_len) for the main points (None, the controls, each rule's
    # shown point and their nulls): 0 = none. Its surrogates train for second_budget_surrogate_epochs epochs,
    # 0 = the first budget's surrogate_epochs (equal epochs: how long to train is the attacker's choice, and one
    # with four times the answers trains at least as long). Equal optimiser steps (5 epochs at 2,000 × 100 in the
    # cpu profile) under-trained the copy: on ML-1M the λ = 0 control's naive extraction ratio was .697 with 20
    # epochs (results/gro-budget-epochs/) against .527 with 5 (results/gro-budget/).
    second_budget: int = 0
    second_budget_surrogate_epochs: int = 0
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
                  "combinations": ("tail-shuffle:5",), "bootstrap_replicates": 200, "cost_batches": 2,
                  "null_tolerance": 0.5, "second_budget": 160},
        # ML-1M on 2 cores: the main points only, so that the whole cpu study fits its 2 hours (README: the
        # measured costs). Both zero-gradient rules at λ = 0.1 (the published curve's best point keeping >= 95% of
        # NDCG@10) and λ = 1 (the authors' λ), the λ = 0 control with 2 training seeds, each point's
        # utility-matched null: the trained SASRec fine-tuned for one epoch per point (the last epoch kept),
        # student and swap on the last 10 positions (6 fine-tuning epochs, about 75 s each). Every model arm
        # (None, the 2 controls, 4 points, their nulls: about 9) is attacked with 2 seeds of 500 × 100
        # autoregressive queries (a tenth of the paper's 5,000 × 200), 4 views, surrogates of 20 epochs: about
        # 220 s of one core per model and seed (the undefended model's cell with its 4 output defenses the
        # dearest), about 2,000 s in all on 2 workers. The curve (CPU_CURVE: 4 λ × both rules, 16 attacked
        # models, about 4,400 s) is a run of its own beside the main one (README: the command). No second budget
        # in the main run (the main points again at 2,000 × 100 with surrogates of 20 epochs took 1,540 s for
        # 6 arms × 2 seeds seen through the naive view alone, about four times that through the 4 views:
        # results/gro-budget-epochs/): the side runs results/gro-budget*/ measure it (recsec defend --set
        # second_budget=2000, their READMEs give the commands); the verdict then uses the budget whose unaimed
        # surrogates are not budget-bound.
        "cpu": {"lambdas": (0.1, 1.0), "epochs": 1, "from_scratch": False, "positions_per_sequence": 10,
                "patience": 0, "generators": ("autoregressive",), "attack_seeds": 2, "attack_sequences": 500,
                "attack_seq_len": 100, "surrogate_epochs": 20,
                "output_defenses": ("random", "reverse", "top:10", "tail-resample:10"), "combinations": (),
                "bootstrap_replicates": 500, "second_budget": 0},
        # The paper's scale: BERT4Rec (the authors' target, student and surrogate; the train stage's full profile
        # trains it with its snapshots, the nulls) trained from scratch with GRO at every position. The cpu profile
        # cannot: one such epoch takes about 15,000 s on 2 cores (README: BERT4Rec's GRO cost).
        "full": {"target_model": "bert4rec", "second_budget": 20000},
    }

    def __post_init__(self) -> None:
        for name in ("k", "epochs", "attack_sequences", "attack_seq_len", "surrogate_epochs", "batch_size",
                     "control_seeds"):
            if getattr(self, name) <= 0:
                raise ValueError(f"parameter {name!r} must be positive, got {getattr(self, name)}")
        if self.second_budget < 0 or self.second_budget_surrogate_epochs < 0:
            raise ValueError(f"parameters 'second_budget' and 'second_budget_surrogate_epochs' must be >= 0 (0: none, "
                             f"the first budget's epochs), got {self.second_budget}, "
                             f"{self.second_budget_surrogate_epochs}")
        if 0 < self.second_budget <= self.attack_sequences:
            raise ValueError(f"parameter 'second_budget' ({self.second_budget}) must be larger than "
                             f"'attack_sequences' ({self.attack_sequences}), or 0 for none")
        if not 0 <= self.null_tolerance < 1:
            raise ValueError(f"parameter 'null_tolerance' must be in [0, 1), got {self.null_tolerance}")
        check_adam_lr(self.lr, "parameter 'lr'")
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

    def attack_set(self, seed: int, box_filter_seen: bool, second: bool = False) -> AttackSet:
        """The attacker set at the first budget, or (``second``) at ``second_budget`` with its surrogate epochs."""
        sequences, epochs = self.attack_sequences, self.surrogate_epochs
        if second:
            if not self.second_budget:
                raise ValueError("parameter 'second_budget' is 0: there is no second budget")
            sequences, epochs = self.second_budget, self.second_surrogate_epochs()
        surrogate = SurrogateSettings(epochs=epochs, seed=seed)
        return AttackSet(generators=self.generators, views=self.views,
                         seeds=tuple(seed + i for i in range(self.attack_seeds)),
                         num_sequences=sequences, seq_len=self.attack_seq_len, k=self.k,
                         arch=self.target_model, surrogate=surrogate, box_filter_seen=box_filter_seen)

    def second_surrogate_epochs(self) -> int:
        """Surrogate epochs at the second budget: the setting, or the first budget's epochs (equal epochs)."""
        return self.second_budget_surrogate_epochs or self.surrogate_epochs

    def model_defenses(self, seed: int) -> list[ModelDefense]:
        """The λ = 0 control and its other training seeds first, then one GRO target per rule and λ > 0
        (registered model defenses)."""
        defenses = [MODEL_DEFENSES.build("gro-control", config=self.gro_config(0.0, seed),
                                         from_scratch=self.from_scratch, replica=replica)
                    for replica in range(self.control_seeds)]
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
    """What ``defend`` computed: the matrices and everything the stage's metrics and headline are read from."""

    matrix: MatrixResult
    arms: list[Arm]
    histories: dict[str, list[dict]] = field(default_factory=dict)
    trained: dict[str, dict] = field(default_factory=dict)
    cost: dict[str, float] = field(default_factory=dict)
    box_filter_seen: bool = True
    windows: str = "all"
    executor: dict = field(default_factory=dict)  # how the cells ran (back-end, workers, threads per cell)
    candidates: list[UtilityNull] = field(default_factory=list)  # every snapshot a point could be matched with
    matches: dict[str, NullMatch] = field(default_factory=dict)  # GRO point label -> its null (validation)
    reading: gro_curve.CurveReading | None = None  # the curve at the first budget
    second: MatrixResult | None = None  # the main points at the second budget
    second_arms: list[Arm] = field(default_factory=list)
    second_reading: gro_curve.CurveReading | None = None
    budgets: gro_curve.BudgetReading | None = None


def build_arms(settings: Settings, defenses: list[ModelDefense]) -> list[Arm]:
    """The arms in table order: None, the output defenses, the control, the GRO arms, GRO + output defense.

    A combination (a GRO arm behind an output defense) is measured against the control, so the control is also
    served behind that output defense: its attackers then include every way of reading such lists (an attacker
    of the control's box could truncate or perturb its own lists), and the combination is credited only with
    what GRO adds.
    """
    arms = [none_arm(), *output_arms(settings.output_defenses)]
    arms += [defense.arm() for defense in defenses]
    combined = False
    for defense in defenses:
        config = getattr(defense, "config", None)
        if defense.family != "gro" or config is None:
            continue
        if config.zero_gradient_rule in settings.combination_rules and config.lam in settings.combination_lambdas:
            arms += [defense.arm(parse_output_defense(spec)) for spec in settings.combinations]
            combined = True
    control = next((defense for defense in defenses if defense.family == "gro-control"), None)
    if combined and control is not None:
        for spec in settings.combinations:
            arm = control.arm(parse_output_defense(spec))
            arms.append(replace(arm, family="control-output"))
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


def served_valid_ndcg10(checkpoint: Path, dataset, k: int, device) -> float:
    """The served validation NDCG@10 of a model as the matrix measures it (top-k lists, the user's history
    filtered, per-user NDCG@10 of the first 10, averaged): the figure its null is matched on."""
    model = load_checkpoint(checkpoint, dataset=dataset, device=device).model
    inputs, targets = dataset.split("valid")
    filtered, _ = ranked_lists(model, inputs, k, device)
    return float(per_user_hits(filtered, targets)[1].mean())


def choose_nulls(settings: Settings, target_checkpoint: Path, checkpoints: dict[str, Path],
                 defenses: list[ModelDefense], dataset, device) -> tuple[list[UtilityNull], dict[str, NullMatch],
                                                                          list[UtilityNull]]:
    """(every snapshot beside the target, each GRO point's match, the distinct nulls matched), on validation."""
    if not settings.nulls:
        return [], {}, []
    candidates = snapshot_nulls(target_checkpoint, settings.target_model)
    points = {defense.label: served_valid_ndcg10(checkpoints[defense.key], dataset, settings.k, device)
              for defense in defenses if defense.family == "gro"}
    matches, chosen = match_nulls(points, candidates, settings.null_tolerance)
    for label, match in matches.items():
        _say(f"{label}: {match.describe()}")
    return candidates, matches, chosen


def main_point_arms(arms: list[Arm], reading: gro_curve.CurveReading, rules, references=()) -> list[Arm]:
    """The arms measured again at the second budget: None, the controls (every training seed), each rule's shown
    point (``gro_curve.shown_point``: chosen on validation), the nulls those points were judged against, and
    ``references``: the labels the first budget's budget check compared (its best target and the weaker one).
    Without them a second budget whose shown points all keep most of the utility has no target 10% below the
    best, and cannot say whether its surrogate is budget-bound (the ML-1M side run results/gro-budget/ found so)."""
    shown = [point.label for rule in rules if (point := gro_curve.shown_point(reading, rule)) is not None]
    nulls = {reading.nulls[label] for label in shown if label in reading.nulls}
    keep = {"None", CONTROL_LABEL, *shown, *nulls, *references}
    return [arm for arm in arms if arm.label in keep or arm.family == "control-replica"]


def checked_labels(matrix: MatrixResult, settings: Settings, seed: int) -> tuple[str, ...]:
    """The two targets whose surrogates the budget check compares at the first budget (none when it cannot)."""
    first = gro_curve.budget_reading({settings.attack_sequences: matrix}, replicates=settings.bootstrap_replicates,
                                     seed=seed)
    return tuple(label for check in first.checks.values() for label in (check.top, check.weaker))


def defend(out: Path, settings: Settings, dataset, dataset_ref: DatasetRef, target_checkpoint: Path, seed: int,
           device, executor: ExecutorConfig = ExecutorConfig(), force: bool = False) -> Defended:
    """Train the model defenses from the target, match each GRO point with its null, evaluate every arm against
    every attacker (and the main points at the second budget), read the curve, write the tables and figures.

    The matrix's cells run as ``executor`` says (serially, on local processes or on Ray); finished cells are
    kept in ``out/cells/`` as they arrive, so an interrupted stage computes only the missing ones.
    """
    from recsec_lib.study.stage_cache import code_fingerprint

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
    candidates, matches, nulls = choose_nulls(settings, target_checkpoint, checkpoints, defenses, dataset, device)
    null_checkpoints, _, null_info = train_models(settings, nulls, undefended, dataset, rows, out, device)
    checkpoints.update(null_checkpoints)
    trained.update(null_info)
    # A black box can filter seen items only when k + max_len <= num_items (tiny smoke data may not allow it).
    box_filter_seen = settings.k + undefended.max_len <= dataset.num_items
    arms = build_arms(settings, [*defenses, *nulls])
    attack = settings.attack_set(seed, box_filter_seen)
    _say(f"the arena: {len(arms)} arms × {attack.describe()}")
    models = {UNDEFENDED: target_checkpoint, **checkpoints}
    runner = executor_runner(executor, CellStore(out / "cells"), desc="gro cells")
    matrix = evaluate(models, arms, dataset, dataset_ref, attack, device=device,
                      replicates=settings.bootstrap_replicates, seed=seed, with_valid=tuple(checkpoints),
                      run_cells=runner, version=code_fingerprint())
    null_candidates = [null.candidate() for null in candidates]
    reading = read_curve(settings, matrix, null_candidates, seed)
    defended = Defended(matrix, arms, histories, trained, cost, box_filter_seen, windows, executor.params(),
                        candidates, matches, reading)
    matrices = {settings.attack_sequences: matrix}
    if settings.second_budget:
        second_arms = main_point_arms(arms, reading, settings.zero_gradient_rules,
                                      checked_labels(matrix, settings, seed))
        second_attack = settings.attack_set(seed, box_filter_seen, second=True)
        _say(f"the main points at the second budget: {len(second_arms)} arms × {second_attack.describe()}")
        second = evaluate(models, second_arms, dataset, dataset_ref, second_attack, device=device,
                          replicates=settings.bootstrap_replicates, seed=seed,
                          with_valid=tuple(key for key in checkpoints if any(a.model == key for a in second_arms)),
                          run_cells=runner, version=code_fingerprint())
        defended.second, defended.second_arms = second, second_arms
        defended.second_reading = read_curve(settings, second, null_candidates, seed)
        matrices[settings.second_budget] = second
    defended.budgets = gro_curve.budget_reading(matrices, replicates=settings.bootstrap_replicates, seed=seed)
    write_outputs(out, settings, defended)
    return defended


def read_curve(settings: Settings, matrix: MatrixResult, candidates, seed: int) -> gro_curve.CurveReading:
    return gro_curve.read_curve(matrix, candidates, settings.null_tolerance, settings.min_retention,
                                replicates=settings.bootstrap_replicates, seed=seed)


def verdict_reading(settings: Settings, defended: Defended) -> tuple[gro_curve.CurveReading, int]:
    """(the reading, its budget in sequences) the verdict and the headline use: the budget
    ``gro_curve.budget_reading`` chose (the smallest at which the surrogates of the models made without an aim
    against extraction are not budget-bound), which is the second only where the stage measured one."""
    budget = defended.budgets.budget if defended.budgets is not None else settings.attack_sequences
    if defended.second_reading is not None and budget == settings.second_budget:
        return defended.second_reading, budget
    return defended.reading, settings.attack_sequences


AUTHORS_SETTING_FINE_TUNED = ("{model} fine-tuned from the trained target for {epochs} epoch(s) (last kept), student "
                              "and swap on {positions}; attack {budget}, naive attacker, surrogates of "
                              "{surrogate_epochs} epochs")


def authors_units_arms(settings: Settings, defended: Defended) -> dict[str, str]:
    """The authors'-units rows: None, Random, Reverse (whole list), the λ = 0 control and, per rule, λ = 1 and the
    point the validation picks, where the run has them (arm label -> the row's name)."""
    labels = {arm.label for arm in defended.arms}
    rows = {"None": "None", "Random": "Random (whole list)", "Reverse": "Reverse (whole list)",
            CONTROL_LABEL: "GRO λ = 0 (control)"}
    rows = {label: name for label, name in rows.items() if label in labels}
    reading = defended.reading
    for rule in settings.zero_gradient_rules:
        for lam in settings.lambdas:
            if lam == 1.0 and f"GRO {rule} λ=1" in labels:
                rows[f"GRO {rule} λ=1"] = f"GRO ({rule}), λ = 1"
        shown = gro_curve.shown_point(reading, rule) if reading is not None else None
        if shown is not None and shown.label not in rows:
            rows[shown.label] = f"GRO ({rule}), λ = {shown.lam:g} (the rule's point chosen on validation)"
    return rows


def write_outputs(out: Path, settings: Settings, defended: Defended) -> dict[str, Path]:
    """The stage's tables and figures (see the module docstring), written atomically."""
    table = defended.matrix.table
    paths = save_matrix_tables(table, out)
    title = scale_sentence(settings)
    paths["plot"] = plot_frontier(table, out / "frontier.png", title=f"Defense frontier (upper right is better)\n{title}")
    reading = defended.reading
    frames = {"curve": gro_curve.curve_frame(reading), "nulls": gro_curve.null_table(reading),
              "extraction": gro_curve.extraction_table(reading)}
    points = curve_points(table)
    frames["curve_points"] = points
    if defended.second_reading is not None:
        second = gro_curve.null_table(defended.second_reading)
        second.insert(0, "budget", f"{settings.second_budget}×{settings.attack_seq_len}")
        first = frames["nulls"].copy()
        first.insert(0, "budget", f"{settings.attack_sequences}×{settings.attack_seq_len}")
        frames["budgets"] = pd.concat([first[first["GRO point"].isin(second["GRO point"])], second],
                                      ignore_index=True)
    try:
        words = AUTHORS_SETTING_FINE_TUNED.format(
            model=settings.target_model, epochs=settings.epochs,
            positions=(f"the last {settings.positions_per_sequence} positions" if settings.positions_per_sequence
                       else "every position"),
            budget=f"{settings.attack_sequences}×{settings.attack_seq_len}", surrogate_epochs=settings.surrogate_epochs)
        if settings.from_scratch:
            words = words.replace("fine-tuned from the trained target", "trained from scratch")
        arms = authors_units_arms(settings, defended)
        rows = gro_curve.authors_units_rows(defended.matrix, arms, {label: words for label in arms})
        frames["authors_units"] = authors_units_frame(rows)
    except ValueError as exc:  # e.g. a run without the naive view: said, not hidden
        _say(f"authors' units not written: {exc}")
    for name, frame in frames.items():
        paths[f"{name}_csv"] = out / f"{name}.csv"
        write_csv_atomic(paths[f"{name}_csv"], frame)
        if name != "curve_points":
            paths[f"{name}_markdown"] = out / f"{name}.md"
            write_text_atomic(paths[f"{name}_markdown"], markdown_table(frame, float_format="{:.4f}"))
    floor = (reading.floor.interval.low, reading.floor.interval.high) if reading.floor is not None else None
    paths["curve_plot"] = plot_curve(points, out / "curve.png", noise_floor=floor,
                                     title=f"GRO's trade-off curve (upper right is better)\n{title}")
    return paths


def run(ctx: StudyContext, settings: Settings) -> dict:
    """Train the GRO targets, attack every arm with every attacker, write the tables, frontier plot and metrics."""
    out = ctx.stage_dir(STAGE)
    with runs.stage_timer() as timing:
        dataset = ctx.load_dataset()
        target = ctx.run_dir / "train" / f"{settings.target_model}.pt"
        dataset_ref = DatasetRef(ctx.dataset, str(ctx.data_dir), None if ctx.mirror is None else str(ctx.mirror))
        defended = defend(out, settings, dataset, dataset_ref, target, ctx.seed, ctx.torch_device(),
                          executor=ctx.executor(), force=ctx.force)
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
    statuses = {verdict.label: verdict.status for verdict in defended.reading.verdicts}  # the same matrix's points
    for rule, choice in choices.items():
        headline.update(gro_headline(table, rule, choice, statuses))
    best = best_frontier_arm(table, FrontierTarget())
    headline.update({"defense_frontier_target_met": 1.0 if best["target_met"] else 0.0,
                     "defense_frontier_best": best["arm"] or "none keeps 99% of NDCG@10",
                     "defense_frontier_best_retention": best["retention"],
                     "defense_frontier_best_fall": best["fall"], "defense_frontier_best_fall_low": best["fall_low"],
                     "defense_frontier_best_measure": best["measure"]})
    curve = curve_metrics(settings, defended)
    headline.update(curve.pop("headline"))
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
        "executor": defended.executor,
        **defended.cost,
        **curve,
        "artefacts": {"matrix_csv": "matrix.csv", "frontier_csv": "frontier.csv", "frontier_markdown": "frontier.md",
                      "gro_arms_csv": "gro_arms.csv", "gro_arms_markdown": "gro_arms.md", "plot": "frontier.png",
                      "curve_csv": "curve.csv", "curve_points_csv": "curve_points.csv", "curve_plot": "curve.png",
                      "nulls_csv": "nulls.csv", "nulls_markdown": "nulls.md", "extraction_csv": "extraction.csv",
                      "authors_units_csv": "authors_units.csv", "budgets_csv": "budgets.csv", "cells": "cells/"},
        "headline_keys": sorted(headline),
        **headline,
    }


def _records(frame: pd.DataFrame) -> list[dict]:
    return frame.astype(object).where(frame.notna(), None).to_dict(orient="records")


def curve_metrics(settings: Settings, defended: Defended) -> dict:
    """The curve's part of metrics.json: every point's verdict (first budget), the nulls, the noise floor, the
    budgets' checks, the second budget's rows, and (key "headline") the issue's headline keys read at the budget
    the verdict uses."""
    reading, budget = verdict_reading(settings, defended)
    headline = curve_headline(reading.best, reading.control, settings.bootstrap_replicates, 0)
    headline["gro_verdict_budget"] = f"{budget}×{settings.attack_seq_len}"
    headline["gro_noise_floor"] = round(reading.floor.point, 4) if reading.floor is not None else None
    for rule, summary in reading.summaries.items():
        headline[f"gro_{rule}_curve_summary"] = summary
    if settings.from_scratch:  # the from-scratch arm (the authors' training): λ = 1, else the largest λ, keep rule
        points = [v for v in defended.reading.verdicts if v.rule == settings.zero_gradient_rules[0]]
        point = next((v for v in points if v.lam == 1.0), max(points, key=lambda v: v.lam, default=None))
        if point is not None:
            headline.update({"gro_scratch_point": point.label,
                             "gro_scratch_utility_retention": round(point.retention_test.point, 4),
                             "gro_scratch_surrogate_ndcg10_drop": round(point.fall_vs_control.point, 4),
                             "gro_scratch_surrogate_ndcg10_drop_low": round(point.fall_vs_control.low, 4)})
    budgets = defended.budgets
    out = {
        "headline": headline,
        "curve_rule": ("a GRO point protects only where its surrogate's test NDCG@10 falls against its utility-matched "
                       "null (a snapshot of the target's own training with the nearest VALIDATION NDCG@10, within "
                       f"{settings.null_tolerance:.0%}) with the whole 95% interval above 0 and above the training "
                       "noise of the λ = 0 control's seeds; the best point keeps >= "
                       f"{settings.min_retention:.0%} of the control's VALIDATION NDCG@10 and has the largest "
                       "VALIDATION fall against its null; intervals: bootstrap over test users (paired) and attack "
                       "seeds, training variance only through the noise floor"),
        "curve": _records(gro_curve.curve_frame(defended.reading)),
        "curve_words": [v.words for v in defended.reading.verdicts],
        "noise_floor": None if defended.reading.floor is None else defended.reading.floor.describe(),
        "noise_floor_interval": None if defended.reading.floor is None else [defended.reading.floor.interval.low,
                                                                             defended.reading.floor.interval.high],
        "null_candidates": [{"label": n.label, "epoch": n.epoch, "valid_ndcg10": n.valid_ndcg10,
                             "snapshot": n.snapshot} for n in defended.candidates],
        "null_matches": {label: match.describe() for label, match in defended.matches.items()},
        "extraction": _records(defended.reading.extraction),
        "budget_checks": {} if budgets is None else {str(b): c.describe() for b, c in budgets.checks.items()},
        "budget_problems": {} if budgets is None else {str(b): p for b, p in budgets.problems.items()},
        "budget_reason": "" if budgets is None else budgets.reason,
    }
    if defended.second is not None:
        out["second_budget_rows"] = defended.second.table.to_dict(orient="records")
        out["second_budget_curve"] = _records(gro_curve.curve_frame(defended.second_reading))
        out["second_budget_surrogates"] = defended.second.surrogates
        out["second_budget_arms"] = [arm.label for arm in defended.second_arms]
    return out


def _strongest_row(table: pd.DataFrame, arm: str, measure: str = "ndcg") -> pd.Series:
    """The arm's row at its strongest attacker for ``measure`` (ndcg | agr)."""
    column = "worst" if measure == "ndcg" else "worst_agr"
    return table[(table["arm"] == arm) & table[column]].iloc[0]


def null_checked_verdict(verdict: str, label: str, statuses: Mapping[str, str]) -> str:
    """A GRO point's verdict against the λ = 0 control, with "protects" kept only where its utility-matched null
    agrees (``statuses``: point label -> ``gro.curve`` status); otherwise the null's status ("no protection beyond
    the null", "within training noise", "no null", ...). Against the control, a point that only costs utility
    would "protect": any weaker model is copied worse. Other verdicts are kept as they are."""
    status = statuses.get(label)
    if verdict == "protects" and status is not None and status != "protects":
        return status
    return verdict


def gro_headline(table: pd.DataFrame, rule: str, choice: dict, statuses: Mapping[str, str]) -> dict:
    """Headline keys of one zero-gradient rule at its chosen λ (or, with "no protective λ", the λ shown).

    Rule "keep" keeps the historical key names (gro_*); "lowest_index" adds its name (gro_lowest_index_*).
    Protection figures are the strongest attacker's, against the λ = 0 control; the verdict says "protects" only
    where the point's utility-matched null agrees (``null_checked_verdict``).
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
                f"{prefix}_verdict": null_checked_verdict(row["verdict"], label, statuses)})
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

