"""Ranking metrics: where the true next item lands in a model's ranking.

Everything here is vectorised over a batch of users. The protocol (STUDY.md):

* **full ranking** — the target is ranked against *all* items 1..n. Column 0 of
  a score matrix is padding and never counts.
* **filtering** — items already in the user's history are removed from the
  ranking (``exclude``), except the target itself if it happens to be there:
  a recommender does not re-offer a movie the user has rated, but we must
  still be able to rank the target.
* **ties count against the target** — an item with exactly the target's score
  is ranked above it. A model that gives every item the same score therefore
  gets the worst rank, not the best (strict ``>`` would reward it).
* **non-finite scores rank the target last** — a row whose target score is
  NaN or infinite, or where any competing item scores NaN, gets the worst
  possible rank (every other candidate above the target). A comparison with NaN
  is always false, so counting "items scoring at least the target" would
  otherwise put the target first and a diverged model would score HR@10 = 1.
* **sampled** — the target ranked against 100 random negatives. Only a
  secondary figure; keys carry the prefix ``sampled_``.

Ranks are 0-based: rank 0 means the target is the top recommendation.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch

DEFAULT_KS = (1, 5, 10, 20)


def _as_tensor(values, dtype=None) -> torch.Tensor:
    if isinstance(values, torch.Tensor):
        return values if dtype is None else values.to(dtype)
    return torch.as_tensor(np.asarray(values), dtype=dtype)


def _check_batch(scores: torch.Tensor, targets: torch.Tensor, exclude: torch.Tensor | None) -> None:
    if scores.dim() != 2:
        raise ValueError(f"scores must be a [B, n+1] matrix, got shape {tuple(scores.shape)}")
    if targets.dim() != 1 or targets.shape[0] != scores.shape[0]:
        raise ValueError(f"targets must have shape [{scores.shape[0]}], got {tuple(targets.shape)}")
    if targets.numel() and (int(targets.min()) < 1 or int(targets.max()) >= scores.shape[1]):
        raise ValueError(f"targets must be item ids in 1..{scores.shape[1] - 1}")
    if exclude is not None and (exclude.dim() != 2 or exclude.shape[0] != scores.shape[0]):
        raise ValueError(f"exclude must be a padded [B, L] id matrix with B={scores.shape[0]}, "
                         f"got shape {tuple(exclude.shape)}")


def mask_items(scores: torch.Tensor, exclude: torch.Tensor | None) -> torch.Tensor:
    """A copy of ``scores`` [B, n+1] with column 0 and each row's ``exclude`` ids set to -inf.

    ``exclude`` is a [B, L] id matrix padded with 0 (padding only hits column 0).
    """
    masked = scores.clone()
    masked[:, 0] = -math.inf
    if exclude is not None:
        exclude = _as_tensor(exclude, torch.int64).to(scores.device)
        masked.scatter_(1, exclude, -math.inf)
    return masked


def rank_of_targets(scores, targets, exclude=None) -> torch.Tensor:
    """0-based rank [B] of each row's target among all items.

    scores: [B, n+1] (column 0 = padding), targets: [B] item ids,
    exclude: optional [B, L] 0-padded ids removed from the ranking (the target
    itself is never removed). Ties are counted against the target; a row with
    non-finite scores (see the module docstring) ranks its target last.
    """
    scores = _as_tensor(scores).float()
    targets = _as_tensor(targets, torch.int64).to(scores.device)
    exclude_t = None if exclude is None else _as_tensor(exclude, torch.int64).to(scores.device)
    _check_batch(scores, targets, exclude_t)
    target_scores = scores.gather(1, targets[:, None])  # [B, 1]
    # Candidates: every item except padding, the excluded ids and the target itself.
    candidate = torch.ones_like(scores, dtype=torch.bool)  # [B, n+1]
    candidate[:, 0] = False
    if exclude_t is not None:
        candidate.scatter_(1, exclude_t, False)
    candidate.scatter_(1, targets[:, None], False)
    ahead = ((scores >= target_scores) & candidate).sum(dim=1)  # [B] candidates at or above the target
    return _worst_rank_where_not_finite(ahead, target_scores, scores, candidate)


def _worst_rank_where_not_finite(ahead: torch.Tensor, target_scores: torch.Tensor, scores: torch.Tensor,
                                 candidate: torch.Tensor) -> torch.Tensor:
    """``ahead`` [B], except rows with a non-finite target score or a NaN candidate: all candidates ahead."""
    broken = ~torch.isfinite(target_scores[:, 0]) | (torch.isnan(scores) & candidate).any(dim=1)  # [B]
    return torch.where(broken, candidate.sum(dim=1), ahead)


def nonfinite_rows(scores) -> torch.Tensor:
    """[B] bool: rows of a [B, n+1] score matrix with a NaN or +inf item score (column 0 is ignored).

    -inf is left out: models and masks use it on purpose for items that must never be recommended.
    """
    scores = _as_tensor(scores)
    return (torch.isnan(scores[:, 1:]) | torch.isposinf(scores[:, 1:])).any(dim=1)


def ranking_metrics(ranks, ks: Sequence[int] = DEFAULT_KS, prefix: str = "") -> dict[str, float]:
    """HR@k, NDCG@k (one relevant item: 1/log2(rank+2) inside the top k) and MRR.

    Keys: ``f"{prefix}hr@{k}"``, ``f"{prefix}ndcg@{k}"``, ``f"{prefix}mrr"``.
    """
    ranks = _as_tensor(ranks).to(torch.float64).flatten()
    if ranks.numel() == 0:
        raise ValueError("ranking_metrics needs at least one rank")
    if bool((ranks < 0).any()):
        raise ValueError("ranks must be 0-based non-negative integers")
    out: dict[str, float] = {}
    for k in ks:
        if k <= 0:
            raise ValueError(f"cut-off k must be positive, got {k}")
        hit = ranks < k
        out[f"{prefix}hr@{k}"] = float(hit.double().mean())
        out[f"{prefix}ndcg@{k}"] = float(torch.where(hit, 1.0 / torch.log2(ranks + 2.0), 0.0).mean())
    out[f"{prefix}mrr"] = float((1.0 / (ranks + 1.0)).mean())
    return out


def topk_items(scores, k: int, exclude=None) -> torch.Tensor:
    """[B, k] item ids of the k best scores per row, best first; never 0 or an ``exclude`` id."""
    scores = _as_tensor(scores).float()
    if k <= 0 or k > scores.shape[1] - 1:
        raise ValueError(f"k must be in 1..{scores.shape[1] - 1} (number of items), got {k}")
    masked = mask_items(scores, exclude)
    return masked.topk(k, dim=1).indices


def agreement_at_k(top_a, top_b, k: int) -> float:
    """Agr@K = |topK(A) ∩ topK(B)| / K averaged over rows (STUDY.md).

    top_a, top_b: [B, >=k] ranked id lists (tensor or array); only the first k
    columns of each are compared, order inside the top k does not matter.
    """
    a = _as_tensor(top_a, torch.int64)
    b = _as_tensor(top_b, torch.int64)
    if a.dim() != 2 or b.dim() != 2 or a.shape[0] != b.shape[0]:
        raise ValueError(f"top lists must be [B, k] with the same B, got {tuple(a.shape)} and {tuple(b.shape)}")
    if k <= 0 or k > a.shape[1] or k > b.shape[1]:
        raise ValueError(f"k={k} must be in 1..min list length ({min(a.shape[1], b.shape[1])})")
    a, b = a[:, :k], b[:, :k]
    common = (a[:, :, None] == b[:, None, :]).any(dim=2).sum(dim=1)  # [B]
    return float(common.double().mean() / k)


def sample_negatives_for_eval(num_items: int, histories: Sequence[Sequence[int]], targets,
                              num_negatives: int = 100, seed: int = 0) -> np.ndarray:
    """[B, num_negatives] item ids drawn uniformly, outside each user's history and target.

    Seeded so that every model is scored against the same negatives.
    """
    rng = np.random.default_rng(seed)
    targets = np.asarray(targets, dtype=np.int64)
    out = np.zeros((len(targets), num_negatives), dtype=np.int64)
    for row, (history, target) in enumerate(zip(histories, targets)):
        forbidden = np.zeros(num_items + 1, dtype=bool)
        forbidden[0] = True
        forbidden[np.asarray(history, dtype=np.int64)] = True
        forbidden[target] = True
        allowed = np.flatnonzero(~forbidden)
        if len(allowed) < num_negatives:
            raise ValueError(f"user row {row}: only {len(allowed)} items left to draw {num_negatives} negatives from")
        out[row] = rng.choice(allowed, size=num_negatives, replace=False)
    return out


def sampled_rank_of_targets(scores, targets, negatives) -> torch.Tensor:
    """0-based rank [B] of each target among itself and its [B, m] sampled negatives.

    Ties count against the target; a non-finite target score or a NaN negative
    ranks the target last (rank m), as in ``rank_of_targets``.
    """
    scores = _as_tensor(scores).float()
    targets = _as_tensor(targets, torch.int64).to(scores.device)
    negatives = _as_tensor(negatives, torch.int64).to(scores.device)
    _check_batch(scores, targets, None)
    target_scores = scores.gather(1, targets[:, None])  # [B, 1]
    negative_scores = scores.gather(1, negatives)  # [B, m]
    ahead = (negative_scores >= target_scores).sum(dim=1)  # [B]
    return _worst_rank_where_not_finite(ahead, target_scores, negative_scores, torch.ones_like(negative_scores,
                                                                                              dtype=torch.bool))


def per_user_hits(lists, targets, k: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """([U] HR@k, [U] NDCG@k) per user, read from ranked lists [U, >=k]: the true item's position as served."""
    lists = np.asarray(lists)[:, :k]
    hits = lists == np.asarray(targets)[:, None]  # [U, k]
    found = hits.any(axis=1)
    position = hits.argmax(axis=1)
    return found.astype(np.float64), np.where(found, 1.0 / np.log2(position + 2.0), 0.0)


def per_user_agreement(top_a, top_b, k: int = 10) -> np.ndarray:
    """[U] |topk(a) ∩ topk(b)| / k per user (Agr@k before averaging)."""
    a, b = np.asarray(top_a)[:, :k], np.asarray(top_b)[:, :k]
    return (a[:, :, None] == b[:, None, :]).any(axis=2).sum(axis=1) / k


def list_metrics(lists, targets, ks: Sequence[int] = (10,)) -> dict[str, float]:
    """HR@k and NDCG@k read from ranked lists [U, >=k]: the true item's position in the list as served."""
    lists = np.asarray(lists)
    targets = np.asarray(targets)
    if lists.ndim != 2 or len(lists) != len(targets):
        raise ValueError(f"lists must be [U, k] with U = {len(targets)} targets, got shape {lists.shape}")
    out = {}
    for k in ks:
        if k > lists.shape[1]:
            raise ValueError(f"cut-off {k} is longer than the lists ({lists.shape[1]})")
        hr, ndcg = per_user_hits(lists, targets, k)
        out[f"hr@{k}"], out[f"ndcg@{k}"] = float(hr.mean()), float(ndcg.mean())
    return out
