"""GRO stage: train GRO targets (both zero-gradient rules and a λ = 0 control), attack every defense, and draw
the utility-vs-protection frontier.

Reads the undefended target ``<run>/train/<target_model>.pt`` and writes into
``<run>/gro/``:

* ``gro_lam0.pt`` — the honest control: λ = 0 through the same GRO loop (same
  optimiser, student, epochs and kept-epoch rule), so that what GRO changes is
  measured against fine-tuning alone;
* ``gro_lam<λ>.pt`` / ``gro_lowestindex_lam<λ>.pt`` — one GRO target per λ and
  zero-gradient rule: "keep" (a row with g_i = 0 keeps its item) and
  "lowest_index" (the authors' code: such rows go to item 1);
* ``surrogate_gro_lam<λ>.pt`` (and ``surrogate_gro_lowestindex_lam<λ>.pt``) — the
  first attack seed's surrogate stolen from each GRO box (the report shows it);
* ``state/`` — resumable GRO training states;
* ``defenses.csv`` / ``defenses.md`` — the frontier: one row per defense at its
  WORST attacker: retention, falls of the surrogate's NDCG@10 and Agr@10 with 95%
  intervals (bootstrap over test users and attack seeds), promoted-item share, verdict;
* ``frontier_all.csv`` — every (defense, attacker, generator) row with all figures;
* ``gro_arms.csv`` / ``gro_arms.md`` — None, the λ = 0 control and each GRO rule
  and λ: target and surrogate HR/NDCG@10 filtered and unfiltered, Agr@10,
  promoted-item share, falls with intervals against the control;
* ``frontier.png`` — utility kept vs the worst attacker's fall, with intervals;
* ``metrics.json`` — all of the above plus settings, timings and the chosen λ.

Defenses on the frontier: None; the paper's Random and Reverse; serving only the
top K' (``served_ks``); keeping the top M exact and shuffling, reversing or
resampling ranks M+1..k (``tail_defenses``, ``tail_keep``); the GRO arms; and
GRO plus a tail perturbation (``combinations`` at ``combination_lambdas``).
Each faces ``attack_seeds`` seeds of every generator in ``attack_generators``,
and where the defense can be worked around an attacker who knows it (trains
only on the exact top M, or reads a reversed list backwards); against top-K'
the attacker trains on the K' it gets.

λ is chosen per rule on VALIDATION figures only: the largest validation fall of
the surrogate's NDCG@10 whose 95% interval is above 0, among the λ keeping
validation retention >= ``min_retention``; when none protects the stage says
"no protective λ" and the headline shows the figures of the λ it would have
taken (the shortfall stays visible). Headline protection figures are the worst
attacker's.

Profiles: "smoke" (synthetic data, seconds). "cpu" (ML-1M on 2 cores, a
REDUCED-SCALE check): the pretrained SASRec is fine-tuned for one whole epoch per
arm (control, λ = 1 per rule), student and swap loss on the last 10 positions;
3 attack seeds of 500 autoregressive sequences of length 100 (50k queries each;
the paper: 5,000 × 200), surrogates capped at 30 s of training; output defenses
top-10 only and tail resample after rank 10, Random, Reverse; no GRO + tail
combinations (the full profile has them). Measured on ML-1M in the published
run (fresh clone, quiet 2-core machine): 1,143 s; the None surrogate reached
Agr@10 .35 with an Agr@10 interval of about ±0.6 points. "full" (the paper's design on a GPU): GRO trained from
scratch for up to 200 epochs, every position, λ in {0.001, 0.01, 0.1, 1, 10} for
both rules, 5,000 × 200 queries, both generators, 3 seeds, every output defense.
``-p target_model bert4rec`` runs the same stage on a BERT4Rec target, student
and surrogate (the authors' setting) when the train stage trained one.
"""

from __future__ import annotations

import shutil
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import pandas as pd

from recsec_lib.common.settings import SettingsBase
from recsec_lib.study import runs
from recsec_lib.attack.generators import GENERATORS
from recsec_lib.recommend.checkpoints import load_checkpoint, read_checkpoint_payload, save_checkpoint
from recsec_lib.gro.frontier import (UNDEFENDED, Arm, AttackPlan, FrontierTarget, best_frontier_arm,
                                         evaluate_frontier, frontier_table, plot_frontier, save_frontier_tables)
