"""Sequential recommenders: the seed's baseline and the SASRec/NARM/BERT4Rec targets.

Build them with ``recsec_lib.models.registry.build_model(name, num_items, max_len, **overrides)``.

Layer 1: imports only ``recsec_lib.common`` (never ``data``: a model knows item ids, not files).
"""

from recsec_lib.models.base import SequentialRecommender

__all__ = ["SequentialRecommender"]
