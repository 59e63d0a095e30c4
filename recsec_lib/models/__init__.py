"""Sequential recommenders: the seed's baseline and the SASRec/NARM/BERT4Rec targets.

Build them with ``recsec_lib.models.registry.build_model(name, num_items, max_len, **overrides)``.
"""

from recsec_lib.models.base import SequentialRecommender

__all__ = ["SequentialRecommender"]
