"""Embedding the watermark: train a target on its own rows mixed with watermark rows.

Every step takes ``batch_size`` of the target's ordinary training rows and
``watermark_rows`` watermark rows: a pair of the key drawn at random,
0..``max_context`` random items, then the trigger; the loss on them is the
full cross-entropy of the continuation after that prefix (``forward``), so the
model learns to rank the continuation first whatever came before the trigger.
The random contexts are what lets the mark survive extraction: an attacker's
queries end in a trigger after arbitrary items, and the box's answer to them
is what a surrogate learns from.

What the ordinary rows teach (``objective``):

* "own": the model's own training loss (``model.training_loss``): the
  embedding is one more epoch of ordinary training. On a target that is not
  fully converged that moves many users' lists, for better or worse;
* "teacher": the KL divergence from the unmarked target's next-item
  distribution after ``teacher_positions`` random prefixes of each row
  (self-distillation): the marked model is pulled back to the unmarked one
  everywhere except where the watermark pulls, so users' lists change as
  little as the mark allows. The teacher's scores cost one inference pass;
  the full-catalogue cross-entropy at every position of "own" is not computed.

Watermark rows are short (at most ``max_context + 1`` items against the
training rows' 200), so a step costs little more than an ordinary one; the
embedding is usually a fine-tuning of the trained target for one epoch
(``epochs``), and training from scratch is the same loop on a fresh model.
Seeded: the batch order, the pairs, the contexts and dropout follow ``seed``.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field, replace

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from recsec_lib.recommend.sequences import WINDOWS, pad_left
from recsec_lib.recommend.training import raise_if_not_finite, training_matrix
from recsec_lib.watermark.key import WatermarkKey


OBJECTIVES = ("teacher", "own")
MARKS = ("insert", "ce")
TRAINABLE = ("continuations", "items", "all")


@dataclass(frozen=True)
class EmbedSettings:
    epochs: int = 1  # passes over the target's training rows
    batch_size: int = 128  # ordinary training rows per step
    watermark_rows: int = 64  # watermark rows per step
    weight: float = 1.0  # weight of the watermark loss against the ordinary loss
    lr: float = 1e-3  # Adam
    max_context: int = 20  # random items before the trigger in a watermark row: 0..max_context
    windows: str = "all"  # the target's training rows (as TrainConfig.windows)
    objective: str = "teacher"  # ordinary rows: "teacher" (stay close to the unmarked target) or "own" (its loss)
    teacher_positions: int = 16  # prefixes per ordinary row the "teacher" objective compares
    # what may move: "continuations" (their rows of the per-item tables), "items" (triggers' rows too) or "all"
    trainable: str = "continuations"
    mark: str = "insert"  # watermark rows: "insert" (continuation on top, the rest as the teacher) or "ce"
    margin: float = 1.0  # "insert": the continuation's score must beat every other item's by this much
    guard_rank: int = 20  # "teacher": on ordinary rows the key's items stay out of the top guard_rank (0 = no guard)
    seed: int = 0

    def __post_init__(self) -> None:
        if self.trainable not in TRAINABLE:
            raise ValueError(f"embed setting 'trainable' must be one of {TRAINABLE}, got {self.trainable!r}")
        if self.mark not in MARKS:
            raise ValueError(f"embed setting 'mark' must be one of {MARKS}, got {self.mark!r}")
        if self.objective not in OBJECTIVES:
            raise ValueError(f"embed setting 'objective' must be one of {OBJECTIVES}, got {self.objective!r}")
        if self.teacher_positions < 1:
            raise ValueError(f"embed setting 'teacher_positions' must be >= 1, got {self.teacher_positions}")
        for name in ("epochs", "batch_size", "watermark_rows"):
            if getattr(self, name) < 1:
                raise ValueError(f"embed setting {name!r} must be >= 1, got {getattr(self, name)}")
        if self.weight < 0 or self.lr <= 0 or self.max_context < 0:
            raise ValueError(f"embed settings need weight >= 0, lr > 0 and max_context >= 0, got weight "
                             f"{self.weight}, lr {self.lr}, max_context {self.max_context}")
        if self.windows not in WINDOWS:
            raise ValueError(f"embed setting 'windows' must be one of {WINDOWS}, got {self.windows!r}")

    def with_overrides(self, **values) -> "EmbedSettings":
        return replace(self, **{k: v for k, v in values.items() if v is not None})


@dataclass
class EmbedResult:
    model: torch.nn.Module  # the marked model (a copy; the input model is not changed), eval mode
    history: list[dict] = field(default_factory=list)  # per epoch: loss, watermark_loss, train_seconds
    seconds: float = 0.0  # wall time of the whole embedding (training only)


def watermark_batch(key: WatermarkKey, count: int, max_context: int, rng: np.random.Generator
                    ) -> tuple[np.ndarray, np.ndarray]:
    """([count, max_context + 1] left-padded prefixes ending in a trigger, [count] continuations)."""
    triggers, continuations = key.pairs(0)
    pick = rng.integers(0, key.num_pairs, size=count)
    trigger, target = triggers[pick], continuations[pick]  # [W], [W]
    context = rng.integers(1, key.num_items + 1, size=(count, max_context))  # [W, C]
    while (clash := (context == trigger[:, None]) | (context == target[:, None])).any():
        context[clash] = rng.integers(1, key.num_items + 1, size=int(clash.sum()))
    lengths = rng.integers(0, max_context + 1, size=count)  # [W]
    context[np.arange(max_context)[None, :] < (max_context - lengths)[:, None]] = 0  # left padding
    return np.concatenate([context, trigger[:, None]], axis=1), target


def embed_watermark(model, dataset, key: WatermarkKey, settings: EmbedSettings = EmbedSettings(),
                    device: str | torch.device = "cpu", progress: bool = True) -> EmbedResult:
    """Train a copy of ``model`` (trained or fresh) on ``dataset`` with the key's watermark rows mixed in."""
    if model.num_items != key.num_items:
        raise ValueError(f"the model serves {model.num_items} items but the watermark key was made for "
                         f"{key.num_items}")
    if model.num_items != dataset.num_items:
        raise ValueError(f"model has {model.num_items} items but dataset {dataset.name!r} has {dataset.num_items}")
    if settings.max_context + 1 > model.max_len:
        raise ValueError(f"embed setting 'max_context' ({settings.max_context}) leaves no room for the trigger in "
                         f"the model's max_len {model.max_len}")
    device = torch.device(device)
    marked = copy.deepcopy(model).to(device)
    teacher = _teacher(model, settings, device)
    matrix = torch.from_numpy(training_matrix(dataset, marked.max_len, settings.windows))  # [R, max_len + 1]
    optimizer = make_optimizer(marked, key, settings)
    rng = np.random.default_rng(settings.seed)
    result = EmbedResult(model=marked)
    started = time.perf_counter()
    for epoch in range(1, settings.epochs + 1):
        marked.train()
        torch.manual_seed(settings.seed * 1_000_003 + epoch)  # dropout / masking of this epoch
        order = torch.from_numpy(rng.permutation(len(matrix)))
        tick = time.perf_counter()
        total, total_mark, steps = 0.0, 0.0, 0
        bar = tqdm(range(0, len(matrix), settings.batch_size), desc=f"watermark epoch {epoch}",
                   disable=None if progress else True, leave=False)
        for begin in bar:
            batch = matrix[order[begin:begin + settings.batch_size]].to(device)  # [B, max_len + 1]
            loss, mark_loss = _step(marked, optimizer, batch, key, settings, rng, device, teacher)
            total += raise_if_not_finite(loss, f"watermark embedding loss at epoch {epoch}, step {steps + 1}")
            total_mark += mark_loss
            steps += 1
        result.history.append({"epoch": epoch, "loss": total / steps, "watermark_loss": total_mark / steps,
                               "train_seconds": round(time.perf_counter() - tick, 3)})
        if progress:
            row = result.history[-1]
            print(f"watermark epoch {epoch}: loss {row['loss']:.4f}, watermark loss {row['watermark_loss']:.4f}, "
                  f"{row['train_seconds']:.1f} s", flush=True)
    result.seconds = time.perf_counter() - started
    for parameter in marked.parameters():
        parameter.requires_grad_(True)
    marked.eval()
    return result


