"""SEAT-style detection of model-extraction attacks on a sequential recommender.

Modules, in the order data flows through them:

* ``traffic``     — query logs in compact form: benign accounts built from real users
                    (growing prefixes, refreshes, households, new users), attack walks,
                    splitting an attack over accounts, the disjoint user split;
* ``encoder``     — the similarity encoder and its adversarial contrastive training;
* ``monitor``     — the online per-account SEAT monitor and its session relation;
* ``baselines``   — the per-account volume cap and PRADA;
* ``replay``      — encoding a log once and replaying it through a monitor;
* ``calibration`` — fitting a detector on benign calibration accounts (frozen result);
* ``evaluation``  — false positives, detection, accounts an attacker needs, ROC, throughput.

The stage that runs all of it is ``recsec_lib.study.stages.seat``.

Layer 4: imports ``common``, ``data``, ``models``, ``recommend`` and ``attack`` (never ``gro``).
"""
