"""Small utilities every layer may use: atomic file writes, markdown tables and the settings mechanism.

Layer 0: imports nothing from the rest of ``recsec_lib``.

* ``files``  — write JSON/text through a temporary name and ``os.replace`` (normal permissions);
* ``tables`` — render a list of rows as a markdown table;
* ``settings`` — ``SettingsBase``: frozen settings dataclasses with profiles as tables and typed overrides by name.
"""