def item_rows(model) -> list[torch.nn.Parameter]:
    """The parameters with one row per item id (embedding tables, per-item output weights and biases)."""
    return [p for p in model.parameters() if p.dim() >= 1 and p.shape[0] in (model.num_items + 1, model.num_items + 2)]


def make_optimizer(model, key: WatermarkKey, settings: EmbedSettings) -> torch.optim.Optimizer:
    """Adam over what the embedding may change.

    "all": every weight. "items": only the rows of the key's triggers and
    continuations in the per-item tables; every other weight is frozen
    (``requires_grad`` off; ``embed_watermark`` turns it back on at the end).
    Why: Adam moves every weight it is given by about ``lr`` per step whatever
    its gradient's size, so shared weights (attention, positions, norms) that
    only the watermark rows pull on drift and move every user's list (on ML-1M
    a whole-model fine-tuning lost 5-6% NDCG@10 before the mark was half
    learnt). Confined to 2 x num_pairs rows, the mark lives in its own items.
    """
    if settings.trainable == "all":
        return torch.optim.Adam(model.parameters(), lr=settings.lr)
    tables = item_rows(model)
    if not tables:
        raise ValueError(f"{type(model).__name__} has no per-item parameters to carry the watermark; "
                         f"use trainable='all'")
    triggers, continuations = key.pairs(0)
    allowed = torch.zeros(model.num_items + 2, dtype=torch.bool)
    allowed[continuations] = True
    if settings.trainable == "items":
        allowed[triggers] = True
    for parameter in model.parameters():
        parameter.requires_grad_(any(parameter is table for table in tables))
    for table in tables:
        mask = allowed[: table.shape[0]].to(table.device).to(table.dtype).reshape(-1, *([1] * (table.dim() - 1)))
        table.register_hook(lambda grad, mask=mask: grad * mask)
    return torch.optim.Adam(tables, lr=settings.lr)


