"""GRO stage: train defended targets, attack every defense, and compare utility with protection.

Reads the undefended target ``<run>/train/<target_model>.pt`` and writes into
``<run>/gro/``:

* ``gro_lam<λ>.pt`` — one GRO-trained target per λ (``seedvariant_lam<λ>.pt`` for the ablation);
* ``surrogate_gro_lam<λ>.pt`` — the surrogate the attack extracted from each of those
  defended boxes (small; the report shows the best λ's lists beside the target's);
* ``state/`` — resumable GRO training states (a stopped run continues);
* ``defenses.csv`` / ``defenses.md`` — None, Random, Reverse and GRO per λ:
  the target's utility as served, its retention, the surrogate's HR/NDCG@10
  and its Agr@10 with the undefended target (validation and test);
* ``utility_vs_protection.png`` — one point per defense and λ;
* ``metrics.json`` — all of the above plus settings, timings, the chosen λ.

The best λ is chosen on VALIDATION figures only (largest fall of the
surrogate's validation NDCG@10 with validation retention >= 95%); the headline
reports that λ's TEST figures.

Profiles: "smoke" (synthetic data, seconds), "cpu" (ML-1M on 2 cores: the
pretrained target is fine-tuned for a quarter of an epoch (12 batches of 128
sequences) at λ in {0.1, 0.3, 1} (half-decade steps), the student and swap loss use the last 20
positions of each sequence, and the attack budget is 1,000 autoregressive
sequences of length 200 (a fifth of the paper's sequences) with at most 30
surrogate epochs and 100 s of surrogate training per defense), "full" (the paper's settings on a
GPU: trained from scratch for up to 200 epochs (the authors' code allows up to
1,000 on ML-1M), every position, λ in {0.001, 0.01, 0.1, 1, 10}, 5,000
sequences of length 200).

Every profile early-stops each GRO target on its validation NDCG@10 as served
(patience 10 epochs; ``-p patience 0`` keeps the last epoch's target, as the
authors' code does), the same rule that trained the undefended target, and
trains it on the same rows (``training_windows`` of the target's checkpoint).
``-p from_scratch yes -p max_batches_per_epoch 0 -p epochs 200`` turns the cpu
profile's fine-tuning into the authors' ML-1M setting (about an hour per λ on
2 cores).
"""

from __future__ import annotations

import shutil
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch

from recsec_lib.study import runs
from recsec_lib.attack.extraction import SurrogateSettings, run_attack
from recsec_lib.recommend.checkpoints import load_checkpoint, read_checkpoint_payload, save_checkpoint
from recsec_lib.gro.defenses import (DefenseCase, checkpoint_name, choose_best_lambda, evaluate_defenses,
                            plot_utility_vs_protection, save_tables, surrogate_checkpoint_name,
                            train_defended_targets)
from recsec_lib.gro.training import GROConfig, fresh_like, time_one_epoch
from recsec_lib.recommend.sequences import training_windows
from recsec_lib.study.stages.context import StudyContext
from recsec_lib.recommend.training import stored_trajectory

STAGE = "gro"


