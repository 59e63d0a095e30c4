"""Prevention: GRO-trained targets and output defenses, measured against the attack.

Layer 4: imports ``common``, ``data``, ``models``, ``recommend`` and ``attack`` (never ``seat``).

* ``loss``     — the swap loss and the adversarial ranking from the student's gradient;
* ``training`` — ``GROConfig`` and the joint target/student training loop;
* ``defenses`` — None / Random / Reverse / GRO rows: utility served and surrogate protection.
"""