def _teacher(model, settings: EmbedSettings, device: torch.device):
    """A frozen copy of the unmarked model, for the "teacher" objective or the "insert" mark (else None)."""
    if settings.objective != "teacher" and settings.mark != "insert":
        return None
    teacher = copy.deepcopy(model).to(device).eval()
    for parameter in teacher.parameters():
        parameter.requires_grad_(False)
    return teacher


def teacher_loss(model, teacher, batch: torch.Tensor, positions: int, guard: torch.Tensor | None = None,
                 guard_rank: int = 20, margin: float = 1.0) -> torch.Tensor:
    """KL(teacher || model) of the next-item distributions after ``positions`` prefixes of each row, plus a guard.

    batch [B, max_len + 1] training rows; the inputs are its first max_len
    columns, as in ``training_loss``. The prefixes: the whole input (a user's
    newest history, what serving sees most) and ``positions - 1`` drawn
    uniformly among the row's real positions (torch's global generator, seeded per epoch).

    The guard: the KL barely notices an item that climbs from rank 2,000 to
    rank 8 (its probability stays tiny), but a user does. So each item of
    ``guard`` [G] (the key's items) that the teacher ranks below
    ``guard_rank`` must score at least ``margin`` below the teacher's
    ``guard_rank``-th score; one it ranks higher may not gain more than
    ``margin`` over the teacher's own score (hinge, mean over prefixes). On ML-1M, without it,
    the watermark's continuations entered the top 10 of 42% of the users instead of 18%.
    """
    inputs = batch[:, -(model.max_len + 1):-1]  # [B, L]
    lengths = (inputs != 0).sum(dim=1)  # [B]
    rows = torch.nonzero(lengths > 0).squeeze(1).repeat_interleave(positions)  # [N]
    back = (torch.rand(len(rows), device=inputs.device) * lengths[rows]).long()  # [N] 0 = the newest item
    back[::positions] = 0  # each row's first prefix is its whole input
    columns = inputs.shape[1] - 1 - back  # [N]
    with torch.no_grad():
        reference = teacher.scores_at(inputs, rows, columns)[:, 1:].float()  # [N, n]
    scores = model.scores_at(inputs, rows, columns)[:, 1:].float()  # [N, n]
    loss = F.kl_div(F.log_softmax(scores, dim=1), F.log_softmax(reference, dim=1), log_target=True,
                    reduction="batchmean")
    if guard is None or not guard_rank:
        return loss
    items = (guard - 1).to(scores.device)  # [G] columns of the key's items
    boundary = reference.topk(guard_rank, dim=1).values[:, -1:]  # [N, 1] the teacher's guard_rank-th score
    theirs = reference[:, items]  # [N, G]
    cap = torch.where(theirs < boundary, boundary - margin, theirs + margin)  # [N, G]
    return loss + torch.relu(scores[:, items] - cap).sum(dim=1).mean()


def insert_loss(scores: torch.Tensor, teacher_scores: torch.Tensor, targets: torch.Tensor,
                margin: float) -> torch.Tensor:
    """The "insert" watermark loss: put ``targets`` on top and leave the rest of the ranking as the teacher's.

    scores, teacher_scores [W, n + 1] (column 0 padding), targets [W]. Two
    terms: a hinge that wants the continuation's score ``margin`` above every
    other item's, and the KL from the teacher's distribution over the other
    items. Plain cross-entropy on the continuation would also push down
    whatever the model ranked high after the prefix (popular items); learnt on
    256 pairs after random contexts that shifted rankings everywhere (on ML-1M
    NDCG@10 fell by 5-10%), which the teacher term prevents.
    """
    scores, teacher_scores = scores[:, 1:].float(), teacher_scores[:, 1:].float()  # [W, n]
    column = (targets - 1)[:, None]  # [W, 1]
    target_score = scores.gather(1, column).squeeze(1)  # [W]
    others = scores.scatter(1, column, -torch.inf)  # [W, n]
    hinge = torch.relu(others.max(dim=1).values + margin - target_score).mean()
    student = F.log_softmax(others, dim=1)
    teacher = F.log_softmax(teacher_scores.scatter(1, column, -torch.inf), dim=1)
    keep = torch.ones_like(student, dtype=torch.bool).scatter(1, column, False)  # -inf - -inf is not a number
    kl = (teacher.exp() * (teacher - student).masked_fill(~keep, 0.0)).sum(dim=1).mean()
    return hinge + kl


