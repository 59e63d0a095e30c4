"""Training a recommender on its own objective, with early stopping and resumable checkpoints.

One loop for every model: ``model.training_loss(batch)`` holds what differs
(full cross-entropy at every position for SASRec/NARM/MeanEmbedding, masked
items for BERT4Rec). Each epoch shuffles the users with a generator seeded by
(seed, epoch) and reseeds torch's global generator (dropout, masking) the
same way, so a run resumed from a checkpoint continues exactly as the
uninterrupted run would have.

Training rows (``TrainConfig.windows``): SASRec and SASRec+ train on each
user's newest max_len + 1 items ("newest"). On ML-1M that never predicts a
third of the training interactions, the older part of the 1,549 longest
histories; "all" cuts whole histories into such windows
(``sequences.training_windows``), 8,617 rows instead of 6,040.

Early stopping: after every ``eval_every`` epochs the model is scored on the
validation split (full ranking, seen items filtered); the best NDCG@10 weights
are kept, and training stops when ``patience`` evaluations in a row did not
improve on it.

Divergence: a NaN or infinite training loss, or validation scores that are
NaN/infinite for any user, stop training with ``NonFiniteError`` naming the
epoch and batch. Nothing after that point is saved: a diverged model's scores
are meaningless, and the metrics would rank them as if they meant something.
The GRO and surrogate loops use the same check (``raise_if_not_finite``).

Snapshots (``TrainConfig.snapshot_epochs``): after each listed epoch the
weights *of that epoch* (not the best so far) are saved beside the checkpoint
as ``<stem>_epoch<N>.pt``, atomically, with their validation figures (measured
for the snapshot when that epoch was not a validation epoch). They are weaker
models of the very same training, with no aim but the training objective: the
utility-matched null a defense is compared with (``gro.null``). A snapshot is
written before the epoch's training state, so a run resumed after a crash
redoes that epoch and writes the same snapshot again. A run resumed past a
snapshot epoch whose file is missing (e.g. a reused pretrained checkpoint)
cannot write it; ``regenerate_snapshots`` retrains the first epochs with the
same seed, which repeats the same trajectory (each epoch reseeds everything).

Checkpoint at ``checkpoint_path`` (written after every evaluation, atomically):
the best weights as the checkpoint's model, and a ``training_state`` with the
current weights, optimizer state, history and counters. ``complete`` is True
once training finished (epochs done or early stop); a later call with a
complete checkpoint returns its result without training, a partial one is
resumed.
"""

from __future__ import annotations

import copy
import math
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from recsec_lib.recommend.checkpoints import check_matches_dataset, read_checkpoint_payload, save_checkpoint
from recsec_lib.recommend.evaluation import evaluate_model
from recsec_lib.models.base import SequentialRecommender
from recsec_lib.models.registry import model_name_of
from recsec_lib.recommend.sequences import WINDOWS, pad_left, training_windows


class NonFiniteError(ValueError):
    """Training diverged: a loss or validation score became NaN or infinite."""


def raise_if_not_finite(value, what: str) -> float:
    """``value`` as a float; NonFiniteError naming ``what`` (e.g. "sasrec training loss at epoch 3, batch 7")
    when it is NaN or infinite.

    Shared by every training loop, so that a diverged run stops with one clear
    line instead of being kept as the "best" epoch.
    """
    number = float(value)
    if not math.isfinite(number):
        raise NonFiniteError(f"{what} is {number}: training diverged (try a smaller learning rate); "
                             f"the run was stopped and this epoch not saved")
    return number


# Adam's first step moves a weight by up to lr / (1 - beta1) (bias correction, beta1 = 0.9): torch computes that
# step size in the weights' float32 and stops with "value cannot be converted to type float without overflow"
# deep inside the optimiser when it is larger than float32's largest number. Learning rates above this are refused.
ADAM_BETA1 = 0.9
MAX_ADAM_LR = float(torch.finfo(torch.float32).max) * (1 - ADAM_BETA1)  # about 3.4e37


