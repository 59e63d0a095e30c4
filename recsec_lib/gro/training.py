"""Training a target recommender with the GRO defense (or the seed's variant).

One optimisation step on a batch of training sequences (losses in ``gro.loss``):

1. the target's own objective L_target = ``target.training_loss(seqs)`` and,
   from the same pass where the model allows it (SASRec), the target's scores
   after the chosen prefixes of each training input (``training_loss_and_scores_at``);
   its top-k list there is detached: it is what the black box would return;
2. the student's scores after the same prefixes and its margin loss L_student
   on those lists; g = dL_student/d(listed scores) gives A' (``adversarial_items``);
3. L_swap on the target's scores; the step minimises
   L_target + L_student + λ · L_swap (the student's and the target's parameters
   are disjoint, so one backward pass trains both: L_student reaches only the
   student, L_target and L_swap only the target).

Prefixes: every position of every training input (the sequence without its
last item) is what the paper does; on CPU the cost is dominated by scoring all
items at every position, so ``GROConfig.positions_per_sequence`` can keep only
the last P positions of each sequence for steps 1–3 (L_target always uses all
of them). Prefix scores come from ``model.scores_at``: one pass for causal
models, the stacked prefixes through ``forward`` for BERT4Rec.

The student is thrown away afterwards; only the defended target is kept.
Training state is saved atomically after every epoch, and a run started again
with the same state file continues where it stopped.

Which target is kept (``GROConfig.kept_epoch``): "last" keeps the target after
the last epoch run (the authors' code); "best" keeps the best-validating one,
which needs a ``validate(target) -> float`` from the caller (validation NDCG@10
of the target as served). ``patience > 0`` (also needs ``validate``) stops
after that many epochs without a better validation score: the same early
stopping as the undefended target's training (``training.train_model``), so a
from-scratch GRO target is compared with an undefended one trained with equal
care, not cut at an arbitrary epoch.

The honest control for GRO is λ = 0 run through this same loop (same
optimiser, student, epochs and kept-epoch rule): L_swap is then computed but
weighs nothing, so any difference between a λ > 0 target and the λ = 0 target
is the swap loss's doing, not the fine-tuning's.
"""

from __future__ import annotations

import copy
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from recsec_lib.gro.loss import (adversarial_items, check_zero_gradient_rule, seed_variant_loss, student_loss,
                                 swap_loss, zero_gradient_share)
from recsec_lib.recommend.losses import sample_negatives
from recsec_lib.models.base import SequentialRecommender
from recsec_lib.common.files import atomic_path
from recsec_lib.recommend.sequences import batches, pad_left
from recsec_lib.recommend.training import raise_if_not_finite

METHODS = ("gro", "seed-variant", "none")  # "none" = the same loop with L_target only (cost baseline)
KEPT_EPOCHS = ("best", "last")  # which epoch's target a run returns


