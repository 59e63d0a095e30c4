"""Stage "train": train the recommenders, keep their checkpoints, measure them on the test split.

For every model in ``Settings.models`` it writes into ``<run_dir>/train/``:

    <model>.pt            checkpoint (best validation epoch; resumable while training)
    <model>_history.csv   per-epoch loss, validation HR@10 / NDCG@10, seconds
    <model>_epoch<N>.pt   snapshots: the weights after epoch N of ``snapshot_epochs`` (not the baseline's)
    curves.png            loss and validation curves of all models
    metrics.json          per model: test metrics (filtered, unfiltered_*, sampled_*), best validation
                          metrics, history, epoch seconds, snapshots (epoch, validation NDCG@10, path);
                          plus wall time and peak memory

Headline keys (only for the models trained): ``<model>_test_hr10``,
``<model>_test_ndcg10`` and ``sasrec_cpu_epoch_seconds`` (seconds per SASRec
training epoch in this run: the median of its training history when it was
trained here, a timed partial epoch on this machine when a finished checkpoint
was reused; ``sasrec_cuda_epoch_seconds`` when run on a GPU).

A checkpoint ``<pretrained_dir>/<model>_<dataset>.pt`` (e.g.
``checkpoints/sasrec_ml1m.pt``, trained once with the same settings) is
copied in instead of training from scratch: used as it is when finished,
resumed when partial. The cpu and full profiles look in ``checkpoints/``.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import torch

from recsec_lib.common import plots
from recsec_lib.common.settings import SettingsBase

from recsec_lib.study import runs
from recsec_lib.recommend.checkpoints import check_matches_dataset, read_checkpoint_payload, save_checkpoint
from recsec_lib.recommend.bias import BiasReport
from recsec_lib.recommend.compare import bias_on_test_users
from recsec_lib.recommend.evaluation import evaluate_model, recommend
from recsec_lib.models.registry import MODEL_NAMES, build_model
from recsec_lib.recommend.sequences import WINDOWS
from recsec_lib.study.stages.context import StudyContext, seed_everything
from recsec_lib.recommend.training import (TRAJECTORY_FIELDS, TrainConfig, TrainResult, missing_snapshots,
                                           regenerate_snapshots, snapshot_path, snapshot_record, stored_trajectory,
                                           time_training_epoch, train_model)

STAGE = "train"


@dataclass(frozen=True)
class Settings(SettingsBase):
    models: tuple[str, ...] = ("meanemb", "sasrec")  # which recommenders to train, in order
    epochs: int = 200  # most epochs per model (early stopping usually ends sooner)
    batch_size: int = 128  # users per batch
    lr: float = 1e-3  # Adam learning rate
    weight_decay: float = 0.0  # SASRec+ recipe: plain Adam (the seed used 1e-5)
    patience: int = 10  # validations without improvement before stopping
    eval_every: int = 1  # validate every this many epochs
    embedding_dim: int = 256  # the MeanEmbedding baseline's embedding size
    max_train_seconds: float = 0.0  # per-model training time cap in seconds; 0 = none
    pretrained_dir: str = ""  # folder of finished checkpoints <model>_<dataset>.pt (e.g. "checkpoints") to reuse; "" = none
    baseline_epochs: int = 0  # epochs of the meanemb baseline (the seed trained it for 30); 0 = epochs
    threads: int = 2  # torch CPU threads on CPU (2 cores here; tiny smoke models are fastest on 1); 0 = torch's default
    # Training rows of every model but the seed's baseline: "all" of each history, cut into windows of 201 items
    # (ML-1M: 8,617 rows; SASRec test NDCG@10 about +.005 over "newest"), or "newest" (one row of 201 items per user,
    # the SASRec+ recipe). The baseline keeps the seed's newest window.
    windows: str = "all"
    # Epochs whose weights every model but the baseline also keeps as train/<model>_epoch<N>.pt (with their
    # validation figures): weaker models of the same training, GRO's utility-matched null (gro.null). A reused
    # pretrained checkpoint brings its own <model>_<dataset>_epoch<N>.pt when it has them; missing ones are made
    # by training the first epochs again with the same seed (``training.regenerate_snapshots``). () = none.
    snapshot_epochs: tuple[int, ...] = ()

    PROFILES = {
        # Snapshots (GRO's utility-matched nulls): smoke keeps epochs 1-3 of its 4; cpu and full keep early epochs densely
        # (validation NDCG@10 climbs fastest there) and later ones sparsely, up to the points GRO keeps >= 95% of.
        "smoke": {"models": ("meanemb", "sasrec"), "epochs": 4, "patience": 0, "batch_size": 64, "threads": 1,
                  "snapshot_epochs": (1, 2, 3)},
        # The baseline gets 5 epochs (the seed trained it for 30): without weight decay it keeps creeping up
        # for 100+ epochs of ~40 s each on 2 cores (ML-1M, 256-dim full softmax), which the 2-hour cpu study
        # cannot pay beside SASRec and the defenses' stages. Its epochs run alone on the study's critical path
        # (train, then GRO): at 10 epochs the study took 7,318 s, 118 s over the aim; at 5, 6,836 s. Test HR@10
        # is .0887 at 5 epochs (.1086 at 10, .1247 at 20), above the seed's 4.8% either way: it stays the
        # baseline it is meant to be, and no other arm uses its weights (the watermark stage checks it as an
        # independent model).
        # SASRec at most 40 epochs on cpu: on ML-1M its validation NDCG@10 was .1735 at epoch 40 against .1768 at
        # its best (epoch ~48, stopped ~58 by patience), and the 2-hour cpu study saves ~630 s for the defenses.
        "cpu": {"models": ("meanemb", "sasrec"), "epochs": 40, "patience": 10, "max_train_seconds": 3 * 3600.0,
                "pretrained_dir": "checkpoints", "baseline_epochs": 5, "snapshot_epochs": (2, 3, 4, 6, 8, 12, 16, 24, 32)},
        "full": {"models": MODEL_NAMES, "epochs": 200, "patience": 10, "pretrained_dir": "checkpoints",
                 "snapshot_epochs": (2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64)},
    }

    def __post_init__(self) -> None:
        unknown = [m for m in self.models if m not in MODEL_NAMES]
        if unknown or not self.models:
            raise ValueError(f"train setting 'models' must name some of {MODEL_NAMES}, got {self.models}")
        if self.windows not in WINDOWS:
            raise ValueError(f"train setting 'windows' must be one of {WINDOWS}, got {self.windows!r}")

    def train_config(self, seed: int, model: str = "") -> TrainConfig:
        epochs = self.baseline_epochs if model == "meanemb" and self.baseline_epochs else self.epochs
        return TrainConfig(epochs=epochs, batch_size=self.batch_size, lr=self.lr,
                           weight_decay=self.weight_decay, patience=self.patience, seed=seed,
                           eval_every=self.eval_every, max_train_seconds=self.max_train_seconds or None,
                           windows="newest" if model == "meanemb" else self.windows,
                           snapshot_epochs=() if model == "meanemb" else tuple(self.snapshot_epochs))


def model_overrides(name: str, settings: Settings) -> dict:
    """Architecture settings the stage passes to build_model (only the baseline's embedding size)."""
    return {"embedding_dim": settings.embedding_dim} if name == "meanemb" else {}


def bias_of(model, dataset, device) -> BiasReport:
    """The seed's observations, measured: genre consistency, popularity and recency bias of the
    model's top-10 lists for every test user (seen items excluded), with the per-genre breakdown."""

    def recommend_fn(histories, k):
        return recommend(model, histories, k=k, exclude_seen=True, device=device)

    return bias_on_test_users(dataset, recommend_fn, k=10)


def history_frame(name: str, result: TrainResult) -> pd.DataFrame:
    frame = pd.DataFrame(result.history)
    frame.insert(0, "model", name)
    return frame


def plot_curves(histories: dict[str, pd.DataFrame], path) -> None:
    """PNG with three panels: training loss, validation HR@10, validation NDCG@10 per epoch (``plots``)."""
    plots.save_png(plots.training_curves(pd.concat(histories.values(), ignore_index=True)), path)


def run(ctx: StudyContext, settings: Settings) -> dict:
    """Train and test every model of ``settings.models``; see the module docstring for the outputs."""
    out = ctx.stage_dir(STAGE)
    device = ctx.torch_device()
    if device.type == "cpu" and settings.threads > 0:
        torch.set_num_threads(settings.threads)
    with runs.stage_timer() as timer:
        dataset = ctx.load_dataset()
        per_model: dict[str, dict] = {}
        histories: dict[str, pd.DataFrame] = {}
        headline: dict[str, float] = {}
        for name in settings.models:
            checkpoint = out / f"{name}.pt"
            snapshot_epochs = settings.train_config(ctx.seed, name).snapshot_epochs
            if ctx.force:
                checkpoint.unlink(missing_ok=True)
                for epoch in snapshot_epochs:
                    snapshot_path(checkpoint, epoch).unlink(missing_ok=True)
            if settings.pretrained_dir and not checkpoint.exists():
                reuse_pretrained(Path(settings.pretrained_dir), name, dataset, settings, ctx.seed, checkpoint)
            seed_everything(ctx.seed)
            model = build_model(name, dataset.num_items, dataset.max_len, **model_overrides(name, settings))
            tick = time.perf_counter()
            result = train_model(model, dataset, settings.train_config(ctx.seed, name), device, checkpoint_path=checkpoint,
                                 progress=True)
            snapshots = keep_snapshots(ctx, name, dataset, settings, checkpoint, result, device)
            test = evaluate_model(result.model, dataset, "test", device=device, seed=ctx.seed)
            bias = bias_of(result.model, dataset, device)
            bias.save(out, f"{name}_bias")
            record = {
                "test": test,
                "bias": bias.figures,
                "valid": result.best_valid,
                "best_epoch": result.best_epoch,
                "epochs_run": result.epochs_run,
                "stop_reason": result.stop_reason,
                "epoch_seconds": result.epoch_seconds(),  # median of the training history (wherever it ran)
                # this run's pace: the history's when trained here, else timed on 8 batches here (reused checkpoint)
                "epoch_seconds_here": (time_training_epoch(result.model, dataset, settings.batch_size, device=device,
                                                           seed=ctx.seed,
                                                           windows=settings.train_config(ctx.seed, name).windows)
                                       if result.stop_reason == "cached" else result.epoch_seconds()),
                "train_wall_seconds": round(time.perf_counter() - tick, 1),
                "config": dataclasses.asdict(result.model.config),
                "parameters": sum(p.numel() for p in result.model.parameters()),
                "history": result.history,
                "snapshots": snapshots,
            }
            # The final checkpoint also carries the test figures, for `recsec evaluate` and later stages.
            if result.complete:
                save_checkpoint(checkpoint, result.model, name, dataset,
                                metrics={k: v for k, v in record.items() if k != "history"},
                                training_state=_final_state(checkpoint))
            per_model[name] = record
            histories[name] = history_frame(name, result)
            runs.write_json_atomic(out / "metrics.partial.json", {"models": per_model})
            headline[f"{name}_test_hr10"] = round(test["hr@10"], 4)
            headline[f"{name}_test_ndcg10"] = round(test["ndcg@10"], 4)
            headline[f"{name}_genre_consistency"] = round(bias.figures["genre_consistency"], 4)
            headline[f"{name}_popularity_lift"] = round(bias.figures["popularity_lift"], 4)
            if name == "sasrec":  # sasrec_cpu_epoch_seconds (or ..._cuda_... on a GPU)
                headline[f"sasrec_{device.type}_epoch_seconds"] = round(record["epoch_seconds_here"], 2)
        for name, frame in histories.items():
            _write_csv(frame, out / f"{name}_history.csv")
        plot_curves(histories, out / "curves.png")
        (out / "metrics.partial.json").unlink(missing_ok=True)
    metrics = {
        "dataset": dataset.name, "dataset_fingerprint": dataset.fingerprint, "device": str(device),
        "settings": dataclasses.asdict(settings), "models": per_model, **timer,
    }
    runs.write_stage_metrics(ctx.run_dir, STAGE, metrics, headline)
    return metrics


def pretrained_path(folder: Path, model_name: str, dataset_name: str) -> Path:
    """Where a finished checkpoint of ``model_name`` on ``dataset_name`` is looked for: e.g. checkpoints/sasrec_ml1m.pt."""
    return folder / f"{model_name}_{dataset_name.replace('-', '')}.pt"


def reuse_pretrained(folder: Path, name: str, dataset, settings: Settings, seed: int, checkpoint: Path) -> bool:
    """Copy a checkpoint trained exactly as this stage would train into ``checkpoint``.

    Reused only when it matches the dataset, the model's config and the
    training settings that shape the result; otherwise says why and returns
    False (the stage then trains from scratch). A finished checkpoint is used
    as it is; a partial one (training interrupted or time-capped) is resumed
    by ``train_model`` up to this stage's epochs, patience and time cap.
    """
    source = pretrained_path(folder, name, dataset.name)
    if not source.exists():
        print(f"{name}: no pretrained checkpoint at {source}; training")
        return False
    payload = read_checkpoint_payload(source)
    state = payload.get("training_state") or {}
    expected_model = dataclasses.asdict(build_model(name, dataset.num_items, dataset.max_len,
                                                    **model_overrides(name, settings)).config)
    expected_train = dataclasses.asdict(settings.train_config(seed, name))
    problems = []
    try:
        check_matches_dataset(payload, dataset, source)
    except ValueError as exc:
        problems.append(str(exc))
    if payload["model_name"] != name or payload["config"] != expected_model:
        problems.append(f"model {payload['model_name']} {payload['config']} is not {name} {expected_model}")
    if not state:
        problems.append("it has no training record")
    stored_train = stored_trajectory(state.get("train_config", {}))
    differing = [f for f in TRAJECTORY_FIELDS if stored_train[f] != expected_train[f]]
    if differing:
        problems.append(f"trained with other {differing}")
    if problems:
        print(f"{name}: not reusing {source}: {'; '.join(problems)}; training")
        return False
    tmp = checkpoint.with_name(f".{checkpoint.name}.tmp")
    shutil.copyfile(source, tmp)
    os.replace(tmp, checkpoint)
    for epoch in settings.train_config(seed, name).snapshot_epochs:  # its snapshots, where it has them
        if snapshot_path(source, epoch).exists():
            tmp = checkpoint.with_name(f".{snapshot_path(checkpoint, epoch).name}.tmp")
            shutil.copyfile(snapshot_path(source, epoch), tmp)
            os.replace(tmp, snapshot_path(checkpoint, epoch))
    status = "finished" if state.get("complete") else f"partial, resuming after epoch {state.get('epoch')}"
    print(f"{name}: reusing the checkpoint {source} ({status})")
    return True


def keep_snapshots(ctx: StudyContext, name: str, dataset, settings: Settings, checkpoint: Path, result: TrainResult,
                   device) -> list[dict]:
    """The snapshot records of ``name`` (``training.snapshot_record``), making the missing ones first.

    A snapshot epoch the training never reached (it stopped early) is skipped
    and said. A missing one of an epoch it did reach (a reused checkpoint) is
    made by ``regenerate_snapshots``. Each record also carries the validation
    NDCG@10 the run's own history has for that epoch (``history_valid_ndcg10``):
    a regenerated snapshot of the same trajectory shows the same figure.
    """
    config = settings.train_config(ctx.seed, name)
    if not config.snapshot_epochs:
        return []
    reached = [e for e in config.snapshot_epochs if e <= result.epochs_run]
    if len(reached) < len(config.snapshot_epochs):
        print(f"{name}: no snapshot of epochs {[e for e in config.snapshot_epochs if e > result.epochs_run]}: "
              f"training stopped after epoch {result.epochs_run}")
    missing = missing_snapshots(checkpoint, reached)
    if missing:
        print(f"{name}: training epochs 1-{max(missing)} again (seed {ctx.seed}) for the snapshots of epochs {missing}")

        def build():
            seed_everything(ctx.seed)
            return build_model(name, dataset.num_items, dataset.max_len, **model_overrides(name, settings))

        regenerate_snapshots(build, dataset, config, checkpoint, missing, device, progress=True)
    history = {row["epoch"]: row.get("valid_ndcg@10") for row in result.history}
    return [{**snapshot_record(snapshot_path(checkpoint, e)), "history_valid_ndcg10": history.get(e)}
            for e in reached]


def _final_state(checkpoint) -> dict | None:
    """The training_state of a finished checkpoint (kept so a rerun returns it without training)."""
    return read_checkpoint_payload(checkpoint).get("training_state") if checkpoint.exists() else None


def _write_csv(frame: pd.DataFrame, path) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    frame.to_csv(tmp, index=False)
    tmp.replace(path)
