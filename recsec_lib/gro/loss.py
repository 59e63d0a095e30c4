"""The losses of the GRO defense (Zhang et al., WSDM 2024) and of the seed's variant.

GRO trains the target recommender together with a *student* that plays the
attacker: the student learns from the target's top-k lists with the attack's
margin loss (``recsec_lib.recommend.losses``). The target is then pushed towards the
rankings that would teach the student worst.

For one input (one prefix of a training sequence) with the target's list
a_1 … a_k and the student's scores s (one per item column):

* the swap matrix A ∈ {0,1}^{k×C} has A[i, a_i] = 1, so the student's scores of
  the listed items are ``A @ s`` and the student loss L_s has a gradient with
  respect to A:  dL_s/dA[i, j] = g_i · s[j]  with  g_i = dL_s/d(listed_i);
* A' puts a 1 at the largest-gradient entry of each row: the item that, put at
  rank i, would raise the student's loss most. Since the row is g_i · s, that is
  the student's best item when g_i > 0 and its worst item when g_i < 0; when
  g_i = 0 the whole row ties and ``zero_gradient_rule`` decides (below);
* L_swap = mean_i max((A_i − A'_i) · s_target + m_swap, 0)
        = mean_i max(s_target[a_i] − s_target[a'_i] + m_swap, 0),
  with m_swap = 0 as in the authors' public code. Its gradient reaches the
  target only (through s_target): lists, A' and the student's scores are fixed.

Columns are item ids 0..num_items with column 0 the padding item; ``allowed``
masks say which columns may be chosen as a'_i (never column 0, and not the
items already in the input history when the black box filters them).

Zero-gradient rows. The margin loss is a sum of hinges, so every listed item
whose hinges are all inactive has g_i = 0 exactly; once the student has learnt
the lists for a few epochs that is most entries (65–85% on ML-1M), and the rule
for such a row decides what GRO does:

* ``"keep"`` — A' keeps the current item: the entry adds a constant
  max(m_swap, 0) to L_swap and no gradient, so GRO goes idle as the student
  learns (utility is kept, protection fades);
* ``"lowest_index"`` — the authors' code: an unmasked ``argmax`` over a row of
  ties returns the first column of their item space (which has no padding
  column), i.e. item id 1 here. Every zero row then pushes item 1 above the
  listed item, which promotes that one item into the served lists.

The explicit-matrix functions (``swap_matrix``, ``listed_scores_through_swap``,
``swap_gradient``, ``adversarial_swap_matrix``) build k×C tensors per input and
are kept for tests and for reading; training uses ``adversarial_items``, which
gets the same A' from g and s without building any k×C tensor.
"""

from __future__ import annotations

import torch

from recsec_lib.recommend.losses import ranking_margin_loss

# What A' does in a row whose gradient g_i is exactly 0 (see the module docstring).
ZERO_GRADIENT_RULES = ("keep", "lowest_index")
# The item a zero row is sent to under "lowest_index": the first item column (column 0 is padding here).
LOWEST_INDEX_ITEM = 1


def check_zero_gradient_rule(rule: str) -> str:
    """``rule`` if it is one of ZERO_GRADIENT_RULES; raises naming the parameter otherwise."""
    if rule not in ZERO_GRADIENT_RULES:
        raise ValueError(f"parameter 'zero_gradient_rule' must be one of {ZERO_GRADIENT_RULES}, got {rule!r}")
    return rule


def swap_matrix(lists: torch.Tensor, num_columns: int) -> torch.Tensor:
    """[N, k] item ids -> [N, k, num_columns] float one-hot A with A[n, i, lists[n, i]] = 1."""
    if lists.dim() != 2:
        raise ValueError(f"lists must be [N, k], got shape {tuple(lists.shape)}")
    if lists.numel() and (int(lists.min()) < 0 or int(lists.max()) >= num_columns):
        raise ValueError(f"lists hold ids outside 0..{num_columns - 1}")
    matrix = torch.zeros(lists.shape[0], lists.shape[1], num_columns, device=lists.device)
    matrix.scatter_(2, lists.unsqueeze(2), 1.0)
    return matrix  # [N, k, C]


