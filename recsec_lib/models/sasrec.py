"""SASRec (Kang & McAuley, ICDM 2018) trained the SASRec+ way (Klenitskiy & Vasilev, RecSys 2023).

Causal self-attention over the history; the hidden state at position t scores
the item that follows position t. The details that decide its quality on ML-1M
(STUDY.md) are all here:

* item embeddings scaled by sqrt(hidden), plus *learned* positional embeddings,
  dropout on the sum, padding positions zeroed. Positions count from the
  oldest item the model sees (1, 2, ...), not from the column, so left padding
  changes nothing and the scores after every prefix (``all_position_scores``)
  equal ``forward`` on that prefix alone;
* the original SASRec code's block layout (``layout="sasrec"``: layer-normed
  queries as the residual, raw keys and values, the stream re-normalised
  before the FFN), one final LayerNorm, and every weight drawn from
  N(0, 0.02) with zero biases (Xavier for the attention's query/key/value
  projection, as torch's MultiheadAttention in that code). On ML-1M (seed 42,
  best validation epoch 78 of 88) it reached test HR@10 .3038 / NDCG@10 .1721.
  The textbook pre-LN block (``layout="pre_ln"``) with torch's default
  initialisation stays available: it trained to HR@10 .2909 / NDCG@10 .1656;
* a causal mask and a key-padding mask;
* the output layer tied to the item embedding;
* training with cross-entropy over ALL items at EVERY real position (the
  "+" of SASRec+), padding positions dropped *before* the output projection
  so the big [positions, items] product is only computed where it counts.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from recsec_lib.models.base import SequentialRecommender
from recsec_lib.models.full_softmax import full_softmax_cross_entropy
from recsec_lib.models.transformer import (PreLNBlock, SASRecBlock, attention_mask, pad_column_to_neg_inf,
                                           positions_from_start)

LAYOUTS = {"sasrec": SASRecBlock, "pre_ln": PreLNBlock}


@dataclass(frozen=True)
class SASRecConfig:
    hidden: int = 64  # embedding and model width
    blocks: int = 2  # self-attention blocks
    heads: int = 1  # attention heads
    dropout: float = 0.1  # on embeddings, attention weights and each residual branch
    layout: str = "sasrec"  # block layout: "sasrec" (the original code's) or "pre_ln" (textbook)

    def __post_init__(self):
        if self.layout not in LAYOUTS:
            raise ValueError(f"unknown SASRec layout {self.layout!r}; expected one of {sorted(LAYOUTS)}")


class SASRec(SequentialRecommender):
    def __init__(self, num_items: int, max_len: int, config: SASRecConfig = SASRecConfig()):
        super().__init__()
        self.num_items, self.max_len, self.config = num_items, max_len, config
        self.item_embedding = nn.Embedding(num_items + 1, config.hidden, padding_idx=0)
        self.position_embedding = nn.Embedding(max_len + 1, config.hidden, padding_idx=0)
        self.embedding_dropout = nn.Dropout(config.dropout)
        block = LAYOUTS[config.layout]
        self.blocks = nn.ModuleList(block(config.hidden, config.heads, config.dropout) for _ in range(config.blocks))
        self.final_norm = nn.LayerNorm(config.hidden, eps=1e-8 if config.layout == "sasrec" else 1e-5)
        self._init_weights()

    def _init_weights(self) -> None:
        """Small normal init for embeddings (the output layer is tied to them); padding rows stay 0.

        The "sasrec" layout initialises as the original code does: every linear
        weight from N(0, 0.02) with zero bias (torch's default uniform init is
        about 3x wider at width 64), except the attention's joint query/key/value
        projection, which gets Xavier-uniform over its [3D, D] matrix (how
        torch's MultiheadAttention, used by that code, initialises it). With
        N(0, 0.02) there too, q·k starts near 0 and attention stays almost
        uniform for the first epochs: on ML-1M validation NDCG@10 after 8
        epochs was .1285 that way against .1378 with Xavier.
        """
        if self.config.layout == "sasrec":
            for module in self.modules():
                if isinstance(module, nn.Linear):
                    nn.init.normal_(module.weight, std=0.02)
                    nn.init.zeros_(module.bias)
        for embedding in (self.item_embedding, self.position_embedding):
            nn.init.normal_(embedding.weight, std=0.02)
            with torch.no_grad():
                embedding.weight[0].zero_()
        if self.config.layout == "sasrec":
            for block in self.blocks:
                nn.init.xavier_uniform_(block.attn.qkv.weight)  # [3D, D]

    def encode(self, seqs: torch.Tensor, last_only: bool = False) -> torch.Tensor:
        """[B, L] left-padded ids (L <= max_len) -> hidden states [B, L, D].

        ``last_only`` returns only the newest position, [B, 1, D]: the last
        block then computes one query per row instead of L (what ``forward``
        needs; about a quarter less work at inference).
        """
        if seqs.shape[1] > self.max_len:
            raise ValueError(f"sequence length {seqs.shape[1]} exceeds the model's max_len {self.max_len}")
        real = seqs != 0  # [B, L]
        x = self.item_embedding(seqs) * math.sqrt(self.config.hidden)  # [B, L, D]
        x = x + self.position_embedding(positions_from_start(real))  # [B, L, D]
        x = self.embedding_dropout(x) * real.unsqueeze(-1)
        mask = attention_mask(real, causal=True)  # [B, 1, L, L]
        last = len(self.blocks) - 1
        for index, block in enumerate(self.blocks):
            if last_only and index == last:
                x = block(x, mask, last_query_only=True) * real[:, -1:].unsqueeze(-1)  # [B, 1, D]
            else:
                x = block(x, mask) * real.unsqueeze(-1)  # [B, L, D]
        if last_only and not self.blocks:  # a model without blocks
            x = x[:, -1:]
        return self.final_norm(x)  # [B, L or 1, D]

    def _scores(self, hidden: torch.Tensor) -> torch.Tensor:
        """[..., D] -> [..., n+1] dot products with the (tied) item embeddings; column 0 = -inf."""
        return pad_column_to_neg_inf(hidden @ self.item_embedding.weight.T)

    def forward(self, seqs: torch.Tensor) -> torch.Tensor:
        seqs = seqs[:, -self.max_len:]  # the newest max_len items
        return self._scores(self.encode(seqs, last_only=True)[:, -1])  # [B, n+1]

    def all_position_scores(self, seqs: torch.Tensor) -> torch.Tensor:
        return self._scores(self.encode(seqs))  # [B, L, n+1]

    def all_position_item_scores(self, seqs: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """[B, L, m] scores of ``items`` [B, L, m] (real items, never 0) after every prefix of ``seqs`` [B, L]."""
        # One dense product and one gather: cheaper on CPU than gathering m embeddings per prefix, and it skips
        # the padding column's -inf (a copy of the whole tensor) that ``_scores`` adds.
        raw = self.encode(seqs) @ self.item_embedding.weight.T  # [B, L, n+1]
        return raw.gather(2, items)  # [B, L, m]

    def item_scores_at(self, seqs: torch.Tensor, rows: torch.Tensor, columns: torch.Tensor,
                       items: torch.Tensor) -> torch.Tensor:
        """[N, m] scores of ``items`` [N, m] after the requested prefixes: ``all_position_item_scores``' product
        on the N chosen states only (the encoder pass, and so its dropout, is the same)."""
        raw = self.encode(seqs)[rows, columns] @ self.item_embedding.weight.T  # [N, D] -> [N, n+1]
        return raw.gather(1, items)  # [N, m]

    def scores_at(self, seqs: torch.Tensor, rows: torch.Tensor, columns: torch.Tensor) -> torch.Tensor:
        """Scores after the requested prefixes only: the [N, D] states, not the [B, L, n+1] tensor (GRO's cost)."""
        return self._scores(self.encode(seqs)[rows, columns])  # [N, n+1]

    def training_loss(self, seqs: torch.Tensor) -> torch.Tensor:
        """Mean next-item cross-entropy over all items, at every position that has a history and a target.

        ``seqs`` [B, L]: left-padded training sequences; L may be max_len + 1
        (the model reads seqs[:, :-1] and predicts seqs[:, 1:]).
        """
        return self._loss_and_hidden(seqs)[0]

    def training_loss_and_scores_at(self, seqs: torch.Tensor, rows: torch.Tensor,
                                    columns: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The training loss and the [N, n+1] scores after the requested input prefixes, from ONE encoder pass."""
        loss, hidden = self._loss_and_hidden(seqs)  # hidden [B, L-1, D]
        return loss, self._scores(hidden[rows, columns])  # [N, n+1]

    def _loss_and_hidden(self, seqs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(the training loss, the hidden states [B, L-1, D] of the inputs seqs[:, :-1]) of a training batch."""
        seqs = seqs[:, -(self.max_len + 1):]
        inputs, targets = seqs[:, :-1], seqs[:, 1:]  # [B, L-1] each
        hidden = self.encode(inputs)  # [B, L-1, D]
        counted = (inputs != 0) & (targets != 0)  # [B, L-1]
        if not bool(counted.any()):
            raise ValueError("training batch has no sequence with at least two items")
        # Only real positions reach the [N, n] output product; the padding column is never built.
        loss = full_softmax_cross_entropy(hidden[counted], self.item_embedding.weight[1:], targets[counted] - 1)
        return loss, hidden