@dataclass(frozen=True)
class GROConfig:
    """Everything that decides a GRO training run (saved beside its checkpoints)."""

    method: str = "gro"  # gro (the paper) | seed-variant (ablation) | none (L_target only)
    lam: float = 1.0  # λ, weight of the swap loss (the authors use 1 on ML-1M)
    epochs: int = 10
    batch_size: int = 128
    lr: float = 1e-3  # Adam learning rate of the target
    student_lr: float = 1e-3  # Adam learning rate of the student
    k: int = 100  # length of the returned lists the student learns from
    margin_order: float = 0.5  # m1 of the student's margin loss
    margin_negative: float = 0.5  # m2
    swap_margin: float = 0.0  # m_swap (the public code's value)
    seed_margin: float = 0.3  # margin of the seed variant's loss
    seed_temperature: float = 1.0  # temperature of the seed variant's pairwise sigmoid
    positions_per_sequence: int = 0  # prefixes per sequence for the student and the swap (0 = all)
    filter_seen: bool = True  # lists exclude the prefix's own items, as the black box serves them
    grad_clip: float = 5.0  # max gradient norm of each model (the public code clips at 5)
    max_batches_per_epoch: int = 0  # 0 = all batches (a cap is for quick timing only)
    # Batches in which only the student learns (from the target's lists) before GRO starts; 0 = none (the paper,
    # which trains both from scratch together). When fine-tuning a pretrained target for a few batches, a fresh
    # student's loss gradients are noise, and so would be the swaps A' built from them.
    student_warmup_batches: int = 0
    # Epochs without a better validation score of the target before stopping; the best-validating target is kept.
    # 0 = run every epoch and keep the last target (the authors' code). Needs a ``validate`` function.
    patience: int = 0
    # What A' does where the student's gradient g_i is exactly 0: "keep" the listed item, or "lowest_index"
    # (the authors' code: their unmasked argmax sends the row to item 1). See gro.loss.
    zero_gradient_rule: str = "keep"
    kept_epoch: str = "last"  # last: the target after the last epoch run (the authors' code); best: best-validating
    seed: int = 42

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"parameter 'method' must be one of {METHODS}, got {self.method!r}")
        check_zero_gradient_rule(self.zero_gradient_rule)
        if self.kept_epoch not in KEPT_EPOCHS:
            raise ValueError(f"parameter 'kept_epoch' must be one of {KEPT_EPOCHS}, got {self.kept_epoch!r}")
        checks = {
            "lam": self.lam >= 0, "epochs": self.epochs >= 0, "batch_size": self.batch_size > 0,
            "lr": self.lr > 0, "student_lr": self.student_lr > 0, "k": self.k > 0,
            "positions_per_sequence": self.positions_per_sequence >= 0, "grad_clip": self.grad_clip > 0,
            "max_batches_per_epoch": self.max_batches_per_epoch >= 0, "seed_temperature": self.seed_temperature > 0,
            "student_warmup_batches": self.student_warmup_batches >= 0, "patience": self.patience >= 0,
        }
        for name, ok in checks.items():
            if not ok:
                raise ValueError(f"parameter {name!r} is out of range: {getattr(self, name)!r}")


@dataclass
class GROResult:
    """The defended target and the per-epoch record of the run."""

    target: SequentialRecommender  # the kept target: the last one, or the best-validating one (kept_epoch)
    history: list[dict] = field(default_factory=list)  # one dict per epoch: losses, seconds (and valid_score)
    best_epoch: int = 0  # 1-based epoch of the kept target (0 = the starting weights, no epoch run)
    stop_reason: str = "epochs"  # "epochs" | "early_stop"


