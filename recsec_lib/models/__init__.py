"""Sequential recommenders: the seed's baseline and the SASRec/NARM/BERT4Rec targets."""

from recsec_lib.models.base import SequentialRecommender

__all__ = ["SequentialRecommender"]
