"""Verification: a secret watermark trained into a target, checked on a suspect through its black box only.

Layer 4 (beside ``gro`` and ``seat``, which it never imports): imports ``common``, ``data``, ``models``,
``recommend`` and ``attack`` only.

* ``key``        — the secret key (a seed) and the watermark it chooses: trigger → continuation pairs,
  the decoy keys that calibrate the test, saved and loaded as a small JSON file;
* ``embed``      — fine-tuning a trained target on its own rows mixed with watermark rows;
* ``statistics`` — the one-sided exact test (hypergeometric tail) of the real key's hits against the decoys';
* ``verify``     — querying a suspect box (``answer_batch`` only) with the key's queries and deciding;
* ``cost``       — what the mark costs users: per-user NDCG@10 kept against the unmarked target, with an interval;
* ``knowing``    — what an attacker who knows the scheme (not the key) can do to its training data;
* ``plots``      — the p-value figure (stolen copies against independent models).
"""
