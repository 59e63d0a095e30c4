"""MovieLens and synthetic data: download or mirror, parse, 5-core filter, leave-one-out split.

Layer 1: imports only ``recsec_lib.common``.

* ``download``   — fetch (or copy from a mirror) and verify the official files;
* ``formats``    — read the official and SASRec-style layouts into ``RawData``;
* ``preprocess`` — 5-core filter, chronological sequences, id maps;
* ``cache`` / ``prepare`` — the processed dataset, cached by its sources' hashes;
* ``dataset``    — ``SequenceDataset``: items 1..n, 0 = padding, the leave-one-out split;
* ``synthetic``  — tiny generated data for tests and the smoke profile;
* ``analysis``   — descriptive statistics of a dataset (lengths, popularity, genres).
"""
