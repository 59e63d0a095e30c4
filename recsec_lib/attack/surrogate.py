"""Distilling the black box's lists into a surrogate model (the attacker's training).

Input: an ``AttackData`` (synthetic sequences and the box's top-k list at
every prefix). Output: a surrogate of any registered architecture trained with
the pairwise margin loss of ``recsec_lib.recommend.losses`` (Yue et al.: m1 = m2 = 0.5,
one negative per listed position drawn uniformly outside the list).

Every prefix is a training example. For causal models (SASRec, NARM,
MeanEmbedding: they override ``all_position_scores``) one forward pass over a
sequence scores all its prefixes at once, so an epoch costs about as much as
one pass over the sequences. Bidirectional models (BERT4Rec) have no such pass;
they get ``prefixes_per_sequence`` randomly chosen prefixes per sequence and
epoch, each scored with an ordinary forward pass.

Validation and early stopping use only what the attacker has: a held-out part
of its own synthetic sequences, scored by the agreement (Agr@10) between the
surrogate's top-10 and the box's returned top-10 on those prefixes. No real
data is ever touched here. A NaN or infinite loss stops training with
``training.NonFiniteError`` (a diverged surrogate must not be reported).
"""

from __future__ import annotations

import copy
import logging
import time
from dataclasses import dataclass, field

import numpy as np
import torch
from tqdm.auto import tqdm

from recsec_lib.attack.queries import AttackData
from recsec_lib.common.settings import SettingsBase
from recsec_lib.recommend.losses import ranking_margin_loss, sample_negatives
from recsec_lib.models.base import SequentialRecommender
from recsec_lib.recommend.sequences import pad_left
from recsec_lib.recommend.training import raise_if_not_finite

log = logging.getLogger(__name__)

# A batch whose answered prefixes are at most this share of its positions scores only those (``_batch_loss``):
# a one-query row answers 1 of its 200; gathering wins on such batches and loses on nearly full ones.
SPARSE_ANSWERED_FRACTION = 0.25


@dataclass(frozen=True)
class SurrogateSettings(SettingsBase):
    """How the surrogate is trained. The defaults are the ones measured on ML-1M (see stages/attack.py)."""

    epochs: int = 100  # upper bound; early stopping on held-out Agr@10 usually ends sooner
    batch_size: int = 16  # synthetic sequences per step (each brings seq_len prefixes); small batches
    # converge in far fewer epochs (measured on ML-1M: 16 reached a held-out Agr@10 of .83 in 6 epochs, 64 in >8)
    lr: float = 1e-3  # Adam; the margin loss sums k terms per prefix, Adam's step size does not depend on that scale
    weight_decay: float = 0.0
    margin_order: float = 0.5  # m1 of the margin loss
    margin_negative: float = 0.5  # m2
    order_weight: float = 1.0  # weight of the order term; 0 = train on the listed set only (the order is noise)
    list_len: int = 0  # train on the first list_len ids of each list; 0 = the whole list (k)
    holdout_fraction: float = 0.1  # synthetic sequences held out for validation (Agr@10 with the box)
    validation_prefixes: int = 8  # prefixes per held-out sequence that validation scores
    patience: int = 5  # epochs without a better validation Agr@10 before stopping; 0 = never stop early
    # Early epochs are noisy on small budgets (ML-1M, 250 random sequences of 50: held-out Agr@10 peaked at
    # epoch 4 by chance and training stopped at epoch 9 with a test Agr@10 of .03, while 500 such sequences
    # trained for 60 epochs reached .33), so early stopping only starts counting after this many epochs.
    min_epochs: int = 15
    prefixes_per_sequence: int = 8  # per sequence and step, for models without a one-pass all_position_scores
    filter_seen: bool | None = None  # exclude prefix items from the surrogate's lists; None = infer from the answers
    # A safety stop only, never the normal end: a surrogate that hits it is not reproducible, and the result
    # records it (stopped = "time_limit") so that tables can flag it. 0 = no limit.
    max_train_seconds: float = 0.0
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size", "validation_prefixes", "prefixes_per_sequence"):
            if getattr(self, name) <= 0:
                raise ValueError(f"surrogate setting '{name}' must be positive, got {getattr(self, name)}")
        for name in ("list_len", "patience", "min_epochs", "max_train_seconds", "weight_decay"):
            if getattr(self, name) < 0:
                raise ValueError(f"surrogate setting '{name}' must be >= 0, got {getattr(self, name)}")
        if self.lr <= 0:
            raise ValueError(f"surrogate setting 'lr' must be positive, got {self.lr}")
        if not 0.0 <= self.holdout_fraction < 1.0:
            raise ValueError(f"surrogate setting 'holdout_fraction' must be in [0, 1), got {self.holdout_fraction}")