def check_adam_lr(lr: float, name: str = "lr") -> None:
    """Refuse a learning rate Adam cannot take: not positive, not finite, or so large its first step overflows."""
    if not (lr > 0 and math.isfinite(lr)):
        raise ValueError(f"{name} must be positive and finite, got {lr}")
    if lr > MAX_ADAM_LR:
        step = lr / (1 - ADAM_BETA1)
        raise ValueError(f"{name} {lr:g} is too large for Adam: its first step, lr / (1 - beta1) = {step:g}, "
                         f"overflows float32 (lr at most {MAX_ADAM_LR:.2g}; learning rates are usually 1e-4 to 1e-2)")


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation settings. Defaults: the seed's (epochs 30, batch 128, Adam lr 1e-3, weight decay 1e-5).

    The SASRec+ recipe (Klenitskiy & Vasilev 2023) uses plain Adam without
    weight decay (``weight_decay=0``), patience 10 and up to 100-200 epochs.
    """

    epochs: int = 30  # maximum number of passes over the training users
    batch_size: int = 128  # users per batch
    lr: float = 1e-3  # Adam learning rate
    weight_decay: float = 1e-5  # Adam's (L2) weight decay
    patience: int = 10  # evaluations without a better validation NDCG@10 before stopping; 0 = never stop early
    seed: int = 42  # shuffling, dropout and masking
    eval_every: int = 1  # validate every this many epochs
    max_train_seconds: float | None = None  # stop (resumably) once training took this long; None = no cap
    eval_batch_size: int = 512  # users per evaluation batch
    bf16: bool = True  # bf16 autocast when training on CUDA (ignored on CPU)
    windows: str = "newest"  # training rows per user: "newest" max_len + 1 items (SASRec+) or "all" of its history
    # Epochs after which the weights of that moment are also saved as ``<checkpoint>_epoch<N>.pt`` (needs a
    # checkpoint_path): weaker models of the same training, e.g. the utility-matched null of a defense.
    snapshot_epochs: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size", "eval_every", "eval_batch_size"):
            if getattr(self, name) <= 0:
                raise ValueError(f"TrainConfig.{name} must be positive, got {getattr(self, name)}")
        if self.patience < 0:
            raise ValueError(f"TrainConfig.patience must be >= 0, got {self.patience}")
        check_adam_lr(self.lr, "TrainConfig.lr")
        if not (self.weight_decay >= 0 and math.isfinite(self.weight_decay)):
            raise ValueError(f"TrainConfig.weight_decay must be >= 0 and finite, got {self.weight_decay}")
        if self.windows not in WINDOWS:
            raise ValueError(f"TrainConfig.windows must be one of {WINDOWS}, got {self.windows!r}")
        if self.max_train_seconds is not None and self.max_train_seconds <= 0:
            raise ValueError(f"TrainConfig.max_train_seconds must be positive or None, got {self.max_train_seconds}")
        epochs = tuple(self.snapshot_epochs)
        if any(isinstance(e, bool) or not isinstance(e, (int, np.integer)) or e <= 0 for e in epochs) \
                or len(set(epochs)) != len(epochs):
            raise ValueError(f"TrainConfig.snapshot_epochs must be distinct positive epoch numbers, "
                             f"got {self.snapshot_epochs!r}")
        object.__setattr__(self, "snapshot_epochs", tuple(sorted(int(e) for e in epochs)))


@dataclass
class TrainResult:
    model: SequentialRecommender  # with the best validation weights loaded
    history: list[dict] = field(default_factory=list)  # one row per epoch: epoch, loss, seconds, valid_hr@10, ...
    best_epoch: int = 0  # 1-based epoch of the best validation NDCG@10 (0 = never evaluated)
    best_valid: dict = field(default_factory=dict)  # validation metrics of that epoch
    stop_reason: str = ""  # "epochs" | "early_stop" | "time_cap" | "cached"
    epochs_run: int = 0  # epochs done in total (including resumed ones)
    snapshots: dict[int, Path] = field(default_factory=dict)  # epoch -> its snapshot file, for those that exist

    @property
    def complete(self) -> bool:
        return self.stop_reason in ("epochs", "early_stop", "cached")

    def epoch_seconds(self) -> float:
        """Median training seconds per epoch (without validation)."""
        seconds = [row["train_seconds"] for row in self.history if "train_seconds" in row]
        return float(np.median(seconds)) if seconds else float("nan")


# TrainConfig fields that change the course of training: a run can only be resumed with the same values.
# (epochs, patience, max_train_seconds and eval_batch_size may change between the interrupted run and its resumption.)
TRAJECTORY_FIELDS = ("batch_size", "lr", "weight_decay", "seed", "eval_every", "bf16", "windows")
# What a checkpoint saved before a field existed was trained with (its train_config lacks the key).
TRAJECTORY_DEFAULTS = {"windows": "newest"}


def stored_trajectory(train_config: dict) -> dict:
    """The TRAJECTORY_FIELDS of a stored train_config, older checkpoints' missing fields filled with their defaults."""
    return {name: train_config.get(name, TRAJECTORY_DEFAULTS.get(name)) for name in TRAJECTORY_FIELDS}


