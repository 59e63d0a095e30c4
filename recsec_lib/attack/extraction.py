"""The model-extraction attack end to end: query the box, then distil a surrogate.

The attacker's functions take a black box and the item-id range (num_items)
and nothing else: no dataset parameter exists anywhere on this path, and
neither this module nor the ones it builds on (``attack_queries``,
``surrogate``) import ``recsec_lib.data``. What the attacker can see is what
``box.answer_batch`` returns: ranked id lists.

    data = generate_queries(box, num_items, "autoregressive", num_sequences=5000, seq_len=200, seed=0)
    surrogate = train_surrogate(data, "sasrec", num_items, max_len=200, settings=SurrogateSettings())
    # or both at once, keeping the training history:
    result = run_attack(box, num_items, "autoregressive", 5000, 200, arch="sasrec")

Measuring the attack needs the real test inputs; that is the evaluator's job
(``evaluate_extraction``, in ``recsec_lib.attack.agreement``, re-exported here
for convenience: it is the one function here that takes a dataset, and it is
never called by the attacker's code).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch

from recsec_lib.attack.queries import AttackData, generate_queries, sequences_for_budget
from recsec_lib.attack.agreement import evaluate_extraction
from recsec_lib.attack.surrogate import SurrogateResult, SurrogateSettings, fit_surrogate, train_surrogate


@dataclass
class AttackResult:
    data: AttackData  # what was queried and returned
    surrogate: SurrogateResult  # the trained surrogate and its training history
    arch: str  # the surrogate's architecture
    query_seconds: float  # wall time spent querying the box
    train_seconds: float  # wall time spent training the surrogate


def run_attack(
    box,  # the black box (answer_batch)
    num_items: int,  # item ids are 1..num_items
    generator: str = "autoregressive",  # a registered generator: random | autoregressive | chain | ...
    num_sequences: int = 5000,  # budget in synthetic sequences (each costs seq_len queries)
    seq_len: int = 200,
    arch: str = "sasrec",  # surrogate architecture (registry name)
    max_len: int | None = None,  # surrogate's max_len; None = the box's published max_query_len (else seq_len)
    settings: SurrogateSettings = SurrogateSettings(),
    device: str | torch.device = "cpu",
    seed: int = 0,
    num_accounts: int = 1,
    progress: bool = True,
) -> AttackResult:
    """Generate the queries, then train a fresh ``arch`` surrogate on them."""
    from recsec_lib.models.registry import build_model

    start = time.perf_counter()
    data = generate_queries(box, num_items, generator, num_sequences, seq_len, seed=seed,
                            num_accounts=num_accounts)
    query_seconds = time.perf_counter() - start
    torch.manual_seed(settings.seed)
    max_len = max_len or getattr(box, "max_query_len", seq_len)
    model = build_model(arch, num_items=num_items, max_len=max(max_len, seq_len))
    start = time.perf_counter()
    result = fit_surrogate(data, model, settings, device=device, progress=progress)
    return AttackResult(data=data, surrogate=result, arch=arch, query_seconds=query_seconds,
                        train_seconds=time.perf_counter() - start)


__all__ = [
    "AttackData", "AttackResult", "SurrogateResult", "SurrogateSettings",
    "evaluate_extraction", "fit_surrogate", "generate_queries", "run_attack", "sequences_for_budget",
    "train_surrogate",
]