@dataclass
class SurrogateResult:
    model: SequentialRecommender  # the best surrogate (by validation Agr@10), in eval mode
    history: list[dict] = field(default_factory=list)  # per epoch: epoch, loss, valid_agr10, seconds
    best_epoch: int = 0  # 1-based; 0 = no validation (the last epoch is kept)
    best_valid_agr10: float = float("nan")
    filter_seen: bool = True  # whether the box was found to filter seen items
    stopped: str = "epochs"  # epochs | early_stopping | time_limit


def has_one_pass_prefix_scores(model: SequentialRecommender) -> bool:
    """True when the model overrides ``all_position_scores`` (a causal model scoring all prefixes at once)."""
    return type(model).all_position_scores is not SequentialRecommender.all_position_scores


def infer_filter_seen(data: AttackData, chunk: int = 256) -> bool:
    """Did the box filter seen items? True when no returned list contains an item of its own prefix.

    An attacker can see this from its own answers; the surrogate's validation
    lists then exclude prefix items too.
    """
    length = data.seq_len
    for start in range(0, data.num_sequences, chunk):
        seqs = data.sequences[start:start + chunk]  # [c, L]
        answers = data.answers[start:start + chunk]  # [c, L, k]
        rows = np.arange(len(seqs))[:, None]
        # first[s, i] = position of item i's first occurrence in sequence s (L if absent)
        first = np.full((len(seqs), data.num_items + 1), length, dtype=np.int32)
        first[rows, seqs[:, ::-1]] = np.arange(length - 1, -1, -1, dtype=np.int32)[None, :]
        seen = first[rows[:, :, None], answers] <= np.arange(length)[None, :, None]  # [c, L, k]
        if seen.any():
            return False
    return True


def surrogate_topk(model: SequentialRecommender, prefixes: list[np.ndarray], k: int, filter_seen: bool,
                   device: torch.device, batch_size: int = 256) -> np.ndarray:
    """[N, k] the model's top-k ids for each prefix (as the box would rank them)."""
    out = np.empty((len(prefixes), k), dtype=np.int64)
    model.eval()
    with torch.inference_mode():
        for start in range(0, len(prefixes), batch_size):
            chunk = prefixes[start:start + batch_size]
            seqs = torch.from_numpy(pad_left(chunk, max(len(p) for p in chunk))).to(device)  # [b, w]
            scores = model(seqs).float()  # [b, n+1]
            scores[:, 0] = -torch.inf
            if filter_seen:
                scores.scatter_(1, seqs, -torch.inf)
            out[start:start + len(chunk)] = scores.topk(k, dim=1).indices.cpu().numpy()
    return out


def validation_agreement(model: SequentialRecommender, held_out: AttackData, k: int, filter_seen: bool,
                         device: torch.device, prefixes_per_sequence: int = 8) -> float:
    """Agr@k between the surrogate and the box's returned lists on held-out synthetic prefixes.

    Scores ``prefixes_per_sequence`` evenly spaced prefix lengths per sequence
    (always including the full sequence).
    """
    steps = np.unique(np.linspace(0, held_out.seq_len - 1, min(prefixes_per_sequence, held_out.seq_len))
                      .round().astype(int))
    pairs = [(s, t) for s in range(held_out.num_sequences) for t in steps]
    if held_out.answered is not None:  # only prefixes the box answered (and their last answered one)
        pairs = [(s, t) for s in range(held_out.num_sequences)
                 for t in sorted(set(steps.tolist()) & set(np.flatnonzero(held_out.answered[s]).tolist())
                                 | {int(np.flatnonzero(held_out.answered[s])[-1])})]
    prefixes = [held_out.sequences[s, : t + 1][held_out.sequences[s, : t + 1] > 0] for s, t in pairs]
    box_lists = np.stack([held_out.answers[s, t, :k] for s, t in pairs])
    mine = surrogate_topk(model, prefixes, k, filter_seen, device)  # [N, k]
    common = (mine[:, :, None] == box_lists[:, None, :]).any(axis=2).sum(axis=1)  # [N]
    return float(common.mean() / k)


