"""Defenses that change what the black box serves, one registered class per file.

Layer 4 (beside ``gro`` and ``seat``): imports ``common``, ``data``, ``models``,
``recommend`` and ``attack`` only.

* ``output/`` — output defenses (``OUTPUT_DEFENSES``): a transform of the
  ranked list before it leaves the box — ``none``, ``top`` (serve only the top
  K'), ``tail-shuffle`` / ``tail-reverse`` / ``tail-resample`` (keep the top M
  exact, perturb the rest), and the GRO paper's ``random`` and ``reverse``.
  Each declares what an attacker who knows it can do about it
  (``attack.views.Knowledge``), so every defense meets its knowing attacker.

Defenses that change the model behind the box (GRO, its λ = 0 control, a
watermark) live in their own packages and meet the same attackers in
``recsec_lib.arena``.
"""