from recsec_lib.gro.defenses import checkpoint_name, choose_best_lambda, surrogate_checkpoint_name, train_defended_targets
from recsec_lib.gro.loss import ZERO_GRADIENT_RULES
from recsec_lib.gro.training import KEPT_EPOCHS, GROConfig, fresh_like, time_one_epoch
from recsec_lib.gro.output_defenses import OutputDefense
from recsec_lib.recommend.sequences import training_windows
from recsec_lib.study.stages.context import StudyContext
from recsec_lib.attack.surrogate import SurrogateSettings
from recsec_lib.recommend.training import stored_trajectory

STAGE = "gro"
TAIL_KINDS = ("tail-shuffle", "tail-reverse", "tail-resample")


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
    attack_generators: tuple[str, ...] = ("autoregressive", "random")  # every arm faces each of them
    attack_seeds: int = 3  # attack seeds per generator (queries and surrogate initialisation)
    attack_sequences: int = 5000  # attack budget in synthetic sequences
    attack_seq_len: int = 200  # each sequence costs this many queries
    surrogate_epochs: int = 40  # upper bound; the attack stops early on its own validation
    surrogate_max_seconds: float = 0.0  # cap on each surrogate's training time; 0 = none
    paper_baselines: bool = True  # the paper's Random and Reverse arms
    served_ks: tuple[int, ...] = (10, 20, 50)  # "serve only the top K'" arms
    tail_defenses: tuple[str, ...] = TAIL_KINDS  # "keep the top tail_keep exact, perturb the rest" arms
    tail_keep: int = 10  # ranks kept exact by the tail defenses (what users see)
    combinations: tuple[str, ...] = ("tail-shuffle", "tail-resample")  # tail defenses added on top of GRO arms
    combination_lambdas: tuple[float, ...] = (1.0,)  # the GRO λ that get the combinations
    combination_rules: tuple[str, ...] = ZERO_GRADIENT_RULES  # the zero-gradient rules that get the combinations
    bootstrap_replicates: int = 1000  # replicates of every 95% interval
    min_retention: float = 0.95  # the utility floor for choosing λ (on validation)
    cost_batches: int = 12  # batches timed for the GRO / undefended epoch-cost ratio

    def __post_init__(self) -> None:
        if not self.lambdas or any(lam < 0 for lam in self.lambdas):
            raise ValueError(f"parameter 'lambdas' needs one or more values >= 0, got {self.lambdas}")
        for rule in (*self.zero_gradient_rules, *self.combination_rules):
            if rule not in ZERO_GRADIENT_RULES:
                raise ValueError(f"parameter 'zero_gradient_rules' takes {ZERO_GRADIENT_RULES}, got {rule!r}")
        for generator in self.attack_generators:
            if generator not in GENERATORS:
                raise ValueError(f"parameter 'attack_generators' takes {GENERATORS.names()}, got {generator!r}")
        for kind in (*self.tail_defenses, *self.combinations):
            if kind not in TAIL_KINDS:
                raise ValueError(f"parameters 'tail_defenses' and 'combinations' take {TAIL_KINDS}, got {kind!r}")
        if self.kept_epoch not in KEPT_EPOCHS:
            raise ValueError(f"parameter 'kept_epoch' must be one of {KEPT_EPOCHS}, got {self.kept_epoch!r}")
        if self.attack_seeds < 1 or not self.attack_generators or not self.zero_gradient_rules:
            raise ValueError("parameters 'attack_seeds', 'attack_generators' and 'zero_gradient_rules' need >= 1 value")
        if any(size <= 0 or size > self.k for size in self.served_ks) or not 0 < self.tail_keep < self.k:
            raise ValueError(f"parameters 'served_ks' and 'tail_keep' must lie in 1..k ({self.k})")

    PROFILES = {
        "smoke": {"lambdas": (1.0,), "epochs": 2, "from_scratch": False, "batch_size": 64, "k": 10,
                  "attack_generators": ("autoregressive",), "attack_sequences": 40, "attack_seq_len": 10,
                  "surrogate_epochs": 3, "patience": 2, "served_ks": (5,), "tail_keep": 5,
                  "combinations": ("tail-shuffle",), "bootstrap_replicates": 200, "cost_batches": 2},
        # A surrogate of 200 x 100 queries and 10 s of training (an earlier setting) reached NDCG@10 .03 on
        # ML-1M, too weak for any fall to clear the noise; 500 x 100 and 30 s gave intervals of a few points.
        "cpu": {"lambdas": (1.0,), "epochs": 1, "from_scratch": False, "positions_per_sequence": 10,
                "attack_generators": ("autoregressive",), "attack_sequences": 500, "attack_seq_len": 100,
                "surrogate_epochs": 30, "surrogate_max_seconds": 30.0, "served_ks": (10,),
                "tail_defenses": ("tail-resample",), "combinations": (), "bootstrap_replicates": 500},
        "full": {},
    }

    def gro_config(self, lam: float, seed: int, rule: str = "keep") -> GROConfig:
        return GROConfig(method=self.method, lam=lam, epochs=self.epochs, batch_size=self.batch_size, lr=self.lr,
                         k=self.k, positions_per_sequence=self.positions_per_sequence,
                         max_batches_per_epoch=self.max_batches_per_epoch,
                         student_warmup_batches=self.student_warmup_batches, patience=self.patience,
                         zero_gradient_rule=rule, kept_epoch=self.kept_epoch, seed=seed)

    def attack_plan(self, seed: int, box_filter_seen: bool) -> AttackPlan:
        surrogate = SurrogateSettings(epochs=self.surrogate_epochs, max_train_seconds=self.surrogate_max_seconds,
                                      seed=seed)
        return AttackPlan(generators=self.attack_generators, seeds=tuple(seed + i for i in range(self.attack_seeds)),
                          num_sequences=self.attack_sequences, seq_len=self.attack_seq_len, k=self.k,
                          arch=self.target_model, surrogate=surrogate, box_filter_seen=box_filter_seen)


