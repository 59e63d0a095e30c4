"""The interface every recommender in the study shares.

Targets, surrogates, GRO students and the black box all talk to a model through
two methods, so that any architecture can play any role:

* ``forward(seqs)``: next-item scores for a batch of left-padded histories.
* ``training_loss(seqs)``: the model's own training objective on full training
  sequences (cross-entropy for SASRec, masked items for BERT4Rec, ...).

``seqs`` is always an int64 tensor [B, L] of internal item ids, left-padded with
0 (see ``recsec_lib.recommend.sequences.pad_left``), L <= the model's ``max_len``.
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

    def all_position_item_scores(self, seqs: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """[B, L] histories and [B, L, m] item ids -> [B, L, m]: the scores of those items after every prefix.

        What the attack's margin loss needs: the scores of the listed and
        negative items of each prefix (2k of them), not of the whole catalogue.
        This default gathers them from ``all_position_scores``; SASRec
        overrides it to skip the copies that the padding column's -inf costs.
        """
        return self.all_position_scores(seqs).gather(2, items)

    def item_scores_at(self, seqs: torch.Tensor, rows: torch.Tensor, columns: torch.Tensor,
                       items: torch.Tensor) -> torch.Tensor:
        """[B, L] histories, [N] row and [N] column indices, [N, m] item ids -> [N, m] the scores of those items
        after seqs[rows[n], :columns[n] + 1].

        ``all_position_item_scores`` restricted to the prefixes that count: an attacker that sent one query per
        walk has one answered prefix in 200, and scoring the other 199 against the whole catalogue was most of
        its surrogate's training cost. This default gathers from ``scores_at``; SASRec overrides it with the
        same product as ``all_position_item_scores`` on the chosen states only.
        """
        return self.scores_at(seqs, rows, columns).gather(1, items)  # [N, n+1] -> [N, m]

    def scores_at(self, seqs: torch.Tensor, rows: torch.Tensor, columns: torch.Tensor) -> torch.Tensor:
        """[B, L] histories, [N] row and [N] column indices -> [N, num_items + 1] scores of the
        next item after seqs[rows[n], :columns[n] + 1].

        GRO scores only a few prefixes per sequence. Causal models that score
        every prefix in one pass get them by slicing ``all_position_scores``
        (SASRec overrides this to score only the requested positions); other
        models (BERT4Rec) get the N prefixes stacked, left-padded, through one
        ``forward`` call.
        """
        if type(self).all_position_scores is not SequentialRecommender.all_position_scores:
            return self.all_position_scores(seqs)[rows, columns]  # [B, L, n+1] -> [N, n+1]
        length = seqs.shape[1]
        shift = (length - 1 - columns).unsqueeze(1)  # [N, 1] how far each prefix moves right
        source = torch.arange(length, device=seqs.device).unsqueeze(0) - shift  # [N, L] source column
        prefixes = seqs[rows].gather(1, source.clamp(min=0)).masked_fill(source < 0, 0)  # [N, L]
        return self.forward(prefixes)  # [N, n+1]

    def training_loss_and_scores_at(self, seqs: torch.Tensor, rows: torch.Tensor,
                                    columns: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``training_loss(seqs)`` and the scores after chosen prefixes of the batch's training inputs.

        ``seqs`` is a [B, L + 1] training batch whose inputs are
        ``seqs[:, -(max_len + 1):-1]`` (each sequence without its last item);
        rows and columns [N] index those inputs as in ``scores_at``. GRO needs
        both in every step. This default computes them one after the other;
        SASRec overrides it so that one encoder pass serves both (a GRO step
        then costs one target encoding, not two).
        """
        inputs = seqs[:, -(self.max_len + 1):-1]  # [B, <= max_len]
        return self.training_loss(seqs), self.scores_at(inputs, rows, columns)

    @abc.abstractmethod
    def training_loss(self, seqs: torch.Tensor) -> torch.Tensor:
        """Scalar training loss on a batch [B, L] of left-padded training sequences."""
