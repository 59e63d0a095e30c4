"""The arena: every defense faces every attacker, through one evaluation matrix.

Layer 5 (above ``attack``, ``defenses``, ``gro`` and ``seat``; below ``study``):

* ``arms``      — an arm is one served configuration: a model behind the box
  (the undefended target, a GRO-trained one, the λ = 0 control, ...) and an
  output defense (``defenses.output``), compared with a reference arm;
* ``attackers`` — the attacker set every arm faces: registered generators
  (``attack.generators``) × views (``attack.views``: naive, top-10, knowing,
  drop-promoted) × seeds, at one budget, with reproducible surrogates;
* ``cells``     — the unit of work: one model × generator × seed, a pure
  function of its inputs (checkpoint path, dataset, settings) that returns
  per-user figures and writes nothing;
* ``matrix``    — runs the cells and turns their figures into one row per
  (arm, attacker) with utility, protection and 95% intervals;
* ``tables``    — the frontier (each arm at its worst attacker, per measure),
  verdicts, the best defense, the GRO-arms table;
* ``figures``   — the frontier plot.

``recsec defend`` and the study's GRO stage both call ``matrix.evaluate``, so
they print the same rows for the same settings.
"""
