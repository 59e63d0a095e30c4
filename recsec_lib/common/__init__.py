"""Small utilities every layer may use: atomic file writes and markdown tables.

Layer 0: imports nothing from the rest of ``recsec_lib``.

* ``files``  — write JSON/text through a temporary name and ``os.replace`` (normal permissions);
* ``tables`` — render a list of rows as a markdown table.
"""
