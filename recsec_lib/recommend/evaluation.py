"""Full-ranking evaluation of a recommender on the leave-one-out split, and batched top-k lists.

``evaluate_model`` scores every user's history in batches, ranks the held-out
item against *all* items and reports (STUDY.md):

* ``hr@k``, ``ndcg@k``, ``mrr``          — full ranking, seen items filtered (primary);
* ``unfiltered_hr@k`` ...                — full ranking, nothing filtered (GRO's table);
* ``sampled_hr@k`` ...                   — against 100 random unseen negatives (secondary, labelled).

"Seen" means the user's *whole* input history, not only the last max_len items
the model reads. Everything is vectorised per batch; the only Python loop is
over batches.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np
import torch

from recsec_lib.recommend.metrics import (DEFAULT_KS, nonfinite_rows, rank_of_targets, ranking_metrics,
                                sample_negatives_for_eval, sampled_rank_of_targets, topk_items)
from recsec_lib.models.base import SequentialRecommender
from recsec_lib.recommend.sequences import batches, pad_left

SAMPLED_NEGATIVES = 100


def _device_of(model: SequentialRecommender, device) -> torch.device:
    if device is None:
        return next(model.parameters()).device
    return torch.device(device)


@torch.no_grad()
def batch_scores(model: SequentialRecommender, sequences: Sequence[Sequence[int]], device=None,
                 batch_size: int = 512):
    """Yield (row indices [b], scores [b, n+1] float32) for batches covering all ``sequences``.

    Histories are visited shortest first and each batch is padded only to its
    longest member (at most max_len): on ML-1M almost half of a 200-wide
    padded matrix is padding, so this roughly halves the work. Scores do not
    depend on padding (tested), only the order of the batches changes; the
    row indices say which input each score row belongs to.
    """
    device = _device_of(model, device)
    lengths = np.array([min(len(s), model.max_len) for s in sequences])
    order = np.argsort(lengths, kind="stable")
    was_training = model.training
    model.eval()
    try:
        for part in batches(len(sequences), batch_size):
            rows = order[part]
            width = max(1, int(lengths[rows].max()))
            seqs = torch.from_numpy(pad_left([sequences[r] for r in rows], width)).to(device)  # [b, L]
            # Always float32, never autocast: bf16 scores would tie often, and ties count against the target.
            yield rows, model(seqs).float()
    finally:
        model.train(was_training)


def evaluate_model(model: SequentialRecommender, dataset, split: str = "test", batch_size: int = 512,
                   device=None, filter_seen: bool = True, ks: Sequence[int] = DEFAULT_KS,
                   sampled: bool = True, unfiltered: bool = True, seed: int = 0) -> dict:
    """Metrics of ``model`` on ``split`` ("valid" | "test") of ``dataset``, over all users.

    The plain keys (``hr@10``...) are full-ranking figures with seen items
    filtered when ``filter_seen`` (unfiltered otherwise). ``unfiltered`` adds
    ``unfiltered_*`` keys, ``sampled`` adds ``sampled_*`` keys (100 negatives
    drawn with ``seed``, the same for every model). Also returns ``users``,
    ``eval_seconds`` and ``nonfinite_users``: how many users got a NaN or +inf
    score (their targets are ranked last; training treats any as divergence).
    """
    start = time.perf_counter()
    inputs, targets = dataset.split(split)
    if len(inputs) == 0:
        raise ValueError(f"dataset {dataset.name!r} has no users to evaluate")
    if model.num_items != dataset.num_items:
        raise ValueError(f"model has {model.num_items} items but dataset {dataset.name!r} has {dataset.num_items}")
    device = _device_of(model, device)
    negatives = None
    if sampled:
        # 100 negatives, or fewer on a catalogue too small to leave 100 unseen items to every user.
        fewest_unseen = dataset.num_items - 1 - max(len(np.unique(s)) for s in inputs)
        num_negatives = min(SAMPLED_NEGATIVES, fewest_unseen)
        if num_negatives > 0:
            negatives = sample_negatives_for_eval(dataset.num_items, inputs, targets, num_negatives, seed)
    ranks, plain_ranks, sampled_ranks, nonfinite_users = [], [], [], 0
    for rows, scores in batch_scores(model, inputs, device, batch_size):
        nonfinite_users += int(nonfinite_rows(scores).sum())
        batch_targets = torch.from_numpy(targets[rows]).to(device)  # [b]
        # The whole history (not only the last max_len items) is filtered.
        histories = [inputs[r] for r in rows]
        history = torch.from_numpy(pad_left(histories, max(1, max(len(s) for s in histories)))).to(device)
        plain = rank_of_targets(scores, batch_targets)
        ranks.append(rank_of_targets(scores, batch_targets, history) if filter_seen else plain)
        plain_ranks.append(plain)
        if negatives is not None:
            sampled_ranks.append(sampled_rank_of_targets(scores, batch_targets,
                                                         torch.from_numpy(negatives[rows]).to(device)))
    metrics = ranking_metrics(torch.cat(ranks).cpu(), ks)
    if unfiltered:
        metrics.update(ranking_metrics(torch.cat(plain_ranks).cpu(), ks, prefix="unfiltered_"))
    if negatives is not None:
        metrics.update(ranking_metrics(torch.cat(sampled_ranks).cpu(), ks, prefix="sampled_"))
        metrics["sampled_negatives"] = negatives.shape[1]
    metrics["users"] = len(inputs)
    metrics["nonfinite_users"] = nonfinite_users
    metrics["filter_seen"] = bool(filter_seen)
    metrics["eval_seconds"] = round(time.perf_counter() - start, 3)
    return metrics


def recommend(model: SequentialRecommender, sequences: Sequence[Sequence[int]], k: int = 10,
              exclude_seen: bool = True, device=None, batch_size: int = 512) -> np.ndarray:
    """[N, k] int64 top-k item ids for each history, best first (never padding; seen items excluded if asked)."""
    if k <= 0 or k > model.num_items:
        raise ValueError(f"k must be in 1..{model.num_items} (number of items), got {k}")
    out = np.zeros((len(sequences), k), dtype=np.int64)
    for rows, scores in batch_scores(model, sequences, device, batch_size):
        exclude = None
        if exclude_seen:
            histories = [sequences[r] for r in rows]
            exclude = torch.from_numpy(pad_left(histories, max(1, max(len(s) for s in histories)))).to(scores.device)
            longest_seen = int((exclude != 0).sum(dim=1).max())
            if longest_seen + k > model.num_items:
                raise ValueError(f"cannot return {k} unseen items: a history already has {longest_seen} of "
                                 f"{model.num_items} items")
        out[rows] = topk_items(scores, k, exclude).cpu().numpy()
    return out


@torch.inference_mode()
def ranked_lists(model: SequentialRecommender, histories, k: int, device: torch.device | str = "cpu",
                 batch_size: int = 512) -> tuple[np.ndarray, np.ndarray]:
    """([U, k] history filtered, [U, k] unfiltered) top-k of each history, best first, from ONE scoring pass.

    The model reads the last max_len items; the filtered lists exclude every
    item of the full history (the rule of ``attack.agreement.evaluate_extraction``,
    so the attack stage's figures and these are comparable).
    """
    model.eval()
    filtered = np.empty((len(histories), k), dtype=np.int64)
    unfiltered = np.empty((len(histories), k), dtype=np.int64)
    for chunk in batches(len(histories), batch_size):
        part = histories[chunk]
        seqs = torch.from_numpy(pad_left(part, model.max_len)).to(device)  # [b, L]
        history = torch.from_numpy(pad_left(part, max(len(s) for s in part))).to(device)  # [b, H]
        scores = model(seqs)  # [b, n + 1]
        filtered[chunk] = topk_items(scores, k, exclude=history).cpu().numpy()
        unfiltered[chunk] = topk_items(scores, k).cpu().numpy()
    return filtered, unfiltered