def train_gro(
    target: SequentialRecommender,
    student: SequentialRecommender,
    sequences: Sequence[Sequence[int]],
    config: GROConfig,
    device: torch.device | str = "cpu",
    state_path: str | os.PathLike | None = None,
    progress: bool = True,
    validate: Callable[[SequentialRecommender], float] | None = None,
) -> GROResult:
    """Train ``target`` in place with GRO (``config.method``) and return it with the history.

    ``student`` must be a freshly initialised model of the target's architecture;
    ``sequences`` are the training sequences (``SequenceDataset.train_sequences()``).
    With ``state_path`` the training state is saved there after each epoch and a
    matching saved state is resumed from. ``validate(target)`` (higher is better,
    e.g. validation NDCG@10) is required when ``config.patience > 0``; the
    returned target then has the best-validating weights.
    """
    _check_models(target, student, config)
    if config.patience and validate is None:
        raise ValueError("parameter 'patience' > 0 needs a validate function (the target's validation score)")
    if config.kept_epoch == "best" and validate is None:
        raise ValueError("parameter 'kept_epoch' = 'best' needs a validate function (the target's validation score)")
    device = torch.device(device)
    target.to(device)
    student.to(device)
    usable = [np.asarray(seq, dtype=np.int64) for seq in sequences if len(seq) >= 2]
    if not usable:
        raise ValueError("no training sequence has 2 or more items")
    # max_len + 1 columns: training_loss reads seqs[:, :-1] -> seqs[:, 1:]; prefixes use the last max_len
    padded = torch.from_numpy(pad_left(usable, target.max_len + 1))  # [U, max_len + 1]

    target_opt = torch.optim.Adam(target.parameters(), lr=config.lr)
    student_opt = torch.optim.Adam(student.parameters(), lr=config.student_lr)
    negatives_rng = torch.Generator(device=device)
    negatives_rng.manual_seed(config.seed)
    torch.manual_seed(config.seed)
    history: list[dict] = []
    start_epoch = 0
    best = _Best()
    if state_path is not None and Path(state_path).exists():
        start_epoch, history, best = _load_state(state_path, config, target, student, target_opt, student_opt,
                                                 negatives_rng)

    if start_epoch == 0 and config.student_warmup_batches and config.method != "none":
        _warm_up_student(target, student, padded, config, device, student_opt, negatives_rng, progress)
    stop_reason = "early_stop" if config.patience and best.bad_epochs >= config.patience else "epochs"
    epoch = start_epoch
    while stop_reason == "epochs" and epoch < config.epochs:
        row = _train_one_epoch(target, student, padded, config, device, target_opt, student_opt,
                               negatives_rng, epoch, progress)
        epoch += 1
        if validate is not None:
            row["valid_score"] = float(validate(target))
            best.update(epoch, row["valid_score"], target)
            if config.patience and best.bad_epochs >= config.patience:
                stop_reason = "early_stop"
        history.append(row)
        if progress:
            print(f"{config.method} {config.zero_gradient_rule} λ={config.lam:g} " + ", ".join(
                f"{k}={v:.4g}" for k, v in row.items() if k != "epoch") + f" (epoch {epoch})", flush=True)
        if state_path is not None:
            _save_state(state_path, config, epoch, history, target, student, target_opt, student_opt,
                        negatives_rng, best)
    if config.kept_epoch == "best" and best.state is not None:
        target.load_state_dict(best.state)
    target.eval()
    kept = best.epoch if config.kept_epoch == "best" else epoch
    return GROResult(target=target, history=history, best_epoch=kept, stop_reason=stop_reason)


@dataclass
class _Best:
    """The best-validating target so far (used when ``GROConfig.patience > 0``)."""

    epoch: int = 0
    score: float = float("-inf")
    bad_epochs: int = 0
    state: dict | None = None  # the target's weights at ``epoch`` (CPU copies)

    def update(self, epoch: int, score: float, target: SequentialRecommender) -> None:
        if score > self.score:
            self.epoch, self.score, self.bad_epochs = epoch, score, 0
            self.state = {k: v.detach().cpu().clone() for k, v in target.state_dict().items()}
        else:
            self.bad_epochs += 1


def time_one_epoch(
    target: SequentialRecommender,
    student: SequentialRecommender,
    sequences: Sequence[Sequence[int]],
    config: GROConfig,
    device: torch.device | str = "cpu",
) -> float:
    """Seconds of one training epoch of ``config.method`` on copies of the models.

    The originals are left untouched, so the same pretrained target can be timed
    undefended (method "none") and defended in one run for the cost ratio.
    """
    one_epoch = GROConfig(**{**asdict(config), "epochs": 1, "patience": 0, "kept_epoch": "last"})
    timed = train_gro(copy.deepcopy(target), copy.deepcopy(student), sequences, one_epoch, device=device,
                      progress=False)
    return float(timed.history[0]["seconds"])


def fresh_like(model: SequentialRecommender) -> SequentialRecommender:
    """A freshly initialised model of ``model``'s registered architecture and config (e.g. the student)."""
    from recsec_lib.models.registry import build_model, model_name_of

    return build_model(model_name_of(model), model.num_items, model.max_len, **asdict(model.config))


