"""Prevention: GRO-trained targets and output defenses, measured against the attack.

Layer 4: imports ``common``, ``data``, ``models``, ``recommend`` and ``attack`` (never ``seat``).

* ``loss``     — the swap loss and the adversarial ranking from the student's gradient;
* ``training`` — ``GROConfig`` and the joint target/student training loop;
* ``defenses`` — GRO targets per λ and rule, the λ choice on validation ("no protective λ");
* ``output_defenses`` — defenses of the served list alone: top-k' only, the top 10 exact with the
  tail shuffled / reversed / resampled, Random, Reverse, and what an attacker who knows each one sees;
* ``frontier`` — every defense against every attacker, worst case per defense, intervals, the frontier plot.
"""
