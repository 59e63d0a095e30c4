"""The interface every recommender in the study shares.

Targets, surrogates, GRO students and the black box all talk to a model through
two methods, so that any architecture can play any role:

* ``forward(seqs)``: next-item scores for a batch of left-padded histories.
* ``training_loss(seqs)``: the model's own training objective on full training
  sequences (cross-entropy for SASRec, masked items for BERT4Rec, ...).

``seqs`` is always an int64 tensor [B, L] of internal item ids, left-padded with
0 (see ``recsec_lib.sequences.pad_left``), L <= the model's ``max_len``.
"""

from __future__ import annotations

import abc

import torch
from torch import nn


class SequentialRecommender(nn.Module, abc.ABC):
    """Base class: subclasses set ``num_items``, ``max_len`` and ``config``."""

    num_items: int  # real items are 1..num_items; score column 0 is padding
    max_len: int
    config: object  # the model's frozen config dataclass

    @abc.abstractmethod
    def forward(self, seqs: torch.Tensor) -> torch.Tensor:
        """[B, L] left-padded histories -> [B, num_items + 1] next-item scores.

        Column 0 (padding) must be -inf so that it is never recommended.
        """

    def all_position_scores(self, seqs: torch.Tensor) -> torch.Tensor:
        """[B, L] -> [B, L, num_items + 1]: scores for the next item after every prefix.

        Causal models (SASRec, NARM's GRU) get this in one pass and override it;
        it lets attacks and GRO train on every prefix of a sequence at once. The
        default calls ``forward`` once per position (slow but correct).
        """
        steps = []
        for t in range(seqs.shape[1]):
            prefix = torch.zeros_like(seqs)
            prefix[:, seqs.shape[1] - 1 - t:] = seqs[:, : t + 1]
            steps.append(self.forward(prefix))
        return torch.stack(steps, dim=1)

    def scores_at(self, seqs: torch.Tensor, rows: torch.Tensor, columns: torch.Tensor) -> torch.Tensor:
        """[B, L] histories, [N] row and [N] column indices -> [N, num_items + 1] scores of the
        next item after seqs[rows[n], :columns[n] + 1].

        GRO scores only a few prefixes per sequence; the default slices
        ``all_position_scores``, which builds the full [B, L, num_items + 1]
        tensor. Causal models can override it to score only the requested
        positions (e.g. ``score(encode(seqs)[rows, columns])``), which makes a
        GRO step much cheaper.
        """
        return self.all_position_scores(seqs)[rows, columns]

    @abc.abstractmethod
    def training_loss(self, seqs: torch.Tensor) -> torch.Tensor:
        """Scalar training loss on a batch [B, L] of left-padded training sequences."""