def defend_target(
    undefended: SequentialRecommender,
    sequences: Sequence[Sequence[int]],
    config: GROConfig,
    device: torch.device | str = "cpu",
    from_scratch: bool = False,
    state_path: str | os.PathLike | None = None,
    progress: bool = True,
    validate: Callable[[SequentialRecommender], float] | None = None,
) -> GROResult:
    """GRO-train a copy of ``undefended`` (or a fresh model of its architecture) with a fresh student.

    ``undefended`` itself is not changed. Fine-tuning the pretrained target is
    the cheap option (what the authors do on the bigger datasets); training from
    scratch is what their code does on ML-1M. ``validate`` as in ``train_gro``.
    """
    torch.manual_seed(config.seed)
    target = fresh_like(undefended) if from_scratch else copy.deepcopy(undefended)
    student = fresh_like(undefended)
    return train_gro(target, student, sequences, config, device=device, state_path=state_path, progress=progress,
                     validate=validate)


def _check_models(target: SequentialRecommender, student: SequentialRecommender, config: GROConfig) -> None:
    if not isinstance(target, SequentialRecommender) or not isinstance(student, SequentialRecommender):
        raise TypeError("target and student must be SequentialRecommender models")
    if student is target:
        raise ValueError("the student must be a separate model (a fresh copy of the target's architecture)")
    if student.num_items != target.num_items or student.max_len != target.max_len:
        raise ValueError(
            f"student (num_items={student.num_items}, max_len={student.max_len}) must match the target "
            f"(num_items={target.num_items}, max_len={target.max_len})"
        )
    if config.method != "none" and config.k >= target.num_items:
        raise ValueError(f"parameter 'k' ({config.k}) must be smaller than the number of items ({target.num_items})")


def _train_one_epoch(target, student, padded, config, device, target_opt, student_opt, negatives_rng,
                     epoch, progress) -> dict:
    """One pass over the shuffled training sequences; returns the epoch's mean losses and seconds."""
    target.train()
    student.train()
    order = np.random.default_rng(config.seed + epoch).permutation(len(padded))  # same order when resumed
    chunks = batches(len(order), config.batch_size)
    if config.max_batches_per_epoch:
        chunks = chunks[: config.max_batches_per_epoch]
    totals = {"loss_target": 0.0, "loss_student": 0.0, "loss_swap": 0.0, "zero_gradient_share": 0.0}
    start = time.perf_counter()
    bar = tqdm(chunks, desc=f"{config.method} epoch {epoch + 1}/{config.epochs}", leave=False,
               disable=None if progress else True)
    for step, chunk in enumerate(bar, start=1):
        seqs = padded[order[chunk]].to(device)  # [B, L]
        losses = _step(target, student, seqs, config, target_opt, student_opt, negatives_rng)
        for name, value in losses.items():
            totals[name] += raise_if_not_finite(value, f"GRO {name} at epoch {epoch + 1}, batch {step}")
        bar.set_postfix({name.removeprefix("loss_"): f"{value / step:.3f}" for name, value in totals.items()})
    bar.close()
    seconds = time.perf_counter() - start
    count = max(len(chunks), 1)
    return {"epoch": epoch + 1, **{name: value / count for name, value in totals.items()},
            "seconds": round(seconds, 3), "batches": len(chunks)}