def _say(message: str) -> None:
    """Stage progress, one line per step (shown in the notebook and in logs)."""
    print(f"gro: {message}", flush=True)


def gro_model_key(lam: float, rule: str) -> str:
    """Key of a GRO target among the stage's models (the control is "gro λ=0")."""
    return "gro λ=0" if lam == 0 else f"gro {rule} λ={lam:g}"


def gro_label(lam: float, rule: str) -> str:
    return "GRO λ=0 (control)" if lam == 0 else f"GRO {rule} λ={lam:g}"


def build_arms(settings: Settings) -> list[Arm]:
    """The frontier's arms in table order: None, output defenses, the GRO control, GRO arms, combinations."""
    none = Arm("None", UNDEFENDED, OutputDefense(), "", "none")
    arms = [none]
    if settings.paper_baselines:
        arms += [Arm("Random", UNDEFENDED, OutputDefense("random"), "None", "paper"),
                 Arm("Reverse", UNDEFENDED, OutputDefense("reverse"), "None", "paper")]
    outputs = [OutputDefense("top", size) for size in settings.served_ks]
    outputs += [OutputDefense(kind, settings.tail_keep) for kind in settings.tail_defenses]
    arms += [Arm(output.label, UNDEFENDED, output, "None", "output") for output in outputs]
    control = gro_label(0.0, "keep")
    arms.append(Arm(control, gro_model_key(0.0, "keep"), OutputDefense(), "None", "gro-control", lam=0.0, rule=""))
    for rule in settings.zero_gradient_rules:
        for lam in settings.lambdas:
            if lam > 0:
                arms.append(Arm(gro_label(lam, rule), gro_model_key(lam, rule), OutputDefense(), control, "gro",
                                lam=float(lam), rule=rule))
    for rule in settings.zero_gradient_rules:
        if rule not in settings.combination_rules:
            continue
        for lam in settings.combination_lambdas:
            if lam not in settings.lambdas or lam <= 0:
                continue
            for kind in settings.combinations:
                output = OutputDefense(kind, settings.tail_keep)
                arms.append(Arm(f"{gro_label(lam, rule)} + {output.label}", gro_model_key(lam, rule), output,
                                control, "combo", lam=float(lam), rule=rule))
    return arms


