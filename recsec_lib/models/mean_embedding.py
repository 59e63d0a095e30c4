"""The seed's baseline: average the history's item embeddings, then a linear layer.

Order-blind by design (the mean forgets which item came last), which is why it
is only a baseline row: the seed reported Hit@10 of about 4.8% on ML-1M.

Training (our choice, so that it sees as many examples as SASRec): next-item
cross-entropy over all items at every prefix of each training sequence. The
mean of every prefix comes from one cumulative sum, so a whole batch costs one
pass, like SASRec's.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from recsec_lib.models.base import SequentialRecommender
from recsec_lib.models.transformer import pad_column_to_neg_inf


@dataclass(frozen=True)
class MeanEmbeddingConfig:
    embedding_dim: int = 256  # the seed's item embedding size
    dropout: float = 0.1  # on the averaged embedding


class MeanEmbedding(SequentialRecommender):
    def __init__(self, num_items: int, max_len: int, config: MeanEmbeddingConfig = MeanEmbeddingConfig()):
        super().__init__()
        self.num_items, self.max_len, self.config = num_items, max_len, config
        self.item_embedding = nn.Embedding(num_items + 1, config.embedding_dim, padding_idx=0)
        self.dropout = nn.Dropout(config.dropout)
        self.output = nn.Linear(config.embedding_dim, num_items + 1)

    def prefix_means(self, seqs: torch.Tensor) -> torch.Tensor:
        """[B, L] -> [B, L, D]: mean embedding of the real items up to and including each position.

        Padding has a zero embedding, so the cumulative sum only adds real
        items; an all-padding prefix gives the zero vector.
        """
        real = (seqs != 0).unsqueeze(-1).float()  # [B, L, 1]
        sums = torch.cumsum(self.item_embedding(seqs), dim=1)  # [B, L, D]
        return sums / torch.cumsum(real, dim=1).clamp(min=1.0)

    def forward(self, seqs: torch.Tensor) -> torch.Tensor:
        seqs = seqs[:, -self.max_len:]
        real = (seqs != 0).unsqueeze(-1).float()  # [B, L, 1]
        mean = self.item_embedding(seqs).sum(dim=1) / real.sum(dim=1).clamp(min=1.0)  # [B, D]
        return pad_column_to_neg_inf(self.output(self.dropout(mean)))  # [B, n+1]

    def all_position_scores(self, seqs: torch.Tensor) -> torch.Tensor:
        return pad_column_to_neg_inf(self.output(self.dropout(self.prefix_means(seqs))))  # [B, L, n+1]

    def training_loss(self, seqs: torch.Tensor) -> torch.Tensor:
        """Next-item cross-entropy over all items after every non-empty prefix."""
        seqs = seqs[:, -(self.max_len + 1):]
        inputs, targets = seqs[:, :-1], seqs[:, 1:]  # [B, L-1]
        counted = (inputs != 0) & (targets != 0)  # [B, L-1]
        if not bool(counted.any()):
            raise ValueError("training batch has no sequence with at least two items")
        hidden = self.dropout(self.prefix_means(inputs)[counted])  # [N, D]
        logits = hidden @ self.output.weight[1:].T + self.output.bias[1:]  # [N, n]
        return F.cross_entropy(logits, targets[counted] - 1)