def listed_scores_through_swap(swap: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
    """A · s: [N, k, C] swap matrix and [N, C] scores -> [N, k] scores of the listed items."""
    return torch.bmm(swap, scores.unsqueeze(2)).squeeze(2)


def swap_gradient(listed_grad: torch.Tensor, student_scores: torch.Tensor) -> torch.Tensor:
    """dL/dA[n, i, j] = g[n, i] · s[n, j] for L computed from ``A · s``.

    listed_grad: [N, k] dL/d(listed_i); student_scores: [N, C]. Returns [N, k, C].
    """
    return listed_grad.unsqueeze(2) * student_scores.unsqueeze(1)


def adversarial_swap_matrix(gradient: torch.Tensor, lists: torch.Tensor,
                            allowed: torch.Tensor | None = None, zero_gradient_rule: str = "keep") -> torch.Tensor:
    """A' from an explicit gradient [N, k, C]: a 1 at each row's largest allowed entry.

    A row whose largest entry ties with the entry of the current item keeps the
    current item (no swap). ``allowed`` is [N, C] bool (None = every column but 0).
    A row that is all zeros follows ``zero_gradient_rule``: "keep" keeps the
    current item, "lowest_index" (the authors' code) takes item LOWEST_INDEX_ITEM.
    """
    check_zero_gradient_rule(zero_gradient_rule)
    items = _argmax_keeping_current(gradient, lists, allowed)  # [N, k]
    if zero_gradient_rule == "lowest_index":
        zero_row = (gradient == 0).all(dim=2)  # [N, k]
        items = torch.where(zero_row, torch.full_like(items, LOWEST_INDEX_ITEM), items)
    return swap_matrix(items, gradient.shape[2])


def _argmax_keeping_current(gradient: torch.Tensor, lists: torch.Tensor,
                            allowed: torch.Tensor | None) -> torch.Tensor:
    """[N, k] column of each row's largest allowed gradient; ties with the current item keep it."""
    allowed = _default_allowed(allowed, gradient.shape[0], gradient.shape[2], gradient.device)
    masked = gradient.masked_fill(~allowed.unsqueeze(1), float("-inf"))  # [N, k, C]
    best_value, best_item = masked.max(dim=2)  # [N, k]
    current_value = gradient.gather(2, lists.unsqueeze(2)).squeeze(2)  # [N, k]
    return torch.where(current_value >= best_value, lists, best_item)


def adversarial_items(listed_grad: torch.Tensor, student_scores: torch.Tensor, lists: torch.Tensor,
                      allowed: torch.Tensor | None = None, zero_gradient_rule: str = "keep") -> torch.Tensor:
    """a'_i, the column of A' in each row, computed without the [N, k, C] gradient.

    Row i of dL/dA is g_i · s, so its largest allowed entry is the student's
    highest-scored allowed item when g_i > 0 and its lowest when g_i < 0; when
    g_i · s[a_i] already equals that maximum (in particular g_i = 0) the current
    item a_i is kept, except that with ``zero_gradient_rule="lowest_index"``
    (the authors' code) a row with g_i = 0 takes item LOWEST_INDEX_ITEM.
    Same result as ``adversarial_swap_matrix(swap_gradient(...), ...)``.

    listed_grad: [N, k]; student_scores: [N, C] (detached); lists: [N, k]. Returns [N, k].
    """
    check_zero_gradient_rule(zero_gradient_rule)
    scores = student_scores.detach()
    allowed = _default_allowed(allowed, scores.shape[0], scores.shape[1], scores.device)
    best_value, best_item = scores.masked_fill(~allowed, float("-inf")).max(dim=1)  # [N]
    worst_value, worst_item = scores.masked_fill(~allowed, float("inf")).min(dim=1)  # [N]
    g = listed_grad.detach()  # [N, k]
    # largest entry of row i: g_i * best if g_i > 0, g_i * worst if g_i < 0, 0 if g_i = 0
    top_value = torch.where(g > 0, g * best_value.unsqueeze(1), g * worst_value.unsqueeze(1))  # [N, k]
    top_value = torch.where(g == 0, torch.zeros_like(g), top_value)
    top_item = torch.where(g > 0, best_item.unsqueeze(1), worst_item.unsqueeze(1)).expand_as(lists)  # [N, k]
    current_value = g * scores.gather(1, lists)  # [N, k]
    chosen = torch.where(current_value >= top_value, lists, top_item)  # [N, k]
    if zero_gradient_rule == "lowest_index":
        chosen = torch.where(g == 0, torch.full_like(chosen, LOWEST_INDEX_ITEM), chosen)
    return chosen


def zero_gradient_share(listed_grad: torch.Tensor) -> float:
    """Fraction of the [N, k] entries of g that are exactly 0 (where the zero-gradient rule decides A')."""
    return float((listed_grad == 0).float().mean()) if listed_grad.numel() else 0.0


def _default_allowed(allowed: torch.Tensor | None, rows: int, columns: int, device) -> torch.Tensor:
    """[rows, columns] bool; None = every column except the padding column 0."""
    if allowed is None:
        allowed = torch.ones(rows, columns, dtype=torch.bool, device=device)
        allowed[:, 0] = False
    if allowed.shape != (rows, columns):
        raise ValueError(f"allowed must be [{rows}, {columns}], got {tuple(allowed.shape)}")
    return allowed


def student_loss(
    student_scores: torch.Tensor,  # [N, C] the student's scores, with gradient
    lists: torch.Tensor,  # [N, k] the target's lists (detached), best first
    negatives: torch.Tensor,  # [N, k] one item outside each list per rank
    margin_order: float = 0.5,  # m1
    margin_negative: float = 0.5,  # m2
    valid: torch.Tensor | None = None,  # [N] bool: rows to count
) -> tuple[torch.Tensor, torch.Tensor]:
    """The attack's margin loss on the target's lists, and the listed scores it was computed from.

    The listed scores [N, k] are returned so that the caller can take
    dL/d(listed) (the g of ``adversarial_items``); gathering them equals A · s.
    """
    listed = student_scores.gather(1, lists)  # [N, k] = A · s
    negative = student_scores.gather(1, negatives)  # [N, k]
    loss = ranking_margin_loss(listed, negative, margin_order, margin_negative, valid=valid)
    return loss, listed


def swap_loss(
    target_scores: torch.Tensor,  # [N, C] the target's scores, with gradient
    lists: torch.Tensor,  # [N, k] a_i
    adversarial: torch.Tensor,  # [N, k] a'_i
    margin: float = 0.0,  # m_swap
    valid: torch.Tensor | None = None,  # [N] bool: rows to count
) -> torch.Tensor:
    """L_swap = mean over counted rows and ranks of max(s_t[a_i] − s_t[a'_i] + m_swap, 0)."""
    current = target_scores.gather(1, lists)  # [N, k]
    swapped = target_scores.gather(1, adversarial)  # [N, k]
    per_entry = torch.relu(current - swapped + margin)  # [N, k]
    return _masked_mean(per_entry, valid)


def seed_variant_loss(
    target_scores: torch.Tensor,  # [N, C] the target's scores, with gradient
    student_scores: torch.Tensor,  # [N, C] the student's scores (detached here)
    lists: torch.Tensor,  # [N, k] the target's lists
    margin: float = 0.3,
    temperature: float = 1.0,
    valid: torch.Tensor | None = None,  # [N] bool: rows to count
) -> torch.Tensor:
    """The seed project's swap loss: mean relu(margin − |swap(target) − swap(student)|).

    NOT the paper's loss (an ablation, ``--method seed-variant``). swap(·) is a
    differentiable pairwise matrix of the ranking over the target's top-k:
    P[i, j] = sigmoid((s[a_i] − s[a_j]) / temperature). The loss pushes the
    target's pairwise order at least ``margin`` away from the student's; only the
    target receives its gradient.
    """
    if temperature <= 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    target_listed = target_scores.gather(1, lists)  # [N, k]
    student_listed = student_scores.detach().gather(1, lists)  # [N, k]
    target_pairs = torch.sigmoid((target_listed.unsqueeze(2) - target_listed.unsqueeze(1)) / temperature)  # [N, k, k]
    student_pairs = torch.sigmoid((student_listed.unsqueeze(2) - student_listed.unsqueeze(1)) / temperature)
    per_pair = torch.relu(margin - (target_pairs - student_pairs).abs())  # [N, k, k]
    return _masked_mean(per_pair.flatten(1), valid)


def _masked_mean(values: torch.Tensor, valid: torch.Tensor | None) -> torch.Tensor:
    """Mean of [N, M] values over the rows where ``valid`` [N] is True (all rows if None)."""
    if valid is None:
        return values.mean()
    weights = valid.to(values.dtype).unsqueeze(1).expand_as(values)
    return (values * weights).sum() / weights.sum().clamp(min=1.0)
