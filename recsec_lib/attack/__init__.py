"""Model extraction: the black-box API, the attacker's queries and the distilled surrogate.

Layer 3: imports ``common``, ``data``, ``models`` and ``recommend`` only.

* ``blackbox``   — the served recommender: top-k item ids only, query logging, batching;
* ``querylog``   — one record per query (account, query, answer), saved as .npz / JSON lines;
* ``queries``    — the attacker's synthetic sequences (random, autoregressive) and their answers;
* ``surrogate``  — distilling a surrogate from (sequence, top-k) pairs with the margin loss;
* ``agreement``  — Agr@K between target and surrogate on real test inputs;
* ``extraction`` — the whole attack: query, distil, measure.
"""
