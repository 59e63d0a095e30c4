"""Small utilities every layer may use: atomic file writes, tables, figures, the settings mechanism,
registries and the cell executor.

Layer 0: imports nothing from the rest of ``recsec_lib``.

* ``files``  — write JSON/text through a temporary name and ``os.replace`` (normal permissions);
* ``tables`` — render a list of rows as a markdown table;
* ``settings`` — ``SettingsBase``: frozen settings dataclasses with profiles as tables and typed overrides by name.
* ``registry`` — ``Registry``: families of registered classes found by name (attackers, defenses, detectors);
* ``executor`` — run a stage's independent cells serially, on a local process pool or on Ray.
"""
