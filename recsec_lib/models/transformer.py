"""Pieces shared by the two self-attention recommenders (SASRec, BERT4Rec).

Padding-aware by construction: every function takes the [B, L] padding mask so
that left padding never changes a real position's output (tests check this).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def positions_from_start(real: torch.Tensor) -> torch.Tensor:
    """[B, L] bool -> [B, L] int64: 1 for the oldest real item, 2 for the next, ...; 0 on padding.

    Counting from the first real item (not from the column) makes the position
    of an item independent of how much padding precedes it, and of anything
    that comes after it: what a causal model needs.
    """
    return torch.cumsum(real.long(), dim=1) * real.long()


def positions_from_end(real: torch.Tensor) -> torch.Tensor:
    """[B, L] bool -> [B, L] int64: 1 for the newest item, 2 for the one before, ...; 0 on padding.

    For a bidirectional model that always predicts at the end (BERT4Rec): the
    slot being predicted always has position 1, as in the original left-padded
    BERT4Rec where positions are column indices counted from the end.
    """
    real_l = real.long()
    return (real_l.sum(dim=1, keepdim=True) - torch.cumsum(real_l, dim=1) + 1) * real_l


def attention_mask(real: torch.Tensor, causal: bool) -> torch.Tensor:
    """[B, 1, L, L] bool, True = may attend. Keys that are padding are hidden.

    Every position may always attend to itself, so a padding query (whose
    output is discarded) still has one key and the softmax never sees a row of
    -inf (which would give NaN).
    """
    length = real.shape[1]
    eye = torch.eye(length, dtype=torch.bool, device=real.device)  # [L, L]
    allowed = real[:, None, :] | eye[None]  # [B, L(query), L(key)]
    if causal:
        allowed = allowed & torch.ones(length, length, dtype=torch.bool, device=real.device).tril()[None]
    return allowed[:, None]  # [B, 1, L, L]


class SelfAttention(nn.Module):
    """Multi-head self-attention through torch's fused scaled_dot_product_attention."""

    def __init__(self, hidden: int, heads: int, dropout: float):
        super().__init__()
        if hidden % heads:
            raise ValueError(f"hidden ({hidden}) must be divisible by heads ({heads})")
        self.heads = heads
        self.dropout = dropout
        self.qkv = nn.Linear(hidden, 3 * hidden)
        self.out = nn.Linear(hidden, hidden)

    def forward(self, x: torch.Tensor, mask: torch.Tensor, last_query_only: bool = False,
                query_input: torch.Tensor | None = None) -> torch.Tensor:
        """[B, L, D] -> [B, L, D], or [B, 1, D] for the last position only (keys and values still all of x).

        ``query_input`` ([B, L, D], or [B, 1, D] with ``last_query_only``)
        gives the queries a different input than the keys and values, as the
        original SASRec does (layer-normed queries, raw keys and values).
        """
        batch, length, hidden = x.shape  # [B, L, D]
        if query_input is None:
            qkv = self.qkv(x).view(batch, length, 3, self.heads, hidden // self.heads)
            q, k, v = qkv.permute(2, 0, 3, 1, 4)  # each [B, H, L, D/H]
            if last_query_only:
                q = q[:, :, -1:]  # [B, H, 1, D/H]
        else:
            weight, bias = self.qkv.weight, self.qkv.bias  # [3D, D], [3D]
            q = F.linear(query_input, weight[:hidden], bias[:hidden])  # [B, Lq, D]
            q = q.view(batch, q.shape[1], self.heads, hidden // self.heads).transpose(1, 2)  # [B, H, Lq, D/H]
            kv = F.linear(x, weight[hidden:], bias[hidden:]).view(batch, length, 2, self.heads, hidden // self.heads)
            k, v = kv.permute(2, 0, 3, 1, 4)  # each [B, H, L, D/H]
        if last_query_only:
            mask = mask[:, :, -1:]  # [B, 1, 1, L]
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask,
                                           dropout_p=self.dropout if self.training else 0.0)  # [B, H, Lq, D/H]
        return self.out(y.transpose(1, 2).reshape(batch, q.shape[2], hidden))  # [B, Lq, D]


class PreLNBlock(nn.Module):
    """x + Attn(LN(x)), then x + FFN(LN(x)) — SASRec's layout (pre-LN; ReLU FFN as wide as the model)."""

    def __init__(self, hidden: int, heads: int, dropout: float):
        super().__init__()
        self.attn_norm = nn.LayerNorm(hidden)
        self.attn = SelfAttention(hidden, heads, dropout)
        self.ffn_norm = nn.LayerNorm(hidden)
        self.ffn = nn.Sequential(nn.Linear(hidden, hidden), nn.ReLU(), nn.Dropout(dropout),
                                 nn.Linear(hidden, hidden))
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor, last_query_only: bool = False) -> torch.Tensor:
        """[B, L, D] -> [B, L, D]; with ``last_query_only`` just the last position, [B, 1, D] (inference)."""
        residual = x[:, -1:] if last_query_only else x
        x = residual + self.drop(self.attn(self.attn_norm(x), mask, last_query_only))  # [B, Lq, D]
        return x + self.drop(self.ffn(self.ffn_norm(x)))  # [B, Lq, D]


class SASRecBlock(nn.Module):
    """The layout of the original SASRec code, which the SASRec+ figures were measured with.

        q = LN(x);  x = q + Attn(queries q, keys and values x);  x = LN(x);  x = x + FFN(x)

    Unlike the textbook pre-LN block, the residual stream is re-normalised in
    every block and the keys and values see the raw (un-normed) input. On
    ML-1M this layout, with that code's initialisation (``SASRec._init_weights``),
    reached test HR@10 .3038 / NDCG@10 .1721 against .2909 / .1656 for the
    pre-LN block (SASRec+ published: .3152 / .1821).
    No dropout on the attention output (only on its weights), as in that code.
    """

    def __init__(self, hidden: int, heads: int, dropout: float):
        super().__init__()
        self.attn_norm = nn.LayerNorm(hidden, eps=1e-8)
        self.attn = SelfAttention(hidden, heads, dropout)
        self.ffn_norm = nn.LayerNorm(hidden, eps=1e-8)
        self.ffn = nn.Sequential(nn.Linear(hidden, hidden), nn.Dropout(dropout), nn.ReLU(),
                                 nn.Linear(hidden, hidden), nn.Dropout(dropout))

    def forward(self, x: torch.Tensor, mask: torch.Tensor, last_query_only: bool = False) -> torch.Tensor:
        """[B, L, D] -> [B, L, D]; with ``last_query_only`` just the last position, [B, 1, D] (inference)."""
        query = self.attn_norm(x[:, -1:] if last_query_only else x)  # [B, Lq, D]
        x = query + self.attn(x, mask, last_query_only, query_input=query)  # [B, Lq, D]
        x = self.ffn_norm(x)
        return x + self.ffn(x)  # [B, Lq, D]


class PostLNBlock(nn.Module):
    """LN(x + Attn(x)), then LN(x + FFN(x)) — BERT's layout (post-LN, GELU, 4x wide FFN)."""

    def __init__(self, hidden: int, heads: int, dropout: float):
        super().__init__()
        self.attn = SelfAttention(hidden, heads, dropout)
        self.attn_norm = nn.LayerNorm(hidden)
        self.ffn = nn.Sequential(nn.Linear(hidden, 4 * hidden), nn.GELU(), nn.Dropout(dropout),
                                 nn.Linear(4 * hidden, hidden))
        self.ffn_norm = nn.LayerNorm(hidden)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        x = self.attn_norm(x + self.drop(self.attn(x, mask)))  # [B, L, D]
        return self.ffn_norm(x + self.drop(self.ffn(x)))  # [B, L, D]


def pad_column_to_neg_inf(scores: torch.Tensor) -> torch.Tensor:
    """Set the last-dimension column 0 (padding) to -inf, out of place (autograd-safe)."""
    neg = torch.full_like(scores[..., :1], float("-inf"))
    return torch.cat([neg, scores[..., 1:]], dim=-1)