def training_matrix(dataset, max_len: int, windows: str = "newest") -> np.ndarray:
    """[R, max_len + 1] left-padded training rows (``sequences.training_windows``) with at least 2 items.

    One column more than the model reads: the model predicts column t+1 from
    columns <= t, so the newest max_len inputs all get a target. With
    ``windows="newest"`` there is one row per user with 2 or more training items.
    """
    rows = [row for row in training_windows(dataset.train_sequences(), max_len + 1, windows) if len(row) >= 2]
    if not rows:
        raise ValueError(f"dataset {dataset.name!r} has no user with at least 2 training items")
    return pad_left(rows, max_len + 1)


def time_training_epoch(model: SequentialRecommender, dataset, batch_size: int = 128, max_batches: int | None = 8,
                        device: str | torch.device = "cpu", seed: int = 0, windows: str = "newest") -> float:
    """Seconds one training epoch of ``model`` takes on this machine, from ``max_batches`` timed steps.

    Trains a copy (``model`` is not changed) with Adam on shuffled training
    batches, after one untimed warm-up step, and scales the time per step to
    the epoch's number of batches (``max_batches=None`` times the whole epoch).
    The train stage uses it for a checkpoint trained elsewhere, whose history
    says how long training took *there*; the benchmark uses it too.
    """
    device = torch.device(device)
    trained = copy.deepcopy(model).to(device).train()
    matrix = torch.from_numpy(training_matrix(dataset, trained.max_len, windows))  # [R, max_len + 1]
    optimizer = torch.optim.Adam(trained.parameters(), lr=1e-3)
    order = torch.randperm(len(matrix), generator=torch.Generator().manual_seed(seed))
    starts = list(range(0, len(matrix), batch_size))
    timed = starts[:max_batches] if max_batches else starts

    def step(begin: int) -> None:
        loss = trained.training_loss(matrix[order[begin:begin + batch_size]].to(device))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    step(starts[0])  # warm-up: first-call allocations are not part of an epoch's pace
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    tick = time.perf_counter()
    for begin in timed:
        step(begin)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return (time.perf_counter() - tick) * len(starts) / len(timed)


def snapshot_path(checkpoint_path: str | Path, epoch: int) -> Path:
    """Where ``train_model`` saves the weights after ``epoch``: sasrec.pt -> sasrec_epoch4.pt beside it."""
    path = Path(checkpoint_path)
    return path.with_name(f"{path.stem}_epoch{int(epoch)}{path.suffix}")


def missing_snapshots(checkpoint_path: str | Path, epochs) -> list[int]:
    """The epochs of ``epochs`` whose snapshot file beside ``checkpoint_path`` does not exist (ascending)."""
    return sorted(int(e) for e in epochs if not snapshot_path(checkpoint_path, e).exists())


def _existing_snapshots(checkpoint_path: Path | None, epochs) -> dict[int, Path]:
    if checkpoint_path is None:
        return {}
    return {int(e): snapshot_path(checkpoint_path, e) for e in epochs if snapshot_path(checkpoint_path, e).exists()}


def _epoch_generator(seed: int, epoch: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed * 1_000_003 + epoch)


def _resume_state(checkpoint_path: Path | None, dataset, model: SequentialRecommender, config: TrainConfig):
    """The stored training_state if ``checkpoint_path`` holds a checkpoint of this model and data, else None."""
    if checkpoint_path is None or not checkpoint_path.exists():
        return None
    payload = read_checkpoint_payload(checkpoint_path)
    check_matches_dataset(payload, dataset, checkpoint_path)
    if payload["model_name"] != model_name_of(model) or payload["config"] != asdict(model.config):
        raise ValueError(f"{checkpoint_path} holds a {payload['model_name']} model with config {payload['config']}, "
                         f"not the {model_name_of(model)} {asdict(model.config)} being trained; delete it or "
                         f"choose another path")
    state = payload.get("training_state")
    if state is None:
        raise ValueError(f"{checkpoint_path} is a finished model without training state; it cannot be resumed")
    stored = stored_trajectory(state.get("train_config", {}))
    changed = {name: (stored[name], value) for name, value in asdict(config).items()
               if name in TRAJECTORY_FIELDS and stored[name] != value}
    if changed:
        raise ValueError(f"{checkpoint_path} was trained with other settings (stored, requested): {changed}; "
                         f"delete it to start over")
    state["best_state_dict"] = payload["state_dict"]
    return state