def _batch_loss(model: SequentialRecommender, seqs: torch.Tensor, lists: torch.Tensor, num_items: int,
                settings: SurrogateSettings, generator: torch.Generator, one_pass: bool,
                answered: torch.Tensor | None = None) -> torch.Tensor:
    """Margin loss of one batch: seqs [B, L] synthetic sequences, lists [B, L, m] the box's lists per prefix,
    answered [B, L] bool (None: all) which prefixes count."""
    batch, length, m = lists.shape
    if one_pass:
        # Only the listed items and one negative per rank are scored after each prefix.
        flat = lists.reshape(batch * length, m).clamp(min=1)  # unanswered rows hold 0: any valid id will do
        negatives = sample_negatives(flat, num_items, generator)  # [B*L, m]
        items = torch.cat([flat.reshape(batch, length, m), negatives.reshape(batch, length, m)], dim=2)  # [B, L, 2m]
        if answered is not None and 0 < int(answered.sum()) <= SPARSE_ANSWERED_FRACTION * answered.numel():
            # Few answered prefixes (one per walk for a one-query attacker): score only those. The encoder pass,
            # the negatives and the loss's rows are the same as below, so is the result (up to float rounding).
            rows, columns = answered.nonzero(as_tuple=True)  # [N], [N]
            scores = model.item_scores_at(seqs, rows, columns, items[rows, columns])  # [N, 2m]
            return ranking_margin_loss(scores[:, :m], scores[:, m:], settings.margin_order, settings.margin_negative,
                                       order_weight=settings.order_weight)
        scores = model.all_position_item_scores(seqs, items).reshape(batch * length, 2 * m)  # [B*L, 2m]
        valid = None if answered is None else answered.reshape(-1)
        return ranking_margin_loss(scores[:, :m], scores[:, m:], settings.margin_order, settings.margin_negative,
                                   valid=valid, order_weight=settings.order_weight)
    if answered is not None:
        raise ValueError("attack data with unanswered prefixes needs a model with one-pass prefix scores")
    # Models without a one-pass prefix scorer: a few random prefixes per sequence, each through forward.
    p = min(settings.prefixes_per_sequence, length)
    steps = torch.stack([torch.randperm(length, generator=generator)[:p] for _ in range(batch)])  # [B, p]
    rows = torch.arange(batch, device=seqs.device).repeat_interleave(p)  # [B*p]
    last = steps.reshape(-1, 1).to(seqs.device)  # [B*p, 1] index of each prefix's newest item
    # Left-padded prefix: column c holds item c - (L-1-last), padding where that is negative.
    source = torch.arange(length, device=seqs.device)[None, :] - (length - 1 - last)  # [B*p, L]
    prefixes = torch.where(source >= 0, seqs[rows].gather(1, source.clamp(min=0)), 0)  # [B*p, L]
    scores = model(prefixes)  # [B*p, n+1]
    flat_lists = lists[rows, last.reshape(-1)]  # [B*p, m]
    negatives = sample_negatives(flat_lists, num_items, generator)  # [N, m]
    listed_scores = scores.gather(1, flat_lists)  # [N, m]
    negative_scores = scores.gather(1, negatives)  # [N, m]
    return ranking_margin_loss(listed_scores, negative_scores, settings.margin_order, settings.margin_negative,
                               order_weight=settings.order_weight)


