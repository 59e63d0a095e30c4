"""What the watermark costs users: NDCG@10 kept against the unmarked target, with its interval.

Per test user the full-ranking NDCG@10 (seen items filtered, the project's
metric functions) of the marked and of the unmarked target; the retention is
mean(marked) / mean(unmarked), and its 95% interval is a paired bootstrap
over the test users (``recommend.intervals.bootstrap_interval``, one seed:
the interval covers which users were sampled, not how the embedding was seeded).
"""

from __future__ import annotations

import numpy as np
import torch

from recsec_lib.recommend.evaluation import batch_scores
from recsec_lib.recommend.intervals import Interval, bootstrap_interval
from recsec_lib.recommend.metrics import rank_of_targets
from recsec_lib.recommend.sequences import pad_left


@torch.inference_mode()
def per_user_ndcg(model, dataset, split: str = "test", k: int = 10, batch_size: int = 512) -> np.ndarray:
    """[U] NDCG@k of each user's held-out item (full ranking, the user's whole history filtered)."""
    inputs, targets = dataset.split(split)
    out = np.zeros(len(inputs), dtype=np.float64)
    for rows, scores in batch_scores(model, inputs, None, batch_size):
        histories = [inputs[r] for r in rows]
        history = torch.from_numpy(pad_left(histories, max(1, max(len(s) for s in histories)))).to(scores.device)
        ranks = rank_of_targets(scores, torch.from_numpy(targets[rows]).to(scores.device), history).cpu().numpy()
        out[rows] = np.where(ranks < k, 1.0 / np.log2(ranks + 2.0), 0.0)
    return out


def utility_retention(marked_ndcg: np.ndarray, reference_ndcg: np.ndarray, replicates: int = 1000,
                      seed: int = 0) -> Interval:
    """mean(marked) / mean(reference) over the same users, with the paired bootstrap interval."""
    return bootstrap_interval(marked_ndcg, reference_ndcg, "ratio", replicates=replicates, seed=seed)
