"""NARM (Li et al., CIKM 2017): a GRU encoder with attention, the attack paper's architecture.

For the history up to position t with GRU states h_1..h_t:

    global context  c_g = h_t
    local context   c_l = sum_j a_tj h_j,  e_tj = v^T sigmoid(A1 h_t + A2 h_j)   (j <= t, real items)
    score of item i = emb_i^T  B [c_g ; c_l]

Two departures from the paper, both because ML-1M histories are ~10x longer
than the paper's click sessions:

* the weights are normalised, a_tj = softmax_j(e_tj). The paper uses e_tj
  as they are; summed over up to 200 states the local context then grows
  with the history's length, and on ML-1M training diverged (loss 8.74 after
  one epoch, above the uniform ln 3416 = 8.14);
* training scores a random subset of ``train_positions`` prefixes of each
  sequence per batch, not all of them: the additive attention costs
  [B, T, L, H] for T query positions, and all 200 made an epoch take about
  500 s on 2 cores. Every prefix is still seen over the epochs.

The GRU runs on the *real* items only (left padding is moved out of the way
with a packed sequence), so padding never changes a state. Every prefix can
be scored in one pass (causal); the attention is computed in chunks of query
positions so memory stays at [B, chunk, L, H] rather than [B, L, L, H].
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from recsec_lib.models.base import SequentialRecommender
from recsec_lib.models.transformer import pad_column_to_neg_inf


@dataclass(frozen=True)
class NARMConfig:
    embedding_dim: int = 64  # item embedding size
    hidden: int = 128  # GRU state size
    layers: int = 1  # GRU layers
    embedding_dropout: float = 0.25  # on item embeddings (NARM paper)
    context_dropout: float = 0.5  # on [c_g; c_l] before the decoder (NARM paper)
    attention_chunk: int = 32  # query positions per attention chunk (memory only)
    train_positions: int = 16  # random prefixes per sequence scored in each training batch; 0 = all


def left_to_right_padding(seqs: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
    """Move each row's real entries to the front: [B, L, ...] left-padded -> right-padded.

    Works for ids [B, L] and features [B, L, D]; the moved-out slots are zeroed.
    """
    length = seqs.shape[1]
    shift = length - real.sum(dim=1, keepdim=True)  # [B, 1] padding per row
    index = (torch.arange(length, device=seqs.device)[None] + shift).clamp(max=length - 1)  # [B, L]
    keep = torch.arange(length, device=seqs.device)[None] < (length - shift)  # [B, L]
    if seqs.dim() == 3:
        moved = seqs.gather(1, index.unsqueeze(-1).expand(-1, -1, seqs.shape[2]))
        return moved * keep.unsqueeze(-1)
    return seqs.gather(1, index) * keep


def right_to_left_padding(values: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
    """The inverse of ``left_to_right_padding`` for features [B, L, D]."""
    length = values.shape[1]
    shift = length - real.sum(dim=1, keepdim=True)  # [B, 1]
    index = (torch.arange(length, device=values.device)[None] - shift).clamp(min=0)  # [B, L]
    moved = values.gather(1, index.unsqueeze(-1).expand(-1, -1, values.shape[2]))
    return moved * real.unsqueeze(-1)


class NARM(SequentialRecommender):
    def __init__(self, num_items: int, max_len: int, config: NARMConfig = NARMConfig()):
        super().__init__()
        self.num_items, self.max_len, self.config = num_items, max_len, config
        self.item_embedding = nn.Embedding(num_items + 1, config.embedding_dim, padding_idx=0)
        self.embedding_dropout = nn.Dropout(config.embedding_dropout)
        self.gru = nn.GRU(config.embedding_dim, config.hidden, num_layers=config.layers, batch_first=True)
        self.attn_query = nn.Linear(config.hidden, config.hidden, bias=False)  # A1
        self.attn_key = nn.Linear(config.hidden, config.hidden, bias=False)  # A2
        self.attn_v = nn.Linear(config.hidden, 1, bias=False)  # v
        self.context_dropout = nn.Dropout(config.context_dropout)
        self.decoder = nn.Linear(2 * config.hidden, config.embedding_dim, bias=False)  # B

    def gru_states(self, seqs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """[B, L] -> (states [B, L, H] aligned with seqs and zero on padding, real mask [B, L])."""
        if seqs.shape[1] > self.max_len:
            raise ValueError(f"sequence length {seqs.shape[1]} exceeds the model's max_len {self.max_len}")
        real = seqs != 0  # [B, L]
        lengths = real.sum(dim=1)  # [B]
        embedded = self.embedding_dropout(self.item_embedding(left_to_right_padding(seqs, real)))  # [B, L, E]
        packed = pack_padded_sequence(embedded, lengths.clamp(min=1).cpu(), batch_first=True, enforce_sorted=False)
        states, _ = pad_packed_sequence(self.gru(packed)[0], batch_first=True, total_length=seqs.shape[1])
        return right_to_left_padding(states, real), real  # [B, L, H]

    def contexts(self, states: torch.Tensor, real: torch.Tensor, query_index: torch.Tensor) -> torch.Tensor:
        """[B, T, 2H] context [c_g; c_l] after the prefixes ending at columns ``query_index`` ([T] or [B, T])."""
        batch, length, hidden = states.shape  # [B, L, H]
        if query_index.dim() == 1:
            query_index = query_index[None].expand(batch, -1)  # [B, T]
        queries = states.gather(1, query_index.unsqueeze(-1).expand(-1, -1, hidden))  # [B, T, H]
        columns = torch.arange(length, device=states.device)  # [L]
        visible = real[:, None, :] & (columns[None, None, :] <= query_index[:, :, None])  # [B, T, L]
        energy = self.attn_v(torch.sigmoid(self.attn_query(queries)[:, :, None, :]
                                           + self.attn_key(states)[:, None, :, :])).squeeze(-1)  # [B, T, L]
        # A query on padding sees no real item: give it its own column so the softmax has one finite entry.
        visible = visible | (columns[None, None, :] == query_index[:, :, None])
        weights = torch.softmax(energy.masked_fill(~visible, float("-inf")), dim=-1)  # [B, T, L]
        local = weights @ states  # [B, T, H]
        return torch.cat([queries, local], dim=-1)  # [B, T, 2H]

    def _scores(self, context: torch.Tensor) -> torch.Tensor:
        projected = self.decoder(self.context_dropout(context))  # [..., E]
        return pad_column_to_neg_inf(projected @ self.item_embedding.weight.T)  # [..., n+1]

    def forward(self, seqs: torch.Tensor) -> torch.Tensor:
        seqs = seqs[:, -self.max_len:]
        states, real = self.gru_states(seqs)
        last = torch.tensor([seqs.shape[1] - 1], device=seqs.device)  # [1]
        return self._scores(self.contexts(states, real, last)[:, 0])  # [B, n+1]

    def _all_contexts(self, seqs: torch.Tensor) -> torch.Tensor:
        states, real = self.gru_states(seqs)
        chunk = self.config.attention_chunk
        columns = torch.arange(seqs.shape[1], device=seqs.device)  # [L]
        parts = [self.contexts(states, real, columns[start:start + chunk])
                 for start in range(0, seqs.shape[1], chunk)]
        return torch.cat(parts, dim=1)  # [B, L, 2H]

    def all_position_scores(self, seqs: torch.Tensor) -> torch.Tensor:
        return self._scores(self._all_contexts(seqs))  # [B, L, n+1]

    def training_loss(self, seqs: torch.Tensor) -> torch.Tensor:
        """Next-item cross-entropy over all items after ``train_positions`` random non-empty prefixes per row."""
        seqs = seqs[:, -(self.max_len + 1):]
        inputs, targets = seqs[:, :-1], seqs[:, 1:]
        counted = (inputs != 0) & (targets != 0)  # [B, L-1]
        if not bool(counted.any()):
            raise ValueError("training batch has no sequence with at least two items")
        states, real = self.gru_states(inputs)  # [B, L-1, H]
        wanted = self.config.train_positions or counted.shape[1]
        # A random key per counted column, -1 elsewhere: the top `wanted` keys are a uniform sample of each
        # row's counted columns (rows with fewer take them all, plus uncounted columns dropped below).
        keys = torch.rand(counted.shape, device=seqs.device).masked_fill(~counted, -1.0)  # [B, L-1]
        picked = keys.topk(min(wanted, counted.shape[1]), dim=1).indices  # [B, T]
        keep = counted.gather(1, picked)  # [B, T]
        contexts = torch.cat([self.contexts(states, real, picked[:, start:start + self.config.attention_chunk])
                              for start in range(0, picked.shape[1], self.config.attention_chunk)], dim=1)
        projected = self.decoder(self.context_dropout(contexts[keep]))  # [N, E]
        logits = projected @ self.item_embedding.weight[1:].T  # [N, n]
        return F.cross_entropy(logits, targets.gather(1, picked)[keep] - 1)