def fit_surrogate(
    attack_data: AttackData,
    model: SequentialRecommender,  # a freshly built model of the chosen architecture
    settings: SurrogateSettings = SurrogateSettings(),
    device: str | torch.device = "cpu",
    progress: bool = True,
) -> SurrogateResult:
    """Train ``model`` on the attack data; keeps the epoch with the best held-out Agr@10."""
    device = torch.device(device)
    if attack_data.seq_len > model.max_len:
        raise ValueError(f"attack sequences of length {attack_data.seq_len} exceed the surrogate's "
                         f"max_len {model.max_len}")
    if attack_data.num_items != model.num_items:
        raise ValueError(f"attack data has {attack_data.num_items} items, the surrogate {model.num_items}")
    torch.manual_seed(settings.seed)
    generator = torch.Generator().manual_seed(settings.seed)
    rng = np.random.default_rng(settings.seed)
    filter_seen = infer_filter_seen(attack_data) if settings.filter_seen is None else settings.filter_seen
    train, held_out = attack_data.split(settings.holdout_fraction, seed=settings.seed)
    m = settings.list_len or attack_data.k
    if m > attack_data.k:
        raise ValueError(f"surrogate setting 'list_len' ({m}) exceeds the list length {attack_data.k}")
    agr_k = min(10, attack_data.k)
    one_pass = has_one_pass_prefix_scores(model)
    model.to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=settings.lr, weight_decay=settings.weight_decay)
    sequences = torch.from_numpy(train.sequences)  # [S, L]
    answered = None if train.answered is None else torch.from_numpy(train.answered)  # [S, L]
    lists = torch.from_numpy(np.ascontiguousarray(train.answers[:, :, :m]))  # [S, L, m]
    result = SurrogateResult(model=model, filter_seen=filter_seen)
    best_state, best_agr, since_best = None, -1.0, 0
    started = time.perf_counter()
    bar = tqdm(range(1, settings.epochs + 1), desc="training surrogate", unit="epoch",
               disable=not progress or None, leave=False)
    for epoch in bar:
        epoch_start = time.perf_counter()
        model.train()
        order = rng.permutation(train.num_sequences)
        total, steps = 0.0, 0
        for start in range(0, len(order), settings.batch_size):
            rows = torch.from_numpy(order[start:start + settings.batch_size])
            loss = _batch_loss(model, sequences[rows].to(device), lists[rows].to(device), attack_data.num_items,
                               settings, generator, one_pass,
                               None if answered is None else answered[rows].to(device))
            total += raise_if_not_finite(loss.detach(), f"surrogate loss at epoch {epoch}, batch {steps + 1}")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            steps += 1
        entry = {"epoch": epoch, "loss": total / max(steps, 1), "seconds": round(time.perf_counter() - epoch_start, 2)}
        if held_out.num_sequences:
            entry["valid_agr10"] = raise_if_not_finite(
                validation_agreement(model, held_out, agr_k, filter_seen, device, settings.validation_prefixes),
                f"surrogate held-out Agr@10 at epoch {epoch}")
            if entry["valid_agr10"] > best_agr:
                best_agr, since_best = entry["valid_agr10"], 0
                best_state = copy.deepcopy(model.state_dict())
                result.best_epoch, result.best_valid_agr10 = epoch, best_agr
            else:
                since_best += 1
        result.history.append(entry)
        log.info("surrogate epoch %d: loss %.4f, held-out synthetic Agr@10 %.4f, %.1f s", epoch, entry["loss"],
                 entry.get("valid_agr10", float("nan")), entry["seconds"])
        bar.set_postfix(loss=f"{entry['loss']:.3f}", agr10=f"{entry.get('valid_agr10', float('nan')):.3f}")
        if settings.patience and since_best >= settings.patience and epoch >= settings.min_epochs:
            result.stopped = "early_stopping"
            break
        if settings.max_train_seconds and time.perf_counter() - started > settings.max_train_seconds:
            result.stopped = "time_limit"
            break
    bar.close()
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    return result


def train_surrogate(
    attack_data: AttackData,
    arch: str,  # a registry name: meanemb | sasrec | narm | bert4rec
    num_items: int,
    max_len: int,
    settings: SurrogateSettings = SurrogateSettings(),
    device: str | torch.device = "cpu",
    progress: bool = True,
) -> SequentialRecommender:
    """Build a fresh ``arch`` surrogate and train it on the attack data; returns the trained model."""
    from recsec_lib.models.registry import build_model

    torch.manual_seed(settings.seed)
    model = build_model(arch, num_items=num_items, max_len=max_len)
    return fit_surrogate(attack_data, model, settings, device, progress).model