def train_model(model: SequentialRecommender, dataset, config: TrainConfig = TrainConfig(),
                device: str | torch.device = "cpu", checkpoint_path: str | Path | None = None,
                progress: bool = True) -> TrainResult:
    """Train ``model`` on ``dataset``'s training sequences; returns the best-on-validation model.

    Resumes from ``checkpoint_path`` when it holds a partial run of the same
    model, data and config; returns at once when it holds a complete one.
    """
    device = torch.device(device)
    checkpoint_path = Path(checkpoint_path) if checkpoint_path is not None else None
    if config.snapshot_epochs and checkpoint_path is None:
        raise ValueError("TrainConfig.snapshot_epochs needs a checkpoint_path: the snapshots are saved beside it")
    model.to(device)
    model_name = model_name_of(model)
    matrix = torch.from_numpy(training_matrix(dataset, model.max_len, config.windows))  # [R, max_len + 1]
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    use_bf16 = config.bf16 and device.type == "cuda"

    history: list[dict] = []
    best_ndcg, best_epoch, best_valid, bad_evals, start_epoch = -math.inf, 0, {}, 0, 0
    best_state = copy.deepcopy(model.state_dict())
    state = _resume_state(checkpoint_path, dataset, model, config)
    if state is not None:
        best_state = state["best_state_dict"]
        if state["complete"]:
            model.load_state_dict(best_state)
            model.eval()
            return TrainResult(model, state["history"], state["best_epoch"], state["best_valid"], "cached",
                               state["epoch"], _existing_snapshots(checkpoint_path, config.snapshot_epochs))
        model.load_state_dict(state["current_state_dict"])
        optimizer.load_state_dict(state["optimizer"])
        history, best_epoch, best_valid = state["history"], state["best_epoch"], state["best_valid"]
        best_ndcg, bad_evals, start_epoch = state["best_ndcg"], state["bad_evals"], state["epoch"]
        if progress:
            print(f"{model_name}: resuming after epoch {start_epoch} from {checkpoint_path}")

    def save(epoch: int, complete: bool) -> None:
        if checkpoint_path is None:
            return
        training_state = {
            "train_config": asdict(config), "epoch": epoch, "complete": complete, "history": history,
            "best_epoch": best_epoch, "best_valid": best_valid, "best_ndcg": best_ndcg, "bad_evals": bad_evals,
            # clone: on CPU .cpu() is the live tensor, which load_state_dict(best_state) below would overwrite
            "current_state_dict": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
            "optimizer": optimizer.state_dict() if not complete else {},
        }
        live = copy.deepcopy(model.state_dict())
        model.load_state_dict(best_state)  # the checkpoint's model is the best one
        save_checkpoint(checkpoint_path, model, model_name, dataset,
                        metrics={"best_epoch": best_epoch, "valid": best_valid}, training_state=training_state)
        model.load_state_dict(live)

    def validate(epoch: int) -> dict:
        """Validation figures of the current weights (full ranking, seen items filtered); NonFiniteError if diverged."""
        valid = evaluate_model(model, dataset, "valid", config.eval_batch_size, device,
                               ks=(10,), sampled=False, unfiltered=False)
        if valid["nonfinite_users"]:
            raise NonFiniteError(f"{model_name} validation at epoch {epoch}: {valid['nonfinite_users']} of "
                                 f"{valid['users']} users got NaN or infinite scores: training diverged "
                                 f"(try a smaller learning rate); the run was stopped and this epoch not saved")
        raise_if_not_finite(valid["ndcg@10"], f"{model_name} validation NDCG@10 at epoch {epoch}")
        return valid

    def save_snapshot(epoch: int, valid: dict) -> None:
        """The weights after ``epoch`` (not the best so far) with their validation figures, atomically."""
        save_checkpoint(snapshot_path(checkpoint_path, epoch), model, model_name, dataset,
                        metrics={"snapshot_epoch": epoch, "valid": valid, "train_config": asdict(config)})

    trained_seconds = sum(row.get("train_seconds", 0.0) for row in history)
    stop_reason = "epochs"
    epoch = start_epoch
    for epoch in range(start_epoch + 1, config.epochs + 1):
        model.train()
        torch.manual_seed(config.seed * 1_000_003 + epoch)  # dropout / masking of this epoch
        order = torch.randperm(len(matrix), generator=_epoch_generator(config.seed, epoch))
        tick = time.perf_counter()
        total, count = 0.0, 0
        bar = tqdm(range(0, len(matrix), config.batch_size), desc=f"{model_name} epoch {epoch}",
                   disable=None if progress else True, leave=False)
        for batch_number, begin in enumerate(bar, start=1):
            batch = matrix[order[begin:begin + config.batch_size]].to(device)  # [B, max_len + 1]
            with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=use_bf16):
                loss = model.training_loss(batch)
            total += raise_if_not_finite(loss.detach(), f"{model_name} training loss at epoch {epoch}, "
                                                        f"batch {batch_number}")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            count += 1
        train_seconds = time.perf_counter() - tick
        trained_seconds += train_seconds
        row = {"epoch": epoch, "loss": total / count, "train_seconds": round(train_seconds, 3)}

        valid = None
        if epoch % config.eval_every == 0 or epoch == config.epochs:
            valid = validate(epoch)
            row.update({"valid_hr@10": valid["hr@10"], "valid_ndcg@10": valid["ndcg@10"],
                        "eval_seconds": valid["eval_seconds"]})
            if valid["ndcg@10"] > best_ndcg:
                best_ndcg, best_epoch, best_valid, bad_evals = valid["ndcg@10"], epoch, valid, 0
                best_state = copy.deepcopy(model.state_dict())
            else:
                bad_evals += 1
        history.append(row)
        if epoch in config.snapshot_epochs:  # before the state is saved: a resumed run redoes this epoch
            save_snapshot(epoch, valid if valid is not None else validate(epoch))
        if progress:
            shown = ", ".join(f"{k}={v:.4g}" for k, v in row.items() if k != "epoch")
            print(f"{model_name} epoch {epoch}: {shown}", flush=True)

        if config.patience and bad_evals >= config.patience:
            stop_reason = "early_stop"
        elif config.max_train_seconds is not None and trained_seconds >= config.max_train_seconds \
                and epoch < config.epochs:
            stop_reason = "time_cap"
        if stop_reason != "epochs":
            break
        if "valid_ndcg@10" in row:
            save(epoch, complete=False)

    save(epoch, complete=stop_reason != "time_cap")
    model.load_state_dict(best_state)
    model.eval()
    return TrainResult(model, history, best_epoch, best_valid, stop_reason, epoch,
                       _existing_snapshots(checkpoint_path, config.snapshot_epochs))


