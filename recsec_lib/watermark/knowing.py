"""An attacker who knows the watermarking scheme but not the key: what it can do to strip the mark.

It knows that a watermark ties items to unusual continuations and that the
owner will query triggers and look for continuations. Without the key it
cannot tell which items, so it acts on every item that looks like a candidate:

* ``drop_rare_items``: from its own answers it counts how often each item
  appears in the top ``cutoff`` of the lists it received; the least seen
  ``fraction`` of the catalogue is "rare". It then never learns from an
  answer to a prefix that ends in a rare item (as if it had not sent those
  queries) and removes rare items from every list it trains on (the rest moves
  up). A mark whose continuations are rarely recommended items is stripped
  this way; what it costs the attacker is the Agr@10 its surrogate loses.
* ``fine_tune``: after distillation it trains its surrogate further, on its
  own objective, on sequences it considers benign (e.g. a public data set of
  similar users), hoping the unusual associations fade.

Both act on the attacker's data and model only; they need neither the key nor the target.
"""

from __future__ import annotations

import numpy as np
import torch

from recsec_lib.attack.queries import AttackData
from recsec_lib.recommend.sequences import pad_left


def observed_exposure(data: AttackData, cutoff: int = 10) -> np.ndarray:
    """[num_items + 1] how often each item is in the top ``cutoff`` of the answered lists of ``data``."""
    lists = data.answers[:, :, :cutoff]  # [S, L, c]
    if data.answered is not None:
        lists = lists[data.answered]  # [N, c]
    return np.bincount(lists.reshape(-1), minlength=data.num_items + 1)[: data.num_items + 1]


def drop_rare_items(data: AttackData, fraction: float, cutoff: int = 10, seed: int = 0) -> tuple[AttackData, np.ndarray]:
    """(the attack data without rare items, [R] the items judged rare).

    Lists keep their length: the kept items move up and the freed tail
    repeats the row's last kept item (a repeated item adds nothing to the
    margin loss's order terms). A list with no kept item is not learnt from.
    """
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"parameter 'fraction' must be in [0, 1), got {fraction}")
    exposure = observed_exposure(data, cutoff)[1:].astype(np.float64)  # [n]
    order = np.lexsort((np.random.default_rng(seed).random(len(exposure)), exposure))  # least seen first
    rare = np.sort(order[: int(round(fraction * len(exposure)))]) + 1
    is_rare = np.zeros(data.num_items + 1, dtype=bool)
    is_rare[rare] = True
    answered = np.ones(data.sequences.shape, dtype=bool) if data.answered is None else data.answered.copy()
    answered &= ~is_rare[data.sequences]  # no answer learnt after a prefix that ends in a rare item
    kept = ~is_rare[data.answers]  # [S, L, k]
    # Stable compaction: kept items first, in their order (argsort of "not kept" is stable).
    position = np.argsort(~kept, axis=2, kind="stable")
    lists = np.take_along_axis(data.answers, position, axis=2)
    count = kept.sum(axis=2)  # [S, L]
    answered &= count > 0
    last = np.take_along_axis(lists, np.maximum(count - 1, 0)[:, :, None], axis=2)  # [S, L, 1]
    tail = np.arange(data.k)[None, None, :] >= count[:, :, None]
    lists = np.where(tail, last, lists)
    lists[~answered] = np.maximum(lists[~answered], 1)  # unanswered rows are never read; keep ids valid
    return AttackData(data.sequences, lists, f"{data.generator}+drop-rare", data.num_items, data.seed,
                      answered), rare


def fine_tune(model, sequences: list[np.ndarray], epochs: int = 1, batch_size: int = 128, lr: float = 1e-3,
              seed: int = 0) -> list[float]:
    """Train ``model`` in place on its own objective over ``sequences`` for ``epochs``; returns the epoch losses."""
    if epochs < 1:
        raise ValueError(f"parameter 'epochs' must be >= 1, got {epochs}")
    rows = [np.asarray(s, dtype=np.int64)[-(model.max_len + 1):] for s in sequences if len(s) >= 2]
    if not rows:
        raise ValueError("no sequence with at least 2 items to fine-tune on")
    matrix = torch.from_numpy(pad_left(rows, model.max_len + 1))  # [R, max_len + 1]
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    generator = torch.Generator().manual_seed(seed)
    losses = []
    for epoch in range(epochs):
        model.train()
        torch.manual_seed(seed * 1_000_003 + epoch)
        order = torch.randperm(len(matrix), generator=generator)
        total, steps = 0.0, 0
        for begin in range(0, len(matrix), batch_size):
            loss = model.training_loss(matrix[order[begin:begin + batch_size]])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total, steps = total + float(loss.detach()), steps + 1
        losses.append(total / steps)
    model.eval()
    return losses
