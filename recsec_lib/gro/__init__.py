"""Prevention by training: GRO (Zhang et al., WSDM 2024), the swap loss and its training loop.

Layer 4: imports ``common``, ``data``, ``models``, ``recommend`` and ``attack`` (never ``defenses`` or ``seat``).

* ``loss``     — the swap loss and the adversarial ranking from the student's gradient (change GRO's loss here);
* ``training`` — ``GROConfig`` and the joint target/student training loop;
* ``defenses`` — the defended targets' file names and the λ choice on validation ("no protective λ");
* ``null``     — the utility-matched null of a GRO point: an undefended snapshot of the same served
  validation NDCG@10 (the matching rule);
* ``curve``    — a GRO point judged against the λ = 0 control, its null and the training-noise floor:
  extraction ratio, falls with intervals, verdict words, the best point and the headline keys;
* ``authors_units`` — the authors' table: full ranking, unfiltered, 100-item lists, whole-list Random/Reverse,
  with their published rows as labelled reference;
* ``budget``   — whether the attack is budget-bound (its surrogate no longer rising with the target's quality).

GRO targets enter the comparison as model defenses of the arena
(``recsec_lib.arena.model_defenses``), where they face every attacker.
"""
