"""The attacker set every arm faces: generators × views × seeds, one budget, reproducible surrogates.

An attacker is (generator, view, seed): the registered query generator decides
which queries it sends (``attack.generators``), the view how it copes with the
defense it meets (``attack.views``), the seed its queries and its surrogate's
initialisation. Every arm of a comparison faces every attacker of the set, so
no arm is measured against a weaker attacker than its reference.

Surrogates stop after a fixed number of epochs with their seed (early stopping
on the attacker's own held-out synthetic Agr@10 is deterministic too); a
wall-clock cap may stay as a safety stop, and a surrogate that hits it is
flagged in the table (``time_capped``): such a figure cannot be reproduced.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from recsec_lib.attack.generators import GENERATORS
from recsec_lib.attack.surrogate import SurrogateSettings
from recsec_lib.attack.views import VIEWS

DEFAULT_VIEWS = ("naive", "top-10", "knowing", "drop-promoted")


@dataclass(frozen=True)
class AttackSet:
    """Who attacks every arm, and with what budget."""

    generators: tuple[str, ...] = ("autoregressive",)  # registered generators (attack.generators)
    views: tuple[str, ...] = DEFAULT_VIEWS  # registered views (attack.views)
    seeds: tuple[int, ...] = (0, 1, 2)  # one attack per seed: queries and surrogate initialisation
    num_sequences: int = 5000  # budget in walks of seq_len queries each
    seq_len: int = 200
    k: int = 100  # the box ranks k items (before the output defense)
    arch: str = "sasrec"  # surrogate architecture (registry name)
    surrogate: SurrogateSettings = field(default_factory=SurrogateSettings)  # its seed is each attack's seed
    box_filter_seen: bool = True

    def __post_init__(self) -> None:
        if not self.generators or not self.views or not self.seeds:
            raise ValueError("an attack set needs at least one generator, one view and one seed")
        for name in self.generators:
            GENERATORS.get(name)  # raises naming the known generators
        for name in self.views:
            VIEWS.get(name)
        if self.num_sequences <= 0 or self.seq_len <= 0 or self.k <= 0:
            raise ValueError("an attack set's num_sequences, seq_len and k must be positive")

    @property
    def budget_queries(self) -> int:
        return self.num_sequences * self.seq_len

    def surrogate_settings(self, seed: int, order_weight: float = 1.0) -> SurrogateSettings:
        """The surrogate's training settings for one attack seed (and the view's order weight)."""
        return replace(self.surrogate, seed=seed, order_weight=order_weight)

    def describe(self) -> str:
        """One line for tables and plot titles."""
        return (f"{'/'.join(self.generators)} × {len(self.views)} views ({', '.join(self.views)}) × "
                f"{len(self.seeds)} seeds, {self.num_sequences}×{self.seq_len} queries, top-{self.k}, "
                f"{self.arch} surrogates of {self.surrogate.epochs} epochs")