def run(ctx: StudyContext, settings: Settings) -> dict:
    """Train the GRO targets, attack every arm with every attacker, write the tables, frontier plot and metrics."""
    out = ctx.stage_dir(STAGE)
    device = ctx.torch_device()
    with runs.stage_timer() as timing:
        dataset = ctx.load_dataset()
        target_path = ctx.run_dir / "train" / f"{settings.target_model}.pt"
        undefended = load_checkpoint(target_path, dataset=dataset, device=device).model
        if ctx.force:
            shutil.rmtree(out / "state", ignore_errors=True)  # resumable GRO states of an earlier run

        # The defended targets learn from the same training rows as the undefended one (train stage's windows).
        windows = trained_windows(target_path)
        rows = training_windows(dataset.train_sequences(), undefended.max_len + 1, windows)
        models = {UNDEFENDED: undefended}
        histories, kept_epochs = {}, {}
        plan_of_training = [(0.0, "keep")] + [(lam, rule) for rule in settings.zero_gradient_rules
                                              for lam in settings.lambdas if lam > 0]
        for lam, rule in plan_of_training:
            _say(f"training {gro_label(lam, rule)}")
            result = train_defended_targets(undefended, dataset, (lam,), settings.gro_config(lam, ctx.seed, rule),
                                            out, device=device, from_scratch=settings.from_scratch,
                                            sequences=rows)[float(lam)]
            key = gro_model_key(lam, rule)
            models[key] = result.target
            histories[key] = result.history
            kept_epochs[key] = {"best_epoch": result.best_epoch, "epochs_run": len(result.history),
                                "stop_reason": result.stop_reason}

        _say("timing the GRO loop against an undefended loop on the same batches")
        timed = replace(settings.gro_config(1.0, ctx.seed), max_batches_per_epoch=settings.cost_batches)
        undefended_batch = time_one_epoch(undefended, fresh_like(undefended), rows,
                                          replace(timed, method="none")) / settings.cost_batches
        gro_batch = [row["seconds"] / row["batches"] for key, history in histories.items() if key != "gro λ=0"
                     for row in history if row.get("batches")]
        gro_batch_seconds = sum(gro_batch) / len(gro_batch) if gro_batch else float("nan")

        # A black box can filter seen items only when k + max_len <= num_items (tiny smoke data may not allow it).
        box_filter_seen = settings.k + undefended.max_len <= dataset.num_items
        arms = build_arms(settings)
        plan = settings.attack_plan(ctx.seed, box_filter_seen)

        def keep_surrogate(arm: Arm, attacker: str, generator: str, attack_seed: int, surrogate) -> None:
            first = attacker == "naive" and generator == plan.generators[0] and attack_seed == plan.seeds[0]
            if first and arm.family == "gro":
                save_checkpoint(out / surrogate_checkpoint_name(arm.lam, settings.method, arm.rule), surrogate,
                                settings.target_model, dataset,
                                metrics={"lam": arm.lam, "rule": arm.rule, "method": settings.method,
                                         "defense": arm.label, "attack_generator": generator,
                                         "attack_seed": attack_seed,
                                         "extracted_from": checkpoint_name(arm.lam, settings.method, arm.rule),
                                         "attack_sequences": settings.attack_sequences,
                                         "attack_seq_len": settings.attack_seq_len})

        table = evaluate_frontier(models, arms, dataset, plan, device=device,
                                  replicates=settings.bootstrap_replicates, seed=ctx.seed, progress=_say,
                                  on_surrogate=keep_surrogate)
        paths = save_frontier_tables(table, out)
        frontier = frontier_table(table)
        runs.write_text_atomic(out / "defenses.csv", frontier.to_csv(index=False))
        runs.write_text_atomic(out / "defenses.md", (out / "frontier.md").read_text(encoding="utf-8"))
        scale = scale_sentence(ctx.profile, settings)
        plot_frontier(table, out / "frontier.png", title=f"Defense frontier (upper right is better)\n{scale}")

    choices = {rule: choose_best_lambda(table[(table["rule"] == rule) & (table["family"] == "gro")],
                                        settings.min_retention) for rule in settings.zero_gradient_rules}
    headline = {"none_agr10": _worst(table, "None")["agr10_test"],
                "gro_control_agr10": _worst(table, gro_label(0.0, "keep"))["agr10_test"],
                "gro_control_utility_retention": _worst(table, gro_label(0.0, "keep"))["retention_test"],
                "gro_epoch_cost_ratio": round(gro_batch_seconds / undefended_batch, 3)}
    for rule, choice in choices.items():
        headline.update(gro_headline(table, rule, choice))
    best = best_frontier_arm(table, FrontierTarget())
    headline.update({"defense_frontier_target_met": 1.0 if best["target_met"] else 0.0,
                     "defense_frontier_best": best["arm"] or "none keeps 99% of NDCG@10",
                     "defense_frontier_best_retention": best["retention"],
                     "defense_frontier_best_fall": best["fall"], "defense_frontier_best_fall_low": best["fall_low"],
                     "defense_frontier_best_measure": best["measure"]})
    headline = {key: value for key, value in headline.items() if value is not None and value == value}
    metrics = {
        "profile": ctx.profile,
        "dataset": dataset.name,
        "scale": scale,
        "settings": asdict(settings),
        "lambda_choice": ("per zero-gradient rule: the largest fall of the surrogate's VALIDATION NDCG@10 whose 95% "
                          "interval is above 0, among the λ whose VALIDATION retention >= "
                          f"{settings.min_retention:.0%}; 'no protective λ' when none; test figures reported, "
                          "worst attacker"),
        "best": choices.get("keep", next(iter(choices.values()))),
        "lambda_choices": choices,
        "frontier_best": best,
        "arms": [asdict(arm) | {"output": arm.output.spec} for arm in arms],
        "frontier": frontier.to_dict(orient="records"),
        "defenses": table.to_dict(orient="records"),
        "gro_histories": histories,
        "gro_kept_epochs": kept_epochs,
        "box_filter_seen": box_filter_seen,
        "training_windows": windows,
        "gro_batch_seconds": round(gro_batch_seconds, 4),
        "undefended_batch_seconds": round(undefended_batch, 4),
        "artefacts": {"table_csv": "defenses.csv", "table_markdown": "defenses.md",
                      "all_rows_csv": paths["all_csv"].name, "gro_arms_csv": paths["gro_csv"].name,
                      "gro_arms_markdown": paths["gro_markdown"].name, "plot": "frontier.png",
                      "checkpoints": [checkpoint_name(lam, settings.method, rule if lam else "keep")
                                      for lam, rule in plan_of_training],
                      "surrogates": [surrogate_checkpoint_name(arm.lam, settings.method, arm.rule)
                                     for arm in arms if arm.family == "gro"],
                      "best_surrogate": (None if choices.get("keep", {}).get("lam") is None
                                         else surrogate_checkpoint_name(choices["keep"]["lam"], settings.method))},
        **headline,
        **timing,
    }
    runs.write_stage_metrics(ctx.run_dir, STAGE, metrics, headline)
    return metrics


