"""How well a surrogate imitates its target: the evaluator's side of the attack.

This module reads the real dataset, so it is *not* part of the attacker: the
attack code (``attack.queries``, ``attack.generators``, ``attack.surrogate``) never imports it.

Figures (STUDY.md, full ranking over all items, items already in the input
history excluded for both models):

* ``agr@K`` = |topK(target) ∩ topK(surrogate)| / K averaged over the users'
  real test inputs (K = 1 and 10). The seed's "overlap@10" is ``agr@10``.
* the surrogate's (and, for reference, the target's) HR@K / NDCG@K on the
  test targets, with the project's metric functions.

On "attack success": the seed reported an attack success figure without
defining it. The only definition we can give without inventing a threshold
is "the share of users for whom the surrogate recommends the same first item
as the target", which is exactly ``agr@1``; we report that and no separate
success rate.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from recsec_lib.recommend.metrics import agreement_at_k, rank_of_targets, ranking_metrics, topk_items
from recsec_lib.recommend.sequences import pad_left


@torch.inference_mode()
def evaluate_extraction(
    target_model,  # SequentialRecommender behind the black box
    surrogate_model,  # the attacker's copy
    dataset,  # SequenceDataset: its real test (or valid) inputs are the evaluation queries
    split: str = "test",
    ks: Sequence[int] = (1, 10),  # agreement cut-offs
    metric_ks: Sequence[int] = (10,),  # HR/NDCG cut-offs reported for both models
    batch_size: int = 256,
    device: str | torch.device = "cpu",
    max_users: int | None = None,  # evaluate the first max_users users only (quick checks)
) -> dict[str, float]:
    """Agreement and quality figures; keys ``agr@1``, ``agr@10``, ``surrogate_hr@10``, ``target_ndcg@10``, ..."""
    device = torch.device(device)
    inputs, targets = dataset.split(split)
    if max_users is not None:
        inputs, targets = inputs[:max_users], targets[:max_users]
    if not len(targets):
        raise ValueError(f"dataset {dataset.name!r} has no users to evaluate on")
    top_k = max(ks)
    models = {"target": target_model.to(device).eval(), "surrogate": surrogate_model.to(device).eval()}
    tops: dict[str, list[torch.Tensor]] = {name: [] for name in models}
    ranks: dict[str, list[torch.Tensor]] = {name: [] for name in models}
    for start in range(0, len(targets), batch_size):
        chunk = inputs[start:start + batch_size]
        batch_targets = torch.from_numpy(targets[start:start + batch_size]).to(device)  # [b]
        for name, model in models.items():
            seqs = torch.from_numpy(pad_left(chunk, model.max_len)).to(device)  # [b, L]
            # The history to exclude is the full input, not only what the model can see.
            history = torch.from_numpy(pad_left(chunk, max(len(s) for s in chunk))).to(device)  # [b, H]
            scores = model(seqs).float()  # [b, n+1]
            tops[name].append(topk_items(scores, top_k, exclude=history).cpu())
            ranks[name].append(rank_of_targets(scores, batch_targets, exclude=history).cpu())
    top_target, top_surrogate = torch.cat(tops["target"]), torch.cat(tops["surrogate"])  # [U, K]
    out: dict[str, float] = {f"agr@{k}": agreement_at_k(top_target, top_surrogate, k) for k in ks}
    for name in models:
        figures = ranking_metrics(torch.cat(ranks[name]), ks=tuple(metric_ks))
        out.update({f"{name}_{key}": value for key, value in figures.items()})
    out["users"] = float(len(targets))
    return out

