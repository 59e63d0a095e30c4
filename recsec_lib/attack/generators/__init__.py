"""The attacker's query generators, one registered class per file (``GENERATORS``).

* ``random``         — every prefix of walks of uniformly drawn items (Yue et al.);
* ``autoregressive`` — every prefix of walks steered by the answers (Yue et al.);
* ``adaptive-mix``   — autoregressive with half of the next items drawn from the catalogue;
* ``chain`` / ``chain-mix`` — a few very long walks queried through a sliding window;
* ``interleaved``    — autoregressive walks whose queries alternate;
* ``perturbed``      — autoregressive walks, each query with a few older items replaced;
* ``popularity``     — every prefix of popularity-drawn walks;
* ``one-query``      — popularity walks of random length, each sent once.

``GENERATORS.build(name, **parameters).collect(box, budget_queries, seq_len, seed)``
returns the queries sent (``Traffic``) and the surrogate's training data
(``AttackData``). See ``base`` for the protocol.
"""

# Registration order is the order tables list them in: Yue et al.'s two first, then the zoo.
from recsec_lib.attack.generators import random_walks, autoregressive  # noqa: F401, I001
from recsec_lib.attack.generators import chain, interleaved, perturbed, popularity, one_query  # noqa: F401, I001
from recsec_lib.attack.generators.base import GENERATORS, Collected, QueryGenerator

__all__ = ("GENERATORS", "Collected", "QueryGenerator")