def _worst(table: pd.DataFrame, arm: str) -> pd.Series:
    """The arm's worst-attacker row."""
    return table[(table["arm"] == arm) & table["worst"]].iloc[0]


def gro_headline(table: pd.DataFrame, rule: str, choice: dict) -> dict:
    """Headline keys of one zero-gradient rule at its chosen λ (or, with "no protective λ", the λ shown).

    Rule "keep" keeps the historical key names (gro_*); "lowest_index" adds
    its name (gro_lowest_index_*). Protection figures are the worst attacker's, against the λ = 0 control.
    """
    prefix = "gro" if rule == "keep" else f"gro_{rule}"
    lam = choice["lam"] if choice["lam"] is not None else choice["shown_lam"]
    out = {f"{prefix}_best_lambda": choice["lam"], f"{prefix}_protective_lambda_found": choice["lam"] is not None,
           f"{prefix}_constraint_met": choice["constraint_met"]}
    if lam is None:
        return out
    row = _worst(table, gro_label(lam, rule))
    out.update({f"{prefix}_reported_lambda": lam,
                f"{prefix}_utility_retention": float(row["retention_test"]),
                f"{prefix}_utility_retention_vs_none": float(row["retention_vs_none_test"]),
                f"{prefix}_surrogate_ndcg10_drop": float(row["surrogate_test_ndcg10_drop"]),
                f"{prefix}_surrogate_ndcg10_drop_low": float(row["surrogate_test_ndcg10_drop_low"]),
                f"{prefix}_surrogate_ndcg10_drop_high": float(row["surrogate_test_ndcg10_drop_high"]),
                f"{prefix}_agr10": float(row["agr10_test"]),
                f"{prefix}_agr10_drop": float(row["agr10_test_drop"]),
                f"{prefix}_promoted_item_share": float(row["promoted_share"]),
                f"{prefix}_verdict": row["verdict"]})
    return out


def scale_sentence(profile: str, settings: Settings) -> str:
    """The scale a run measured at, for plot titles, metrics and the notebook."""
    training = ("from scratch" if settings.from_scratch else "fine-tuned") + (
        f", {settings.max_batches_per_epoch} batches/epoch" if settings.max_batches_per_epoch else ", whole epochs")
    cap = f", ≤{settings.surrogate_max_seconds:g} s per surrogate" if settings.surrogate_max_seconds else ""
    return (f"{profile} profile: {settings.target_model}, GRO {training}, ≤{settings.epochs} epoch(s), "
            f"attack {settings.attack_sequences}×{settings.attack_seq_len} "
            f"{'/'.join(settings.attack_generators)}{cap}, {settings.attack_seeds} seeds")


def trained_windows(checkpoint: Path) -> str:
    """The training rows ("newest" | "all") the checkpoint's model was trained on ("newest" when not recorded)."""
    state = read_checkpoint_payload(checkpoint).get("training_state") or {}
    return stored_trajectory(state.get("train_config", {}))["windows"]
