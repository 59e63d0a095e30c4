"""Output defenses, one registered class per file (``OUTPUT_DEFENSES``); see ``base`` for the protocol.

``parse_output_defense("tail-resample:10")`` builds one from its text form.
"""

# Registration order is the order tables list them in.
from recsec_lib.defenses.output import none, top, tail_shuffle, tail_reverse, tail_resample  # noqa: F401, I001
from recsec_lib.defenses.output import random_order, reverse  # noqa: F401, I001
from recsec_lib.defenses.output.base import (OUTPUT_DEFENSES, DefendedBox, OutputDefense, parse_output_defense,
                                             serve_attack_data)

__all__ = ("OUTPUT_DEFENSES", "DefendedBox", "OutputDefense", "parse_output_defense", "serve_attack_data")