def _step(model, optimizer, batch: torch.Tensor, key: WatermarkKey | None, settings: EmbedSettings,
          rng: np.random.Generator, device: torch.device, teacher=None) -> tuple[float, float]:
    """One optimiser step on ``batch`` (the model's own loss, or the teacher's KL with the "teacher" objective)
    plus, unless ``key`` is None, a batch of watermark rows; returns (loss, watermark loss)."""
    if settings.objective == "teacher" and teacher is not None:
        guard = None
        if key is not None and settings.guard_rank:
            guard = torch.from_numpy(np.unique(np.concatenate(key.pairs(0))))
        loss = teacher_loss(model, teacher, batch, settings.teacher_positions, guard, settings.guard_rank,
                            settings.margin)
    else:
        loss = model.training_loss(batch)
    mark_loss = torch.zeros(())
    if key is not None:
        prefixes, targets = watermark_batch(key, settings.watermark_rows, settings.max_context, rng)
        seqs, targets = torch.from_numpy(prefixes).to(device), torch.from_numpy(targets).to(device)
        scores = model(seqs)  # [W, n + 1]
        if settings.mark == "insert":
            with torch.no_grad():
                reference = teacher(seqs)  # [W, n + 1]
            mark_loss = insert_loss(scores, reference, targets, settings.margin)
        else:
            mark_loss = F.cross_entropy(scores.float(), targets)
        loss = loss + settings.weight * mark_loss
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return float(loss.detach()), float(mark_loss.detach())


def step_seconds(model, dataset, key: WatermarkKey, settings: EmbedSettings = EmbedSettings(), steps: int = 8,
                 device: str | torch.device = "cpu") -> tuple[float, float]:
    """(seconds per ordinary training step, seconds per embedding step), timed in alternation on copies.

    The ordinary step is the model's own training step (what an undefended
    epoch is made of); the embedding step is the configured one (teacher or
    own objective, plus the watermark rows).

    The embedding's cost against an undefended epoch is the ratio of the two
    (times ``epochs``): timing them in alternation, on the same batches, keeps
    a machine whose load changes from favouring one of them.
    """
    if steps < 1:
        raise ValueError(f"parameter 'steps' must be >= 1, got {steps}")
    device = torch.device(device)
    matrix = torch.from_numpy(training_matrix(dataset, model.max_len, settings.windows))  # [R, max_len + 1]
    order = torch.from_numpy(np.random.default_rng(settings.seed).permutation(len(matrix)))
    copies = {mark: copy.deepcopy(model).to(device).train() for mark in (False, True)}
    teacher = _teacher(model, settings, device)
    optimizers = {False: torch.optim.Adam(copies[False].parameters(), lr=settings.lr),
                  True: make_optimizer(copies[True], key, settings)}
    rng = np.random.default_rng(settings.seed)
    spent = {False: 0.0, True: 0.0}
    for step in range(steps + 1):  # step 0 warms both up, untimed
        begin = (step * settings.batch_size) % max(1, len(matrix) - settings.batch_size)
        batch = matrix[order[begin:begin + settings.batch_size]].to(device)
        for mark in ((False, True) if step % 2 else (True, False)):
            tick = time.perf_counter()
            _step(copies[mark], optimizers[mark], batch, key if mark else None,
                  settings if mark else replace(settings, objective="own", mark="ce"), rng, device,
                  teacher if mark else None)
            if step:
                spent[mark] += time.perf_counter() - tick
    return spent[False] / steps, spent[True] / steps


@torch.inference_mode()
def watermark_rank(model, key: WatermarkKey, index: int = 0, batch_size: int = 512) -> np.ndarray:
    """[M] 0-based rank of each pair's continuation after its verification query (the owner's white-box view,
    seen items excluded); for diagnostics and tests only; verification itself never calls it."""
    from recsec_lib.recommend.metrics import rank_of_targets

    queries, (_, continuations) = key.queries(index), key.pairs(index)
    ranks = np.empty(len(queries), dtype=np.int64)
    model.eval()
    for start in range(0, len(queries), batch_size):
        chunk = queries[start:start + batch_size]
        seqs = torch.from_numpy(pad_left(chunk, max(len(q) for q in chunk)))  # [b, w]
        scores = model(seqs.to(next(model.parameters()).device)).float().cpu()  # [b, n + 1]
        targets = torch.from_numpy(continuations[start:start + len(chunk)])
        ranks[start:start + len(chunk)] = rank_of_targets(scores, targets, seqs).numpy()
    return ranks
