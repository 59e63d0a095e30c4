"""The pairwise margin loss used to distil a ranking into a surrogate.

From Yue et al. (RecSys 2021), also the student's loss in GRO. For one returned
list l_1 … l_k (best first) with surrogate scores s_1 … s_k of those items, and
one sampled negative per position with score n_i (an item outside the list):

    loss = sum_{i<k} max(s_{i+1} - s_i + m1, 0)  +  sum_i max(n_i - s_i + m2, 0)

The first term asks the surrogate to keep the returned order, the second to put
every listed item above items the black box did not return.
"""

from __future__ import annotations

import torch


def ranking_margin_loss(
    listed_scores: torch.Tensor,  # [B, k] surrogate scores of the returned items, in returned order
    negative_scores: torch.Tensor,  # [B, k] surrogate scores of one negative per position
    margin_order: float = 0.5,  # m1
    margin_negative: float = 0.5,  # m2
    valid: torch.Tensor | None = None,  # [B] bool: rows to count (e.g. skip padded positions)
    order_weight: float = 1.0,  # weight of the order term; 0 when the list's order carries nothing (a shuffle)
) -> torch.Tensor:
    """Mean over rows of the summed margin terms (a scalar)."""
    if listed_scores.shape != negative_scores.shape:
        raise ValueError(
            f"listed_scores {tuple(listed_scores.shape)} and negative_scores "
            f"{tuple(negative_scores.shape)} must have the same shape [B, k]"
        )
    order = torch.relu(listed_scores[:, 1:] - listed_scores[:, :-1] + margin_order).sum(dim=1)  # [B]
    negative = torch.relu(negative_scores - listed_scores + margin_negative).sum(dim=1)  # [B]
    per_row = order_weight * order + negative  # [B]
    if valid is not None:
        weights = valid.to(per_row.dtype)
        return (per_row * weights).sum() / weights.sum().clamp(min=1.0)
    return per_row.mean()


def sample_negatives(
    lists: torch.Tensor,  # [B, k] returned item ids
    num_items: int,  # items are 1..num_items
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """[B, k] item ids drawn uniformly from 1..num_items outside each row's list.

    Rejection sampling: redraw the (few) collisions until none is left. Whether
    a draw collides is read from a [B, n+1] membership mask: with k = 100 that
    is far cheaper than comparing every draw with every listed item ([B, k, k]).
    """
    if lists.shape[1] >= num_items:
        raise ValueError(f"a list of {lists.shape[1]} items leaves no negatives among {num_items} items")
    member = torch.zeros(lists.shape[0], num_items + 1, dtype=torch.bool, device=lists.device)  # [B, n+1]
    member.scatter_(1, lists, True)
    member[:, 0] = True
    negatives = torch.randint(1, num_items + 1, lists.shape, generator=generator, device=lists.device)
    for _ in range(100):
        clash = member.gather(1, negatives)  # [B, k]
        if not clash.any():
            return negatives
        redraw = torch.randint(1, num_items + 1, (int(clash.sum()),), generator=generator, device=lists.device)
        negatives[clash] = redraw
    raise RuntimeError("could not draw negatives outside the lists after 100 rounds")