@dataclass(frozen=True)
class Settings:
    target_model: str = "sasrec"  # reads <run>/train/<target_model>.pt; the surrogate has the same architecture
    method: str = "gro"  # gro (the paper) | seed-variant (the seed's loss, an ablation)
    lambdas: tuple[float, ...] = (0.001, 0.01, 0.1, 1.0, 10.0)  # λ values trained and compared
    epochs: int = 200  # GRO epochs (fine-tuning epochs when from_scratch is False)
    from_scratch: bool = True  # train the defended target from scratch (the authors' ML-1M setting)
    batch_size: int = 128
    lr: float = 1e-3
    k: int = 100  # returned list length (student's lists, black box, attack)
    positions_per_sequence: int = 0  # prefixes per sequence for the student and swap loss; 0 = all
    max_batches_per_epoch: int = 0  # cap on GRO batches per epoch (a partial epoch on CPU); 0 = all
    student_warmup_batches: int = 0  # batches in which only the student learns before GRO starts; 0 = none
    patience: int = 10  # GRO epochs without a better validation NDCG@10 before stopping (best target kept); 0 = keep the last
    attack_generator: str = "autoregressive"  # random | autoregressive
    attack_sequences: int = 5000  # attack budget in synthetic sequences
    attack_seq_len: int = 200  # each sequence costs this many queries
    surrogate_epochs: int = 40  # upper bound; the attack stops early on its own validation
    surrogate_max_seconds: float = 0.0  # cap on each surrogate's training time; 0 = none
    min_retention: float = 0.95  # the utility floor for choosing λ (on validation)

    @classmethod
    def for_profile(cls, profile: str) -> "Settings":
        if profile == "smoke":
            return cls(lambdas=(1.0, 10.0), epochs=2, from_scratch=False, batch_size=64, k=10,
                       attack_sequences=40, attack_seq_len=10, surrogate_epochs=3, patience=2)
        if profile == "cpu":
            return cls(lambdas=(0.1, 0.3, 1.0), epochs=1, from_scratch=False, positions_per_sequence=20,
                       max_batches_per_epoch=12, attack_sequences=1000, attack_seq_len=200, surrogate_epochs=30,
                       surrogate_max_seconds=100.0)
        if profile == "full":
            return cls()
        raise ValueError(f"parameter 'profile' must be smoke, cpu or full, got {profile!r}")

    def with_overrides(self, **values) -> "Settings":
        """A copy with the given fields replaced; None keeps the profile's value."""
        unknown = sorted(set(values) - set(asdict(self)))
        if unknown:
            raise ValueError(f"unknown GRO setting(s) {unknown}")
        values = {k: v for k, v in values.items() if v is not None}
        if "lambdas" in values:
            values["lambdas"] = parse_lambdas(values["lambdas"])
        if isinstance(values.get("from_scratch"), str):
            values["from_scratch"] = parse_yes_no("from_scratch", values["from_scratch"])
        return replace(self, **values)

    def gro_config(self, lam: float, seed: int) -> GROConfig:
        return GROConfig(method=self.method, lam=lam, epochs=self.epochs, batch_size=self.batch_size, lr=self.lr,
                         k=self.k, positions_per_sequence=self.positions_per_sequence,
                         max_batches_per_epoch=self.max_batches_per_epoch,
                         student_warmup_batches=self.student_warmup_batches, patience=self.patience, seed=seed)


def _say(message: str) -> None:
    """Stage progress, one line per step (shown in the notebook and in logs)."""
    print(f"gro: {message}", flush=True)


def parse_lambdas(value) -> tuple[float, ...]:
    """λ values from "0.1,1" or a sequence of numbers; raises naming the parameter."""
    items = value.replace(",", " ").split() if isinstance(value, str) else list(value)
    try:
        lambdas = tuple(float(v) for v in items)
    except (TypeError, ValueError):
        raise ValueError(f"parameter 'lambdas' must be numbers such as '0.1,1', got {value!r}") from None
    if not lambdas or any(lam < 0 for lam in lambdas):
        raise ValueError(f"parameter 'lambdas' needs one or more values >= 0, got {value!r}")
    return lambdas


def parse_yes_no(name: str, value: str) -> bool:
    """True for "yes", False for "no"; raises naming the parameter otherwise."""
    if value not in ("yes", "no"):
        raise ValueError(f"parameter {name!r} must be 'yes' or 'no', got {value!r}")
    return value == "yes"


