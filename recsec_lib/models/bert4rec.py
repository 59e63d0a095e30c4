"""BERT4Rec (Sun et al., CIKM 2019): bidirectional self-attention trained to fill in masked items.

Training: each real item of a training sequence is replaced by the mask token
(id num_items + 1) with probability ``mask_prob`` (0.2 for ML-1M, as in the
paper); the model is scored with cross-entropy over all items at the masked
slots only. Every row gets at least one masked slot (its newest item if the
draw picked none), so no row is wasted.

Prediction: the mask token is appended after the history and the model fills
it in: ``forward`` returns the scores at that last slot. Positions are counted
from the end, so the slot being predicted always has position 1 (the original
left-padded BERT4Rec's column positions amount to the same thing).

Because attention is bidirectional there is no one-pass ``all_position_scores``;
the base class's per-prefix loop is used (correct, slower).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from recsec_lib.models.base import SequentialRecommender
from recsec_lib.models.transformer import PostLNBlock, attention_mask, pad_column_to_neg_inf, positions_from_end


@dataclass(frozen=True)
class BERT4RecConfig:
    hidden: int = 64  # embedding and model width
    blocks: int = 2  # transformer blocks
    heads: int = 2  # attention heads
    dropout: float = 0.1  # embeddings, attention, residual branches
    mask_prob: float = 0.2  # share of items masked in training (ML-1M value)


class BERT4Rec(SequentialRecommender):
    def __init__(self, num_items: int, max_len: int, config: BERT4RecConfig = BERT4RecConfig()):
        super().__init__()
        if not 0.0 < config.mask_prob < 1.0:
            raise ValueError(f"mask_prob must be in (0, 1), got {config.mask_prob}")
        self.num_items, self.max_len, self.config = num_items, max_len, config
        self.mask_token = num_items + 1
        self.item_embedding = nn.Embedding(num_items + 2, config.hidden, padding_idx=0)  # + mask token
        self.position_embedding = nn.Embedding(max_len + 1, config.hidden, padding_idx=0)
        self.embedding_norm = nn.LayerNorm(config.hidden)
        self.embedding_dropout = nn.Dropout(config.dropout)
        self.blocks = nn.ModuleList(PostLNBlock(config.hidden, config.heads, config.dropout)
                                    for _ in range(config.blocks))
        # BERT's output head: a transform, then dot products with the tied item embeddings plus a bias.
        self.head = nn.Sequential(nn.Linear(config.hidden, config.hidden), nn.GELU(), nn.LayerNorm(config.hidden))
        self.output_bias = nn.Parameter(torch.zeros(num_items + 1))
        for embedding in (self.item_embedding, self.position_embedding):
            nn.init.trunc_normal_(embedding.weight, std=0.02)
            with torch.no_grad():
                embedding.weight[0].zero_()

    def encode(self, tokens: torch.Tensor) -> torch.Tensor:
        """[B, L] token ids (items, mask token, 0 padding), L <= max_len -> [B, L, D]."""
        if tokens.shape[1] > self.max_len:
            raise ValueError(f"sequence length {tokens.shape[1]} exceeds the model's max_len {self.max_len}")
        real = tokens != 0  # [B, L]
        x = self.item_embedding(tokens) + self.position_embedding(positions_from_end(real))  # [B, L, D]
        x = self.embedding_dropout(self.embedding_norm(x)) * real.unsqueeze(-1)
        mask = attention_mask(real, causal=False)  # [B, 1, L, L]
        for block in self.blocks:
            x = block(x, mask) * real.unsqueeze(-1)  # [B, L, D]
        return x

    def _item_logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """[..., D] -> [..., n] logits of items 1..n (no padding, no mask token)."""
        return self.head(hidden) @ self.item_embedding.weight[1:self.num_items + 1].T + self.output_bias[1:]

    def forward(self, seqs: torch.Tensor) -> torch.Tensor:
        mask_column = torch.full_like(seqs[:, :1], self.mask_token)
        tokens = torch.cat([seqs, mask_column], dim=1)[:, -self.max_len:]  # [B, <=max_len]
        logits = self._item_logits(self.encode(tokens)[:, -1])  # [B, n]
        return pad_column_to_neg_inf(F.pad(logits, (1, 0)))  # [B, n+1]

    def mask_batch(self, seqs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(tokens with masked slots, bool [B, L] of the masked slots) for one training batch."""
        real = seqs != 0
        masked = (torch.rand(seqs.shape, device=seqs.device) < self.config.mask_prob) & real  # [B, L]
        # Rows with items but no masked slot get their newest item masked.
        empty = real.any(dim=1) & ~masked.any(dim=1)  # [B]
        masked[:, -1] |= empty
        tokens = torch.where(masked, torch.full_like(seqs, self.mask_token), seqs)
        return tokens, masked

    def training_loss(self, seqs: torch.Tensor) -> torch.Tensor:
        """Cross-entropy over all items at the masked slots of a [B, L] left-padded batch."""
        seqs = seqs[:, -self.max_len:]
        if not bool((seqs != 0).any()):
            raise ValueError("training batch has no items")
        tokens, masked = self.mask_batch(seqs)
        hidden = self.encode(tokens)[masked]  # [N, D]: only the masked slots reach the output layer
        return F.cross_entropy(self._item_logits(hidden), seqs[masked] - 1)