def snapshot_record(path: str | Path) -> dict:
    """{"epoch", "valid_ndcg10", "valid_hr10", "path"} of a snapshot written by ``train_model``; raises naming the
    file when it is not one (a checkpoint without ``snapshot_epoch`` in its metrics)."""
    payload = read_checkpoint_payload(path)
    metrics = payload.get("metrics") or {}
    if "snapshot_epoch" not in metrics or "ndcg@10" not in (metrics.get("valid") or {}):
        raise ValueError(f"{path} is not a training snapshot (its metrics lack snapshot_epoch or valid ndcg@10)")
    return {"epoch": int(metrics["snapshot_epoch"]), "valid_ndcg10": float(metrics["valid"]["ndcg@10"]),
            "valid_hr10": float(metrics["valid"]["hr@10"]), "path": str(path)}


def regenerate_snapshots(build: Callable[[], SequentialRecommender], dataset, config: TrainConfig,
                         checkpoint_path: str | Path, epochs, device: str | torch.device = "cpu",
                         progress: bool = True) -> dict[int, Path]:
    """Write the snapshots ``<checkpoint>_epoch<N>.pt`` of ``epochs`` by training the first max(epochs) epochs again.

    For a checkpoint whose training ran without these snapshots (a reused
    pretrained one). ``build()`` must return the model exactly as the original
    run started it (same seeding before ``build_model``); with the same
    ``config`` (its trajectory fields) every epoch repeats the original one, up
    to floating-point differences between machines or thread counts, which the
    snapshot's validation figures beside the original history show. Training
    goes through a side checkpoint ``<stem>_snapshotrun.pt`` (resumable,
    removed at the end); each snapshot is moved into place atomically.
    Returns epoch -> path.
    """
    checkpoint_path = Path(checkpoint_path)
    epochs = sorted({int(e) for e in epochs})
    if not epochs:
        return {}
    side = checkpoint_path.with_name(f"{checkpoint_path.stem}_snapshotrun{checkpoint_path.suffix}")
    run_config = replace(config, epochs=max(epochs), patience=0, max_train_seconds=None, snapshot_epochs=tuple(epochs))
    train_model(build(), dataset, run_config, device, checkpoint_path=side, progress=progress)
    paths = {}
    for epoch in epochs:
        if snapshot_path(side, epoch).exists():  # else moved by an earlier call that stopped before the end
            os.replace(snapshot_path(side, epoch), snapshot_path(checkpoint_path, epoch))
        if not snapshot_path(checkpoint_path, epoch).exists():
            raise FileNotFoundError(f"{side} trained {max(epochs)} epochs but wrote no snapshot of epoch {epoch}; "
                                    f"delete {side} and run again")
        paths[epoch] = snapshot_path(checkpoint_path, epoch)
    side.unlink(missing_ok=True)
    return paths