def run(ctx: StudyContext, settings: Settings) -> dict:
    """Train GRO targets for every λ, attack all defenses, write tables, plot and metrics."""
    out = ctx.stage_dir(STAGE)
    device = ctx.torch_device()
    with runs.stage_timer() as timing:
        dataset = ctx.load_dataset()
        target_path = ctx.run_dir / "train" / f"{settings.target_model}.pt"
        undefended = load_checkpoint(target_path, dataset=dataset, device=device).model
        if ctx.force:
            shutil.rmtree(out / "state", ignore_errors=True)  # resumable GRO states of an earlier run

        # The defended target learns from the same training rows as the undefended one (train stage's windows).
        windows = trained_windows(target_path)
        rows = training_windows(dataset.train_sequences(), undefended.max_len + 1, windows)
        results = train_defended_targets(undefended, dataset, settings.lambdas, settings.gro_config(1.0, ctx.seed),
                                         out, device=device, from_scratch=settings.from_scratch, sequences=rows)
        defended = {lam: result.target for lam, result in results.items()}
        histories = {f"{lam:g}": result.history for lam, result in results.items()}
        kept_epochs = {f"{lam:g}": {"best_epoch": result.best_epoch, "epochs_run": len(result.history),
                                    "stop_reason": result.stop_reason} for lam, result in results.items()}
        gro_seconds = [row["seconds"] for result in results.values() for row in result.history]

        _say(f"trained {len(results)} GRO target(s); timing an undefended epoch")
        # The cost ratio: one undefended epoch with the same loop and batches, measured in this run.
        plain = replace(settings.gro_config(1.0, ctx.seed), method="none")
        undefended_epoch = time_one_epoch(undefended, fresh_like(undefended), rows, plain, device)
        gro_epoch = sum(gro_seconds) / len(gro_seconds) if gro_seconds else float("nan")

        # A black box can filter seen items only when k + max_len <= num_items (tiny smoke data may not allow it).
        box_filter_seen = settings.k + undefended.max_len <= dataset.num_items
        surrogate_settings = SurrogateSettings(epochs=settings.surrogate_epochs,
                                               max_train_seconds=settings.surrogate_max_seconds, seed=ctx.seed)

        def extract(box):
            return run_attack(box, dataset.num_items, settings.attack_generator, settings.attack_sequences,
                              settings.attack_seq_len, arch=settings.target_model, settings=surrogate_settings,
                              device=device, seed=ctx.seed).surrogate.model

        def keep_surrogate(case: DefenseCase, surrogate) -> None:
            if case.lam is not None:
                save_defended_surrogate(out, surrogate, case, dataset, settings)

        table = evaluate_defenses(undefended, defended, dataset, extract, k=settings.k, device=device,
                                  seed=ctx.seed, min_retention=settings.min_retention,
                                  box_filter_seen=box_filter_seen, method=settings.method, progress=_say,
                                  on_surrogate=keep_surrogate)
        paths = save_tables(table, out)
        plot_utility_vs_protection(table, out / "utility_vs_protection.png")

    best = choose_best_lambda(table, settings.min_retention)
    best_row = table[table["best"]].iloc[0] if bool(table["best"].any()) else None
    none_row = table.iloc[0]
    headline = {
        "gro_best_lambda": best["lam"],
        "gro_constraint_met": best["constraint_met"],
        "gro_utility_retention": None if best_row is None else float(best_row["retention_test"]),
        "gro_surrogate_ndcg10_drop": None if best_row is None else float(best_row["surrogate_test_ndcg10_drop"]),
        "gro_agr10": None if best_row is None else float(best_row["agr10_test"]),
        "none_agr10": float(none_row["agr10_test"]),
        "gro_epoch_cost_ratio": round(gro_epoch / undefended_epoch, 3),
    }
    headline = {key: value for key, value in headline.items() if value is not None}
    metrics = {
        "profile": ctx.profile,
        "dataset": dataset.name,
        "settings": asdict(settings),
        "lambda_choice": ("largest drop of the surrogate's VALIDATION NDCG@10 among the λ whose VALIDATION "
                          f"retention >= {settings.min_retention:.0%}; test figures reported for that λ"),
        "best": best,
        "defenses": table.to_dict(orient="records"),
        "gro_histories": histories,
        "gro_kept_epochs": kept_epochs,
        "box_filter_seen": box_filter_seen,
        "training_windows": windows,
        "gro_epoch_seconds": round(gro_epoch, 3),
        "undefended_epoch_seconds": round(undefended_epoch, 3),
        "artefacts": {"table_csv": paths["csv"].name, "table_markdown": paths["markdown"].name,
                      "plot": "utility_vs_protection.png",
                      "checkpoints": [checkpoint_name(lam, settings.method) for lam in settings.lambdas],
                      "surrogates": [surrogate_checkpoint_name(lam, settings.method) for lam in settings.lambdas],
                      "best_surrogate": (None if best["lam"] is None
                                         else surrogate_checkpoint_name(best["lam"], settings.method))},
        **headline,
        **timing,
    }
    runs.write_stage_metrics(ctx.run_dir, STAGE, metrics, headline)
    return metrics


def trained_windows(checkpoint: Path) -> str:
    """The training rows ("newest" | "all") the checkpoint's model was trained on ("newest" when not recorded)."""
    state = read_checkpoint_payload(checkpoint).get("training_state") or {}
    return stored_trajectory(state.get("train_config", {}))["windows"]


def save_defended_surrogate(out: Path, surrogate, case: DefenseCase, dataset, settings: Settings) -> Path:
    """Save the surrogate stolen from one defended box, so the report can show what the attacker got.

    Only the trained defense's rows (a λ) are kept: the None row's surrogate is
    the attack stage's, and Random/Reverse are not what the report compares.
    """
    return save_checkpoint(out / surrogate_checkpoint_name(case.lam, settings.method), surrogate,
                           settings.target_model, dataset,
                           metrics={"lam": float(case.lam), "method": settings.method, "defense": case.label,
                                    "extracted_from": checkpoint_name(case.lam, settings.method),
                                    "attack_generator": settings.attack_generator,
                                    "attack_sequences": settings.attack_sequences,
                                    "attack_seq_len": settings.attack_seq_len})
