"""Model extraction: the black-box API, the attacker's queries and the distilled surrogate.

Layer 3: imports ``common``, ``data``, ``models`` and ``recommend`` only.

* ``blackbox``   — the served recommender: top-k item ids only, query logging, batching;
* ``querylog``   — one record per query (account, query, answer), saved as .npz / JSON lines;
* ``traffic``    — queries in compact form (accounts, sources, ends): what a detector sees;
* ``queries``    — ``AttackData`` (synthetic sequences and their answers) and ``generate_queries``;
* ``generators/`` — the attacker's query generators, one registered class per file (random, autoregressive,
  chain, chain-mix, interleaved, perturbed, popularity, one-query, ...);
* ``views``      — how an attacker copes with a defense it knows (naive, top-10, knowing, drop-promoted);
* ``surrogate``  — distilling a surrogate from (sequence, top-k) pairs with the margin loss;
* ``agreement``  — Agr@K between target and surrogate on real test inputs;
* ``extraction`` — the whole attack: query, distil, measure.
"""
