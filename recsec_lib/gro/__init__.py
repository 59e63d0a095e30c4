"""Prevention: GRO-trained targets and output defenses, measured against the attack.

Layer 4: imports ``common``, ``data``, ``models``, ``recommend`` and ``attack`` (never ``seat``).

* ``loss``     — the swap loss and the adversarial ranking from the student's gradient;
* ``training`` — ``GROConfig`` and the joint target/student training loop;
* ``defenses`` — GRO targets per λ and rule, the λ choice on validation ("no protective λ");
* ``output_defenses`` — defenses of the served list alone: top-k' only, the top 10 exact with the
  tail shuffled / reversed / resampled, Random, Reverse, and what an attacker who knows each one sees;
* ``frontier`` — every defense against every attacker, worst case per defense, intervals, the frontier plot.
* ``null``     — the utility-matched null of a GRO point: an undefended snapshot of the same served
  validation NDCG@10 (the matching rule);
* ``curve``    — a GRO point judged against the λ = 0 control, its null and the training-noise floor:
  extraction ratio, falls with intervals, verdict words, the best point and the headline keys;
* ``authors_units`` — the authors' table: full ranking, unfiltered, 100-item lists, whole-list Random/Reverse,
  with their published rows as labelled reference;
* ``budget``   — whether the attack is budget-bound (its surrogate no longer rising with the target's quality).
"""
