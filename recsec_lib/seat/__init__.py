"""SEAT-style detection of model-extraction attacks on a sequential recommender.

Modules, in the order data flows through them:

* ``traffic``     — query logs in compact form, attack walks, splitting an attack
                    over accounts, the disjoint user split;
* ``benign``      — benign accounts built from real users: the first four forms
                    and what real clients also send (sparse querying, client
                    windows, history edits, candidate re-ranking, big households,
                    repeated passes);
* ``attackers``   — the attacker zoo: attackers that shape their queries around SEAT;
* ``encoder``     — the similarity encoder and its adversarial contrastive training;
* ``follow``      — the in-session signal: is each new item from the previous answer?
* ``monitor``     — the online per-account SEAT monitor and its session relation;
* ``baselines``   — the lifetime volume cap, the rate cap and PRADA;
* ``handoff``     — the cross-account signal: queries that continue another account's query;
* ``replay``      — encoding a log once and replaying it through a monitor;
* ``calibration`` — limits for a false-positive rate, the frozen ``Calibration``, monitor options;
* ``statistics``  — per-account statistics and the registered sources (monitors) that give them;
* ``detectors``   — the detector registry: each detector one class (its statistics, budget rule, keys);
* ``evaluation``  — false positives, detection, accounts an attacker needs, ROC, throughput;
* ``zoo``         — every detector against every zoo attacker, the worst-case headline;
* ``timing``      — real query timing (ML-100K timestamps, titles mapped to ML-1M), time models;
* ``fpr``         — false-positive rates with exact (Clopper–Pearson) intervals;
* ``search``      — the attacker's grid search: parameters, split over accounts, pacing window;
* ``public_data`` — the public-data attacker (ML-100K histories replayed as streams);
* ``pooled``      — the pooled-traffic MMD test (all accounts together);
* ``suspicion``   — the per-query suspicion score (the scoring half of per-query gating);
* ``populations`` — benign calibration and held-out populations with real timing;
* ``verdict``     — the detection headline: worst cases, the best detector, its FPR, the targets;
* ``inputs``, ``plots`` — what the stage reads from a run, and its figures.

The stage that runs all of it is ``recsec_lib.study.stages.seat``.

Layer 4: imports ``common``, ``data``, ``models``, ``recommend`` and ``attack`` (never ``gro``).
"""