def _warm_up_student(target, student, padded, config, device, student_opt, negatives_rng, progress) -> None:
    """``config.student_warmup_batches`` steps of L_student alone: the student imitates the (unchanged) target.

    The lists come from the target in training mode, as in GRO's own steps;
    the target receives no gradient. A resumed run skips this (its saved
    student already went through it).
    """
    target.train()
    student.train()
    order = np.random.default_rng(config.seed - 1).permutation(len(padded))
    chunks = batches(len(order), config.batch_size)
    steps = [chunks[i % len(chunks)] for i in range(config.student_warmup_batches)]
    for chunk in tqdm(steps, desc="student warm-up", leave=False, disable=None if progress else True):
        seqs = padded[order[chunk]].to(device)  # [B, L + 1]
        histories = seqs[:, -(target.max_len + 1):-1]  # [B, L]
        rows, columns = prefix_positions(histories, config.positions_per_sequence)
        with torch.no_grad():
            target_scores = target.scores_at(histories, rows, columns)  # [N, C]
        lists, negatives, _ = _lists_and_negatives(target_scores, histories, rows, columns, config, negatives_rng)
        loss, _ = student_loss(student.scores_at(histories, rows, columns), lists, negatives,
                               config.margin_order, config.margin_negative)
        student_opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(student.parameters(), config.grad_clip)
        student_opt.step()


def _lists_and_negatives(target_scores, histories, rows, columns, config, negatives_rng):
    """(the target's top-k lists [N, k] after each prefix as the box serves them, one negative per rank [N, k],
    the [N, C] mask of items the box may not list: padding and, with filter_seen, the prefix's own items)."""
    seen = seen_items(histories, rows, columns, target_scores.shape[1] - 1) if config.filter_seen else _padding_only(
        len(rows), target_scores.shape[1] - 1, histories.device)  # [N, C]
    lists = target_scores.detach().masked_fill(seen, float("-inf")).topk(config.k, dim=1).indices  # [N, k]
    return lists, sample_negatives(lists, target_scores.shape[1] - 1, generator=negatives_rng), seen


def _step(target, student, seqs, config, target_opt, student_opt, negatives_rng) -> dict[str, float]:
    """One joint step on a batch [B, L]; returns the three loss values."""
    target_opt.zero_grad(set_to_none=True)
    student_opt.zero_grad(set_to_none=True)
    if config.method == "none":
        loss_target = target.training_loss(seqs)
        loss_target.backward()
        torch.nn.utils.clip_grad_norm_(target.parameters(), config.grad_clip)
        target_opt.step()
        return {"loss_target": loss_target.item(), "loss_student": 0.0, "loss_swap": 0.0, "zero_gradient_share": 0.0}

    # The training inputs (each sequence without its last item): every prefix is a history the box could see.
    histories = seqs[:, -(target.max_len + 1):-1]  # [B, L]
    rows, columns = prefix_positions(histories, config.positions_per_sequence)  # [N], [N]
    # One target pass gives L_target and the target's scores after the prefixes (SASRec shares its encoding).
    loss_target, target_scores = target.training_loss_and_scores_at(seqs, rows, columns)  # scalar, [N, C]
    student_scores = student.scores_at(histories, rows, columns)  # [N, C]
    lists, negatives, seen = _lists_and_negatives(target_scores, histories, rows, columns, config, negatives_rng)
    loss_student, listed = student_loss(student_scores, lists, negatives,
                                        config.margin_order, config.margin_negative)
    zero_share = 0.0
    if config.method == "gro":
        (listed_grad,) = torch.autograd.grad(loss_student, listed, retain_graph=True)  # [N, k] g
        adversarial = adversarial_items(listed_grad, student_scores, lists, allowed=~seen,
                                        zero_gradient_rule=config.zero_gradient_rule)  # [N, k] a'
        loss_swap = swap_loss(target_scores, lists, adversarial, margin=config.swap_margin)
        zero_share = zero_gradient_share(listed_grad)
    else:  # seed-variant
        loss_swap = seed_variant_loss(target_scores, student_scores, lists, margin=config.seed_margin,
                                      temperature=config.seed_temperature)
    total = loss_target + loss_student + config.lam * loss_swap
    total.backward()
    torch.nn.utils.clip_grad_norm_(target.parameters(), config.grad_clip)
    torch.nn.utils.clip_grad_norm_(student.parameters(), config.grad_clip)
    target_opt.step()
    student_opt.step()
    return {"loss_target": loss_target.item(), "loss_student": loss_student.item(), "loss_swap": loss_swap.item(),
            "zero_gradient_share": zero_share}


