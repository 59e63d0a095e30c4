"""Prevention by training: GRO (Zhang et al., WSDM 2024), the swap loss and its training loop.

Layer 4: imports ``common``, ``data``, ``models``, ``recommend`` and ``attack`` (never ``defenses`` or ``seat``).

* ``loss``     — the swap loss and the adversarial ranking from the student's gradient (change GRO's loss here);
* ``training`` — ``GROConfig`` and the joint target/student training loop;
* ``defenses`` — the defended targets' file names and the λ choice on validation ("no protective λ").

GRO targets enter the comparison as model defenses of the arena
(``recsec_lib.arena.model_defenses``), where they face every attacker.
"""