def prefix_positions(seqs: torch.Tensor, per_sequence: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """(row, column) of every prefix end used for the student and the swap loss.

    seqs [B, L] is left-padded, so the last P columns are each sequence's last P
    positions; padded columns are skipped. per_sequence = 0 keeps every position.
    Returns two int64 tensors [N].
    """
    length = seqs.shape[1]
    keep = seqs != 0  # [B, L]
    if per_sequence:
        keep[:, : max(length - per_sequence, 0)] = False
    rows, columns = keep.nonzero(as_tuple=True)
    return rows, columns


def seen_items(seqs: torch.Tensor, rows: torch.Tensor, columns: torch.Tensor, num_items: int) -> torch.Tensor:
    """[N, num_items + 1] bool: the items of each prefix, plus the padding column 0."""
    positions = torch.arange(seqs.shape[1], device=seqs.device).unsqueeze(0)  # [1, L]
    prefix_items = seqs[rows].masked_fill(positions > columns.unsqueeze(1), 0)  # [N, L]
    seen = torch.zeros(len(rows), num_items + 1, dtype=torch.bool, device=seqs.device)
    seen.scatter_(1, prefix_items, True)
    seen[:, 0] = True
    return seen


def _padding_only(rows: int, num_items: int, device) -> torch.Tensor:
    seen = torch.zeros(rows, num_items + 1, dtype=torch.bool, device=device)
    seen[:, 0] = True
    return seen


def _save_state(path, config, epochs_done, history, target, student, target_opt, student_opt,
                negatives_rng, best: _Best) -> None:
    """Write the full training state atomically (temporary file, then rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {
        "config": asdict(config), "epochs_done": epochs_done, "history": history,
        "target": target.state_dict(), "student": student.state_dict(),
        "target_opt": target_opt.state_dict(), "student_opt": student_opt.state_dict(),
        "negatives_rng": negatives_rng.get_state(), "torch_rng": torch.get_rng_state(),
        "best": {"epoch": best.epoch, "score": best.score, "bad_epochs": best.bad_epochs, "state": best.state},
    }
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


# Settings that may differ between the saved and the resumed run (they do not change the result's meaning).
_RESUMABLE_DIFFERENCES = {"epochs", "max_batches_per_epoch", "patience", "kept_epoch"}


def _load_state(path, config, target, student, target_opt, student_opt, negatives_rng) -> tuple[int, list, _Best]:
    """Restore a saved state; a state saved under different settings is refused, naming the file."""
    state = torch.load(path, map_location="cpu", weights_only=True)  # tensors, numbers, strings, dicts only
    saved = state.get("config", {})
    defaults = asdict(GROConfig())  # a state saved before a field existed was trained with its default
    differing = sorted(key for key, value in asdict(config).items()
                       if key not in _RESUMABLE_DIFFERENCES and saved.get(key, defaults[key]) != value)
    if differing:
        raise ValueError(f"{path}: saved GRO state was trained with other settings ({', '.join(differing)}); "
                         "delete it or choose another state path")
    target.load_state_dict(state["target"])
    student.load_state_dict(state["student"])
    target_opt.load_state_dict(state["target_opt"])
    student_opt.load_state_dict(state["student_opt"])
    negatives_rng.set_state(state["negatives_rng"])
    torch.set_rng_state(state["torch_rng"])
    saved_best = state.get("best") or {}
    best = _Best(epoch=int(saved_best.get("epoch", 0)), score=float(saved_best.get("score", float("-inf"))),
                 bad_epochs=int(saved_best.get("bad_epochs", 0)), state=saved_best.get("state"))
    return int(state["epochs_done"]), list(state["history"]), best
